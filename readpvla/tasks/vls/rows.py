"""The rows of the VLS tables (the paper's Tables 4 / 5), the per-method learning rates, and the
budget every row shares (:class:`TransferConfig`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["LABELS", "LEARNING_RATES", "METHODS", "PEFT_METHOD", "TARGETS", "TransferConfig",
           "Variant", "method_config", "parse_row", "parse_variant", "row_label", "sized_row"]

#: the rows of Tables 4 / 5, in the paper's order (READ alone added before READ-PVLA)
METHODS = ("full", "partial", "bias", "proj", "lora", "prompt", "adapter", "read", "read-pvla")
LABELS = {"full": "Full", "partial": "Partial", "bias": "Bias", "proj": "Proj", "lora": "LoRA",
          "prompt": "Prompt", "adapter": "Adapter", "read": "READ", "read-pvla": "READ-PVLA"}
#: learning rates per method (AdamW): small for whole-layer updates, larger for small adapters
#: (picked per method from a 3-point grid by VG-BART validation loss after 150 steps; READ's
#: tanh-bounded recurrence needs a larger step than the Houlsby adapter to move W_up)
LEARNING_RATES = {"full": 1e-3, "partial": 3e-3, "bias": 3e-2, "proj": 3e-3, "lora": 1e-2,
                  "prompt": 1e-1, "adapter": 1e-2, "read": 3e-2, "read-pvla": 3e-2}


#: the target splits of :class:`TransferConfig`
TARGETS = ("target", "hard")
#: the :mod:`readpvla.peft` method of each row (READ-PVLA is READ plus a loss term)
PEFT_METHOD = {m: ("read" if m == "read-pvla" else m) for m in METHODS}


def method_config(method: str, bottleneck: int = 4, size: int | None = None) -> Any:
    """The :mod:`readpvla.peft` config of a table row (``"read-pvla"`` is READ + the PVLA loss);
    ``size`` (the equal-effort protocol's, :mod:`readpvla.experiment.tuning`) overrides the
    method's size knob, ``bottleneck`` included."""
    import readpvla.peft as peft
    from readpvla.experiment import tuning

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method in ("read", "read-pvla"):
        cfg = peft.READConfig(bottleneck=bottleneck, cell="rnn")
    elif method == "adapter":
        cfg = peft.AdapterConfig(bottleneck=bottleneck)
    else:
        cfg = peft.METHODS[method]()
    return dataclasses.replace(cfg, **dict(tuning.size_overrides(PEFT_METHOD[method], size)))


def sized_row(method: str, size: int | None, bottleneck: int = 4) -> str:
    """The grid row of ``method`` at ``size``: ``method`` itself for None or the size the tables
    use (``bottleneck`` for READ / the adapter, the config default otherwise), else
    ``"<method> (<knob>=<size>)"`` (:func:`parse_row` reads it back)."""
    from readpvla.experiment import tuning

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if size is None:
        return method
    knob = tuning.SIZE_KNOBS.get(PEFT_METHOD[method])
    if knob is None:
        raise ValueError(f"method {method!r} has no size knob")
    if size == getattr(method_config(method, bottleneck), knob):
        return method
    tuning.size_overrides(PEFT_METHOD[method], size)  # checks the size
    return f"{method} ({knob}={size})"


def parse_row(row: str) -> tuple[str, int | None]:
    """``(method, size)`` of a grid row of :func:`sized_row` (size None: the tables' size)."""
    from readpvla.experiment import tuning

    method, _, rest = row.partition(" (")
    if method not in METHODS:
        raise ValueError(f"unknown VLS row {row!r}; expected a method of {METHODS}, optionally "
                         "followed by ' (<knob>=<size>)'")
    if not rest:
        return method, None
    knob, _, size = rest.rstrip(")").partition("=")
    if not rest.endswith(")") or knob != tuning.SIZE_KNOBS.get(PEFT_METHOD[method]) \
            or not size.isdigit() or int(size) < 1:
        raise ValueError(f"malformed VLS row {row!r}; expected '{method} "
                         f"({tuning.SIZE_KNOBS.get(PEFT_METHOD[method], 'knob')}=<size>)'")
    return method, int(size)


def row_label(row: str) -> str:
    """The table label of a grid row: ``"READ-PVLA"``, ``"READ-PVLA (bottleneck=8)"``,
    ``"READ [clips shuffled]"`` (a :func:`parse_variant` suffix is kept, except ``[probe]``)."""
    base, _, variant = row.partition(" [")
    parse_variant(row)
    method, _, rest = base.partition(" (")
    suffix = f" [{variant}" if variant and variant != "probe]" else ""
    return LABELS[method] + (f" ({rest}" if rest else "") + suffix


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
    # the target split: "target" (the shipped low-resource split, train / val / test) or "hard"
    # (hard_train / hard_val / hard_test: paraphrased summaries, more steps only the video names;
    # readpvla.data.how2, issue 15)
    target: str = "target"

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
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        for method, lr in self.learning_rates:
            if method not in METHODS or not (lr > 0 and math.isfinite(lr)):
                raise ValueError(f"learning_rates: ({method!r}, {lr!r}) is not (a method of "
                                 f"{METHODS}, a finite lr > 0)")

    def split(self, name: str) -> str:
        """The file name of split ``name`` (``"train"``, ``"val"``, ``"test"``) of the target."""
        return name if self.target == "target" else f"{self.target}_{name}"

    def stem(self, backbone: str) -> str:
        """The stem of this target's table files: ``vls_bart``, ``vls_hard_bart``."""
        return f"vls_{backbone}" if self.target == "target" else f"vls_{self.target}_{backbone}"

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
    def tuning(cls) -> TransferConfig:
        """The equal-effort protocol's budget (:mod:`.tuning`): :meth:`medium` with selection
        by validation ROUGE-L (100 validation videos every 50 steps, the start a candidate)."""
        return cls(n_train=400, n_test=200, n_val=100, steps=250, batch_size=16, eval_every=50,
                   num_beams=1, select="rouge")

    @classmethod
    def full(cls) -> TransferConfig:
        """The full protocol (roughly 30-60 min per backbone and 3 seeds on 2 CPU cores)."""
        return cls()


# -- probe variants (issue 15: the VLS mechanism probes, :mod:`.probes`) --------------------------
@dataclass(frozen=True)
class Variant:
    """What a bracketed suffix changes in one run: ``"read-pvla [lambda=0.3]"``,
    ``"read [clips shuffled]"``, ``"read-pvla (bottleneck=4) [probe]"``.

    Any variant also scores the probes' metrics (:func:`~.probes.probe_metrics`): the steps a
    summary names and puts in order, and the PVLA plan's mass on the clips of the step a word
    names. ``None`` fields keep the config's value."""

    lam: float | None = None  # PVLA weight lambda (READ-PVLA rows only)
    mass: float | None = None  # PVLA transported mass (READ-PVLA rows only)
    lr_factor: float | None = None  # times the row's learning rate
    shuffled: bool = False  # every video's clips in a fixed random order (train, val and test)

    def config(self, config: TransferConfig) -> TransferConfig:
        """``config`` with this variant's PVLA weight and mass."""
        changes = {k: v for k, v in (("pvla_weight", self.lam), ("pvla_mass", self.mass))
                   if v is not None}
        return dataclasses.replace(config, **changes) if changes else config


def parse_variant(row: str) -> tuple[str, Variant | None]:
    """``(row without the suffix, its Variant)``; None for a row without ``" [...]"``.

    The suffix holds comma-separated parts: ``probe`` (only the probe metrics),
    ``clips shuffled``, ``lambda=<x>`` (>= 0), ``mass=<x>`` (in (0, 1]), ``lr×<f>`` (> 0).

    Raises:
        ValueError: a malformed or unknown part, a bad value, or lambda / mass on a row that is
            not READ-PVLA (naming the row).
    """
    base, sep, rest = row.partition(" [")
    if not sep:
        return row, None
    method, _ = parse_row(base)
    if not rest.endswith("]") or not rest[:-1].strip():
        raise ValueError(f"malformed variant in row {row!r}; expected '<row> [part, ...]' with "
                         "parts 'probe', 'clips shuffled', 'lambda=<x>', 'mass=<x>', 'lr×<f>'")
    fields: dict[str, Any] = {}
    for part in (p.strip() for p in rest[:-1].split(",")):
        try:
            if part == "probe":
                continue
            if part == "clips shuffled":
                fields["shuffled"] = True
            elif part.startswith(("lambda=", "mass=")):
                name, _, value = part.partition("=")
                x = float(value)
                if method != "read-pvla":
                    raise ValueError(f"{name} applies to READ-PVLA rows only")
                if not (math.isfinite(x) and (x >= 0 if name == "lambda" else 0 < x <= 1)):
                    raise ValueError(f"{name} out of range: {x!r}")
                fields["lam" if name == "lambda" else "mass"] = x
            elif part.startswith("lr×"):
                f = float(part[3:])
                if not (math.isfinite(f) and f > 0):
                    raise ValueError(f"the learning-rate factor must be > 0, got {f!r}")
                fields["lr_factor"] = f
            else:
                raise ValueError(f"unknown part {part!r}")
        except ValueError as e:
            raise ValueError(f"bad variant in row {row!r}: {e}") from None
    return base, Variant(**fields)
