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
# ## Summary
# - VG-BART / VG-T5 fuse video into the pretrained text encoder with gated cross-attention at one
#   layer; the decoder is unchanged, so the pretrained generator is reused as is.
# - READ goes into every encoder and decoder FFN; with READ in the decoder, generation runs without
#   the KV cache (the recurrence needs the whole prefix).
# - The same `rp.peft` API applies every baseline; `run_transfer` writes Tables 4/5 as JSON and
#   Markdown.
#
# ## Exercises
# 1. Run with `backbone="t5"`. Which rows change order compared with BART?
# 2. Raise `steps` to 600 and the READ bottleneck to 16. Does READ catch up with the adapter?
# 3. The summary must follow the order of the steps in the video. Shuffle the clips of a test video
#    and compare the generated summaries.
