#!/bin/bash
# Device-side script: build the worker against the machine's PyTorch LibTorch (CUDA) with carried libraries,
# then run bench/gpu_check. Output under $OUT.
set -u
exec > >(tee $OUT/log.txt) 2>&1
date; nvidia-smi -L
TP=$(python3 -c "import torch;print(torch.utils.cmake_prefix_path)")
TV=$(python3 -c "import torch;print(torch.__version__, torch.version.cuda)")
echo "torch $TV at $TP"
NC=$(python3 -c "import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])" 2>/dev/null)
echo "pip nccl at $NC"; ls $NC/include $NC/lib 2>/dev/null | head
ls /usr/local/cuda/include/nccl.h /usr/local/cuda/lib64/libnccl* 2>/dev/null
mkdir -p /tmp/deps && tar xzf ${DEPS_TAR:-.carry/deps.tar.gz} -C /tmp/deps
NCCL_ARGS=""
if [ ! -e /usr/local/cuda/include/nccl.h ] && [ -n "$NC" ]; then
  NCCL_ARGS="-DNCCL_INCLUDE_DIR=$NC/include -DNCCL_LIBRARY=$(ls $NC/lib/libnccl.so* | head -1)"
fi
which g++ gcc ld.lld; g++ --version | head -1
cmake -S . -B /tmp/b -G Ninja -DCMAKE_PREFIX_PATH=$TP -DORCH_DEPS_DIR=/tmp/deps -DORCH_BUILD_CLI=OFF \
  -DORCH_BUILD_TESTS=OFF -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 $NCCL_ARGS 2>&1 | tail -25
time ninja -C /tmp/b -j 16 gpu_check 2>&1 | grep -E "error|FAILED|warning: " -A4 | head -80
ls -la /tmp/b/bench/gpu_check || exit 3
TL=$(python3 -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))")
export LD_LIBRARY_PATH=/tmp/deps/lib:$TL:${NC:+$NC/lib}
ldd /tmp/b/bench/gpu_check | grep "not found"
time timeout ${GC_TIMEOUT:-330} /tmp/b/bench/gpu_check /tmp/gc ${GC_ARGS:-}
echo "gpu_check rc=$?"
cp /tmp/gc/gpu_check.json $OUT/ 2>/dev/null
for d in /tmp/gc/ws256/runs/* /tmp/gc/ws1024/runs/*; do cp $d/log.txt $OUT/$(basename $(dirname $(dirname $d)))_$(basename $d | cut -c1-20).log 2>/dev/null; done
