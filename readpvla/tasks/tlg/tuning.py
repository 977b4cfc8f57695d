"""TLG under the equal-effort protocol (:mod:`readpvla.experiment.tuning`): every Table-1 row
tuned with the same number of runs on the validation split, the accuracy-vs-parameters points
of every size, and Table 1 again at the chosen settings.

1. :func:`tune`: every candidate (row x size x learning-rate factor; rows without a size knob a
   finer rate grid of the same length) trains on every target domain with seed 0; its score is
   the best-epoch **validation** MR-full-mAP (``val_best``, 20 queries per domain) averaged over
   the domains. Writes ``tuning_tlg_<backbone>.json`` (every candidate's scores, the choice per
   row, the chosen rate per size) and the runs as they finish.
2. :func:`pareto`: per row and size, that size's best rate (on validation) trained with every
   seed on every domain and scored on the **test** split; writes ``pareto_tlg_<backbone>.json``
   (points: trainable parameters, test MR-full-mAP mean ± std over seeds, on the frontier or
   not; and every Pareto run's score, :func:`readpvla.experiment.tuning.point_runs`) and
   ``table1_tuned_<backbone>.{json,md}``: Table 1 with each row at its chosen size and
   rate (those runs are a subset of the Pareto runs: nothing is trained twice).

::

    from readpvla.tasks import tlg
    sel = tlg.tune("crossmodal", out_dir="runs/tlg_tuning", workers=2)
    out = tlg.pareto("crossmodal", sel, seeds=(0, 1, 2), out_dir="runs/tlg_tuning", workers=2)

``readpvla tune-tlg --backbone crossmodal --out runs/tlg_tuning --workers 2`` runs both.
**(choice)** The tuning runs use seed 0 only (the protocol's budget is the number of runs per
row, |sizes| x |factors| = 12 per domain); the test runs use every seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from readpvla import experiment as ex
from readpvla.experiment import tuning

from .data import DOMAINS
from .evaluate import TABLE_METRIC
from .rows import HPARAMS, QUICK, ROWS, TABLE1_ROWS, TransferSettings, sized_label
from .transfer import _note, _resolve_common, _run, _sliced, _table, jobs, table_spec

__all__ = ["candidate_jobs", "pareto", "tune"]


def _split(domain: str, factor: float) -> str:
    return f"{domain} lr×{factor:.4g}"


def _rows(rows: Sequence[str]) -> dict[str, str]:
    bad = [r for r in rows if r not in TABLE1_ROWS]
    if bad:
        raise ValueError(f"the tuning protocol covers Table 1's rows {list(TABLE1_ROWS)}; got "
                         f"{bad}")
    return {r: ROWS[r].method for r in rows}


def candidate_jobs(backbone: str, rows: Sequence[str] = TABLE1_ROWS,
                   domains: Sequence[str] | None = None, settings: TransferSettings = QUICK,
                   factors: Sequence[float] = tuning.FACTORS, sizes: dict | None = None,
                   seed: int = 0, data_dir: str | Path | None = None,
                   checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
                   ) -> list[tuple[tuning.Candidate, ex.Job]]:
    """Every candidate of the protocol on every domain as a job: the row at the candidate's
    size (:func:`~.rows.sized_label`), ``settings.lr_scale`` x the factor, split
    ``"<domain> lr×<factor>"`` (so every job's key is unique; :func:`~.transfer.run` trains on
    the domain)."""
    domains = list(domains) if domains is not None else list(DOMAINS)
    cands = tuning.candidates(_rows(rows), factors, sizes if sizes is not None else tuning.SIZES)
    out = []
    for c in cands:
        label = sized_label(c.row, c.size)
        s = replace(settings, lr_scale=settings.lr_scale * c.factor)
        for j in jobs(backbone, [label], domains, [seed], s, data_dir, checkpoint, device):
            out.append((c, replace(j, split=_split(j.split, c.factor))))
    return out


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs))


def tune(backbone: str = "crossmodal", rows: Sequence[str] = TABLE1_ROWS,
         domains: Sequence[str] | None = None, out_dir: str | Path = "runs/tlg_tuning", *,
         quick: bool = True, settings: TransferSettings | None = None,
         factors: Sequence[float] = tuning.FACTORS, sizes: dict | None = None,
         data_dir: str | Path | None = None, checkpoint: str | Path | None = None,
         device: str | torch.device = "cpu", workers: int = 1, executor: str = "local",
         address: str | None = None, resume: bool = False, progress: bool = True,
         verbose: bool = False) -> dict[str, Any]:
    """Step 1 of the protocol (module docstring): every candidate on the validation split, the
    choice per row. Returns the selection (also ``out_dir/tuning_tlg_<backbone>.json``):
    ``{"backbone", "domains", "settings", "metric", "budget" (runs per row and domain),
    "candidates": [{"row", "size", "factor", "lr", "variant", "val", "per_domain"}], "chosen":
    {row: {"size", "factor", "lr", "variant", "val"}}, "best_per_size": {row: {size: factor}}}``.
    """
    domains, _, settings, lam = _resolve_common(backbone, domains, [0], quick, settings)
    pairs = candidate_jobs(backbone, rows, domains, settings, factors, sizes, 0, data_dir,
                           checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    records, wall = _run([j for _, j in pairs], out_dir / f"runs_tuning_tlg_{backbone}.jsonl",
                         executor, workers, address, resume, progress, verbose)
    by_key = {(r["row"], r["split"]): r for r in records}
    scores: dict[tuning.Candidate, float] = {}
    parts: dict[tuning.Candidate, dict[str, float]] = {}
    for c in dict.fromkeys(c for c, _ in pairs):
        label = sized_label(c.row, c.size)
        parts[c] = {d: tuning.finite_or_zero(by_key[(label, _split(d, c.factor))].get("val_best"))
                    for d in domains}
        scores[c] = _mean(list(parts[c].values()))
    sel = {"backbone": backbone, "domains": domains, "metric": f"validation {TABLE_METRIC} "
           "(best epoch), mean over domains, seed 0", "settings": {**asdict(settings), "lam": lam},
           "factors": list(factors), "wall_seconds": round(wall, 1),
           **tuning.selection(scores, lambda c: sized_label(c.row, c.size),
                              lambda c: HPARAMS[c.method]["lr"] * settings.lr_scale * c.factor,
                              parts)}
    ex.write_json(out_dir / f"tuning_tlg_{backbone}.json", sel)
    return sel


def pareto(backbone: str, selection: dict[str, Any] | str | Path, seeds: Sequence[int] = (0, 1, 2),
           out_dir: str | Path = "runs/tlg_tuning", *, data_dir: str | Path | None = None,
           checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
           workers: int = 1, executor: str = "local", address: str | None = None,
           resume: bool = False, progress: bool = True, verbose: bool = False
           ) -> dict[str, Any]:
    """Step 2 (module docstring): every row at every size (at that size's best rate on
    validation) with every seed on the test split; the points with their frontier, and Table 1
    at the chosen settings. Returns ``{"points": [...], "table": payload}``."""
    if not isinstance(selection, dict):
        selection = json.loads(Path(selection).read_text(encoding="utf-8"))
    if selection.get("backbone") != backbone:
        raise ValueError(f"the selection is for backbone {selection.get('backbone')!r}, not "
                         f"{backbone!r}")
    settings = TransferSettings(**{k: v for k, v in selection["settings"].items() if k != "lam"})
    domains, seeds, settings, lam = _resolve_common(backbone, selection["domains"], seeds, True,
                                                    settings)
    grid, point_of = [], {}
    for row, size, factor in tuning.sized_points(selection["best_per_size"]):
        label = sized_label(row, size)
        s = replace(settings, lr_scale=settings.lr_scale * factor)
        grid += jobs(backbone, [label], domains, seeds, s, data_dir, checkpoint, device)
        point_of[label] = (row, size, factor)
    out_dir = ex.check_writable(out_dir)
    records, wall = _run(grid, out_dir / f"runs_pareto_tlg_{backbone}.jsonl", executor, workers,
                         address, resume, progress, verbose)
    chosen_labels = {row: c["variant"] for row, c in selection["chosen"].items()}
    points = tuning.points(point_of, records, seeds, lambda r: r["test"][TABLE_METRIC],
                           chosen_labels)
    note = (_note(backbone, settings, seeds, lam) + " Equal effort: every row at the size and "
            "learning rate the tuning protocol chose on the validation split "
            "(readpvla.experiment.tuning; tuning_tlg_" + backbone + ".json).")
    rows = [(row, label) for row, label in chosen_labels.items()]
    used = [r for r in records if r["row"] in chosen_labels.values()]
    spec = table_spec(f"Table 1, equal effort (synthetic YouTube-Highlights domains, {backbone})",
                      rows, domains, note, temporal=_sliced(used))
    payload, md = _table(spec, used, seeds, note, backbone=backbone, metric=TABLE_METRIC,
                         settings={**asdict(settings), "lam": lam}, selection=selection["chosen"],
                         wall_seconds_pareto=round(wall, 1),
                         run_seconds=tuning.run_seconds(used))
    ex.write_table(out_dir, f"table1_tuned_{backbone}", payload, md)
    # wall_seconds: this call's (a resumed call counts only what it ran); run_seconds: the sum
    # of every run's own training time, however many calls made them
    out = {"backbone": backbone, "seeds": list(seeds), "domains": domains,
           "metric": f"test {TABLE_METRIC}, mean ± std over seeds of the mean over domains",
           "points": points, "wall_seconds": round(wall, 1),
           "run_seconds": tuning.run_seconds(records),
           "runs": tuning.point_runs(point_of, records, lambda r: r["test"][TABLE_METRIC])}
    ex.write_json(out_dir / f"pareto_tlg_{backbone}.json", out)
    return {**out, "table": payload}
