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
import inspect
import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from readpvla import experiment as ex
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
# Each shipped table now carries the Temporal column (the queries that need order) and each row's
# difference to the READ-PVLA row (PVLA / RNN / Partial OT) with a 95% paired bootstrap interval
# over test queries x seeds. **Every one of those 18 intervals (9 rows x 2 backbones) contains
# 0.** Cross-modal backbone: no alignment +0.09 [-1.19, +1.33], full VLA -0.39 [-1.82, +0.98]
# against PVLA (25.54); GRU -1.30 [-3.38, +0.88], LSTM -0.82 [-2.95, +1.23] against the RNN cell;
# the pooled distances from -1.72 [-3.64, +0.05] (AvgPool-L2) to +1.01 [-0.42, +2.43]
# (AvgPool-Cosine) against partial OT. Moment-DETR-style backbone: all within +0.14 to +1.73 of
# PVLA's 22.29, PVLA the lowest row of each table, again every interval across 0. On temporal
# queries the rows differ by at most 2.8 points (cross-modal) and 2.2 (Moment-DETR-style), within
# their seed spreads. The paper reports PVLA > VLA > none, the RNN cell best and partial OT above
# every pooled distance; on this benchmark none of these differences is there to measure.

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
# ## 5.4 When does recurrence help? Noise you can see
# READ's recurrent cell runs along the clips, so it could carry the order that "after" / "before"
# queries need (a third of the synthetic queries; `readpvla eval-tlg --group-by kind` slices any
# prediction file). The shipped 10-seed run (`readpvla transfer-tlg --methods Adapter READ
# READ-PVLA LoRA --seeds 0 1 2 3 4 5 6 7 8 9 --workers 1`, cross-modal backbone) gives each
# difference a 95% paired bootstrap interval over the test queries x seeds, on all queries and
# on the temporal ones only (the "Temporal" column), and shows how many seeds an interval needs:
# its half-width with k of the 10 seeds, and the projection $z\sqrt{v_{items} + v_{seed}/k}$.

# %% tags=["report"]
seeds10 = results / "seeds10_table1_crossmodal.json"
if seeds10.exists():
    payload10 = json.loads(seeds10.read_text())
    display(Markdown(seeds10.with_suffix(".md").read_text()))
    runs10, doms10, seeds_10 = payload10["runs"], payload10["splits"], payload10["seeds"]
    for row, ref, metric in (("READ", "Adapter", tlg.TABLE_METRIC),
                             ("READ", "Adapter", tlg.TEMPORAL_METRIC),
                             ("READ-PVLA", "READ", tlg.TABLE_METRIC),
                             ("READ-PVLA", "READ", tlg.TEMPORAL_METRIC)):
        iv = ex.compare_rows(runs10, row, ref, metric, doms10, seeds_10)
        print(f"{row} - {ref}, {metric}: {iv}")
else:
    print("no shipped 10-seed table")

# %% tags=["report"]
if seeds10.exists():
    fig = go.Figure()
    for row, ref in (("READ", "Adapter"), ("READ-PVLA", "READ")):
        curve = ex.interval_vs_seeds(runs10, row, ref, tlg.TABLE_METRIC, doms10, seeds_10,
                                     file=None)
        ks_ = [r["n_seeds"] for r in curve.rows]
        fig.add_trace(go.Scatter(x=ks_, y=[r["half_width"] for r in curve.rows],
                                 mode="lines+markers", name=f"{row} - {ref}: measured"))
        fig.add_trace(go.Scatter(x=ks_, y=[curve.projected(k) for k in ks_], mode="lines",
                                 line=dict(dash="dot"), name=f"{row} - {ref}: projected"))
        print(f"{row} - {ref}: seeds for a half-width <= 2 / 1 points: "
              f"{curve.seeds_for(2.0)} / {curve.seeds_for(1.0)}")
    fig.update_xaxes(title_text="seeds")
    fig.update_yaxes(title_text="95% interval half-width (MR-full-mAP points)")
    fig.update_layout(height=360, title="How many seeds does a difference need?")
    display(fig)

