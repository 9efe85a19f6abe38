#!/bin/bash
# Issue 22's device run: the whole GPU story in one run of at most 8 minutes on a lent GPU machine.
#   here:  scripts/carry-deps .carry/deps.tar.gz            (.carry is git-ignored)
#   there: bash bench/gpu/run_gpu_story.sh                   (run tool, carry [".carry"], timeout_s 540)
# Steps, most important first, each bounded by what is left of GS_BUDGET seconds (default 470; a step that no
# longer fits is skipped and says so); everything lands under $OUT:
#   build      scripts/setup-gpu-node: the whole orchestrator and the GPU benchmarks against the machine's PyTorch
#   doctor     what the build has and sees (doctor.txt)
#   grid1      `orchestrator run bench/gpu/gpu_grid.json`: eleven networks at 1024², 2 epochs, bf16, GPU 0 of the
#              local pool, runs_per_gpu 1; its report (report/), status --json, the store
#   calibrate  `orchestrator calibrate` of the same networks at 1024² in tf32, then bf16 (calibration.json)
#   grid4      the same grid with runs_per_gpu 4 (status4.json, report4/)
#   estimate   the calibration imported for experiments/paper.json: `plan --estimate --gpus 8,16,68`
#   gpu_bench  issue 15's measurements (bench/gpu_bench.cpp: steps per precision and peak memory, epoch against
#              steps x step, packed runs, the loader with both augmentation warps)
#   eager      PyTorch eager's Ours step in fp32, tf32 and bf16 (bench/pytorch_ours.py)
# Dry run on this CPU machine (main build, 64², CPU, 1 epoch, no build): GS_DRY=1 bash bench/gpu/run_gpu_story.sh
set -u
OUT=${OUT:-/tmp/gpu_story_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
START=$(date +%s)
BUDGET=${GS_BUDGET:-470}
left() { echo $((BUDGET - ($(date +%s) - START))); }
# step NAME SECONDS_NEEDED COMMAND...: runs COMMAND within what is left, or skips it.
step() {
  local name=$1 need=$2 l
  shift 2
  l=$(left)
  if [ "$l" -lt "$need" ]; then
    echo "== $name: skipped, $l s left of $BUDGET (needs $need)" | tee -a "$OUT/steps.txt"
    return 1
  fi
  echo "== $name ($l s left)"
  local t0 rc
  t0=$(date +%s)
  timeout "$((l - 3))" "$@"
  rc=$?
  echo "== $name rc=$rc in $(($(date +%s) - t0)) s" | tee -a "$OUT/steps.txt"
  return $rc
}

EXP=bench/gpu/gpu_grid.json
WS=/tmp/gpu_story
rm -rf "$WS" && mkdir -p "$WS"
if [ "${GS_DRY:-0}" = 1 ]; then
  BIN=$PWD/build/cli/orchestrator
  GB=$PWD/build/bench/gpu_bench
  SIZE=64
  SETS=(--set datasets.synth_lh.size=64 --set datasets.synth_lh.synthetic.size=64 --set training.epochs=1
        --set training.device=cpu --set training.precision=fp32 --set networks.rasterize.training.precision=fp32)
  GB_ARGS=(--steps 2 --warmup 1 --quick --only steps,loader)
  EAGER=(cpu 2)
else
  nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,compute_cap --format=csv
  echo "cores: $(nproc)"
  CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  step build 60 env BUILD_DIR=/tmp/bs ORCH_BUILD_BENCH=ON scripts/setup-gpu-node "${DEPS_TAR:-.carry/deps.tar.gz}" \
    -DTORCH_CUDA_ARCH_LIST="${CAP:0:1}.${CAP:1}" -DCMAKE_CUDA_ARCHITECTURES="$CAP" > "$OUT/build.txt" 2>&1
  tail -25 "$OUT/build.txt"
  BIN=/tmp/bs/cli/orchestrator
  GB=/tmp/bs/bench/gpu_bench
  [ -x "$BIN" ] || { echo "no orchestrator was built"; exit 4; }
  SIZE=1024
  SETS=()
  GB_ARGS=(--steps 5 --warmup 2 --quick --only steps,epoch,packed,loader)
  EAGER=(cuda 10)
fi

step doctor 10 "$BIN" doctor --torch-config > "$OUT/doctor.txt" 2>&1
cat "$OUT/doctor.txt"
step grid1 60 "$BIN" run "$EXP" --workspace "$WS/grid1" "${SETS[@]}"
"$BIN" status "$EXP" --workspace "$WS/grid1" --json "${SETS[@]}" > "$OUT/status1.json" 2>&1
cp -r "$WS/grid1/report" "$OUT/report" 2>/dev/null
cp "$WS/grid1/orchestrator.db" "$OUT/grid1.db" 2>/dev/null

for p in tf32 bf16; do
  [ "${GS_DRY:-0}" = 1 ] && p=fp32
  step "calibrate_$p" 30 "$BIN" calibrate "$EXP" --workspace "$WS/grid1" "${SETS[@]}" --set training.precision=$p \
    --set networks.rasterize.training.precision=$p --steps 5 --warmup 2 --images 2
  [ "${GS_DRY:-0}" = 1 ] && break
done
/usr/bin/env python3 - "$WS/grid1/orchestrator.db" "$OUT/calibration.json" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.row_factory = sqlite3.Row
rows = [dict(r) for r in db.execute("SELECT * FROM calibration")]
# The grid has the lungs-and-heart kind only; its timings stand in for the lungs-only kind too (the same networks,
# one organ less), so that the paper's second data set gets an estimate.
rows += [dict(r, kind="l", host=r["host"] + " (lh timing)") for r in rows if r["kind"] == "lh"]
json.dump(rows, open(sys.argv[2], "w"), indent=1)
print(f"calibration: {len(rows)} row(s) -> {sys.argv[2]}")
PY

step grid4 45 "$BIN" run "$EXP" --workspace "$WS/grid4" "${SETS[@]}" --set resources.runs_per_gpu=4
"$BIN" status "$EXP" --workspace "$WS/grid4" --json "${SETS[@]}" > "$OUT/status4.json" 2>&1
cp -r "$WS/grid4/report" "$OUT/report4" 2>/dev/null

if step estimate_import 10 "$BIN" calibrate experiments/paper.json --workspace "$WS/paper" --import "$OUT/calibration.json"; then
  step estimate 10 "$BIN" plan experiments/paper.json --workspace "$WS/paper" --estimate --gpus 8,16,68 \
    > "$OUT/paper_estimate.txt" 2>&1
  tail -30 "$OUT/paper_estimate.txt"
fi

step gpu_bench 60 "$GB" "$WS/gb" --size "$SIZE" "${GB_ARGS[@]}"
cp "$WS"/gb/gpu_bench.json "$WS"/gb/calibration_*.json "$OUT/" 2>/dev/null

for p in fp32 tf32 bf16; do
  step "eager_$p" 15 python3 bench/pytorch_ours.py "$SIZE" 4 "$(nproc)" "${EAGER[1]}" "${EAGER[0]}" "$p" ||
    echo "pytorch_ours $p: no PyTorch here, or it failed"
  [ "${GS_DRY:-0}" = 1 ] && break
done
echo "== done in $(($(date +%s) - START)) s"; cat "$OUT/steps.txt"
