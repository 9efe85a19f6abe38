#include "runner/device_batches.h"

#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstring>
#include <optional>

#include "core/errors.h"

namespace orch::runner {

namespace {

struct HostBatch {
  torch::Tensor image, mask, dmaps, landmarks;
  int64_t size = 0;
};

// The samples packed into host tensors (pinned memory when asked: the copy to the GPU can then be asynchronous).
HostBatch pack(const std::vector<TrainingSample>& b, int classes_fg, int points, bool pinned) {
  if (b.empty()) throw Error("an empty batch");
  const int64_t n = static_cast<int64_t>(b.size());
  const int64_t h = b[0].image.rows, w = b[0].image.cols;
  auto opt = [&](torch::ScalarType t) { return torch::TensorOptions().dtype(t).pinned_memory(pinned); };
  HostBatch out;
  out.size = n;
  out.image = torch::empty({n, 1, h, w}, opt(torch::kFloat32));
  out.mask = torch::empty({n, h, w}, opt(torch::kUInt8));
  out.dmaps = torch::empty({n, classes_fg, h, w}, opt(torch::kFloat32));
  out.landmarks = torch::empty({n, points, 2}, opt(torch::kFloat32));
  for (int64_t i = 0; i < n; ++i) {
    const TrainingSample& s = b[static_cast<size_t>(i)];
    if (s.image.rows != h || s.image.cols != w) throw Error("sample " + s.id + ": image size differs within a batch");
    cv::Mat im = s.image.isContinuous() ? s.image : s.image.clone();
    cv::Mat mk = s.mask.isContinuous() ? s.mask : s.mask.clone();
    std::memcpy(out.image[i].data_ptr(), im.data, static_cast<size_t>(h * w) * sizeof(float));
    std::memcpy(out.mask[i].data_ptr(), mk.data, static_cast<size_t>(h * w));
    if (static_cast<int>(s.dmaps.size()) != classes_fg) throw Error("sample " + s.id + ": unexpected distance-map count");
    for (int c = 0; c < classes_fg; ++c) {
      const cv::Mat& src = s.dmaps[static_cast<size_t>(c)];
      cv::Mat d = src.isContinuous() ? src : src.clone();
      std::memcpy(out.dmaps[i][c].data_ptr(), d.data, static_cast<size_t>(h * w) * sizeof(float));
    }
    if (static_cast<int>(s.landmarks.size()) != points * 2) throw Error("sample " + s.id + ": unexpected landmark count");
    std::memcpy(out.landmarks[i].data_ptr(), s.landmarks.data(), static_cast<size_t>(points) * 2 * sizeof(float));
  }
  return out;
}

DeviceBatch copy(const HostBatch& h, const torch::Device& device, bool non_blocking) {
  DeviceBatch d;
  d.size = h.size;
  d.image = h.image.to(device, non_blocking);
  d.targets = models::Targets{h.mask.to(device, non_blocking).to(torch::kInt64), h.dmaps.to(device, non_blocking),
                              h.landmarks.to(device, non_blocking)};
  return d;
}

}  // namespace

struct BatchTransfer::Impl {
  torch::Device device{torch::kCPU};
  int classes_fg = 0, points = 0;
  bool overlap = false;
  std::optional<c10::Stream> copy_stream;
  std::optional<c10::Event> copied;
  std::optional<DeviceBatch> in_flight;
};

BatchTransfer::BatchTransfer(const torch::Device& device, int classes_fg, int points, bool overlap)
    : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->classes_fg = classes_fg;
  impl_->points = points;
  impl_->overlap = overlap && device.is_cuda();
  if (impl_->overlap)
    impl_->copy_stream = c10::impl::getDeviceGuardImpl(device.type())->getStreamFromGlobalPool(device, false);
}

BatchTransfer::~BatchTransfer() {
  Impl& I = *impl_;
  if (I.copied && I.copy_stream) I.copied->block(c10::impl::getDeviceGuardImpl(I.device.type())->getStream(I.device));
}

bool BatchTransfer::overlapping() const { return impl_->overlap; }

bool BatchTransfer::pending() const { return impl_->in_flight.has_value(); }

void BatchTransfer::start(const std::vector<TrainingSample>& samples) {
  Impl& I = *impl_;
  if (I.in_flight) throw Error("BatchTransfer::start: the previous batch was not taken");
  if (samples.empty()) {  // a rank without a share of the last batch
    I.in_flight = DeviceBatch{};
    return;
  }
  HostBatch h = pack(samples, I.classes_fg, I.points, I.overlap);
  if (!I.overlap) {
    I.in_flight = copy(h, I.device, false);
    return;
  }
  c10::StreamGuard on_copy_stream(*I.copy_stream);
  I.in_flight = copy(h, I.device, true);  // the pinned blocks stay reserved until the copy is done (host allocator)
  I.copied.emplace(I.device.type());
  I.copied->record(*I.copy_stream);
}

DeviceBatch BatchTransfer::take() {
  Impl& I = *impl_;
  if (!I.in_flight) throw Error("BatchTransfer::take: no batch was started");
  DeviceBatch d = std::move(*I.in_flight);
  I.in_flight.reset();
  if (I.overlap && I.copied) {
    const c10::Stream compute = c10::impl::getDeviceGuardImpl(I.device.type())->getStream(I.device);
    I.copied->block(compute);
    I.copied.reset();
    for (auto* t : {&d.image, &d.targets.mask, &d.targets.dmaps, &d.targets.landmarks}) t->record_stream(compute);
  }
  return d;
}

DeviceBatch BatchTransfer::now(const std::vector<TrainingSample>& samples) {
  if (samples.empty()) return {};
  return copy(pack(samples, impl_->classes_fg, impl_->points, false), impl_->device, false);  // the compute stream
}

}  // namespace orch::runner
