// The trainer and the worker in-process: determinism, stop-and-resume, the store against predictions.h5,
// dependencies through the store, the grid's expansion.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "../unit/test_util.h"
#include "core/errors.h"
#include "core/experiment.h"
#include "core/env.h"
#include "core/mask.h"
#include "core/metrics.h"
#include "in_process.h"
#include "models/catalogue.h"
#include "models/registry.h"
#include "report/report.h"
#include "runner/checkpoint.h"
#include "runner/communicator.h"
#include "runner/signals.h"
#include "runner/trainer.h"
#include "runner/worker.h"
#include "scheduler/grid.h"
#include "scheduler/local_backend.h"
#include "scheduler/plan.h"
#include "storage/claims_table.h"
#include "storage/dataset_file.h"
#include "storage/h5.h"
#include "storage/layout.h"
#include "storage/metrics_table.h"
#include "storage/predictions.h"
#include "storage/provenance_table.h"
#include "storage/runs_table.h"
#include "storage/store.h"
#include "storage/workspace.h"

namespace orch {
namespace {

namespace fs = std::filesystem;
using test::prepared_chain;
using test::TempDir;
using test::work;

Experiment tiny_experiment(const std::string& ws, int epochs = 2, const std::string& kind = "lh") {
  nlohmann::json j = {{"name", "tiny"},
                      {"workspace", ws},
                      {"datasets", {{"d", {{"kind", kind}, {"size", 64}, {"synthetic", {{"count", 20}, {"seed", 3}, {"size", 64}}}}}}},
                      {"networks", {"hybridgnet", "unet", "ours", "rasterize"}},
                      {"seeds", {1, 2}},
                      {"training", {{"epochs", epochs}, {"threads", 1}, {"loader_threads", 1}, {"device", "cpu"}}}};
  return parse_experiment(j, "tiny.json");
}


std::string store_of(const std::string& ws) { return WorkspaceLayout(ws).store(); }
std::string predictions_of(const std::string& ws, const std::string& id) { return WorkspaceLayout(ws).predictions(id); }

std::vector<torch::Tensor> best_parameters(const std::string& ws, const scheduler::PlannedRun& r) {
  auto net = models::create_model(r.settings.model, [&] {
    models::ModelConfig c;
    c.kind = r.settings.kind;
    c.size = r.settings.size;
    return c;
  }());
  runner::load_weights((fs::path(WorkspaceLayout(ws).checkpoints(r.id)) / kBestCheckpoint).string(), *net);
  return net->parameters();
}

// The paper's grid: 11 networks x 2 data sets x 3 seeds. The pretrained UNet of each data set is the UNet run of
// seed 1 (its settings are the same: "pretrain": "shared"), so 66 runs; "separate" trains two more.
TEST(Grid, PaperGridHas66RunsAndSharesThePretrainedUNet) {
  for (const std::string mode : {"shared", "separate"}) {
    Experiment exp = load_experiment(std::string(ORCH_SOURCE_DIR) + "/experiments/paper.json", {"pretrain=" + mode});
    auto runs = scheduler::expand(exp);
    const size_t n = mode == "shared" ? 66u : 68u;
    EXPECT_EQ(runs.size(), n) << mode;
    std::map<std::string, const scheduler::PlannedRun*> by_id;
    for (const auto& r : runs) by_id[r.id] = &r;
    EXPECT_EQ(by_id.size(), n) << "ids must be unique";
    int pretrain = 0;
    for (const auto& r : runs) {
      for (const auto& d : r.depends_on) ASSERT_TRUE(by_id.count(d)) << r.id << " depends on an unknown run";
      if (r.settings.stage == Stage::kPretrain) ++pretrain;
      const std::string dep = models::network_info(r.settings.model).dependency;
      if (dep.empty()) {
        EXPECT_TRUE(r.depends_on.empty()) << r.id;
        continue;
      }
      ASSERT_EQ(r.depends_on.size(), 1u) << r.id;
      const auto& d = *by_id[r.depends_on[0]];
      EXPECT_EQ(d.settings.model, dep);
      EXPECT_EQ(d.settings.dataset, r.settings.dataset);
      if (dep == "unet") {
        EXPECT_EQ(d.settings.stage, mode == "shared" ? Stage::kTrain : Stage::kPretrain);
        EXPECT_EQ(d.settings.seed, 1);
      } else {
        EXPECT_EQ(d.settings.seed, 1) << "every Rasterize seed starts from HybridGNet+IGSC seed 1 (rasterize_init shared)";
      }
    }
    EXPECT_EQ(pretrain, mode == "shared" ? 0 : 2);
    std::set<std::string> seen;  // every dependency comes first
    for (const auto& r : runs) {
      for (const auto& d : r.depends_on) EXPECT_TRUE(seen.count(d));
      seen.insert(r.id);
    }
  }
}

// rasterize_init: "shared" (the reference: one HybridGNet+IGSC checkpoint per data set for every Rasterize seed)
// or "per_seed"; the dependency, and so the Rasterize runs' ids, follow; nothing else changes.
TEST(Grid, RasterizeFineTunesOneSharedRunOrItsOwnSeeds) {
  const std::string paper = std::string(ORCH_SOURCE_DIR) + "/experiments/paper.json";
  auto shared = scheduler::expand(load_experiment(paper));
  auto per_seed = scheduler::expand(load_experiment(paper, {"rasterize_init=per_seed"}));
  ASSERT_EQ(shared.size(), per_seed.size());
  std::map<std::string, const scheduler::PlannedRun*> by_id;
  for (const auto& r : shared) by_id[r.id] = &r;
  for (const auto& r : per_seed) by_id[r.id] = &r;
  int rasterize = 0;
  for (size_t i = 0; i < shared.size(); ++i) {
    const auto &a = shared[i], &b = per_seed[i];
    ASSERT_EQ(a.settings.model, b.settings.model);
    if (a.settings.model != "rasterize") {
      EXPECT_EQ(a.id, b.id) << "only Rasterize changes";
      continue;
    }
    ++rasterize;
    const auto& from_shared = *by_id.at(a.depends_on.at(0));
    const auto& from_own = *by_id.at(b.depends_on.at(0));
    EXPECT_EQ(from_shared.settings.model, "hybridgnet_igsc");
    EXPECT_EQ(from_shared.settings.seed, 1);
    EXPECT_EQ(from_own.settings.seed, b.settings.seed);
    EXPECT_EQ(a.id == b.id, a.settings.seed == 1) << "seed 1 starts from the same run either way";
  }
  EXPECT_EQ(rasterize, 6);
  EXPECT_THROW(load_experiment(paper, {"rasterize_init=nope"}), InputError);
}

// pretrain_training: the frozen UNet's own recipe (with pretrain "separate"); the grid's UNet runs keep theirs.
TEST(Grid, TheFrozenUNetCanHaveARecipeOfItsOwn) {
  const std::string paper = std::string(ORCH_SOURCE_DIR) + "/experiments/paper.json";
  auto plain = scheduler::expand(load_experiment(paper, {"pretrain=separate"}));
  auto own = scheduler::expand(load_experiment(paper, {"pretrain=separate", "pretrain_training.epochs=1500",
                                                       "pretrain_training.weight_decay=0"}));
  ASSERT_EQ(plain.size(), own.size());
  int pretrain = 0;
  for (size_t i = 0; i < own.size(); ++i) {
    if (own[i].settings.stage == Stage::kPretrain) {
      ++pretrain;
      EXPECT_EQ(own[i].settings.training.epochs, 1500);
      EXPECT_EQ(own[i].settings.training.weight_decay, 0);
      EXPECT_NE(own[i].id, plain[i].id);
    } else if (own[i].settings.model == "unet") {
      EXPECT_EQ(own[i].id, plain[i].id) << "the grid's UNet runs keep the grid's recipe";
    }
  }
  EXPECT_EQ(pretrain, 2);
  EXPECT_THROW(load_experiment(paper, {"pretrain_training.epochs=1500"}), InputError) << "needs pretrain separate";
  EXPECT_THROW(load_experiment(paper, {"pretrain=separate", "pretrain_training.epochz=1"}), InputError);
}

TEST(Grid, IdsAreStableAndChangeOnlyWithWhatTheyTouch) {
  TempDir t;
  Experiment a = tiny_experiment(t / "ws");
  auto ra = scheduler::expand(a);
  auto rb = scheduler::expand(tiny_experiment(t / "ws"));
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i].id, rb[i].id);
  // Threads do not change results' identity; a network option changes only that network (and what depends on it).
  nlohmann::json j = a.raw;
  j["training"]["threads"] = 2;
  j["networks"] = {{"hybridgnet", {{"cheb_k", 3}}}, {"unet", nlohmann::json::object()}, {"ours", nlohmann::json::object()},
                   {"rasterize", nlohmann::json::object()}};
  auto rc = scheduler::expand(parse_experiment(j, "x.json"));
  ASSERT_EQ(rc.size(), ra.size());
  auto key = [](const scheduler::PlannedRun& r) {
    return r.settings.dataset + "/" + r.settings.model + "/" + std::to_string(r.settings.seed) + "/" + choice_name(r.settings.stage);
  };
  std::map<std::string, std::string> changed;
  for (const auto& r : rc) changed[key(r)] = r.id;
  for (const auto& r : ra) {
    ASSERT_TRUE(changed.count(key(r)));
    if (r.settings.model == "hybridgnet") EXPECT_NE(r.id, changed[key(r)]);
    else EXPECT_EQ(r.id, changed[key(r)]) << r.id;
  }
  // The run's settings survive the store's JSON.
  RunSettings back = RunSettings::from_json(ra[0].settings.to_json(), "test");
  EXPECT_EQ(back.id(), ra[0].id);
  EXPECT_THROW(RunSettings::from_json(nlohmann::json{{"experiment", "x"}}, "test"), InputError);
  EXPECT_FALSE(is_safe_run_id("x\"; touch /tmp/pwned; \""));
  EXPECT_TRUE(is_safe_run_id(ra[0].id));
}

