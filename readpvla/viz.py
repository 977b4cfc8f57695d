"""Figures and notebook helpers (plotly + ipywidgets).

Every figure function returns a ``plotly.graph_objects.Figure`` (or ``FigureWidget``) and never
shows it, so notebooks decide; :func:`setup_notebook` makes headless runs quiet and deterministic.
"""

from __future__ import annotations

import functools
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


def pareto_figure(points: Sequence[Mapping], title: str = "accuracy vs trainable parameters",
                  yaxis: str = "test score", width: int = 760, height: int = 440):
    """Each method at each size as a point (trainable parameters on a log axis, its score with
    ± std error bars), one line per method through its sizes, the chosen setting ringed, and the
    Pareto frontier (:func:`readpvla.experiment.tuning.pareto_front`) as a dashed step line.

    Args:
        points: dicts with ``row``, ``size`` (None for a method without a size knob),
            ``trainable``, ``mean``, optional ``std``, ``chosen``, ``frontier`` (as
            :func:`readpvla.tasks.tlg.pareto` writes them; a missing ``frontier`` is computed).

    Raises:
        ValueError: no points, or a point without ``row`` / ``trainable`` / ``mean``.
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    from readpvla.experiment.tuning import pareto_front

    pts = list(points)
    if not pts:
        raise ValueError("no points to plot")
    missing = [i for i, p in enumerate(pts) if not {"row", "trainable", "mean"} <= set(p)]
    if missing:
        raise ValueError(f"points {missing[:5]} lack one of 'row', 'trainable', 'mean'")
    front = ({i for i, p in enumerate(pts) if p["frontier"]} if all("frontier" in p for p in pts)
             else set(pareto_front([(p["trainable"], p["mean"]) for p in pts])))
    fig = go.Figure()
    # one colour per method, set explicitly: the ring traces would otherwise take colour slots
    # from the default cycle, and two methods would share a colour
    palette = qualitative.Plotly + qualitative.D3 + qualitative.Dark24
    for k, row in enumerate(dict.fromkeys(p["row"] for p in pts)):
        mine = sorted((p for p in pts if p["row"] == row), key=lambda p: p["trainable"])
        color = palette[k % len(palette)]
        fig.add_trace(go.Scatter(
            x=[p["trainable"] for p in mine], y=[p["mean"] for p in mine], name=row,
            mode="lines+markers", legendgroup=row, line=dict(color=color),
            marker=dict(color=color),
            error_y=dict(type="data", array=[p.get("std") or 0 for p in mine]),
            text=[f"{row}" + (f", size {p['size']}" if p.get("size") is not None else "")
                  for p in mine], hovertemplate="%{text}<br>%{x:,} params<br>%{y:.2f}"))
        chosen = [p for p in mine if p.get("chosen")]
        if chosen:
            fig.add_trace(go.Scatter(
                x=[p["trainable"] for p in chosen], y=[p["mean"] for p in chosen],
                mode="markers", legendgroup=row, showlegend=False, hoverinfo="skip",
                marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2, color="black"))))
    fr = sorted((pts[i] for i in front), key=lambda p: p["trainable"])
    fig.add_trace(go.Scatter(x=[p["trainable"] for p in fr], y=[p["mean"] for p in fr],
                             mode="lines", line=dict(shape="hv", dash="dash", color="gray"),
                             name="Pareto frontier", hoverinfo="skip"))
    fig.update_xaxes(type="log", title_text="trainable parameters", exponentformat="power")
    fig.update_yaxes(title_text=yaxis)
    fig.update_layout(title=title, width=width, height=height,
                      margin=dict(l=60, r=10, t=50, b=50))
    return fig


def _ticks(n: int, labels: Sequence[str], max_labels: int) -> dict:
    """Axis settings for ``n`` numeric positions 0..n-1 labelled by ``labels``.

    Positions, not categories: two equal labels (a query with "a" four times) stay two columns, and
    a figure updated with other labels keeps no stale categories. Above ``max_labels`` only every
    k-th position is labelled (hover still names every cell).
    """
    k = max(1, -(-n // max_labels))
    pos = list(range(0, n, k))
    return dict(type="linear", tickmode="array", tickvals=pos,
                ticktext=[str(labels[i]) for i in pos], showgrid=False, zeroline=False)


def _plan_traces(t: np.ndarray, rows: Sequence[str], cols: Sequence[str]) -> dict:
    """The data of :func:`plan_heatmap`'s three traces (heatmap, column sums, row sums)."""
    n, m = t.shape
    cells = [[f"{rows[i]} \u00d7 {cols[j]}" for j in range(m)] for i in range(n)]
    return {
        "heat": dict(z=t, x=np.arange(m), y=np.arange(n), text=cells),
        "cols": dict(x=np.arange(m), y=t.sum(0), customdata=list(map(str, cols))),
        "rows": dict(y=np.arange(n), x=t.sum(1), customdata=list(map(str, rows))),
    }


