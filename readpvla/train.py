"""A small, generic training loop: AdamW over the trainable parameters, seeded, early stopping.

::

    from readpvla.train import fit
    result = fit(model, loss_fn, train_loader, val_loader, epochs=20, lr=1e-3, seed=0,
                 eval_fn=lambda m: evaluate(m, val_set)["MR-full-mAP"], patience=5)

``loss_fn(model, batch) -> (loss, logs)`` is the only task-specific piece (``logs``: a dict of
floats, averaged per epoch into the history). Only parameters with ``requires_grad`` are given to
the optimiser, so a model prepared with :func:`readpvla.peft.apply` trains its adapter and nothing
else. With ``eval_fn`` (higher is better) the loop keeps the best epoch's trainable weights, stops
after ``patience`` epochs without improvement, and restores the best weights at the end.

Determinism: the loop runs inside :func:`torch.random.fork_rng` seeded with ``seed`` (the caller's
random state is left as it was), so shuffling (``DataLoader(shuffle=True, num_workers=0)``) and
dropout repeat exactly on CPU for a fixed seed. Initialise adapters under the same seed *before*
calling :func:`fit` (see :func:`readpvla.tlg.run_transfer`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["FitResult", "fit", "move_to", "trainable_parameters"]

LossFn = Callable[[nn.Module, Any], tuple[Tensor, Mapping[str, float]]]
EvalFn = Callable[[nn.Module], float | Mapping[str, float]]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict per epoch: ``epoch``, ``train_loss`` (mean over steps), the mean of
            every ``logs`` key (prefixed ``train_``), ``val_loss`` (with a ``val_loader``),
            ``metric`` (the monitored value, with ``eval_fn``) and the rest of ``eval_fn``'s dict,
            ``seconds``.
        best_epoch: the epoch (1-based) whose weights the model holds at the end (the last one
            when nothing is monitored).
        best_metric: the monitored value at ``best_epoch`` (None when nothing is monitored).
        epochs_run: epochs actually run (fewer than asked after early stopping).
        stopped_early: True if patience ran out.
        n_steps: optimiser steps taken.
        n_trainable: trainable parameter elements.
        wall_time: seconds for the whole call.
        ot_unconverged_steps: training steps whose loss used a transport plan that did not
            converge (a :class:`readpvla.ot.ConvergenceWarning` inside ``loss_fn``); per epoch in
            ``history[i]["ot_unconverged_steps"]``.
        ot_worst: the message of the warning with the worst violation ("" if none).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    epochs_run: int = 0
    stopped_early: bool = False
    n_steps: int = 0
    n_trainable: int = 0
    wall_time: float = 0.0
    ot_unconverged_steps: int = 0
    ot_worst: str = ""


def move_to(batch: Any, device: torch.device | str | None) -> Any:
    """Move a batch to ``device``: tensors, objects with ``.to`` (e.g. ``TLGBatch``), and dicts,
    lists and tuples of them; anything else is returned unchanged."""
    if device is None:
        return batch
    if isinstance(batch, Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad`` (the ones :func:`fit` optimises)."""
    return [p for p in model.parameters() if p.requires_grad]


def _check(epochs: int, lr: float, weight_decay: float, patience: int | None,
           max_grad_norm: float | None, max_seconds: float | None) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(weight_decay, int | float) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 1):
        raise ValueError(f"patience must be None or a positive integer, got {patience!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be None or > 0, got {max_grad_norm!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be None or > 0, got {max_seconds!r}")


def _metric(result: float | Mapping[str, float], monitor: str | None) -> tuple[float, dict]:
    if isinstance(result, Mapping):
        if not result:
            raise ValueError("eval_fn returned an empty dict")
        key = monitor if monitor is not None else next(iter(result))
        if key not in result:
            raise ValueError(f"monitor {key!r} is not among eval_fn's keys {sorted(result)}")
        extra = {k: float(v) for k, v in result.items() if isinstance(v, int | float)}
        return float(result[key]), extra
    return float(result), {}


def _mean_loss(model: nn.Module, loss_fn: LossFn, loader: Iterable, device: Any) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            loss, _ = loss_fn(model, move_to(batch, device))
            total, n = total + float(loss), n + 1
    return total / max(n, 1)


