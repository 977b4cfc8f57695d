"""The rows of the recognition tables, their learning rates, and the budget every row shares.

The rows are the retrieval task's (:data:`readpvla.tasks.retrieval.rows.ROWS`: Zero-shot and
every PEFT method) with the same learning rates; the budget is the few-shot protocol's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..retrieval.rows import HPARAMS, ROWS, TABLE_ROWS, Row
from .data import TEMPLATE

__all__ = ["HPARAMS", "QUICK", "ROWS", "SHOTS", "TABLE_ROWS", "Row", "TransferSettings"]

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
