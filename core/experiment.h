// Users' documentation: docs/data.md (experiment files).
// Experiment files (experiments/*.json): the data sets, the networks of the grid with their options, the seeds,
// and the training and evaluation settings (resources and backend are read by the scheduler).
//
// Parsing validates eagerly: an unknown field, a wrong type or an out-of-range value throws an InputError
// naming the file, the field's path (e.g. datasets.synth_lh.synthetic.count) and the value. `--set key=value`
// overrides apply to the JSON before validation, with dotted keys; the value is read as JSON when it parses
// as JSON, else as a string. Relative paths in the file are resolved against the current directory.
// Values only; thread-safe to share once built.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/choices.h"
#include "core/claims.h"
#include "core/organs.h"
#include "core/synth/synth_dataset.h"

namespace orch {

struct DatasetSpec {
  std::string name;
  nlohmann::json resources = nlohmann::json::object();  // scheduler resources for this data set's runs
  DatasetKind kind = DatasetKind::kLungsHeart;
  int size = 1024;  // working size of the prepared data set
  std::optional<SynthOptions> synthetic;  // generate first, then prepare
  // Prepared from files (spec §1.1): landmarks folder plus image sources.
  std::string landmarks;
  std::vector<std::string> images, raw_jsrt, raw_png, splits;
  std::optional<uint64_t> split_seed;
  bool blank_images = false;
  EdgeSet edges = EdgeSet::kCanny;  // distance-map contour: canny (reference) or boundary
};

// Early stopping ("early_stop": {"patience": 20, "min_delta": 0.01}; not in the reference, which trains every
// epoch: off unless set). After each validation, the criterion counts as improved when it beats the last improved
// value by more than min_delta of that value (0.01: 1 %); training ends, as if its epochs were done, once
// `patience` epochs have passed since the last improvement. Validations before best_after_epoch do not count.
struct EarlyStop {
  int patience = 0;         // epochs; 0: off
  double min_delta = 0.01;  // relative
  bool enabled() const { return patience > 0; }
};

// Training settings (spec §5); the learning-rate schedule and the validation criterion are each network's own.
struct TrainingSpec {
  int epochs = 2500;
  int batch_size = 4;
  double learning_rate = 1e-4;
  double weight_decay = 1e-5;  // coupled L2, as torch's Adam
  int validate_every = 1;      // epochs
  int threads = 0;             // torch threads per rank (0: all cores / ranks)
  // Threads augmenting batches (0: 2 on the CPU; on a GPU the job's cores less one, at least 2: one 1024² sample
  // costs about 31 ms of a core, a bf16 step a few tens of ms).
  int loader_threads = 0;
  bool augment = true;
  MaskResampling mask_resampling = MaskResampling::kReference;  // or "nearest" (core/augment.h)
  // "stepwise": the reference's resize, crop or pad, then rotation (about 30 ms of a core per 1024² sample);
  // "fused": one composed warp of all channels (about 10 ms; differs by interpolation error; core/augment.h).
  AugmentWarps augment_warps = AugmentWarps::kStepwise;
  // "full": the seed fixes initial weights, data order, augmentation and VAE noise. "reference": the seed is set
  // after the network is built, as the reference's trainers do, so initial weights come from an unseeded RNG.
  SeedMode seed_mode = SeedMode::kFull;
  int checkpoint_every = 1;    // epochs between numbered checkpoints (a signal always checkpoints at once)
  int keep_checkpoints = 3;    // numbered checkpoints kept (plus best.h5)
  DeviceChoice device = DeviceChoice::kAuto;  // auto (CUDA when available), cpu or cuda
  // Step learning-rate schedule lr·gamma^floor(epoch / step). 0 means the reference's for the network: StepLR
  // 50 epochs / 0.9 for the graph networks, 3000 / 0.1 for the UNets (spec §5). Short runs (the demo) may want a
  // faster decay; the reference's 2500-epoch schedule barely decays within 100 epochs.
  int lr_step_epochs = 0;
  double lr_gamma = 0;
  // "step" (the above; the reference's) or "cosine": lr·½(1 + cos(π·epoch/epochs)) at each epoch, from the
  // learning rate to near 0 at the last epoch (PyTorch's CosineAnnealingLR, T_max = epochs, eta_min 0); then
  // lr_step_epochs and lr_gamma must be unset. For short grids that should end annealed (the demo).
  LrDecay lr_decay = LrDecay::kStep;
  // Only epochs after this one may become best.h5 (0: any). The reference's pretrained UNet for JSRT+Padchest
  // was the best of epochs 1001-1500 of a 1500-epoch run (its bestDice_1000.pt; spec §5).
  int best_after_epoch = 0;
  // A loss or gradient that is not finite: "stop" the run at that step (the default), or "skip" the batch.
  NonFinite nonfinite = NonFinite::kStop;
  // Arithmetic on a GPU: "tf32" (TF32 matmuls and convolutions: what the reference's PyTorch 1.10 did on its
  // A100, the default), "fp32" (TF32 off), "bf16" (autocast to bfloat16; float32 weights and Adam state).
  Precision precision = Precision::kTf32;
  // How batches reach a GPU: "overlap" (pinned host memory, copies on a side stream while the previous step
  // computes) or "plain" (pageable copies on the compute stream, as before). The same values either way.
  Pipeline pipeline = Pipeline::kOverlap;
  bool cudnn_benchmark = true;  // cuDNN autotuning on a GPU (input shapes are fixed within a run)
  EarlyStop early_stop;
};

struct EvaluationSpec {
  double spacing_mm = 0.35;
  EmptyHausdorff empty_hausdorff = EmptyHausdorff::kNaN;  // or "diagonal" (core/metrics.h)
  Precision precision = Precision::kTf32;                 // as TrainingSpec::precision, for the test split's forward passes
};

// How the report computes values (the experiment's "report" block; `orchestrator report`'s flags override it).
// report/report_model.h says what each means.
struct ReportSettings {
  Metric median_metric = Metric::kDice;  // dice, jaccard or hausdorff_mm (not inference_s)
  HausdorffScale hausdorff = HausdorffScale::kPaper;
  InferenceTiming inference = InferenceTiming::kSynchronized;
  EmptyMask empty_mask = EmptyMask::kWorst;
  void validate() const;  // InputError naming the setting
};

// The "report" block: formats written, settings, figure images.
struct ReportSpec {
  std::vector<ReportFormat> formats{ReportFormat::kMd, ReportFormat::kCsv, ReportFormat::kTex, ReportFormat::kHtml};
  ReportSettings settings;
  int figure_images = 3;  // test images in the qualitative figure
  std::vector<ClaimSpec> claims;  // the experiment's own claims, checked beside the paper's (core/claims.h)
};

// A sweep axis ("sweep": {"training.learning_rate": [1e-4, 3e-4]}): a key as --set takes it and its values. The
// grid is data sets x networks x seeds x the product of the axes' values (scheduler/grid.h); a value is part of
// the settings of the runs it changes, and so of their ids. Keys under training, evaluation, networks.<id> (the
// object form of networks), pretrain, pretrain_training and rasterize_init; each value is validated by parsing the
// experiment with it set.
struct SweepAxis {
  std::string key;
  std::vector<nlohmann::json> values;
};

// One point of a sweep: a value for each axis, in the axes' order (the keys' alphabetical order).
struct SweepPoint {
  std::vector<std::pair<std::string, nlohmann::json>> values;
  // "training.learning_rate=0.0001 training.lr_gamma=0.5"; "" for the one point of an experiment without a sweep.
  std::string label() const;
  // The value at `key` as JSON text ("0.0001"), or "" when the point has no such axis.
  std::string value_text(const std::string& key) const;
};

// Overrides of a network on one data set ("networks": {"unet": {"datasets": {"jsrt_padchest": {...}}}}).
struct NetworkDatasetOverrides {
  nlohmann::json training = nlohmann::json::object();
  nlohmann::json resources = nlohmann::json::object();
};

// A network of the grid: a registry id (models/registry.h; checked there) and its option overrides.
struct NetworkSpec {
  std::string id;
  nlohmann::json options = nlohmann::json::object();  // validated by models::model_config_from_json
  // Per-network training overrides ("networks": {"rasterize": {"training": {"learning_rate": 1e-4}}}), merged
  // over the experiment's training block for this network's runs; validated with it.
  nlohmann::json training = nlohmann::json::object();
  nlohmann::json resources = nlohmann::json::object();  // scheduler resources for this network's runs
  std::map<std::string, NetworkDatasetOverrides> datasets;  // per data set, merged over the two above
  // The experiment's training block, then this network's, then its block for `dataset` (when given).
  TrainingSpec training_for(const TrainingSpec& base, const std::string& file, const std::string& dataset = "") const;
};


struct Experiment {
  std::string path;  // the file it came from
  std::string name;
  std::string workspace;
  std::vector<DatasetSpec> datasets;
  std::vector<NetworkSpec> networks;  // empty: the stage runs only data preparation
  std::vector<int64_t> seeds{1, 2, 3};
  // The UNet the joint networks freeze: "shared" (default) makes the UNet run of the first seed play that role
  // when its settings equal a pretraining run's (no redundant run); "separate" always trains its own.
  PretrainMode pretrain = PretrainMode::kShared;
  // The recipe of the UNet the joint networks freeze, when it is a run of its own (pretrain "separate"): training
  // keys merged over that network's training for the pretraining runs only. Whether the reference's frozen UNet
  // came from its own trainer or HybridGNet's (another schedule and length) is not known (spec §5, §7.8); this lets
  // either be tried. Empty: the grid's UNet recipe.
  nlohmann::json pretrain_training = nlohmann::json::object();
  // The run a fine-tuned network (Rasterize) starts from: "shared" (the default, the reference: every seed of a data
  // set fine-tunes the same HybridGNet+IGSC run, the first seed's, as the reference's one --load checkpoint per data
  // set, spec §3.11) or "per_seed" (seed s fine-tunes HybridGNet+IGSC seed s).
  RasterizeInit rasterize_init = RasterizeInit::kShared;
  BackendKind backend = BackendKind::kLocal;  // where submit sends runs (submit --backend overrides)
  TrainingSpec training;
  EvaluationSpec evaluation;
  ReportSpec report;
  std::vector<SweepAxis> sweep;  // empty: the experiment is one point
  nlohmann::json raw;  // the validated document, overrides applied