TEST(Trainer, SameSeedSameWeightsAndStopResumeIsBitIdentical) {
  TempDir t;
  const std::string ws1 = t / "ws1", ws2 = t / "ws2";
  Experiment e1 = tiny_experiment(ws1, 3), e2 = tiny_experiment(ws2, 3);
  auto c1 = prepared_chain(e1), c2 = prepared_chain(e2);
  ASSERT_EQ(c1.back().id, c2.back().id);
  ASSERT_EQ(work(ws1, c1.back().id), 0);
  // Stopped after 3 steps (mid-epoch: 14 training images are 4 batches), again after 5, then finished.
  ASSERT_EQ(work(ws2, c2.back().id, 3), kExitRequeue);
  {
    Store s(store_of(ws2));
    EXPECT_EQ(RunsTable(s).run(c2.back().id)->state, "queued");
  }
  ASSERT_EQ(work(ws2, c2.back().id, 5), kExitRequeue);
  ASSERT_EQ(work(ws2, c2.back().id), 0);

  auto p1 = best_parameters(ws1, c1.back()), p2 = best_parameters(ws2, c2.back());
  ASSERT_EQ(p1.size(), p2.size());
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i])) << "parameter " << i;
  Predictions a = read_predictions(predictions_of(ws1, c1.back().id));
  Predictions b = read_predictions(predictions_of(ws2, c2.back().id));
  ASSERT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.points, b.points);
  for (size_t i = 0; i < a.masks.size(); ++i) EXPECT_EQ(cv::countNonZero(a.masks[i] != b.masks[i]), 0);
  Store s1(store_of(ws1)), s2(store_of(ws2));
  auto m1 = MetricsTable(s1).test_metrics(c1.back().id), m2 = MetricsTable(s2).test_metrics(c2.back().id);
  ASSERT_EQ(m1.size(), m2.size());
  for (size_t i = 0; i < m1.size(); ++i) EXPECT_EQ(m1[i].dice, m2[i].dice);
  auto e1m = MetricsTable(s1).epoch_metrics(c1.back().id), e2m = MetricsTable(s2).epoch_metrics(c2.back().id);
  ASSERT_EQ(e1m.size(), 3u);
  ASSERT_EQ(e2m.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(e1m[i].train_loss, e2m[i].train_loss) << "epoch " << i + 1;
    EXPECT_EQ(e1m[i].val_criterion, e2m[i].val_criterion);
  }
  EXPECT_EQ(s2.count("attempts"), 3);
}

