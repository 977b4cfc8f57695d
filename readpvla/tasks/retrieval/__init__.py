"""Text-video retrieval (MSR-VTT style) on the rendered benchmark with a video CLIP: the
contrastive pretraining of the offline backbones, zero-shot and fine-tuned retrieval with every
PEFT method, scored by CLIP4Clip's evaluation.

::

    from readpvla.tasks import retrieval
    model = retrieval.load("frames")                          # the shipped pretrained video CLIP
    print(retrieval.evaluate(model, retrieval.dataset("flat_test")))   # zero-shot t2v / v2t
    table = retrieval.run_transfer("frames", seeds=(0, 1, 2), out_dir="runs/retrieval")

The parts, as in every task (:mod:`readpvla.tasks`): :mod:`.data`, :mod:`.loss` (symmetric
InfoNCE), :mod:`.evaluate`, :mod:`.pretrain` (the video CLIP), :mod:`.rows`, :mod:`.transfer`,
:mod:`.cli` (``readpvla pretrain-videoclip`` / ``transfer-retrieval``).
"""

from .cli import pretrain_main, transfer_main
from .data import DOMAINS, TrainBatches, data_root, dataset, frames_tensor
from .evaluate import EXTRA_METRICS, TABLE_METRIC, embed, evaluate, similarity
from .loss import retrieval_loss
from .pretrain import PRETRAIN, TEMPORAL, PretrainSettings, default_checkpoint, load, pretrain
from .rows import HPARAMS, QUICK, ROWS, TABLE_ROWS, Row, TransferSettings
from .transfer import jobs, run, run_one, run_transfer, table_spec

__all__ = [
    "DOMAINS", "EXTRA_METRICS", "HPARAMS", "PRETRAIN", "QUICK", "ROWS", "TABLE_METRIC",
    "TABLE_ROWS", "TEMPORAL", "PretrainSettings", "Row", "TrainBatches", "TransferSettings",
    "data_root", "dataset", "default_checkpoint", "embed", "evaluate", "frames_tensor", "jobs",
    "load", "pretrain", "pretrain_main", "retrieval_loss", "run", "run_one", "run_transfer",
    "similarity", "table_spec", "transfer_main",
]
