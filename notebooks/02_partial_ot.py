# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. From optimal transport to partial optimal transport
#
# PVLA, the second half of READ-PVLA, aligns video clips with words by **partial optimal
# transport**: move only a fraction of the mass, between the pairs that match best, and leave the
# rest (the clips no word talks about) alone. Before we use it on features (chapter 3), we build
# it up on small point clouds we can see:
#
# 1. balanced entropic OT (Sinkhorn);
# 2. partial OT, exact (POT's linear program) and entropic (our batched Dykstra solver);
# 3. the effect of the temperature $\tau$ and the mass $m$;
# 4. the paper's Algorithm 1 as printed — and why it is balanced OT in disguise;
# 5. why "the minimum over $s$" of the paper is degenerate.

# %% tags=["parameters"]
seed = 0  # random seed for the point clouds
device = "cpu"  # "cpu" or "cuda"
tau = 0.05  # entropic temperature (paper: 0.05)
mass = 0.5  # transported fraction m in (0, 1]
n_iter = 1000  # Sinkhorn iterations (paper: N_iter of 1000)
quick = True  # quick run; False: finer sweeps

# %%
import numpy as np
import ot  # POT, the reference implementation
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

import readpvla as rp
from readpvla.viz import check_range, setup_notebook, small

check_range("tau", tau, 0, None, low_open=True)
check_range("mass", mass, 0, 1, low_open=True)
check_range("n_iter", n_iter, 1, 100_000)
dev = setup_notebook(seed, device)
torch.set_default_dtype(torch.float64)  # exact comparisons with POT below

# %% [markdown]
# ## 2.1 Two point clouds
# "Video": 7 points, of which 2 sit far away (clips about something else). "Language": 5 points,
# near 5 of the video points. Both carry uniform mass: $a_i = 1/N_V$, $b_j = 1/N_L$, as in the
# paper. The cost is the squared distance, scaled to $[0, 1]$.

# %%
rng = np.random.default_rng(seed)
core = rng.uniform(0, 1, size=(5, 2))
x_v = np.vstack([core + rng.normal(0, 0.04, core.shape), [[2.2, 2.0], [2.4, 1.8]]])  # 7 clips
x_l = core + rng.normal(0, 0.04, core.shape) + [0.25, 0.0]  # 5 words
C = torch.tensor(ot.dist(x_v, x_l))
C = C / C.max()
a = torch.full((7,), 1 / 7)
b = torch.full((5,), 1 / 5)
v_names = [f"v{i}" for i in range(7)]
l_names = [f"w{j}" for j in range(5)]


VIDEO_COLOUR, LANGUAGE_COLOUR = "#636efa", "#ef553b"


def scatter_plan(T, title):
    fig = go.Figure()
    t = T.numpy()
    for i in range(7):
        for j in range(5):
            if t[i, j] > 1e-3:
                fig.add_trace(go.Scatter(x=[x_v[i, 0], x_l[j, 0]], y=[x_v[i, 1], x_l[j, 1]],
                                         mode="lines", showlegend=False,
                                         line=dict(width=1 + 30 * t[i, j], color="gray")))
    # fixed colours: the default colour cycle counts the line traces too, so the video and
    # language points would change colour from one plan to the next
    fig.add_trace(go.Scatter(x=x_v[:, 0], y=x_v[:, 1], mode="markers+text", text=v_names,
                             textposition="top center", name="video",
                             marker=dict(size=10, color=VIDEO_COLOUR)))
    fig.add_trace(go.Scatter(x=x_l[:, 0], y=x_l[:, 1], mode="markers+text", text=l_names,
                             textposition="bottom center", name="language",
                             marker=dict(size=10, symbol="square", color=LANGUAGE_COLOUR)))
    fig.update_layout(title=title, height=380, margin=dict(l=30, r=10, t=50, b=30))
    return fig


# %% [markdown]
# ## 2.2 Balanced entropic OT
# Balanced OT moves *all* the mass: $\min_T \langle T, C\rangle + \tau\sum_{ij} T_{ij}(\log T_{ij}-1)$
# subject to $T\mathbf 1 = a$, $T^\top\mathbf 1 = b$. Sinkhorn alternately rescales rows and
# columns of $K = e^{-C/\tau}$. The two far points must send their mass somewhere, so they are
# matched to words they have nothing to do with:

