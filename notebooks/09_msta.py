# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. MSTA: a multimodal spatiotemporal adapter, and action recognition
#
# Chen et al., *Efficient Transfer Learning for Video-language Foundation Models* (ETL4Video,
# CVPR 2025) put one adapter beside the top blocks of **both** towers of a video-text model, tie
# the two towers together through a **shared** bottleneck projection, give the video side a
# **temporal** convolution, and keep the text side close to what the pretrained model says about
# each class with a **consistency constraint** $\mathcal L_{CC}$ on LLM-written descriptions.
#
# No code was released (the repository holds a README, training logs and the description
# files), so `rp.peft.MSTAConfig` is built from the paper's equations and its logs; every choice
# the paper leaves open is marked in the docstrings (`readpvla/peft/msta/layer.py`,
# `readpvla/tasks/recognition/loss.py`). This chapter puts each equation beside its code, checks
# the mechanisms (the shared layer's gradient, the convolution's frame order, $\mathcal L_{CC}$
# on description text), trains MSTA on a base-to-novel split, and reads the shipped recognition
# tables, including where MSTA does not win.

# %% tags=["parameters"]
seed = 0  # random seed
device = "cpu"  # "cpu" or "cuda"
domain = "flat"  # target domain of the demo: flat, noisy or dark
temporal = "frames"  # backbone: "frames" (a bag of frames) or "spatiotemporal"
epochs = 6  # fine-tuning epochs of the demo (the tables use 6)
quick = True  # quick: MSTA + L_CC only; False: also MSTA alone and LoRA under the same budget
class_split = 0  # base-to-novel class split of the demo (0, 1, 2)

# %%
import copy
import inspect

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

import readpvla as rp
from readpvla import experiment as ex
from readpvla.peft.msta import MSTAModule
from readpvla.tasks import recognition as rec
from readpvla.tasks.recognition.loss import consistency_loss, consistency_targets
from readpvla.viz import check_choice, check_range, setup_notebook

check_choice("domain", domain, list(rec.DOMAINS))
check_choice("temporal", temporal, list(rec.TEMPORAL))
check_range("epochs", epochs, 1, 50)
check_range("class_split", class_split, 0, 2)
dev = setup_notebook(seed, device)
torch.set_num_threads(1)  # small models: one thread is as fast and immune to oversubscription
backbone = rec.load(temporal)
test = rec.dataset(f"{domain}_test")
slots = backbone.readpvla_msta_slots()
text_layers = len(backbone.get_submodule(slots["text_blocks"]))
print(f"{temporal} video CLIP: {slots['vision_layers']} video blocks of width "
      f"{slots['vision_width']}, {text_layers} text blocks of width {slots['text_width']}; "
      f"{domain}_test: {len(test)} "
      f"videos of {len(test.classes)} classes")

# %% [markdown]
# ## 9.1 The adapter (Sec. 3.2)
# Beside block $j \ge k$ of each tower, on the block's input, scaled by $\lambda$:
#
# $$x_j = E_j(x_{j-1}) + \lambda\, A_j(x_{j-1})$$
# $$z_v = \sigma\big(W^{ks}\, \sigma(W_v^{kd}\, \mathrm{LN}(x))\big),\qquad
#   z_t = \sigma\big(W^{ks}\, \sigma(W_t^{kd}\, \mathrm{LN}(x))\big)$$
# $$A_t = W_t^{ku} z_t,\qquad A_v = u + W_v^{ku\text{-}t} \ast u,\quad u = W_v^{ku\text{-}s} z_v$$
#
# $W^{kd}$ (modality-specific) project down to width $k$, $W^{ks}$ is **one** projection used by
# both towers, $W^{ku}$ project up; on the video side a temporal 3-D convolution over the
# $[T, H', W']$ patch grid is added to the spatial up-projection. The logs give ViCLIP-B's
# values: $k = 128$ at width 768 (we keep the ratio: $k = 21$ at width 128), $\lambda = 0.005$,
# Kaiming initialisation, and a parameter count (1.744 M for blocks 8-12) that only a
# depthwise $3 \times 1 \times 1$ convolution reproduces.

