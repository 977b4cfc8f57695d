"""One TLG transfer run, and the tables made of them (the paper's Table 1 and Tables 6, 8, 9).

A run (:func:`run_one`; :func:`run` for a :class:`~readpvla.experiment.Job`) trains one row's
PEFT method on one target domain's 40 training queries with one seed, early-stopped on the
domain's 20 validation queries, and scores the 60 test queries. A table is a grid of runs (every
row x domain x seed) run by the shared experiment layer (:func:`readpvla.experiment.run_grid`:
local processes or Ray, records written as runs finish, ``resume``), summarised there
(mean ± std over seeds per domain, and the "Avg." column: per seed the mean over domains, then
mean ± std over seeds).

::

    from readpvla.tasks import tlg
    table = tlg.run_transfer("crossmodal", seeds=(0, 1, 2), out_dir="runs/tlg")  # table1.{json,md}
    table = tlg.run_transfer("crossmodal", executor="ray", address="auto", out_dir=...)
"""

from __future__ import annotations

import copy
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from readpvla import experiment as ex
from readpvla import ot, peft
from readpvla.backbones.checkpoint import load_backbone
from readpvla.data import collate_tlg
from readpvla.train import fit

from .data import DOMAINS, dataset, default_data_dir
from .evaluate import EXTRA_METRICS, PLAIN_METRIC, TABLE_METRIC, TEMPORAL_METRIC, evaluate
from .loss import LAMBDA, tlg_loss
from .pretrain import BACKBONES, check_backbone, default_checkpoint
from .rows import ABLATIONS, FULL, HPARAMS, QUICK, ROWS, TABLE1_ROWS, TransferSettings, Variant

__all__ = ["RERUN_TOLERANCE", "ROW_TOLERANCE", "compare_with_shipped", "jobs", "run",
           "run_ablations", "run_grid", "run_one", "run_transfer", "shipped_table"]


def _backbone_name(model: nn.Module) -> str:
    for short, cls in BACKBONES.items():
        if type(model).__name__ == cls:
            return short
    raise ValueError(f"not a TLG backbone: {type(model).__name__}")


