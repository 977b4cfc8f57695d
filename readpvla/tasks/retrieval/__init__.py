"""Text-video retrieval (MSR-VTT style) on the rendered benchmark with a video CLIP: the
contrastive pretraining of the offline backbones, zero-shot and fine-tuned retrieval with every
PEFT method, scored by CLIP4Clip's evaluation.

::

    from readpvla.tasks import retrieval
    model = retrieval.load("frames")                          # the shipped pretrained video CLIP
    print(retrieval.evaluate(model, retrieval.dataset("flat_test")))   # zero-shot t2v / v2t
    sel = retrieval.select_lr("frames", out_dir="runs/retrieval")      # lr per row, on validation
    table = retrieval.run_transfer("frames", seeds=(0, 1, 2), out_dir="runs/retrieval",
                                   lrs=sel["lrs"])

The parts, as in every task (:mod:`readpvla.tasks`): :mod:`.data`, :mod:`.loss` (symmetric
InfoNCE, + PVLA for READ-PVLA), :mod:`.evaluate` (with the order-only pairs), :mod:`.pretrain` (the video CLIP), :mod:`.rows`, :mod:`.transfer`, :mod:`.shipped` (the shipped tables),
:mod:`.cli` (``readpvla pretrain-videoclip`` / ``transfer-retrieval``).
"""

from .cli import pretrain_main, transfer_main
from .data import (
    DOMAINS,
    N_VAL,
    TrainBatches,
    data_root,
    dataset,
    frames_tensor,
    subset,
    train_val,
    val_indices,
)
from .evaluate import (
    EXTRA_METRICS,
    TABLE_METRIC,
    embed,
    encode_texts,
    encode_videos,
    evaluate,
    order_pairs,
    similarity,
)
from .loss import describe_loss, loss_fn, retrieval_loss
from .pretrain import PRETRAIN, TEMPORAL, PretrainSettings, default_checkpoint, load, pretrain
from .rows import (
    ABLATION_ROWS,
    HPARAMS,
    QUICK,
    ROWS,
    TABLE_ROWS,
    Row,
    TransferSettings,
    row_key,
)
from .shipped import (
    RERUN_TOLERANCE,
    compare_with_shipped,
    results_dir,
    shipped_lrs,
    shipped_table,
)
from .transfer import (
    FACTORS,
    jobs,
    load_lrs,
    lr_jobs,
    run,
    run_one,
    run_transfer,
    select_lr,
    table_spec,
)

__all__ = [
    "ABLATION_ROWS", "RERUN_TOLERANCE", "compare_with_shipped", "results_dir", "shipped_lrs",
    "shipped_table", "DOMAINS", "EXTRA_METRICS", "FACTORS", "HPARAMS", "N_VAL", "PRETRAIN", "QUICK", "ROWS",
    "TABLE_METRIC", "TABLE_ROWS", "TEMPORAL", "PretrainSettings", "Row", "TrainBatches",
    "TransferSettings", "data_root", "dataset", "default_checkpoint", "describe_loss", "embed",
    "encode_texts", "encode_videos", "evaluate", "frames_tensor", "jobs", "load", "load_lrs",
    "loss_fn", "lr_jobs", "order_pairs", "pretrain", "pretrain_main", "retrieval_loss",
    "row_key", "run", "run_one", "run_transfer", "select_lr", "similarity", "subset",
    "table_spec", "train_val", "transfer_main", "val_indices",
]
