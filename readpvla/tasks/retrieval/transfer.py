"""One retrieval transfer run, and the tables made of them.

A run (:func:`run_one`; :func:`run` for a :class:`~readpvla.experiment.Job`) applies one row's PEFT
method to a fresh copy of the pretrained video CLIP (under the seed), fine-tunes it with the
symmetric InfoNCE on a target domain's training split (480 videos, one of 5 captions each per
pass), and scores that domain's test split (192 videos, one caption each: the 1k-A protocol
scaled down) with CLIP4Clip's text-to-video and video-to-text metrics, and the order-only pairs
(:func:`~.evaluate.order_pairs`). A table is the grid of rows x domains x seeds, run and
summarised by :mod:`readpvla.experiment`.

**Learning rates: one protocol** (:func:`select_lr`). For each row, train at its base rate
(:data:`~.rows.HPARAMS`) x each of ``factors`` (default 1/3, 1, 3) on one target domain's
training split minus a fixed hold-out of 96 of its 480 videos (``TransferSettings.n_val``;
:func:`~.data.train_val`, seeded, the same on every machine), with the table's budget and
seed 0, and score text-to-video R@1 on the hold-out; the row's rate is the best one (a tie goes to the smaller rate). The test splits
are never used to choose. The chosen rates go into ``lr_selection_<temporal>.json``; the table
(:func:`run_transfer` with ``lrs=``) then trains every row at its chosen rate on all 480
training videos and records the rates in its JSON.

::

    from readpvla.tasks import retrieval
    sel = retrieval.select_lr("frames", out_dir="runs/retrieval")           # the protocol
    table = retrieval.run_transfer("frames", seeds=(0, 1, 2), out_dir="runs/retrieval",
                                   lrs=sel["lrs"])
"""

from __future__ import annotations

import copy
import json
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from readpvla import experiment as ex
from readpvla import ot, peft
from readpvla.train import fit

from .data import DOMAINS, TrainBatches, data_root, dataset, train_val
from .evaluate import EXTRA_METRICS, TABLE_METRIC, evaluate
from .loss import describe_loss, loss_fn
from .pretrain import TEMPORAL, default_checkpoint, load
from .rows import HPARAMS, QUICK, ROWS, TABLE_ROWS, Row, TransferSettings, row_key

__all__ = ["FACTORS", "jobs", "load_lrs", "lr_jobs", "run", "run_one", "run_transfer",
           "select_lr", "table_spec"]

#: the learning-rate protocol's multiples of each row's base rate
FACTORS = (1 / 3, 1.0, 3.0)


def run_one(backbone: nn.Module, row: Row | str, domain: str, seed: int,
            settings: TransferSettings = QUICK, root: str | Path | None = None,
            device: str | torch.device = "cpu", return_model: bool = False) -> dict[str, Any]:
    """Fine-tune one row on one target domain with one seed; evaluate on the domain's test split.

    With ``settings.validation`` (the learning-rate protocol, :func:`select_lr`) it trains on the
    domain's training split minus its hold-out and scores the hold-out (``{domain}_val``, no
    order pairs); otherwise it trains on the whole training split and scores the test split,
    order pairs included (the recognition labels of the same test videos).

    Returns:
        A record: ``row``, ``method``, ``split`` (the domain), ``seed``, ``params``,
        ``trainable``, ``total``, ``loss`` (what it trained with, e.g. ``"infonce"``),
        ``lr``, ``weight_decay``, ``eval_split``, ``test`` (metrics on ``eval_split``:
        retrieval and ``order_pairs``), ``per_item`` (per-caption text-to-video R@1 hits and
        per-video order-pair hits, for paired tests), ``epochs_run``, ``seconds``; ``model``
        with ``return_model``.
    """
    r = ROWS[row] if isinstance(row, str) else row
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {list(DOMAINS)}")
    t0 = time.perf_counter()
    labels = None
    if settings.validation:
        train, test = train_val(domain, root, settings.n_val)
    else:
        from readpvla.tasks.recognition.data import dataset as recognition_dataset

        train, test = None, dataset(f"{domain}_test", root)
        labels = recognition_dataset(f"{domain}_test", root)
    torch.manual_seed(seed)
    model = copy.deepcopy(backbone)
    epochs = 0
    lr = wd = None
    if r.method is not None:
        model = peft.apply(model, r.config())
        lr, wd = settings.lr(r), settings.weight_decay(r)
        train = train if train is not None else dataset(f"{domain}_train", root)
        batches = TrainBatches(train, model.tokenize, settings.batch_size, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ot.ConvergenceWarning)
            res = fit(model.to(device), loss_fn(r.align, r.lam), batches, epochs=settings.epochs,
                      lr=lr, weight_decay=wd, seed=seed, device=device,
                      warmup_steps=settings.warmup_steps, schedule="cosine", progress=False,
                      desc=f"{r.label} {domain}")
        epochs = res.epochs_run
    count = peft.count_parameters(model) if r.method is not None else \
        peft.ParamCount(0, peft.count_parameters(model).total)
    metrics = evaluate(model.to(device), test, dsl=settings.dsl, per_item=True, labels=labels)
    record = {"row": r.label, "method": r.method, "split": domain, "seed": seed,
              "params": str(count), "trainable": count.trainable, "total": count.total,
              "loss": describe_loss(r.align, r.lam) if r.method is not None else None,
              "lr": lr, "weight_decay": wd, "eval_split": test.split,
              "test": {k: v for k, v in metrics.items() if k != "per_item"},
              "per_item": metrics["per_item"], "epochs_run": epochs,
              "seconds": round(time.perf_counter() - t0, 3)}
    if return_model:
        record["model"] = model
    return record


