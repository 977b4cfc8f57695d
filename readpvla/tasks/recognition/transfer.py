"""Recognition transfer runs under four protocols, and the tables made of them.

A run (:func:`run_one`; :func:`run` for a :class:`~readpvla.experiment.Job`) applies one row's PEFT
method to a fresh copy of the pretrained video CLIP (under the seed), fine-tunes it with the row's
loss (:func:`.loss.row_loss`: cross-entropy over class prompts, + L_CC for ``MSTA + L_CC``, +
PVLA for ``READ-PVLA``) on a target domain's training set of the protocol
(``settings.protocol``, :class:`~.rows.TransferSettings`), and scores the domain's test split:

================  ==========================================  =================================
protocol          trains on (seed s: K-shot set / split s%3)   scores (test split of the domain)
================  ==========================================  =================================
``fewshot``       the K-shot set, 24 classes                   top-1 (24 classes), order pairs
``base2novel``    the K-shot set's 12 base classes of split s  base / novel accuracy (each among
                                                               its own 12 classes), HM, order
                                                               pairs of base and novel classes
``zeroshot``      the K-shot set's 20 seen classes             top-1 of the 4 unseen classes'
                                                               videos among the unseen classes
                                                               (and among all 24), order pairs
``supervised``    the whole training split (480 videos)        as ``fewshot``
================  ==========================================  =================================

A table is the grid of rows x domains x seeds, run and summarised by :mod:`readpvla.experiment`
(mean ± std over the seeds; for base-to-novel the seeds are the 3 class splits).
:func:`run_shots` runs the few-shot grid for several K and adds one table with a column per K.

::

    from readpvla.tasks import recognition
    table = recognition.run_transfer("frames", shots=16, out_dir="runs/recognition")
    table = recognition.run_transfer("frames", protocol="base2novel", out_dir="runs/recognition")
"""

from __future__ import annotations

import copy
import statistics
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

from .data import (
    DOMAINS,
    TrainBatches,
    base_novel,
    data_root,
    dataset,
    dataset_of,
    holdout,
    prompts,
    zeroshot_classes,
)
from .evaluate import (
    EXTRA_METRICS,
    TABLE_METRIC,
    evaluate,
    evaluate_base_to_novel,
    evaluate_zeroshot,
)
from .loss import describe_row_loss, row_loss
from .pretrain import TEMPORAL, default_checkpoint, load
from .rows import (
    ABLATIONS,
    HPARAMS,
    PROTOCOLS,
    QUICK,
    ROWS,
    SHOTS,
    TABLE_ROWS,
    Row,
    TransferSettings,
    load_lrs,
)

__all__ = ["PROTOCOL_METRICS", "check_shots", "jobs", "run", "run_one", "run_shots", "run_transfer",
           "shots_records", "shots_table_spec", "table_reference", "table_spec", "table_stem",
           "train_split"]

#: each protocol's table metric and the metrics its JSON summarises beside it
PROTOCOL_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fewshot": (TABLE_METRIC, EXTRA_METRICS),
    "supervised": (TABLE_METRIC, EXTRA_METRICS),
    "base2novel": ("HM", ("order_pairs",)),
    "zeroshot": (TABLE_METRIC, ("mean_class", "top1_all")),
}


def train_split(domain: str, seed: int, settings: TransferSettings) -> str:
    """The label file a run trains on: ``{domain}_train`` (``supervised``) or the K-shot set
    ``fewshot/{domain}_K{shots}_seed{seed % 3}`` (the other protocols)."""
    if settings.protocol == "supervised":
        return f"{domain}_train"
    return f"fewshot/{domain}_K{settings.shots}_seed{seed % 3}"


