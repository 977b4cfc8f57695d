"""VLS under the equal-effort protocol (:mod:`readpvla.experiment.tuning`): every row of Tables
4 / 5 tuned with the same number of runs on the validation split, the accuracy-vs-parameters
points of every size, and the table again at the chosen settings.

1. :func:`tune`: every candidate (method x size x learning-rate factor; methods without a size
   knob a finer rate grid of the same length) fine-tunes with seed 0 and is scored by the
   **validation** ROUGE-L of greedy summaries of the model that selection by validation ROUGE-L
   kept (the untuned start included, :func:`~.transfer.finetune` with ``select="rouge"``); the
   test split is never touched (:func:`~.transfer.transfer_run` with ``test=False``). Writes
   ``tuning_<stem>.json`` and the runs as they finish (``<stem>``: ``vls_<backbone>``, or
   ``vls_hard_<backbone>`` on the hard target, :meth:`~.rows.TransferConfig.stem`).
2. :func:`pareto`: per method and size, that size's best rate on validation, with every seed,
   scored on the **test** split; writes ``pareto_<stem>.json`` (trainable parameters vs
   test ROUGE-1, mean ± std over seeds, the frontier; every Pareto run's score) and
   ``<stem>_tuned.{json,md}``:
   the table with each row at its chosen size and rate (a subset of the Pareto runs).

::

    from readpvla.tasks import vls
    sel = vls.tune("bart", out_dir="runs/vls_tuning", workers=2)
    out = vls.pareto("bart", sel, seeds=(0, 1, 2), out_dir="runs/vls_tuning", workers=2)

``readpvla tune-vls --backbone bart [--target hard] --out runs/vls_tuning --workers 2`` runs
both.
**(choices)** The budget is :meth:`~.rows.TransferConfig.tuning` (the shipped tables' 250 steps
and greedy decoding, with selection by validation ROUGE-L on 100 validation videos every 50
steps, so that no row ends below the untuned backbone unless it also does on validation); the
tuning runs use seed 0 only; the Pareto metric is ROUGE-1, the tables' Δ column's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from readpvla import experiment as ex
from readpvla.experiment import tuning

from .evaluate import video_note
from .pretrain import DATA_ROOT, backbone_class
from .rows import LABELS, METHODS, PEFT_METHOD, TransferConfig, sized_row
from .transfer import TITLES, has_video_slice, jobs, table_spec, untuned_scores

__all__ = ["candidate_jobs", "pareto", "tune"]

#: the tuning score (validation) and the Pareto / table metric (test)
VAL_METRIC, TEST_METRIC = "rougeL", "rouge1"


def _check_methods(methods: Sequence[str]) -> list[str]:
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"the tuning protocol covers the methods {list(METHODS)}; got "
                         f"{list(methods)}")
    return list(methods)


def _with_lr(config: TransferConfig, method: str, lr: float) -> TransferConfig:
    return replace(config, learning_rates=tuple(sorted(
        {**dict(config.learning_rates), method: lr}.items())))


def _check_budget(config: TransferConfig) -> None:
    if not (config.select == "rouge" and config.n_val > 0 and config.eval_every > 0):
        raise ValueError("the tuning protocol scores runs on validation: the config needs "
                         f"select='rouge', n_val > 0 and eval_every > 0 (got select="
                         f"{config.select!r}, n_val={config.n_val}, eval_every="
                         f"{config.eval_every}); TransferConfig.tuning() is the default")


def candidate_jobs(backbone: str, methods: Sequence[str] = METHODS,
                   config: TransferConfig | None = None,
                   factors: Sequence[float] = tuning.FACTORS, sizes: dict | None = None,
                   seed: int = 0, data_root: str | Path = DATA_ROOT,
                   checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
                   ) -> list[tuple[tuning.Candidate, ex.Job]]:
    """Every candidate of the protocol as a job: the method at the candidate's size
    (:func:`~.rows.sized_row`), learning rate ``config.lr(method) x factor``, split
    ``"val lr×<factor>"`` (scored on validation only; the split makes every key unique)."""
    config = config or TransferConfig.tuning()
    _check_budget(config)
    rows = {LABELS[m]: PEFT_METHOD[m] for m in _check_methods(methods)}
    method_of = {LABELS[m]: m for m in methods}
    out = []
    for c in tuning.candidates(rows, factors, sizes if sizes is not None else tuning.SIZES):
        m = method_of[c.row]
        cfg = _with_lr(config, m, config.lr(m) * c.factor)
        row = sized_row(m, c.size, config.bottleneck)
        out += [(c, j) for j in jobs(backbone, [row], [seed], cfg, data_root, checkpoint,
                                     device, split=f"val lr×{c.factor:.4g}")]
    return out


def tune(backbone: str = "bart", methods: Sequence[str] = METHODS,
         out_dir: str | Path = "runs/vls_tuning", *, config: TransferConfig | None = None,
         factors: Sequence[float] = tuning.FACTORS, sizes: dict | None = None,
         data_root: str | Path = DATA_ROOT, checkpoint: str | Path | None = None,
         device: str | torch.device = "cpu", workers: int = 1, executor: str = "local",
         address: str | None = None, resume: bool = False, progress: bool = True
         ) -> dict[str, Any]:
    """Step 1 (module docstring): every candidate scored on validation, the choice per method.
    Returns the selection (also ``out_dir/tuning_<stem>.json``): ``{"backbone",
    "settings", "metric", "factors", "wall_seconds"}`` plus
    :func:`readpvla.experiment.tuning.selection`'s ``candidates``, ``chosen``,
    ``best_per_size`` and ``budget`` (keyed by the tables' row labels)."""
    config = config or TransferConfig.tuning()
    pairs = candidate_jobs(backbone, methods, config, factors, sizes, 0, data_root, checkpoint,
                           device)
    out_dir = ex.check_writable(out_dir)
    t0 = time.perf_counter()
    records = ex.run_grid([j for _, j in pairs], executor, workers=workers, address=address,
                          records=out_dir / f"runs_tuning_{config.stem(backbone)}.jsonl", resume=resume,
                          progress=progress)
    by_key = {(r["row"], r["split"]): r for r in records}
    scores = {c: tuning.finite_or_zero(by_key[(j.row, j.split)].get("val", {}).get(VAL_METRIC))
              for c, j in pairs}
    jobs_of = {c: j for c, j in pairs}
    sel = {"backbone": backbone, "settings": asdict(config),
           "metric": f"validation {VAL_METRIC} (greedy, selected model), seed 0",
           "factors": list(factors), "wall_seconds": round(time.perf_counter() - t0, 1),
           **tuning.selection(scores, lambda c: jobs_of[c].row,
                              lambda c: jobs_of[c].settings.lr(jobs_of[c].row.partition(" (")[0]))}
    ex.write_json(out_dir / f"tuning_{config.stem(backbone)}.json", sel)
    return sel


def pareto(backbone: str, selection: dict[str, Any] | str | Path, seeds: Sequence[int] = (0, 1, 2),
           out_dir: str | Path = "runs/vls_tuning", *, data_root: str | Path = DATA_ROOT,
           checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
           workers: int = 1, executor: str = "local", address: str | None = None,
           resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Step 2 (module docstring): every method at every size (that size's best rate) with every
    seed on the test split; the points and their frontier, and the table at the chosen settings.
    Returns ``{"points": [...], "table": payload}``."""
    if not isinstance(selection, dict):
        selection = json.loads(Path(selection).read_text(encoding="utf-8"))
    if selection.get("backbone") != backbone:
        raise ValueError(f"the selection is for backbone {selection.get('backbone')!r}, not "
                         f"{backbone!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    settings = dict(selection["settings"])
    settings["learning_rates"] = tuple(tuple(x) for x in settings.get("learning_rates", ()))
    config = TransferConfig(**settings)
    method_of = {LABELS[m]: m for m in METHODS}
    grid, variants = [], {}
    for label, size, factor in tuning.sized_points(selection["best_per_size"]):
        m = method_of[label]
        row = sized_row(m, size, config.bottleneck)
        grid += jobs(backbone, [row], seeds, _with_lr(config, m, config.lr(m) * factor),
                     data_root, checkpoint, device)
        variants[row] = (label, size, factor)
    out_dir = ex.check_writable(out_dir)
    t0 = time.perf_counter()
    records = ex.run_grid(grid, executor, workers=workers, address=address,
                          records=out_dir / f"runs_pareto_{config.stem(backbone)}.jsonl", resume=resume,
                          progress=progress)
    wall = round(time.perf_counter() - t0, 1)
    chosen = {label: c["variant"] for label, c in selection["chosen"].items()}
    points = tuning.points(variants, records, seeds, lambda r: r["test"][TEST_METRIC], chosen)
    zs, test = untuned_scores(backbone, config, data_root, checkpoint, device)
    note = (f"Trainable #params (M) (%). Equal effort: every row at the size and learning rate "
            f"the tuning protocol chose on the validation split (readpvla.experiment.tuning; "
            f"tuning_{config.stem(backbone)}.json), model selection by validation ROUGE-L with the "
            f"untuned start a candidate. Pretrained backbone without tuning: R1 "
            f"{zs['rouge1']:.2f}, R2 {zs['rouge2']:.2f}, RL {zs['rougeL']:.2f}.")
    rows = list(chosen.values())
    used = [r for r in records if r["row"] in rows]
    video = has_video_slice(used)
    if video:
        note += f" {video_note(test)}"
    spec = table_spec(backbone, rows, seeds, note, title=TITLES[config.target] + ", equal effort,",
                      video=video)
    summary = ex.summarize(used, spec, seeds)
    md = ex.format_table(summary, spec)
    payload = ex.table_payload(
        spec, summary, used, seeds, task="vls", backbone=backbone,
        model=backbone_class(backbone).__name__, settings=asdict(config),
        zero_shot=zs, selection=selection["chosen"],
        time_s=wall, markdown=md)
    ex.write_table(out_dir, f"{config.stem(backbone)}_tuned", payload, md)
    out = {"backbone": backbone, "seeds": seeds, "metric": f"test {TEST_METRIC}, mean ± std "
           "over seeds", "points": points, "wall_seconds": wall,
           "run_seconds": tuning.run_seconds(records),
           "runs": tuning.point_runs(variants, records, lambda r: r["test"][TEST_METRIC])}
    ex.write_json(out_dir / f"pareto_{config.stem(backbone)}.json", out)
    return {**out, "table": payload}
