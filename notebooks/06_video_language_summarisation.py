# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Video-language summarisation with VG-BART and VG-T5
#
# READ-PVLA's second task (paper Tables 4 and 5): read an instructional video and its transcript,
# write a short summary. The backbones are *vision-guided* generative transformers (Yu et al.,
# 2021): a pretrained BART or T5 whose text encoder is fused with the video by cross-attention at
# one encoder layer. We freeze them and adapt them with the methods of chapter 1.
#
# Our data are a synthetic How2: transcripts of several steps with filler sentences, clip features
# built from the same latent steps (order matters: the summary follows the order in which the steps
# happen), and a reference summary. The backbones were pretrained on a large source split
# (`readpvla pretrain-vls`); here we transfer them to a low-resource target split (400 videos).

# %% tags=["parameters"]
seed = 0  # random seed
device = "cpu"  # "cpu" or "cuda"
backbone = "bart"  # "bart" (VG-BART, Table 4) or "t5" (VG-T5, Table 5)
bottleneck = 4  # k of READ / the Houlsby adapter (paper: 4)
steps = 60  # fine-tuning steps of the live demo (the shipped tables used 250)
quick = True  # quick: 3 methods, 1 seed, 50 test videos; False: all 9 methods, 2 seeds

# %%
from pathlib import Path

import torch
from IPython.display import Markdown, display

import readpvla as rp
from readpvla.data.how2 import How2Collator, load_split
from readpvla.tasks.vls import METHODS, TransferConfig, load_backbone, run_transfer, summarize
from readpvla.viz import check_choice, check_range, setup_notebook

check_choice("backbone", backbone, ["bart", "t5"])
check_range("bottleneck", bottleneck, 1, 64)
check_range("steps", steps, 1, 5000)
dev = setup_notebook(seed, device)
torch.set_num_threads(1)  # tiny models: one thread is as fast and immune to oversubscription
DATA = Path("../data_samples/how2")
model, tokenizer = load_backbone(backbone, DATA)
test = load_split(DATA, "test")
print(f"VG-{backbone.upper()}: {rp.peft.count_parameters(model).total:,d} parameters, fusion at "
      f"encoder layer {model.fusion_layer}; {len(test)} test videos")

# %% [markdown]
# ## 6.1 The vision-guided fusion
# The transcript runs through the pretrained text encoder. At encoder layer $f$ the token states
# $H_L$ attend to the projected clips $H_V = \mathrm{LN}(X_V W_{\text{proj}})$, and a forget gate
# decides how much of the video to let in (Yu et al. 2021, Sec. 3.2):
#
# $$Z = \mathrm{softmax}\!\Big(\frac{(H_L W_q)(H_V W_k)^\top}{\sqrt{d_h}}\Big) H_V W_v W_o,\qquad
#   G = \sigma([H_L; Z] W_g + b_g),\qquad H_L \leftarrow H_L + G \odot Z$$
#
# The decoder is BART's / T5's own. In code, `readpvla.backbones.VGBart` wraps
# `transformers.BartForConditionalGeneration` (it does not re-implement it) and adds the fusion with
# a forward hook on encoder layer $f$:

# %%
print(model.fusion)
sample = test[0]
print(f"\ntranscript ({len(sample.transcript.split())} words): {sample.transcript[:160]}...")
print(f"clips: {sample.video.shape}   steps in order: {sample.steps}")
print(f"reference summary: {sample.summary}")

# %% [markdown]
# ## 6.2 Where READ sits in BART and T5
# READ wraps the last linear map of every feed-forward network — in the encoder *and* the decoder:
# `fc2` in BART, `DenseReluDense.wo` in T5. The recurrence in the decoder runs left to right over
# the generated prefix, so decoding must see the whole prefix at each step: `generate()` turns the
# key/value cache off when READ is present (a test checks it equals a greedy loop of full passes).

# %%
for name in ("bart", "t5"):
    m, _ = load_backbone(name, DATA)
    adapted = rp.peft.apply(m, rp.peft.READConfig(bottleneck=bottleneck))
    wrapped = [n for n, mod in adapted.named_modules() if isinstance(mod, rp.peft.READLayer)]
    print(f"VG-{name.upper()}: READ on {len(wrapped)} FFNs, #params {rp.peft.count_parameters(adapted)}")
    for n in wrapped:
        print("   ", n)