# -- the task's part of the experiment layer ------------------------------------------------------
_BACKBONES: dict[str, nn.Module] = {}


def run(job: ex.Job) -> dict[str, Any]:
    """One grid job (``task="retrieval"``): :func:`run_one` from the job's checkpoint (loaded
    once per process)."""
    if job.checkpoint not in _BACKBONES:
        _BACKBONES[job.checkpoint] = load(checkpoint=job.checkpoint)
    # a learning-rate protocol job's split is "<domain> lr=<lr>" (select_lr's grid)
    domain = job.split.split(" ", 1)[0]
    rec = run_one(_BACKBONES[job.checkpoint], job.row, domain, job.seed, job.settings,
                  job.data_dir, job.device)
    return {k: v for k, v in rec.items() if k not in ("row", "split", "seed")}


def jobs(temporal: str, rows: Sequence[str], domains: Sequence[str], seeds: Sequence[int],
         settings: TransferSettings = QUICK, root: str | Path | None = None,
         checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
         ) -> list[ex.Job]:
    """The grid of a retrieval table as jobs, in the order (domain, seed, row). Each job's
    settings hold only its own row's learning rate (``lrs``), so a record stands for its run
    whatever the other rows' rates are (a new rate for one row reruns that row only)."""
    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
    ex.check_grid(rows, list(ROWS), domains, list(DOMAINS), seeds)
    ckpt = str(checkpoint if checkpoint is not None else default_checkpoint(temporal))
    data = str(data_root(f"{domains[0]}_train", root))  # the cache: train and test splits
    own = {r: replace(settings, lrs=((r, settings.lr(ROWS[r])),) if ROWS[r].method else ())
           for r in rows}
    return [ex.Job("retrieval", r, d, int(s), temporal, ckpt, data, own[r], str(device))
            for d in domains for s in seeds for r in rows]


def _lr_split(domain: str, lr: float) -> str:
    return f"{domain} lr={lr:.4g}"


def lr_jobs(temporal: str, rows: Sequence[str] | None = None, domain: str = "flat",
            factors: Sequence[float] = FACTORS, seed: int = 0,
            settings: TransferSettings = QUICK, root: str | Path | None = None,
            checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
            ) -> list[ex.Job]:
    """The learning-rate protocol's grid (:func:`select_lr`): per row with a method (Zero-shot
    has nothing to train) and per factor, one job on ``domain`` with ``settings.validation`` and
    that row's rate ``base x factor`` in ``settings.lrs``; its split is ``"<domain> lr=<lr>"``
    (so the keys stay unique)."""
    rows = [r for r in (rows if rows is not None else TABLE_ROWS)
            if r not in ROWS or ROWS[r].method is not None]
    factors = [float(f) for f in factors]
    if not factors or any(not f > 0 for f in factors) or len(set(factors)) != len(factors):
        raise ValueError(f"factors must be distinct numbers > 0, got {factors}")
    base = jobs(temporal, rows, [domain], [seed], settings, root, checkpoint, device)
    out = []
    for j in base:
        r = ROWS[j.row]
        base_lr = HPARAMS[row_key(r)]["lr"] * settings.lr_scale
        for f in factors:
            lr = base_lr * f
            s = replace(settings, validation=True, lrs=((r.label, lr),))
            out.append(replace(j, split=_lr_split(domain, lr), settings=s))
    return out


