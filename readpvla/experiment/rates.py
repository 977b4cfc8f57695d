"""Chosen learning rates as data: what a task's learning-rate protocol writes and its tables read
(``lr_selection_*.json``: ``{"lrs": {row: lr}, ...}``)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["chosen_lr", "load_lrs"]


def load_lrs(source: str | Path | Mapping[str, float], known: Iterable[str]
             ) -> dict[str, float]:
    """Chosen learning rates ``{row: lr}`` from a selection's result (a mapping with ``"lrs"``)
    or its JSON file, or a plain ``{row: lr}`` mapping.

    Raises:
        ValueError: a file that is not a selection (named), rows not in ``known``, or a rate that
            is not a finite number > 0.
    """
    if isinstance(source, Mapping):
        lrs = source.get("lrs", source)
    else:
        try:
            lrs = json.loads(Path(source).read_text(encoding="utf-8"))["lrs"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{source}: not a learning-rate selection ({e})") from None
    if not isinstance(lrs, Mapping):
        raise ValueError(f"{source}: 'lrs' must map row labels to rates, got {type(lrs).__name__}")
    known = list(known)
    unknown = [r for r in lrs if r not in known]
    if unknown:
        raise ValueError(f"learning rates for unknown row(s) {unknown}; known: {known}")
    out = {}
    for r, v in lrs.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"learning rate of {r!r} must be a finite number > 0, got {v!r}")
        out[str(r)] = float(v)
    return out


def chosen_lr(lrs: Iterable[tuple[str, float]], label: str, parent: str | None,
              base: float) -> float:
    """A row's learning rate: its chosen one in ``lrs`` (``(label, lr)`` pairs), else its
    parent row's (``parent``, an ablation's reference), else ``base``."""
    chosen = dict(lrs)
    if label in chosen:
        return chosen[label]
    if parent is not None and parent in chosen:
        return chosen[parent]
    return base
