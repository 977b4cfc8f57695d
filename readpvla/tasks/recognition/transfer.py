"""One few-shot recognition run, and the tables made of them.

A run (:func:`run_one`; :func:`run` for a :class:`~readpvla.experiment.Job`) applies one row's PEFT
method to a fresh copy of the pretrained video CLIP (under the seed), fine-tunes it with the
cross-entropy over class prompts (:mod:`.loss`) on a target domain's K-shot training set, and
scores the domain's test split: top-1 / top-5, mean per-class accuracy, and the accuracy on the
order-only pairs (:mod:`.evaluate`). A table is the grid of rows x domains x seeds, run and
summarised by :mod:`readpvla.experiment`.

::

    from readpvla.tasks import recognition
    table = recognition.run_transfer("frames", shots=16, out_dir="runs/recognition")
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from readpvla import experiment as ex
from readpvla import peft
from readpvla.train import fit

from .data import DOMAINS, TrainBatches, data_root, dataset, prompts
from .evaluate import EXTRA_METRICS, TABLE_METRIC, evaluate
from .loss import recognition_loss
from .pretrain import TEMPORAL, default_checkpoint, load
from .rows import HPARAMS, QUICK, ROWS, TABLE_ROWS, Row, TransferSettings

__all__ = ["jobs", "run", "run_one", "run_transfer", "table_spec"]


def run_one(backbone: nn.Module, row: Row | str, domain: str, seed: int,
            settings: TransferSettings = QUICK, root: str | Path | None = None,
            device: str | torch.device = "cpu", return_model: bool = False) -> dict[str, Any]:
    """Fine-tune one row on a domain's K-shot set (seed ``seed``, K-shot set ``seed % 3``);
    evaluate on the domain's test split.

    Returns:
        A record: ``row``, ``method``, ``split`` (the domain), ``seed``, ``params``,
        ``trainable``, ``total``, ``test`` (``top1``, ``top5``, ``mean_class``, ``order_pairs``),
        ``per_item`` (top-1 hits per test video), ``epochs_run``, ``seconds``; ``model`` with
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
        train = dataset(f"fewshot/{domain}_K{settings.shots}_seed{seed % 3}", root)
        tokens = model.tokenize(prompts(train.classes, settings.template))
        res = fit(model.to(device), partial(recognition_loss, class_tokens=tokens),
                  TrainBatches(train, settings.batch_size, seed), epochs=settings.epochs,
                  lr=hp["lr"] * settings.lr_scale, weight_decay=hp["weight_decay"], seed=seed,
                  device=device, warmup_steps=settings.warmup_steps, schedule="cosine",
                  progress=False, desc=f"{r.label} {domain}")
        epochs = res.epochs_run
    count = peft.count_parameters(model) if r.method is not None else \
        peft.ParamCount(0, peft.count_parameters(model).total)
    metrics = evaluate(model.to(device), test, settings.template, per_item=True)
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
    """One grid job (``task="recognition"``): :func:`run_one` from the job's checkpoint (loaded
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
    """The grid of a recognition table as jobs, in the order (domain, seed, row)."""
    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
    ex.check_grid(rows, list(ROWS), domains, list(DOMAINS), seeds)
    ckpt = str(checkpoint if checkpoint is not None else default_checkpoint(temporal))
    data = str(data_root(f"fewshot/{domains[0]}_K{settings.shots}_seed0", root))
    return [ex.Job("recognition", r, d, int(s), temporal, ckpt, data, settings, str(device))
            for d in domains for s in seeds for r in rows]


def table_spec(title: str, rows: Sequence[str], domains: Sequence[str], note: str
               ) -> ex.TableSpec:
    """Rows x (top-1 per domain, Avg., the order-only pairs' accuracy averaged over domains)."""
    return ex.TableSpec(
        title=title, rows=tuple((r, r) for r in rows),
        columns=tuple([ex.Column(d, d, TABLE_METRIC) for d in domains]
                      + [ex.Column("Avg.", "avg", TABLE_METRIC),
                         ex.Column("Order pairs", "avg", "order_pairs")]),
        splits=tuple(domains), note=note, extra_metrics=EXTRA_METRICS)


def run_transfer(temporal: str = "frames", rows: Sequence[str] | None = None,
                 domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                 out_dir: str | Path = "runs/recognition", device: str | torch.device = "cpu",
                 *, shots: int | None = None, settings: TransferSettings = QUICK,
                 root: str | Path | None = None, checkpoint: str | Path | None = None,
                 workers: int = 1, executor: str = "local", address: str | None = None,
                 resume: bool = False, progress: bool = True, verbose: bool = False
                 ) -> dict[str, Any]:
    """Few-shot action recognition: every row (default :data:`~.rows.TABLE_ROWS`, Zero-shot
    first) on every target domain with every seed (K-shot training sets, ``shots`` or
    ``settings.shots``), from the pretrained ``temporal`` video CLIP; writes
    ``out_dir/recognition_<temporal>_K<K>.{json,md}`` (top-1 per domain, Avg., and the accuracy
    on the order-only pairs; mean ± std over seeds) and each run's record as it finishes."""
    if shots is not None:
        settings = replace(settings, shots=shots)
    rows = list(rows) if rows is not None else list(TABLE_ROWS)
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    grid = jobs(temporal, rows, domains, seeds, settings, root, checkpoint, device)
    out_dir = ex.check_writable(out_dir)
    stem = f"recognition_{temporal}_K{settings.shots}"
    t0 = time.perf_counter()

    def log(r: dict[str, Any]) -> None:
        msg = r.get("error") or (f"top1 {r['test']['top1']:6.2f}  order pairs "
                                 f"{r['test']['order_pairs']:6.2f}")
        print(f"{r['row']:>10s} {r['split']:>6s} seed {r['seed']}: {msg}", file=sys.stderr)

    records = ex.run_grid(grid, executor, workers=workers, address=address,
                          records=out_dir / f"runs_{stem}.jsonl", resume=resume,
                          progress=progress, log=log if verbose else None)
    wall = time.perf_counter() - t0
    note = ("Top-1 accuracy (%) over the 24 classes on each rendered target domain's test split "
            "(192 videos), and the accuracy between each order-only class and its reverse "
            "partner (9 pairs; 50% = a frame bag), "
            + (f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}")
            + f"; backbone: the video CLIP `{temporal}` pretrained on the source split. Every "
            f"row: {settings.shots}-shot training set, {settings.epochs} epochs, batch "
            f"{settings.batch_size}, prompt \"{settings.template}\", the last epoch's weights.")
    spec = table_spec(f"Few-shot recognition, K = {settings.shots} (rendered benchmark, "
                      f"{temporal})", rows, domains, note)
    summary = ex.summarize(records, spec, seeds)
    md = ex.format_table(summary, spec, note + f" Wall time: {wall:.0f} s.")
    payload = ex.table_payload(spec, summary, records, seeds, task="recognition",
                               backbone=temporal, metric=TABLE_METRIC,
                               settings=asdict(settings), hparams=HPARAMS,
                               wall_seconds=round(wall, 1), executor=executor)
    ex.write_table(out_dir, stem, payload, md)
    return payload