# %% [markdown]
# ## 6.3 Summaries before and after adaptation
# The pretrained backbone has never seen the target style ("first ... then ... finally") nor its
# held-out tasks. We adapt it with READ for a few steps and compare summaries with the references.

# %%
collate = How2Collator(tokenizer)
examples = test[:3]
before = summarize(model.to(dev), examples, collate, num_beams=4)
cfg = TransferConfig(n_train=400, n_test=50, n_val=0, steps=steps, batch_size=16, eval_every=0,
                     num_beams=1, bottleneck=bottleneck)
methods = ["full", "adapter", "read"] if quick else list(METHODS)
live = run_transfer(backbone, methods, seeds=[seed] if quick else [0, 1], config=cfg,
                    data_root=DATA, device=dev, log=None)
print(f"trained {len(live['rows'])} methods: {', '.join(live['rows'])}")
# the live numbers come from training, so their last digits depend on the CPU (DESIGN.md fact
# 7): they are shown below but not compared by nbval; what holds on any machine is checked here
gain = live["rows"]["Full"]["cells"]["R1"]["mean"] - live["zero_shot"]["rouge1"]
print(f"Full fine-tuning gains more than 10 ROUGE-1 points on the pretrained backbone: {gain > 10}")

# %% tags=["nbval-ignore-output"]
import copy  # noqa: E402

from readpvla.tasks.vls import LEARNING_RATES, TrainConfig, finetune  # noqa: E402

torch.manual_seed(seed)
read_model = rp.peft.apply(copy.deepcopy(model), rp.peft.READConfig(bottleneck=bottleneck))
finetune(read_model, load_split(DATA, "train"), collate,
         TrainConfig(steps=steps, batch_size=16, lr=LEARNING_RATES["read"]), seed=seed)
after = summarize(read_model.eval(), examples, collate, num_beams=4)
for s, b, a in zip(examples, before, after):
    print(f"reference : {s.summary}\npretrained: {b}\nREAD      : {a}\n")

# %% [markdown]
# With a budget this small READ's summaries can get *worse* than the pretrained model's before they
# get better: the adapter first has to move away from the identity it starts at. Compare the live
# table below with the shipped one (250 steps).
#
# ## 6.4 The ROUGE table
# ROUGE-1/2/L (F-measure, through `rouge-score` with stemming) of each method, mean ± std over
# seeds, with the trainable parameters in the paper's "#params (M) (%)" form. First the live run
# above (a small budget: indicative only), then the table shipped in `data_samples/how2/results/`,
# measured with 250 steps, greedy decoding, 200 test videos and 3 seeds.

# %% tags=["report", "nbval-ignore-output"]
display(Markdown(live["markdown"].replace("### ", "### This run: ", 1)))

# %% tags=["report"]
shipped = DATA / "results" / f"vls_{backbone}.md"
display(Markdown(shipped.read_text().replace("### ", "### Shipped run: ", 1) if shipped.exists()
                 else "(no shipped table)"))

# %% [markdown]
# In our small setting the whole-layer methods (Full, Partial, LoRA) transfer best, and READ with
# $k = 4$ on a 64-dimensional model learns slowly: its tanh-bounded recurrence needed a larger
# learning rate than the Houlsby adapter and still trails it. PVLA lowers the alignment cost but
# leaves ROUGE within noise here. These are our measurements, not the paper's; exercise 2 asks you
# to find out how much of the gap is the budget.
#
# **A slice: summaries whose content only the video shows.** The tables' "Video" column is
# ROUGE-1 on the test videos whose transcript never names at least two of their steps
# (`vls.video_reliant`); `vls.group_scores(per_item, samples, group_by)` gives any metric per
# value of a field or a function of a sample. The live run, per number of unnamed steps:

# %% tags=["nbval-ignore-output"]
from readpvla.tasks.vls import group_scores, unnamed_steps  # noqa: E402

