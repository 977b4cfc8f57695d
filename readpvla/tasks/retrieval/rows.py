"""The rows of the retrieval tables, their learning rates, and the budget every row shares.

``Zero-shot`` is the pretrained backbone without any training (the starting point every method
must beat); the others are the PEFT methods of :mod:`readpvla.peft` applied to both towers, except
``VPT`` (prompt tokens in the video tower only) and ``CoOp`` (prompt tokens on the text side only;
``Prompt`` has both). ``READ-PVLA`` is READ trained with InfoNCE + ``lam`` x PVLA between each
matched pair's projected frames and word tokens (:func:`.loss.retrieval_loss`); ``RAP`` is
:class:`readpvla.peft.RAPConfig` with the paper's defaults, and the ``RAP ...`` rows
(:data:`ABLATION_ROWS`) its ablations.

Learning rates: :data:`HPARAMS` gives each method's base rate; :func:`.transfer.select_lr` picks,
per row, base x {1/3, 1, 3} on a validation split (one documented protocol) and the tables use
the chosen rates through :attr:`TransferSettings.lrs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from readpvla import ot, peft
from readpvla.experiment.rates import chosen_lr

__all__ = ["ABLATION_ROWS", "HPARAMS", "QUICK", "ROWS", "TABLE_ROWS", "Row", "TransferSettings", "row_key"]


@dataclass(frozen=True)
class Row:
    """A table row: a PEFT method (key of ``readpvla.peft.METHODS``, or ``None``: no training),
    overrides of its config, and the training loss (:func:`.loss.loss_fn`).

    Attributes:
        label: the row's name in tables and records.
        method: the PEFT method, or None (Zero-shot).
        peft: ``(field, value)`` overrides of the method's config.
        align: None (InfoNCE alone) or an alignment loss added to it: ``"pvla"`` (partial OT,
            :func:`readpvla.ot.pvla_loss`) or another of ``readpvla.ot.ALIGNMENT_METHODS``.
        lam: the alignment loss's weight (READ-PVLA: 0.1, the value TLG chose on its validation
            splits, :data:`readpvla.tasks.tlg.loss.LAMBDA`; not tuned for retrieval).
    """

    label: str
    method: str | None
    peft: tuple[tuple[str, Any], ...] = ()
    align: str | None = None
    lam: float = 0.1
    #: a row (an ablation) that trains at another row's chosen learning rate
    lr_from: str | None = None

    def __post_init__(self) -> None:
        if self.align is not None:
            if self.align not in ot.ALIGNMENT_METHODS or self.align == "none":
                raise ValueError(f"row {self.label!r}: align must be None or one of "
                                 f"{[m for m in ot.ALIGNMENT_METHODS if m != 'none']}, "
                                 f"got {self.align!r}")
            if not (isinstance(self.lam, int | float) and self.lam > 0
                    and math.isfinite(self.lam)):
                raise ValueError(f"row {self.label!r}: lam must be a finite number > 0, "
                                 f"got {self.lam!r}")

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
    Row("VPT", "prompt", (("slots", ("video",)),)),
    Row("CoOp", "prompt", (("slots", ("text",)),)),
    Row("Adapter", "adapter"),
    Row("READ", "read"),
    Row("READ-PVLA", "read", align="pvla", lam=0.1),
    Row("RAP", "rap"),
    # RAP's ablations (the paper's Tables 4, 6, 7, 9), at RAP's chosen learning rate
    Row("RAP LoRM only", "rap", (("asa", False),), lr_from="RAP"),
    Row("RAP ASA only", "rap", (("lorm", False),), lr_from="RAP"),
    Row("RAP R=1", "rap", (("rank", 1),), lr_from="RAP"),
    Row("RAP R=8", "rap", (("rank", 8),), lr_from="RAP"),
    Row("RAP K=1", "rap", (("top_k", 1),), lr_from="RAP"),
    Row("RAP K=8", "rap", (("top_k", 8),), lr_from="RAP"),
    Row("RAP random patches", "rap", (("selection", "random"),), lr_from="RAP"),
    Row("RAP all patches", "rap", (("selection", "all"),), lr_from="RAP"),
    Row("RAP zero offsets", "rap", (("offsets", "zero"),), lr_from="RAP"),
    # the SSF base the paper's Table 4 implies under RAP (their own learning rates)
    Row("SSF", "ssf"),
    Row("RAP+SSF", "rap", (("ssf", True),)),
)}
#: RAP's ablation rows (their own table: ``retrieval_ablations_<temporal>``)
ABLATION_ROWS = tuple(r for r in ROWS if r.startswith("RAP ")) + ("SSF", "RAP+SSF")
#: the main table's rows
TABLE_ROWS = tuple(r for r in ROWS if r not in ABLATION_ROWS)


def row_key(row: Row) -> str:
    """The :data:`HPARAMS` key of a row: its label if it has its own entry, else its method."""
    return row.label if row.label in HPARAMS else str(row.method)

#: AdamW settings per method (the same budget for all): the *base* learning rates, chosen by the
#: usual scale of each method's updates (whole layers small, adapters larger), not tuned per
#: domain; :func:`~readpvla.tasks.retrieval.transfer.select_lr` picks base x {1/3, 1, 3} per row
#: on a validation split. A row label as key overrides its method's entry. RAP: 1e-3 / 0.0, a
#: starting value (the paper's 1e-4 is for a ViT-B/32 CLIP with BertAdam).
HPARAMS: dict[str, dict[str, float]] = {
    "full": {"lr": 1e-4, "weight_decay": 0.05},
    "partial": {"lr": 3e-4, "weight_decay": 0.05},
    "bias": {"lr": 3e-3, "weight_decay": 0.0},
    "proj": {"lr": 1e-3, "weight_decay": 0.0},
    "lora": {"lr": 1e-3, "weight_decay": 0.01},
    "prompt": {"lr": 1e-2, "weight_decay": 0.0},
    "adapter": {"lr": 1e-3, "weight_decay": 0.01},
    "read": {"lr": 3e-3, "weight_decay": 0.01},
    "READ-PVLA": {"lr": 3e-3, "weight_decay": 0.01},   # as READ
    "rap": {"lr": 1e-3, "weight_decay": 0.0},
    "ssf": {"lr": 3e-3, "weight_decay": 0.0},
    "RAP+SSF": {"lr": 3e-3, "weight_decay": 0.0},
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
    #: learning rates chosen per row label (:func:`~.transfer.select_lr`), as ``(row, lr)``
    #: pairs (hashable, and in the run's fingerprint); a row not listed uses HPARAMS x lr_scale
    lrs: tuple[tuple[str, float], ...] = ()
    #: the learning-rate protocol's runs (:func:`~.transfer.select_lr`): train on the domain's
    #: training split minus its validation hold-out, score the hold-out (``{domain}_val``)
    validation: bool = False
    #: videos of the domain's training split held out for validation (of 480; seeded, fixed)
    n_val: int = 96

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
        if isinstance(self.n_val, bool) or not isinstance(self.n_val, int) or self.n_val < 1:
            raise ValueError(f"n_val must be a positive integer, got {self.n_val!r}")
        if not (self.lr_scale > 0 and math.isfinite(self.lr_scale)):
            raise ValueError(f"lr_scale must be a finite number > 0, got {self.lr_scale!r}")
        lrs = dict(self.lrs) if isinstance(self.lrs, dict) else None
        if lrs is None:
            try:
                lrs = {str(k): v for k, v in self.lrs}
            except (TypeError, ValueError):
                raise ValueError(f"lrs must be (row, lr) pairs, got {self.lrs!r}") from None
        for k, v in lrs.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not (
                    v > 0 and math.isfinite(v)):
                raise ValueError(f"lrs[{k!r}] must be a finite number > 0, got {v!r}")
        object.__setattr__(self, "lrs", tuple(sorted((k, float(v)) for k, v in lrs.items())))

    def lr(self, row: Row) -> float:
        """The learning rate of ``row``: the chosen one in :attr:`lrs`, else its
        :data:`HPARAMS` base rate x :attr:`lr_scale`."""
        return chosen_lr(self.lrs, row.label, row.lr_from,
                         HPARAMS[row_key(row)]["lr"] * self.lr_scale)

    def weight_decay(self, row: Row) -> float:
        """The weight decay of ``row`` (:data:`HPARAMS`)."""
        return HPARAMS[row_key(row)]["weight_decay"]


QUICK = TransferSettings()
