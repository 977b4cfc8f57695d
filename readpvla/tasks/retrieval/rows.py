"""The rows of the retrieval tables, their learning rates, and the budget every row shares.

``Zero-shot`` is the pretrained backbone without any training (the starting point every method
must beat); the others are the PEFT methods of :mod:`readpvla.peft` applied to both towers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from readpvla import peft

__all__ = ["HPARAMS", "QUICK", "ROWS", "TABLE_ROWS", "Row", "TransferSettings"]


@dataclass(frozen=True)
class Row:
    """A table row: a PEFT method (key of ``readpvla.peft.METHODS``, or ``None``: no training)
    and overrides of its config."""

    label: str
    method: str | None
    peft: tuple[tuple[str, Any], ...] = ()

    def config(self) -> peft.PeftConfig:
        """The method's config object."""
        if self.method not in peft.METHODS:
            raise ValueError(f"row {self.label!r} has no PEFT method to apply")
        return peft.METHODS[self.method](**dict(self.peft))


#: every row, by label
ROWS: dict[str, Row] = {r.label: r for r in (
    Row("Zero-shot", None),
    Row("Full", "full"),
    Row("Partial", "partial"),
    Row("Bias", "bias"),
    Row("Proj", "proj"),
    Row("LoRA", "lora"),
    Row("Prompt", "prompt"),
    Row("Adapter", "adapter"),
    Row("READ", "read"),
)}
TABLE_ROWS = tuple(ROWS)

#: AdamW settings per method (the same budget for all). Chosen by the usual scale of each
#: method's updates (whole layers small, adapters larger), not tuned per domain.
HPARAMS: dict[str, dict[str, float]] = {
    "full": {"lr": 1e-4, "weight_decay": 0.05},
    "partial": {"lr": 3e-4, "weight_decay": 0.05},
    "bias": {"lr": 3e-3, "weight_decay": 0.0},
    "proj": {"lr": 1e-3, "weight_decay": 0.0},
    "lora": {"lr": 1e-3, "weight_decay": 0.01},
    "prompt": {"lr": 1e-2, "weight_decay": 0.0},
    "adapter": {"lr": 1e-3, "weight_decay": 0.01},
    "read": {"lr": 3e-3, "weight_decay": 0.01},
}


@dataclass(frozen=True)
class TransferSettings:
    """The fine-tuning budget shared by every row: ``epochs`` passes over the domain's 480
    training videos (one of their 5 captions each, drawn per pass), ``batch_size`` pairs a step,
    linear warm-up then cosine decay, the last epoch's weights (the target domains have no
    validation split, so nothing is selected)."""

    epochs: int = 5
    batch_size: int = 32
    warmup_steps: int = 10
    lr_scale: float = 1.0       # multiplies every method's learning rate (for sweeps)
    dsl: bool = False           # dual softmax at test time (RAP's "*" rows)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (InfoNCE contrasts a batch)")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) \
                or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not (self.lr_scale > 0 and math.isfinite(self.lr_scale)):
            raise ValueError(f"lr_scale must be a finite number > 0, got {self.lr_scale!r}")


QUICK = TransferSettings()