for shown, entry in live["rows"].items():
    run_ = next(r for r in live["runs"] if r["row"] == entry["row"])
    groups = group_scores(run_["per_item"], test[: cfg.n_test], unnamed_steps)
    print(f"{shown:8s} " + "  ".join(f"{g} unnamed: R1 {v['rouge1']:5.1f} (n={v['n']})"
                                      for g, v in groups.items() if g != "all"))

# %% [markdown]
# On the shipped tables the slice separates nothing: on both targets and both backbones every
# row's Video score is within 1.9 ROUGE-1 of its R1 (mostly 0.2-1.2 below it), READ's and
# READ-PVLA's included, so no method is worse, or better, at the videos that need the video.
#
# Two things make this table hard to read. The top rows **saturate** (Full, Partial and LoRA
# above 97 ROUGE-1: the target's one summary template is learnt exactly, so the rows cannot be
# told apart), and some rows end **below the untuned backbone**: model selection by validation
# *loss* never asks whether the starting point summarised better.
#
# ## 6.5 A target that does not saturate, and selection that includes the start
# The *hard* target (`data_samples/how2/hard_*`) keeps the target's tasks and video, but words
# each summary at random (three openings, two words for "first", three for "then", two for
# "finally") and leaves twice as many steps to the video (40% of the step sentences are vague).
# Nobody can predict the wording, so ROUGE has a ceiling below 100; what is left to learn is the
# content: which steps, in which order. The ceiling, measured: write every test video's summary
# with the right task and steps in the most common wording.

# %%
hard_test = load_split(DATA, "hard_test")
for x in hard_test[:3]:
    print(x.summary)


def modal_wording(x):
    """The right content in the most common wording: the best a model can do on average."""
    mid = "".join(f" , then {p}" for p in x.steps[1:-1])
    return f"learn how to {x.task} : first {x.steps[0]}{mid} , finally {x.steps[-1]} ."


ceiling = rp.metrics.rouge_scores([modal_wording(x) for x in hard_test],
                                  [x.summary for x in hard_test])
print("\nthe right content, most common wording: "
      + ", ".join(f"{k} {ceiling[k]:.1f}" for k in ("rouge1", "rouge2", "rougeL")))

# %% [markdown]
# Model selection by validation ROUGE-L with the start as a candidate
# (`TransferConfig(select="rouge")`, `readpvla transfer-vls --select-by-rouge`): every 50 steps
# the model summarises 100 validation videos greedily; the best evaluation's weights are restored
# at the end, and if none beats the untuned start, the model leaves exactly as it came. So no row
# can end below the backbone on the test split unless it also did on validation. The table
# below is Table 4 / 5 on the hard target with that rule (`readpvla transfer-vls --target hard
# --medium --select-by-rouge --seeds 0 1 2`).

# %% tags=["report"]
shipped_hard = DATA / "results" / f"vls_hard_{backbone}.md"
display(Markdown(shipped_hard.read_text().replace("### ", "### Shipped run: ", 1)
                 if shipped_hard.exists() else "(no shipped table for the hard target)"))

# %% [markdown]
# What the shipped hard-target tables say (VG-BART / VG-T5, 3 seeds): the target no longer
# saturates (Full 75.95 / 74.32 ROUGE-1, under the ceiling above), and it separates methods:
# LoRA 70.67 / 72.20 and Partial 68.65 / 72.72 come close to Full, Proj gains a little or
# nothing. READ, READ-PVLA, the Houlsby adapter and Bias end **exactly at the untuned backbone**:
# in no run did a validation evaluation beat the start, so selection kept the start's weights,
# and the four rows are the same model (Δ = 0 [0, 0]). Their training loss after 250 steps
# (READ 3.11 / 2.76 against Full's 0.38 / 0.46) shows they had barely begun to fit: at the rates
# chosen on the easy target, this budget is too small for them. The table cannot order them;
# the equal-effort protocol below is how to ask whether a larger rate or size helps.
#
# Equal effort: `readpvla tune-vls --target hard` gives every row the same number of tuning runs
# (size x learning rate, scored on validation ROUGE-L; `readpvla.experiment.tuning`), then every
# size with 3 seeds on the test split: the accuracy-vs-trainable-parameters points, and the
# table again with every row at its chosen size and rate (`vls_hard_<backbone>_tuned.md`).