def select_lr(temporal: str = "frames", rows: Sequence[str] | None = None, domain: str = "flat",
              factors: Sequence[float] = FACTORS, seed: int = 0,
              out_dir: str | Path = "runs/retrieval", device: str | torch.device = "cpu", *,
              settings: TransferSettings = QUICK, root: str | Path | None = None,
              checkpoint: str | Path | None = None, workers: int = 1, executor: str = "local",
              address: str | None = None, resume: bool = False, progress: bool = True,
              verbose: bool = False) -> dict[str, Any]:
    """The learning-rate protocol (module docstring): every row (default all but Zero-shot) at
    its base rate x each of ``factors``, trained on ``domain``'s training split minus its
    validation hold-out with ``settings``' budget and ``seed``, scored by text-to-video R@1 on
    the hold-out; per row the best rate (ties: the smaller rate).

    Every run's record goes to ``out_dir/runs_lr_selection_<temporal>.jsonl`` as it finishes
    (through :func:`readpvla.experiment.run_grid`: ``executor="ray"``, ``resume`` work as for the
    tables); the result is written to ``out_dir/lr_selection_<temporal>.json``.

    Returns:
        ``{"protocol", "temporal", "domain", "seed", "factors", "metric", "n_val",
        "settings", "scores": {row: {lr: val t2v_R1}}, "lrs": {row: chosen lr},
        "wall_seconds"}`` (what the JSON holds); pass ``lrs`` to :func:`run_transfer`.
    """
    grid = lr_jobs(temporal, rows, domain, factors, seed, settings, root, checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    t0 = time.perf_counter()

    def log(r: dict[str, Any]) -> None:
        msg = r.get("error") or f"val {TABLE_METRIC} {r['test'][TABLE_METRIC]:6.2f}"
        print(f"{r['row']:>10s} {r['split']:>16s}: {msg}", file=sys.stderr)

    records = ex.run_grid(grid, executor, workers=workers, address=address,
                          records=out_dir / f"runs_lr_selection_{temporal}.jsonl",
                          resume=resume, progress=progress, log=log if verbose else None)
    scores: dict[str, dict[float, float]] = {}
    for job, rec in zip(grid, records):
        lr = dict(job.settings.lrs)[job.row]
        scores.setdefault(job.row, {})[lr] = float(rec["test"][TABLE_METRIC])
    # the best validation R@1; a tie goes to the smaller rate
    chosen = {row: min(s, key=lambda lr: (-s[lr], lr)) for row, s in scores.items()}
    result = {
        "protocol": (f"per row: base lr (HPARAMS) x each factor {[round(f, 4) for f in factors]}, "
                     f"trained on {domain}_train minus a seeded hold-out of {settings.n_val} "
                     f"videos ({domain}_val), seed {seed}, the table's budget; the lr with the best "
                     f"{domain}_val text-to-video R@1 (ties: the smaller lr)"),
        "temporal": temporal, "domain": domain, "seed": int(seed),
        "factors": [float(f) for f in factors], "metric": f"val {TABLE_METRIC}",
        "n_val": settings.n_val, "settings": asdict(settings),
        "scores": {row: {f"{lr:.6g}": v for lr, v in s.items()} for row, s in scores.items()},
        "lrs": chosen, "wall_seconds": round(time.perf_counter() - t0, 1)}
    tmp = out_dir / f".lr_selection_{temporal}.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / f"lr_selection_{temporal}.json")
    return result


def load_lrs(source: str | Path | Mapping[str, float]) -> dict[str, float]:
    """Chosen learning rates ``{row: lr}`` from :func:`select_lr`'s result or its JSON file
    (``lr_selection_<temporal>.json``), or a plain ``{row: lr}`` mapping; unknown rows and rates
    that are not finite numbers > 0 raise (:func:`readpvla.experiment.load_lrs`)."""
    return ex.load_lrs(source, ROWS)


def table_spec(title: str, rows: Sequence[str], domains: Sequence[str], note: str,
               reference: str | None = "RAP") -> ex.TableSpec:
    """Rows x (text-to-video R@1 per domain, Avg., Avg. after the dual softmax (the paper's "*"
    rows), the order-only pairs' accuracy averaged over domains; per domain in the JSON), and
    "Δ vs ``reference``" (default RAP, when it is a row): each row's difference on "Avg." with a
    95% paired bootstrap interval over test captions x seeds (:class:`readpvla.experiment.Delta`;
    it replaced the one-sided Wilcoxon ``‡`` marks)."""
    return ex.TableSpec(
        title=title, rows=tuple((r, r) for r in rows),
        columns=tuple([ex.Column(d, d, TABLE_METRIC) for d in domains]
                      + [ex.Column("Avg.", "avg", TABLE_METRIC),
                         ex.Column("Avg. DSL", "avg", f"{TABLE_METRIC}_dsl"),
                         ex.Column("Order pairs", "avg", "order_pairs")]),
        splits=tuple(domains), note=note, extra_metrics=EXTRA_METRICS,
        delta=ex.Delta(reference, "Avg.") if reference in rows else None)


def run_transfer(temporal: str = "frames", rows: Sequence[str] | None = None,
                 domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                 out_dir: str | Path = "runs/retrieval", device: str | torch.device = "cpu", *,
                 settings: TransferSettings = QUICK, root: str | Path | None = None,
                 checkpoint: str | Path | None = None, workers: int = 1,
                 executor: str = "local", address: str | None = None, resume: bool = False,
                 progress: bool = True, verbose: bool = False,
                 lrs: str | Path | Mapping[str, float] | None = None,
                 name: str = "retrieval") -> dict[str, Any]:
    """Text-video retrieval transfer: every row (default :data:`~.rows.TABLE_ROWS`, Zero-shot
    first) on every target domain with every seed, from the pretrained ``temporal`` video CLIP;
    writes ``out_dir/retrieval_<temporal>.{json,md}`` (text-to-video R@1 per domain and Avg.,
    mean ± std over seeds; the other metrics, order pairs among them, in the JSON) and each run's
    record into ``out_dir/runs_retrieval_<temporal>.jsonl`` as it finishes (``resume`` continues
    it). ``lrs``: the chosen learning rates (:func:`select_lr`'s result or JSON file, or
    ``{row: lr}``); rows not in it use their base rate. The JSON's ``lrs`` holds every trained
    row's rate and ``losses`` its training loss. ``name``: the files' stem (``"retrieval"``; RAP's
    ablations use ``"retrieval_ablations"``)."""
    rows = list(rows) if rows is not None else list(TABLE_ROWS)
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    if lrs is not None:
        settings = replace(settings, lrs=tuple({**dict(settings.lrs), **load_lrs(lrs)}.items()))
    grid = jobs(temporal, rows, domains, seeds, settings, root, checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    t0 = time.perf_counter()

    def log(r: dict[str, Any]) -> None:
        msg = r.get("error") or f"{TABLE_METRIC} {r['test'][TABLE_METRIC]:6.2f}"
        print(f"{r['row']:>10s} {r['split']:>6s} seed {r['seed']}: {msg}", file=sys.stderr)

    records = ex.run_grid(grid, executor, workers=workers, address=address,
                          records=out_dir / f"runs_{name}_{temporal}.jsonl", resume=resume,
                          progress=progress, log=log if verbose else None)
    wall = time.perf_counter() - t0
    note = ("Text-to-video R@1 (%, CLIP4Clip's evaluation) on each rendered target domain's "
            "test split (192 videos, one caption each), "
            "and accuracy (%, chance 50) on its order-only pairs (a class prompt vs its reverse "
            "partner's, for each video of an order-only class), "
            + (f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}")
            + f"; backbone: the video CLIP `{temporal}` pretrained on the source split. Every "
            f"row: {settings.epochs} epochs over the domain's 480 training videos, batch "
            f"{settings.batch_size}, the last epoch's weights"
            + (", learning rates chosen on a validation hold-out (lr_selection)"
               if settings.lrs else "") + ".")
    what = "RAP ablations" if name != "retrieval" else "Text-video retrieval"
    spec = table_spec(f"{what} (rendered benchmark, {temporal})", rows, domains, note)
    summary = ex.summarize(records, spec, seeds)
    md = ex.format_table(summary, spec, note + f" Wall time: {wall:.0f} s.")
    payload = ex.table_payload(spec, summary, records, seeds, task="retrieval",
                               backbone=temporal, metric=TABLE_METRIC,
                               settings=asdict(settings), hparams=HPARAMS,
                               lrs={r: settings.lr(ROWS[r]) for r in rows
                                    if ROWS[r].method is not None},
                               losses={r: describe_loss(ROWS[r].align, ROWS[r].lam)
                                       for r in rows if ROWS[r].method is not None},
                               wall_seconds=round(wall, 1), executor=executor)
    ex.write_table(out_dir, f"{name}_{temporal}", payload, md)
    return payload
