"""One retrieval transfer run, and the tables made of them.

A run (:func:`run_one`; :func:`run` for a :class:`~readpvla.experiment.Job`) applies one row's PEFT
method to a fresh copy of the pretrained video CLIP (under the seed), fine-tunes it with the
symmetric InfoNCE on a target domain's training split (480 videos, one of 5 captions each per
pass), and scores that domain's test split (192 videos, one caption each: the 1k-A protocol
scaled down) with CLIP4Clip's text-to-video and video-to-text metrics. A table is the grid of
rows x domains x seeds, run and summarised by :mod:`readpvla.experiment`.

::

    from readpvla.tasks import retrieval
    table = retrieval.run_transfer("frames", seeds=(0, 1, 2), out_dir="runs/retrieval")
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from readpvla import experiment as ex
from readpvla import ot, peft
from readpvla.train import fit

from .data import DOMAINS, TrainBatches, data_root, dataset
from .evaluate import EXTRA_METRICS, TABLE_METRIC, evaluate
from .loss import retrieval_loss
from .pretrain import TEMPORAL, default_checkpoint, load
from .rows import HPARAMS, QUICK, ROWS, TABLE_ROWS, Row, TransferSettings

__all__ = ["jobs", "run", "run_one", "run_transfer", "table_spec"]


def run_one(backbone: nn.Module, row: Row | str, domain: str, seed: int,
            settings: TransferSettings = QUICK, root: str | Path | None = None,
            device: str | torch.device = "cpu", return_model: bool = False) -> dict[str, Any]:
    """Fine-tune one row on one target domain with one seed; evaluate on the domain's test split.

    Returns:
        A record: ``row``, ``method``, ``split`` (the domain), ``seed``, ``params``,
        ``trainable``, ``total``, ``test`` (metrics), ``per_item`` (per-caption text-to-video
        R@1 hits, for paired tests), ``epochs_run``, ``seconds``; ``model`` with
        ``return_model``.
    """
    r = ROWS[row] if isinstance(row, str) else row
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {list(DOMAINS)}")
    t0 = time.perf_counter()
    test = dataset(f"{domain}_test", root)
    torch.manual_seed(seed)
    model = copy.deepcopy(backbone)
    epochs = 0
    if r.method is not None:
        model = peft.apply(model, r.config())
        hp = HPARAMS[r.method]
        train = dataset(f"{domain}_train", root)
        batches = TrainBatches(train, model.tokenize, settings.batch_size, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ot.ConvergenceWarning)
            res = fit(model.to(device), retrieval_loss, batches, epochs=settings.epochs,
                      lr=hp["lr"] * settings.lr_scale, weight_decay=hp["weight_decay"],
                      seed=seed, device=device, warmup_steps=settings.warmup_steps,
                      schedule="cosine", progress=False, desc=f"{r.label} {domain}")
        epochs = res.epochs_run
    count = peft.count_parameters(model) if r.method is not None else \
        peft.ParamCount(0, peft.count_parameters(model).total)
    metrics = evaluate(model.to(device), test, dsl=settings.dsl, per_item=True)
    record = {"row": r.label, "method": r.method, "split": domain, "seed": seed,
              "params": str(count), "trainable": count.trainable, "total": count.total,
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
    rec = run_one(_BACKBONES[job.checkpoint], job.row, job.split, job.seed, job.settings,
                  job.data_dir, job.device)
    return {k: v for k, v in rec.items() if k not in ("row", "split", "seed")}


def jobs(temporal: str, rows: Sequence[str], domains: Sequence[str], seeds: Sequence[int],
         settings: TransferSettings = QUICK, root: str | Path | None = None,
         checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
         ) -> list[ex.Job]:
    """The grid of a retrieval table as jobs, in the order (domain, seed, row)."""
    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise ValueError(f"unknown row(s) {unknown}; known: {list(ROWS)}")
    bad = [d for d in domains if d not in DOMAINS]
    if bad or not domains:
        raise ValueError(f"unknown domain(s) {bad}; known: {list(DOMAINS)}")
    if not seeds:
        raise ValueError("seeds is empty")
    ckpt = str(checkpoint if checkpoint is not None else default_checkpoint(temporal))
    data = str(data_root(f"{domains[0]}_train", root))  # the cache: train and test splits
    return [ex.Job("retrieval", r, d, int(s), temporal, ckpt, data, settings, str(device))
            for d in domains for s in seeds for r in rows]


def table_spec(title: str, rows: Sequence[str], domains: Sequence[str], note: str
               ) -> ex.TableSpec:
    """Rows x (text-to-video R@1 per domain, Avg.); ``‡`` against the best-placed reference row
    is left to the tasks that add one (RAP)."""
    return ex.TableSpec(
        title=title, rows=tuple((r, r) for r in rows),
        columns=tuple([ex.Column(d, d, TABLE_METRIC) for d in domains]
                      + [ex.Column("Avg.", "avg", TABLE_METRIC)]),
        splits=tuple(domains), note=note, extra_metrics=EXTRA_METRICS)


def run_transfer(temporal: str = "frames", rows: Sequence[str] | None = None,
                 domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                 out_dir: str | Path = "runs/retrieval", device: str | torch.device = "cpu", *,
                 settings: TransferSettings = QUICK, root: str | Path | None = None,
                 checkpoint: str | Path | None = None, workers: int = 1,
                 executor: str = "local", address: str | None = None, resume: bool = False,
                 progress: bool = True, verbose: bool = False) -> dict[str, Any]:
    """Text-video retrieval transfer: every row (default :data:`~.rows.TABLE_ROWS`, Zero-shot
    first) on every target domain with every seed, from the pretrained ``temporal`` video CLIP;
    writes ``out_dir/retrieval_<temporal>.{json,md}`` (text-to-video R@1 per domain and Avg.,
    mean ± std over seeds; the other metrics in the JSON) and each run's record into
    ``out_dir/runs_retrieval_<temporal>.jsonl`` as it finishes (``resume`` continues it)."""
    rows = list(rows) if rows is not None else list(TABLE_ROWS)
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    grid = jobs(temporal, rows, domains, seeds, settings, root, checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    t0 = time.perf_counter()

    def log(r: dict[str, Any]) -> None:
        msg = r.get("error") or f"{TABLE_METRIC} {r['test'][TABLE_METRIC]:6.2f}"
        print(f"{r['row']:>10s} {r['split']:>6s} seed {r['seed']}: {msg}", file=sys.stderr)

    records = ex.run_grid(grid, executor, workers=workers, address=address,
                          records=out_dir / f"runs_retrieval_{temporal}.jsonl", resume=resume,
                          progress=progress, log=log if verbose else None)
    wall = time.perf_counter() - t0
    note = ("Text-to-video R@1 (%, CLIP4Clip's evaluation) on each rendered target domain's "
            "test split (192 videos, one caption each), "
            + (f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}")
            + f"; backbone: the video CLIP `{temporal}` pretrained on the source split. Every "
            f"row: {settings.epochs} epochs over the domain's 480 training videos, batch "
            f"{settings.batch_size}, the last epoch's weights.")
    spec = table_spec(f"Text-video retrieval (rendered benchmark, {temporal})", rows, domains,
                      note)
    summary = ex.summarize(records, spec, seeds)
    md = ex.format_table(summary, spec, note + f" Wall time: {wall:.0f} s.")
    payload = ex.table_payload(spec, summary, records, seeds, task="retrieval",
                               backbone=temporal, metric=TABLE_METRIC,
                               settings=asdict(settings), hparams=HPARAMS,
                               wall_seconds=round(wall, 1), executor=executor)
    ex.write_table(out_dir, f"retrieval_{temporal}", payload, md)
    return payload
