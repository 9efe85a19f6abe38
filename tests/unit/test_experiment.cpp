#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/blas.h"
#include "core/errors.h"
#include "core/experiment.h"
#include "models/model_config.h"
#include "test_util.h"

using namespace orch;
using nlohmann::json;

namespace {
json demo() {
  return json::parse(R"({"name": "t", "workspace": "ws", "datasets": {
    "synth_lh": {"kind": "lh", "size": 64, "synthetic": {"count": 10, "seed": 3}},
    "real": {"kind": "l", "size": 128, "landmarks": "/x", "blank_images": true, "splits": ["/a", "/b"]}}})");
}
std::string error_of(const json& doc) {
  try {
    parse_experiment(doc, "exp.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Experiment, ParsesDatasets) {
  Experiment e = parse_experiment(demo(), "exp.json");
  EXPECT_EQ(e.name, "t");
  ASSERT_EQ(e.datasets.size(), 2u);
  const auto& s = e.dataset("synth_lh");
  ASSERT_TRUE(s.synthetic);
  EXPECT_EQ(s.synthetic->count, 10);
  EXPECT_EQ(s.synthetic->size, 64);
  EXPECT_EQ(e.dataset("real").splits.size(), 2u);
  EXPECT_THROW(e.dataset("nope"), InputError);
}

TEST(Experiment, ErrorsNameFileFieldAndValue) {
  json d = demo();
  d["datasets"]["synth_lh"]["synthetic"]["count"] = 1;
  std::string e = error_of(d);
  EXPECT_NE(e.find("exp.json"), std::string::npos) << e;
  EXPECT_NE(e.find("datasets.synth_lh.synthetic.count"), std::string::npos) << e;
  EXPECT_NE(e.find("= 1"), std::string::npos) << e;
  d = demo();
  d["datasets"]["synth_lh"]["kind"] = "lungs";
  e = error_of(d);
  EXPECT_NE(e.find("datasets.synth_lh.kind = \"lungs\""), std::string::npos) << e;
  d = demo();
  d["datasets"]["real"]["colour"] = 1;
  e = error_of(d);
  EXPECT_NE(e.find("datasets.real.colour"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown field"), std::string::npos) << e;
  d = demo();
  d["datasets"]["real"].erase("splits");
  EXPECT_NE(error_of(d).find("split"), std::string::npos);
  d = demo();
  d.erase("name");
  EXPECT_NE(error_of(d).find("name"), std::string::npos);
}

TEST(Experiment, OverridesApplyBeforeValidation) {
  json d = demo();
  apply_override(d, "datasets.synth_lh.synthetic.count=25");
  apply_override(d, "workspace=/tmp/elsewhere");
  Experiment e = parse_experiment(d, "exp.json");
  EXPECT_EQ(e.dataset("synth_lh").synthetic->count, 25);
  EXPECT_EQ(e.workspace, "/tmp/elsewhere");
  EXPECT_THROW(apply_override(d, "novalue"), InputError);
  apply_override(d, "datasets.synth_lh.size=\"big\"");
  EXPECT_NE(error_of(d).find("datasets.synth_lh.size"), std::string::npos);
}

TEST(Experiment, ShippedExperimentFilesParse) {
  for (const char* f : {"demo.json", "paper.json"}) {
    Experiment e = load_experiment(std::string(ORCH_FIXTURES_DIR) + "/../../experiments/" + f);
    EXPECT_FALSE(e.datasets.empty()) << f;
  }
}

TEST(Experiment, BadJsonNamesTheFile) {
  test::TempDir d;
  std::ofstream(d / "bad.json") << "{ \"name\": ";
  try {
    load_experiment(d / "bad.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
  }
}

TEST(Experiment, NetworksSeedsTrainingAndEvaluation) {
  json d = demo();
  d["networks"] = {{"ours", {{"latents", 32}}}, {"unet", json::object()}};
  d["seeds"] = {1, 2, 3};
  d["training"] = {{"epochs", 10}, {"batch_size", 2}, {"seed_mode", "reference"}};
  d["evaluation"] = {{"empty_hausdorff", "diagonal"}};
  Experiment e = parse_experiment(d, "exp.json");
  ASSERT_EQ(e.networks.size(), 2u);
  EXPECT_EQ(e.networks[0].id, "ours");
  EXPECT_EQ(e.networks[0].options["latents"], 32);
  EXPECT_EQ(e.seeds, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(e.training.epochs, 10);
  EXPECT_EQ(e.training.learning_rate, 1e-4);
  EXPECT_EQ(e.training.seed_mode, SeedMode::kReference);
  EXPECT_EQ(e.evaluation.empty_hausdorff, EmptyHausdorff::kDiagonal);
  d["seeds"] = {1, 1};
  EXPECT_NE(error_of(d).find("seeds"), std::string::npos);
  d["seeds"] = {1};
  d["training"]["epochs"] = 0;
  EXPECT_NE(error_of(d).find("training.epochs = 0"), std::string::npos) << error_of(d);
  d["training"]["epochs"] = 5;
  d["training"]["optimiser"] = "sgd";
  EXPECT_NE(error_of(d).find("training.optimiser"), std::string::npos);
}

TEST(Experiment, PaperGridIsTheReferenceSetting) {
  Experiment e = load_experiment(std::string(ORCH_FIXTURES_DIR) + "/../../experiments/paper.json");
  EXPECT_EQ(e.networks.size(), 11u);
  EXPECT_EQ(e.seeds, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(e.training.epochs, 2500);
  EXPECT_EQ(e.training.batch_size, 4);
  EXPECT_EQ(e.dataset("jsrt_padchest").size, 1024);
  EXPECT_EQ(e.dataset("montgomery_shenzhen").kind, DatasetKind::kLungs);
  models::validate_experiment_networks(e);
}

TEST(Experiment, UnknownOrDuplicateNetworksAreRejected) {
  json d = demo();
  d["networks"] = {"ours", "resnet"};
  Experiment e = parse_experiment(d, "exp.json");
  try {
    models::validate_experiment_networks(e);
    FAIL();
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what()).find("\"resnet\""), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("exp.json"), std::string::npos) << err.what();
  }
  d["networks"] = {{"ours", {{"latentz", 3}}}};
  EXPECT_THROW(models::validate_experiment_networks(parse_experiment(d, "exp.json")), InputError);
}

TEST(Experiment, LearningRateScheduleOverrides) {
  json d = demo();
  d["training"] = {{"lr_step_epochs", 25}, {"lr_gamma", 0.5}};
  d["networks"] = {{"ours", {{"training", {{"lr_gamma", 0.8}}}}}, {"unet", json::object()}};
  Experiment e = parse_experiment(d, "exp.json");
  EXPECT_EQ(e.training.lr_step_epochs, 25);
  EXPECT_EQ(e.training.lr_gamma, 0.5);
  TrainingSpec ours = e.networks[0].training_for(e.training, e.path);
  EXPECT_EQ(ours.lr_step_epochs, 25);
  EXPECT_EQ(ours.lr_gamma, 0.8);
  // Unset (0: the reference's per-network StepLR) they stay out of the JSON that run ids hash, so runs made
  // before the keys existed keep their ids; set, they are part of it.
  json plain = to_json(TrainingSpec());
  EXPECT_FALSE(plain.contains("lr_step_epochs"));
  EXPECT_FALSE(plain.contains("lr_gamma"));
  EXPECT_EQ(to_json(ours)["lr_step_epochs"], 25);
  EXPECT_EQ(training_from_json(to_json(ours), "x", "training").lr_gamma, 0.8);
  d["training"]["lr_gamma"] = 1.5;
  EXPECT_NE(error_of(d).find("training.lr_gamma = 1.5"), std::string::npos) << error_of(d);
  d["training"]["lr_gamma"] = 0.5;
  d["training"]["lr_step_epochs"] = -3;
  EXPECT_NE(error_of(d).find("training.lr_step_epochs = -3"), std::string::npos) << error_of(d);
}

TEST(Experiment, CosineDecayIsAChoiceThatExcludesTheStep) {
  json d = demo();
  d["networks"] = {{"ours", {{"training", {{"lr_decay", "cosine"}}}}}, {"unet", json::object()}};
  Experiment e = parse_experiment(d, "exp.json");
  EXPECT_EQ(e.networks[0].training_for(e.training, e.path).lr_decay, LrDecay::kCosine);
  EXPECT_EQ(e.networks[1].training_for(e.training, e.path).lr_decay, LrDecay::kStep);
  // The step (the default) stays out of the JSON run ids hash; a cosine is part of it and reads back.
  EXPECT_FALSE(to_json(TrainingSpec()).contains("lr_decay"));
  TrainingSpec cos = e.networks[0].training_for(e.training, e.path);
  EXPECT_EQ(to_json(cos)["lr_decay"], "cosine");
  EXPECT_EQ(training_from_json(to_json(cos), "x", "training").lr_decay, LrDecay::kCosine);
  d["training"] = {{"lr_decay", "linear"}};
  EXPECT_NE(error_of(d).find("training.lr_decay = \"linear\""), std::string::npos) << error_of(d);
  // A step inherited from the experiment's training contradicts a network's cosine: refused, named.
  d["training"] = {{"lr_step_epochs", 25}};
  const std::string err = error_of(d);
  EXPECT_NE(err.find("lr_decay"), std::string::npos) << err;
  EXPECT_NE(err.find("unset lr_step_epochs and lr_gamma"), std::string::npos) << err;
}

TEST(Experiment, EarlyStopIsOffUnlessSetAndValidated) {
  json d = demo();
  d["training"] = {{"early_stop", {{"patience", 20}, {"min_delta", 0.02}}}};
  d["networks"] = {{"ours", json::object()}, {"unet", {{"training", {{"early_stop", false}}}}}};
  Experiment e = parse_experiment(d, "exp.json");
  EXPECT_EQ(e.training.early_stop.patience, 20);
  EXPECT_EQ(e.training.early_stop.min_delta, 0.02);
  EXPECT_TRUE(e.networks[0].training_for(e.training, e.path).early_stop.enabled());
  EXPECT_FALSE(e.networks[1].training_for(e.training, e.path).early_stop.enabled());  // a network turns it off
  // Off, it stays out of the JSON that run ids hash (ids of runs made before it existed are kept); on, it is in.
  EXPECT_FALSE(to_json(TrainingSpec()).contains("early_stop"));
  EXPECT_EQ(to_json(e.training)["early_stop"]["patience"], 20);
  EXPECT_EQ(training_from_json(to_json(e.training), "x", "training").early_stop.min_delta, 0.02);
  EXPECT_EQ(training_from_json({{"early_stop", {{"patience", 5}}}}, "x", "training").early_stop.min_delta, 0.01);
  d["training"]["early_stop"] = {{"patience", 0}};
  EXPECT_NE(error_of(d).find("training.early_stop.patience = 0"), std::string::npos) << error_of(d);
  d["training"]["early_stop"] = {{"min_delta", 0.1}};
  EXPECT_NE(error_of(d).find("training.early_stop.patience"), std::string::npos) << error_of(d);
  d["training"]["early_stop"] = {{"patience", 3}, {"min_delta", 2}};
  EXPECT_NE(error_of(d).find("training.early_stop.min_delta = 2"), std::string::npos) << error_of(d);
  d["training"]["early_stop"] = {{"patience", 3}, {"patiance", 2}};
  EXPECT_NE(error_of(d).find("training.early_stop.patiance"), std::string::npos) << error_of(d);
  d["training"]["early_stop"] = 12;
  EXPECT_NE(error_of(d).find("training.early_stop = 12"), std::string::npos) << error_of(d);
}

TEST(Experiment, AugmentWarpsAreStepwiseUnlessSetAndOnlyThenInRunIds) {
  json d = demo();
  EXPECT_EQ(parse_experiment(d, "exp.json").training.augment_warps, AugmentWarps::kStepwise);
  EXPECT_FALSE(to_json(TrainingSpec()).contains("augment_warps"));  // ids of runs made before it existed are kept
  d["training"] = {{"augment_warps", "fused"}};
  Experiment e = parse_experiment(d, "exp.json");
  EXPECT_EQ(e.training.augment_warps, AugmentWarps::kFused);
  EXPECT_EQ(to_json(e.training)["augment_warps"], "fused");
  EXPECT_EQ(training_from_json(to_json(e.training), "x", "training").augment_warps, AugmentWarps::kFused);
  d["training"] = {{"augment_warps", "fast"}};
  EXPECT_NE(error_of(d).find("training.augment_warps"), std::string::npos) << error_of(d);
  EXPECT_NE(error_of(d).find("fast"), std::string::npos) << error_of(d);
}

TEST(Blas, TheReferenceBlasIsRecognisedByItsDebianPath) {
  EXPECT_TRUE(is_reference_blas("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"));
  EXPECT_FALSE(is_reference_blas("/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"));
  EXPECT_FALSE(is_reference_blas(""));
  // This binary loads a BLAS through OpenCV; scripts/setup installs OpenBLAS, which the alternatives system
  // then puts behind libblas.so.3 (for LibTorch too).
  const std::string blas = loaded_blas();
  ASSERT_FALSE(blas.empty());
  EXPECT_TRUE(std::filesystem::exists(blas)) << blas;
  EXPECT_FALSE(is_reference_blas(blas)) << blas << ": install libopenblas0-openmp (scripts/packages.txt)";
}

namespace {
std::string load_error(test::TempDir& d, const std::string& text, const std::vector<std::string>& sets = {}) {
  const std::string path = d / "exp.json";
  std::ofstream(path) << text;
  try {
    load_experiment(path, sets);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
const char* kMinimal = R"({"name": "t", "workspace": "ws", "datasets": {"d": {"kind": "lh", "synthetic": {}}}})";
}  // namespace

// Deeply nested input is refused before anything recurses over it (100,000 levels used to end in SIGSEGV).
TEST(Experiment, NestingIsBounded) {
  test::TempDir d;
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string e = load_error(d, R"({"name": "t", "description": )" + deep + "}");
  EXPECT_NE(e.find("exp.json"), std::string::npos) << e;
  EXPECT_NE(e.find("description"), std::string::npos) << e;
  EXPECT_NE(e.find("nested deeper than 256"), std::string::npos) << e;
  std::string ok(200, '[');  // within the bound: accepted (and then the experiment's own checks apply)
  EXPECT_EQ(load_error(d, std::string(kMinimal).insert(1, R"("description": )" + ok + std::string(200, ']') + ", ")), "");
  e = load_error(d, kMinimal, {"description=" + deep});
  EXPECT_NE(e.find("nested deeper than 256"), std::string::npos) << e;
  std::string long_key;
  for (int i = 0; i < 100000; ++i) long_key += "a.";
  e = load_error(d, kMinimal, {long_key + "b=1"});
  EXPECT_NE(e.find("key components"), std::string::npos) << e;
}

TEST(Experiment, DuplicateKeysAndHugeNumbersAreRefusedByField) {
  test::TempDir d;
  std::string e = load_error(d, R"({"name": "t", "workspace": "ws", "training": {"epochs": 3, "epochs": 7},
    "datasets": {"d": {"kind": "lh", "synthetic": {}}}})");
  EXPECT_NE(e.find("training.epochs"), std::string::npos) << e;
  EXPECT_NE(e.find("given twice"), std::string::npos) << e;
  e = load_error(d, R"({"name": "t", "datasets": {"d": {"kind": "lh", "size": 1e400, "synthetic": {}}}})");
  EXPECT_NE(e.find("datasets.d.size"), std::string::npos) << e;
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  e = load_error(d, R"({"name": "t", "seeds": [1, 2, -1e999], "datasets": {}})");
  EXPECT_NE(e.find("seeds[2]"), std::string::npos) << e;
  e = load_error(d, kMinimal, {"training.learning_rate=1e400"});  // not a JSON number: the text, refused by field
  EXPECT_NE(e.find("training.learning_rate = \"1e400\": expected a number"), std::string::npos) << e;
  e = load_error(d, R"({"name": "t", "datasets": {)");
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  EXPECT_EQ(e.find("[json.exception"), std::string::npos) << e;
}

// One rule for the names that become file names: no "..", no separators, no quotes, a length that fits.
TEST(Experiment, NamesFollowOneRule) {
  for (const std::string& bad : std::vector<std::string>{"../../x", "a/b", "x\"; touch y; \"", ".hidden", "-x", std::string(65, 'n'), "a b"}) {
    json doc = demo();
    doc["name"] = bad;
    std::string e = error_of(doc);
    EXPECT_NE(e.find("name"), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find("letters, digits"), std::string::npos) << bad << ": " << e;
    doc = demo();
    doc["datasets"][bad] = doc["datasets"]["synth_lh"];
    e = error_of(doc);
    EXPECT_NE(e.find("data set names use"), std::string::npos) << bad << ": " << e;
    doc = demo();
    doc["networks"] = json::array({bad});
    e = error_of(doc);
    EXPECT_NE(e.find("network names use"), std::string::npos) << bad << ": " << e;
  }
  json doc = demo();
  doc["name"] = std::string(64, 'n');
  EXPECT_EQ(error_of(doc), "");
}
