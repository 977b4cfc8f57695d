"""One VLS transfer run, and the tables made of them (the paper's Tables 4 and 5).

A run (:func:`transfer_run`; :func:`run` for a :class:`~readpvla.experiment.Job`) applies one
row's PEFT method to a fresh copy of the pretrained VG-BART / VG-T5 (under the seed), fine-tunes
it on the low-resource target split with :func:`readpvla.train.fit` (a step budget, linear warm-up
and decay, gradient clipping, optional validation-loss early stopping), summarises the test split
and scores it with ROUGE-1/2/L, keeping every video's scores (``per_item``) for the tables'
paired bootstrap intervals ("Δ vs READ-PVLA").
``read-pvla`` is READ plus ``config.pvla_weight * L_PVLA`` (:func:`~.loss.pvla_term`). A table is
the grid of rows x seeds, run and summarised by :mod:`readpvla.experiment` (local processes or
Ray, records written as runs finish, ``resume``).

::

    from readpvla.tasks import vls
    report = vls.run_transfer("bart", seeds=(0, 1), out_dir="runs/vls")   # vls_bart.{json,md}

``quick=True`` (60 steps, 50 test videos, greedy, seeds 0 and 1) runs both tables in a few
minutes on two CPU cores; ``quick=False`` is the full protocol (600 steps with early stopping on
validation loss every 100, beam search with 4 beams, all 200 test videos). Quick numbers are
indicative only: 60 steps do not let the small adapters converge.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from readpvla import experiment as ex
from readpvla import ot
from readpvla.backbones.vg import VisionGuidedSeq2Seq
from readpvla.data.how2 import How2Collator, How2Sample, load_split
from readpvla.train import fit

from .data import StepBatches
from .evaluate import (
    METRICS,
    VIDEO_METRIC,
    evaluate,
    validation_loss,
    validation_rouge,
    video_note,
    with_video_slice,
)
from .loss import PVLASettings, vls_loss
from .pretrain import DATA_ROOT, backbone_class, checkpoint_path, load_backbone
from .rows import METHODS, TransferConfig, method_config, parse_row, parse_variant, row_label

__all__ = ["TrainConfig", "TransferData", "finetune", "has_video_slice", "jobs", "retable_with_video", "load_transfer_data", "run",
           "run_transfer", "table_spec", "transfer_run"]


#: model-selection rules of :func:`finetune`
SELECT = ("loss", "rouge")


@dataclass
class TrainConfig:
    """One fine-tuning (or pretraining) run."""

    steps: int = 300  # optimiser steps
    batch_size: int = 16
    lr: float = 3e-3  # AdamW peak learning rate (linear warm-up, then linear decay to 0)
    weight_decay: float = 0.01
    warmup: int = 20  # warm-up steps
    max_grad_norm: float = 1.0
    eval_every: int = 0  # validation-loss period in steps (0: no early stopping)
    pvla_weight: float = 0.0  # lambda of L = L_task + lambda * L_PVLA (0: no PVLA)
    pvla_mass: float = 0.5  # transported mass m of the partial plan (DESIGN.md: a hyperparameter)
    pvla_tau: float = 0.05  # entropic temperature (paper: 0.05)
    pvla_iter: int = 1000  # Sinkhorn iterations (paper: 1000)
    pvla_layers: str = "all"  # "all" encoder layers up to the fusion layer, or "fusion" only
    time_limit_s: float | None = None  # stop early once this much wall time has passed
    # model selection on validation: "loss" (the lowest validation loss among the evaluations)
    # or "rouge" (the highest validation ROUGE-L of greedy summaries, the untuned start included)
    select: str = "loss"

    def __post_init__(self) -> None:
        if self.select not in SELECT:
            raise ValueError(f"select must be one of {SELECT}, got {self.select!r}")
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        self.pvla()  # checks the PVLA settings

    def pvla(self) -> PVLASettings:
        """The alignment term's settings."""
        return PVLASettings(self.pvla_weight, self.pvla_mass, self.pvla_tau, self.pvla_iter,
                            self.pvla_layers)