# %%
T_bal, info_bal = rp.ot.sinkhorn(C, tau=tau, max_iter=n_iter)
T_pot = torch.tensor(ot.sinkhorn(a.numpy(), b.numpy(), C.numpy(), tau, numItermax=n_iter,
                                 stopThr=1e-12))
print(f"balanced: cost <T, C> = {(T_bal * C).sum():.4f},  iterations {info_bal.n_iter}")
print(f"max |ours - POT ot.sinkhorn| = {small((T_bal - T_pot).abs().max())}")
print("mass leaving the far points v5, v6:", np.round(T_bal.sum(1)[5:].numpy(), 4))

# %% tags=["report", "nbval-ignore-output"]
scatter_plan(T_bal, "balanced OT: the two far video points are forced onto words")

# %% [markdown]
# ## 2.3 Partial OT (Eq. 7-8)
# The paper's PVLA objective relaxes the marginals to caps and fixes the total mass:
#
# $$D_{\text{POT}}(\mu,\nu) = \min_{T\in\Pi(a,b)} \sum_{ij} T_{ij} C_{ij},\qquad
# \Pi(a,b) = \{T \ge 0:\ T\mathbf 1 \le a,\ T^\top \mathbf 1 \le b,\ \mathbf 1^\top T\mathbf 1 = m\}
# \tag{7-8}$$
#
# POT solves it exactly as a linear program (`ot.partial.partial_wasserstein`). With the entropic
# term, iterative Bregman projections with **Dykstra's corrections** solve it (Benamou et al. 2015);
# `rp.ot.partial_sinkhorn` runs those iterations batched, masked and in the log domain when $\tau$
# is small, and matches POT's `entropic_partial_wasserstein`:

# %%
T_part, info = rp.ot.partial_sinkhorn(C, mass=mass, tau=tau, max_iter=n_iter, tol=1e-12)
T_pot_ent = torch.tensor(ot.partial.entropic_partial_wasserstein(
    a.numpy(), b.numpy(), C.numpy(), reg=tau, m=mass, numItermax=n_iter, stopThr=1e-14))
T_exact = torch.tensor(ot.partial.partial_wasserstein(a.numpy(), b.numpy(), C.numpy(), m=mass))
print(f"total mass {T_part.sum():.6f} (asked {mass});  rows <= a: {bool((T_part.sum(1) <= a + 1e-12).all())};"
      f"  cols <= b: {bool((T_part.sum(0) <= b + 1e-12).all())}")
print(f"max |ours - POT entropic_partial_wasserstein| = {small((T_part - T_pot_ent).abs().max())}")
print(f"cost: entropic {(T_part * C).sum():.4f}  exact LP {(T_exact * C).sum():.4f}")
print("mass leaving the far points v5, v6:", np.round(T_part.sum(1)[5:].numpy(), 6))

# %% tags=["report", "nbval-ignore-output"]
scatter_plan(T_part, f"partial OT, m = {mass}: only the best-matching pairs carry mass")

# %% tags=["report", "nbval-ignore-output"]
fig = make_subplots(1, 2, subplot_titles=("exact partial OT (POT LP)", f"entropic, tau = {tau}"))
fig.add_trace(go.Heatmap(z=T_exact.numpy(), x=l_names, y=v_names, coloraxis="coloraxis"), 1, 1)
fig.add_trace(go.Heatmap(z=T_part.numpy(), x=l_names, y=v_names, coloraxis="coloraxis"), 1, 2)
fig.update_yaxes(autorange="reversed")
fig.update_layout(height=330, coloraxis=dict(colorscale="Viridis"))
fig

# %% [markdown]
# As $\tau \to 0$ the entropic plan tends to the exact one; large $\tau$ blurs it toward the
# independent coupling. The log-domain iterations keep tiny temperatures finite:

