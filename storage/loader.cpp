#include "storage/loader.h"

#include "core/errors.h"
#include "core/rng.h"

namespace orch {

void LoaderOptions::validate() const {
  if (batch_size < 1) throw InputError("", "batch_size", std::to_string(batch_size), "expected at least 1");
  if (world < 1 || rank < 0 || rank >= world)
    throw InputError("", "rank", std::to_string(rank) + "/" + std::to_string(world), "rank must be in [0, world)");
  if (threads < 1) throw InputError("", "loader threads", std::to_string(threads), "expected at least 1");
}

BatchLoader::BatchLoader(std::shared_ptr<const SampleSource> data, std::vector<int> indices, LoaderOptions options)
    : data_(std::move(data)), indices_(std::move(indices)), opt_(std::move(options)) {
  opt_.validate();
  pool_ = std::make_unique<ThreadPool>(opt_.threads);
}

BatchLoader::~BatchLoader() { drain(); }

// Waits for every batch in flight (their errors are dropped: the caller is leaving the epoch) and empties the queue.
void BatchLoader::drain() noexcept {
  for (auto& f : queue_)
    if (f.valid()) f.wait();
  queue_.clear();
}

int BatchLoader::batches_per_epoch() const {
  return static_cast<int>((indices_.size() + opt_.batch_size - 1) / opt_.batch_size);
}

std::vector<int> BatchLoader::epoch_order(uint64_t epoch) const {
  std::vector<int> order = indices_;
  if (opt_.shuffle) {
    Rng rng = Rng::derive(opt_.seed, {epoch, 0x6f72646572ULL /* "order" */});
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[static_cast<size_t>(rng.randint(0, i))]);
  }
  return order;
}

void BatchLoader::start_epoch(uint64_t epoch, int first_batch) {
  drain();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  next_batch_ = next_submit_ = std::max(0, first_batch);
  fill();
}

Batch BatchLoader::make_batch(uint64_t epoch, int b) const {
  Batch batch;
  size_t begin = static_cast<size_t>(b) * opt_.batch_size;
  size_t end = std::min(order_.size(), begin + opt_.batch_size);
  for (size_t k = begin + opt_.rank; k < end; k += opt_.world) {
    int idx = order_[k];
    Sample s = data_->read(idx);
    batch.push_back(opt_.augment ? augment(s, opt_.augmentation, opt_.seed, epoch, static_cast<uint64_t>(idx))
                                 : to_training_sample(s));
  }
  return batch;
}

void BatchLoader::fill() {
  while (next_submit_ < batches_per_epoch() && static_cast<int>(queue_.size()) < std::max(1, opt_.prefetch)) {
    int b = next_submit_++;
    uint64_t e = epoch_;
    queue_.push_back(pool_->submit([this, e, b] { return make_batch(e, b); }));
  }
}

std::optional<Batch> BatchLoader::next() {
  if (queue_.empty()) return std::nullopt;
  // The future leaves the queue before get(): a task's exception reaches the caller once, and nothing spent is
  // left behind for a later get() or wait() to throw std::future_error. After an error the rest of the epoch is
  // dropped (drained); start_epoch() begins afresh.
  std::future<Batch> f = std::move(queue_.front());
  queue_.pop_front();
  Batch b;
  try {
    b = f.get();
  } catch (...) {
    drain();
    next_submit_ = batches_per_epoch();
    throw;
  }
  ++next_batch_;
  fill();
  return b;
}

}  // namespace orch
