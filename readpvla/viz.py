"""Figures and notebook helpers (plotly + ipywidgets).

Every figure function returns a ``plotly.graph_objects.Figure`` (or ``FigureWidget``) and never
shows it, so notebooks decide; :func:`setup_notebook` makes headless runs quiet and deterministic.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence

import numpy as np
import torch


def setup_notebook(seed: int = 0, device: str = "cpu", threads: int | None = None) -> torch.device:
    """Seed everything, silence download/progress chatter, pick the plotly renderer.

    Returns the torch device (raises a clear error for an unknown or unavailable one).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    import plotly.io as pio

    # JupyterLab renders the plotly mimetype natively; no random div ids in the saved outputs
    pio.renderers.default = "plotly_mimetype"
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    dev = _device(device)
    return dev


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is available here; use 'cpu'")
    return dev


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise a one-line ``ValueError`` if a notebook parameter is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"parameter {name}={value!r} is not one of {list(choices)}")


def check_range(name: str, value: object, low: float, high: float | None = None,
                low_open: bool = False) -> None:
    """Raise a one-line ``ValueError`` if a numeric notebook parameter is out of range."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        lo = f"({low}" if low_open else f"[{low}"
        hi = f"{high}]" if high is not None else "inf)"
        raise ValueError(f"parameter {name}={value!r} must be a number in {lo}, {hi}")


def bar_groups(values: Mapping[str, Sequence[float]], labels: Sequence[str], title: str,
               yaxis: str, log: bool = False):
    """Grouped bars: one trace per key of ``values``, one group per label."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(name=k, x=list(labels), y=list(v)) for k, v in values.items()])
    fig.update_layout(barmode="group", title=title, yaxis_title=yaxis, height=360,
                      margin=dict(l=40, r=10, t=50, b=40))
    if log:
        fig.update_yaxes(type="log")
    return fig


def plan_heatmap(plan, row_labels=None, col_labels=None, title: str = "transport plan",
                 marginals: bool = True):
    """A transport plan as a heatmap, with its row and column sums beside it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    t = plan.detach().cpu().double().numpy() if isinstance(plan, torch.Tensor) else np.asarray(plan)
    n, m = t.shape
    rows = list(row_labels) if row_labels is not None else [str(i) for i in range(n)]
    cols = list(col_labels) if col_labels is not None else [str(j) for j in range(m)]
    if not marginals:
        fig = go.Figure(go.Heatmap(z=t, x=cols, y=rows, colorscale="Viridis"))
        fig.update_layout(title=title, yaxis_autorange="reversed", height=420)
        return fig
    fig = make_subplots(rows=2, cols=2, column_widths=[0.82, 0.18], row_heights=[0.2, 0.8],
                        shared_xaxes="columns", shared_yaxes="rows",
                        horizontal_spacing=0.02, vertical_spacing=0.02)
    fig.add_trace(go.Heatmap(z=t, x=cols, y=rows, colorscale="Viridis", showscale=False), 2, 1)
    fig.add_trace(go.Bar(x=cols, y=t.sum(0), name="column sums (T^T 1)", marker_color="#636efa"), 1, 1)
    fig.add_trace(go.Bar(y=rows, x=t.sum(1), orientation="h", name="row sums (T 1)",
                         marker_color="#ef553b"), 2, 2)
    fig.update_yaxes(autorange="reversed", row=2, col=1)
    fig.update_layout(title=title, height=480, showlegend=False, margin=dict(l=40, r=10, t=50, b=40))
    return fig


def plan_explorer(pairs: Mapping[str, tuple], tau: float = 0.05, mass: float = 0.5,
                  n_iter: int = 1000):
    """An ipywidgets explorer of partial transport plans.

    Args:
        pairs: ``{name: (h_v [N_V, d], h_l [N_L, d], video_labels, word_labels)}`` — e.g. a
            query / video pair per entry; the cost is the cosine distance (the PVLA cost).
        tau, mass, n_iter: starting values of the sliders.

    Returns:
        ``(widget, update)``: a VBox with a pair dropdown, sliders for tau (log scale), mass and
        iterations, a live plotly ``FigureWidget`` heatmap of the plan with its row / column sums
        beside it, and a line with the cost and the solver's report; ``update()`` redraws (it
        runs once at creation, so headless runs execute the whole path).
    """
    import ipywidgets as widgets
    import plotly.graph_objects as go

    from readpvla.ot import cosine_cost, partial_sinkhorn

    if not pairs:
        raise ValueError("plan_explorer needs at least one (h_v, h_l, video_labels, word_labels) pair")
    names = list(pairs)
    pick = widgets.Dropdown(options=names, value=names[0], description="pair")
    s_tau = widgets.FloatLogSlider(value=tau, base=10, min=-3, max=0, step=0.05, description="tau")
    s_mass = widgets.FloatSlider(value=mass, min=0.05, max=1.0, step=0.05, description="mass")
    s_iter = widgets.IntSlider(value=n_iter, min=1, max=2000, step=1, description="iterations")
    status = widgets.HTML()
    fig = go.FigureWidget(plan_heatmap(np.zeros((2, 2))))

    def update(*_):
        h_v, h_l, v_lab, l_lab = pairs[pick.value]
        cost = cosine_cost(torch.as_tensor(h_v).float(), torch.as_tensor(h_l).float())
        plan, info = partial_sinkhorn(cost.double(), mass=s_mass.value, tau=s_tau.value,
                                      max_iter=s_iter.value, tol=1e-9)
        t = plan.numpy()
        with fig.batch_update():
            fig.data[0].z, fig.data[0].x, fig.data[0].y = t, list(l_lab), list(v_lab)
            fig.data[1].x, fig.data[1].y = list(l_lab), t.sum(0)
            fig.data[2].y, fig.data[2].x = list(v_lab), t.sum(1)
            fig.layout.title = f"{pick.value}: partial plan (mass {s_mass.value:.2f}, tau {s_tau.value:.3g})"
        status.value = (f"cost &lt;T, C&gt; = {(plan * cost.double()).sum():.4f} &nbsp; "
                        f"iterations {info.n_iter} &nbsp; violation {float(info.violation):.1e} "
                        f"&nbsp; converged {bool(info.converged)}")

    for w in (pick, s_tau, s_mass, s_iter):
        w.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([pick, s_tau]), widgets.HBox([s_mass, s_iter]), fig, status])
    return box, update


def small(x: float, floor: float = 1e-10) -> str:
    """Format an error that should be ~0: ``"< 1e-10"`` below ``floor`` (so saved notebook
    outputs do not depend on rounding noise), else ``"3.2e-04"``."""
    x = float(x)
    return f"< {floor:.0e}" if abs(x) < floor else f"{x:.1e}"
