"""The generic trainer: only trainable parameters move, determinism, early stopping, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from readpvla.train import FitResult, fit, move_to


def problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.2), nn.Tanh(), nn.Linear(8, 1))
    model[0].requires_grad_(False)  # a "frozen backbone" layer
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    return model, loader


def mse(model, batch):
    x, y = batch
    loss = ((model(x) - y) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def test_only_trainable_parameters_change():
    model, loader = problem()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    res = fit(model, mse, loader, epochs=3, lr=1e-2, progress=False)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
        else:
            assert not torch.equal(p, trained[n]), n
    assert res.n_trainable == 8 + 1 and res.n_steps == 3 * 4 and res.epochs_run == 3
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert "train_mse" in res.history[0]


def test_deterministic_for_a_fixed_seed_and_caller_rng_untouched():
    runs = []
    for _ in range(2):
        model, loader = problem()
        state = torch.random.get_rng_state()
        res = fit(model, mse, loader, epochs=3, lr=1e-2, seed=7, progress=False)
        assert torch.equal(state, torch.random.get_rng_state())
        runs.append(([h["train_loss"] for h in res.history], model[3].weight.detach().clone()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    model, loader = problem()
    res = fit(model, mse, loader, epochs=3, lr=1e-2, seed=8, progress=False)
    assert [h["train_loss"] for h in res.history] != runs[0][0]


def test_early_stopping_restores_the_best_epoch():
    model, loader = problem()
    scripted = iter([1.0, 3.0, 2.0, 2.5, 9.0, 9.0])
    snapshots = []

    def eval_fn(m):
        snapshots.append(m[3].weight.detach().clone())
        return {"score": next(scripted), "other": 0.5}

    res = fit(model, mse, loader, epochs=6, lr=1e-2, eval_fn=eval_fn, monitor="score",
              patience=2, progress=False)
    assert res.stopped_early and res.epochs_run == 4
    assert res.best_epoch == 2 and res.best_metric == 3.0
    assert torch.equal(model[3].weight, snapshots[1])
    assert [h["metric"] for h in res.history] == [1.0, 3.0, 2.0, 2.5]
    assert res.history[0]["other"] == 0.5
    assert not model.training


def test_validation_loss_is_monitored_without_eval_fn():
    model, loader = problem()
    res = fit(model, mse, loader, val_loader=loader, epochs=3, lr=1e-2, progress=False)
    assert all("val_loss" in h for h in res.history)
    assert res.best_metric == max(-h["val_loss"] for h in res.history)


def test_errors():
    model, loader = problem()
    with pytest.raises(ValueError, match="epochs"):
        fit(model, mse, loader, epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(model, mse, loader, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="patience"):
        fit(model, mse, loader, patience=0, progress=False)
    with pytest.raises(ValueError, match="monitor 'nope'"):
        fit(model, mse, loader, epochs=1, eval_fn=lambda m: {"a": 1.0}, monitor="nope",
            progress=False)

    def nan_loss(m, b):
        return torch.tensor(float("nan"), requires_grad=True), {}

    with pytest.raises(ValueError, match="non-finite training loss .* epoch 1, step 0"):
        fit(model, nan_loss, loader, epochs=1, progress=False)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        fit(model, mse, loader, progress=False)


def test_max_seconds_stops_after_the_first_epoch():
    model, loader = problem()
    res = fit(model, mse, loader, epochs=50, lr=1e-3, max_seconds=1e-9, progress=False)
    assert isinstance(res, FitResult) and res.epochs_run == 1 and res.stopped_early


def test_move_to_handles_nested_batches():
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), "keep"), "n": 3}
    moved = move_to(batch, "cpu")
    assert moved["pair"][1] == "keep" and moved["n"] == 3
    assert move_to(batch, None) is batch