# %% tags=["report"]
import json  # noqa: E402

from readpvla.viz import pareto_figure  # noqa: E402

for bb in [backbone] + [b for b in ("bart", "t5") if b != backbone]:  # this notebook's first
    pareto_file = DATA / "results" / f"pareto_vls_hard_{bb}.json"
    if pareto_file.exists():
        points = json.loads(pareto_file.read_text())["points"]
        display(pareto_figure(points, yaxis="ROUGE-1 (test)",
                              title=f"VG-{bb.upper()}, hard target: ROUGE-1 vs trainable "
                                    "parameters"))
        display(Markdown((DATA / "results" / f"vls_hard_{bb}_tuned.md").read_text()))
    else:
        print(f"{pareto_file.name}: not shipped (readpvla tune-vls --backbone {bb} "
              "--target hard --out runs/vls_tuning --workers 2)")

# %% [markdown]
# Measured on VG-BART (108 validation runs, 12 per row, then every size at its best rate x 3
# seeds on test): equal effort lifts the rows that could move,
# Full to 78.51 (lr x3), Partial 74.64, LoRA 75.09 (r = 8), Proj 66.37, and it lets the **small
# adapters leave the start only at their largest size**: the Houlsby adapter with k = 16 at 3x
# its rate reaches 54.69 (+4.35 [+2.45, +6.31] over READ-PVLA), READ with k = 16 52.63 (+2.29
# [+0.34, +4.24]); at k = 2, 4 and 8 neither beat the start on validation at any rate. **READ-PVLA
# never did**, at any of its 12 settings: the PVLA term (weight 1) holds READ at the backbone, so
# the protocol chose its smallest setting and it ends exactly at the untuned model (50.34).
# Bias and the prompt stay at their starts too. On the Pareto figure the frontier is LoRA, Full
# and the 2-token prompt; no adapter of the READ family is on it. The ranking of the paper
# (READ-PVLA above the adapter and LoRA) does not reproduce here.
#
# On VG-T5 (the second figure and table) it is starker: Full 77.70, LoRA (r = 8) 75.99, Partial
# 74.90, the adapter with k = 16 at 3x its rate 61.38 (+7.72 [+5.79, +9.53] over READ-PVLA) and
# with k = 8 55.10, while **neither READ nor READ-PVLA left the start at any of their 24
# settings**: both end at the untuned backbone (53.66), as Bias does, with Proj barely above (54.47).

# %% [markdown]
# ## 6.6 Inside the models: does READ carry clip order, does PVLA align?
# Two claims of the paper can be probed here directly. **Order.** A summary lists the steps in
# the order they happen, and for the steps the transcript never names that order is only in the
# clips' positions. Over the $\binom K2$ pairs of a video's $K$ steps, *steps named* is the share
# of pairs whose two steps ("<verb> the <object>") both appear in the summary, *steps in order*
# the share that appear in the right order (`vls.step_order`). The treatment shuffles every
# video's clips in a fixed random order (`vls.shuffle_clips`, the same permutation in training
# and test), so the positions no longer say which step came first. If READ's recurrence carried
# order, its lead over the per-token adapter would change:
#
# $$\Delta\Delta = (\text{READ} - \text{Adapter})_{\text{shuffled}}
#   - (\text{READ} - \text{Adapter})_{\text{ordered}}.$$
#
# Where READ sits matters (6.2): in VG-BART / VG-T5 the clips pass only through the video
# projection and the fusion attention, so READ's recurrence runs along transcript and summary
# tokens, never along the clips. The untuned backbone, on 40 hard test videos:

# %% tags=["nbval-ignore-output"]
import numpy as np  # noqa: E402

from readpvla.tasks.vls import order_scores, plan_mass_on_steps, shuffle_clips  # noqa: E402