def _loss_counting_ot(loss_fn: LossFn, model: nn.Module, batch: Any
                      ) -> tuple[Tensor, Mapping[str, float], list[Warning]]:
    """``loss_fn(model, batch)`` with every :class:`~readpvla.ot.ConvergenceWarning` caught and
    returned (any other warning passes through unchanged)."""
    from readpvla.ot import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss, logs = loss_fn(model, batch)
    ot = []
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            ot.append(w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return loss, logs, ot


def fit(model: nn.Module, loss_fn: LossFn, train_loader: Iterable, val_loader: Iterable | None = None,
        *, epochs: int = 10, lr: float = 1e-3, weight_decay: float = 0.01, seed: int = 0,
        device: torch.device | str | None = None, eval_fn: EvalFn | None = None,
        patience: int | None = None, monitor: str | None = None, min_delta: float = 0.0,
        max_grad_norm: float | None = 1.0, max_seconds: float | None = None,
        progress: bool = True, desc: str = "train") -> FitResult:
    r"""Minimise ``loss_fn`` with AdamW over the trainable parameters of ``model``.

    Each epoch: one pass over ``train_loader`` (``model.train()``), then, in ``model.eval()`` and
    without gradients, the validation loss over ``val_loader`` (if given) and ``eval_fn(model)``
    (if given). The monitored value is ``eval_fn``'s number (or its dict's ``monitor`` key, default
    the first key); without ``eval_fn`` but with ``val_loader`` it is ``-val_loss``. The best
    epoch's trainable weights are kept and restored at the end; with ``patience``, training stops
    after that many epochs without an improvement larger than ``min_delta``.

    Args:
        model: the model; only parameters with ``requires_grad`` train.
        loss_fn: ``loss_fn(model, batch) -> (scalar loss, logs dict of floats)``.
        train_loader: an iterable of batches (re-iterated every epoch).
        val_loader: optional iterable of validation batches.
        epochs: maximum number of epochs.
        lr, weight_decay: AdamW settings.
        seed: seeds the random state used inside the loop (shuffling, dropout).
        device: move the model and every batch there (None: leave them where they are).
        eval_fn: ``eval_fn(model) -> float`` or a dict of floats; higher is better.
        patience: epochs without improvement before stopping (None: never stop early).
        monitor: the key of ``eval_fn``'s dict to monitor.
        min_delta: an improvement must exceed this.
        max_grad_norm: clip the gradient norm of the trainable parameters (None: no clipping).
        max_seconds: stop after the epoch during which this wall-clock budget ran out (None: no
            limit); ``FitResult.stopped_early`` is then True.
        progress: show a tqdm bar over epochs.
        desc: the bar's label.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: bad settings, no trainable parameter, or a non-finite loss (the message names
            the epoch and step).
    """
    _check(epochs, lr, weight_decay, patience, max_grad_norm, max_seconds)
    t_start = time.perf_counter()
    if device is not None:
        model.to(device)
    params = trainable_parameters(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameter (requires_grad)")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    monitored = eval_fn is not None or val_loader is not None
    result = FitResult(n_trainable=sum(p.numel() for p in params))
    best_state: dict[str, Tensor] | None = None
    bad_epochs = 0
    worst_violation = 0.0
    devices = [torch.device(device).index or 0] if device is not None and \
        torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            sums: dict[str, float] = {}
            n_batches = 0
            unconverged = 0
            for step, batch in enumerate(train_loader):
                loss, logs, ot = _loss_counting_ot(loss_fn, model, move_to(batch, device))
                if ot:
                    unconverged += 1
                    worst = max(ot, key=lambda w: getattr(w, "violation", 0.0))
                    if getattr(worst, "violation", 0.0) >= worst_violation:
                        worst_violation = getattr(worst, "violation", 0.0)
                        result.ot_worst = str(worst)
                if not torch.isfinite(loss):
                    raise ValueError(f"non-finite training loss {float(loss.detach())} at epoch {epoch}, "
                                     f"step {step} (logs: {dict(logs)})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                opt.step()
                result.n_steps += 1
                n_batches += 1
                sums["train_loss"] = sums.get("train_loss", 0.0) + float(loss.detach())
                for k, v in logs.items():
                    sums[f"train_{k}"] = sums.get(f"train_{k}", 0.0) + float(v)
            if n_batches == 0:
                raise ValueError("train_loader yielded no batch")
            row: dict[str, float] = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()},
                                     "ot_unconverged_steps": unconverged}
            result.ot_unconverged_steps += unconverged
            model.eval()
            if val_loader is not None:
                row["val_loss"] = _mean_loss(model, loss_fn, val_loader, device)
            if eval_fn is not None:
                with torch.no_grad():
                    metric, extra = _metric(eval_fn(model), monitor)
                row.update(extra)
                row["metric"] = metric
            elif val_loader is not None:
                row["metric"] = -row["val_loss"]
            row["seconds"] = time.perf_counter() - t0
            result.history.append(row)
            result.epochs_run = epoch
            if monitored:
                metric = row["metric"]
                if not math.isfinite(metric):
                    raise ValueError(f"non-finite validation metric {metric} at epoch {epoch}")
                if result.best_metric is None or metric > result.best_metric + min_delta:
                    result.best_metric, result.best_epoch, bad_epochs = metric, epoch, 0
                    best_state = {n: p.detach().clone() for n, p in named}
                else:
                    bad_epochs += 1
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", metric=f"{metric:.3f}",
                                best=f"{result.best_metric:.3f}")
                if patience is not None and bad_epochs >= patience:
                    result.stopped_early = True
                    break
            else:
                bar.set_postfix(loss=f"{row['train_loss']:.3f}")
            if max_seconds is not None and time.perf_counter() - t_start > max_seconds:
                result.stopped_early = epoch < epochs
                break
        bar.close()
    if best_state is not None:
        with torch.no_grad():
            for n, p in named:
                p.copy_(best_state[n])
    else:
        result.best_epoch = result.epochs_run
    model.eval()
    result.wall_time = time.perf_counter() - t_start
    if result.ot_unconverged_steps:
        from readpvla.ot import ConvergenceWarning

        warnings.warn(f"{desc}: {result.ot_unconverged_steps} of {result.n_steps} training steps "
                      f"used a transport plan that did not converge; worst: {result.ot_worst}",
                      ConvergenceWarning, stacklevel=2)
    return result
