# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Temporal language grounding: low-resource transfer
#
# The READ-PVLA paper's first task (Table 1): given a video and a natural-language query, find the
# moment the query describes (*moment retrieval*) and score how relevant every clip is (*highlight
# detection*). A backbone pretrained on plenty of data is frozen and adapted to a new domain from
# only **40 training queries** — the size of a YouTube Highlights domain.
#
# We load a pretrained backbone (trained here on the large synthetic source split by
# `readpvla pretrain-tlg`), evaluate it with the standard QVHighlights metrics, adapt it with
# READ-PVLA, compare every baseline in the shape of Table 1, and look at predicted windows and
# saliency against the ground truth.

# %% tags=["parameters"]
seed = 0  # random seed (each run: torch.manual_seed(seed) before the adapter is created)
device = "cpu"  # "cpu" or "cuda"
backbone = "crossmodal"  # "crossmodal" (paper Sec. 3.1, Eq. 1-4) or "momentdetr"
domain = "dog"  # target domain: dog, gym, parkour, skating, skiing, surfing
quick = True  # quick: 1 domain x 1 seed for the table; False: all 6 domains x 3 seeds
workers = 2  # processes for the table's runs (one torch thread each: same numbers for any value)

# %%
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

import readpvla as rp
from readpvla.backbones.checkpoint import load_backbone
from readpvla.data import DOMAINS, load_tlg
from readpvla.tasks import tlg
from readpvla.viz import check_choice, check_range, setup_notebook

check_choice("backbone", backbone, list(tlg.BACKBONES))
check_choice("domain", domain, list(DOMAINS))
check_range("workers", workers, 1, 64)
dev = setup_notebook(seed, device)
torch.set_num_threads(1)  # small models: one thread is as fast and immune to oversubscription
DATA = Path("../data_samples/tlg")
train, val, test = (load_tlg(DATA, f"{domain}_{part}") for part in ("train", "val", "test"))
print(f"domain {domain!r}: {len(train)} training, {len(val)} validation, {len(test)} test queries")

# %% [markdown]
# ## 4.1 The task and its metrics
# Each query comes with ground-truth windows (seconds) and, for the clips inside them, saliency
# scores from three annotators (0-4). The QVHighlights protocol scores a model's ranked windows by
# **MR mAP** (average precision at temporal IoU 0.5, 0.55, ..., 0.95) and **R1@0.5/0.7**, and its
# per-clip saliency by **HL mAP** and **Hit@1** at the Fair / Good / VeryGood levels
# (`rp.metrics.evaluate_tlg`, which gives exactly the standard evaluation's numbers). As in the
# paper's Table 1 we report MR mAP.

# %%
s = test[0]
print(f"query: {s.query!r}\nvideo {s.vid}: {s.duration:.0f} s = {len(s.video)} clips of 2 s; "
      f"ground truth {s.relevant_windows}")

# %% [markdown]
# ## 4.2 The pretrained backbone
# `crossmodal` is the transformer of the paper's Section 3.1: in every block the language queries
# attend to the video (Eq. 1: $X = \mathrm{softmax}(QK^\top/\sqrt d)V$ with $Q$ from $H_L$, $K, V$
# from $H_V$), then Add & Norm (Eq. 2), a feed-forward network (Eq. 3) and Add & Norm (Eq. 4); a
# video stream (self-attention, video-attends-language, FFN) lets it score clips. A saliency head
# and an anchor-free moment head (a foreground score and boundary offsets per clip) read the last
# block. `momentdetr` is a Moment-DETR-style joint encoder over [clips; words] with a decoder of
# moment queries trained by Hungarian matching. Both ship pretrained in `data_samples/tlg/checkpoints`.

# %%
base = load_backbone(tlg.default_checkpoint(backbone)).to(dev).eval()
print(f"{type(base).__name__}: {rp.peft.count_parameters(base).total:,d} parameters")
zero_shot = tlg.evaluate(base, test)
print("frozen backbone, no adaptation, on the target test split:")
for k in ("MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1"):
    print(f"  {k:22s} {zero_shot[k]:6.2f}")

