#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <set>

#include "core/synth/synth_dataset.h"
#include "core/errors.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "storage/h5.h"
#include "storage/loader.h"
#include "storage/prepare.h"
#include "test_util.h"

using namespace orch;

namespace {
std::shared_ptr<const DatasetReader> dataset(test::TempDir& d) {
  write_synthetic_dataset(SynthOptions().with_count(14).with_size(48).with_seed(1), d / "src", true);
  PrepareOptions o;
  o.out = d / "d.h5";
  o.size = 48;
  o.landmarks = d / "src/landmarks";
  o.images = {d / "src/images"};
  o.splits = {d / "src/splits"};
  o.quiet = true;
  prepare_dataset(o);
  return std::make_shared<DatasetReader>(d / "d.h5");
}
std::vector<std::vector<float>> epoch(BatchLoader& l, uint64_t e, int first = 0) {
  std::vector<std::vector<float>> out;
  l.start_epoch(e, first);
  while (auto b = l.next())
    for (auto& s : *b) {
      std::vector<float> v(s.landmarks);
      v.insert(v.end(), s.image.begin<float>(), s.image.begin<float>() + 50);
      out.push_back(v);
    }
  return out;
}
}  // namespace

TEST(Loader, SameBatchesWhateverTheThreadCount) {
  test::TempDir d;
  auto data = dataset(d);
  auto train = data->info().indices(Split::kTrain);
  ASSERT_EQ(train.size(), 10u);
  BatchLoader one(data, train, LoaderOptions().with_threads(1).with_seed(5));
  BatchLoader two(data, train, LoaderOptions().with_threads(2).with_seed(5));
  EXPECT_EQ(one.batches_per_epoch(), 3);  // 4 + 4 + 2, drop_last = false
  EXPECT_EQ(epoch(one, 2), epoch(two, 2));
  EXPECT_NE(epoch(one, 2), epoch(one, 3));
}

TEST(Loader, ResumesInsideAnEpoch) {
  test::TempDir d;
  auto data = dataset(d);
  BatchLoader l(data, data->info().indices(Split::kTrain), LoaderOptions().with_seed(5));
  auto full = epoch(l, 1);
  auto tail = epoch(l, 1, 1);
  ASSERT_EQ(tail.size(), full.size() - 4);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), full.begin() + 4));
}

TEST(Loader, RanksTakeDisjointShardsOfEachBatch) {
  test::TempDir d;
  auto data = dataset(d);
  auto train = data->info().indices(Split::kTrain);
  BatchLoader all(data, train, LoaderOptions().with_seed(5).with_augment(false));
  BatchLoader r0(data, train, LoaderOptions().with_seed(5).with_augment(false).with_shard(0, 2));
  BatchLoader r1(data, train, LoaderOptions().with_seed(5).with_augment(false).with_shard(1, 2));
  all.start_epoch(0);
  r0.start_epoch(0);
  r1.start_epoch(0);
  while (auto b = all.next()) {
    auto a = r0.next(), c = r1.next();
    ASSERT_TRUE(a && c);
    std::multiset<std::string> whole, parts;
    for (auto& s : *b) whole.insert(s.id);
    for (auto& s : *a) parts.insert(s.id);
    for (auto& s : *c) parts.insert(s.id);
    EXPECT_EQ(whole, parts);
  }
  EXPECT_FALSE(r0.next());
}

namespace {
// A real data set whose sample `bad` fails to read, as an I/O error or a damaged chunk would (the loader's seam).
class FailingSource : public SampleSource {
 public:
  FailingSource(std::shared_ptr<const DatasetReader> real, int bad) : real_(std::move(real)), bad_(bad) {}
  const DatasetInfo& info() const override { return real_->info(); }
  Sample read(int index) const override {
    if (index == bad_) throw Error(real_->path() + ": sample " + std::to_string(index) + ": Input/output error");
    return real_->read(index);
  }

 private:
  std::shared_ptr<const DatasetReader> real_;
  int bad_;
};
}  // namespace

