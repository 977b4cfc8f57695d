"""The base class every method's config derives from.

A config is a small dataclass: its fields are the method's hyperparameters (each with a comment
that says what it means), ``validate`` rejects impossible settings at construction time, and
``to_dict`` / ``from_dict`` give the JSON that :func:`readpvla.peft.save_adapter` writes beside
the weights. What a method *does* lives in two methods the injector calls:

- ``inject(model, targets)``: add the method's modules (READ, adapters, LoRA, prompts), if any;
- ``is_trainable(name, model)``: which parameters train (everything else is frozen).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

Target = str | list[str] | None


@dataclass
class PeftConfig:
    """Common base: a method name and a JSON round trip."""

    method: ClassVar[str] = "base"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for out-of-range hyperparameters (overridden per method)."""

    # -- what the injector calls -------------------------------------------------------------
    def inject(self, model: nn.Module) -> None:
        """Add the method's modules to ``model`` in place (default: nothing to add)."""

    def is_trainable(self, name: str, model: nn.Module) -> bool:  # pragma: no cover - abstract
        """True if parameter ``name`` of ``model`` is trained by this method."""
        raise NotImplementedError

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable hyperparameters, with the method name."""
        return {"method": self.method, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeftConfig:
        """Rebuild a config from :meth:`to_dict`'s output; unknown fields raise ``ValueError``."""
        d = dict(d)
        method = d.pop("method", cls.method)
        if method != cls.method:
            raise ValueError(f"config is for method {method!r}, not {cls.method!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; expected {sorted(names)}")
        return cls(**d)


def check_positive_int(name: str, value: Any) -> None:
    """Raise unless ``value`` is an ``int`` > 0 (bools are rejected too)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_target(value: Target) -> None:
    """A target is None (use the recipe), a regex string, or a list of module names."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value) and value:
        return
    raise ValueError(f"target must be None, a regex string or a non-empty list of names, got {value!r}")
