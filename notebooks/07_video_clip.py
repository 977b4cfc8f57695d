# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. A video CLIP from frames
#
# The two other seed systems of this workbench, RAP (text-video retrieval) and MSTA (action
# recognition), adapt a CLIP-style dual encoder whose video side sees **frames as patch tokens**.
# This chapter builds that backbone and the data it is tested on:
#
# 1. a rendered video benchmark: short videos of shapes doing actions, in real formats (MSR-VTT-style
#    JSON, class lists, frames as `uint8 [T, H, W, 3]`, mp4 files through PyAV), with a style shift
#    between the source split and three target domains;
# 2. the video CLIP: every frame through an image tower (frames -> patches -> tokens), the frame
#    embeddings pooled over time (CLIP4Clip's "meanP"), or all frames' patches attending to each
#    other with a temporal position embedding (ViCLIP-style "spatiotemporal");
# 3. zero-shot retrieval and recognition, scored as the field scores them, and the one thing a bag
#    of frames cannot see: **the order of the frames**.

# %% tags=["parameters"]
seed = 0  # random seed
device = "cpu"  # "cpu" or "cuda"
domain = "flat"  # target domain: flat (pastel), noisy (camera noise), dark (low contrast)
temporal = "frames"  # the backbone the fine-tuning demo adapts: "frames" or "spatiotemporal"
epochs = 5  # fine-tuning epochs of the demo in 7.5
quick = True  # quick: the LoRA demo on the `temporal` backbone; False: on both backbones

# %%
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

import readpvla as rp
from readpvla.data import rendered
from readpvla.tasks import recognition, retrieval
from readpvla.viz import check_choice, check_range, setup_notebook

check_choice("domain", domain, list(retrieval.DOMAINS))
check_choice("temporal", temporal, list(retrieval.TEMPORAL))
check_range("epochs", epochs, 1, 50)
dev = setup_notebook(seed, device)
torch.set_num_threads(1)  # small models: one thread is as fast and immune to oversubscription
test = retrieval.dataset(f"{domain}_test")  # shipped with the repository
classes = recognition.dataset(f"{domain}_test")
print(f"{domain}_test: {len(test)} videos, {test.n_captions} captions, "
      f"{len(classes.classes)} classes; a video is {test.frames(0).shape} uint8")

# %% [markdown]
# ## 7.1 The rendered benchmark
# Each video is 8 frames of 32 x 32 px: one or two shapes (colour, size, texture) doing one of
# 24 actions over clutter and a slowly moving background. 18 of the actions come in
# **order-only pairs**: the second of a pair is the first *played backwards* (left to right /
# right to left, growing / shrinking, appearing / disappearing, ...), so the two classes have
# exactly the same frames, in opposite orders. The source split (pretraining) is vividly coloured;
# the target domains shift the style: `flat` pastel, `noisy` camera noise and jitter, `dark` low
# contrast and a blue tint.

# %% tags=["report", "nbval-ignore-output"]
lr = rendered.sample_script(np.random.default_rng(seed), "moving something from left to right",
                            domain=domain)
clip = rendered.render(lr)                                    # uint8 [T, H, W, 3]
backwards = rendered.render(rendered.reverse_script(lr))      # the partner class
assert np.array_equal(backwards, clip[::-1])
fig = make_subplots(rows=2, cols=8, horizontal_spacing=0.01, vertical_spacing=0.08,
                    subplot_titles=[f"t={t}" for t in range(8)])
for r, video in enumerate((clip, backwards), start=1):
    for t in range(8):
        fig.add_trace(go.Image(z=video[t]), r, t + 1)
fig.update_xaxes(visible=False)
fig.update_yaxes(visible=False)
fig.update_layout(height=320, margin=dict(t=60, b=10),
                  title="left to right (top) and its reversal, right to left (bottom): same frames")
fig

