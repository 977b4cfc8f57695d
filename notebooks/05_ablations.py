# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Ablations: what matters in READ-PVLA?
#
# The paper ablates three choices (Section 4.3): the alignment objective (Table 6: none, full VLA,
# partial PVLA), the recurrent cell (Table 8: RNN, GRU, LSTM) and the distance between the two
# modalities (Table 9: pooled cosine / L2 vs partial OT). We run the same tables in shape on the
# synthetic TLG benchmark, then two sweeps the paper leaves open: the transported **mass** (the
# paper's $s$, which chapter 2 showed cannot be chosen by minimisation) and the **bottleneck** $k$,
# with error bars over seeds.

# %% tags=["parameters"]
seed = 0  # first seed; sweeps use seeds seed, seed + 1, ...
device = "cpu"  # "cpu" or "cuda"
backbone = "crossmodal"  # "crossmodal" or "momentdetr"
domain = "dog"  # target domain for the quick run
n_seeds = 2  # seeds per point in the sweeps (error bars)
quick = True  # quick: one domain; False: all six domains, 3 seeds
workers = 2  # processes for the tables' runs (one torch thread each: same numbers for any value)

# %%
import dataclasses
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from readpvla.backbones.checkpoint import load_backbone
from readpvla.data import DOMAINS
from readpvla.tasks import tlg
from readpvla.viz import check_choice, check_range, setup_notebook

check_choice("backbone", backbone, list(tlg.BACKBONES))
check_choice("domain", domain, list(DOMAINS))
check_range("n_seeds", n_seeds, 1, 10)
check_range("workers", workers, 1, 64)
dev = setup_notebook(seed, device)
torch.set_num_threads(1)
domains = [domain] if quick else list(DOMAINS)
seeds = list(range(seed, seed + (1 if quick else 3)))
print(f"backbone {backbone}, domains {domains}, seeds {seeds}")

# %% [markdown]
# ## 5.1 Tables 6, 8 and 9
# Every row trains READ ($k = 4$) on the frozen backbone with the same budget as chapter 4; only
# the alignment term or the cell changes:
#
# $$\mathcal L = \mathcal L_{\text{task}} + \lambda\,\frac{1}{M}\sum_{m=1}^{M} D\big(H_V^{(m)}, H_L^{(m)}\big)$$
#
# with $D$ = 0 (no alignment), balanced OT (VLA, mass 1), partial OT (PVLA, mass 0.5), or the
# cosine / L2 distance between avg- or max-pooled token states (Table 9).

# %%
out_dir = Path("runs/notebook05")
tables = tlg.run_ablations(backbone, tables=(6, 8, 9), domains=domains, seeds=seeds, quick=True,
                           out_dir=out_dir, device=dev, workers=workers, progress=False)
runs_here = {(r["row"], r["split"], r["seed"]): r for t in tables.values() for r in t["runs"]}
# the three tables below are this machine's numbers; what holds on every machine is that each run
# agrees with the shipped run of the same row, domain and seed within tlg.RERUN_TOLERANCE
print(tlg.compare_with_shipped(list(runs_here.values()), backbone)["verdict"])


def shown(t: int) -> str:
    # the wall time in a table's note varies run to run: it stays in the JSON
    md = re.sub(r" Wall time: [0-9.]+ s\.", "", (out_dir / f"table{t}.md").read_text())
    return md.replace("### ", "### This run: ", 1)


# %% tags=["report", "nbval-ignore-output"]
display(Markdown(shown(6)))

# %% tags=["report", "nbval-ignore-output"]
display(Markdown(shown(8)))

# %% tags=["report", "nbval-ignore-output"]
display(Markdown(shown(9)))

# %% [markdown]
# The same three tables at full size (6 domains × 3 seeds, `readpvla transfer-tlg --ablations
# --workers 2`), shipped in `data_samples/tlg/results/`:

# %% tags=["report"]
results = Path(tlg.default_data_dir()) / "results"
for t in (6, 8, 9):
    path = results / f"table{t}_{backbone}.md"
    display(Markdown(path.read_text().replace("### ", "### Shipped full run: ", 1)
                     if path.exists() else f"(no shipped Table {t} for {backbone})"))