TEST(Trainer, LearningRateFollowsTheReferenceScheduleUnlessOverridden) {
  TrainingSpec t;
  EXPECT_EQ(runner::lr_schedule("ours", t), (std::pair<int, double>{50, 0.9}));
  EXPECT_EQ(runner::lr_schedule("unet", t), (std::pair<int, double>{3000, 0.1}));
  t.lr_step_epochs = 25;
  EXPECT_EQ(runner::lr_schedule("unet", t), (std::pair<int, double>{25, 0.1}));
  t.lr_gamma = 0.5;
  EXPECT_EQ(runner::lr_schedule("hybridgnet", t), (std::pair<int, double>{25, 0.5}));
  EXPECT_DOUBLE_EQ(runner::learning_rate_at("hybridgnet", t, 49), t.learning_rate * 0.5);
  EXPECT_DOUBLE_EQ(runner::learning_rate_at("hybridgnet", t, 50), t.learning_rate * 0.25);
  TrainingSpec c;  // cosine over 100 epochs: full at 0, half at 50, near 0 at the last epoch
  c.epochs = 100;
  c.lr_decay = LrDecay::kCosine;
  EXPECT_DOUBLE_EQ(runner::learning_rate_at("ours", c, 0), c.learning_rate);
  EXPECT_NEAR(runner::learning_rate_at("ours", c, 50), c.learning_rate / 2, 1e-15);
  EXPECT_LT(runner::learning_rate_at("ours", c, 99), c.learning_rate * 0.001);
  // Through the worker: halving every epoch shows in the store's per-epoch learning rate.
  TempDir d;
  const std::string ws = d / "ws";
  Experiment e = tiny_experiment(ws, 3);
  nlohmann::json j = e.raw;
  j["training"]["lr_step_epochs"] = 1;
  j["training"]["lr_gamma"] = 0.5;
  e = parse_experiment(j, "tiny.json");
  auto chain = prepared_chain(e);
  ASSERT_EQ(work(ws, chain.back().id), 0);
  Store st(store_of(ws));
  auto em = MetricsTable(st).epoch_metrics(chain.back().id);
  ASSERT_EQ(em.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(em[i].learning_rate, 1e-4 * std::pow(0.5, i)) << "epoch " << i + 1;
  // The worker records which BLAS LibTorch ran on (Debian's libtorch loads the libblas.so.3 alternative).
  EXPECT_FALSE(ProvenanceTable(st).of(chain.back().id)["blas"].empty());
}

// Metrics in the store equal metrics recomputed from predictions.h5 (points filled for point networks, the
// label masks for dense ones), and dependencies are found through the store.
TEST(Worker, StoreMatchesPredictionsAndDependenciesResolve) {
  TempDir t;
  const std::string ws = t / "ws";
  Experiment e = tiny_experiment(ws, 1);
  auto chain = prepared_chain(e, "ours", 2);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].settings.model, "unet");
  EXPECT_EQ(chain[0].settings.seed, 1) << "the grid's own UNet of the first seed is the pretrained one";
  EXPECT_THROW(work(ws, chain[1].id), InputError) << "the UNet is not trained yet";
  ASSERT_EQ(work(ws, chain[0].id), 0);
  ASSERT_EQ(work(ws, chain[1].id), 0);
  EXPECT_EQ(work(ws, chain[1].id), 0) << "a done run is not run again";

  DatasetReader data(dataset_path(ws, "d"));
  const auto layout = OrganLayout::of(DatasetKind::kLungsHeart);
  std::map<std::string, int> index_of;
  for (int i = 0; i < data.info().count; ++i) index_of[data.info().ids[i]] = i;
  Store store(store_of(ws));
  size_t total_images = 0;
  for (const auto& r : chain) {
    Predictions p = read_predictions(predictions_of(ws, r.id));
    const bool dense = models::network_info(r.settings.model).evaluate_dense;
    EXPECT_EQ(p.evaluated, dense ? "dense" : "points");
    EXPECT_EQ(p.points.empty(), dense);
    std::map<std::pair<std::string, std::string>, TestMetric> stored;
    for (const auto& m : MetricsTable(store).test_metrics(r.id)) stored[{m.image_id, m.organ}] = m;
    ASSERT_EQ(stored.size(), p.ids.size() * 2);
    for (size_t i = 0; i < p.ids.size(); ++i) {
      Sample s = data.read(index_of.at(p.ids[i]));
      auto truth = organ_masks_from_labels(layout, s.mask);
      auto pred = dense ? organ_masks_from_labels(layout, p.masks[i])
                        : organ_masks_from_points(layout, denormalise_points(p.points[i], p.size), p.size);
      for (size_t o = 0; o < 2; ++o) {
        OverlapMetrics m = compare_masks(pred[o], truth[o]);
        const TestMetric& st = stored.at({p.ids[i], o == 0 ? "lungs" : "heart"});
        EXPECT_EQ(st.dice, m.dice);
        EXPECT_EQ(st.jaccard, m.jaccard);
        if (std::isnan(m.hausdorff_mm)) EXPECT_TRUE(std::isnan(st.hausdorff_mm));
        else EXPECT_EQ(st.hausdorff_mm, m.hausdorff_mm);
      }
    }
    total_images += p.ids.size();
    auto prov = ProvenanceTable(store).of(r.id);
    EXPECT_EQ(prov["communicator"], "single");
    EXPECT_FALSE(prov["git_commit"].empty());
  }
  EXPECT_EQ(store.count("inference_times"), static_cast<int64_t>(total_images)) << "one time per test image and run";
}

