#include <gtest/gtest.h>

#include <set>

#include "core/synth/synth_dataset.h"
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
