"""The rows of the recognition tables, their learning rates, and the budget every row shares.

The rows are the retrieval task's (:data:`readpvla.tasks.retrieval.rows.ROWS`: Zero-shot and
every PEFT method) with the same learning rates; the budget is the few-shot protocol's.

:data:`MSTA_ROWS` are MSTA (:class:`readpvla.peft.MSTAConfig`) without and with its consistency
constraint L_CC (a :class:`RecognitionRow` whose ``consistency`` asks for it;
:func:`.loss.row_loss` builds the loss), at the logged AdamW settings (:data:`MSTA_HPARAMS`: lr
1e-3, weight decay 1e-3). They are not in :data:`ROWS` yet: :func:`.transfer.run_one` builds
its loss without asking the row, so it would train "MSTA + L_CC" without L_CC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..retrieval.rows import HPARAMS, ROWS, TABLE_ROWS, Row
from .data import TEMPLATE
from .loss import Consistency

__all__ = ["HPARAMS", "MSTA_HPARAMS", "MSTA_ROWS", "QUICK", "ROWS", "SHOTS", "TABLE_ROWS",
           "RecognitionRow", "Row", "TransferSettings"]

#: the few-shot protocol's K (videos per class in the training set)
SHOTS = (2, 4, 8, 16)


@dataclass(frozen=True)
class TransferSettings:
    """The fine-tuning budget shared by every row: ``epochs`` passes over a K-shot training set
    (K videos of each of the 24 classes; seed s of a run uses the K-shot set of seed s mod 3),
    batch ``batch_size``, linear warm-up then cosine decay, the last epoch's weights (no
    validation split: nothing is selected)."""

    shots: int = 16
    epochs: int = 6
    batch_size: int = 32
    warmup_steps: int = 5
    lr_scale: float = 1.0
    template: str = TEMPLATE

    def __post_init__(self) -> None:
        if self.shots not in SHOTS:
            raise ValueError(f"shots must be one of {SHOTS}, got {self.shots!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) \
                or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not (self.lr_scale > 0 and math.isfinite(self.lr_scale)):
            raise ValueError(f"lr_scale must be a finite number > 0, got {self.lr_scale!r}")
        if "{}" not in self.template:
            raise ValueError(f"template must hold '{{}}', got {self.template!r}")


QUICK = TransferSettings()


@dataclass(frozen=True)
class RecognitionRow(Row):
    """A recognition row that may add MSTA's consistency constraint to the cross-entropy."""

    #: None (cross-entropy alone) or the L_CC request (weight, descriptions)
    consistency: Consistency | None = None


#: MSTA without and with L_CC (alpha = 1, N = 2 descriptions per type, the paper's choices)
MSTA_ROWS: dict[str, RecognitionRow] = {r.label: r for r in (
    RecognitionRow("MSTA", "msta"),
    RecognitionRow("MSTA + L_CC", "msta", consistency=Consistency()),
)}
#: the logged AdamW settings of MSTA (ViCLIP-B runs of ETL4Video)
MSTA_HPARAMS: dict[str, dict[str, float]] = {"msta": {"lr": 1e-3, "weight_decay": 1e-3}}