# %%
print(inspect.getsource(MSTAModule._bottleneck))
print(inspect.getsource(MSTAModule.video_adapter))

# %%
config = rp.peft.MSTAConfig()  # every block (the base-to-novel setting), k scaled, lambda 0.005
msta = rp.peft.apply(copy.deepcopy(backbone), config)
parts = {"W_v^kd (video down)": "video_down", "W_t^kd (text down)": "text_down",
         "W^ks (shared)": "shared", "W_v^ku-s (video up)": "video_up",
         "W_v^ku-t (temporal conv)": "video_temporal", "W_t^ku (text up)": "text_up"}
counts = {label: sum(p.numel() for n, p in msta.readpvla_msta.named_parameters()
                     if n.startswith(key + ".")) for label, key in parts.items()}
for label, n in counts.items():
    print(f"{label:>26s}: {n:7d} parameters")
print(f"MSTA trains {rp.peft.count_parameters(msta)} M parameters, width k = "
      f"{msta.readpvla_msta.width}, blocks {list(msta.readpvla_msta.blocks)}")

# %% [markdown]
# Where each projection sits: per injected block, the two towers' own down- and up-projections,
# one shared $W^{ks}$ between them, and the convolution along time on the video side.

# %% tags=["report"]
L = slots["vision_layers"]
fig = go.Figure()


def box(x, y, w, h, text, color):
    fig.add_shape(type="rect", x0=x, x1=x + w, y0=y, y1=y + h, fillcolor=color, opacity=0.85,
                  line=dict(color="black", width=1))
    fig.add_annotation(x=x + w / 2, y=y + h / 2, text=text, showarrow=False, font=dict(size=11))


for j in range(L):
    y = j * 1.3
    box(0, y, 2.2, 1, f"video block {j}<br>E_j (frozen)", "#d9d9d9")
    box(7.8, y, 2.2, 1, f"text block {j + text_layers - L}<br>E_j (frozen)", "#d9d9d9")
    if j in msta.readpvla_msta.blocks:
        box(2.5, y, 1.5, 1, "W_v^kd → k", "#9ecae1")
        box(4.2, y, 1.6, 1, "W^ks<br>(shared)", "#fdae6b")
        box(6.0, y, 1.5, 1, "k ← W_t^kd", "#a1d99b")
        fig.add_annotation(x=3.25, y=y + 1.12, text="W_v^ku-s + conv_t(3×1×1) → ×λ",
                           showarrow=False, font=dict(size=9))
        fig.add_annotation(x=6.75, y=y + 1.12, text="W_t^ku → ×λ", showarrow=False,
                           font=dict(size=9))
fig.update_xaxes(visible=False, range=[-0.2, 10.2])
fig.update_yaxes(visible=False, range=[-0.3, L * 1.3 + 0.3])
fig.update_layout(height=120 + 95 * L, width=760, margin=dict(t=40, b=10, l=10, r=10),
                  title="MSTA beside every block: video tower (left), text tower (right)")
fig

# %% [markdown]
# ## 9.2 The shared layer learns from both towers
# $W^{ks}$ is one parameter: a loss that reaches only the video embedding sends it gradient
# through the video side, a loss on the text embedding through the text side, and the
# classification loss through both. With `branches="vision"` (the paper's vision-only ablation)
# only the video side is left.

# %%
frames = rec.TrainBatches(test, 4, seed).__iter__().__next__()["frames"]
tok = backbone.tokenize(rec.prompts(test.classes[:4]))
block = str(msta.readpvla_msta.blocks[-1])


def shared_grad(model, which):
    model.zero_grad()
    v = model.encode_video(frames) if which in ("video", "both") else None
    t = model.encode_text(tok["input_ids"], tok["attention_mask"]) if which != "video" else None
    loss = (v.sum() if v is not None else 0) + (t.sum() if t is not None else 0)
    if not loss.requires_grad:  # no adapter on this side: nothing trainable is reached
        return 0.0
    loss.backward()
    grad = model.readpvla_msta.shared[block].weight.grad
    return 0.0 if grad is None else float(grad.norm())