// rasterize_init "shared" (the default): Rasterize seed 2 fine-tunes HybridGNet+IGSC seed 1's best checkpoint.
// After one step (lr 1e-4, Adam) its weights are within a step of that checkpoint's.
TEST(Worker, EveryRasterizeSeedStartsFromTheSharedHybridGNetIgscRun) {
  TempDir t;
  const std::string ws = t / "ws";
  Experiment e = tiny_experiment(ws, 1);
  auto chain = prepared_chain(e, "rasterize", 2);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].settings.model, "hybridgnet_igsc");
  EXPECT_EQ(chain[0].settings.seed, 1);
  ASSERT_EQ(work(ws, chain[0].id), 0);
  ASSERT_EQ(work(ws, chain[1].id, 1), kExitRequeue);  // one step, checkpointed
  const auto start = best_parameters(ws, chain[0]);
  auto numbered = runner::CheckpointSeries(WorkspaceLayout(ws).checkpoints(chain[1].id)).list();
  ASSERT_FALSE(numbered.empty());
  models::ModelConfig c;
  c.kind = chain[1].settings.kind;
  c.size = chain[1].settings.size;
  auto net = models::create_model("rasterize", c);
  runner::load_weights(numbered.back(), *net);
  const auto after = net->parameters();
  ASSERT_EQ(after.size(), start.size());
  double worst = 0;
  for (size_t i = 0; i < after.size(); ++i)
    worst = std::max(worst, (after[i] - start[i]).abs().max().item<double>());
  EXPECT_LT(worst, 5e-4) << "more than one Adam step away from HybridGNet+IGSC seed 1's best weights";
}

