// Batches of training samples from a prepared data set, made on worker threads.
//
// The order of an epoch is a permutation drawn from (seed, epoch); a sample's augmentation depends only on
// (seed, epoch, sample index) (core/augment.h). So the batches of an epoch are the same whatever the thread
// count, and an epoch can be resumed at any batch (start_epoch's first_batch). Batches keep the reference's
// drop_last = false: the last one may be short. Several ranks take disjoint shards of each global batch.
// One BatchLoader per consumer thread; its workers are internal. An exception in a worker (a damaged sample, an
// I/O error) is thrown by the next() that would have returned its batch, once, with the reader's message (the
// file, the sample, the field); the epoch ends there, and the loader stays usable (start_epoch) and destructible.
#pragma once

#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include "core/augment.h"
#include "core/thread_pool.h"
#include "storage/dataset_file.h"

namespace orch {

struct LoaderOptions {
  int batch_size = 4;      // global batch size
  bool shuffle = true;
  bool augment = true;
  uint64_t seed = 1;
  int threads = 2;         // worker threads preparing samples
  int prefetch = 2;        // batches prepared ahead
  int rank = 0, world = 1; // this rank takes samples [rank::world] of each global batch
  AugmentOptions augmentation;

  LoaderOptions& with_batch(int b) { batch_size = b; return *this; }
  LoaderOptions& with_seed(uint64_t s) { seed = s; return *this; }
  LoaderOptions& with_threads(int t) { threads = t; return *this; }
  LoaderOptions& with_shard(int r, int w) { rank = r; world = w; return *this; }
  LoaderOptions& with_augment(bool a) { augment = a; return *this; }
  LoaderOptions& with_shuffle(bool s) { shuffle = s; return *this; }
  void validate() const;
};

using Batch = std::vector<TrainingSample>;

class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const SampleSource> data, std::vector<int> indices, LoaderOptions options);
  ~BatchLoader();
  int batches_per_epoch() const;
  // The sample indices of the epoch's order (the whole global order, all ranks).
  std::vector<int> epoch_order(uint64_t epoch) const;
  void start_epoch(uint64_t epoch, int first_batch = 0);
  std::optional<Batch> next();  // nullopt at the end of the epoch

 private:
  void fill();
  void drain() noexcept;
  Batch make_batch(uint64_t epoch, int batch) const;
  std::shared_ptr<const SampleSource> data_;
  std::vector<int> indices_;
  LoaderOptions opt_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<int> order_;
  uint64_t epoch_ = 0;
  int next_batch_ = 0, next_submit_ = 0;
  std::deque<std::future<Batch>> queue_;
};

}  // namespace orch