vision_only = rp.peft.apply(copy.deepcopy(backbone), rp.peft.MSTAConfig(branches="vision"))
grads = {which: shared_grad(msta, which) for which in ("video", "text", "both")}
grads["vision only, text"] = shared_grad(vision_only, "text")

# %% tags=["nbval-ignore-output"]
# the norms' last digits depend on the CPU's float kernels (DESIGN.md fact 7)
for which, g in grads.items():
    print(f"|grad W^ks| of block {block}, loss on the {which} side: {g:.3e}")

# %%
print("W^ks gets gradient from the video side:", grads["video"] > 0, "| from the text side:",
      grads["text"] > 0, "| with branches='vision', from the text side:",
      grads["vision only, text"] > 0)

# %% [markdown]
# ## 9.3 The temporal convolution sees frame order
# The `frames` backbone is a bag of frames: its video embedding is the same for a video and its
# reversal. MSTA's convolution mixes each frame with its neighbours, so with `temporal=True` the
# order matters; `temporal=False` (the ablation) keeps the bag.

# %%
rev = frames.flip(1)
diffs = {}
for label, cfg in (("temporal=True", rp.peft.MSTAConfig()),
                   ("temporal=False", rp.peft.MSTAConfig(temporal=False))):
    m = rp.peft.apply(copy.deepcopy(backbone), cfg).eval()
    with torch.no_grad():
        diffs[label] = (m.encode_video(frames) - m.encode_video(rev)).abs().max().item()
print("frame order changes the video embedding:",
      {label: d > 1e-5 for label, d in diffs.items()})

# %% tags=["nbval-ignore-output"]
for label, d in diffs.items():
    print(f"MSTA {label:>14s}: max |v(video) - v(reversed)| = {d:.2e}")

# %% [markdown]
# ## 9.4 The consistency constraint on description text (Sec. 3.3)
# A frozen copy of the pretrained text branch encodes $N$ spatial ("A video about ...") and $N$
# temporal ("... involves the following step: ...") descriptions per class; their means are
# $D_s^c$, $D_t^c$. The trainable branch encodes the prompt "a video of $c$" $\to w^c$, and
#
# $$\mathcal L_{CC} = 2 - \cos(w^c, D_s^c) - \cos(w^c, D_t^c), \qquad
#   \mathcal L = \mathcal L_{CE} + \alpha\,\mathcal L_{CC},\ \alpha = 1.$$
#
# The paper's descriptions come from an LLM (ETL4Video's files, read by
# `rec.load_etl4video`). For the rendered benchmark a seeded generator plays the LLM, writing
# from each class's hidden script; with `hallucination` > 0 a description after the first two is,
# by chance, about the wrong object or the steps in the wrong order. The text tower is
# all-MiniLM-L6-v2, trained further with the video tower in chapter 7.

# %%
print(inspect.getsource(consistency_loss))
classes = list(test.classes)
clean = rec.generate(classes, n=8, hallucination=0.0, seed=seed)
noisy = rec.generate(classes, n=8, hallucination=0.5, seed=seed)
c0 = classes[0]
for kind in ("spatial", "temporal"):
    print(f"{kind} descriptions of '{c0}' (N = 8; * = hallucinated at h = 0.5):")
    for text, wrong in zip(noisy.of(c0)[kind], noisy.hallucinated[kind][0]):
        print(("  * " if wrong else "    ") + text)

# %% [markdown]
# At the start of training (the pretrained prompts), how close is each prompt to its own
# class's description means and to the other classes'? A good target is closest for its own
# class; the L_CC of each description set is the starting value of the loss.

# %% tags=["report", "nbval-ignore-output"]
with torch.no_grad():
    w = backbone.encode_text(**{k: v for k, v in backbone.tokenize(rec.prompts(classes)).items()
                                if k in ("input_ids", "attention_mask")})
