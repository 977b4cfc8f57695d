"""MSTA (ETL4Video, Chen et al. 2025): the mechanism, shown on a tiny video CLIP.

The bottleneck is one parameter that both towers train (one tower with branches="vision"); the
temporal convolution makes the video embedding depend on frame order (temporal=False does not);
zero init is the backbone bit for bit; only adapter parameters train; the logged parameter
counts come out of the ViCLIP-B shapes; save / load round-trips; bad settings raise early.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from toymodels import video_text_batch

import readpvla as rp
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.peft.msta import MSTAConfig, MSTAModule

_batch = video_text_batch  # tests/toymodels.py


@pytest.fixture(params=["frames", "spatiotemporal"])
def backbone(request):
    return VideoCLIP.tiny(temporal=request.param).eval()


@pytest.fixture(scope="module")
def frames_backbone():
    return VideoCLIP.tiny(temporal="frames").eval()


def _msta(backbone, **kw):
    return rp.peft.apply(copy.deepcopy(backbone), MSTAConfig(**kw))


def _grads(model, loss) -> dict[str, float]:
    model.zero_grad()
    loss.backward()
    return {n: float(p.grad.abs().sum()) for n, p in model.named_parameters()
            if p.grad is not None}


def test_zero_init_is_the_backbone_bit_for_bit(backbone):
    frames, ids, am = _batch()
    ref = backbone(frames, ids, am)
    out = _msta(backbone, init="zero")(frames, ids, am)
    assert torch.equal(out.logits_per_text, ref.logits_per_text)
    assert torch.equal(out.h_v, ref.h_v) and torch.equal(out.h_l, ref.h_l)
    # the paper's Kaiming init changes the output from the start (by about lambda)
    out = _msta(backbone)(frames, ids, am)
    assert not torch.equal(out.logits_per_text, ref.logits_per_text)


def test_only_adapter_parameters_train_and_every_one_gets_a_gradient(backbone):
    frames, ids, am = _batch()
    model = _msta(backbone).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("readpvla_msta.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(2):
        opt.zero_grad()
        model(frames, ids, am, return_loss=True).loss.backward()
        got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert got == trainable, (step, trainable - got)  # Kaiming: all of them from step 0
        opt.step()
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None and torch.equal(p, before[n]), n


def test_zero_init_trains_the_up_projections_first(frames_backbone):
    frames, ids, am = _batch()
    model = _msta(frames_backbone, init="zero").train()
    g = _grads(model, model(frames, ids, am, return_loss=True).loss)
    moved = {n for n, v in g.items() if v > 0}
    # the zero up-projections block the rest (as LoRA's zero B); conv(0) = its bias
    assert moved and all(".video_up." in n or ".text_up." in n
                         or n.startswith("readpvla_msta.video_temporal.") and n.endswith(".bias")
                         for n in moved)
    assert any(".video_up." in n for n in moved) and any(".text_up." in n for n in moved)


def test_the_shared_projection_gets_gradient_from_both_towers(frames_backbone):
    frames, ids, am = _batch()
    model = _msta(frames_backbone).train()
    msta = model.readpvla_msta
    w = msta.shared["0"].weight
    # one nn.Parameter per block, used by both towers
    assert msta._mid("0", "video").weight is w and msta._mid("0", "text").weight is w
    names = {n for n, p in model.named_parameters() if p is w}
    assert names == {"readpvla_msta.shared.0.weight"}
    g_text = _grads(model, model.encode_text(ids, am).sum())
    g_video = _grads(model, model.encode_video(frames).sum())
    for g in (g_text, g_video):
        assert g["readpvla_msta.shared.0.weight"] > 0 and g["readpvla_msta.shared.1.weight"] > 0
    assert not any(".video_" in n for n in g_text) and not any(".text_" in n for n in g_video)


def test_separate_bottlenecks_without_sharing(frames_backbone):
    frames, ids, am = _batch()
    model = _msta(frames_backbone, shared=False).train()
    assert not len(model.readpvla_msta.shared)
    g_text = _grads(model, model.encode_text(ids, am).sum())
    assert g_text["readpvla_msta.text_mid.0.weight"] > 0
    assert "readpvla_msta.video_mid.0.weight" not in g_text
    g_video = _grads(model, model.encode_video(frames).sum())
    assert g_video["readpvla_msta.video_mid.0.weight"] > 0
    assert "readpvla_msta.text_mid.0.weight" not in g_video


def test_vision_branch_only(frames_backbone):
    frames, ids, am = _batch()
    model = _msta(frames_backbone, branches="vision").train()
    assert not any(".text_" in n for n, _ in model.named_parameters())
    assert torch.equal(model.encode_text(ids, am), frames_backbone.encode_text(ids, am))
    assert not model.encode_text(ids, am).requires_grad  # the text tower reaches no adapter
    g_video = _grads(model, model.encode_video(frames).sum())
    assert g_video["readpvla_msta.shared.0.weight"] > 0


def test_text_branch_only(frames_backbone):
    frames, ids, am = _batch()
    model = _msta(frames_backbone, branches="text").train()
    assert not any(".video_" in n for n, _ in model.named_parameters())
    assert torch.equal(model.encode_video(frames), frames_backbone.encode_video(frames))
    assert _grads(model, model.encode_text(ids, am).sum())["readpvla_msta.shared.0.weight"] > 0


@pytest.mark.parametrize("start", [0, 1])
def test_the_temporal_convolution_makes_frame_order_matter(frames_backbone, start):
    # a frame-bag backbone: its video embedding ignores frame order
    frames, _, _ = _batch()
    rev = frames.flip(1)
    base = frames_backbone
    assert torch.allclose(base.encode_video(frames), base.encode_video(rev), atol=1e-6)
    with_conv = _msta(base, start=start, scale=0.5)
    diff = (with_conv.encode_video(frames) - with_conv.encode_video(rev)).abs().max()
    assert diff > 1e-3  # also with the adapter in the last block only (start=1)
    without = _msta(base, start=start, scale=0.5, temporal=False)
    assert torch.allclose(without.encode_video(frames), without.encode_video(rev), atol=1e-6)
    assert not len(without.readpvla_msta.video_temporal)


def test_padded_frames_are_zeros_to_the_convolution(backbone):
    frames, _, _ = _batch()
    model = _msta(backbone, scale=0.5)
    mask = torch.tensor([[1, 1, 1, 0]] * 3, dtype=torch.bool)
    padded = frames.clone()
    padded[:, 3] = 7.0  # whatever sits in a padded frame must not matter
    out = model.encode_video(padded, frame_mask=mask)
    assert torch.allclose(out, model.encode_video(frames[:, :3]), atol=1e-5)


def test_a_bert_text_tower_is_hooked_aligned_at_the_top():
    backbone = VideoCLIP.tiny(text="minilm").eval()  # video 2 blocks, MiniLM 6 blocks
    model = _msta(backbone, start=1)
    msta = model.readpvla_msta
    assert msta.text_offset == 4
    hooked = [i for i, layer in enumerate(model.text_model.encoder.layer) if layer._forward_hooks]
    assert hooked == [5]
    tok = model.tokenize(["a video of moving something up", "a video of something blinking"])
    ref = backbone.encode_text(tok["input_ids"], tok["attention_mask"])
    out = model.encode_text(tok["input_ids"], tok["attention_mask"])
    assert not torch.equal(out, ref)
    g = _grads(model, out.sum())
    assert g["readpvla_msta.shared.1.weight"] > 0 and g["readpvla_msta.text_down.1.weight"] > 0


def test_a_deep_copy_carries_its_own_hooks(frames_backbone):
    _, ids, am = _batch()
    model = _msta(frames_backbone)
    before = model.encode_text(ids, am)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.readpvla_msta.text_up.parameters():
            p.add_(1.0)
    assert torch.equal(model.encode_text(ids, am), before)
    assert not torch.equal(twin.encode_text(ids, am), before)


def test_the_logged_parameter_counts_come_out_of_the_viclip_b_shapes():
    # ViCLIP-B: video width 768, text width 512, 12 blocks each
    few_shot = MSTAModule(MSTAConfig(width=128, start=7, end=11), vision_layers=12,
                          text_layers=12, vision_width=768, text_width=512)
    assert sum(p.numel() for p in few_shot.parameters()) == 1_744_000  # logs: 1.744 M
    base_to_novel = MSTAModule(MSTAConfig(width=256), vision_layers=12, text_layers=12,
                               vision_width=768, text_width=512)
    assert round(sum(p.numel() for p in base_to_novel.parameters()) / 1e6, 1) == 8.7  # paper
    assert few_shot.video_temporal["7"].weight.shape == (768, 1, 3, 1, 1)  # depthwise (3, 1, 1)


def test_width_scales_with_the_video_tower():
    cfg = MSTAConfig()
    assert cfg.resolved_width(768) == 128 and cfg.resolved_width(128) == 21
    assert cfg.resolved_width(32) == 5 and cfg.resolved_width(2) == 1
    assert MSTAConfig(width=7).resolved_width(768) == 7


def test_count_and_save_load_round_trip(frames_backbone, tmp_path):
    frames, ids, am = _batch()
    model = _msta(frames_backbone, start=1, shared=False, scale=0.1)
    with torch.no_grad():
        for p in model.readpvla_msta.parameters():
            p.add_(0.01 * torch.randn_like(p))
    count = rp.peft.count_parameters(model)
    assert count.trainable == sum(p.numel() for p in model.readpvla_msta.parameters())
    rp.peft.save_adapter(model, tmp_path / "msta")
    assert rp.peft.read_adapter_config(tmp_path / "msta") == model.readpvla_config
    loaded = rp.peft.load_adapter(copy.deepcopy(frames_backbone), tmp_path / "msta")
    assert torch.equal(loaded(frames, ids, am).logits_per_text,
                       model(frames, ids, am).logits_per_text)
    assert rp.peft.count_parameters(loaded) == count


@pytest.mark.parametrize("kw, match", [
    ({"width": 0}, "width"), ({"width": 2.5}, "width"), ({"scale": math.nan}, "scale"),
    ({"scale": math.inf}, "scale"), ({"scale": 0.0}, "scale"), ({"scale": True}, "scale"),
    ({"start": -1}, "start"), ({"start": 3, "end": 2}, "after end"), ({"end": -2}, "end"),
    ({"branches": "audio"}, "branches"), ({"shared": 1}, "shared"),
    ({"temporal": "yes"}, "temporal"), ({"temporal_kernel": 2}, "odd"),
    ({"temporal_kernel": 0}, "temporal_kernel"), ({"init": "normal"}, "init"),
])
def test_bad_hyperparameters_raise_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        MSTAConfig(**kw)


@pytest.mark.parametrize("kw", [{"start": 2}, {"end": 2}, {"start": 5, "end": 9}])
def test_blocks_out_of_range_raise_and_leave_the_backbone_as_it_was(frames_backbone, kw):
    model = copy.deepcopy(frames_backbone)
    with pytest.raises(ValueError, match="out of range"):
        rp.peft.apply(model, MSTAConfig(**kw))
    assert not hasattr(model, "readpvla_msta") and not hasattr(model, "readpvla_config")
    assert not any(m._forward_hooks for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_a_backbone_without_slots_is_refused():
    with pytest.raises(ValueError, match="readpvla_msta_slots"):
        rp.peft.apply(torch.nn.Sequential(torch.nn.Linear(4, 4)), MSTAConfig())
    assert rp.peft.METHODS["msta"] is MSTAConfig