# %%
taus = [1.0, 0.1, 0.05, 0.01, 3e-3, 1e-3, 3e-4, 1e-4] if quick else list(np.geomspace(1, 1e-4, 17))
gaps = []
for t_ in taus:
    T_t, inf_t = rp.ot.partial_sinkhorn(C, mass=mass, tau=t_, max_iter=50_000, tol=1e-12)
    gaps.append((T_t - T_exact).abs().sum().item())
    print(f"tau={t_:<7.3g} domain={inf_t.domain:3s} iterations={inf_t.n_iter:<6d} "
          f"sum |T_tau - T_exact| = {small(gaps[-1], 1e-9)}")

# %% tags=["report", "nbval-ignore-output"]
fig = go.Figure(go.Scatter(x=taus, y=gaps, mode="lines+markers"))
fig.update_layout(title="entropic partial plan -> exact partial plan as tau -> 0",
                  xaxis_title="tau", yaxis_title="L1 distance to the LP plan", height=320)
fig.update_xaxes(type="log", exponentformat="power")  # 10^-4, not the SI "100μ"
fig.update_yaxes(type="log", exponentformat="power")
fig

# %% [markdown]
# ## 2.4 The mass $m$
# The mass decides how much is aligned. With $m = 5/7$ of the video mass — exactly the 5 video
# points that have a partner — the far points stay unmatched; push $m$ to 1 and they must move.

# %%
masses = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] if quick else list(np.linspace(0.05, 1, 20))
rows = []
for m_ in masses:
    T_m, _ = rp.ot.partial_sinkhorn(C, mass=m_, tau=0.01, max_iter=5000, tol=1e-10)
    rows.append(((T_m * C).sum().item(), T_m.sum(1)[5:].sum().item()))
    print(f"m={m_:.2f}  cost={rows[-1][0]:.4f}  cost/m={rows[-1][0] / m_:.4f}  "
          f"mass on far points={rows[-1][1]:.4f}")

# %% [markdown]
# ## 2.5 Algorithm 1 as printed is balanced OT
# The paper's Algorithm 1 loops over $s = 1..\min(N_V, N_L)$, but the loop body never uses $s$:
# each pass starts from $e^{-C/\tau}$ normalised to mass 1 and alternates "cap the rows at $a$", "cap
# the columns at $b$", "renormalise to total mass 1". Since $\sum a = \sum b = 1$, a plan of mass 1
# whose rows are $\le a$ has rows *equal* to $a$ — and the same for columns. So every pass returns
# the balanced Sinkhorn plan:

# %%
cost_alg1, T_alg1 = rp.ot.paper_algorithm1(C, tau=tau, n_iter=n_iter)
print(f"max |Algorithm 1 - POT ot.sinkhorn| = {small((T_alg1 - T_pot).abs().max())}")
print(f"Algorithm 1 loss {float(cost_alg1):.4f} = balanced cost {(T_pot * C).sum():.4f}")

# %% [markdown]
# Renormalising to $m < 1$ instead does make it partial — but *plain* alternating projections stop
# at a feasible plan that is not the optimum once both the row and the column caps bind. Dykstra's
# correction terms fix that (DESIGN.md fact 2). Compare the entropic objectives:

# %%
def entropic_objective(T, C_, tau_):
    T = T.clamp_min(1e-300)
    return float((T * C_).sum() + tau_ * (T * (T.log() - 1)).sum())


# a 10 x 10 random cost at mass 0.8: here both the row and the column caps bind
C_rand = torch.rand(10, 10, generator=torch.Generator().manual_seed(seed))
T_dyk, _ = rp.ot.partial_sinkhorn(C_rand, mass=0.8, tau=tau, max_iter=20_000, tol=1e-13)
T_alt, _ = rp.ot.partial_sinkhorn(C_rand, mass=0.8, tau=tau, max_iter=20_000, method="alternating")
T_ref = torch.tensor(ot.partial.entropic_partial_wasserstein(
    np.full(10, 0.1), np.full(10, 0.1), C_rand.numpy(), reg=tau, m=0.8, numItermax=20_000,
    stopThr=1e-15))
print(f"objective: Dykstra {entropic_objective(T_dyk, C_rand, tau):.6f}   "
      f"plain alternating {entropic_objective(T_alt, C_rand, tau):.6f} (higher = worse)")