fig = make_subplots(rows=1, cols=2, subplot_titles=("cos(w^c, D_s^c'), N = 2",
                                                    "cos(w^c, D_t^c'), N = 2"))
tg = consistency_targets(backbone, rec.generate(classes, n=2, seed=seed), classes)
for col, d in ((1, tg.d_s), (2, tg.d_t)):
    cos = torch.nn.functional.normalize(w, dim=-1) @ torch.nn.functional.normalize(d, dim=-1).T
    fig.add_trace(go.Heatmap(z=cos.numpy(), coloraxis="coloraxis"), 1, col)
fig.update_xaxes(title_text="description class c'")
fig.update_yaxes(title_text="prompt class c", autorange="reversed")
fig.update_layout(height=380, coloraxis=dict(colorscale="Viridis"), margin=dict(t=50))
fig

# %%
rows = []
for n in (1, 2, 4, 8):
    for h in (0.0, 0.5):
        t = consistency_targets(backbone, rec.generate(classes, n=n, hallucination=h, seed=seed),
                                classes)
        own_s = torch.nn.functional.cosine_similarity(w, t.d_s).mean().item()
        own_t = torch.nn.functional.cosine_similarity(w, t.d_t).mean().item()
        rows.append((n, h, consistency_loss(w, t.d_s, t.d_t).item(), own_s, own_t))
same = all(abs(a[2] - b[2]) < 1e-6 for a, b in zip(rows[0:4:2], rows[1:4:2]))
print("N <= 2: the hallucinated lists equal the clean ones (the first two are always right):",
      same)

# %% tags=["nbval-ignore-output"]
print(f"{'N':>2s} {'h':>4s} {'L_CC at start':>14s} {'cos spatial':>12s} {'cos temporal':>13s}")
for n, h, lcc, s_, t_ in rows:
    print(f"{n:2d} {h:4.1f} {lcc:14.3f} {s_:12.3f} {t_:13.3f}")

# %% [markdown]
# ## 9.5 Train MSTA + L_CC from base classes, test on novel ones
# The base-to-novel protocol: train on the 16-shot set's videos of 12 **base** classes, then
# classify the test videos of the base classes among the base classes and those of the 12
# **novel** classes (never trained on) among the novel classes; HM = 2BN/(B+N). Every row
# trains at the learning rate the validation protocol chose (`rec.select_lr`: base rate x
# {1/3, 1, 3, 10} on the 16-shot set of `flat`, scored on the training videos outside it).

# %%
lrs = rec.shipped_lrs()
settings = rec.TransferSettings(protocol="base2novel", epochs=epochs, lrs=tuple(lrs.items()))
run_rows = ["MSTA + L_CC"] if quick else ["MSTA + L_CC", "MSTA", "LoRA"]
split = rec.base_novel(class_split)
zero = rec.run_one(backbone, "Zero-shot", domain, class_split, settings)
runs = {r: rec.run_one(backbone, r, domain, class_split, settings, return_model=True)
        for r in run_rows}

# %% tags=["nbval-ignore-output"]
for r, out in {"Zero-shot": zero, **runs}.items():
    m = out["test"]
    print(f"{r:>12s}: base {m['base']:5.1f}  novel {m['novel']:5.1f}  HM {m['HM']:5.1f}  "
          f"order pairs {m['order_pairs']:5.1f}  lr {out['lr'] or 0:.2g}  {out['loss'] or ''}")

# %% [markdown]
# The text side moved towards the description means (L_CC fell) while the cross-entropy fell;
# the adapter's output stayed small beside the block's ($\lambda = 0.005$).

# %% tags=["nbval-ignore-output"]
trained = runs["MSTA + L_CC"]["model"]
print("last epoch's loss terms:", runs["MSTA + L_CC"]["train_log"])
with torch.no_grad():
    ids = {k: v for k, v in trained.tokenize(rec.prompts(split["base"])).items()
           if k in ("input_ids", "attention_mask")}
    tb = consistency_targets(backbone, rec.generate(split["base"], n=2, seed=0), split["base"])
    before = consistency_loss(backbone.encode_text(**ids), tb.d_s, tb.d_t).item()
    after = consistency_loss(trained.encode_text(**ids), tb.d_s, tb.d_t).item()
