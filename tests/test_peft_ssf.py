"""SSF (Lian et al. 2022): a scale and shift after every linear layer and LayerNorm of the
blocks; equal to the backbone at start, only its own parameters train, saves and loads; and RAP
on an SSF base (``RAPConfig(ssf=True)``)."""

from __future__ import annotations

import copy

import pytest
import torch

import readpvla as rp
from readpvla.backbones.video_clip import VideoCLIP


def _batch():
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 4, 3, 16, 16, generator=g)
    ids = torch.tensor([[62, 5, 6, 63], [62, 7, 63, 0]])
    return frames, ids, (ids != 0).long()


@pytest.mark.parametrize("cfg", [rp.peft.SSFConfig(), rp.peft.RAPConfig(top_k=2, ssf=True)],
                         ids=["ssf", "rap+ssf"])
def test_ssf_starts_at_the_backbone_trains_its_own_parameters_and_round_trips(cfg, tmp_path):
    backbone = VideoCLIP.tiny().eval()
    frames, ids, am = _batch()
    model = rp.peft.apply(copy.deepcopy(backbone), cfg)
    assert torch.equal(model(frames, ids, am).logits_per_text, backbone(frames, ids, am).logits_per_text)
    ssf = [m for m in model.modules() if isinstance(m, rp.peft.SSFLayer)]
    kinds = {type(m.base_layer).__name__ for m in ssf}
    assert kinds == {"Linear", "LayerNorm"}
    # every linear layer and LayerNorm of both towers' blocks: 2 blocks x (q, k, v, o, fc1, fc2,
    # 2 LayerNorms) x 2 towers
    assert len(ssf) == 2 * 8 * 2
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.endswith(("ssf_scale", "ssf_shift")) or n.startswith("readpvla_rap.") for n in trainable)
    assert any(n.startswith("readpvla_rap.") for n in trainable) == isinstance(cfg, rp.peft.RAPConfig)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model.train()(frames, ids, am, return_loss=True).loss.backward()
        opt.step()
    moved = [n for n, p in model.named_parameters() if p.requires_grad and n.endswith("ssf_scale")
             and not torch.equal(p, torch.ones_like(p))]
    assert len(moved) == len(ssf)
    rp.peft.save_adapter(model, tmp_path / "a")
    loaded = rp.peft.load_adapter(copy.deepcopy(backbone), tmp_path / "a").eval()
    model.eval()
    assert torch.equal(loaded(frames, ids, am).logits_per_text, model(frames, ids, am).logits_per_text)


def test_ssf_refuses_a_model_without_blocks():
    with pytest.raises(ValueError):
        rp.peft.apply(torch.nn.Sequential(torch.nn.Linear(2, 2)), rp.peft.SSFConfig())