def _plan_axes(n: int, m: int, rows: Sequence[str], cols: Sequence[str]) -> dict:
    """Layout of the heatmap's axes (``make_subplots`` names: x3/y3 heatmap, x top bars, y4 right
    bars): ticks at the positions, and ranges set explicitly, so a redraw with another pair (or
    after a zoom) always shows exactly its ``n x m`` cells."""
    x = dict(_ticks(m, cols, 40), range=[-0.5, m - 0.5])
    y = dict(_ticks(n, rows, 25), range=[n - 0.5, -0.5])  # row 0 at the top, as in a matrix
    return dict(xaxis3=x, xaxis=dict(range=x["range"]), yaxis3=y, yaxis4=dict(range=y["range"]))


def plan_heatmap(plan, row_labels=None, col_labels=None, title: str = "transport plan",
                 marginals: bool = True):
    """A transport plan as a heatmap, with its row and column sums beside it.

    Rows and columns sit at numeric positions labelled by ``row_labels`` / ``col_labels``, so equal
    labels (repeated tokens) keep their own column.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    t = plan.detach().cpu().double().numpy() if isinstance(plan, torch.Tensor) else np.asarray(plan)
    n, m = t.shape
    rows = list(row_labels) if row_labels is not None else [str(i) for i in range(n)]
    cols = list(col_labels) if col_labels is not None else [str(j) for j in range(m)]
    if len(rows) != n or len(cols) != m:
        raise ValueError(f"a {n} x {m} plan needs {n} row and {m} column labels, "
                         f"got {len(rows)} and {len(cols)}")
    data = _plan_traces(t, rows, cols)
    hover = "%{text}<br>T = %{z:.3g}<extra></extra>"
    if not marginals:
        fig = go.Figure(go.Heatmap(**data["heat"], colorscale="Viridis", hovertemplate=hover))
        axes = _plan_axes(n, m, rows, cols)
        fig.update_layout(title=title, height=420, xaxis=axes["xaxis3"], yaxis=axes["yaxis3"])
        return fig
    fig = make_subplots(rows=2, cols=2, column_widths=[0.82, 0.18], row_heights=[0.2, 0.8],
                        shared_xaxes="columns", shared_yaxes="rows",
                        horizontal_spacing=0.02, vertical_spacing=0.02)
    fig.add_trace(go.Heatmap(**data["heat"], colorscale="Viridis", showscale=False,
                             hovertemplate=hover), 2, 1)
    fig.add_trace(go.Bar(**data["cols"], name="column sums (T^T 1)", marker_color="#636efa",
                         hovertemplate="%{customdata}: %{y:.3g}<extra>column sum</extra>"), 1, 1)
    fig.add_trace(go.Bar(**data["rows"], orientation="h", name="row sums (T 1)",
                         marker_color="#ef553b",
                         hovertemplate="%{customdata}: %{x:.3g}<extra>row sum</extra>"), 2, 2)
    fig.update_layout(title=title, height=480, showlegend=False,
                      margin=dict(l=40, r=10, t=50, b=40), **_plan_axes(n, m, rows, cols))
    return fig


TAU_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)  # per decade: the explorer's tau choices, 1e-3 .. 1


def _choices(values, start: float, fmt: str) -> list[tuple[str, float]]:
    """Slider choices that hold ``start`` exactly (so the first plan is the one asked for)."""
    vals = sorted({round(float(v), 12) for v in values} | {float(start)})
    return [(format(v, fmt), v) for v in vals]


def _wrap_title(text: str, width: int = 60) -> str:
    import textwrap

    return "<br>".join(textwrap.wrap(text, width)) or " "


def plan_explorer(pairs: Mapping[str, tuple], tau: float = 0.05, mass: float = 0.5,
                  n_iter: int = 1000, tol: float = 1e-6):
    """An ipywidgets explorer of partial transport plans.

    Args:
        pairs: ``{name: (h_v [N_V, d], h_l [N_L, d], video_labels, word_labels)}`` — e.g. a
            query / video pair per entry; the cost is the cosine distance (the PVLA cost).
        tau, mass, n_iter: starting values of the controls (held exactly: the first plan is
            ``partial_sinkhorn(cost, mass, tau, n_iter, tol)`` of the first pair).
        tol: the solver's stopping tolerance (``partial_sinkhorn``'s default).

    Returns:
        ``(widget, update)``: a VBox with a pair dropdown, sliders for tau (1-1.5-2-3-5-7 per
        decade), mass and iterations, a live plotly ``FigureWidget`` heatmap of the plan with its
        row / column sums beside it, and a status line with the cost and the solver's report;
        ``update()`` redraws. The figure is built from the first pair's plan (never a
        placeholder), and after every redraw the widget's stored state is the figure shown, so
        a browser reload shows the current plan. ``widget.figure`` is the ``FigureWidget``;
        ``widget.snapshot()`` a static copy of it (for saved notebooks and reports).
    """
    import ipywidgets as widgets
    import plotly.graph_objects as go

    from readpvla.ot import cosine_cost, partial_sinkhorn

    if not pairs:
        raise ValueError("plan_explorer needs at least one (h_v, h_l, video_labels, word_labels) pair")
    names = list(pairs)
    pick = widgets.Dropdown(options=names, value=names[0], description="pair",
                            layout=widgets.Layout(width="28em"))
    taus = [s * 10.0**e for e in range(-3, 0) for s in TAU_STEPS] + [1.0]
    s_tau = widgets.SelectionSlider(options=_choices(taus, tau, "g"), value=float(tau),
                                    description="tau")
    s_mass = widgets.SelectionSlider(options=_choices([k / 20 for k in range(1, 21)], mass, ".3g"),
                                     value=float(mass), description="mass")
    s_iter = widgets.IntSlider(value=n_iter, min=1, max=max(2000, n_iter), step=1,
                               description="iterations")
    status = widgets.HTML()

    def solve():
        h_v, h_l, v_lab, l_lab = pairs[pick.value]
        cost = cosine_cost(torch.as_tensor(h_v).float(), torch.as_tensor(h_l).float()).double()
        plan, info = partial_sinkhorn(cost, mass=s_mass.value, tau=s_tau.value,
                                      max_iter=s_iter.value, tol=tol)
        return plan, cost, info, list(v_lab), list(l_lab)

    def show_status(plan, cost, info):
        status.value = (f"mass {s_mass.value:.3g} &nbsp; tau {s_tau.value:g} &nbsp; "
                        f"cost &lt;T, C&gt; = {(plan * cost).sum():.4f} &nbsp; "
                        f"iterations {info.n_iter} &nbsp; violation {float(info.violation):.1e} "
                        f"&nbsp; converged {bool(info.converged)}")

    # the title wraps (two lines at most for a long query) and sits in the top margin, below the
    # modebar's row (36 px) and above the plots (margin 90 px), so it is never cut or covered
    height = 500
    title_style = dict(x=0, xanchor="left", xref="paper", y=1 - 36 / height, yanchor="top",
                       yref="container", font=dict(size=14))
    plan, cost, info, v_lab, l_lab = solve()
    fig = go.FigureWidget(plan_heatmap(plan, v_lab, l_lab, title=_wrap_title(pick.value)))
    fig.update_layout(title=title_style, height=height, margin=dict(t=90))
    show_status(plan, cost, info)

    def update(*_):
        plan, cost, info, v_lab, l_lab = solve()
        t = plan.numpy()
        n, m = t.shape
        data = _plan_traces(t, v_lab, l_lab)
        with fig.batch_update():
            for trace, key in zip(fig.data, ("heat", "cols", "rows")):
                trace.update(data[key])
            fig.update_layout(title_text=_wrap_title(pick.value), **_plan_axes(n, m, v_lab, l_lab))
        _store_state(fig)
        show_status(plan, cost, info)

    for w in (pick, s_tau, s_mass, s_iter):
        w.observe(update, names="value")
    box = _explorer_box()([widgets.HBox([pick, s_tau]), widgets.HBox([s_mass, s_iter]), fig,
                           status])
    box.figure = fig
    return box, update


def _store_state(fig) -> None:
    """Make a ``FigureWidget``'s stored state the figure it shows.

    plotly sends a redraw to the open views as a one-off message and keeps only the figure the
    widget was created with as its state; a browser reload (or a second view) draws that state.
    Its frontend ignores a change of the stored state (no redraw), so refreshing it is safe.
    """
    from copy import deepcopy

    fig._widget_data = deepcopy(fig._data)
    fig._widget_layout = deepcopy(fig._layout_obj._props)


@functools.cache
def _explorer_box():
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        """A VBox whose plain-text form (what a saved notebook shows without a kernel) says what
        it is instead of listing its children."""

        def __repr__(self) -> str:  # ipywidgets cuts the plain text at 110 characters
            return "Plan explorer (interactive): run the notebook to use it."

        def snapshot(self):
            """A static copy of the figure shown now (plotly ``Figure``, not a widget)."""
            import plotly.graph_objects as go

            fig = go.Figure(self.figure)
            fig.update_layout(title_text=f"static snapshot: {fig.layout.title.text}")
            return fig

    return ExplorerBox


def small(x: float, floor: float = 1e-10) -> str:
    """Format an error that should be ~0: ``"< 1e-10"`` below ``floor`` (so saved notebook
    outputs do not depend on rounding noise), else ``"3.2e-04"``."""
    x = float(x)
    return f"< {floor:.0e}" if abs(x) < floor else f"{x:.1e}"
