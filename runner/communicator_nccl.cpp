// The NCCL communicator: gradient buckets (CUDA tensors) are summed by ncclAllReduce on the legacy default
// stream, the stream LibTorch's kernels run on unless told otherwise, so the reduction is ordered after the
// gradient kernels and before the optimizer's without a host synchronisation. The control plane (a few doubles,
// the barrier) and the broadcast of NCCL's unique id go over MPI when there are several ranks.
#include <cuda_runtime.h>
#include <nccl.h>

#include <ATen/ATen.h>

#include <cstring>

#include "core/errors.h"
#include "runner/communicator.h"

namespace orch::runner {

#ifdef ORCH_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator();
#endif

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("NCCL: ") + what + ": " + ncclGetErrorString(r));
}
void check_cuda(cudaError_t r, const char* what) {
  if (r != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(r));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator() {
    LaunchInfo l = launch_info();
    if (l.world > 1) {
#ifdef ORCH_HAVE_MPI
      control_ = make_mpi_communicator();
#else
      throw Error("communicator nccl with " + std::to_string(l.world) + " ranks needs MPI for its rendezvous; "
                  "this build has none");
#endif
    }
    rank_ = control_ ? control_->rank() : 0;
    world_ = control_ ? control_->world() : 1;
    local_rank_ = l.local_rank;
    int devices = 0;
    check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    if (devices == 0) throw Error("communicator nccl: no CUDA device");
    device_ = local_rank_ % devices;
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    if (control_) {
      at::Tensor buf = at::empty({static_cast<int64_t>(sizeof id)}, at::kByte);
      std::memcpy(buf.data_ptr(), &id, sizeof id);
      control_->broadcast(buf, 0);
      std::memcpy(&id, buf.data_ptr(), sizeof id);
    }
    check_nccl(ncclCommInitRank(&comm_, world_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int device() const { return device_; }

  std::function<void()> allreduce_async(at::Tensor flat) override {
    if (!flat.is_contiguous() || flat.scalar_type() != at::kFloat || !flat.is_cuda())
      throw Error("nccl allreduce: expected a contiguous float32 CUDA tensor");
    check_nccl(ncclAllReduce(flat.data_ptr(), flat.data_ptr(), static_cast<size_t>(flat.numel()), ncclFloat, ncclSum,
                             comm_, cudaStreamLegacy),
               "ncclAllReduce");
    return [] {};  // stream order does the waiting
  }
  void allreduce_sum(std::vector<double>& v) override {
    if (control_) control_->allreduce_sum(v);
  }
  void allreduce_max(std::vector<double>& v) override {
    if (control_) control_->allreduce_max(v);
  }
  void broadcast(at::Tensor t, int root) override {
    if (world_ == 1) return;
    if (t.is_cuda()) {
      at::Tensor c = t.contiguous();
      check_nccl(ncclBroadcast(c.data_ptr(), c.data_ptr(), c.nbytes(), ncclChar, root, comm_, cudaStreamLegacy),
                 "ncclBroadcast");
      if (!c.is_same(t)) t.copy_(c);
    } else {
      control_->broadcast(t, root);
    }
  }
  void barrier() override {
    check_cuda(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
    if (control_) control_->barrier();
  }

 private:
  std::unique_ptr<Communicator> control_;
  int rank_ = 0, world_ = 1, local_rank_ = 0, device_ = 0;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator() { return std::make_unique<NcclCommunicator>(); }

}  // namespace orch::runner