def run_one(backbone: nn.Module, variant: Variant | str, domain: str, seed: int,
            settings: TransferSettings = QUICK, data_dir: str | Path | None = None,
            device: str | torch.device = "cpu", lam: float | None = None,
            lr: float | None = None, return_model: bool = False, trace: bool = False
            ) -> dict[str, Any]:
    """Train one method on one target domain with one seed; evaluate on the domain's test split.

    A deep copy of ``backbone`` gets the variant's PEFT method (under ``torch.manual_seed(seed)``),
    is trained with :func:`~readpvla.tasks.tlg.loss.tlg_loss` on ``{domain}_train`` and
    early-stopped on ``{domain}_val``.

    Returns:
        A record: ``row`` (the variant's label), ``method``, ``align``, ``split`` (the domain),
        ``seed``, ``params`` (the "#params (M) (%)" string), ``trainable``, ``total``, ``lr``
        (the learning rate used: the method's x ``settings.lr_scale`` x the row's
        ``lr_factor``), ``test``
        (metrics dict), ``per_item`` (each test metric per query, in ``item_ids`` order: the
        qids in file order; ``MR-full-mAP`` per query is its AP averaged over the IoU
        thresholds, whose mean is the table number), ``item_ids``, ``val_best`` (best
        validation MR-full-mAP), ``best_epoch``,
        ``epochs_run``, ``seconds``, ``ot_unconverged_steps`` (if some PVLA plan missed ``tol``);
        with ``return_model`` also ``model``; with ``trace`` also ``history``: per epoch
        ``{"epoch", "val", "test"}`` (the test split is only looked at, never used to select).
    """
    v = ROWS[variant] if isinstance(variant, str) else variant
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    train = dataset(root, f"{domain}_train")
    val = dataset(root, f"{domain}_val")
    test = dataset(root, f"{domain}_test")
    name = _backbone_name(backbone)
    if lam is None:  # the argument, else the row's, else the settings', else the backbone's
        lam = v.lam if v.lam is not None else (settings.lam if settings.lam is not None
                                                else LAMBDA[name])
    mass = v.mass if v.mass is not None else settings.mass
    hp = HPARAMS[v.method]
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = peft.apply(copy.deepcopy(backbone), v.config()).to(device)
    count = peft.count_parameters(model)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=settings.batch_size, shuffle=True, generator=gen,
                        collate_fn=collate_tlg)
    loss_fn = partial(tlg_loss, lam=lam, align=v.align, mass=mass, tau=settings.tau,
                      max_iter=settings.max_iter, tol=settings.tol)

    def eval_fn(m: nn.Module) -> dict[str, float]:
        scores = {"val": evaluate(m, val)[TABLE_METRIC]}
        if trace:
            scores["test"] = evaluate(m, test)[TABLE_METRIC]
        return scores

    with warnings.catch_warnings():  # counted in the record instead of one warning per run
        warnings.simplefilter("ignore", ot.ConvergenceWarning)
        lr_used = (lr if lr is not None else hp["lr"]) * settings.lr_scale * v.lr_factor
        res = fit(model, loss_fn, loader, epochs=settings.epochs, lr=lr_used,
                  weight_decay=hp["weight_decay"], seed=seed, device=device,
                  eval_fn=eval_fn, monitor="val", patience=settings.patience, progress=False)
    metrics = evaluate(model, test, per_item=True)
    record = {
        "row": v.label, "method": v.method, "align": v.align, "split": domain, "seed": seed,
        "params": str(count), "trainable": count.trainable, "total": count.total, "lr": lr_used,
        **({"lam": lam, "mass": mass} if v.align != "none" else {}),
        "test": {k: metrics[k] for k in (TABLE_METRIC, *EXTRA_METRICS, TEMPORAL_METRIC,
                                         PLAIN_METRIC) if k in metrics},
        "per_item": metrics["per_item"], "item_ids": metrics["item_ids"],
        "val_best": res.best_metric, "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if res.ot_unconverged_steps:  # training steps whose PVLA plan missed `tol` (max_iter hit)
        record["ot_unconverged_steps"] = res.ot_unconverged_steps
    if trace:
        record["history"] = [{"epoch": h["epoch"], "val": h["val"], "test": h["test"]}
                             for h in res.history]
    if return_model:
        record["model"] = model
    return record


# -- the task's part of the experiment layer ------------------------------------------------------
_BACKBONES: dict[str, nn.Module] = {}  # per process: each worker loads a checkpoint once


def run(job: ex.Job) -> dict[str, Any]:
    """One grid job (:class:`readpvla.experiment.Job` with ``task="tlg"``): :func:`run_one` from
    the job's checkpoint (loaded once per process), data, settings and device."""
    if job.checkpoint not in _BACKBONES:
        _BACKBONES[job.checkpoint] = load_backbone(job.checkpoint)
    # a tuning job's split is "<domain> lr×<factor>" (.tuning.candidate_jobs)
    domain = job.split.split(" ", 1)[0]
    rec = run_one(_BACKBONES[job.checkpoint], job.row, domain, job.seed, job.settings,
                  job.data_dir, job.device)
    return {k: v for k, v in rec.items() if k not in ("row", "split", "seed")}


def jobs(backbone: str, variants: Sequence[str], domains: Sequence[str], seeds: Sequence[int],
         settings: TransferSettings = QUICK, data_dir: str | Path | None = None,
         checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
         ) -> list[ex.Job]:
    """The grid of a TLG table as jobs, in the order (domain, seed, variant); checks every name
    before anything runs."""
    check_backbone(backbone)
    unknown = [v for v in variants if v not in ROWS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(ROWS)}")
    bad = [d for d in domains if d not in DOMAINS]
    if bad:
        raise ValueError(f"unknown domain(s) {bad}; known: {list(DOMAINS)}")
    if not seeds:
        raise ValueError("seeds is empty")
    ckpt = str(checkpoint if checkpoint is not None else default_checkpoint(backbone))
    root = str(data_dir if data_dir is not None else default_data_dir())
    return [ex.Job("tlg", v, d, int(s), backbone, ckpt, root, settings, str(device))
            for d in domains for s in seeds for v in variants]


def run_grid(backbone: str, variants: Sequence[str], domains: Sequence[str], seeds: Sequence[int],
             settings: TransferSettings = QUICK, data_dir: str | Path | None = None,
             checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
             workers: int = 1, progress: bool = True,
             log: Callable[[dict[str, Any]], None] | None = None,
             records: str | Path | None = None, resume: bool = False,
             executor: str = "local", address: str | None = None) -> list[dict[str, Any]]:
    """Every (variant, domain, seed) run of :func:`run_one`: :func:`jobs` run by
    :func:`readpvla.experiment.run_grid` (see there for ``executor``, ``workers``, ``address``,
    ``records``, ``resume``). On one machine the records are the same for any executor and any
    ``workers`` (one torch thread per run); another CPU gives other last digits (DESIGN.md fact 7,
    ``data_samples/tlg/results/README.md``)."""
    return ex.run_grid(jobs(backbone, variants, domains, seeds, settings, data_dir, checkpoint,
                            device), executor, workers=workers, address=address,
                       records=records, resume=resume, progress=progress, log=log)


def _describe(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['row']:>20s} {r['split']:>8s} seed {r['seed']}: FAILED: {r['error']}"
    return (f"{r['row']:>20s} {r['split']:>8s} seed {r['seed']}: "
            f"{TABLE_METRIC} {r['test'].get(TABLE_METRIC, float('nan')):6.2f} "
            f"(epoch {r['best_epoch']}/{r['epochs_run']}, {r['seconds']:.1f} s"
            + (f"; {r['ot_unconverged_steps']} steps with an unconverged PVLA plan"
               if r.get("ot_unconverged_steps") else "") + ")")


# -- tables ---------------------------------------------------------------------------------------
def _sliced(records: Sequence[dict[str, Any]]) -> bool:
    """Every record has the temporal-queries metric (runs of the synthetic benchmark made since
    the slices existed): the table gets its "Temporal" column."""
    return bool(records) and all(TEMPORAL_METRIC in r.get("test", {}) for r in records)


def table_spec(title: str, rows: Sequence[tuple[str, str]], domains: Sequence[str], note: str,
               temporal: bool = False) -> ex.TableSpec:
    """Table 1's shape: one column per domain and "Avg." (MR-full-mAP), the other metrics in the
    JSON; with ``temporal`` a "Temporal" column (MR-full-mAP on the queries that need order,
    "after" / "before", averaged over domains: :data:`~.evaluate.TEMPORAL_METRIC`); "Δ vs
    READ-PVLA": each row's difference on "Avg." with a 95% paired bootstrap interval over test
    queries x seeds (:class:`readpvla.experiment.Delta`; ``n/a`` for records without per-query
    scores)."""
    # the reference is the row shown as READ-PVLA (a tuned table's key may be a sized row)
    ref = next((key for shown, key in rows if key == "READ-PVLA"),
               next((key for shown, key in rows if shown == "READ-PVLA"), None))
    return ex.TableSpec(
        title=title, rows=tuple(rows),
        columns=tuple([ex.Column(DOMAINS[d], d, TABLE_METRIC) for d in domains]
                      + [ex.Column("Avg.", "avg", TABLE_METRIC)]
                      + ([ex.Column("Temporal", "avg", TEMPORAL_METRIC)] if temporal else [])),
        splits=tuple(domains), note=note, extra_metrics=EXTRA_METRICS,
        delta=ex.Delta(ref, "Avg.") if ref is not None else None)


def _note(backbone: str, settings: TransferSettings, seeds: Sequence[int], lam: float) -> str:
    return (f"{TABLE_METRIC} (%, QVHighlights protocol) on each synthetic target domain's test "
            f"split (60 queries), "
            + (f"mean ± std over seeds {list(seeds)}" if len(seeds) > 1 else f"seed {seeds[0]}")
            + f"; backbone `{backbone}` "
            f"(frozen, pretrained on the source split). Budget for every method: "
            f"<= {settings.epochs} epochs over 40 training queries, batch {settings.batch_size}, "
            f"early stopping on the 20-query validation split (patience {settings.patience}). "
            f"PVLA: lambda = {lam}, mass = {settings.mass}, tau = {settings.tau}, "
            f"<= {settings.max_iter} Sinkhorn iterations (tol {settings.tol}).")


def _resolve_common(backbone, domains, seeds, quick, settings):
    check_backbone(backbone)
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    settings = settings if settings is not None else (QUICK if quick else FULL)
    lam = settings.lam if settings.lam is not None else LAMBDA[backbone]
    return domains, seeds, settings, lam


def _run(grid: list[ex.Job], records: Path, executor: str, workers: int, address: str | None,
         resume: bool, progress: bool, verbose: bool) -> tuple[list[dict[str, Any]], float]:
    """The grid through the shared runner, its records streamed to ``records``; wall seconds."""
    t0 = time.perf_counter()
    log = (lambda r: print(_describe(r), file=sys.stderr)) if verbose else None
    out = ex.run_grid(grid, executor, workers=workers, address=address, records=records,
                      resume=resume, progress=progress, log=log)
    return out, time.perf_counter() - t0


def _table(spec: ex.TableSpec, records: list[dict[str, Any]], seeds: Sequence[int],
           note: str, **extra: Any) -> tuple[dict[str, Any], str]:
    summary = ex.summarize(records, spec, seeds)
    payload = ex.table_payload(spec, summary, records, seeds, task="tlg", **extra)
    return payload, ex.format_table(summary, spec, note)


def run_transfer(backbone: str = "crossmodal", methods: Sequence[str] | None = None,
                 domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                 quick: bool = True, out_dir: str | Path = "runs/tlg_transfer",
                 device: str | torch.device = "cpu", *, data_dir: str | Path | None = None,
                 checkpoint: str | Path | None = None, settings: TransferSettings | None = None,
                 workers: int = 1, progress: bool = True, verbose: bool = False,
                 resume: bool = False, executor: str = "local", address: str | None = None
                 ) -> dict[str, Any]:
    """The low-resource transfer experiment: the paper's Table 1 on the synthetic domains.

    Every method in ``methods`` (row labels of :data:`~readpvla.tasks.tlg.rows.ROWS`, default
    :data:`~readpvla.tasks.tlg.rows.TABLE1_ROWS`: Full, Partial, Bias, Proj, LoRA, Prompt,
    Adapter, READ (no alignment), READ-PVLA) is trained from the same frozen pretrained backbone
    on each target domain with each seed (:func:`run_one`), and ``out_dir/table1.json`` +
    ``out_dir/table1.md`` are written: #params (M) (%), MR-full-mAP per domain and Avg., mean ±
    std over seeds (JSON also: HL-min-VeryGood-mAP, MR-full-R1@0.5, every run's record, timings,
    settings).

    Args:
        backbone: ``"crossmodal"`` or ``"momentdetr"``.
        methods: row labels (default the nine of Table 1).
        domains: target domains (default all six).
        seeds: seeds; each (method, domain, seed) is one run.
        quick: :data:`QUICK` (default budget) or :data:`FULL` (more epochs, 1000 Sinkhorn iters).
        out_dir: where the table files go (checked before any training).
        device: training device.
        data_dir: folder with the target splits (default the shipped ``data_samples/tlg``).
        checkpoint: backbone checkpoint (default the shipped one).
        settings: explicit :class:`TransferSettings` (overrides ``quick``).
        workers: local worker processes (``executor="local"``).
        progress: tqdm bar over runs.
        verbose: print one line per run to stderr.
        resume: take the runs already finished in ``out_dir/runs_table1.jsonl`` (where every
            run's record is written as soon as it finishes) instead of running them again.
        executor: ``"local"`` or ``"ray"`` (:mod:`readpvla.experiment.executors`).
        address: the Ray cluster (``executor="ray"``; None: a local Ray on this machine).

    Returns:
        The JSON payload (also written).
    """
    domains, seeds, settings, lam = _resolve_common(backbone, domains, seeds, quick, settings)
    methods = list(methods) if methods is not None else list(TABLE1_ROWS)
    grid = jobs(backbone, methods, domains, seeds, settings, data_dir, checkpoint, device)
    out_dir = ex.check_writable(out_dir)  # before any work: a table must not be lost at the end
    records, wall = _run(grid, out_dir / "runs_table1.jsonl", executor, workers, address, resume,
                         progress, verbose)
    note = _note(backbone, settings, seeds, lam)
    spec = table_spec(f"Table 1 (synthetic YouTube-Highlights domains, {backbone})",
                      [(m, m) for m in methods], domains, note,
                      temporal=_sliced(records))
    payload, md = _table(spec, records, seeds, note + f" Wall time: {wall:.0f} s.",
                         backbone=backbone, metric=TABLE_METRIC,
                         settings={**asdict(settings), "lam": lam}, hparams=HPARAMS,
                         wall_seconds=round(wall, 1), executor=executor, workers=workers)
    ex.write_table(out_dir, "table1", payload, md)
    return payload


def run_ablations(backbone: str = "crossmodal", tables: Sequence[int] = (6, 8, 9),
                  domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                  quick: bool = True, out_dir: str | Path = "runs/tlg_transfer",
                  device: str | torch.device = "cpu", *, data_dir: str | Path | None = None,
                  checkpoint: str | Path | None = None, settings: TransferSettings | None = None,
                  workers: int = 1, progress: bool = True, verbose: bool = False,
                  resume: bool = False, executor: str = "local", address: str | None = None
                  ) -> dict[int, dict[str, Any]]:
    """The ablations of Tables 6 (no alignment / VLA / PVLA), 8 (RNN / GRU / LSTM) and 9 (pooled
    distances vs partial OT), in the same protocol as :func:`run_transfer`; writes
    ``table{6,8,9}.json`` and ``.md`` into ``out_dir`` (every run's record as it finishes into
    ``out_dir/runs_ablations.jsonl``, which ``resume`` continues). Runs shared between tables
    (READ-PVLA) run once. Returns ``{table number: payload}``."""
    domains, seeds, settings, lam = _resolve_common(backbone, domains, seeds, quick, settings)
    bad = [t for t in tables if t not in ABLATIONS]
    if bad:
        raise ValueError(f"unknown ablation table(s) {bad}; known: {sorted(ABLATIONS)}")
    needed: list[str] = []
    for t in tables:
        for _, label in ABLATIONS[t][1]:
            if label not in needed:
                needed.append(label)
    grid = jobs(backbone, needed, domains, seeds, settings, data_dir, checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    records, wall = _run(grid, out_dir / "runs_ablations.jsonl", executor, workers, address,
                         resume, progress, verbose)
    note = _note(backbone, settings, seeds, lam)
    out: dict[int, dict[str, Any]] = {}
    for t in tables:
        title, rows = ABLATIONS[t]
        labels = {label for _, label in rows}
        spec = table_spec(f"{title}, {backbone}", rows, domains, note,
                          temporal=_sliced([r for r in records if r["row"] in labels]))
        payload, md = _table(spec, [r for r in records if r["row"] in labels], seeds, note,
                             backbone=backbone, metric=TABLE_METRIC,
                             settings={**asdict(settings), "lam": lam},
                             wall_seconds_all_ablations=round(wall, 1), executor=executor)
        ex.write_table(out_dir, f"table{t}", payload, md)
        out[t] = payload
    return out


# -- agreement with the shipped tables across machines ----------------------------------------
#: How far (MR-full-mAP points) a rerun of one shipped run may land from the stored one on another
#: machine. Runs are bit-exact on one machine, but another CPU's float kernels change the last
#: digits, training amplifies them and early stopping can pick another epoch (DESIGN.md fact 7).
#: Measured with ``benchmarks/bench_portability.py`` (9 methods x 2 domains x 2 seeds under
#: ATEN_CPU_CAPABILITY default / avx2 / avx512): 22 of 36 runs identical, |difference| median 0,
#: 95th percentile 3.0, largest 6.7 (seed-to-seed std of one run: 0.9-4.6). 10 = 1.5x the largest.
RERUN_TOLERANCE = 10.0
#: How far the mean over >= 6 reruns (e.g. one row, one seed, all six domains) may land from the
#: mean of the same shipped runs: the per-run differences above have mean 0.0 and std 1.0-1.7, so
#: the std of a mean of 6 is <= 0.7 and 3 is more than 4 of them.
ROW_TOLERANCE = 3.0


def shipped_table(backbone: str, table: int = 1) -> dict[str, Any] | None:
    """The shipped payload ``data_samples/tlg/results/table{table}_{backbone}.json`` (None if
    absent)."""
    check_backbone(backbone)
    path = default_data_dir() / "results" / f"table{table}_{backbone}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def compare_with_shipped(records: Sequence[dict[str, Any]], backbone: str,
                         settings: TransferSettings = QUICK, tol: float = RERUN_TOLERANCE,
                         tables: Sequence[int] = (1, 6, 8, 9), metric: str = TABLE_METRIC
                         ) -> dict[str, Any]:
    """Set fresh run records beside the shipped runs with the same (row, domain, seed), made
    with the same ``settings`` (shipped tables made with other settings are not used).

    Returns ``{"tol", "pairs": [{"row", "split", "seed", "this", "shipped", "delta"}],
    "missing": [(row, split, seed) without a shipped run], "outside": [pairs with |delta| >
    tol], "verdict": str}``. The verdict names no volatile number, so it reads the same on every
    machine where the runs agree within ``tol`` (what a notebook can show under nbval).
    """
    lam = settings.lam if settings.lam is not None else LAMBDA[backbone]
    wanted = {**asdict(settings), "lam": lam}
    shipped: dict[tuple[str, str, int], dict[str, Any]] = {}
    for t in tables:
        payload = shipped_table(backbone, t)
        if payload is None or payload.get("settings") != wanted:
            continue
        for r in payload["runs"]:
            shipped[(r["row"], r["split"], int(r["seed"]))] = r
    return ex.compare_runs(records, list(shipped.values()), metric, tol)
