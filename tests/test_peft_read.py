"""READ (paper Eq. 5-6): initialisation, gradients, recurrence along tokens, padding, segments."""

from __future__ import annotations

import copy

import pytest
import torch
from toymodels import JointEncoder, tiny_bart

import readpvla as rp
from readpvla.peft import READConfig, READLayer


def _inputs(b=3, nv=5, nl=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, nv, 6, generator=g), torch.randn(b, nl, 5, generator=g)


def _read_params(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _model(cell="rnn", init="identity", seed=0):
    torch.manual_seed(seed)
    backbone = JointEncoder()
    frozen = copy.deepcopy(backbone).requires_grad_(False)  # the frozen backbone itself
    return rp.peft.apply(backbone, READConfig(bottleneck=4, cell=cell, init=init)), frozen


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_identity_init_output_equals_frozen_backbone(cell):
    model, frozen = _model(cell)
    v, t = _inputs()
    out, score = model(v, t)
    ref_out, ref_score = frozen(v, t)
    assert torch.equal(out, ref_out) and torch.equal(score, ref_score)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_every_read_param_gets_gradient_by_second_step_and_backbone_never_changes(cell):
    model, frozen = _model(cell)
    v, t = _inputs()
    params = _read_params(model)
    assert params and all(".w_down." in n or ".rnn." in n or ".w_up." in n for n in params)
    backbone_before = {n: p.detach().clone() for n, p in model.named_parameters()
                       if not p.requires_grad}
    opt = torch.optim.SGD(params.values(), lr=0.1)
    grads = []
    for _ in range(2):
        opt.zero_grad()
        _, score = model(v, t)
        score.pow(2).mean().backward()
        grads.append({n: p.grad.abs().sum().item() for n, p in params.items()})
        opt.step()
    # step 0: the zero W_up blocks everything below it (as LoRA's zero B does) ...
    assert all(g > 0 for n, g in grads[0].items() if ".w_up." in n)
    assert all(g == 0 for n, g in grads[0].items() if ".w_up." not in n)
    # ... and from the second step every READ parameter has a nonzero gradient
    zero = [n for n, g in grads[1].items() if g == 0]
    assert not zero, f"no gradient at step 1 for {zero}"
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, n
            assert torch.equal(p, backbone_before[n]), f"frozen {n} changed"


def test_paper_literal_init_never_trains():
    # DESIGN.md fact 1: W_down Kaiming, W_up / RNN / biases zero -> every gradient exactly 0.
    model, _ = _model("rnn", init="paper")
    v, t = _inputs()
    params = _read_params(model)
    opt = torch.optim.SGD(params.values(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        _, score = model(v, t)
        score.pow(2).mean().backward()
        assert all(p.grad is not None and p.grad.abs().max() == 0 for p in params.values())
        opt.step()
    assert all(model.get_submodule(n.rsplit(".", 2)[0]).w_up.weight.abs().max() == 0
               for n in params if ".w_up." in n)


def _trained_layer(cell="rnn", d=8, k=3, seed=0):
    torch.manual_seed(seed)
    layer = READLayer(torch.nn.Linear(d, d), READConfig(bottleneck=k, cell=cell))
    with torch.no_grad():
        layer.w_up.weight.normal_()  # as after training: W_up != 0
    return layer


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_reordering_tokens_changes_output_but_batch_order_only_permutes(cell):
    layer = _trained_layer(cell)
    x = torch.randn(4, 6, 8)
    out = layer(x)
    # tokens: the recurrence makes position t depend on tokens < t
    perm_t = torch.tensor([5, 4, 3, 2, 1, 0])
    out_t = layer(x[:, perm_t])
    assert not torch.allclose(out_t, out[:, perm_t], atol=1e-4)
    # the first token's output depends on nothing before it
    assert torch.allclose(layer(x[:, :1]), out[:, :1], atol=1e-6)
    # batch: items never interact
    perm_b = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(layer(x[perm_b]), out[perm_b], atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_padding_never_leaks_into_real_positions(cell):
    layer = _trained_layer(cell)
    x = torch.randn(2, 7, 8)
    # item 0 has 4 real tokens, left- and right-padded: positions 1..4
    mask = torch.tensor([[0, 1, 1, 1, 1, 0, 0], [1] * 7], dtype=torch.bool)
    garbage = x.clone()
    garbage[0, ~mask[0]] = 1e3  # whatever sits in the padding
    with rp.peft.token_layout(layer, mask=mask):
        out = layer(x)
        out_g = layer(garbage)
    alone = layer(x[:1, 1:5])  # the real tokens on their own, no padding at all
    assert torch.allclose(out[0, 1:5], alone[0], atol=1e-6)
    assert torch.allclose(out_g[0, 1:5], alone[0], atol=1e-6)
    # padded positions pass through unchanged (adapter output 0)
    base = layer.base_layer(x)
    assert torch.equal(out[0, ~mask[0]], base[0, ~mask[0]])
    assert torch.allclose(out[1], layer(x[1:2])[0], atol=1e-6)


def test_recurrence_restarts_in_each_modality_segment():
    layer = _trained_layer("gru")
    x = torch.randn(2, 7, 8)
    seg = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
    with rp.peft.token_layout(layer, segments=seg):
        out = layer(x)
    for b in range(2):
        for s in (0, 1):
            idx = (seg[b] == s).nonzero().squeeze(1)
            alone = layer(x[b:b + 1, idx])
            assert torch.allclose(out[b, idx], alone[0], atol=1e-6)


def test_padding_does_not_change_real_outputs_in_a_whole_model():
    model, _ = _model("rnn")
    for m in model.modules():
        if isinstance(m, READLayer):
            torch.nn.init.normal_(m.w_up.weight, std=0.5)
    v, t = _inputs(b=2)
    out, score = model(v[:1, :3], t[:1, :2])  # item 0 alone: 3 clips, 2 words
    vpad, tpad = v.clone(), t.clone()
    vpad[0, 3:] = 99.0
    tpad[0, 2:] = -99.0
    vm = torch.tensor([[1, 1, 1, 0, 0], [1] * 5], dtype=torch.bool)
    tm = torch.tensor([[1, 1, 0, 0], [1] * 4], dtype=torch.bool)
    out_b, score_b = model(vpad, tpad, vm, tm)
    assert torch.allclose(score_b[0, :3], score[0], atol=1e-5)
    real = torch.cat([vm[0], tm[0]])
    assert torch.allclose(out_b[0, real], out[0], atol=1e-5)


def test_hf_stack_hooks_pass_bart_padding_to_read():
    torch.manual_seed(0)
    model = rp.peft.apply(tiny_bart(), READConfig(bottleneck=3))
    for m in model.modules():
        if isinstance(m, READLayer):
            torch.nn.init.normal_(m.w_up.weight, std=0.5)
    ids = torch.randint(4, 50, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    enc = model.get_encoder()
    padded = enc(input_ids=ids, attention_mask=mask).last_hidden_state
    alone = enc(input_ids=ids[:1, :4], attention_mask=mask[:1, :4]).last_hidden_state
    assert torch.allclose(padded[0, :4], alone[0], atol=1e-5)
    # without the layout the padding would leak: check that the test can fail
    for h in model._readpvla_hooks:
        h.remove()
    leaked = enc(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(leaked[0, :4], alone[0], atol=1e-5)  # causal RNN, right padding
    mask_left = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6])
    ids_left = torch.cat([ids[:1, 4:], ids[:1, :4]], 1)
    ids_left = torch.cat([ids_left, ids[1:]])
    leaked_left = enc(input_ids=ids_left, attention_mask=mask_left).last_hidden_state
    assert not torch.allclose(leaked_left[0, 2:], alone[0], atol=1e-4)


def test_bad_layouts_raise():
    with pytest.raises(ValueError, match="mask must be a \\[B, T\\]"):
        rp.peft.TokenLayout(mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool or 0/1"):
        rp.peft.TokenLayout(mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="only 0 and 1"):
        rp.peft.TokenLayout(mask=torch.full((2, 3), 2))
    with pytest.raises(ValueError, match="differ in shape"):
        rp.peft.TokenLayout(mask=torch.ones(2, 3, dtype=torch.bool),
                            segments=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 0"):
        rp.peft.TokenLayout(segments=-torch.ones(2, 3, dtype=torch.long))


@pytest.mark.parametrize("kw, msg", [
    ({"bottleneck": 0}, "bottleneck must be a positive integer"),
    ({"bottleneck": 2.5}, "bottleneck must be a positive integer"),
    ({"cell": "transformer"}, "cell must be one of"),
    ({"init": "zeros"}, "init must be one of"),
    ({"target": 3}, "target must be None"),
])
def test_bad_config_raises(kw, msg):
    with pytest.raises(ValueError, match=msg):
        READConfig(**kw)
