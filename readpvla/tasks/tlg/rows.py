"""The rows of the TLG tables (Table 1 and the ablations of Tables 6, 8, 9), the per-method
learning rates, and the training budget every row shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from readpvla import peft
from readpvla.experiment import tuning

from .loss import MASS, PVLA_MAX_ITER, PVLA_TOL, TAU

__all__ = ["ABLATIONS", "FULL", "HPARAMS", "QUICK", "ROWS", "SENSITIVITY", "TABLE1_ROWS",
           "TransferSettings", "Variant", "sized_label"]


@dataclass(frozen=True)
class Variant:
    """One row of a table: a PEFT method (key of ``readpvla.peft.METHODS``), overrides of its
    config, and the alignment loss used in training."""

    label: str
    method: str
    peft: tuple[tuple[str, Any], ...] = ()
    align: str = "none"
    #: the alignment weight and transported mass of this row (None: the settings'), and a
    #: multiple of the method's learning rate (the sensitivity rows)
    lam: float | None = None
    mass: float | None = None
    lr_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.lam is not None and not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f"{self.label}: lam must be None or a finite number >= 0, got "
                             f"{self.lam!r}")
        if self.mass is not None and not 0 < self.mass <= 1:
            raise ValueError(f"{self.label}: mass must be None or in (0, 1], got {self.mass!r}")
        if not (self.lr_factor > 0 and math.isfinite(self.lr_factor)):
            raise ValueError(f"{self.label}: lr_factor must be a finite number > 0, got "
                             f"{self.lr_factor!r}")

    def config(self) -> peft.PeftConfig:
        """The method's config object."""
        if self.method not in peft.METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {sorted(peft.METHODS)}")
        return peft.METHODS[self.method](**dict(self.peft))


#: every table row (Table 1 and the ablations), by label
ROWS: dict[str, Variant] = {v.label: v for v in (
    Variant("Full", "full"),
    Variant("Partial", "partial"),
    Variant("Bias", "bias"),
    Variant("Proj", "proj"),
    Variant("LoRA", "lora"),
    Variant("Prompt", "prompt"),
    Variant("Adapter", "adapter"),
    Variant("READ", "read"),
    Variant("READ-PVLA", "read", align="pvla"),
    # Table 6: alignment ablation (READ + none / VLA / PVLA)
    Variant("READ-VLA", "read", align="vla"),
    # Table 8: recurrent cell (READ-PVLA with RNN / GRU / LSTM)
    Variant("READ-PVLA (GRU)", "read", (("cell", "gru"),), align="pvla"),
    Variant("READ-PVLA (LSTM)", "read", (("cell", "lstm"),), align="pvla"),
    # Table 9: distance (pooled distances vs partial OT)
    Variant("READ-AvgPool-Cosine", "read", align="avg-cosine"),
    Variant("READ-MaxPool-Cosine", "read", align="max-cosine"),
    Variant("READ-AvgPool-L2", "read", align="avg-l2"),
    Variant("READ-MaxPool-L2", "read", align="max-l2"),
)}
TABLE1_ROWS = ("Full", "Partial", "Bias", "Proj", "LoRA", "Prompt", "Adapter", "READ",
               "READ-PVLA")


def sized_label(label: str, size: int | None) -> str:
    """The row of Table 1's row ``label`` at ``size`` (the equal-effort protocol's sizes,
    :mod:`readpvla.experiment.tuning`): ``label`` itself for None or the method's default size
    (so those runs are Table 1's own), else ``"<label> (<knob>=<size>)"`` (a row of
    :data:`ROWS`)."""
    v = ROWS[label]
    if size is None:
        return label
    knob = tuning.SIZE_KNOBS.get(v.method)
    if knob is None:
        raise ValueError(f"row {label!r} (method {v.method!r}) has no size knob")
    if size == getattr(peft.METHODS[v.method](), knob):
        return label
    return f"{label} ({knob}={size})"