def finetune(model: VisionGuidedSeq2Seq, train: Sequence[How2Sample], collate: How2Collator,
             cfg: TrainConfig, seed: int = 0, val: Sequence[How2Sample] | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the parameters of ``model`` that require grad with :func:`readpvla.train.fit`:
    AdamW, ``cfg.steps`` steps of ``cfg.batch_size`` videos (:class:`~.data.StepBatches`, seeded
    by ``seed``), linear warm-up over ``min(cfg.warmup, steps // 2)`` steps then linear decay to
    0, gradient norm clipped at ``cfg.max_grad_norm``.

    Loss: :func:`~.loss.vls_loss` (token cross-entropy, plus ``cfg.pvla_weight * L_PVLA``). With
    ``val`` and ``cfg.eval_every``, the model is scored on ``val`` every ``eval_every`` steps
    (and at the end) and the best trainable weights are restored at the end: by validation loss
    (``cfg.select="loss"``), or by validation ROUGE-L of greedy summaries
    (``cfg.select="rouge"``, :func:`~.evaluate.validation_rouge`), where the untuned start is
    scored too (step 0) and wins when no evaluation beats it: then the model leaves exactly as
    it came (issue 15: a tuned row may not end below the untuned backbone unless it also does
    on validation).

    Returns:
        ``{"steps", "best_step" (0: the start won; -1: no validation), "best_val_loss" (inf
        without validation by loss), "best_val_rouge" / "start_val_rouge" (with
        ``select="rouge"``), "time_s", "final_loss" (mean cross-entropy of the last 10 steps),
        "final_pvla", "history", "ot_unconverged_steps"}``.
    """
    if not train:
        raise ValueError("finetune needs at least one training sample")
    validate = bool(val) and cfg.eval_every > 0
    by_rouge = validate and cfg.select == "rouge"
    what = "val ROUGE-L" if by_rouge else "val loss"
    rows = (lambda row: log(f"step {row['step']}: train loss {row['train_ce']:.4f}"
                            + (f"  {what} {abs(row['metric']):.4f}" if "metric" in row else "")
                            )) if log else None
    start, snapshot = None, None
    if by_rouge:  # the untuned start is a candidate: score it, keep its trainable weights
        start = validation_rouge(model, val, collate)
        snapshot = {n: p.detach().clone() for n, p in model.named_parameters()
                    if p.requires_grad}
    eval_fn = None
    if validate:
        eval_fn = ((lambda m: validation_rouge(m, val, collate)) if by_rouge
                   else (lambda m: -validation_loss(m, val, collate)))
    res = fit(model, partial(vls_loss, pvla=cfg.pvla()),
              StepBatches(train, collate, cfg.batch_size, seed), steps=cfg.steps, lr=cfg.lr,
              weight_decay=cfg.weight_decay, seed=seed, max_grad_norm=cfg.max_grad_norm,
              max_seconds=cfg.time_limit_s, warmup_steps=max(1, min(cfg.warmup, cfg.steps // 2)),
              schedule="linear", eval_every=cfg.eval_every if validate else None, log_every=10,
              eval_fn=eval_fn, progress=False, desc="finetune", log=rows)
    model.train()
    last = res.history[-1] if res.history else {}
    best_step = res.best_step if validate else -1
    out = {"time_s": res.wall_time, "final_loss": last.get("train_ce"),
           "final_pvla": last.get("train_pvla"), "history": res.history,
           "ot_unconverged_steps": res.ot_unconverged_steps, "steps": res.n_steps}
    if by_rouge:
        best = res.best_metric
        if best is None or not best > start:  # no evaluation beat the start: back to it
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in snapshot:
                        p.copy_(snapshot[n])
            best_step, best = 0, start
        return {**out, "best_step": best_step, "best_val_loss": math.inf,
                "best_val_rouge": best, "start_val_rouge": start}
    return {**out, "best_step": best_step,
            "best_val_loss": -res.best_metric if res.best_metric is not None else math.inf}


# -- one run ------------------------------------------------------------------------------------
@dataclass
class TransferData:
    """What every run of one backbone shares: the pretrained model and the three splits."""

    base: VisionGuidedSeq2Seq
    collate: How2Collator
    train: list[How2Sample]
    val: list[How2Sample] | None
    test: list[How2Sample]


def load_transfer_data(backbone: str, config: TransferConfig, data_root: str | Path = DATA_ROOT,
                       checkpoint: str | Path | None = None,
                       device: str | torch.device = "cpu") -> TransferData:
    """Load the pretrained backbone (tokenizer-checked) and the low-resource splits."""
    base, tok = load_backbone(backbone, data_root, checkpoint)
    val = load_split(data_root, config.split("val"))[: config.n_val] if config.n_val else None
    return TransferData(base.to(device), How2Collator(tok),
                        load_split(data_root, config.split("train"))[: config.n_train], val,
                        load_split(data_root, config.split("test"))[: config.n_test])


def transfer_run(data: TransferData, method: str, seed: int, config: TransferConfig,
                 lr: float | None = None, size: int | None = None, test: bool = True,
                 probe: bool = False) -> dict[str, Any]:
    """One table cell sample: apply ``method`` to a copy of the backbone (under ``seed``; at
    ``size``, :func:`~.rows.method_config`), fine-tune, summarise the test split.

    With ``test=False`` (a tuning run of :mod:`.tuning`) the test split is not touched: the
    record's score is the validation ROUGE-L of the selected model (``"val": {"rougeL"}``),
    which needs ``config.select == "rouge"`` with validation. With ``probe`` the test scores
    also hold the mechanism probes' metrics (:func:`~.probes.probe_metrics`: steps named and
    in order, the PVLA plan's mass on the named steps' clips per layer).

    Returns:
        ``{"method", "lr", "test": {"rouge1", "rouge2", "rougeL"[, VIDEO_METRIC]}, "per_item":
        {metric: one score per test video}, "params" (the "#params (M) (%)" string), "trainable", "total",
        "steps", "best_step", "train_time_s", "final_loss", "final_pvla", "example",
        "ot_unconverged_steps" (if some PVLA plan missed its tolerance)}``.
    """
    import readpvla.peft as peft

    if not test and not (config.select == "rouge" and data.val and config.eval_every > 0):
        raise ValueError("a run scored on validation (test=False) needs select='rouge', n_val > 0 "
                         f"and eval_every > 0; got select={config.select!r}, n_val="
                         f"{config.n_val}, eval_every={config.eval_every}")
    torch.manual_seed(seed)
    model = peft.apply(copy.deepcopy(data.base), method_config(method, config.bottleneck, size))
    params = peft.count_parameters(model)
    tcfg = TrainConfig(steps=config.steps, batch_size=config.batch_size,
                       lr=config.lr(method) if lr is None else lr, eval_every=config.eval_every,
                       pvla_weight=config.pvla_weight if method == "read-pvla" else 0.0,
                       pvla_mass=config.pvla_mass, pvla_iter=config.pvla_iter,
                       select=config.select)
    with warnings.catch_warnings():  # counted in the record instead of a warning per run
        warnings.simplefilter("ignore", ot.ConvergenceWarning)
        hist = finetune(model, data.train, data.collate, tcfg, seed=seed, val=data.val)
    model.eval()
    record = {"method": method, "size": size, "lr": tcfg.lr, "params": str(params),
              "trainable": params.trainable, "total": params.total,
              "steps": hist["steps"], "best_step": hist["best_step"],
              **({k: hist[k] for k in ("best_val_rouge", "start_val_rouge")}
                 if "start_val_rouge" in hist else {}),
              "train_time_s": hist["time_s"], "final_loss": hist["final_loss"],
              "final_pvla": hist["final_pvla"]}
    if test:
        ev = evaluate(model, data.test, data.collate, num_beams=config.num_beams)
        record.update(test={k: ev[k] for k in METRICS},
                      per_item={k: ev["per_sample"][k] for k in METRICS},
                      example=ev["predictions"][0])
        if all(x.steps for x in data.test):  # the synthetic annotations: the "Video" slice
            record = with_video_slice(record, data.test)
        if probe:
            from .probes import probe_metrics

            scores = probe_metrics(model, data.test, data.collate, ev["predictions"])
            record["test"].update({k: v["mean"] for k, v in scores.items()})
            record["per_item"].update({k: v["per_item"] for k, v in scores.items()})
    else:
        record["val"] = {"rougeL": hist["best_val_rouge"]}
    if hist["ot_unconverged_steps"]:
        record["ot_unconverged_steps"] = hist["ot_unconverged_steps"]
    return record


# -- the task's part of the experiment layer ------------------------------------------------------
_DATA: dict[tuple, TransferData] = {}  # per process: each worker loads a backbone once


def run(job: ex.Job) -> dict[str, Any]:
    """One grid job (``task="vls"``): :func:`transfer_run` with the backbone and splits of the
    job (loaded once per process). ``row`` is a method, or a method at a size
    (:func:`~.rows.sized_row`, e.g. ``"lora (r=2)"``); ``split`` is ``"test"``, or
    ``"val ..."`` for a tuning run scored on validation only (the rest of the split names the
    candidate, so that every job's key is unique: ``"val lr×0.333"``). A row may end in a
    probe variant (:func:`~.rows.parse_variant`: ``"read-pvla [lambda=0.3]"``,
    ``"read [clips shuffled]"``), which changes the run's settings or data and adds the probe
    metrics."""
    where = job.split.split(" ", 1)[0]
    if where not in ("test", "val") or (where == "test" and job.split != "test"):
        raise ValueError(f"VLS runs are tested on split 'test' (or scored on 'val ...' when "
                         f"tuning), got {job.split!r}")
    base, variant = parse_variant(job.row)
    method, size = parse_row(base)
    cfg: TransferConfig = job.settings if variant is None else variant.config(job.settings)
    shuffled = variant is not None and variant.shuffled
    key = (job.backbone, job.checkpoint, job.data_dir, cfg.target, cfg.n_train, cfg.n_val,
           cfg.n_test, job.device, shuffled)
    if key not in _DATA:
        data = load_transfer_data(job.backbone, cfg, job.data_dir, job.checkpoint, job.device)
        if shuffled:
            from .probes import shuffle_clips

            data = TransferData(data.base, data.collate, shuffle_clips(data.train),
                                shuffle_clips(data.val) if data.val else data.val,
                                shuffle_clips(data.test))
        _DATA[key] = data
    lr = None if variant is None or variant.lr_factor is None \
        else cfg.lr(method) * variant.lr_factor
    return transfer_run(_DATA[key], method, job.seed, cfg, lr=lr, size=size,
                        test=where == "test", probe=variant is not None)


def jobs(backbone: str, methods: Sequence[str], seeds: Sequence[int], config: TransferConfig,
         data_root: str | Path = DATA_ROOT, checkpoint: str | Path | None = None,
         device: str | torch.device = "cpu", split: str = "test") -> list[ex.Job]:
    """The grid of a VLS table as jobs, in the order (method, seed); a method may carry a size
    (:func:`~.rows.sized_row`) and ``split`` may name a tuning run (:func:`run`)."""
    backbone_class(backbone)
    unknown = [m for m in methods if m.partition(" [")[0].partition(" (")[0] not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown}; expected a non-empty subset of {METHODS}")
    for m in methods:
        parse_row(parse_variant(m)[0])
    if not seeds:
        raise ValueError("seeds must not be empty")
    ckpt = str(checkpoint if checkpoint is not None else checkpoint_path(backbone, data_root))
    return [ex.Job("vls", m, split, int(s), backbone, ckpt, str(data_root), config, str(device))
            for m in methods for s in seeds]


def has_video_slice(records: Sequence[dict[str, Any]]) -> bool:
    """Whether every finished run scored the "Video" slice (the table then shows it)."""
    done = [r for r in records if "error" not in r]
    return bool(done) and all(VIDEO_METRIC in r["test"] for r in done)


def retable_with_video(payload: dict[str, Any], markdown: str,
                       data_root: str | Path = DATA_ROOT) -> tuple[dict[str, Any], str]:
    """A stored VLS table (made before the "Video" slice existed) with its "Video" column,
    computed from each run's stored per-video ROUGE-1 (:func:`~.evaluate.with_video_slice`) over
    the table's test split; nothing is retrained (:func:`readpvla.experiment.retable`). Returns
    the new payload and Markdown; the arguments are not modified.

    Raises:
        ValueError: the table's cells do not follow from its runs, or a run's per-video scores
            do not match the test split.
    """
    settings = payload["settings"]
    split = TransferConfig(**{**settings, "learning_rates": tuple(
        tuple(x) for x in settings.get("learning_rates", ()))}).split("test")
    test = load_split(data_root, split)[: settings["n_test"]]
    runs = [with_video_slice(r, test) if "error" not in r else r for r in payload["runs"]]
    spec = ex.spec_of(payload)
    columns = tuple(c for c in spec.columns if c.metric != VIDEO_METRIC) + (
        ex.Column("Video", "test", VIDEO_METRIC),)
    note = ex.note_of(markdown)
    if "Video: " not in note:
        note = f"{note} {video_note(test)}".strip()
    return ex.retable(payload, markdown, columns=columns, runs=runs, note=note)


#: the table titles of the targets (:attr:`~.rows.TransferConfig.target`)
TITLES = {"target": "VLS on synthetic How2 (low-resource target split)",
          "hard": "VLS on synthetic How2 (hard target split: paraphrased summaries)"}


def table_spec(backbone: str, methods: Sequence[str], seeds: Sequence[int], note: str,
               title: str | None = None, video: bool = False) -> ex.TableSpec:
    """Tables 4 / 5's shape: R1, R2, RL on the test split, and "Δ vs READ-PVLA": each row's
    ROUGE-1 difference with a 95% paired bootstrap interval over test videos x seeds
    (:class:`readpvla.experiment.Delta`; it replaced the one-sided Wilcoxon ``‡`` marks, so
    every task's tables show their noise the same way). ``methods`` are grid rows (a method,
    or a method at a size: :func:`~.rows.sized_row`); the reference is the READ-PVLA row.
    With ``video`` a "Video" column: ROUGE-1 on the test videos whose transcript leaves at
    least two steps to the video (:data:`~.evaluate.VIDEO_METRIC`, the task's slice)."""
    name = backbone_class(backbone).__name__
    n = len(seeds)
    ref = next((m for m in methods if parse_row(m)[0] == "read-pvla"), None)
    return ex.TableSpec(
        title=(title or TITLES["target"])
        + f" with {name}: ROUGE-1/2/L "
          f"({f'mean ± std over {n} seeds' if n > 1 else 'one seed'})",
        rows=tuple((row_label(m), m) for m in methods),
        columns=(ex.Column("R1", "test", "rouge1"), ex.Column("R2", "test", "rouge2"),
                 ex.Column("RL", "test", "rougeL"))
        + ((ex.Column("Video", "test", VIDEO_METRIC),) if video else ()),
        delta=ex.Delta(ref, "R1") if ref is not None else None, note=note)


def untuned_scores(backbone: str, config: TransferConfig, data_root: str | Path = DATA_ROOT,
                   checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
                   ) -> tuple[dict[str, float], list[How2Sample]]:
    """ROUGE-1/2/L of the pretrained backbone without tuning on ``config``'s test split (the
    tables' "Pretrained backbone without tuning" note), and that split."""
    base, tok = load_backbone(backbone, data_root, checkpoint)
    test = load_split(data_root, config.split("test"))[: config.n_test]
    zs = evaluate(base.to(device).eval(), test, How2Collator(tok), num_beams=config.num_beams)
    return {k: zs[k] for k in METRICS}, test


def _describe(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['row']:9s} seed {r['seed']}: FAILED: {r['error']}"
    t = r["test"]
    return (f"{r['row']:9s} seed {r['seed']}: R1 {t['rouge1']:.2f} R2 {t['rouge2']:.2f} "
            f"RL {t['rougeL']:.2f} ({r['train_time_s']:.1f}s train)")


def run_transfer(backbone: str = "bart", methods: Sequence[str] = METHODS,
                 seeds: Sequence[int] = (0, 1), quick: bool = True,
                 out_dir: str | Path | None = None, config: TransferConfig | None = None,
                 data_root: str | Path = DATA_ROOT, checkpoint: str | Path | None = None,
                 learning_rates: dict[str, float] | None = None, threads: int | None = None,
                 device: str | torch.device = "cpu",
                 log: Callable[[str], None] | None = print, *, workers: int = 1,
                 executor: str = "local", address: str | None = None, resume: bool = False,
                 progress: bool = False) -> dict[str, Any]:
    """Low-resource VLS transfer of every method, as in Tables 4 (VG-BART) and 5 (VG-T5).

    For each method and seed (:func:`transfer_run`): a fresh copy of the pretrained backbone,
    ``rp.peft.apply`` under the seed, :func:`finetune` on the low-resource train split, summaries
    of the test split, ROUGE-1/2/L. The pretrained backbone without any tuning is scored too
    (``"zero_shot"``, in the table's note).

    Args:
        backbone: ``"bart"`` or ``"t5"``.
        methods: rows to run (names of :data:`~.rows.METHODS`).
        seeds: one run per seed; the table reports mean ± std (sample std, ddof=1).
        quick: use :meth:`TransferConfig.quick`, else :meth:`TransferConfig.full` (ignored when
            ``config`` is given).
        out_dir: if set, writes ``<stem>.json`` and ``<stem>.md`` there (checked before any
            training; the stem is ``vls_<backbone>``, ``vls_hard_<backbone>`` for the hard
            target: :meth:`~.rows.TransferConfig.stem`) and each run's record into
            ``runs_<stem>.jsonl`` as it finishes (``resume`` continues from it).
        learning_rates: per-method overrides of :data:`~.rows.LEARNING_RATES`.
        threads: ``torch.set_num_threads`` for the zero-shot scoring (each run uses one thread).
        workers, executor, address: where the runs execute (:func:`readpvla.experiment.run_grid`).

    Returns:
        The table payload (:func:`readpvla.experiment.table_payload`): ``rows`` (mean ± std of
        R1/R2/RL per method, ``delta``: the interval vs READ-PVLA), ``runs``, ``zero_shot``, ``settings``,
        ``learning_rates``, ``time_s``, and ``markdown``.
    """
    config = config or (TransferConfig.quick() if quick else TransferConfig.full())
    if learning_rates:
        config = TransferConfig(**{**asdict(config), "learning_rates": tuple(sorted(
            {**dict(config.learning_rates), **learning_rates}.items()))})
    methods, seeds = list(methods), [int(s) for s in seeds]
    grid = jobs(backbone, methods, seeds, config, data_root, checkpoint, device)
    records = None
    if out_dir is not None:
        out_dir = ex.check_writable(out_dir)  # before any work: the table must not be lost
        records = out_dir / f"runs_{config.stem(backbone)}.jsonl"
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    zero_shot, test = untuned_scores(backbone, config, data_root, checkpoint, device)
    runs = ex.run_grid(grid, executor, workers=workers, address=address, records=records,
                       resume=resume, progress=progress,
                       log=(lambda r: log(f"{backbone} {_describe(r)}")) if log else None)
    video = has_video_slice(runs)
    note = (f"Trainable #params (M) (%). Pretrained backbone without tuning: "
            f"R1 {zero_shot['rouge1']:.2f}, R2 {zero_shot['rouge2']:.2f}, "
            f"RL {zero_shot['rougeL']:.2f}." + (f" {video_note(test)}" if video else ""))
    spec = table_spec(backbone, methods, seeds, note, title=TITLES[config.target], video=video)
    summary = ex.summarize(runs, spec, seeds)
    md = ex.format_table(summary, spec)
    payload = ex.table_payload(
        spec, summary, runs, seeds, task="vls", backbone=backbone,
        model=backbone_class(backbone).__name__, settings=asdict(config), zero_shot=zero_shot,
        quick=config == TransferConfig.quick(),
        learning_rates={m: config.lr(m) for m in methods},
        reference_example=test[0].summary,
        time_s=round(time.perf_counter() - t0, 1), executor=executor, markdown=md)
    if out_dir is not None:
        ex.write_table(out_dir, config.stem(backbone), payload, md)
    return payload
