"""The shipped recognition tables (``data_samples/rendered/results/recognition*``), the shipped
learning-rate selection, and how a rerun compares.

A run is bit-exact on one machine; across machines the CPU's float kernels change the last
digits and training carries them into the scores (DESIGN.md fact 7). :data:`RERUN_TOLERANCE`
says how far a rerun of a shipped run may land from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from readpvla import experiment as ex

from ..retrieval.shipped import results_dir
from .rows import QUICK, ROWS, TransferSettings
from .transfer import PROTOCOL_METRICS

__all__ = ["RERUN_TOLERANCE", "SELECTION", "compare_with_shipped", "results_dir", "shipped_lrs",
           "shipped_table", "shipped_tables"]

#: How far (points of the table metric: top-1, or HM for base-to-novel) a rerun of one shipped
#: run may land from the stored one on another machine. **(choice)** As the retrieval task's
#: (3 points, ~6 of 192 test videos), a rerun may drift like another seed would. Measured here:
#: MSTA + L_CC, LoRA and Full (base-to-novel, ``flat``, split 0, one thread) rerun under
#: ATEN_CPU_CAPABILITY=default and avx2 gave the HM of the stored (native avx512) runs to the
#: last digit (15.09, 20.19, 20.00): no early stopping turns a last-digit difference into
#: another epoch here.
RERUN_TOLERANCE = 3.0
#: the shipped learning-rate selection's file name (:mod:`.select`, on the ``frames`` backbone)
SELECTION = "lr_selection_recognition_frames.json"


def shipped_table(stem: str) -> dict[str, Any] | None:
    """The shipped payload ``results/<stem>.json`` (None if absent), e.g.
    ``"recognition_base2novel_frames_K16"`` (:func:`.transfer.table_stem`)."""
    if not stem.startswith("recognition") or "/" in stem:
        raise ValueError(f"not a recognition table's stem: {stem!r}")
    path = results_dir() / f"{stem}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def shipped_tables() -> dict[str, dict[str, Any]]:
    """Every shipped recognition table, ``{stem: payload}``, in name order."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(results_dir().glob("recognition*.json"))}


def shipped_lrs() -> dict[str, float]:
    """The learning rates the shipped tables used, ``{row: lr}`` (:data:`SELECTION`; one
    selection serves every protocol and both backbones); ``{}`` if absent."""
    path = results_dir() / SELECTION
    if not path.is_file():
        return {}
    lrs = json.loads(path.read_text(encoding="utf-8"))["lrs"]
    return {r: float(v) for r, v in lrs.items() if r in ROWS}


def compare_with_shipped(records: list[dict[str, Any]], stem: str,
                         settings: TransferSettings = QUICK, tol: float = RERUN_TOLERANCE
                         ) -> dict[str, Any]:
    """Fresh run records beside the shipped table ``stem``'s runs with the same (row, domain,
    seed), if it was made with the same ``settings``
    (:func:`readpvla.experiment.compare_runs`, on the protocol's table metric)."""
    wanted = json.loads(json.dumps(asdict(settings)))  # as stored: tuples become lists
    payload = shipped_table(stem)
    shipped = payload["runs"] if payload is not None and payload.get("settings") == wanted else []
    return ex.compare_runs(records, shipped, PROTOCOL_METRICS[settings.protocol][0], tol)
