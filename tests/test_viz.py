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


def test_plan_heatmap_keeps_repeated_labels_apart():
    # a query with "a" twice: two columns, at numeric positions labelled by the tokens
    plan = torch.full((3, 4), 1 / 12)
    fig = viz.plan_heatmap(plan, ["0s", "2s", "4s"], ["[CLS]", "a", "a", "[SEP]"])
    heat, cols, rows = fig.data
    assert np.asarray(heat.z).shape == (3, 4) and list(heat.x) == [0, 1, 2, 3]
    assert fig.layout.xaxis3.type == "linear" and list(fig.layout.xaxis3.ticktext) == [
        "[CLS]", "a", "a", "[SEP]"]
    assert tuple(fig.layout.xaxis3.range) == (-0.5, 3.5)
    assert tuple(fig.layout.yaxis3.range) == (2.5, -0.5)  # row 0 on top
    assert len(cols.x) == 4 and heat.text[0][2] == "0s \u00d7 a"
    with pytest.raises(ValueError, match="needs 3 row and 4 column labels"):
        viz.plan_heatmap(plan, ["0s", "2s"], ["a", "b", "c", "d"])


def _explorer_pairs():
    g = torch.Generator().manual_seed(0)
    return {"long": (torch.randn(9, 8, generator=g), torch.randn(6, 8, generator=g),
                     [f"c{i}" for i in range(9)], ["[CLS]", "a", "dog", "a", "a", "[SEP]"]),
            "short": (torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g),
                      [f"c{i}" for i in range(5)], ["[CLS]", "b", "[SEP]"])}


def test_plan_explorer_starts_from_real_data_with_the_values_asked_for():
    box, _ = viz.plan_explorer(_explorer_pairs(), tau=0.05, mass=0.5)
    (_, s_tau), (s_mass, _) = box.children[0].children, box.children[1].children
    assert s_tau.value == 0.05 and s_mass.value == 0.5  # held exactly, not 10 ** -1.3
    z = np.asarray(box.figure.data[0].z)
    assert z.shape == (9, 6) and z.sum() == pytest.approx(0.5, abs=1e-6)  # no 2 x 2 placeholder
    assert box.figure.layout.title.text.startswith("long")
    # the widget's stored state (what a reload draws) is this figure
    assert np.asarray(box.figure._widget_data[0]["z"]).shape == (9, 6)
    # an odd start value is one of the choices, too
    box2, _ = viz.plan_explorer(_explorer_pairs(), tau=0.0123, mass=0.37)
    assert box2.children[0].children[1].value == 0.0123
    assert box2.children[1].children[0].value == 0.37


def test_plan_explorer_pair_change_redraws_exactly_that_pair():
    box, _ = viz.plan_explorer(_explorer_pairs())
    pick, fig = box.children[0].children[0], box.figure
    for name, shape in (("short", (5, 3)), ("long", (9, 6))):
        pick.value = name
        assert np.asarray(fig.data[0].z).shape == shape
        assert fig.layout.xaxis3.type == "linear" and len(fig.layout.xaxis3.ticktext) == shape[1]
        assert tuple(fig.layout.xaxis3.range) == (-0.5, shape[1] - 0.5)
        assert tuple(fig.layout.yaxis3.range) == (shape[0] - 0.5, -0.5)
        assert len(fig.data[1].x) == shape[1] and len(fig.data[2].y) == shape[0]
        stored = fig._widget_data[0]  # a browser reload draws this
        assert np.asarray(stored["z"]).shape == shape
        assert fig._widget_layout["title"]["text"].startswith(name)
    assert list(fig.layout.xaxis3.ticktext) == ["[CLS]", "a", "dog", "a", "a", "[SEP]"]


def test_plan_explorer_saved_without_a_kernel_has_a_snapshot_and_plain_words():
    box, _ = viz.plan_explorer(_explorer_pairs())
    snap = box.snapshot()
    assert type(snap).__name__ == "Figure"  # static: a saved notebook shows it
    assert np.allclose(np.asarray(snap.data[0].z), np.asarray(box.figure.data[0].z))
    assert snap.layout.title.text.startswith("static snapshot: long")
    bundle = box._repr_mimebundle_()
    assert bundle["text/plain"] == "Plan explorer (interactive): run the notebook to use it."
    assert "application/vnd.jupyter.widget-view+json" in bundle


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