TEST(Checkpoint, DependencyWeightsLoadWithPrefix) {
  TempDir t;
  models::ModelConfig c;
  c.kind = DatasetKind::kLungs;
  c.size = 64;
  auto unet = models::create_model("unet", c);
  torch::optim::Adam adam(unet->parameters(), torch::optim::AdamOptions(1e-3));
  runner::save_checkpoint(t / "u.h5", *unet, adam, {});
  auto joint = models::create_model("ours", c);
  runner::load_weights(t / "u.h5", *joint->dependency_module(), "unet.");
  auto a = unet->named_parameters(), b = joint->dependency_module()->named_parameters();
  for (const auto& p : b) EXPECT_TRUE(torch::equal(p.value(), a["unet." + p.key()]));
  EXPECT_THROW(runner::load_weights(t / "u.h5", *joint->dependency_module(), "nothing."), Error);
}


// A disk that fills up: every write of a checkpoint fails as a full file system does (the Env of core/env.h).
class FullDisk : public Env {
 public:
  void write_file(const std::string& path, const void* data, size_t size) override {
    if (path.find("/checkpoints/") != std::string::npos && ++checkpoints > allowed)
      throw Error(path + ": write failed: No space left on device");
    Env::write_file(path, data, size);
  }
  int allowed = 0, checkpoints = 0;
};

