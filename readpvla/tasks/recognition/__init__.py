"""Action recognition by video-text similarity to class prompts ("a video of {class}") on the
rendered benchmark under four protocols (few-shot K = 2, 4, 8, 16; base-to-novel; zero-shot on
unseen classes; fully supervised), with every PEFT method (AdaptFormer and MSTA + L_CC among
them), and the accuracy on the order-only pairs (a class vs its frames played backwards).

::

    from readpvla.tasks import recognition
    model = recognition.load("frames")                     # the pretrained video CLIP
    print(recognition.evaluate(model, recognition.dataset("flat_test")))   # zero-shot
    table = recognition.run_transfer("frames", shots=16, out_dir="runs/recognition")
    table = recognition.run_transfer("frames", protocol="base2novel", out_dir="runs/recognition")

The parts, as in every task (:mod:`readpvla.tasks`): :mod:`.data`, :mod:`.loss` (cross-entropy
over class prompts, MSTA's L_CC, PVLA for READ-PVLA), :mod:`.descriptions`, :mod:`.evaluate`,
:mod:`.pretrain` (the retrieval task's video CLIP), :mod:`.rows` (rows, ablations, protocols),
:mod:`.transfer`, :mod:`.select` (the learning-rate protocol), :mod:`.cli` (``readpvla transfer-recognition``).
"""

from . import shipped
from .cli import transfer_main
from .data import (
    DOMAINS,
    PAIRS,
    TEMPLATE,
    TrainBatches,
    base_novel,
    data_root,
    dataset,
    dataset_of,
    holdout,
    prompts,
    zeroshot_classes,
)
from .descriptions import ClassDescriptions, generate, load_etl4video, write_etl4video
from .evaluate import (
    EXTRA_METRICS,
    TABLE_METRIC,
    class_scores,
    evaluate,
    evaluate_base_novel,
    evaluate_base_to_novel,
    evaluate_zeroshot,
    order_pair_accuracy,
)
from .loss import (
    Consistency,
    ConsistencyTargets,
    class_logits,
    consistency_loss,
    consistency_targets,
    describe_row_loss,
    recognition_loss,
    row_loss,
)
from .pretrain import TEMPORAL, default_checkpoint, load
from .rows import (
    ABLATIONS,
    HALLUCINATION,
    HPARAMS,
    MSTA_HPARAMS,
    MSTA_ROWS,
    PROTOCOLS,
    QUICK,
    ROWS,
    SHOTS,
    TABLE_ROWS,
    RecognitionRow,
    Row,
    TransferSettings,
    load_lrs,
)
from .select import FACTORS, SELECTION_SHOTS, lr_jobs, select_lr
from .shipped import (
    RERUN_TOLERANCE,
    compare_with_shipped,
    results_dir,
    shipped_lrs,
    shipped_table,
    shipped_tables,
)
from .transfer import (
    PROTOCOL_METRICS,
    check_shots,
    jobs,
    run,
    run_one,
    run_shots,
    run_transfer,
    shots_records,
    shots_table_spec,
    table_reference,
    table_spec,
    table_stem,
    train_split,
)

__all__ = [
    "RERUN_TOLERANCE", "compare_with_shipped", "results_dir", "shipped", "shipped_lrs",
    "shipped_table", "shipped_tables", "ABLATIONS", "DOMAINS", "EXTRA_METRICS", "FACTORS", "HALLUCINATION", "HPARAMS", "MSTA_HPARAMS",
    "MSTA_ROWS", "PAIRS", "PROTOCOLS", "PROTOCOL_METRICS", "QUICK", "ROWS", "SELECTION_SHOTS", "SHOTS",
    "TABLE_METRIC", "TABLE_ROWS", "TEMPLATE", "TEMPORAL", "ClassDescriptions", "Consistency",
    "ConsistencyTargets", "RecognitionRow", "Row", "TrainBatches", "TransferSettings",
    "base_novel", "check_shots", "class_logits", "class_scores", "consistency_loss",
    "consistency_targets", "data_root", "dataset", "dataset_of", "default_checkpoint",
    "describe_row_loss", "evaluate", "evaluate_base_novel", "evaluate_base_to_novel",
    "evaluate_zeroshot", "generate", "holdout", "jobs", "load", "load_etl4video", "load_lrs",
    "lr_jobs", "order_pair_accuracy",
    "prompts", "recognition_loss", "row_loss", "run", "run_one", "run_shots", "run_transfer",
    "select_lr", "shots_records", "shots_table_spec", "table_reference", "table_spec",
    "table_stem", "train_split",
    "transfer_main", "write_etl4video", "zeroshot_classes",
]