# %% [markdown]
# For the cross-modal backbone every ablation row averages between 23.8 and 25.8 MR-full-mAP with
# standard deviations of 0.6-1.7 over seeds: no alignment (25.8), full VLA (24.7) and partial OT
# (25.2) are within noise of each other, as are RNN / GRU / LSTM and the pooled distances. The
# paper reports PVLA > VLA > none and partial OT above every pooled distance; on this benchmark we
# cannot separate them.

# %% [markdown]
# ## 5.2 Sweeping the mass
# Partial OT transports a fraction $m$ of the mass (the paper's $s = m \min(N_V, N_L)$). $m = 1$ is
# full VLA; small $m$ aligns only the best-matching clip-word pairs. Chapter 2 showed that the
# minimum over $s$ always picks the smallest $s$, so $m$ is a hyperparameter: here is what it does
# to the downstream mAP.

# %%
base = load_backbone(tlg.default_checkpoint(backbone)).to(dev).eval()
sweep_seeds = list(range(seed, seed + n_seeds))


def runs(variant, settings=tlg.QUICK) -> list[float]:
    return [tlg.run_one(base, variant, domain, s, settings=settings, device=dev)["test"][tlg.TABLE_METRIC]
            for s in sweep_seeds]


masses = [0.2, 0.5, 0.8, 1.0] if quick else [0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0]
mass_map = {m: runs("READ-PVLA", dataclasses.replace(tlg.QUICK, mass=m)) for m in masses}
print(f"{len(masses)} masses x {len(sweep_seeds)} seeds = {len(masses) * len(sweep_seeds)} runs")

# %% tags=["nbval-ignore-output"]
# this machine's numbers: each point moves by up to tlg.RERUN_TOLERANCE on another CPU
for m, v in mass_map.items():
    print(f"mass {m:.2f}: MR-full-mAP {np.mean(v):6.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:5.2f}")

# %% [markdown]
# ## 5.3 Sweeping the bottleneck $k$
# READ's recurrence lives in $k$ dimensions. The paper uses very small $k$; the parameter count grows
# as $O(dk + k^2)$ per block.

# %%
ks = [2, 4, 8, 16] if quick else [1, 2, 4, 8, 16, 32]
k_map = {}
for k in ks:
    variant = tlg.Variant(f"READ-PVLA k={k}", "read", (("bottleneck", k),), align="pvla")
    k_map[k] = runs(variant)
print(f"{len(ks)} bottlenecks x {len(sweep_seeds)} seeds = {len(ks) * len(sweep_seeds)} runs")

# %% tags=["nbval-ignore-output"]
# this machine's numbers (see above)
for k in ks:
    print(f"k = {k:2d}: MR-full-mAP {np.mean(k_map[k]):6.2f} ± "
          f"{np.std(k_map[k], ddof=1) if len(k_map[k]) > 1 else 0:5.2f}")

# %% tags=["report", "nbval-ignore-output"]
fig = make_subplots(1, 2, subplot_titles=("transported mass m", "bottleneck k"))
for col, (xs, data) in enumerate(((masses, mass_map), (ks, k_map)), start=1):
    ys = [np.mean(data[x]) for x in xs]
    err = [np.std(data[x], ddof=1) if len(data[x]) > 1 else 0 for x in xs]
    fig.add_trace(go.Scatter(x=xs, y=ys, error_y=dict(type="data", array=err), mode="lines+markers",
                             showlegend=False), 1, col)
fig.update_yaxes(title_text="MR-full-mAP (test)", col=1)
fig.update_xaxes(type="log", col=2)
fig.update_layout(height=360, title=f"READ-PVLA on {domain}: mean ± std over {n_seeds} seeds")
fig

# %% [markdown]
# ## Summary
# - Tables 6, 8 and 9 rerun in shape: alignment objective, recurrent cell, distance. Read them with
#   their standard deviations: on 40 training queries many gaps are within seed noise.
# - The mass $m$ is a genuine hyperparameter (no "min over $s$"); the sweep shows its effect.
# - The bottleneck trades parameters for capacity at $O(dk + k^2)$ per block.
#
# ## Exercises
# 1. Run with `quick=False` (all six domains, three seeds). Which conclusions of the quick run
#    survive?
# 2. Add a sweep over $\lambda$ (`dataclasses.replace(tlg.QUICK, lam=...)`). Where does the alignment
#    term start to hurt the task loss?
# 3. Table 9's pooled distances ignore token order and which tokens match. Construct a batch where
#    max-pooled cosine is small but the PVLA distance is large.
