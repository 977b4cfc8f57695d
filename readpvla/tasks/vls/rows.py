"""The rows of the VLS tables (the paper's Tables 4 / 5), the per-method learning rates, and the
budget every row shares (:class:`TransferConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["LABELS", "LEARNING_RATES", "METHODS", "TransferConfig", "method_config"]

#: the rows of Tables 4 / 5, in the paper's order (READ alone added before READ-PVLA)
METHODS = ("full", "partial", "bias", "proj", "lora", "prompt", "adapter", "read", "read-pvla")
LABELS = {"full": "Full", "partial": "Partial", "bias": "Bias", "proj": "Proj", "lora": "LoRA",
          "prompt": "Prompt", "adapter": "Adapter", "read": "READ", "read-pvla": "READ-PVLA"}
#: learning rates per method (AdamW): small for whole-layer updates, larger for small adapters
#: (picked per method from a 3-point grid by VG-BART validation loss after 150 steps; READ's
#: tanh-bounded recurrence needs a larger step than the Houlsby adapter to move W_up)
LEARNING_RATES = {"full": 1e-3, "partial": 3e-3, "bias": 3e-2, "proj": 3e-3, "lora": 1e-2,
                  "prompt": 1e-1, "adapter": 1e-2, "read": 3e-2, "read-pvla": 3e-2}


def method_config(method: str, bottleneck: int = 4) -> Any:
    """The :mod:`readpvla.peft` config of a table row (``"read-pvla"`` is READ + the PVLA loss)."""
    import readpvla.peft as peft

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method in ("read", "read-pvla"):
        return peft.READConfig(bottleneck=bottleneck, cell="rnn")
    if method == "adapter":
        return peft.AdapterConfig(bottleneck=bottleneck)
    return peft.METHODS[method]()


@dataclass(frozen=True)
class TransferConfig:
    """Budget of one transfer run, shared by every row (``quick()`` / ``full()`` give the two
    presets; the shipped tables used ``medium()``)."""

    n_train: int = 400  # low-resource training videos used (of 400 shipped)
    n_test: int = 200  # test videos summarised (of 200 shipped)
    n_val: int = 100  # validation videos for early stopping (0: none)
    steps: int = 600  # optimiser steps (batch 16: 24 epochs of 400 videos)
    batch_size: int = 16
    eval_every: int = 100  # validation-loss period (0: no early stopping)
    num_beams: int = 4  # beam search for the test summaries (1: greedy)
    bottleneck: int = 4  # k of READ / Adapter (paper: 4)
    pvla_weight: float = 1.0  # lambda of L_task + lambda * L_PVLA (READ-PVLA row only)
    pvla_mass: float = 0.5  # transported mass m
    pvla_iter: int = 1000  # Sinkhorn iteration cap (paper: 1000; stops at tol 1e-6 before)
    learning_rates: tuple[tuple[str, float], ...] = ()  # overrides of LEARNING_RATES
    # model selection with validation: "loss" or "rouge" (validation ROUGE-L, the untuned start
    # included: readpvla.tasks.vls.transfer.finetune)
    select: str = "loss"

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "steps", "batch_size", "num_beams", "bottleneck",
                     "pvla_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("n_val", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if not (self.pvla_weight >= 0 and math.isfinite(self.pvla_weight)):
            raise ValueError(f"pvla_weight must be a finite number >= 0, got {self.pvla_weight!r}")
        if not 0 < self.pvla_mass <= 1:
            raise ValueError(f"pvla_mass must be in (0, 1], got {self.pvla_mass!r}")
        if self.select not in ("loss", "rouge"):
            raise ValueError(f"select must be 'loss' or 'rouge', got {self.select!r}")
        for method, lr in self.learning_rates:
            if method not in METHODS or not (lr > 0 and math.isfinite(lr)):
                raise ValueError(f"learning_rates: ({method!r}, {lr!r}) is not (a method of "
                                 f"{METHODS}, a finite lr > 0)")

    def lr(self, method: str) -> float:
        """The learning rate of ``method``: the override, else :data:`LEARNING_RATES`."""
        return dict(self.learning_rates).get(method, LEARNING_RATES[method])

    @classmethod
    def quick(cls) -> TransferConfig:
        """Small budget: every method on both backbones in a few minutes on 2 CPU cores."""
        return cls(n_train=400, n_test=50, n_val=0, steps=60, batch_size=16, eval_every=0,
                   num_beams=1)

    @classmethod
    def medium(cls) -> TransferConfig:
        """The shipped tables' budget: 250 steps, greedy decoding, all 200 test videos."""
        return cls(n_train=400, n_test=200, n_val=0, steps=250, batch_size=16, eval_every=0,
                   num_beams=1)

    @classmethod
    def full(cls) -> TransferConfig:
        """The full protocol (roughly 30-60 min per backbone and 3 seeds on 2 CPU cores)."""
        return cls()