# %% [markdown]
# ## 4.3 Adapting with READ-PVLA
# READ goes after every FFN (chapter 1); training minimises the task loss plus
# $\lambda\,\mathcal L_{\text{PVLA}}$, the partial OT distance between the video and language token
# states of every block (chapter 3), averaged over blocks. Only READ's parameters move; the trainer
# (`rp.train.fit`: AdamW, early stopping on the validation split's MR mAP) restores the best epoch.

# %% tags=["nbval-ignore-output"]
rec = tlg.run_one(base, "READ-PVLA", domain, seed, device=dev, return_model=True)
adapted = rec.pop("model")
print(f"READ-PVLA: #params {rec['params']}; best epoch {rec['best_epoch']} of {rec['epochs_run']}")
after = tlg.evaluate(adapted, test)
for k in ("MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1"):
    print(f"  {k:22s} {zero_shot[k]:6.2f} -> {after[k]:6.2f}")

# %% [markdown]
# **Your numbers, our numbers.** On one machine a run is bit-for-bit repeatable: same seed, same
# numbers. On another CPU the float kernels round the last digit differently; a hundred optimiser
# steps on 40 queries amplify that, and early stopping on 20 validation queries can then pick
# another epoch. Measured across three CPU kernel settings (`benchmarks/bench_portability.py`, 9
# methods x 2 domains x 2 seeds): 22 of 36 runs gave identical numbers, the others moved by up
# to 6.7 MR-full-mAP — about what another seed does. So the cell above shows this machine's
# numbers (nbval does not compare them), and the cell below checks what holds everywhere: the run
# agrees with the shipped run of the same method, domain and seed within `tlg.RERUN_TOLERANCE`.
# Read single runs with that in mind; the shipped tables average 18 runs per row.

# %%
print(tlg.compare_with_shipped([rec], backbone)["verdict"])

# %% [markdown]
# ## 4.4 Every method, in the shape of Table 1
# The same frozen backbone, the same 40 queries, the same budget (epochs, batch size, early
# stopping) for every method; only the learning rate is per method (chosen on validation splits,
# see `readpvla.tasks.tlg.HPARAMS`). `quick=True` runs one domain and one seed; the full table
# (`readpvla transfer-tlg`, all six domains, three seeds) is shipped in `data_samples/tlg/results/`.

# %%
domains = [domain] if quick else list(DOMAINS)
seeds = [seed] if quick else [0, 1, 2]
table = tlg.run_transfer(backbone, domains=domains, seeds=seeds, quick=True,
                         out_dir="runs/notebook04", device=dev, workers=workers, progress=False)
print(tlg.compare_with_shipped(table["runs"], backbone)["verdict"])

# %% tags=["report", "nbval-ignore-output"]
# this machine's numbers (another CPU gives others within tlg.RERUN_TOLERANCE per run); the wall
# time in the table's note varies run to run: left out here, it is in table1.json
live_md = re.sub(r" Wall time: [0-9.]+ s\.", "", (Path("runs/notebook04") / "table1.md").read_text())
display(Markdown(live_md.replace("### ", "### This run: ", 1)))

# %% tags=["report"]
# the full default table, run with `readpvla transfer-tlg --backbone {backbone} --workers 2`
shipped = DATA / "results" / f"table1_{backbone}.md"
display(Markdown(shipped.read_text().replace("### ", "### Shipped full run: ", 1)
                 if shipped.exists() else "(no shipped full table)"))