print(f"L_CC of the base classes' prompts: pretrained {before:.3f} -> trained {after:.3f}")

# %% [markdown]
# ## 9.6 The shipped tables
# `readpvla transfer-recognition --protocol P --lrs lr_selection_recognition_frames.json` on the
# 3 target domains with 3 seeds (for base-to-novel the seeds are the 3 class splits), each row at
# its chosen learning rate; every cell follows from the runs stored beside the table (a test
# checks it, and the cell below does again).

# %% tags=["report"]
tables = rec.shipped_tables()
for stem, payload in tables.items():
    again = ex.summarize(payload["runs"], ex.spec_of(payload), payload["seeds"])
    print(f"{stem}: follows from its {len(payload['runs'])} stored runs:",
          again == payload["rows"])
MAIN = [f"recognition_{kind.format(t=t)}" for kind in ("base2novel_{t}_K16", "{t}_shots", "zeroshot_{t}_K16",
                                           "supervised_{t}") for t in rec.TEMPORAL]
for stem in MAIN:
    if stem in tables:
        display(Markdown((rec.results_dir() / f"{stem}.md").read_text()))
    else:
        print(f"{stem}: not shipped")

# %% [markdown]
# **The base-to-novel trade-off.** Each method's base and novel accuracy (averaged over domains
# and splits), on each backbone; the dotted curves are equal HM. Up is better on classes never
# trained on, right is better on the trained ones.

# %% tags=["report"]
def cell(payload, row, col):
    return payload["rows"][row]["cells"][col]["mean"]


b2n = {t: tables[f"recognition_base2novel_{t}_K16"] for t in rec.TEMPORAL
       if f"recognition_base2novel_{t}_K16" in tables}
