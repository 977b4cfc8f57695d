"""One training loop for every task: AdamW over the trainable parameters, seeded, a budget in
epochs or in steps, an optional warm-up + decay schedule, gradient clipping, periodic evaluation
with early stopping and the best weights restored.

::

    from readpvla.train import fit
    # TLG: epochs, early stopping on validation mAP
    result = fit(model, loss_fn, train_loader, epochs=20, lr=1e-3, seed=0,
                 eval_fn=lambda m: evaluate(m, val_set)["MR-full-mAP"], patience=5)
    # VLS: a step budget, linear warm-up then linear decay, validation every 100 steps
    result = fit(model, loss_fn, batches, steps=600, lr=3e-3, warmup_steps=20,
                 schedule="linear", eval_every=100, eval_fn=lambda m: -val_loss(m))

``loss_fn(model, batch) -> (loss, logs)`` is the only task-specific piece (``logs``: a dict of
floats, averaged into the history). Only parameters with ``requires_grad`` are given to the
optimiser, so a model prepared with :func:`readpvla.peft.apply` trains its adapter and nothing
else. With ``eval_fn`` (higher is better) the loop keeps the best evaluation's trainable weights,
stops after ``patience`` evaluations without improvement, and restores the best weights at the end.

Evaluation points: with ``epochs``, after every epoch; with ``steps``, every ``eval_every`` steps,
after the last step, and when ``max_seconds`` runs out. The history has one row per epoch
(``epochs``) or per ``log_every`` steps and per evaluation (``steps``).

Determinism: the loop runs inside :func:`torch.random.fork_rng` seeded with ``seed`` (the caller's
random state is left as it was), so shuffling (``DataLoader(shuffle=True, num_workers=0)``) and
dropout repeat exactly on CPU for a fixed seed. Initialise adapters under the same seed *before*
calling :func:`fit` (see :func:`readpvla.tasks.tlg.run_one`).

Transport plans that do not converge inside ``loss_fn`` (a :class:`readpvla.ot.ConvergenceWarning`)
are counted per row (``ot_unconverged_steps``) and reported once at the end, not once a step.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["SCHEDULES", "FitResult", "fit", "lr_factor", "move_to", "trainable_parameters"]

LossFn = Callable[[nn.Module, Any], tuple[Tensor, Mapping[str, float]]]
EvalFn = Callable[[nn.Module], float | Mapping[str, float]]
SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict per epoch (``epochs``) or per logged / evaluated step (``steps``):
            ``epoch``, ``step`` (optimiser steps so far), ``train_loss`` (mean over the steps
            since the previous row), the mean of every ``logs`` key (prefixed ``train_``),
            ``ot_unconverged_steps``, ``val_loss`` (with a ``val_loader``), ``metric`` (the
            monitored value, when evaluated) and the rest of ``eval_fn``'s dict, ``seconds``.
        best_epoch: the epoch (1-based) whose weights the model holds at the end (the last one
            when nothing is monitored).
        best_step: the optimiser step after which those weights were taken.
        best_metric: the monitored value there (None when nothing is monitored).
        epochs_run: epochs begun (fewer than asked after early stopping).
        stopped_early: True if patience or ``max_seconds`` ended training before the budget.
        n_steps: optimiser steps taken.
        n_trainable: trainable parameter elements.
        wall_time: seconds for the whole call.
        ot_unconverged_steps: training steps whose loss used a transport plan that did not
            converge (a :class:`readpvla.ot.ConvergenceWarning` inside ``loss_fn``).
        ot_worst: the message of the warning with the worst violation ("" if none).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_step: int | None = None
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


def lr_factor(step: int, total: int, warmup_steps: int, schedule: str) -> float:
    r"""The learning-rate multiplier before optimiser step ``step`` (0-based) of ``total``.

    .. math:: f(s) = \min\Big(\frac{s + 1}{w},\ d(s)\Big), \qquad
              d(s) = \begin{cases} 1 & \text{constant} \\
              \max\big(0, \frac{T - s}{\max(1, T - w)}\big) & \text{linear} \\
              \frac12\big(1 + \cos\frac{\pi \min(s - w, T - w)}{\max(1, T - w)}\big)
              & \text{cosine (after warm-up)} \end{cases}

    (no warm-up term when ``w = 0``).
    """
    warm = (step + 1) / warmup_steps if warmup_steps > 0 else 1.0
    if schedule == "constant":
        decay = 1.0
    elif schedule == "linear":
        decay = max(0.0, (total - step) / max(1, total - warmup_steps))
    else:
        done = min(max(step - warmup_steps, 0), total - warmup_steps) / max(1, total - warmup_steps)
        decay = 0.5 * (1.0 + math.cos(math.pi * done))
    return min(warm, decay)


def _positive_int(name: str, v: Any, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be {'None or ' if allow_none else ''}a positive integer, "
                         f"got {v!r}")


def _check(epochs, steps, lr, weight_decay, patience, max_grad_norm, max_seconds, warmup_steps,
           schedule, eval_every, log_every) -> None:
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one budget: epochs or steps")
    _positive_int("epochs", epochs, allow_none=True)
    _positive_int("steps", steps, allow_none=True)
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(weight_decay, int | float) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    _positive_int("patience", patience, allow_none=True)
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be None or > 0, got {max_grad_norm!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be None or > 0, got {max_seconds!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    _positive_int("eval_every", eval_every, allow_none=True)
    _positive_int("log_every", log_every, allow_none=True)
    if steps is None and (eval_every is not None or log_every is not None):
        raise ValueError("eval_every / log_every count steps: use them with steps=, not epochs=")


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


def _batches(loader: Iterable, epochs: int | None) -> Iterator[tuple[int, bool, Any]]:
    """``(epoch, last batch of the epoch, batch)``, re-iterating ``loader`` each epoch (forever
    when ``epochs`` is None)."""
    epoch = 0
    while epochs is None or epoch < epochs:
        epoch += 1
        it = iter(loader)
        try:
            nxt = next(it)
        except StopIteration:
            raise ValueError("train_loader yielded no batch") from None
        for batch in it:
            yield epoch, False, nxt
            nxt = batch
        yield epoch, True, nxt


def fit(model: nn.Module, loss_fn: LossFn, train_loader: Iterable, val_loader: Iterable | None = None,
        *, epochs: int | None = None, steps: int | None = None, lr: float = 1e-3,
        weight_decay: float = 0.01, seed: int = 0, device: torch.device | str | None = None,
        eval_fn: EvalFn | None = None, patience: int | None = None, monitor: str | None = None,
        min_delta: float = 0.0, max_grad_norm: float | None = 1.0,
        max_seconds: float | None = None, warmup_steps: int = 0, schedule: str = "constant",
        eval_every: int | None = None, log_every: int | None = None, progress: bool = True,
        desc: str = "train", log: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    r"""Minimise ``loss_fn`` with AdamW over the trainable parameters of ``model``.

    Training runs in ``model.train()``; at each evaluation point (module docstring), in
    ``model.eval()`` and without gradients, the validation loss over ``val_loader`` (if given)
    and ``eval_fn(model)`` (if given). The monitored value is ``eval_fn``'s number (or its dict's
    ``monitor`` key, default the first key); without ``eval_fn`` but with ``val_loader`` it is
    ``-val_loss``. The best evaluation's trainable weights are kept and restored at the end; with
    ``patience``, training stops after that many evaluations without an improvement larger than
    ``min_delta``.

    Args:
        model: the model; only parameters with ``requires_grad`` train.
        loss_fn: ``loss_fn(model, batch) -> (scalar loss, logs dict of floats)``.
        train_loader: an iterable of batches (re-iterated every epoch).
        val_loader: optional iterable of validation batches.
        epochs: the budget in passes over ``train_loader`` (default 10 when ``steps`` is None).
        steps: the budget in optimiser steps instead (``train_loader`` re-iterated as needed).
        lr, weight_decay: AdamW settings (``lr`` is the peak of the schedule).
        seed: seeds the random state used inside the loop (shuffling, dropout).
        device: move the model and every batch there (None: leave them where they are).
        eval_fn: ``eval_fn(model) -> float`` or a dict of floats; higher is better.
        patience: evaluations without improvement before stopping (None: never stop early).
        monitor: the key of ``eval_fn``'s dict to monitor.
        min_delta: an improvement must exceed this.
        max_grad_norm: clip the gradient norm of the trainable parameters (None: no clipping).
        max_seconds: stop once this wall-clock budget ran out: after the epoch (``epochs``) or
            the step (``steps``, evaluating there first); ``FitResult.stopped_early`` is then True.
        warmup_steps: linear warm-up over this many steps (see :func:`lr_factor`).
        schedule: ``"constant"``, ``"linear"`` or ``"cosine"`` decay to 0 at the budget's end
            (with ``epochs``, a decaying schedule needs ``len(train_loader)``).
        eval_every: with ``steps``: evaluate every this many steps (None: only at the end).
        log_every: with ``steps``: a history row every this many steps (default ``eval_every``).
        progress: show a tqdm bar.
        desc: the bar's label.
        log: called with each history row as it is made.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: bad settings, no trainable parameter, an empty ``train_loader``, or a
            non-finite loss or metric (the message names the epoch and step).
    """
    if epochs is None and steps is None:
        epochs = 10
    _check(epochs, steps, lr, weight_decay, patience, max_grad_norm, max_seconds, warmup_steps,
           schedule, eval_every, log_every)
    t_start = time.perf_counter()
    if device is not None:
        model.to(device)
    params = trainable_parameters(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameter (requires_grad)")
    total = steps
    if total is None and schedule != "constant":
        try:
            total = epochs * len(train_loader)  # type: ignore[arg-type, operator]
        except TypeError:
            raise ValueError(f"schedule {schedule!r} with epochs= needs len(train_loader); "
                             "pass steps= instead") from None
    log_every = log_every if log_every is not None else eval_every
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    monitored = eval_fn is not None or val_loader is not None
    result = FitResult(n_trainable=sum(p.numel() for p in params))
    best_state: dict[str, Tensor] | None = None
    bad_evals, worst_violation = 0, 0.0
    sums: dict[str, float] = {}
    n_batches = unconverged = 0
    t_row = time.perf_counter()
    devices = [torch.device(device).index or 0] if device is not None and \
        torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        sched = None
        if schedule != "constant" or warmup_steps:
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: lr_factor(s, total or 1, warmup_steps, schedule))
        bar = tqdm(total=steps if steps is not None else epochs, desc=desc, disable=not progress,
                   leave=False)
        model.train()
        for epoch, epoch_end, batch in _batches(train_loader, epochs):
            step = result.n_steps
            result.epochs_run = epoch
            loss, logs, ot = _loss_counting_ot(loss_fn, model, move_to(batch, device))
            if not torch.isfinite(loss):
                raise ValueError(f"non-finite training loss {float(loss.detach())} at epoch "
                                 f"{epoch}, step {step} (logs: {dict(logs)})")
            if ot:
                unconverged += 1
                worst = max(ot, key=lambda w: getattr(w, "violation", 0.0))
                if getattr(worst, "violation", 0.0) >= worst_violation:
                    worst_violation = getattr(worst, "violation", 0.0)
                    result.ot_worst = str(worst)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            if sched is not None:
                sched.step()
            result.n_steps += 1
            n_batches += 1
            sums["train_loss"] = sums.get("train_loss", 0.0) + float(loss.detach())
            for k, v in logs.items():
                sums[f"train_{k}"] = sums.get(f"train_{k}", 0.0) + float(v)
            out_of_time = max_seconds is not None and time.perf_counter() - t_start > max_seconds
            if steps is None:  # epochs: a row and an evaluation at the end of every epoch
                row_now = evaluate_now = epoch_end
                if epoch_end:
                    bar.update()
            else:
                bar.update()
                last = result.n_steps >= steps
                evaluate_now = last or out_of_time or (
                    eval_every is not None and result.n_steps % eval_every == 0)
                row_now = evaluate_now or (log_every is not None
                                           and result.n_steps % log_every == 0)
            if row_now:
                row: dict[str, float] = {"epoch": epoch, "step": result.n_steps,
                                         **{k: v / n_batches for k, v in sums.items()},
                                         "ot_unconverged_steps": unconverged}
                result.ot_unconverged_steps += unconverged
                sums, n_batches, unconverged = {}, 0, 0
                if evaluate_now and monitored:
                    model.eval()
                    if val_loader is not None:
                        row["val_loss"] = _mean_loss(model, loss_fn, val_loader, device)
                    if eval_fn is not None:
                        with torch.no_grad():
                            metric, extra = _metric(eval_fn(model), monitor)
                        row.update(extra)
                        row["metric"] = metric
                    else:
                        row["metric"] = -row["val_loss"]
                    model.train()
                    metric = row["metric"]
                    if not math.isfinite(metric):
                        raise ValueError(f"non-finite validation metric {metric} at epoch "
                                         f"{epoch}, step {result.n_steps}")
                    if result.best_metric is None or metric > result.best_metric + min_delta:
                        result.best_metric, bad_evals = metric, 0
                        result.best_epoch, result.best_step = epoch, result.n_steps
                        best_state = {n: p.detach().clone() for n, p in named}
                    else:
                        bad_evals += 1
                    bar.set_postfix(loss=f"{row['train_loss']:.3f}", metric=f"{metric:.3f}",
                                    best=f"{result.best_metric:.3f}")
                else:
                    bar.set_postfix(loss=f"{row['train_loss']:.3f}")
                row["seconds"] = time.perf_counter() - t_row
                t_row = time.perf_counter()
                result.history.append(row)
                if log is not None:
                    log(row)
                if monitored and evaluate_now and patience is not None and bad_evals >= patience:
                    result.stopped_early = True
                    break
            if steps is not None and result.n_steps >= steps:
                break
            if out_of_time and (steps is not None or epoch_end):
                result.stopped_early = steps is not None or epoch < epochs
                break
        bar.close()
    if best_state is not None:
        with torch.no_grad():
            for n, p in named:
                p.copy_(best_state[n])
    else:
        result.best_epoch, result.best_step = result.epochs_run, result.n_steps
    model.eval()
    result.wall_time = time.perf_counter() - t_start
    if result.ot_unconverged_steps:
        from readpvla.ot import ConvergenceWarning

        warnings.warn(f"{desc}: {result.ot_unconverged_steps} of {result.n_steps} training steps "
                      f"used a transport plan that did not converge; worst: {result.ot_worst}",
                      ConvergenceWarning, stacklevel=2)
    return result