# %% [markdown]
# Measured: READ is **below** the Houlsby adapter on all queries (-2.78 [-4.29, -1.31]) and not
# above it on the temporal ones (-2.28 [-5.28, +0.54]), so on this benchmark the recurrence gives
# no visible advantage where order matters; PVLA does not move READ (-0.18 [-1.03, +0.71]). Three
# seeds resolve a 2-point difference (the paper's READ-PVLA vs adapter gaps are 3-9 points); a
# 1-point one needs about 77, because the seed-to-seed variance dominates.
#
# **The control.** The shipped backbone adds sine positions to the clips, so every method can
# use order through the backbone. An **order-blind** backbone, the same architecture pretrained
# without clip positions (`readpvla pretrain-tlg --no-video-positions`), cannot: every layer
# acts per token or by attention, so permuting the clips permutes its outputs. READ's recurrence
# still sees order. If the recurrence injects order, READ's advantage over the per-token
# adapter on temporal queries grows on the blind backbone:
# $\Delta\Delta = (\text{READ} - \text{Adapter})_{\text{blind}} -
# (\text{READ} - \text{Adapter})_{\text{aware}} > 0$, while the same contrast on plain
# queries stays near 0.

# %%
blind_dir = Path(tlg.default_data_dir()) / "checkpoints" / "crossmodal-orderblind"
rng_ = torch.Generator().manual_seed(seed)
v_, t_ = torch.randn(1, 12, 128, generator=rng_), torch.randn(1, 6, 384, generator=rng_)
perm_ = torch.randperm(12, generator=rng_)
for name_, path_ in (("order-aware (shipped)", tlg.default_checkpoint("crossmodal")),
                     ("order-blind", blind_dir)):
    if not Path(path_).exists():
        print(f"{name_}: not shipped")
        continue
    m_ = load_backbone(path_).eval()
    with torch.no_grad():
        a_, b_ = m_(v_, None, t_, None), m_(v_[:, perm_], None, t_, None)
    moved = float((a_.saliency[:, perm_] - b_.saliency).abs().max())
    print(f"{name_}: permuting the clips permutes the saliency exactly: {moved < 1e-4}")

# %% tags=["report"]
order_file = results / "probe_order.md"
display(Markdown(order_file.read_text().replace("### ", "### Shipped full run: ", 1)
                 if order_file.exists() else "(the order probe is not shipped yet: "
                 "tlg.probe_order)"))

# %% [markdown]
# Measured (6 domains x 10 seeds per backbone, 360 runs): the control does what it should:
# without clip positions the adapter loses 8.6 points on temporal queries (25.77 -> 17.20) and
# 2.0 on plain ones. But READ does not win the order back: READ - Adapter on temporal queries is
# -2.28 [-5.28, +0.54] with order and -1.49 [-3.95, +0.94] without it, and the difference in
# differences is +0.79 [-3.24, +5.05] (plain queries -0.19 [-2.60, +2.14]; LoRA - Adapter +0.67
# [-3.93, +5.36]). No evidence that the recurrence injects order here. With 3 seeds the interval
# was -1.15 [-8.21, +6.14]; 10 seeds narrow it to about ±4 points, so a gain above 5 points is
# ruled out, a smaller one is not.

# %% [markdown]
# ## 5.5 Does PVLA align? Inside the trained model
# Chapter 3 measured on raw features how much of the PVLA plan lands on the ground-truth clips.
# Inside a trained model the question is whether training **with** PVLA moves the plans of its
# blocks towards those clips: per block $m$ and query, the share
# $\sum_{i \in \mathcal G}\sum_j T^{(m)}_{ij} / \sum_{ij} T^{(m)}_{ij}$ against the chance share
# $|\mathcal G| / N_V$ (a plan that ignores the query), for READ, READ-PVLA and the frozen
# backbone (the control).

# %%
src = inspect.getsource(tlg.plan_mass_on_gt).split('"""')
print(src[0] + "...docstring...\n" + src[2])  # the code without its docstring
probe_here = tlg.probe_alignment(backbone, ("READ", "READ-PVLA"), [domain], [seed])

# %% tags=["nbval-ignore-output"]
display(Markdown(re.sub(r" Wall time: [0-9.]+ s\.", "", probe_here["markdown"])))

# %% tags=["report"]
probe_file = results / f"probe_alignment_{backbone}.md"
display(Markdown(probe_file.read_text().replace("### ", "### Shipped full run: ", 1)
                 if probe_file.exists() else f"(no shipped probe for {backbone})"))

# %% [markdown]
# Measured on all six domains x 3 seeds: the frozen backbone's block 0 already puts a little
# more than chance on the right clips (15.6% vs 13.1%), block 1 less (10.4%). Training with PVLA
# does not raise either: block 0 READ-PVLA - READ is -0.32 [-0.69, +0.04], and in block 1 both
# trained models fall further below chance (READ-PVLA -2.32 [-3.36, -1.36] vs the frozen
# backbone). The term lowers the transport cost without aligning words with the clips the query
# is about, which is why Tables 6 and 9 cannot tell it from no alignment.