TEST(Worker, AFullDiskDuringACheckpointFailsTheRunWithItsReasonAndLeavesNoTemporary) {
  TempDir t;
  const std::string ws = t / "ws";
  Experiment e = tiny_experiment(ws, 3);
  auto chain = prepared_chain(e);
  FullDisk disk;
  disk.allowed = 2;  // best.h5 and its copy of epoch 1 fit; the numbered checkpoint after it does not
  EXPECT_THROW(work(ws, chain.back().id, -1, -1, &disk), Error);
  Store st(store_of(ws));
  EXPECT_EQ(RunsTable(st).run(chain.back().id)->state, "failed");
  auto attempts = ClaimsTable(st).attempts(chain.back().id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_NE(attempts[0].reason.find("No space left on device"), std::string::npos) << attempts[0].reason;
  for (const auto& f : fs::directory_iterator(WorkspaceLayout(ws).checkpoints(chain.back().id)))
    EXPECT_EQ(f.path().string().find(".tmp-"), std::string::npos) << f.path();
  // With room again, the run resumes and finishes.
  ASSERT_EQ(work(ws, chain.back().id), 0);
}

// Write-ahead order: when the numbered checkpoint of an epoch is written, that epoch's row is already in the store.
// A worker killed between the two then resumes from the previous checkpoint and records the epoch again (one row
// per epoch); the other order lost the row of an epoch its checkpoint said was done (CI stop 17: 5 rows of 6).
class RowsBeforeCheckpoints : public Env {
 public:
  RowsBeforeCheckpoints(std::string store, std::string run) : store_(std::move(store)), run_(std::move(run)) {}
  void write_file(const std::string& path, const void* data, size_t size) override {
    long long epoch = 0, batch = 0;
    if (std::sscanf(fs::path(path).filename().string().c_str(), "ckpt-%lld-%lld.h5", &epoch, &batch) == 2 && batch == 0) {
      Store st(store_);
      std::set<int64_t> recorded;
      for (const auto& m : MetricsTable(st).epoch_metrics(run_)) recorded.insert(m.epoch);
      checked.push_back(epoch);
      if (!recorded.count(epoch)) unrecorded.push_back(epoch);
    }
    Env::write_file(path, data, size);
  }
  std::vector<int64_t> checked, unrecorded;

 private:
  std::string store_, run_;
};

TEST(Worker, AnEpochIsRecordedBeforeItsCheckpointIsWritten) {
  TempDir t;
  const std::string ws = t / "ws";
  Experiment e = tiny_experiment(ws, 3);
  auto chain = prepared_chain(e);
  RowsBeforeCheckpoints sink(store_of(ws), chain.back().id);
  const int code = work(ws, chain.back().id, -1, -1, &sink);
  ASSERT_EQ(code, 0);
  EXPECT_EQ(sink.checked, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(sink.unrecorded.empty()) << "checkpoints written before their epoch's row: " << sink.unrecorded.size();
}

// training.best_after_epoch: only later epochs may become best.h5 (the reference's UNet kept the best of epochs
// 1001-1500, its bestDice_1000.pt). Validation-only epochs before the window are recorded but never kept.
TEST(Trainer, TheBestCheckpointComesFromTheWindowAfterBestAfterEpoch) {
  TempDir t;
  for (int after : {0, 2}) {
    const std::string ws = t / ("ws" + std::to_string(after));
    nlohmann::json j = tiny_experiment(ws, 3).raw;
    j["training"]["best_after_epoch"] = after;
    j["training"]["learning_rate"] = 0.003;  // a lively start, so a later epoch is not simply always the best
    Experiment e = parse_experiment(j, "window.json");
    auto chain = prepared_chain(e);
    ASSERT_EQ(work(ws, chain.back().id), 0);
    h5::Handle f = h5::open_file((fs::path(WorkspaceLayout(ws).checkpoints(chain.back().id)) / kBestCheckpoint).string());
    const int64_t best_epoch = h5::get_attr_int(f, "best_epoch");
    Store st(store_of(ws));
    auto em = MetricsTable(st).epoch_metrics(chain.back().id);
    ASSERT_EQ(em.size(), 3u);
    size_t best = after;  // the lowest validation MSE among the eligible epochs
    for (size_t i = after; i < em.size(); ++i)
      if (em[i].val_criterion < em[best].val_criterion) best = i;
    EXPECT_EQ(best_epoch, static_cast<int64_t>(best) + 1) << "best_after_epoch " << after;
    EXPECT_GT(best_epoch, after);
  }
}

// training.early_stop: with a min_delta of 100 % no validation MSE can count as an improvement on the first, so a
// patience of 1 ends training after epoch 2 of 6; the run is evaluated and done. Stopped mid-way and resumed, it
// ends the same; and a trainer resumed from its final checkpoint trains no further epoch.
TEST(Trainer, EarlyStopEndsTrainingWhereItWouldAndAResumedRunTrainsNoFurther) {
  TempDir t;
  auto experiment = [&](const std::string& ws) {
    nlohmann::json j = tiny_experiment(ws, 6).raw;
    j["training"]["early_stop"] = {{"patience", 1}, {"min_delta", 1.0}};
    return parse_experiment(j, "early.json");
  };
  const std::string ws1 = t / "ws1", ws2 = t / "ws2";
  auto c1 = prepared_chain(experiment(ws1)), c2 = prepared_chain(experiment(ws2));
  const std::string id = c1.back().id;
  ASSERT_EQ(work(ws1, id), 0);
  ASSERT_EQ(work(ws2, id, 6), kExitRequeue);  // 4 steps per epoch: stopped in epoch 2
  ASSERT_EQ(work(ws2, id), 0);
  Store s1(store_of(ws1)), s2(store_of(ws2));
  EXPECT_EQ(RunsTable(s1).run(id)->state, "done");
  EXPECT_FALSE(MetricsTable(s1).test_metrics(id).empty());
  auto e1 = MetricsTable(s1).epoch_metrics(id), e2 = MetricsTable(s2).epoch_metrics(id);
  ASSERT_EQ(e1.size(), 2u) << "early stop after epoch 2 of 6";
  ASSERT_EQ(e2.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(e1[i].val_criterion, e2[i].val_criterion) << "epoch " << i + 1;
  auto p1 = best_parameters(ws1, c1.back()), p2 = best_parameters(ws2, c2.back());
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i])) << "parameter " << i;

  auto comm = runner::make_communicator(CommunicatorKind::kSingle, false);
  const WorkspaceLayout layout(ws1);
  runner::TrainerOptions to;
  to.settings = c1.back().settings;
  to.run_id = id;
  to.checkpoints_dir = layout.checkpoints(id);
  to.predictions_path = t / "unused.h5";
  to.dataset_path = layout.dataset("d");
  to.comm = comm.get();
  to.progress_bar = false;
  int epochs_trained = 0;
  to.on_epoch = [&](const runner::EpochRecord&) { ++epochs_trained; };
  runner::Trainer again(to);
  EXPECT_EQ(again.start_epoch(), 2);
  const runner::TrainOutcome out = again.train();
  EXPECT_TRUE(out.finished);
  EXPECT_TRUE(out.stopped_early);
  EXPECT_EQ(out.epoch, 2);
  EXPECT_EQ(epochs_trained, 0);
}

