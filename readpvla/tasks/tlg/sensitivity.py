"""How sensitive is READ-PVLA to its settings, and does any of them put it ahead of the adapter?
(issue 15, the sensitivity probe.)

One knob at a time moves from Table 1's READ-PVLA (lambda 0.1, mass 0.5, bottleneck k = 4, RNN
cell, its learning rate): lambda in {0.01, 0.03, 0.3, 1}, mass in {0.2, 0.35, 0.8, 1}, k in
{2, 8, 16}, the GRU and LSTM cells, the learning rate x {0.1, 0.3, 3} (:data:`~.rows.SENSITIVITY`).
Every setting is a row of one table, trained as Table 1 on every domain with every seed, beside
the Houlsby adapter (the reference: "Δ vs Adapter" with a 95% paired bootstrap interval over
test queries x seeds), READ-PVLA at its Table-1 setting and READ (no alignment). A setting "puts
READ-PVLA ahead of the adapter" only where that interval lies above 0.

::

    from readpvla.tasks import tlg
    table = tlg.run_sensitivity("crossmodal", out_dir="runs/tlg_sensitivity", workers=2)

``readpvla transfer-tlg --sensitivity`` runs it. **(choice)** One knob at a time, not a grid:
5 knobs x 2-4 values is 18 settings; their product would be 1,152.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from readpvla import experiment as ex

from .evaluate import TABLE_METRIC
from .rows import HPARAMS, ROWS, SENSITIVITY, TransferSettings
from .transfer import _note, _resolve_common, _run, _sliced, _table, jobs, table_spec

__all__ = ["SENSITIVITY_REFERENCE", "run_sensitivity", "sensitivity_rows"]

#: the row every setting is compared with
SENSITIVITY_REFERENCE = "Adapter"


def sensitivity_rows(knobs: Sequence[str] | None = None) -> list[str]:
    """Adapter, READ, READ-PVLA, then the rows of ``knobs`` (default every knob of
    :data:`~.rows.SENSITIVITY`, in its order)."""
    knobs = list(knobs) if knobs is not None else list(SENSITIVITY)
    bad = [k for k in knobs if k not in SENSITIVITY]
    if bad:
        raise ValueError(f"unknown knob(s) {bad}; known: {list(SENSITIVITY)}")
    return [SENSITIVITY_REFERENCE, "READ", "READ-PVLA",
            *(r for k in knobs for r in SENSITIVITY[k])]


def run_sensitivity(backbone: str = "crossmodal", knobs: Sequence[str] | None = None,
                    domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                    out_dir: str | Path = "runs/tlg_sensitivity", *, quick: bool = True,
                    settings: TransferSettings | None = None, data_dir: str | Path | None = None,
                    checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                    workers: int = 1, executor: str = "local", address: str | None = None,
                    resume: bool = False, progress: bool = True, verbose: bool = False
                    ) -> dict[str, Any]:
    """The sensitivity table (module docstring): ``out_dir/sensitivity_<backbone>.{json,md}``
    (every run's record as it finishes in ``runs_sensitivity_<backbone>.jsonl``, which
    ``resume`` continues). Returns the payload."""
    domains, seeds, settings, lam = _resolve_common(backbone, domains, seeds, quick, settings)
    rows = sensitivity_rows(knobs)
    grid = jobs(backbone, rows, domains, seeds, settings, data_dir, checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    records, wall = _run(grid, out_dir / f"runs_sensitivity_{backbone}.jsonl", executor,
                         workers, address, resume, progress, verbose)
    note = (_note(backbone, settings, seeds, lam) + " Each READ-PVLA row moves one setting "
            "from Table 1's (named in the row; lr x f: f times READ's learning rate "
            f"{HPARAMS['read']['lr']:g}).")
    spec = table_spec(f"READ-PVLA sensitivity ({backbone})", [(r, r) for r in rows], domains,
                      note, temporal=_sliced(records))
    spec = ex.TableSpec(**{**spec.__dict__,
                           "delta": ex.Delta(SENSITIVITY_REFERENCE, "Avg.")})
    payload, md = _table(spec, records, seeds, note + f" Wall time: {wall:.0f} s.",
                         backbone=backbone, metric=TABLE_METRIC,
                         settings={**asdict(settings), "lam": lam},
                         knobs={k: list(v) for k, v in SENSITIVITY.items()
                                if any(r in rows for r in v)},
                         variants={r: {"lam": ROWS[r].lam, "mass": ROWS[r].mass,
                                       "lr_factor": ROWS[r].lr_factor,
                                       "peft": dict(ROWS[r].peft)} for r in rows},
                         wall_seconds=round(wall, 1), executor=executor, workers=workers)
    ex.write_table(out_dir, f"sensitivity_{backbone}", payload, md)
    return payload