# %% [markdown]
# ## 7.2 Frames -> patches -> tokens -> a video embedding
# The image tower is CLIP's vision transformer (`transformers.CLIPVisionModel`'s layers). Frame
# $x_t$ is cut into $N = (32/8)^2 = 16$ patches of $8 \times 8$ px, each linearly embedded, a
# learned [CLS] token is put in front and position embeddings are added:
#
# $$z_t^{(0)} = [\,x_\text{cls};\ x_t^1 E;\ \dots;\ x_t^N E\,] + E_\text{pos}, \qquad
#   z_t^{(\ell)} = \text{Block}_\ell(z_t^{(\ell-1)}).$$
#
# **frames** (CLIP4Clip meanP) runs every frame on its own and averages the projected [CLS] states:
# $v = \mathrm{norm}\big(\tfrac1T \sum_t \mathrm{norm}(W_v\, \mathrm{LN}(z_{t,\text{cls}}^{(L)}))\big)$.
# **spatiotemporal** adds a temporal embedding $e_t$ to every token of frame $t$ and runs the $T(N+1)$
# tokens of the whole video through the blocks *together* (joint space-time attention), then pools
# the same way. Text goes through the (real, frozen) MiniLM sentence encoder and a projection;
# the similarity is $s\,\langle l, v\rangle$ with a learned temperature $s$. Both backbones were
# pretrained here on the source split (`readpvla pretrain-videoclip`, about 9 minutes each on 2
# cores) and ship in `data_samples/rendered/checkpoints/`.

# %%
models = {t: retrieval.load(t).to(dev) for t in retrieval.TEMPORAL}
m = models["frames"]
frames = retrieval.frames_tensor(test, [0, 1]).to(dev)                  # (B, T, 3, H, W)
emb = m.vision_model.embeddings(frames.flatten(0, 1))                    # (B*T, N+1, d)
out = m(frames, **{k: v.to(dev) for k, v in m.tokenize(test.captions[:2]).items()})
print(f"frames {tuple(frames.shape)} -> tokens per frame {tuple(emb.shape)} -> "
      f"video embeddings {tuple(out.video_embeds.shape)}; texts {tuple(out.text_embeds.shape)}")
for t, mod in models.items():
    c = rp.peft.count_parameters(mod)
    print(f"{t:>15s}: {c.total:,d} parameters ({c.total - sum(p.numel() for p in mod.text_model.parameters()):,d} "
          f"outside the frozen MiniLM)")

# %% [markdown]
# ## 7.3 Zero-shot retrieval
# Every caption against every test video: the similarity matrix, then text-to-video and
# video-to-text R@1/5/10 and median / mean rank, exactly as CLIP4Clip's evaluation computes them
# (`rp.metrics.evaluate_retrieval`; chance R@1 is 1/192 = 0.5%).

# %% tags=["report", "nbval-ignore-output"]
sim = retrieval.similarity(models["frames"], test)
fig = go.Figure(go.Heatmap(z=sim[:24, :24], colorscale="Viridis",
                           x=[f"v{j}" for j in range(24)], y=[f"c{i}" for i in range(24)]))
fig.update_layout(height=480, width=560, title="caption x video similarity (frames backbone, "
                  "first 24): the diagonal is the true pair", yaxis_autorange="reversed")
fig

# %% tags=["nbval-ignore-output"]
zero_shot = {t: retrieval.evaluate(mod, test) for t, mod in models.items()}
for t, r in zero_shot.items():
    print(f"{t:>15s}: t2v R@1 {r['t2v_R1']:5.1f}  R@5 {r['t2v_R5']:5.1f}  MdR {r['t2v_MR']:5.1f} | "
          f"v2t R@1 {r['v2t_R1']:5.1f}")

# %%
# what holds on every machine (the numbers above move in the last digits with the CPU)
print("zero-shot text-to-video R@1 above 4x chance for both backbones:",
      all(r["t2v_R1"] > 4 * 100 / len(test) for r in zero_shot.values()))

# %% [markdown]
# ## 7.4 Zero-shot recognition, and the order of frames
# A class is recognised by the similarity of the video to its prompt, "a video of {class}".
# For the order-only pairs we also ask the one question that needs order: between a class and
# its reverse partner, which is it? A bag of frames gives a video and its reversal the *same*
# embedding, so it is right on one class of each pair, whatever it learned: 50%.