def run_one(backbone: nn.Module, row: Row | str, domain: str, seed: int,
            settings: TransferSettings = QUICK, root: str | Path | None = None,
            device: str | torch.device = "cpu", return_model: bool = False) -> dict[str, Any]:
    """Fine-tune one row on a domain's training set of ``settings.protocol`` (seed ``seed``;
    K-shot set and base-to-novel class split ``seed % 3``); evaluate on the domain's test split
    (module docstring).

    Returns:
        A record: ``row``, ``method``, ``split`` (the domain), ``seed``, ``protocol``,
        ``train_split``, ``train_classes`` (how many), ``class_split`` (base-to-novel),
        ``params``, ``trainable``, ``total``, ``loss`` (e.g. ``"ce + 1 * cc(n=2, ...)"``),
        ``lr``, ``weight_decay``, ``eval_split`` (the test split, or with
        ``settings.validation`` the hold-out), ``test`` (the protocol's metrics: ``top1``, ``top5``,
        ``mean_class``, ``order_pairs`` for few-shot / supervised; ``base``, ``novel``, ``HM``,
        ``order_pairs``, ``order_pairs_base``, ``order_pairs_novel`` for base-to-novel;
        ``top1``, ``mean_class``, ``top1_all``, ``order_pairs`` for zero-shot), ``per_item``,
        ``train_log`` (the last epoch's mean loss terms: ``train_ce``, ``train_cc``, ...),
        ``epochs_run``, ``seconds``; ``model`` with ``return_model``.
    """
    r = ROWS[row] if isinstance(row, str) else row
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {list(DOMAINS)}")
    protocol = settings.protocol
    t0 = time.perf_counter()
    test = dataset(f"{domain}_test", root)
    split_id = seed % 3
    train_classes: list[str] | None = None
    classes: dict[str, list[str]] = {}
    if protocol == "base2novel":
        classes = base_novel(split_id, root)
        train_classes = classes["base"]
    elif protocol == "zeroshot":
        classes = zeroshot_classes(root)
        train_classes = classes["seen"]
    if settings.validation:  # the learning-rate protocol: the training videos outside the set
        test = holdout(domain, settings.shots, split_id, root)
    split = train_split(domain, seed, settings)
    torch.manual_seed(seed)
    model = copy.deepcopy(backbone)
    epochs, lr, wd, n_train, train_log = 0, None, None, None, {}
    if r.method is not None:
        train = dataset_of(split, train_classes, root)
        n_train = len(train.classes)
        tokens = backbone.tokenize(prompts(train.classes, settings.template))
        loss = row_loss(r, backbone, train.classes, tokens)  # L_CC targets: the pretrained one
        model = peft.apply(model, r.config())
        lr, wd = settings.lr(r), settings.weight_decay(r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ot.ConvergenceWarning)
            res = fit(model.to(device), loss, TrainBatches(train, settings.batch_size, seed),
                      epochs=settings.epochs, lr=lr, weight_decay=wd, seed=seed, device=device,
                      warmup_steps=settings.warmup_steps, schedule="cosine", progress=False,
                      desc=f"{r.label} {domain}")
        epochs = res.epochs_run
        train_log = {k: round(float(v), 6) for k, v in (res.history[-1] if res.history else {})
                     .items() if k.startswith("train_")}
    count = peft.count_parameters(model) if r.method is not None else \
        peft.ParamCount(0, peft.count_parameters(model).total)
    model = model.to(device)
    if protocol == "base2novel":
        metrics = evaluate_base_to_novel(model, test, classes["base"], classes["novel"],
                                         settings.template, per_item=True)
    elif protocol == "zeroshot":
        metrics = evaluate_zeroshot(model, test, classes["unseen"], settings.template,
                                    per_item=True)
    else:
        metrics = evaluate(model, test, settings.template, per_item=True)
    record = {"row": r.label, "method": r.method, "split": domain, "seed": seed,
              "protocol": protocol, "train_split": split if r.method is not None else None,
              "train_classes": n_train,
              **({"class_split": split_id} if protocol == "base2novel" else {}),
              "params": str(count), "trainable": count.trainable, "total": count.total,
              "loss": describe_row_loss(r) if r.method is not None else None,
              "lr": lr, "weight_decay": wd, "eval_split": test.split,
              "test": {k: v for k, v in metrics.items() if k != "per_item"},
              "per_item": metrics["per_item"], "train_log": train_log, "epochs_run": epochs,
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
    # a learning-rate protocol job's split is "<domain> lr=<lr>" (.select.lr_jobs)
    domain = job.split.split(" ", 1)[0]
    rec = run_one(_BACKBONES[job.checkpoint], job.row, domain, job.seed, job.settings,
                  job.data_dir, job.device)
    return {k: v for k, v in rec.items() if k not in ("row", "split", "seed")}


def jobs(temporal: str, rows: Sequence[str], domains: Sequence[str], seeds: Sequence[int],
         settings: TransferSettings = QUICK, root: str | Path | None = None,
         checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
         ) -> list[ex.Job]:
    """The grid of a recognition table as jobs, in the order (domain, seed, row); the protocol
    is ``settings.protocol`` (in every job's fingerprint, so records of two protocols never
    stand for each other)."""
    if temporal not in TEMPORAL:
        raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
    if not isinstance(settings, TransferSettings):
        raise ValueError(f"settings must be a recognition TransferSettings, got "
                         f"{type(settings).__name__}")
    ex.check_grid(rows, list(ROWS), domains, list(DOMAINS), seeds)
    ckpt = str(checkpoint if checkpoint is not None else default_checkpoint(temporal))
    data = str(data_root(train_split(domains[0], 0, settings), root))
    return [ex.Job("recognition", r, d, int(s), temporal, ckpt, data, settings, str(device))
            for d in domains for s in seeds for r in rows]


def table_stem(temporal: str, settings: TransferSettings = QUICK, name: str | None = None
               ) -> str:
    """The files' stem: ``recognition[_NAME]_<temporal>_K<K>`` (few-shot, as before the other
    protocols), ``recognition[_NAME]_<protocol>_<temporal>[_K<K>]`` (K for the protocols that
    train on a K-shot set); NAME is an ablation's name."""
    head = "recognition" + (f"_{name}" if name else "")
    if settings.protocol == "fewshot":
        return f"{head}_{temporal}_K{settings.shots}"
    tail = "" if settings.protocol == "supervised" else f"_K{settings.shots}"
    return f"{head}_{settings.protocol}_{temporal}{tail}"


def table_reference(rows: Sequence[str], ablations: str | None = None) -> str | None:
    """The row a table's "Δ vs" column compares with: an ablation's reference row (its first),
    else MSTA + L_CC (the method of the paper the recognition protocols come from) when it is a
    row; None otherwise (no such column)."""
    if ablations is not None:
        ref = ABLATIONS[ablations][0]
        return ref if ref in rows else None
    return "MSTA + L_CC" if "MSTA + L_CC" in rows else None


def table_spec(title: str, rows: Sequence[str], domains: Sequence[str], note: str,
               protocol: str = "fewshot", reference: str | None = None) -> ex.TableSpec:
    """The table of a protocol:

    - ``fewshot`` / ``supervised``: rows x (top-1 per domain, Avg., the order-only pairs'
      accuracy averaged over domains);
    - ``zeroshot``: rows x (top-1 of the unseen classes' videos among the unseen classes per
      domain, Avg., the unseen order-only pair's accuracy);
    - ``base2novel``: rows x (Base, Novel, HM, the order-only pairs' accuracy of base and of
      novel classes), each the mean over ``domains`` per seed (split), then mean ± std over
      the splits. **(choice)** HM is each domain's HM averaged (per seed), not the HM of the
      averaged base and novel accuracies; per domain in the JSON.

    ``reference`` (a row) adds the column "Δ vs reference": each row's difference with a 95%
    paired-bootstrap interval over test videos x seeds (:class:`readpvla.experiment.Delta`), on
    "Avg." (top-1), or for base-to-novel on "HM": HM is not a mean over videos, so the
    bootstrap resamples the base and the novel videos and recomputes each split's HM from the
    resampled accuracies (:func:`readpvla.experiment.compare_rows_hm`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    metric, extra = PROTOCOL_METRICS[protocol]
    if protocol == "base2novel":
        cols = [ex.Column("Base", "avg", "base"), ex.Column("Novel", "avg", "novel"),
                ex.Column("HM", "avg", "HM"),
                ex.Column("Order pairs (base)", "avg", "order_pairs_base"),
                ex.Column("Order pairs (novel)", "avg", "order_pairs_novel")]
    else:
        cols = ([ex.Column(d, d, metric) for d in domains]
                + [ex.Column("Avg.", "avg", metric), ex.Column("Order pairs", "avg", "order_pairs")])
    delta = None
    if reference is not None:
        if reference not in rows:
            raise ValueError(f"reference {reference!r} is not a row of the table: {list(rows)}")
        delta = (ex.Delta(reference, "HM", harmonic=("base", "novel")) if protocol == "base2novel"
                 else ex.Delta(reference, "Avg."))
    return ex.TableSpec(title=title, rows=tuple((r, r) for r in rows), columns=tuple(cols),
                        splits=tuple(domains), note=note, extra_metrics=extra, delta=delta)


_TITLES = {"fewshot": "Few-shot recognition, K = {K}", "supervised": "Fully supervised recognition",
           "base2novel": "Base-to-novel recognition ({K}-shot base)",
           "zeroshot": "Zero-shot recognition of unseen classes ({K}-shot seen classes)"}


def _note(settings: TransferSettings, seeds: Sequence[int], temporal: str) -> str:
    p = settings.protocol
    what = {
        "fewshot": ("Top-1 accuracy (%) over the 24 classes on each rendered target domain's test "
                    "split (192 videos), and the accuracy between each order-only class and its "
                    "reverse partner (9 pairs; 50% = a frame bag)"),
        "supervised": ("Top-1 accuracy (%) over the 24 classes on each rendered target domain's "
                       "test split (192 videos), and the accuracy between each order-only class "
                       "and its reverse partner (9 pairs; 50% = a frame bag)"),
        "base2novel": ("Base and novel accuracy (%; the test videos of the 12 base classes "
                       "classified among the base classes, those of the 12 novel classes among "
                       "the novel classes), HM = 2BN/(B+N) per domain, and the order-only pairs' "
                       "accuracy (50% = a frame bag) of base and of novel classes, each averaged "
                       "over the target domains; class split s for seed s"),
        "zeroshot": ("Top-1 accuracy (%) of the test videos of the 4 classes the source split "
                     "never shows, among those 4 classes (chance 25%), per target domain, and the "
                     "accuracy on their order-only pair (filling / emptying; 50% = a frame bag)"),
    }[p]
    train = {"fewshot": f"{settings.shots}-shot training set",
             "supervised": "the domain's whole training split (480 videos)",
             "base2novel": f"the {settings.shots}-shot set's videos of the base classes",
             "zeroshot": f"the {settings.shots}-shot set's videos of the 20 seen classes"}[p]
    seeds = list(seeds)
    return (what + ", " + (f"mean ± std over seeds {seeds}" if len(seeds) > 1
                           else f"seed {seeds[0]}")
            + f"; backbone: the video CLIP `{temporal}` pretrained on the source split. Every "
            f"row: {train}, {settings.epochs} epochs, batch {settings.batch_size}, prompt "
            f"\"{settings.template}\", the last epoch's weights"
            + (", learning rates chosen on a validation hold-out (lr_selection)"
               if settings.lrs else "") + ".")


def _run_grid(temporal: str, rows: list[str], domains: list[str], seeds: list[int],
              out_dir: Path, stem: str, settings: TransferSettings, device: Any, *,
              root: Any, checkpoint: Any, workers: int, executor: str, address: str | None,
              resume: bool, progress: bool, verbose: bool) -> list[dict[str, Any]]:
    grid = jobs(temporal, rows, domains, seeds, settings, root, checkpoint, device)
    metric = PROTOCOL_METRICS[settings.protocol][0]

    def log(r: dict[str, Any]) -> None:
        msg = r.get("error") or (f"{metric} {r['test'][metric]:6.2f}  order pairs "
                                 f"{r['test']['order_pairs']:6.2f}")
        print(f"{r['row']:>10s} {r['split']:>6s} seed {r['seed']}: {msg}", file=sys.stderr)

    return ex.run_grid(grid, executor, workers=workers, address=address,
                       records=out_dir / f"runs_{stem}.jsonl", resume=resume,
                       progress=progress, log=log if verbose else None)


def _resolve_rows(rows: Sequence[str] | None, ablations: str | None) -> list[str]:
    if ablations is not None:
        if ablations not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablations!r}; known: {list(ABLATIONS)}")
        return list(rows) if rows is not None else list(ABLATIONS[ablations])
    return list(rows) if rows is not None else list(TABLE_ROWS)


def run_transfer(temporal: str = "frames", rows: Sequence[str] | None = None,
                 domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
                 out_dir: str | Path = "runs/recognition", device: str | torch.device = "cpu",
                 *, shots: int | None = None, protocol: str | None = None,
                 ablations: str | None = None, settings: TransferSettings = QUICK,
                 root: str | Path | None = None, checkpoint: str | Path | None = None,
                 workers: int = 1, executor: str = "local", address: str | None = None,
                 resume: bool = False, progress: bool = True, verbose: bool = False,
                 lrs: str | Path | Mapping[str, float] | None = None) -> dict[str, Any]:
    """One protocol's table: every row (default :data:`~.rows.TABLE_ROWS`, Zero-shot first; or
    the ablation ``ablations``' rows, :data:`~.rows.ABLATIONS`) on every target domain with every
    seed, from the pretrained ``temporal`` video CLIP. ``protocol`` (default
    ``settings.protocol``, ``"fewshot"``) and ``shots`` (default ``settings.shots``) override the
    settings. Writes ``out_dir/<stem>.{json,md}`` (:func:`table_stem`; :func:`table_spec`'s
    columns, mean ± std over seeds) and each run's record into ``out_dir/runs_<stem>.jsonl`` as
    it finishes (``resume`` continues it). ``lrs``: chosen learning rates
    (:func:`.select.select_lr`'s result or JSON file, or ``{row: lr}``); rows not in it train at
    their base rate. The JSON's ``lrs`` holds every trained row's rate."""
    if lrs is not None:
        settings = replace(settings, lrs=tuple({**dict(settings.lrs), **load_lrs(lrs)}.items()))
    if protocol is not None:
        settings = replace(settings, protocol=protocol)
    if shots is not None:
        settings = replace(settings, shots=shots)
    rows = _resolve_rows(rows, ablations)
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    out_dir = ex.check_writable(out_dir)
    stem = table_stem(temporal, settings, ablations)
    t0 = time.perf_counter()
    records = _run_grid(temporal, rows, domains, seeds, out_dir, stem, settings, device,
                        root=root, checkpoint=checkpoint, workers=workers, executor=executor,
                        address=address, resume=resume, progress=progress, verbose=verbose)
    wall = time.perf_counter() - t0
    note = _note(settings, seeds, temporal)
    title = _TITLES[settings.protocol].format(K=settings.shots)
    if ablations:
        title = f"{title}: ablation {ablations}"
    spec = table_spec(f"{title} (rendered benchmark, {temporal})", rows, domains, note,
                      settings.protocol, reference=table_reference(rows, ablations))
    summary = ex.summarize(records, spec, seeds)
    md = ex.format_table(summary, spec, note + f" Wall time: {wall:.0f} s.")
    payload = ex.table_payload(spec, summary, records, seeds, task="recognition",
                               protocol=settings.protocol, backbone=temporal,
                               metric=PROTOCOL_METRICS[settings.protocol][0],
                               settings=asdict(settings), hparams=HPARAMS,
                               lrs={r: settings.lr(ROWS[r]) for r in rows
                                    if ROWS[r].method is not None},
                               losses={r: describe_row_loss(ROWS[r]) for r in rows
                                       if ROWS[r].method is not None},
                               ablation=ablations, wall_seconds=round(wall, 1),
                               executor=executor)
    ex.write_table(out_dir, stem, payload, md)
    return payload


# -- few-shot over K: one table, a column per K ------------------------------------------------------
def check_shots(shots: Sequence[int]) -> list[int]:
    """``shots`` as a list of distinct K of :data:`~.rows.SHOTS` (``ValueError`` otherwise)."""
    shots = list(shots)
    bad = [k for k in shots if isinstance(k, bool) or k not in SHOTS]
    if bad or not shots or len(set(shots)) != len(shots):
        raise ValueError(f"shots must be distinct values of {SHOTS}, got {shots}")
    return shots


def shots_records(by_k: dict[int, Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Few-shot records of several K as one table's records: per (row, K, seed) one record with
    split ``"K<K>"`` whose every metric is the mean over the run's domains (the "Avg." of the
    per-K table, per seed). Records of a K must cover the same domains for every (row, seed)."""
    out = []
    for k, records in by_k.items():
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault((r["row"], int(r["seed"])), []).append(r)
        for (row, seed), runs in groups.items():
            metrics = {m: statistics.fmean(float(x["test"][m]) for x in runs)
                       for m in runs[0]["test"]}
            out.append({"row": row, "split": f"K{k}", "seed": seed, "test": metrics,
                        "params": runs[0]["params"], "trainable": runs[0]["trainable"],
                        "total": runs[0]["total"],
                        "seconds": round(sum(x.get("seconds", 0.0) for x in runs), 3),
                        "domains": sorted(x["split"] for x in runs)})
    return out


def shots_table_spec(title: str, rows: Sequence[str], shots: Sequence[int], note: str
                     ) -> ex.TableSpec:
    """Rows x (top-1 averaged over domains for each K, Avg. over K, the order-only pairs'
    accuracy averaged over K) from :func:`shots_records`."""
    splits = tuple(f"K{k}" for k in shots)
    return ex.TableSpec(
        title=title, rows=tuple((r, r) for r in rows),
        columns=tuple([ex.Column(f"K = {k}", f"K{k}", TABLE_METRIC) for k in shots]
                      + [ex.Column("Avg.", "avg", TABLE_METRIC),
                         ex.Column("Order pairs", "avg", "order_pairs")]),
        splits=splits, note=note, extra_metrics=EXTRA_METRICS)


def run_shots(temporal: str = "frames", rows: Sequence[str] | None = None,
              domains: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
              out_dir: str | Path = "runs/recognition", device: str | torch.device = "cpu", *,
              shots: Sequence[int] = SHOTS, ablations: str | None = None,
              settings: TransferSettings = QUICK, **grid: Any) -> dict[str, Any]:
    """The few-shot table for every K in ``shots`` (each :func:`run_transfer`, its own files and
    records), then one table with a column per K (:func:`shots_table_spec`), written to
    ``out_dir/recognition[_NAME]_<temporal>_shots.{json,md}``."""
    shots = check_shots(shots)
    settings = replace(settings, protocol="fewshot")
    rows = _resolve_rows(rows, ablations)
    domains = list(domains) if domains is not None else list(DOMAINS)
    seeds = [int(s) for s in seeds]
    t0 = time.perf_counter()
    by_k = {k: run_transfer(temporal, rows, domains, seeds, out_dir, device, shots=k,
                            ablations=ablations, settings=settings, **grid)["runs"]
            for k in shots}
    wall = time.perf_counter() - t0
    records = shots_records(by_k)
    note = ("Top-1 accuracy (%) over the 24 classes, averaged over the target domains "
            f"{domains}, for each K-shot training set, and the order-only pairs' accuracy "
            "averaged over domains and K, "
            + (f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}")
            + f"; backbone: the video CLIP `{temporal}`. Every row: {settings.epochs} epochs, "
            f"batch {settings.batch_size}, the last epoch's weights.")
    title = "Few-shot recognition over K" + (f": ablation {ablations}" if ablations else "")
    spec = shots_table_spec(f"{title} (rendered benchmark, {temporal})", rows, shots, note)
    summary = ex.summarize(records, spec, seeds)
    md = ex.format_table(summary, spec, note + f" Wall time: {wall:.0f} s.")
    payload = ex.table_payload(spec, summary, records, seeds, task="recognition",
                               protocol="fewshot", shots=shots, backbone=temporal,
                               metric=TABLE_METRIC, settings=asdict(settings), hparams=HPARAMS,
                               ablation=ablations, wall_seconds=round(wall, 1))
    stem = "recognition" + (f"_{ablations}" if ablations else "") + f"_{temporal}_shots"
    ex.write_table(ex.check_writable(out_dir), stem, payload, md)
    return payload