n_probe = 40 if quick else 200
probe_videos = hard_test[:n_probe]
collate = How2Collator(tokenizer)
in_order = {}
for name, videos in (("ordered clips", probe_videos), ("clips shuffled", shuffle_clips(probe_videos))):
    preds = summarize(model.eval(), videos, collate, num_beams=1)
    sc = order_scores(preds, videos)
    in_order[name] = np.mean(sc["steps in order"])
    print(f"{name:>15s}: steps named {np.mean(sc['steps named']):5.2f}%, "
          f"steps in order {in_order[name]:5.2f}%   e.g. {preds[0]!r}")
print("reference:", probe_videos[0].steps)

# %%
# the digits above may differ in the last place on another CPU; what holds anywhere:
print("shuffling the clips lowers the steps in order:",
      bool(in_order["clips shuffled"] < in_order["ordered clips"]))

# %% [markdown]
# **Alignment.** PVLA's partial plan $T^{(m)}$ between the clips $H_V$ and the transcript tokens
# $H_L^{(m)}$ after encoder layer $m$ should put its mass on pairs that belong together. Here we
# know which: a word that is the verb or object of step $s$ belongs with the clips that show
# step $s$ (the clip labels come from the features: `rp.data.how2.clip_step_labels`). Per video
#
# $$\text{share} = \frac{\sum_{(i,j)\in\mathcal G} T_{ij}}{\sum_{ij} T_{ij}},\qquad
#   \text{chance} = \frac{|\mathcal G|}{N_V N_L},$$
#
# so a plan that ignores content puts `chance` of its mass there. The untuned backbone:

# %% tags=["nbval-ignore-output"]
probe = plan_mass_on_steps(model, probe_videos, collate)
for layer in probe["layers"]:
    print(f"layer {layer['layer']}: share {layer['share']:.2f}% vs chance {layer['chance']:.2f}% "
          f"(lift {layer['lift']:.2f})")

# %%
print("the frozen plan prefers the right (clip, word) pairs at every layer:",
      all(layer["lift"] > 1.2 for layer in probe["layers"]) if backbone == "bart"
      else "(VG-T5's plan does not: its shares sit below chance)")

# %% [markdown]
# The shipped probes (`readpvla probe-vls --backbone bart|t5 --workers 2`, 45 runs per backbone:
# 250 steps without model selection, bottleneck 16, 3 seeds, the 200 hard test videos) train
# READ, the adapter and LoRA with the clips ordered and shuffled, READ and READ-PVLA for the plan
# probe, and READ-PVLA with one setting moved at a time for the sensitivity table.

# %% tags=["report"]
import re  # noqa: E402

for bb in [backbone] + [b for b in ("bart", "t5") if b != backbone]:
    probe_file = DATA / "results" / f"probes_vls_hard_{bb}.md"
    if probe_file.exists():
        display(Markdown(re.sub(r"(?m)^### ", "### Shipped run: ", probe_file.read_text())))
    else:
        print(f"{probe_file.name}: not shipped (readpvla probe-vls --backbone {bb} "
              "--out runs/vls_probes --workers 2)")

