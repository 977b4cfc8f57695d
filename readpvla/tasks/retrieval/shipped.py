"""The shipped retrieval tables (``data_samples/rendered/results/``) and how a rerun compares.

A run is bit-exact on one machine (same call twice, a spawned worker vs the parent); across
machines the CPU's float kernels change the last digits and five epochs of training carry them
into the scores (DESIGN.md fact 7). :data:`RERUN_TOLERANCE` says how far a rerun of a shipped run
may land from it, measured with ``benchmarks/bench_retrieval_portability.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from readpvla import experiment as ex
from readpvla.data import rendered

from .evaluate import TABLE_METRIC
from .pretrain import TEMPORAL
from .rows import QUICK, ROWS, TransferSettings

__all__ = ["RERUN_TOLERANCE", "compare_with_shipped", "results_dir", "shipped_lrs",
           "shipped_table"]

#: How far (t2v R@1 points) a rerun of one shipped run may land from the stored one on another
#: machine. Measured with ``benchmarks/bench_retrieval_portability.py`` (RAP, LoRA, Full on
#: ``flat``, seed 0, under ATEN_CPU_CAPABILITY avx512 (native here) / avx2 / default): identical
#: to the last digit (spread 0.00): without early stopping the kernels' last-digit differences
#: did not change a ranking here. Another CPU may still move a run like another seed would; the
#: shipped table's seed-to-seed std of one cell has median 1.14 (max 2.62), and the difference of
#: two such draws stays within 2 x sqrt(2) x 1.14 = 3.2 about 95% of the time: 3 points
#: (~6 of 192 test captions).
RERUN_TOLERANCE = 3.0


def results_dir() -> Path:
    """``<repo>/data_samples/rendered/results``."""
    return rendered.shipped_dir() / "results"


def _check(temporal: str) -> None:
    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")


def shipped_table(temporal: str, name: str = "retrieval") -> dict[str, Any] | None:
    """The shipped payload ``results/<name>_<temporal>.json`` (None if absent); ``name`` is
    ``"retrieval"`` (the main table) or ``"retrieval_ablations"``."""
    _check(temporal)
    path = results_dir() / f"{name}_{temporal}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def shipped_lrs(temporal: str = "frames") -> dict[str, float]:
    """The learning rates the shipped tables used, ``{row: lr}`` (from
    ``results/lr_selection_frames.json``: the protocol runs on the ``frames`` backbone and its
    choice serves both backbones); ``{}`` if absent (every row then uses its base rate)."""
    _check(temporal)
    path = results_dir() / "lr_selection_frames.json"
    if not path.is_file():
        return {}
    lrs = json.loads(path.read_text(encoding="utf-8"))["lrs"]
    return {r: float(v) for r, v in lrs.items() if r in ROWS}


def compare_with_shipped(records: list[dict[str, Any]], temporal: str,
                         settings: TransferSettings = QUICK, tol: float = RERUN_TOLERANCE,
                         names: tuple[str, ...] = ("retrieval", "retrieval_ablations")
                         ) -> dict[str, Any]:
    """Fresh run records beside the shipped runs with the same (row, domain, seed) made with the
    same ``settings`` (:func:`readpvla.experiment.compare_runs`; tables made with other settings
    are not used)."""
    wanted = json.loads(json.dumps(asdict(settings)))  # as stored: tuples become lists
    shipped = []
    for name in names:
        payload = shipped_table(temporal, name)
        if payload is not None and payload.get("settings") == wanted:
            shipped += payload["runs"]
    return ex.compare_runs(records, shipped, TABLE_METRIC, tol)
