// Trainer::evaluate: the best checkpoint on the test split, image by image (metrics, inference times, predictions;
// runner/trainer.h).
#include <cstring>

#include "core/errors.h"
#include "runner/trainer.h"
#include "runner/trainer_impl.h"

namespace orch::runner {

namespace {

// One image's prediction as organ masks, and as the label image predictions.h5 keeps; a point prediction's
// points are appended to `preds`.
struct ImagePrediction {
  std::vector<cv::Mat> organ_masks;
  cv::Mat labels;
};

ImagePrediction image_prediction(const models::Prediction& p, bool dense, const OrganLayout& layout, int size,
                                 Predictions& preds) {
  ImagePrediction out;
  if (!p.points.empty()) {
    torch::Tensor pts = p.points[0][0].to(torch::kCPU).to(torch::kFloat32).contiguous();
    preds.points.emplace_back(pts.data_ptr<float>(), pts.data_ptr<float>() + pts.numel());
  }
  if (dense) {
    torch::Tensor seg = p.segmentation.argmax(1)[0].to(torch::kCPU).to(torch::kUInt8).contiguous();
    out.labels = cv::Mat(size, size, CV_8UC1);
    std::memcpy(out.labels.data, seg.data_ptr(), static_cast<size_t>(size) * size);
    out.organ_masks = organ_masks_from_labels(layout, out.labels);
  } else {
    std::vector<Point2> px = denormalise_points(preds.points.back(), size);
    out.organ_masks = organ_masks_from_points(layout, px, size);
    out.labels = label_mask(layout, px, size);
  }
  return out;
}

}  // namespace

Predictions Trainer::Impl::empty_predictions() const {
  Predictions preds;
  preds.run_id = opt.run_id;
  preds.model = entry->id;
  preds.dataset = opt.settings.dataset;
  preds.kind = kind_name(opt.settings.kind);
  preds.size = opt.settings.size;
  preds.evaluated = entry->info->evaluate_dense ? "dense" : "points";
  return preds;
}

// One test image through the network, timed both ways: synchronised (the default) and as the reference's code
// timed it (until the call returned).
models::Prediction Trainer::Impl::timed_predict(const Sample& s, int idx, bool cold, std::vector<InferenceTime>& times) {
  const int size = opt.settings.size;
  TrainingSample ts = to_training_sample(s);
  torch::Tensor image = torch::from_blob(ts.image.data, {1, 1, size, size}, torch::kFloat32).clone().to(device);
  torch::manual_seed(step_seed(-2, idx));
  sync_device(device);
  auto t0 = Clock::now();
  models::Prediction p;
  {
    AutocastGuard ac(device, bf16_evaluation());
    p = net->predict(image);
  }
  const double launched = seconds_since(t0);
  sync_device(device);
  times.push_back({s.id, seconds_since(t0), launched, cold});
  return p;
}

EvaluationOutcome Trainer::evaluate() {
  Impl& I = *impl_;
  I.ensure_best("found missing before evaluation");  // every rank: rebuilding it validates on all of them
  EvaluationOutcome out;
  out.device = I.device.str();
  out.predictions_path = I.opt.predictions_path;
  if (I.comm->rank() != 0) {
    I.comm->barrier();
    return out;
  }
  auto best = I.series->verified_best();
  if (!best) throw Error("run " + I.opt.run_id + ": no best checkpoint to evaluate in " +
                         fs::path(I.series->best_path()).parent_path().string());
  load_weights(*best, *I.net);
  I.net->eval();
  torch::NoGradGuard ng;
  if (I.device.is_cuda()) set_tf32(I.opt.settings.evaluation.precision);  // the test split's own precision
  const auto layout = OrganLayout::of(I.opt.settings.kind);
  MetricOptions mo;
  mo.spacing_mm = I.opt.settings.evaluation.spacing_mm;
  mo.empty_hausdorff = I.opt.settings.evaluation.empty_hausdorff;
  const std::vector<std::string> organ_names = layout.class_names();
  const bool dense = I.entry->info->evaluate_dense;

  std::vector<int> test = I.data->info().indices(Split::kTest);
  std::sort(test.begin(), test.end(), [&](int a, int b) { return I.data->info().ids[a] < I.data->info().ids[b]; });
  Predictions preds = I.empty_predictions();
  Progress bar("evaluate " + I.opt.run_id, test.size(), I.opt.progress_bar);
  for (int idx : test) {
    Sample s = I.data->read(idx);
    const models::Prediction p = I.timed_predict(s, idx, out.times.empty(), out.times);
    ImagePrediction ip = image_prediction(p, dense, layout, I.opt.settings.size, preds);
    preds.ids.push_back(s.id);
    preds.masks.push_back(ip.labels);
    std::vector<cv::Mat> truth = organ_masks_from_labels(layout, s.mask);
    for (size_t o = 0; o < truth.size(); ++o) {
      OverlapMetrics m = compare_masks(ip.organ_masks[o], truth[o], mo);
      out.metrics.push_back(TestMetric{I.opt.run_id, s.id, organ_names[o], m.dice, m.jaccard, m.hausdorff_mm});
    }
    bar.advance(1);
  }
  bar.finish();
  if (dense && preds.points.size() != preds.ids.size()) preds.points.clear();
  write_predictions(out.predictions_path, preds, I.opt.publish_fence, *I.opt.env);
  I.comm->barrier();
  return out;
}

}  // namespace orch::runner
