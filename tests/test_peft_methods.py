"""Every method through one API: closed-form parameter counts, recipes, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from toymodels import JointEncoder, minilm, tiny_bart, tiny_clip_text, tiny_clip_vision, tiny_t5

import readpvla as rp
from readpvla.peft import (
    AdapterConfig,
    BitFitConfig,
    FullConfig,
    LoRAConfig,
    PartialConfig,
    ProjConfig,
    PromptConfig,
    READConfig,
)

# JointEncoder(d_v=6, d_t=5, d=16, d_ff=32, n_blocks=2): closed forms by hand
D, DFF, NB, DV, DT = 16, 32, 2, 6, 5
BLOCK = 4 * (D * D + D) + 2 * (2 * D) + (D * DFF + DFF) + (DFF * D + D)  # q,k,v,o, 2 LN, fc1, fc2
TOTAL = (DV * D + D) + (DT * D + D) + 64 * D + NB * BLOCK + (D + 1)


def read_count(k: int, cell: str, d: int = D, n: int = NB) -> int:
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    w_down = d * k + k  # W_down and b_down
    rnn = gates * (2 * k * k + 2 * k)  # W_ih, W_hh, b_ih, b_hh per gate
    w_up = k * d  # Eq. 5 has no bias after W_up
    return n * (w_down + rnn + w_up)


CASES = [
    (FullConfig(), TOTAL),
    (PartialConfig(), BLOCK),
    (BitFitConfig(), 2 * D + NB * (4 * D + 2 * D + DFF + D) + 1),  # qkvo, 2 LN, fc1, fc2
    (ProjConfig(), D + 1),
    (LoRAConfig(r=4), NB * 4 * ((D + D) * 4 + (D + DFF) + (DFF + D))),
    (PromptConfig(n_tokens=10), 2 * 10 * D),
    (AdapterConfig(bottleneck=4), NB * ((D * 4 + 4) + (4 * D + D))),
    (AdapterConfig(bottleneck=4, placement="attn+ffn"), 2 * NB * ((D * 4 + 4) + (4 * D + D))),
    (READConfig(bottleneck=4, cell="rnn"), read_count(4, "rnn")),
    (READConfig(bottleneck=3, cell="gru"), read_count(3, "gru")),
    (READConfig(bottleneck=5, cell="lstm"), read_count(5, "lstm")),
]


@pytest.mark.parametrize("cfg, expected", CASES, ids=lambda c: getattr(c, "method", ""))
def test_closed_form_counts_and_training_on_toy(cfg, expected):
    torch.manual_seed(0)
    backbone = JointEncoder()
    assert rp.peft.count_parameters(backbone).total == TOTAL
    model = rp.peft.apply(backbone, cfg)
    count = rp.peft.count_parameters(model)
    assert count.trainable == expected
    added = 0 if cfg.method in {"full", "partial", "bias", "proj"} else expected
    assert count.total == TOTAL + added
    assert count.percent == pytest.approx(100 * expected / (TOTAL + added))
    # one optimiser step moves the trainable weights only
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    v, t = torch.randn(2, 5, DV), torch.randn(2, 4, DT)
    for _ in range(2):
        opt.zero_grad()
        model(v, t)[1].pow(2).mean().backward()
        opt.step()
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[n]), n
    moved = sum((p != before[n]).sum().item() for n, p in model.named_parameters())
    assert moved > 0


def test_counts_print_like_the_paper():
    assert str(rp.peft.ParamCount(160_000, 283_970_000)) == "0.16 (0.06%)"
    assert str(rp.peft.ParamCount(500, 283_970_000)) == "0.00050 (0.00018%)"
    assert str(rp.peft.ParamCount(4224, 729_348)) == "0.0042 (0.58%)"
    assert str(rp.peft.ParamCount(5312, 729_348)) == "0.0053 (0.73%)"
    assert str(rp.peft.ParamCount(10, 10)) == "1.0e-05 (100.00%)"
    assert str(rp.peft.ParamCount(4032, 336_000)) == "0.0040 (1.20%)"


def test_read_on_bart_t5_counts_and_partial_takes_last_encoder_and_decoder_layers():
    bart = rp.peft.apply(tiny_bart(), READConfig(bottleneck=4))
    # 2 encoder + 2 decoder FFNs, d = 16
    assert rp.peft.count_parameters(bart).trainable == read_count(4, "rnn", d=16, n=4)
    t5 = rp.peft.apply(tiny_t5(), READConfig(bottleneck=4, cell="lstm"))
    assert rp.peft.count_parameters(t5).trainable == read_count(4, "lstm", d=16, n=4)
    wrapped = [n for n, m in t5.named_modules() if isinstance(m, rp.peft.READLayer)]
    assert wrapped == [f"{s}.block.{i}.layer.{j}.DenseReluDense.wo"
                       for s, j in (("encoder", 1), ("decoder", 2)) for i in range(2)]
    partial = rp.peft.apply(tiny_bart(), PartialConfig())
    trained = {n.split(".layers.")[0] + ".layers." + n.split(".layers.")[1].split(".")[0]
               for n, p in partial.named_parameters() if p.requires_grad}
    assert trained == {"model.encoder.layers.1", "model.decoder.layers.1"}


def test_proj_trains_the_tied_lm_head_of_bart():
    model = rp.peft.apply(tiny_bart(), ProjConfig())
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained == ["model.shared.weight"]  # lm_head.weight is tied to it
    assert model.lm_head.weight.requires_grad


def test_recipes_find_ffns_of_minilm_and_clip():
    bert, _ = minilm()
    names = rp.peft.find_modules(bert, "ffn")
    assert names == [f"encoder.layer.{i}.output.dense" for i in range(6)]
    for clip in (tiny_clip_text(), tiny_clip_vision()):
        assert rp.peft.find_modules(clip, "ffn") == [f"encoder.layers.{i}.mlp.fc2" for i in range(2)]
        model = rp.peft.apply(clip, READConfig())
        assert rp.peft.count_parameters(model).trainable == read_count(4, "rnn", d=16, n=2)


def test_read_on_minilm_keeps_output_at_init_and_respects_padding():
    bert, tok = minilm()
    frozen = copy.deepcopy(bert).requires_grad_(False)
    model = rp.peft.apply(bert, READConfig(bottleneck=4))
    batch = tok(["a dog jumps over the fence", "hello"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).last_hidden_state
        ref = frozen(**batch).last_hidden_state
        assert torch.equal(out, ref)
        for m in model.modules():
            if isinstance(m, rp.peft.READLayer):
                torch.nn.init.normal_(m.w_up.weight, std=0.1)
        padded = model(**batch).last_hidden_state
        n = int(batch["attention_mask"][1].sum())
        alone = model(**tok(["hello"], return_tensors="pt")).last_hidden_state
    assert torch.allclose(padded[1, :n], alone[0], atol=1e-4)
    assert not torch.allclose(padded[0], ref[0], atol=1e-3)  # READ now does something


def test_unknown_architecture_error_names_the_class():
    class Mystery(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

    with pytest.raises(ValueError, match="Mystery"):
        rp.peft.apply(Mystery(), READConfig())
    # a user pattern works for anything
    model = rp.peft.apply(Mystery(), READConfig(target=r"lin"))
    assert isinstance(model.lin, rp.peft.READLayer)


def test_target_errors_and_double_apply():
    with pytest.raises(ValueError, match="matched no module of JointEncoder"):
        rp.peft.apply(JointEncoder(), READConfig(target=r"nothing\.here"))
    with pytest.raises(ValueError, match="not a valid regex"):
        rp.peft.apply(JointEncoder(), READConfig(target=r"(unclosed"))
    model = rp.peft.apply(JointEncoder(), READConfig())
    with pytest.raises(ValueError, match="already carries a 'read' adapter"):
        rp.peft.apply(model, AdapterConfig())
    with pytest.raises(TypeError, match="readpvla.peft config"):
        rp.peft.apply(JointEncoder(), {"method": "read"})


def test_multihead_attention_out_proj_is_refused():
    class WithMHA(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    with pytest.raises(ValueError, match="never calls it"):
        rp.peft.apply(WithMHA(), AdapterConfig(target=r"attn\.out_proj"))
    with pytest.raises(ValueError, match="never calls it"):
        rp.peft.apply(WithMHA(), LoRAConfig(target=r"attn\.out_proj"))


def test_prompt_needs_declared_slots_and_keeps_output_shapes():
    bert, _ = minilm()
    with pytest.raises(ValueError, match="BertModel does not"):
        rp.peft.apply(bert, PromptConfig())
    model = rp.peft.apply(JointEncoder(), PromptConfig(n_tokens=3))
    h, score = model(torch.randn(2, 5, DV), torch.randn(2, 4, DT))
    assert score.shape == (2, 5) and h.shape == (2, 5 + 4 + 6, D)


def test_bitfit_on_t5_without_biases_fails_clearly():
    with pytest.raises(ValueError, match="T5ForConditionalGeneration has no bias"):
        rp.peft.apply(tiny_t5(), BitFitConfig())


@pytest.mark.parametrize("make, msg", [
    (lambda: AdapterConfig(placement="everywhere"), "placement must be one of"),
    (lambda: LoRAConfig(r=0), "r must be a positive integer"),
    (lambda: LoRAConfig(alpha=-1), "alpha must be > 0"),
    (lambda: LoRAConfig(dropout=1.5), "dropout must be in"),
    (lambda: PromptConfig(n_tokens=-2), "n_tokens must be a positive integer"),
    (lambda: PartialConfig(n_last=0), "n_last must be a positive integer"),
])
def test_bad_hyperparameters_raise(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()