if b2n:
    fig = make_subplots(rows=1, cols=len(b2n), subplot_titles=[f"{t} backbone" for t in b2n],
                        shared_yaxes=True, horizontal_spacing=0.06)
    grid = np.linspace(10, 40, 200)
    for col, payload in enumerate(b2n.values(), start=1):
        for hm in (16, 18, 20, 22, 24, 26):
            denom = 2 * grid - hm  # HM = 2BN / (B + N)  ->  N = HM B / (2B - HM), for 2B > HM
            novel = np.where(denom > 0, hm * grid / np.where(denom > 0, denom, 1.0), np.nan)
            ok = (novel > 0) & (novel < 40)
            fig.add_trace(go.Scatter(x=grid[ok], y=novel[ok], mode="lines", showlegend=False,
                                     line=dict(dash="dot", color="lightgray"), hoverinfo="skip"),
                          row=1, col=col)
            fig.add_annotation(x=39, y=hm * 39 / (78 - hm), text=f"HM {hm}", showarrow=False,
                               font=dict(size=9, color="gray"), row=1, col=col)
        for row in payload["rows"]:
            color = "crimson" if row.startswith("MSTA") else "black" if row == "Zero-shot" \
                else "steelblue"
            fig.add_trace(go.Scatter(x=[cell(payload, row, "Base")], y=[cell(payload, row, "Novel")],
                                     mode="markers+text", text=[row], textposition="top center",
                                     marker=dict(size=9, color=color), name=row,
                                     showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="base accuracy (%)", range=[14, 40], row=1, col=col)
    fig.update_yaxes(title_text="novel accuracy (%)", range=[12, 30], row=1, col=1)
    fig.update_layout(height=480, width=440 * len(b2n) + 60,
                      title="Base-to-novel recognition (16-shot base classes)")
    display(fig)

# %% [markdown]
# **Few-shot curves.** Top-1 over the 24 classes for K = 2, 4, 8, 16 training videos per class,
# on each backbone.

# %% tags=["report"]
shots = {t: tables[f"recognition_{t}_shots"] for t in rec.TEMPORAL
         if f"recognition_{t}_shots" in tables}
if shots:
    fig = make_subplots(rows=1, cols=len(shots), shared_yaxes=True,
                        subplot_titles=[f"{t} backbone" for t in shots])
    palette = {}
    for col, payload in enumerate(shots.values(), start=1):
        ks = [int(s[1:]) for s in payload["splits"]]
        for row, v in payload["rows"].items():
            color = palette.setdefault(row, f"hsl({len(palette) * 33 % 360}, 65%, 45%)")
            fig.add_trace(go.Scatter(
                x=ks, y=[v["cells"][f"K = {k}"]["mean"] for k in ks], name=row,
                legendgroup=row, showlegend=col == 1, line=dict(
                    color=color, width=3 if row.startswith("MSTA") else 1.5),
                error_y=dict(type="data", array=[v["cells"][f"K = {k}"]["std"] or 0 for k in ks]),
                mode="lines+markers"), row=1, col=col)
        fig.update_xaxes(title_text="K (training videos per class)", type="log", tickvals=ks,
                         row=1, col=col)
    fig.update_yaxes(title_text="top-1 (%), mean ± std over seeds", row=1, col=1)
    fig.update_layout(height=440, width=340 * len(shots) + 240, title="Few-shot recognition")
    display(fig)

# %% [markdown]
# **Descriptions: N and hallucination.** MSTA + L_CC with N = 1, 2, 4, 8 descriptions per type,
# clean and with half of the descriptions after the first two hallucinated (the paper: N = 2 is
# best, more descriptions add hallucinated noise), at the logs' $\lambda = 0.005$ and again at
# $\lambda = 0.05$, where the adapter moves further from the backbone. And the adapter's
# ablations: one tower only, no shared layer, no temporal convolution, the output scale
# $\lambda$ (the logs' 0.005, x 10, x 100) and the first injected block; all but the N sweep at
# $\lambda = 0.05$ again on the `spatiotemporal` backbone.

# %% tags=["report"]
SWEEPS = {"msta-descriptions": ("λ = 0.005", ""),
          "msta-descriptions-scaled": ("λ = 0.05", f" scale={rec.rows.SWEEP_SCALE:g}")}
for stem in (*(f"recognition_{a}_base2novel_frames_K16" for a in SWEEPS),
             "recognition_msta-branches_base2novel_frames_K16",
             "recognition_msta-temporal_base2novel_frames_K16",
             "recognition_msta-scale_base2novel_frames_K16",
             "recognition_msta-start_base2novel_frames_K16",
             *(f"recognition_msta-{a}_base2novel_spatiotemporal_K16"
               for a in ("branches", "temporal", "scale", "start", "descriptions"))):
    if stem in tables:
        display(Markdown((rec.results_dir() / f"{stem}.md").read_text()))
    else:
        print(f"{stem}: not shipped")
fig = go.Figure()
for temporal, (ablation, (scale, tail)) in [("frames", a) for a in SWEEPS.items()] + [
        ("spatiotemporal", ("msta-descriptions", SWEEPS["msta-descriptions"]))]:
    desc = tables.get(f"recognition_{ablation}_base2novel_{temporal}_K16")
    if desc is None:
        continue
    for h, label, dash in ((None, "clean", "solid"), ("h=0.5", "hallucination 0.5", "dash")):
        xs, ys, es = [], [], []
        for n in (1, 2, 4, 8):
            row = f"MSTA + L_CC N={n}" + (f" {h}" if h and n > 2 else "") + tail
            if row in desc["rows"]:
                xs.append(n)
                ys.append(cell(desc, row, "HM"))
                es.append(desc["rows"][row]["cells"]["HM"]["std"] or 0)
        fig.add_trace(go.Scatter(x=xs, y=ys, error_y=dict(type="data", array=es),
                                 line=dict(dash=dash), mode="lines+markers",
                                 name=f"{temporal}, {scale}, {label}"))
if fig.data:
    fig.update_xaxes(title_text="N descriptions per type", type="log", tickvals=[1, 2, 4, 8])
    fig.update_yaxes(title_text="HM (%), mean ± std over splits")
    fig.update_layout(height=400, width=760, title="MSTA + L_CC over N (base-to-novel)")
    display(fig)

# %% [markdown]
# ## Summary
# - MSTA's adapter runs beside each block of both towers; its bottleneck projection $W^{ks}$ is
#   one parameter that learns from the video and the text side (9.2), and its temporal
#   convolution makes even a bag-of-frames backbone see frame order (9.3).
# - $\mathcal L_{CC}$ keeps the trained class prompts close to description means from the frozen
#   pretrained text branch; on the rendered benchmark a seeded generator writes the descriptions,
#   so hallucination is a parameter, not an accident (9.4).
# - Measured on the rendered benchmark (3 domains x 3 seeds, every row at the rate the
#   validation protocol chose): **MSTA's claimed ranking does not reproduce.** Base-to-novel HM
#   on `frames`: MSTA 19.02 and MSTA + L_CC 18.89 against zero-shot 18.57, while Full (24.10),
#   READ-PVLA (22.96), LoRA and the adapters (21.4-22.1) are above MSTA + L_CC with intervals
#   that exclude 0; on `spatiotemporal` the same (MSTA + L_CC 19.75, zero-shot 19.47, LoRA
#   25.44, Full 25.26, READ 24.67). Few-shot K = 16 top-1 (`frames`): MSTA 13.19 against
#   zero-shot 11.28 and Full 18.29 (`spatiotemporal`: MSTA 12.44, zero-shot 12.33, Full 20.14,
#   LoRA 17.65); fully supervised the same ranking (`frames`: Full 17.48, LoRA 16.44,
#   READ 16.38, MSTA + L_CC 12.67; `spatiotemporal`: LoRA 20.08, Full 18.52, Adapter 17.42,
#   MSTA + L_CC 13.02 against zero-shot 12.33). Zero-shot to 4 unseen classes: intervals of
#   about +-10 points on 32 videos per domain cannot rank the rows (`spatiotemporal`: every
#   trained row 46.5-54.2 against the untrained backbone's 43.75).
#   At the logged $\lambda = 0.005$ the adapter hardly moves in
#   the tables' 36-72 steps; $\lambda = 0.05$ lifts MSTA + L_CC's HM to 20.40 (+1.51 [-0.53,
#   +3.53]), $\lambda = 0.5$ does not (18.92).
# - L_CC changes nothing measurable here (MSTA - MSTA + L_CC on HM: +0.12 [-0.34, +0.54]).
#   The N sweep is flat at both scales: at $\lambda = 0.005$ every N gives the same predictions,
#   at $\lambda = 0.05$ N = 1, 2, 4, 8 give HM 20.40-20.57 and hallucinated descriptions 20.57 /
#   20.75, every interval vs N = 1 holding 0: neither "N = 2 is best" nor "hallucinations hurt"
#   reproduces. One tower, no shared layer, no convolution, a later first block: all within
#   noise of the full adapter, on both backbones (on `spatiotemporal` the N sweep is again flat
#   to the last digit, and $\lambda = 0.05$ gives +1.26 [-0.87, +3.31] HM).
# - No row tells an order-only class from its reverse (44.7-59%, chance 50), although the convolution
#   makes the frame-bag backbone order-aware (9.3): the training does not ask for it.
#
# ## Exercises
# 1. Set `quick = False`: under the same budget and learning-rate protocol, where do MSTA and
#    LoRA land on base and on novel classes?
# 2. Train `rec.Row("x", "msta", (("init", "zero"),))` with `rec.run_one`: does starting at
#    exactly the backbone (zero up-projections) change the base-to-novel result?
# 3. Write the rendered classes' descriptions to disk in ETL4Video's format
#    (`rec.write_etl4video(folder, "rendered", clean)`) and read them back with
#    `rec.load_etl4video`; edit one file so a key is out of range and read the error.
# 4. Raise `lambda` (`rp.peft.MSTAConfig(scale=...)`): how far does the adapter's output then
#    move the video embedding at initialisation?
