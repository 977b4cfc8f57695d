"""PromptConfig.slots: prompts in some of the backbone's input slots only (VPT: the video tower;
CoOp: the text side), checked names, and the JSON round trip of a saved adapter."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import readpvla as rp
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.peft import PromptConfig


def _tiny():
    return VideoCLIP.tiny(temporal="frames", text="clip", seed=0).eval()


def _batch(model):
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(3, 4, 3, 16, 16, generator=g)
    ids = torch.tensor([[62, 5, 9, 63, 0], [62, 7, 63, 0, 0], [62, 3, 4, 8, 63]])
    return frames, ids, ids != 0


def _one_step(model):
    frames, ids, mask = _batch(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    model(frames, ids, mask, return_loss=True).loss.backward()
    opt.step()
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


@pytest.mark.parametrize("slots, name", [(("video",), "video"), (("text",), "text")])
def test_one_slot_trains_only_that_slots_prompts(slots, name):
    model = rp.peft.apply(_tiny(), PromptConfig(n_tokens=3, slots=slots))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"readpvla_prompts.{name}"}
    assert _one_step(model) == {f"readpvla_prompts.{name}"}  # it gets a gradient and moves


def test_vpt_changes_only_the_video_side_and_coop_only_the_text_side():
    base = _tiny()
    frames, ids, mask = _batch(base)
    with torch.no_grad():
        v0, t0 = base.encode_video(frames), base.encode_text(ids, mask)
        vpt = rp.peft.apply(copy.deepcopy(base), PromptConfig(n_tokens=3, slots=("video",)))
        coop = rp.peft.apply(copy.deepcopy(base), PromptConfig(n_tokens=3, slots=["text"]))
        assert torch.equal(vpt.encode_text(ids, mask), t0)
        assert not torch.allclose(vpt.encode_video(frames), v0)
        assert torch.equal(coop.encode_video(frames), v0)
        assert not torch.allclose(coop.encode_text(ids, mask), t0)


def test_default_slots_are_every_declared_slot():
    model = rp.peft.apply(_tiny(), PromptConfig(n_tokens=2))
    assert set(model.readpvla_prompts) == {"video", "text"}


def test_unknown_or_malformed_slots_raise():
    with pytest.raises(ValueError, match=r"unknown prompt slot\(s\) \['audio'\].*\['text', 'video'\]"):
        rp.peft.apply(_tiny(), PromptConfig(slots=("audio",)))
    for bad in ("video", (), ("video", "video"), (1,)):
        with pytest.raises(ValueError, match="slots must"):
            PromptConfig(slots=bad)


def test_slots_survive_the_json_config_and_a_save_load_round_trip(tmp_path):
    cfg = PromptConfig(n_tokens=2, slots=["video"])  # a list (as JSON gives it) becomes a tuple
    assert cfg.slots == ("video",)
    assert PromptConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    model = rp.peft.apply(_tiny(), cfg)
    _one_step(model)
    model.eval()
    rp.peft.save_adapter(model, tmp_path / "vpt")
    loaded = rp.peft.load_adapter(_tiny(), tmp_path / "vpt").eval()
    assert rp.peft.read_adapter_config(tmp_path / "vpt").slots == ("video",)
    assert set(loaded.readpvla_prompts) == {"video"}
    frames, ids, mask = _batch(model)
    with torch.no_grad():
        assert torch.equal(model(frames, ids, mask).logits_per_text,
                           loaded(frames, ids, mask).logits_per_text)