# %% [markdown]
# What the probes measured (3 seeds, 200 test videos each, 45 runs per backbone):
#
# - **Clip order reaches the summary, and the probe sees it.** LoRA names both steps of 45.8% /
#   51.4% of the step pairs (VG-BART / VG-T5) and puts 100.0% / 96.2% of the named pairs in the
#   right order; with the clips shuffled it names 6.7% / 28.9% and orders 52.1% / 52.2% of them,
#   which is chance (LoRA - Adapter, difference in differences on *steps in order*: -41.96
#   [-51.37, -30.79] / -31.04 [-39.32, -22.92]).
# - **READ does not carry more order than the adapter.** On VG-T5, where both name some steps
#   (READ 8.9%, the adapter 10.3% of the pairs), READ orders 69.7% of its named pairs against the
#   adapter's 76.0%, both fall to chance with shuffled clips (46.5%, 47.8%), and the difference in
#   differences READ - Adapter is +0.61 [-2.53, +3.38] on *steps in order* (-0.48 [-4.85, +3.37]
#   on *steps named*). On VG-BART READ and the adapter name almost no step pairs (1.1% and 0.8%)
#   and the contrast sits at that floor (-0.36 [-1.26, +0.60]); more steps do not lift it (one
#   seed, 1,000 steps: READ reaches 57.9 ROUGE-1 and still names 1.6% of the pairs: it learns the
#   wording, not which steps happened). This is what the architecture predicts: the clips never
#   pass through a READ layer.
# - **PVLA does not align, it moves the plan off the right pairs.** On VG-BART the frozen
#   backbone's plan already prefers the right (clip, word) pairs (6.28% / 5.85% of its mass at
#   layers 0 / 1 against a chance share of 3.34%), READ leaves that as it is (5.78% / 5.58%), and
#   READ-PVLA pushes it to chance or below (2.71% / 3.74%; layer 1 vs READ -1.84 [-2.41, -1.31]).
#   On VG-T5 every plan sits below chance (frozen 2.72% / 2.24%) and PVLA does not change layer 1
#   (-0.04 [-0.22, +0.16]) while lowering layer 0 (1.96% vs READ's 2.88%). The PVLA term lowers
#   its own transport cost, and nothing in it says which clips a word belongs with.
# - **Sensitivity.** On VG-T5 no setting of lambda (0.1-3), mass (0.2-0.8), k or the rate puts
#   READ-PVLA ahead of the adapter at k = 16: every interval lies below 0 (from -5.65 [-7.31,
#   -4.11] at lambda 0.3 to -17.77 at 3x the rate). On VG-BART, where the adapter at its base
#   rate is weak at this budget (50.69), two of the 8 settings end above it with intervals that
#   exclude 0, both of which weaken PVLA: lambda 0.1 (+1.88 [+0.21, +3.70]) and mass 0.2 (+2.47
#   [+0.67, +4.28]); neither differs from READ without PVLA (-0.06 [-2.00, +1.93], +0.53 [-2.36,
#   +3.24]), eight comparisons at 95% leave room for one such interval by chance, and with equal
#   tuning effort (6.5) the adapter at 3x its rate reaches 54.69 while READ-PVLA stays at the
#   start.

# %% [markdown]
#
# ## Summary
# - VG-BART / VG-T5 fuse video into the pretrained text encoder with gated cross-attention at one
#   layer; the decoder is unchanged, so the pretrained generator is reused as is.
# - READ goes into every encoder and decoder FFN; with READ in the decoder, generation runs without
#   the KV cache (the recurrence needs the whole prefix).
# - The same `rp.peft` API applies every baseline; `run_transfer` writes Tables 4/5 as JSON and
#   Markdown.
# - The shipped target saturates (Full 98 ROUGE-1). The hard target paraphrases its summaries,
#   which caps ROUGE-1 near 80.6 for a model that gets the content exactly right; with selection
#   by validation ROUGE-L (the untuned start a candidate) no row can end below where it started
#   unless it also did on validation. On it Full, Partial and LoRA gain 18-26 points, and the
#   small adapters, READ-PVLA included, never beat the start in 250 steps. With equal tuning
#   effort the adapter moves at k = 16 (54.7 / 61.4 on VG-BART / VG-T5), READ only on VG-BART
#   (52.6) and READ-PVLA on neither; the slice of videos that need the video separates no method.
# - Probes inside the models (6.6): clip order does reach the summary (LoRA orders its steps at
#   chance once the clips are shuffled), but READ carries no more of it than the adapter (the
#   clips never pass through a READ layer), and PVLA moves the transport plan *off* the pairs of
#   clips and words that belong together rather than onto them.
#
# ## Exercises
# 1. Run with `backbone="t5"`. Which rows change order compared with BART?
# 2. Raise `steps` to 600 and the READ bottleneck to 16. Does READ catch up with the adapter?
# 3. The summary must follow the order of the steps in the video. Shuffle the clips of a test video
#    (`shuffle_clips`) and compare the generated summaries of the trained READ model of 6.3;
#    score them with `order_scores`.
# 4. On the hard target, how far below the ceiling of 6.5 does each row end? Split the test
#    videos by how many of their steps the transcript never names
#    (`step not in x.transcript`) and compare Full with READ on each group.
# 5. Measure `plan_mass_on_steps` inside the READ model of 6.3, then train it again with
#    `TrainConfig(pvla_weight=1.0)` and measure again. Which way does the share move, and does
#    the PVLA loss in the training log fall?