print(f"max |alternating - Dykstra| = {small((T_alt - T_dyk).abs().max())};  "
      f"max |Dykstra - POT| = {small((T_dyk - T_ref).abs().max())}")

# %% [markdown]
# ## 2.6 "min over s" is degenerate
# Algorithm 1 keeps the smallest loss over $s$. But partial OT cost grows with the mass — and so
# does the cost *per unit of mass*, because the cheapest pairs are used first. "Min over $s$"
# therefore always picks the smallest $s$: it would align a single pair. The mass is a
# hyperparameter (chapter 5 sweeps it), not something to minimise over.

# %% tags=["report", "nbval-ignore-output"]
fig = make_subplots(1, 2, subplot_titles=("partial OT cost vs mass", "cost per unit mass"))
fig.add_trace(go.Scatter(x=masses, y=[r[0] for r in rows], mode="lines+markers", name="cost"), 1, 1)
fig.add_trace(go.Scatter(x=masses, y=[r[0] / m_ for r, m_ in zip(rows, masses)],
                         mode="lines+markers", name="cost / m"), 1, 2)
fig.update_xaxes(title_text="mass m")
fig.update_layout(height=320, showlegend=False)
fig

# %% [markdown]
# ## 2.7 Full mass, batches, padding
# POT refuses $m = 1$ with uniform weights: in floating point $\sum_i 1/7$ is a hair under 1, so
# "$m \le \min(\sum a, \sum b)$" fails (DESIGN.md fact 4). Ours accepts it (it is balanced OT):

# %%
try:
    ot.partial.entropic_partial_wasserstein(a.numpy(), b.numpy(), C.numpy(), reg=tau, m=1.0)
    print("POT accepted m = 1")
except ValueError as e:
    print("POT:", e)
T_full, _ = rp.ot.partial_sinkhorn(C, mass=1.0, tau=tau, max_iter=n_iter, tol=1e-12)
print(f"ours, m = 1: max |T - balanced Sinkhorn| = {small((T_full - T_pot).abs().max())}")

# %% [markdown]
# In training, a batch holds videos and queries of different lengths. `partial_sinkhorn` takes a
# padded `[B, N, M]` cost and boolean masks; padded rows and columns get exactly zero mass and
# each item uses uniform weights over its own real tokens — the same plans as one call per item:

# %%
g = torch.Generator().manual_seed(seed)
lens = [(7, 5), (4, 3), (6, 2)]
Cb = torch.rand(3, 7, 5, generator=g)
mask_a = torch.tensor([[i < n for i in range(7)] for n, _ in lens])
mask_b = torch.tensor([[j < m_ for j in range(5)] for _, m_ in lens])
Tb, info_b = rp.ot.partial_sinkhorn(Cb, mass=mass, tau=tau, mask_a=mask_a, mask_b=mask_b, tol=1e-12)
worst = max((Tb[k, :n, :m_] - rp.ot.partial_sinkhorn(Cb[k, :n, :m_], mass=mass, tau=tau,
                                                      tol=1e-12)[0]).abs().max().item()
            for k, (n, m_) in enumerate(lens))
print(f"batched masked vs per-item: max |dT| = {small(worst)}; mass on padding = "
      f"{small((Tb * ~(mask_a[:, :, None] & mask_b[:, None, :])).sum())}")
torch.set_default_dtype(torch.float32)

# %% [markdown]
# ## Summary
# - Balanced OT must move all mass, so unrelated points get matched; partial OT (Eq. 7-8) moves a
#   fraction $m$ along the cheapest pairs and leaves outliers alone.
# - The entropic version is solved by Bregman projections **with Dykstra's corrections**;
#   `rp.ot.partial_sinkhorn` matches POT's plans, batched and masked, and stays finite for tiny $\tau$.
# - Algorithm 1 as printed computes balanced OT; plain alternating projections to mass $m$ stop at a
#   worse plan; a minimum over $s$ always picks the smallest $s$.
#
# ## Exercises
# 1. Set `mass` to $5/7$. Which points are left out, and why is that the "right" answer here?
# 2. Make the costs bigger (multiply `C` by 50) and lower $\tau$. Which domain does the solver use?
# 3. Derive why the cost per unit mass of exact partial OT is non-decreasing in $m$.
