"""Figures, the plan explorer, notebook parameter checks and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from readpvla import viz


def test_plan_heatmap_marginals_are_the_plan_sums():
    plan = torch.tensor([[0.1, 0.0, 0.2], [0.05, 0.15, 0.0]])
    fig = viz.plan_heatmap(plan, ["v0", "v1"], ["a", "b", "c"])
    heat, cols, rows = fig.data
    assert np.allclose(heat.z, plan.numpy())
    assert np.allclose(cols.y, plan.sum(0).numpy()) and np.allclose(rows.x, plan.sum(1).numpy())


def test_plan_explorer_updates_live_when_a_slider_moves():
    g = torch.Generator().manual_seed(0)
    pairs = {"p": (torch.randn(6, 8, generator=g), torch.randn(4, 8, generator=g),
                   [f"c{i}" for i in range(6)], [f"w{j}" for j in range(4)])}
    box, update = viz.plan_explorer(pairs, tau=0.05, mass=0.5)
    _, sliders, fig, status = box.children
    s_mass = sliders.children[0]
    assert np.asarray(fig.data[0].z).sum() == pytest.approx(0.5, abs=1e-6)
    s_mass.value = 0.25  # the observer redraws
    assert np.asarray(fig.data[0].z).sum() == pytest.approx(0.25, abs=1e-6)
    assert "converged True" in status.value
    with pytest.raises(ValueError, match="at least one"):
        viz.plan_explorer({})


@pytest.mark.parametrize("call, msg", [
    (lambda: viz.check_choice("cell", "lstmx", ["rnn", "gru", "lstm"]), "cell='lstmx' is not one of"),
    (lambda: viz.check_range("tau", -0.1, 0, None, low_open=True), r"tau=-0.1 must be a number in \(0"),
    (lambda: viz.check_range("mass", float("nan"), 0, 1), "mass=nan"),
    (lambda: viz.check_range("mass", True, 0, 1), "mass=True"),
    (lambda: viz.setup_notebook(seed=-1), "seed must be a non-negative integer"),
    (lambda: viz.setup_notebook(device="tpu7"), "device must be"),
])
def test_notebook_parameter_checks(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_asking_for_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        viz.setup_notebook(device="cuda")


def test_cli_help_and_unknown_command():
    out = subprocess.run([sys.executable, "-m", "readpvla.cli", "--help"], capture_output=True,
                         text=True, check=True)
    assert "eval-tlg" in out.stdout and "run-notebooks" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "readpvla.cli", "frobnicate"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr
