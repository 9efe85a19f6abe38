"""The experiments and settings whose run ids are pinned by tests/fixtures/run_ids.json (issue 21: refactoring the
parser must not change a run's id, or every existing workspace would retrain). Each case: a file and --set values
that exercise every fixed choice's spelling."""
CASES = {
    "demo": ("experiments/demo.json", []),
    "paper": ("experiments/paper.json", []),
    "paper-choices": ("experiments/paper.json", [
        "pretrain=separate", "rasterize_init=per_seed", "training.precision=bf16", "training.seed_mode=reference",
        "training.nonfinite=skip", "training.pipeline=plain", "training.device=cpu",
        "training.mask_resampling=nearest", "evaluation.empty_hausdorff=diagonal", "evaluation.precision=fp32",
        "datasets.jsrt_padchest.edges=boundary"]),
    "demo-pretrain": ("experiments/demo.json", ["pretrain=separate", "pretrain_training.epochs=7"]),
}