# %% [markdown]
# ## 5.6 Sensitivity: does any setting put READ-PVLA ahead of the adapter?
# One knob at a time moves from Table 1's READ-PVLA ($\lambda = 0.1$, mass 0.5, $k = 4$, RNN
# cell, its learning rate), every setting trained on all six domains with three seeds beside the
# adapter (`readpvla transfer-tlg --sensitivity`, `tlg.run_sensitivity`). A setting puts it
# ahead only where its interval against the adapter lies above 0.

# %% tags=["report"]
sens_file = results / f"sensitivity_{backbone}.json"
if sens_file.exists():
    sens = json.loads(sens_file.read_text())
    display(Markdown(sens_file.with_suffix(".md").read_text()))
    fig = go.Figure()
    labels_, ds_, los_, his_ = [], [], [], []
    for shown_, entry in sens["rows"].items():
        if entry.get("delta"):
            labels_.append(shown_)
            ds_.append(entry["delta"]["diff"])
            los_.append(entry["delta"]["diff"] - entry["delta"]["lo"])
            his_.append(entry["delta"]["hi"] - entry["delta"]["diff"])
    fig.add_trace(go.Scatter(x=ds_, y=labels_, mode="markers", error_x=dict(
        type="data", symmetric=False, array=his_, arrayminus=los_), showlegend=False))
    fig.add_vline(x=0, line_dash="dot")
    fig.update_xaxes(title_text="MR-full-mAP minus the adapter's (95% paired bootstrap)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=120 + 26 * len(labels_), width=760,
                      title=f"READ-PVLA settings vs the adapter ({backbone})",
                      margin=dict(l=220, r=20, t=50, b=50))
    display(fig)
else:
    print(f"not shipped yet for {backbone}: readpvla transfer-tlg --backbone {backbone} "
          "--sensitivity")

# %% [markdown]
# Measured (cross-modal backbone, 6 domains x 3 seeds): **no setting puts READ-PVLA ahead of
# the adapter.** The best of the 16, mass 0.35, is -0.82 [-2.91, +1.29]; Table 1's setting
# -1.56 [-3.37, +0.29]; most others are below with intervals that exclude 0 (k = 16 -5.02,
# the rate x 3 -6.31). The deficit is not an artefact of one badly chosen knob.

# %% [markdown]
# ## 5.7 Equal effort: every row tuned the same way, and the Pareto frontier
# A table compares methods fairly only if each got the same chance to be good. The protocol
# (`readpvla.experiment.tuning`, `readpvla tune-tlg`): each row with a size knob (READ's and the
# adapter's bottleneck, LoRA's rank, the prompt's length) tries every size at every
# learning-rate factor; a row without one (Full, Partial, Bias, Proj) spends the **same number
# of runs** on a finer rate grid over the same range. Every candidate trains with seed 0 and is
# scored on the **validation** split; the best wins (ties: fewer parameters). Then every size is
# trained at its best rate with every seed and scored on the test split: accuracy against
# trainable parameters, and the frontier no other point beats with as few parameters.

# %%
from readpvla.experiment import tuning  # noqa: E402
from readpvla.viz import pareto_figure  # noqa: E402

cands = tuning.candidates({r: tlg.ROWS[r].method for r in tlg.TABLE1_ROWS})
for r in tlg.TABLE1_ROWS:
    mine = [c for c in cands if c.row == r]
    sizes_ = sorted({c.size for c in mine if c.size is not None})
    print(f"{r:10s} {len(mine):3d} runs per domain: sizes {sizes_ or '-'}, "
          f"lr factors {sorted({round(c.factor, 2) for c in mine})}")

# %% [markdown]
# A small live run of the protocol: READ and the adapter at two sizes and two rates on the
# quick domain (8 tuning runs on validation, then 4 test runs). One domain and one seed: it shows
# the mechanics, not a result.

# %%
tune_dir = out_dir / "tuning"
demo_sizes = {"read": (2, 8), "adapter": (2, 8)}
sel_here = tlg.tune(backbone, ["Adapter", "READ"], [domain], tune_dir, factors=(1.0, 3.0),
                    sizes=demo_sizes, device=dev, workers=workers, progress=False)
pareto_here = tlg.pareto(backbone, sel_here, seeds=[seed], out_dir=tune_dir, device=dev,
                         workers=workers, progress=False)
print("tuning runs per row:", sel_here["budget"])