// The error of a worker thread reaches next() once, with its message; the loader is then usable and destructible
// (it used to leave the spent future queued: the next wait threw std::future_error, and the process aborted).
TEST(Loader, AnErrorInALoaderTaskReachesTheCallerOnce) {
  test::TempDir d;
  auto real = dataset(d);
  auto train = real->info().indices(Split::kTrain);
  for (int threads : {1, 2}) {
    for (size_t which : {size_t{0}, train.size() - 1}) {
      auto src = std::make_shared<FailingSource>(real, train[which]);
      auto l = std::make_unique<BatchLoader>(src, train, LoaderOptions().with_threads(threads).with_seed(5));
      l->start_epoch(1);
      std::string message;
      int batches = 0;
      try {
        while (l->next()) ++batches;
      } catch (const std::exception& e) {
        message = e.what();
      }
      EXPECT_NE(message.find("Input/output error"), std::string::npos) << "threads " << threads << ": " << message;
      EXPECT_NE(message.find("sample " + std::to_string(train[which])), std::string::npos) << message;
      EXPECT_LT(batches, l->batches_per_epoch());
      EXPECT_NO_THROW({ EXPECT_FALSE(l->next()); });  // the epoch ended with the error; nothing throws again
      EXPECT_NO_THROW(l->start_epoch(2));              // a new epoch starts afresh (and meets the sample again)
      EXPECT_THROW({ while (l->next()) {} }, Error);
      EXPECT_NO_THROW(l.reset());                      // destroyed with tasks in flight or failed: no terminate
    }
  }
}

// A data set whose landmarks are NaN (written by another tool): the reader's check names the file, the field and
// the sample, through the loader's threads.
TEST(Loader, ANanLandmarkIsAClearErrorNamingTheSample) {
  test::TempDir d;
  auto real = dataset(d);
  const auto train = real->info().indices(Split::kTrain);
  const int bad = train[3];
  const size_t points = static_cast<size_t>(real->info().layout().total_points());
  real.reset();  // HDF5 locks a file open for reading against writers
  {
    h5::Handle f = h5::open_file(d / "d.h5", true);
    h5::Handle lm = h5::open_dataset(f, "landmarks");
    std::vector<float> row(points * 2, std::nanf(""));
    h5::write_row(lm, H5T_NATIVE_FLOAT, bad, row.data(), d / "d.h5");
  }
  auto data = std::make_shared<DatasetReader>(d / "d.h5");
  BatchLoader l(data, train, LoaderOptions().with_threads(2).with_seed(5));
  l.start_epoch(1);
  try {
    while (l.next()) {}
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("d.h5"), std::string::npos) << m;
    EXPECT_NE(m.find("/landmarks"), std::string::npos) << m;
    EXPECT_NE(m.find("sample " + std::to_string(bad)), std::string::npos) << m;
    EXPECT_NE(m.find("nan"), std::string::npos) << m;
  }
}

// Every pool hands a task's exception to its caller, and is then joinable: no path to std::terminate.
TEST(Pools, ParallelForHandsTheFirstErrorToTheCaller) {
  for (int threads : {1, 2, 4}) {
    std::atomic<int> ran{0};
    try {
      parallel_for(1000, threads, [&](size_t i) {
        ++ran;
        if (i == 5) throw InputError("f.h5", "/landmarks, sample 5", "nan", "expected a finite coordinate");
      });
      FAIL() << "no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("f.h5: /landmarks, sample 5 = nan"), std::string::npos) << e.what();
    }
  }
}

TEST(Pools, AThreadPoolTaskErrorIsItsFutureAndThePoolStillWorks) {
  auto pool = std::make_unique<ThreadPool>(2);
  auto bad = pool->submit([]() -> int { throw Error("disk gone"); });
  auto good = pool->submit([] { return 7; });
  EXPECT_THROW(bad.get(), Error);
  EXPECT_EQ(good.get(), 7);
  auto pending = pool->submit([]() -> int { throw Error("never read"); });  // an error nobody reads
  EXPECT_NO_THROW(pool.reset());
}
