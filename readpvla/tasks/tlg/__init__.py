"""Temporal language grounding (TLG) with READ-PVLA: moment retrieval and highlight detection on
QVHighlights-format data, the low-resource transfer experiment (the paper's Table 1) and its
ablations (Tables 6, 8, 9).

::

    from readpvla.tasks import tlg
    model, result = tlg.pretrain("crossmodal", out="ckpt/crossmodal")       # source split
    table = tlg.run_transfer("crossmodal", seeds=(0, 1, 2), out_dir="runs/tlg")  # table1.{json,md}
    p = tlg.Predictor.from_checkpoint("crossmodal")
    p.predict(video_feats, "A dog fetches a frisbee.")   # {"windows": [[st, ed, score]], ...}

The parts, as in every task (:mod:`readpvla.tasks`): :mod:`.data` (domains, splits, batches),
:mod:`.loss` (task loss + lambda x alignment), :mod:`.evaluate` (QVHighlights predictions and
metrics, :class:`Predictor`), :mod:`.pretrain` (backbones, source pretraining), :mod:`.rows`
(table rows, learning rates, :class:`TransferSettings`), :mod:`.transfer` (one run, the tables),
:mod:`.tuning` (the equal-effort protocol: size x learning rate chosen on validation, the
Pareto points, Table 1 at the chosen settings), :mod:`.cli` (``readpvla pretrain-tlg`` /
``transfer-tlg`` / ``tune-tlg``).
"""

from .cli import pretrain_main, transfer_main, tune_main
from .data import (
    DOMAINS,
    batches,
    dataset,
    default_data_dir,
    default_source_dir,
    ensure_source_splits,
)
from .evaluate import (
    EXTRA_METRICS,
    PLAIN_METRIC,
    TABLE_METRIC,
    TEMPORAL_KINDS,
    TEMPORAL_METRIC,
    Predictor,
    evaluate,
    predict,
)
from .loss import LAMBDA, MASS, PVLA_MAX_ITER, PVLA_TOL, TAU, alignment, forward_batch, tlg_loss
from .pretrain import (
    BACKBONES,
    PRETRAIN,
    build_backbone,
    check_backbone,
    default_checkpoint,
    pretrain,
)
from .probes import BACKBONE_ROW, ORDER_ROWS, plan_mass_on_gt, probe_alignment, probe_order
from .rows import (
    ABLATIONS,
    FULL,
    HPARAMS,
    QUICK,
    ROWS,
    SENSITIVITY,
    TABLE1_ROWS,
    TransferSettings,
    Variant,
    sized_label,
)
from .sensitivity import SENSITIVITY_REFERENCE, run_sensitivity, sensitivity_rows
from .transfer import (
    RERUN_TOLERANCE,
    ROW_TOLERANCE,
    compare_with_shipped,
    jobs,
    run,
    run_ablations,
    run_grid,
    run_one,
    run_transfer,
    shipped_table,
    table_spec,
)
from .tuning import candidate_jobs, pareto, tune

__all__ = [
    "ABLATIONS", "BACKBONES", "BACKBONE_ROW", "DOMAINS", "EXTRA_METRICS", "FULL", "PLAIN_METRIC", "TEMPORAL_KINDS", "TEMPORAL_METRIC", "HPARAMS", "LAMBDA", "MASS",
    "PRETRAIN", "PVLA_MAX_ITER", "PVLA_TOL", "QUICK", "RERUN_TOLERANCE", "ROWS", "ROW_TOLERANCE",
    "TABLE1_ROWS", "TABLE_METRIC", "TAU", "Predictor", "TransferSettings", "Variant", "alignment",
    "batches", "build_backbone", "check_backbone", "compare_with_shipped", "dataset",
    "default_checkpoint", "default_data_dir", "default_source_dir", "ensure_source_splits",
    "evaluate", "forward_batch", "jobs", "plan_mass_on_gt", "predict", "pretrain", "pretrain_main",
    "probe_alignment", "probe_order", "ORDER_ROWS", "run",
    "run_ablations", "run_grid", "run_one", "run_transfer", "shipped_table", "table_spec",
    "tlg_loss", "transfer_main", "tune_main", "SENSITIVITY", "SENSITIVITY_REFERENCE",
    "run_sensitivity", "sensitivity_rows", "candidate_jobs", "pareto", "sized_label", "tune",
]