# %% tags=["nbval-ignore-output"]
# this machine's numbers (which candidate wins can change with the last digits of another CPU)
for c in sel_here["candidates"]:
    print(f"{c['row']:8s} size {c['size']:2d}  lr {c['lr']:.3g}  validation {c['val']:6.2f}")
print("chosen:", {r: (c["size"], round(c["lr"], 4)) for r, c in sel_here["chosen"].items()})
pareto_figure(pareto_here["points"], title=f"This run: {domain}, seed {seed}",
              yaxis="MR-full-mAP (test)")

# %% [markdown]
# The full protocol on all six domains (`readpvla tune-tlg --backbone crossmodal --workers 2`:
# 9 rows x 12 candidates x 6 domains on validation, then every size x 3 seeds on test) ships
# as `pareto_tlg_<backbone>.json` and `table1_tuned_<backbone>.md` for both backbones, this
# notebook's first:

# %% tags=["report"]
for bb in [backbone] + [b for b in tlg.BACKBONES if b != backbone]:
    pareto_file = results / f"pareto_tlg_{bb}.json"
    if pareto_file.exists():
        shipped_pareto = json.loads(pareto_file.read_text())
        display(pareto_figure(shipped_pareto["points"], yaxis="MR-full-mAP (test)",
                              title=f"Shipped: {bb}, 6 domains x "
                                    f"{len(shipped_pareto['seeds'])} seeds"))
        display(Markdown((results / f"table1_tuned_{bb}.md").read_text()))
    else:
        print(f"not shipped for {bb}: readpvla tune-tlg --backbone {bb} "
              "--out runs/tlg_tuning --workers 2")

# %% [markdown]
# Measured (cross-modal backbone, 6 domains x 3 seeds): **equal effort does not change the
# ranking.** The protocol kept READ-PVLA's Table 1 setting (k = 4, the same rate) and gave READ,
# the adapter and LoRA larger sizes or other rates: on test Full 41.77, LoRA (r = 2) 33.72,
# Adapter (k = 16) 29.60, READ (k = 16) 28.42, READ-PVLA 25.54, each of the first four above
# READ-PVLA with an interval that excludes 0 (Adapter +4.05 [+1.58, +6.61], READ +2.88 [+0.19,
# +5.57]). On the figure READ-PVLA's points sit within about a point of READ's at every k and
# below the adapter's of the same k: on this benchmark the PVLA term buys nothing per parameter.
#
# On the Moment-DETR-style backbone the same holds: tuned, the adapter (k = 16) is +3.59 [+1.22,
# +5.79] above READ-PVLA, and READ and READ-PVLA (both k = 2 on validation) are level (-0.06
# [-1.23, +1.10]); Full 32.26, Partial 30.01, LoRA 29.88, Adapter 25.98, Bias 25.89, READ-PVLA
# 22.39, READ 22.33. Here Bias, with 6,404 parameters, is on the frontier above every adapter,
# and on the temporal queries READ's rows (26.5-26.8) are level with the adapter (25.8), not ahead.

# %% [markdown]
# ## Summary
# - Tables 6, 8 and 9 rerun in shape: alignment objective, recurrent cell, distance. Read them with
#   their standard deviations: on 40 training queries many gaps are within seed noise.
# - The mass $m$ is a genuine hyperparameter (no "min over $s$"); the sweep shows its effect.
# - The bottleneck trades parameters for capacity at $O(dk + k^2)$ per block.
# - With 10 seeds and intervals: READ trails the adapter, also on the queries that need order,
#   and PVLA changes neither the score nor (5.5) where the plans put their mass.
# - A fair table gives every row the same tuning budget on validation (5.7); the Pareto
#   figure shows what each method buys per trainable parameter. Tuned that way, the ranking
#   holds on both backbones: Full, LoRA and the adapter above READ-PVLA, intervals excluding 0.
#
# ## Exercises
# 1. Run with `quick=False` (all six domains, three seeds). Which conclusions of the quick run
#    survive?
# 2. Add a sweep over $\lambda$ (`dataclasses.replace(tlg.QUICK, lam=...)`). Where does the alignment
#    term start to hurt the task loss?
# 3. Table 9's pooled distances ignore token order and which tokens match. Construct a batch where
#    max-pooled cosine is small but the PVLA distance is large.
# 4. Run 5.6's protocol with LoRA and Full added (`tlg.tune(backbone, ["Full", "LoRA", "Adapter",
#    "READ"], ...)`): how many runs does Full get, and at which rates? Is Full on the frontier?