// Adding a network is a row in the catalogue and an entry in the registry; nothing else changes. Validation, the
// grid, the worker and the report pick it up from those two.
TEST(Catalogue, ATwelfthNetworkNeedsOnlyACatalogueRowAndARegistryEntry) {
  models::add_network({"hybridgnet_wide", "HybridGNet (wide)", "point", "point", "", models::DependencyRole::kNone, "",
                       50, 0.9, false, "mse", false, false});
  const models::ModelEntry& base = models::find_model("hybridgnet");
  models::add_model("hybridgnet_wide", base.default_latents, base.create, base.loss, base.criterion);

  TempDir t;
  const std::string ws = t / "ws";
  nlohmann::json j = tiny_experiment(ws, 1).raw;
  j["networks"] = {{"hybridgnet_wide", {{"latents", 32}}}, {"hybridgnet", nlohmann::json::object()}};
  Experiment e = parse_experiment(j, "twelve.json");
  models::validate_experiment_networks(e);
  auto grid = scheduler::expand(e);
  ASSERT_EQ(grid.size(), 4u);  // 2 networks x 2 seeds
  ensure_dataset(e, e.datasets[0], ws, 1, true);
  { Store st(store_of(ws)); scheduler::record_runs(st, grid); }
  for (const auto& r : grid) ASSERT_EQ(work(ws, r.id), 0) << r.id;
  Store st(store_of(ws));
  report::ReportOptions o;
  o.figures = false;
  o.formats = {ReportFormat::kMd};
  report::Report rep = report::make_report(e, grid, st, ws, o);
  EXPECT_NE(rep.markdown.find("| HybridGNet (wide) | point | point |"), std::string::npos) << rep.markdown;
  EXPECT_NE(rep.markdown.find("| HybridGNet | point | point |"), std::string::npos);
}

}  // namespace
}  // namespace orch
