"""Action recognition by video-text similarity to class prompts ("a video of {class}") on the
rendered benchmark: zero-shot, few-shot (K = 2, 4, 8, 16) and base-to-novel, with every PEFT
method, and the accuracy on the order-only pairs (a class vs its frames played backwards).

::

    from readpvla.tasks import recognition
    model = recognition.load("frames")                     # the pretrained video CLIP
    print(recognition.evaluate(model, recognition.dataset("flat_test")))   # zero-shot
    table = recognition.run_transfer("frames", shots=16, out_dir="runs/recognition")

The parts, as in every task (:mod:`readpvla.tasks`): :mod:`.data`, :mod:`.loss` (cross-entropy
over class prompts), :mod:`.evaluate`, :mod:`.pretrain` (the retrieval task's video CLIP),
:mod:`.rows`, :mod:`.transfer`, :mod:`.cli` (``readpvla transfer-recognition``).
"""

from .cli import transfer_main
from .data import DOMAINS, PAIRS, TEMPLATE, TrainBatches, data_root, dataset, prompts
from .evaluate import (
    EXTRA_METRICS,
    TABLE_METRIC,
    class_scores,
    evaluate,
    evaluate_base_novel,
    order_pair_accuracy,
)
from .loss import class_logits, recognition_loss
from .pretrain import TEMPORAL, default_checkpoint, load
from .rows import HPARAMS, QUICK, ROWS, SHOTS, TABLE_ROWS, Row, TransferSettings
from .transfer import jobs, run, run_one, run_transfer, table_spec

__all__ = [
    "DOMAINS", "EXTRA_METRICS", "HPARAMS", "PAIRS", "QUICK", "ROWS", "SHOTS", "TABLE_METRIC",
    "TABLE_ROWS", "TEMPLATE", "TEMPORAL", "Row", "TrainBatches", "TransferSettings",
    "class_logits", "class_scores", "data_root", "dataset", "default_checkpoint", "evaluate",
    "evaluate_base_novel", "jobs", "load", "order_pair_accuracy", "prompts",
    "recognition_loss", "run", "run_one", "run_transfer", "table_spec", "transfer_main",
]