# %% [markdown]
# **Reading the full table.** For the cross-modal backbone (6 domains × 3 seeds, shipped above when
# `backbone="crossmodal"`), full fine-tuning leads by a wide margin (42.3 average), then LoRA
# (30.6) and the Houlsby adapter (27.1); READ (25.6) and READ-PVLA (25.5) sit with BitFit (25.3),
# and Prompt / Proj barely move the frozen backbone. The "Δ vs READ-PVLA" column gives each gap
# a 95% interval over test queries x seeds: Full +16.79 [+14.22, +19.53], LoRA +5.05 [+2.15,
# +8.22], but the adapter's +1.56 [-0.29, +3.37] is not resolved by 3 seeds (chapter 5 resolves
# it with 10 seeds and with equal tuning effort). The "Temporal" column is the same metric on
# the queries that need order ("after" / "before"). So on this benchmark the paper's ranking does
# **not** reproduce: with 40 queries and a 4-dimensional recurrence, READ trails adapters that
# spend a similar number of parameters, and PVLA's effect is smaller than the seed-to-seed
# standard deviations. A plausible reason: each synthetic domain differs from the source by new
# vocabulary and a fixed *rotation* of the clip features (`data_samples/tlg/RECIPE.md`), which a
# per-token projection (Adapter, LoRA) can undo more directly than a recurrence along time. With
# the Moment-DETR backbone (`backbone="momentdetr"`) the order is Full 33.2, Partial 31.3, LoRA
# 27.0, BitFit 26.4, Prompt 23.4, Adapter 23.4, READ 22.4, READ-PVLA 22.3 (the adapter +1.06
# [-0.70, +2.75] over READ-PVLA). Chapter 5 asks which of
# READ-PVLA's choices matter at all.

# %% [markdown]
# ## 4.5 Windows and saliency against the ground truth
# The adapted model's top windows (grey, darker = higher score) and per-clip saliency (line) for a
# few test queries, with the ground-truth windows (green) and mean annotator saliency (bars).

# %% tags=["report", "nbval-ignore-output"]
predictor = tlg.Predictor(adapted)
fig = make_subplots(rows=3, cols=1, shared_xaxes=False, vertical_spacing=0.12,
                    subplot_titles=[test[i].query[:90] for i in range(3)])
for r, i in enumerate(range(3), start=1):
    si = test[i]
    out = predictor.predict(si.video, si.text, duration=si.duration)
    t = np.arange(len(si.video)) * 2 + 1
    gt = np.zeros(len(si.video))
    for c, sc in zip(si.relevant_clip_ids, si.saliency_scores):
        gt[c] = np.mean(sc) / 4
    fig.add_trace(go.Bar(x=t, y=gt, marker_color="#9ecf9e", name="annotators", showlegend=r == 1), r, 1)
    fig.add_trace(go.Scatter(x=t, y=out["saliency"], mode="lines", line_color="#1f77b4",
                             name="predicted saliency", showlegend=r == 1), r, 1)
    for st, ed in si.relevant_windows:
        fig.add_vrect(x0=st, x1=ed, line_color="green", line_width=2, row=r, col=1)
    for st, ed, score in out["windows"][:3]:
        fig.add_vrect(x0=st, x1=ed, fillcolor="black", opacity=0.1 + 0.3 * score, line_width=0,
                      row=r, col=1)
fig.update_layout(height=720, title="READ-PVLA on held-out queries: top-3 windows and saliency")
fig.update_xaxes(title_text="seconds")
fig

# %% [markdown]
# ## Summary
# - Moment retrieval and highlight detection are scored with the standard QVHighlights metrics
#   (`rp.metrics.evaluate_tlg`, also `readpvla eval-tlg`).
# - A backbone pretrained on the source split is adapted from 40 queries; READ-PVLA trains
#   ~0.5% of the parameters.
# - `tlg.run_transfer` builds Table 1's shape (#params, mAP per domain, average, mean ± std over
#   seeds) for every method under one budget. Read the numbers as measured: on this synthetic
#   benchmark the ranking is not the paper's in every column.
#
# ## Exercises
# 1. Set `backbone="momentdetr"`. Which methods gain, which lose?
# 2. How does the table change with `quick=False`? How large are the standard deviations compared
#    with the gaps between methods?
# 3. Save the adapted model with `rp.peft.save_adapter` and reload it with
#    `tlg.Predictor.from_checkpoint(backbone, adapter=...)`. How many bytes did you store?
