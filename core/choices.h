// How to add a choice: docs/extending.md.
// The settings with a fixed set of values, as enums, and each enum's spellings written once.
//
// An experiment file spells a choice as a string ("precision": "bf16"); the parser (core/experiment.cpp) turns it
// into the enum with `choice_from`, and a run's settings document writes it back with `choice_name`, so the
// spelling in a run's settings (and so its id) is the table's. Code compares enums, never strings. To add a
// choice: an enum here, its ChoiceTable with every value's spelling, then a field of that type in the spec that
// carries it (docs/extending.md). Values only; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "core/augment.h"
#include "core/distance_map.h"
#include "core/metrics.h"

namespace orch {

// Arithmetic on a GPU (training.precision, evaluation.precision): TF32 matmuls and convolutions (the reference's
// PyTorch 1.10 on an A100), plain float32, or autocast to bfloat16 with float32 weights and Adam state.
enum class Precision { kTf32, kFp32, kBf16 };
// training.seed_mode: the seed fixes everything, or is set after the network is built (the reference's trainers).
enum class SeedMode { kFull, kReference };
// training.nonfinite: a loss or gradient that is not finite stops the run, or its batch is skipped.
enum class NonFinite { kStop, kSkip };
// training.lr_decay: the step schedule (lr_step_epochs, lr_gamma) or a cosine from the learning rate to 0.
enum class LrDecay { kStep, kCosine };
// training.pipeline: how batches reach a GPU (pinned memory and a side stream, or plain copies).
enum class Pipeline { kOverlap, kPlain };
// training.device: CUDA when LibTorch sees it, the CPU, or CUDA required.
enum class DeviceChoice { kAuto, kCpu, kCuda };
// pretrain: the grid's first-seed UNet run is the frozen UNet when settings agree, or it is always a run of its own.
enum class PretrainMode { kShared, kSeparate };
// rasterize_init: every Rasterize seed fine-tunes seed 1's HybridGNet+IGSC run (the reference), or seed s's.
enum class RasterizeInit { kShared, kPerSeed };
// backend (or submit --backend): the local pool or Slurm job arrays.
enum class BackendKind { kLocal, kSlurm };
// report.hausdorff: mm at the paper's scale (0.35 mm per pixel of a 1024-px image), or at the working size.
enum class HausdorffScale { kPaper, kWorking };
// report.inference: synchronised mean after the first call, or as the reference timed it.
enum class InferenceTiming { kSynchronized, kReference };
// report.empty_mask: an image without a Hausdorff distance counts as its diagonal, is left out, or fails the report.
enum class EmptyMask { kWorst, kExclude, kFail };

template <class E>
struct ChoiceTable;  // static constexpr std::array<std::pair<E, const char*>, N> values

template <> struct ChoiceTable<Precision> {
  static constexpr std::array<std::pair<Precision, const char*>, 3> values{
      {{Precision::kTf32, "tf32"}, {Precision::kFp32, "fp32"}, {Precision::kBf16, "bf16"}}};
};
template <> struct ChoiceTable<SeedMode> {
  static constexpr std::array<std::pair<SeedMode, const char*>, 2> values{
      {{SeedMode::kFull, "full"}, {SeedMode::kReference, "reference"}}};
};
template <> struct ChoiceTable<NonFinite> {
  static constexpr std::array<std::pair<NonFinite, const char*>, 2> values{
      {{NonFinite::kStop, "stop"}, {NonFinite::kSkip, "skip"}}};
};
template <> struct ChoiceTable<Pipeline> {
  static constexpr std::array<std::pair<Pipeline, const char*>, 2> values{
      {{Pipeline::kOverlap, "overlap"}, {Pipeline::kPlain, "plain"}}};
};
template <> struct ChoiceTable<DeviceChoice> {
  static constexpr std::array<std::pair<DeviceChoice, const char*>, 3> values{
      {{DeviceChoice::kAuto, "auto"}, {DeviceChoice::kCpu, "cpu"}, {DeviceChoice::kCuda, "cuda"}}};
};
template <> struct ChoiceTable<PretrainMode> {
  static constexpr std::array<std::pair<PretrainMode, const char*>, 2> values{
      {{PretrainMode::kShared, "shared"}, {PretrainMode::kSeparate, "separate"}}};
};
template <> struct ChoiceTable<RasterizeInit> {
  static constexpr std::array<std::pair<RasterizeInit, const char*>, 2> values{
      {{RasterizeInit::kShared, "shared"}, {RasterizeInit::kPerSeed, "per_seed"}}};
};
template <> struct ChoiceTable<BackendKind> {
  static constexpr std::array<std::pair<BackendKind, const char*>, 2> values{
      {{BackendKind::kLocal, "local"}, {BackendKind::kSlurm, "slurm"}}};
};
template <> struct ChoiceTable<HausdorffScale> {
  static constexpr std::array<std::pair<HausdorffScale, const char*>, 2> values{
      {{HausdorffScale::kPaper, "1024px"}, {HausdorffScale::kWorking, "working"}}};
};
template <> struct ChoiceTable<InferenceTiming> {
  static constexpr std::array<std::pair<InferenceTiming, const char*>, 2> values{
      {{InferenceTiming::kSynchronized, "synchronized"}, {InferenceTiming::kReference, "reference"}}};
};
template <> struct ChoiceTable<EmptyMask> {
  static constexpr std::array<std::pair<EmptyMask, const char*>, 3> values{
      {{EmptyMask::kWorst, "worst"}, {EmptyMask::kExclude, "exclude"}, {EmptyMask::kFail, "fail"}}};
};
// A metric of the report: per test image and organ (dice, jaccard, hausdorff_mm), or per run (inference_s).
// report.median_metric chooses among the first three; claims may name all four.
enum class Metric { kDice, kJaccard, kHausdorff, kInference };
template <> struct ChoiceTable<Metric> {
  static constexpr std::array<std::pair<Metric, const char*>, 4> values{
      {{Metric::kDice, "dice"}, {Metric::kJaccard, "jaccard"}, {Metric::kHausdorff, "hausdorff_mm"},
       {Metric::kInference, "inference_s"}}};
};
// Whether higher values of `m` are better (Dice, Jaccard) or lower (Hausdorff distance, inference time).
constexpr bool higher_is_better(Metric m) { return m == Metric::kDice || m == Metric::kJaccard; }
// report.formats, report --format: the files the report writes.
enum class ReportFormat { kMd, kCsv, kTex, kHtml };
template <> struct ChoiceTable<ReportFormat> {
  static constexpr std::array<std::pair<ReportFormat, const char*>, 4> values{
      {{ReportFormat::kMd, "md"}, {ReportFormat::kCsv, "csv"}, {ReportFormat::kTex, "tex"}, {ReportFormat::kHtml, "html"}}};
};
// train/worker --communicator: how ranks reduce gradients (runner/communicator.h).
enum class CommunicatorKind { kAuto, kSingle, kMpi, kNccl };
template <> struct ChoiceTable<CommunicatorKind> {
  static constexpr std::array<std::pair<CommunicatorKind, const char*>, 4> values{
      {{CommunicatorKind::kAuto, "auto"}, {CommunicatorKind::kSingle, "single"}, {CommunicatorKind::kMpi, "mpi"},
       {CommunicatorKind::kNccl, "nccl"}}};
};
// A run's stage: a run of the grid, or the UNet the joint networks freeze trained as a run of its own.
enum class Stage { kTrain, kPretrain };
template <> struct ChoiceTable<Stage> {
  static constexpr std::array<std::pair<Stage, const char*>, 2> values{{{Stage::kTrain, "train"}, {Stage::kPretrain, "pretrain"}}};
};
// A claim (core/claims.h): one side beats the other, or the two are within a margin of each other.
enum class ClaimKind { kBetter, kSimilar };
// What the grid says of a claim or of one of its comparisons (report/claims.h).
enum class Verdict { kSupported, kContradicted, kInconclusive, kNotEvaluated };
template <> struct ChoiceTable<ClaimKind> {
  static constexpr std::array<std::pair<ClaimKind, const char*>, 2> values{
      {{ClaimKind::kBetter, "better"}, {ClaimKind::kSimilar, "similar"}}};
};
template <> struct ChoiceTable<Verdict> {
  static constexpr std::array<std::pair<Verdict, const char*>, 4> values{
      {{Verdict::kSupported, "supported"}, {Verdict::kContradicted, "contradicted"},
       {Verdict::kInconclusive, "inconclusive"}, {Verdict::kNotEvaluated, "not evaluated"}}};
};
template <> struct ChoiceTable<MaskResampling> {
  static constexpr std::array<std::pair<MaskResampling, const char*>, 2> values{
      {{MaskResampling::kReference, "reference"}, {MaskResampling::kNearest, "nearest"}}};
};
template <> struct ChoiceTable<LrDecay> {
  static constexpr std::array<std::pair<LrDecay, const char*>, 2> values{
      {{LrDecay::kStep, "step"}, {LrDecay::kCosine, "cosine"}}};
};
template <> struct ChoiceTable<AugmentWarps> {
  static constexpr std::array<std::pair<AugmentWarps, const char*>, 2> values{
      {{AugmentWarps::kStepwise, "stepwise"}, {AugmentWarps::kFused, "fused"}}};
};
template <> struct ChoiceTable<EmptyHausdorff> {
  static constexpr std::array<std::pair<EmptyHausdorff, const char*>, 2> values{
      {{EmptyHausdorff::kNaN, "nan"}, {EmptyHausdorff::kDiagonal, "diagonal"}}};
};
template <> struct ChoiceTable<EdgeSet> {
  static constexpr std::array<std::pair<EdgeSet, const char*>, 2> values{
      {{EdgeSet::kCanny, "canny"}, {EdgeSet::kBoundary, "boundary"}}};
};

// The spelling of `v` in experiment files and run settings.
template <class E>
const char* choice_name(E v) {
  for (const auto& [e, name] : ChoiceTable<E>::values)
    if (e == v) return name;
  return "?";
}

// The value spelled `text`; nullopt when it is none of the table's.
template <class E>
std::optional<E> choice_from(const std::string& text) {
  for (const auto& [e, name] : ChoiceTable<E>::values)
    if (text == name) return e;
  return std::nullopt;
}

// "expected one of \"tf32\", \"fp32\", \"bf16\"": the text of an error about a value of E.
template <class E>
std::string choice_expectation() {
  std::string list;
  for (const auto& [e, name] : ChoiceTable<E>::values) list += (list.empty() ? "\"" : ", \"") + std::string(name) + "\"";
  return "expected one of " + list;
}

}  // namespace orch