#: READ-PVLA's sensitivity (issue 15): one knob moved at a time from the Table-1 row (lambda 0.1,
#: mass 0.5, k = 4, RNN cell, the method's learning rate); the cells are Table 8's rows and the
#: sizes the tuning protocol's
SENSITIVITY: dict[str, tuple[str, ...]] = {
    "lambda": tuple(f"READ-PVLA (lambda={x:g})" for x in (0.01, 0.03, 0.3, 1.0)),
    "mass": tuple(f"READ-PVLA (mass={x:g})" for x in (0.2, 0.35, 0.8, 1.0)),
    "k": ("READ-PVLA (bottleneck=2)", "READ-PVLA (bottleneck=8)", "READ-PVLA (bottleneck=16)"),
    "cell": ("READ-PVLA (GRU)", "READ-PVLA (LSTM)"),
    "lr": tuple(f"READ-PVLA (lr x{x:g})" for x in (0.1, 0.3, 3.0)),
}
ROWS.update({v.label: v for v in (
    *(Variant(f"READ-PVLA (lambda={x:g})", "read", align="pvla", lam=x)
      for x in (0.01, 0.03, 0.3, 1.0)),
    *(Variant(f"READ-PVLA (mass={x:g})", "read", align="pvla", mass=x)
      for x in (0.2, 0.35, 0.8, 1.0)),
    *(Variant(f"READ-PVLA (lr x{x:g})", "read", align="pvla", lr_factor=x)
      for x in (0.1, 0.3, 3.0)),
)})

#: Table 1's sized rows at every size of the protocol's grid but the default
ROWS.update({
    sized_label(label, size): Variant(sized_label(label, size), ROWS[label].method,
                                      ROWS[label].peft + tuning.size_overrides(
                                          ROWS[label].method, size), ROWS[label].align)
    for label in TABLE1_ROWS if ROWS[label].method in tuning.SIZE_KNOBS
    for size in tuning.SIZES[ROWS[label].method]
    if sized_label(label, size) != label})
#: ablation tables: number -> (title, [(row label shown, variant label)])
ABLATIONS: dict[int, tuple[str, list[tuple[str, str]]]] = {
    6: ("Table 6: alignment ablation (READ adapter)",
        [("No VLA", "READ"), ("VLA", "READ-VLA"), ("PVLA", "READ-PVLA")]),
    8: ("Table 8: recurrent architecture (READ-PVLA)",
        [("GRU", "READ-PVLA (GRU)"), ("LSTM", "READ-PVLA (LSTM)"), ("RNN", "READ-PVLA")]),
    9: ("Table 9: distance method (READ + alignment)",
        [("AvgPool - Cosine", "READ-AvgPool-Cosine"), ("MaxPool - Cosine", "READ-MaxPool-Cosine"),
         ("AvgPool - L2", "READ-AvgPool-L2"), ("MaxPool - L2", "READ-MaxPool-L2"),
         ("Partial OT", "READ-PVLA")]),
}

#: per-method optimiser settings, the only thing that differs between methods (same epochs,
#: batch size, patience for all). Each learning rate is the best of {3e-4, 1e-3, 3e-3, 1e-2,
#: 3e-2, 5e-2, 1e-1} by best-epoch *validation* MR-full-mAP, mean over the 6 domains, seed 0,
#: crossmodal backbone, QUICK budget (benchmarks/bench_tlg_transfer.py --sweep-lr). READ-PVLA
#: uses READ's. The same settings serve the momentdetr backbone (not swept separately).
HPARAMS: dict[str, dict[str, float]] = {
    "full": {"lr": 3e-4, "weight_decay": 1e-2},
    "partial": {"lr": 1e-3, "weight_decay": 1e-2},
    "bias": {"lr": 1e-2, "weight_decay": 0.0},
    "proj": {"lr": 3e-3, "weight_decay": 0.0},
    "lora": {"lr": 1e-2, "weight_decay": 1e-2},
    "prompt": {"lr": 1e-1, "weight_decay": 0.0},
    "adapter": {"lr": 1e-2, "weight_decay": 1e-2},
    "read": {"lr": 5e-2, "weight_decay": 1e-2},
}


@dataclass(frozen=True)
class TransferSettings:
    """The training budget shared by every method (and the PVLA settings)."""

    epochs: int = 20            # maximum epochs over the 40 training queries
    batch_size: int = 8         # queries per step (5 steps per epoch)
    patience: int | None = 5    # early stopping on the validation split's MR-full-mAP
    lam: float | None = None    # alignment weight (None: LAMBDA[backbone])
    mass: float = MASS
    tau: float = TAU
    max_iter: int = PVLA_MAX_ITER
    tol: float = PVLA_TOL
    lr_scale: float = 1.0       # multiplies every method's learning rate (for sweeps)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.patience is not None and (isinstance(self.patience, bool)
                                          or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be None or a positive integer, got {self.patience!r}")
        if self.lam is not None and not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f"lam must be None or a finite number >= 0, got {self.lam!r}")
        if not 0 < self.mass <= 1:
            raise ValueError(f"mass must be in (0, 1], got {self.mass!r}")
        for name in ("tau", "lr_scale"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")


QUICK = TransferSettings()
FULL = TransferSettings(epochs=40, patience=10, max_iter=1000, tol=1e-6)


