"""The recognition rows' learning-rate protocol: one grid, the same budget for every row.

Per row with something to train and per factor f of :data:`FACTORS`, one run at the row's base
rate (:data:`~.rows.HPARAMS`) x f, on ``domain``'s 16-shot set 0 (the few-shot protocol's
training set of seed 0, 24 classes, 6 epochs), scored by top-1 accuracy on the **hold-out**: the
domain's training videos outside that set (:func:`.data.holdout`; 4 per class, 96 videos, never
a test video). Per row the best rate wins (ties: the smaller rate), and every recognition table
trains each row at its chosen rate (``readpvla transfer-recognition --lrs FILE``).

**(choices)** One selection serves every protocol, both backbones (it runs on ``frames``) and
the ablation rows (which take their parent row's rate when they have no entry: MSTA's ablations
MSTA's or MSTA + L_CC's). Four factors, 1/3 to 10, where the retrieval task's protocol tries
three (1/3 to 3): a 16-shot set is 12 steps an epoch, 72 in all, and MSTA at its logged rate
1e-3 with its logged scale 0.005 barely left the zero-shot backbone in a first base-to-novel
measurement (HM 19.02 vs 18.57 zero-shot), so the grid reaches one step further up for every row
alike.

::

    from readpvla.tasks import recognition
    sel = recognition.select_lr("frames", out_dir="runs/recognition", workers=2)
    recognition.run_transfer("frames", protocol="base2novel", lrs=sel)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from readpvla import experiment as ex

from .data import holdout
from .evaluate import TABLE_METRIC
from .rows import HPARAMS, QUICK, ROWS, TABLE_ROWS, TransferSettings, row_key
from .transfer import jobs

__all__ = ["FACTORS", "SELECTION_SHOTS", "lr_jobs", "select_lr"]

#: multiples of each row's base rate that the protocol tries
FACTORS = (1 / 3, 1.0, 3.0, 10.0)
#: the K-shot set whose complement in the training split is the hold-out
SELECTION_SHOTS = 16


def _lr_split(domain: str, lr: float) -> str:
    return f"{domain} lr={lr:.4g}"


def lr_jobs(temporal: str, rows: Sequence[str] | None = None, domain: str = "flat",
            factors: Sequence[float] = FACTORS, seed: int = 0,
            settings: TransferSettings = QUICK, root: str | Path | None = None,
            checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
            shots: int = SELECTION_SHOTS) -> list[ex.Job]:
    """The protocol's grid: per row with a method (default :data:`~.rows.TABLE_ROWS`) and per
    factor, one few-shot job (K = ``shots``, ``settings.validation``) on
    ``domain`` at the row's rate ``base x factor``; its split is ``"<domain> lr=<lr>"`` so the
    jobs' keys stay unique."""
    rows = [r for r in (rows if rows is not None else TABLE_ROWS)
            if r not in ROWS or ROWS[r].method is not None]
    factors = [float(f) for f in factors]
    if not factors or any(not f > 0 for f in factors) or len(set(factors)) != len(factors):
        raise ValueError(f"factors must be distinct numbers > 0, got {factors}")
    settings = replace(settings, protocol="fewshot", shots=shots, validation=True, lrs=())
    out = []
    for j in jobs(temporal, rows, [domain], [seed], settings, root, checkpoint, device):
        base = HPARAMS[row_key(ROWS[j.row])]["lr"] * settings.lr_scale
        for f in factors:
            lr = base * f
            out.append(replace(j, split=_lr_split(domain, lr),
                               settings=replace(settings, lrs=((j.row, lr),))))
    return out


def select_lr(temporal: str = "frames", rows: Sequence[str] | None = None, domain: str = "flat",
              factors: Sequence[float] = FACTORS, seed: int = 0,
              out_dir: str | Path = "runs/recognition", device: str | torch.device = "cpu", *,
              settings: TransferSettings = QUICK, root: str | Path | None = None,
              checkpoint: str | Path | None = None, workers: int = 1, executor: str = "local",
              address: str | None = None, resume: bool = False, progress: bool = True,
              verbose: bool = False, shots: int = SELECTION_SHOTS) -> dict[str, Any]:
    """Run the protocol (module docstring) and choose each row's rate (``shots``: the K-shot
    set to train on, :data:`SELECTION_SHOTS`).

    Every run's record goes to ``out_dir/runs_lr_selection_recognition_<temporal>.jsonl`` as it
    finishes (:func:`readpvla.experiment.run_grid`: ``executor="ray"`` and ``resume`` work as
    for the tables); the result is written to ``out_dir/lr_selection_recognition_<temporal>.json``.

    Returns:
        ``{"protocol", "temporal", "domain", "seed", "factors", "metric", "n_val", "settings",
        "scores": {row: {lr: hold-out top-1}}, "lrs": {row: chosen lr}, "wall_seconds"}``
        (what the JSON holds); pass it as ``lrs`` to :func:`.transfer.run_transfer`.
    """
    grid = lr_jobs(temporal, rows, domain, factors, seed, settings, root, checkpoint, device,
                   shots)
    out_dir = ex.check_writable(out_dir)
    t0 = time.perf_counter()

    def log(r: dict[str, Any]) -> None:
        msg = r.get("error") or f"val {TABLE_METRIC} {r['test'][TABLE_METRIC]:6.2f}"
        print(f"{r['row']:>14s} {r['split']:>16s}: {msg}", file=sys.stderr)

    stem = f"lr_selection_recognition_{temporal}"
    records = ex.run_grid(grid, executor, workers=workers, address=address,
                          records=out_dir / f"runs_{stem}.jsonl", resume=resume,
                          progress=progress, log=log if verbose else None)
    scores: dict[str, dict[float, float]] = {}
    for job, rec in zip(grid, records):
        lr = dict(job.settings.lrs)[job.row]
        scores.setdefault(job.row, {})[lr] = float(rec["test"][TABLE_METRIC])
    n_val = len(holdout(domain, shots, seed % 3, root))
    chosen = {row: min(s, key=lambda lr: (-s[lr], lr)) for row, s in scores.items()}
    used = grid[0].settings if grid else settings
    result = {
        "protocol": (f"per row: base lr (HPARAMS) x each factor {[round(f, 4) for f in factors]}, "
                     f"trained on {domain}'s {shots}-shot set {seed % 3}, seed {seed}, "
                     f"the tables' budget; the lr with the best top-1 on {domain}_train's videos "
                     "outside that set (ties: the smaller lr)"),
        "temporal": temporal, "domain": domain, "seed": int(seed),
        "factors": [float(f) for f in factors], "metric": f"val {TABLE_METRIC}",
        "n_val": n_val, "settings": asdict(replace(used, lrs=())),
        "scores": {row: {f"{lr:.6g}": v for lr, v in s.items()} for row, s in scores.items()},
        "lrs": chosen, "wall_seconds": round(time.perf_counter() - t0, 1)}
    tmp = out_dir / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / f"{stem}.json")
    return result