  // Every point of the sweep, the last axis varying fastest; one empty point without a sweep.
  std::vector<SweepPoint> sweep_points() const;
  // The experiment at one point: its values set as --set sets them, the sweep removed, parsed again.
  Experiment at(const SweepPoint& point) const;

  const DatasetSpec& dataset(const std::string& name) const;  // throws InputError if unknown
  // The frozen UNet's training when it is a run of its own: pretrain_training merged over `unet_training` (that
  // network's training for the data set). InputError names pretrain_training's field.
  TrainingSpec pretraining_recipe(const TrainingSpec& unet_training) const;
};

// An integer JSON value as int64, refusing unsigned values beyond INT64_MAX and non-integers.
bool json_int64(const nlohmann::json& v, int64_t* out);
bool is_valid_utf8(const std::string& s);

// Applies "a.b.c=value" to a JSON document (creates objects on the way). Throws InputError on a bad form.
void apply_override(nlohmann::json& doc, const std::string& assignment);
// Sets the dotted `key` of `doc` to `value` as apply_override does; errors name `field` and show `shown`.
void set_key(nlohmann::json& doc, const std::string& key, const nlohmann::json& value, const std::string& field,
             const std::string& shown);

// The "training" and "evaluation" blocks alone (the worker reads them back from a run's settings); errors name
// `file` and fields under `where`. to_json writes every field, so a settings document is complete.
TrainingSpec training_from_json(const nlohmann::json& block, const std::string& file, const std::string& where);
EvaluationSpec evaluation_from_json(const nlohmann::json& block, const std::string& file, const std::string& where);
nlohmann::json to_json(const TrainingSpec& t);
nlohmann::json to_json(const EvaluationSpec& e);

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});
Experiment parse_experiment(const nlohmann::json& doc, const std::string& path);

}  // namespace orch