# %%
rev = retrieval.frames_tensor(test, range(8)).to(dev)
with torch.no_grad():
    same = {t: torch.allclose(mod.encode_video(rev), mod.encode_video(rev.flip(1)), atol=1e-5)
            for t, mod in models.items()}
print("a video and its frames reversed get the same embedding:", same)

# %% tags=["report", "nbval-ignore-output"]
zs_rec = {t: recognition.evaluate(mod, classes) for t, mod in models.items()}
for t, r in zs_rec.items():
    print(f"{t:>15s}: top-1 {r['top1']:5.1f}  top-5 {r['top5']:5.1f}  order-only pairs "
          f"{r['order_pairs']:5.1f}  (chance: 4.2 / 20.8 / 50)")

# %% [markdown]
# The frame-bag backbone is at chance on the pairs by construction (measured on this split:
# 41% for `frames`, i.e. chance within the noise of 144 videos). The spatiotemporal one *can* see
# order (its embedding of a reversed video differs), but contrastive pretraining did not make it
# use order: it is at chance too (46% here). Captions that name a direction are a small part of
# what tells 64 videos of a batch apart; colours and shapes do that job more easily. Telling
# "left to right" from "right to left" is what temporal adapters are for (READ's recurrence along
# frames, RAP's asynchronous attention, MSTA's 3D convolution) and what later chapters measure.

# %% [markdown]
# ## 7.5 Fine-tuning beats zero-shot
# Every PEFT method of chapter 1 applies to both towers (`rp.peft.apply` finds the FFNs of the
# image tower and of MiniLM). Here LoRA trains for a few epochs on the domain's 480 training
# videos (5 captions each; generated into the cache on first use, ~9 s) with the symmetric
# InfoNCE, and the test split is scored again. `readpvla transfer-retrieval` runs every method,
# domain and seed into a table.

# %% tags=["nbval-ignore-output"]
variants = [temporal] if quick else list(retrieval.TEMPORAL)
settings = retrieval.TransferSettings(epochs=epochs)
tuned = {t: retrieval.run_one(models[t].cpu(), "LoRA", domain, seed, settings) for t in variants}
for t, r in tuned.items():
    print(f"{t:>15s} + LoRA ({r['params']}): t2v R@1 {zero_shot[t]['t2v_R1']:5.1f} -> "
          f"{r['test']['t2v_R1']:5.1f}")

# %%
print("LoRA fine-tuning beats the zero-shot backbone on text-to-video R@1:",
      all(r["test"]["t2v_R1"] > zero_shot[t]["t2v_R1"] for t, r in tuned.items()))

# %% [markdown]
# ## Summary
# - The rendered benchmark ships its test splits in real formats (MSR-VTT-style JSON, class
#   lists, `uint8` frames, mp4) and generates the rest on first use; 9 action pairs differ only in
#   the order of their frames.
# - The video CLIP is built from `transformers`' CLIP towers: `frames` pools per-frame embeddings
#   (it cannot see order: a video and its reversal get the same embedding), `spatiotemporal`
#   attends over all frames' patches with a temporal embedding.
# - Zero-shot retrieval is well above chance (10-20x) but far from what fine-tuning reaches;
#   recognition zero-shot is 2-4x chance under the style shifts; on the order-only pairs the
#   frame bag is at chance by construction, and the pretrained spatiotemporal backbone is too.
#
# ## Exercises
# 1. Set `domain="dark"`. Which of the three style shifts hurts zero-shot retrieval most, and why
#    might colour words in the captions be the reason?
# 2. Fine-tune READ instead of LoRA (`retrieval.run_one(model, "READ", ...)`) on the `frames`
#    backbone. READ recurs along frames: does it lift the order-only pairs above 50%
#    (`recognition.evaluate`)?
# 3. Encode a real mp4 of your own with `readpvla.data.video.read_frames(path, num_frames=8,
#    size=32)` and retrieve its nearest captions from the test split.
