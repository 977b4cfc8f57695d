"""RAP (Cao et al. 2024): the mechanism, shown on a tiny video CLIP rather than assumed.

LoRM leaves the backbone unchanged at step 0 and trains every factor by step 2; c_v and s_v keep
rank <= R; the selection depends on the candidate sentences; ASA warps only the chosen patches,
makes a frame depend on other frames when delta != 0, and is vanilla attention at zero offsets.
"""

from __future__ import annotations

import copy

import pytest
import torch
from toymodels import video_text_batch

import readpvla as rp
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.peft.rap import RAPConfig, interpolate_offsets

_batch = video_text_batch  # tests/toymodels.py


@pytest.fixture(params=["frames", "spatiotemporal"])
def backbone(request):
    return VideoCLIP.tiny(temporal=request.param).eval()


def _rap(backbone, **kw):
    return rp.peft.apply(copy.deepcopy(backbone), RAPConfig(**{"top_k": 2, **kw}))


def test_output_equals_backbone_at_initialisation(backbone):
    frames, ids, am = _batch()
    ref = backbone(frames, ids, am)
    out = _rap(backbone)(frames, ids, am)
    assert torch.equal(out.logits_per_text, ref.logits_per_text)  # bit for bit
    assert torch.equal(out.h_v, ref.h_v)
    # a video with fewer frames than T, and padded frames at the end
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    ref = backbone(frames, ids, am, frame_mask=mask)
    out = _rap(backbone)(frames, ids, am, frame_mask=mask)
    assert torch.equal(out.video_embeds, ref.video_embeds)
    short = frames[:, :3]
    assert torch.equal(_rap(backbone)(short, ids, am).video_embeds, backbone(short, ids, am).video_embeds)


def test_every_factor_trains_by_the_second_step_and_the_backbone_never(backbone):
    frames, ids, am = _batch()
    model = _rap(backbone).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("readpvla_rap.") for n in trainable)
    n_layers = len(backbone.vision_model.encoder.layers)
    expected = {f"readpvla_rap.lorm.{i}.{f}" for i in range(n_layers) for f in ("c_a", "c_b", "s_a", "s_b")}
    assert expected | {"readpvla_rap.c_t", "readpvla_rap.s_t", "readpvla_rap.delta",
                       "readpvla_rap.gamma"} == trainable
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    got_grad: set[str] = set()
    for _ in range(2):
        opt.zero_grad()
        model(frames, ids, am, return_loss=True).loss.backward()
        got_grad |= {n for n, p in model.named_parameters()
                     if p.grad is not None and bool(p.grad.abs().sum() > 0)}
        opt.step()
    assert got_grad == trainable
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None and torch.equal(p, before[n]), n


@pytest.mark.parametrize("rank", [1, 3])
def test_modulation_has_rank_at_most_r(backbone, rank):
    model = _rap(backbone, rank=rank)
    with torch.no_grad():
        for p in model.readpvla_rap.parameters():
            p.normal_()
    for lorm in model.readpvla_rap.lorm.values():
        c, s = lorm.scale_shift(4)
        assert c.shape == (4, backbone.vision_width)
        assert int(torch.linalg.matrix_rank(c)) == rank
        assert int(torch.linalg.matrix_rank(s)) == rank


def test_selection_follows_the_candidate_sentences(backbone):
    frames, _, _ = _batch()
    model = _rap(backbone, top_k=2)
    w = torch.nn.functional.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)), dim=-1)
    model.encode_video(frames, texts=w)
    a = model.readpvla_rap.last_selection[0]["patches"].clone()
    model.encode_video(frames, texts=-w)  # scores negated: the top 2 of 4 become the bottom 2
    b = model.readpvla_rap.last_selection[0]["patches"]
    assert a.sum(-1).eq(2).all() and b.sum(-1).eq(2).all()
    assert not (a & b).any()
    # two candidates: each video picks the one its frames match best (Eq. 5), recorded per video
    model.encode_video(frames, texts=torch.cat([w, -w]))
    assert model.readpvla_rap.last_selection[0]["sentence"].shape == (3,)


def test_text_selection_needs_candidates(backbone):
    frames, _, _ = _batch()
    model = _rap(backbone)
    with pytest.raises(ValueError, match="candidate sentences"):
        model.encode_video(frames)
    with pytest.raises(ValueError, match="texts must be"):
        model.encode_video(frames, texts=torch.randn(2, 7))
    with pytest.raises(ValueError, match="NaN"):
        model.encode_video(frames, texts=torch.full((2, 16), float("nan")))
    # random / all selection needs none
    for sel in ("random", "all"):
        _rap(backbone, selection=sel).encode_video(frames)


def test_only_the_chosen_patches_are_warped(backbone):
    model = _rap(backbone)
    rap = model.readpvla_rap
    with torch.no_grad():  # stored in units of T = 4 frames and N = 4 patches
        rap.delta.copy_(torch.tensor([1.0, 0.5, -1.0, 0.3]) / 4)
        rap.gamma.copy_(torch.tensor([0.7, -0.2, 1.0, 2.5]) / 4)
    assert torch.allclose(rap.frame_offsets, torch.tensor([1.0, 0.5, -1.0, 0.3]))
    b, t, n, start = 2, 4, 4, 1
    z = torch.randn(b * t, 1 + n, 8)  # frames layout: (B*T, P, d)
    chosen = torch.zeros(b, t, n, dtype=torch.bool)
    chosen[0, 1, 2] = chosen[1, 3, 0] = chosen[1, 0, 3] = True
    from readpvla.peft.rap import RAPContext

    ctx = RAPContext(b, t, 1 + n, start, torch.tensor([4, 4]), None, lambda h: h)
    out = rap.warp(z, chosen, ctx).reshape(b, t, 1 + n, 8)
    zz = z.reshape(b, t, 1 + n, 8)
    patch_changed = (out[:, :, start:] != zz[:, :, start:]).any(-1)
    assert torch.equal(patch_changed, chosen)
    assert torch.equal(out[:, :, 0], zz[:, :, 0])  # CLS never warped
    # chosen[0, 1, 2]: frame 1 + 0.5 = 1.5, patch 2 + 1.0 = 3 -> mean of frames 1, 2 at patch 3
    expected = 0.5 * (zz[0, 1, start + 3] + zz[0, 2, start + 3])
    assert torch.allclose(out[0, 1, start + 2], expected, atol=1e-6)


def test_interpolation_clamps_and_respects_each_videos_frames():
    z = torch.arange(2 * 4, dtype=torch.float64).reshape(2, 4, 1, 1).expand(2, 4, 3, 2).clone()
    out = interpolate_offsets(z, 1, torch.tensor([0.25, 9.0, -9.0, 0.0], dtype=torch.float64),
                              torch.tensor([4, 2]))
    # video 0 (4 real frames): 0.25, 3 (clamped), 0 (clamped), 3; video 1 (2 real): 4.25, 5, 4, 5
    assert out[0, :, 0, 0].tolist() == [0.25, 3.0, 0.0, 3.0]
    assert out[1, :, 0, 0].tolist() == [4.25, 5.0, 4.0, 5.0]
    # zero offsets read z exactly, and a border offset still has a gradient (pointing inwards)
    off = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    same = interpolate_offsets(z, 1, off, 4)
    assert torch.equal(same, z)
    same[:, 3].sum().backward()
    assert off.grad[3] != 0


def test_nonzero_delta_makes_a_frame_depend_on_other_frames():
    backbone = VideoCLIP.tiny(temporal="frames").eval()
    frames, _, _ = _batch(b=1)
    swapped = frames[:, [0, 2, 1, 3]]  # frame 0 stays, frames 1 and 2 swap
    w = torch.randn(1, 16)
    model = _rap(backbone, selection="all")
    h0 = model.video_tower(frames, texts=w).tokens[:, 0]
    assert torch.equal(h0, model.video_tower(swapped, texts=w).tokens[:, 0])  # delta = 0: per frame
    with torch.no_grad():
        model.readpvla_rap.delta.fill_(1.0 / 4)  # frame t reads frame t + 1 (units of T = 4)
    h1 = model.video_tower(frames, texts=w).tokens[:, 0]
    assert not torch.allclose(h1, model.video_tower(swapped, texts=w).tokens[:, 0])
    assert not torch.equal(model.encode_video(frames, texts=w),
                           model.encode_video(frames.flip(1), texts=w))


def test_zero_offsets_are_vanilla_attention(backbone):
    frames, ids, am = _batch()
    with_asa = _rap(backbone)
    without = _rap(backbone, asa=False)
    control = _rap(backbone, offsets="zero")
    with torch.no_grad():  # the same non-trivial LoRM and text modulation in all three
        for p, q, r in zip(with_asa.readpvla_rap.lorm.parameters(),
                           without.readpvla_rap.lorm.parameters(),
                           control.readpvla_rap.lorm.parameters(), strict=True):
            p.normal_(std=0.3)
            q.copy_(p)
            r.copy_(p)
    ref = without(frames, ids, am).logits_per_text
    assert not torch.equal(ref, backbone(frames, ids, am).logits_per_text)
    assert torch.equal(with_asa(frames, ids, am).logits_per_text, ref)  # gamma = delta = 0
    assert torch.equal(control(frames, ids, am).logits_per_text, ref)
    assert not any("delta" in n or "gamma" in n for n, _ in control.named_parameters())


def test_ablation_switches_build_what_they_say():
    backbone = VideoCLIP.tiny()
    names = lambda m: {n for n, p in m.named_parameters() if p.requires_grad}  # noqa: E731
    assert not any("gamma" in n for n in names(_rap(backbone, warp="temporal")))
    assert not any("delta" in n for n in names(_rap(backbone, warp="spatial")))
    assert not any("lorm" in n for n in names(_rap(backbone, lorm=False)))
    only = _rap(backbone, asa=False, text=False)
    assert all(".lorm." in n for n in names(only))
    light = _rap(backbone, layers=[1])
    assert {n.split(".")[2] for n in names(light) if ".lorm." in n} == {"1"}
    frames, _, _ = _batch()
    light.encode_video(frames, texts=torch.randn(2, 16))
    assert set(light.readpvla_rap.last_selection) == {1}


def test_bad_settings_fail_early_and_leave_the_model_as_it_was():
    backbone = VideoCLIP.tiny()
    for kw, msg in (({"rank": 0}, "rank"), ({"top_k": -1}, "top_k"), ({"selection": "x"}, "selection"),
                    ({"lorm": False, "asa": False, "text": False}, "trains nothing"),
                    ({"layers": []}, "layers"), ({"layers": [0, 0]}, "repeated"),
                    ({"warp": "both!"}, "warp"), ({"offsets": 1}, "offsets")):
        with pytest.raises(ValueError, match=msg):
            RAPConfig(**kw)
    state = {n: p.clone() for n, p in backbone.state_dict().items()}
    for kw, msg in (({"layers": [5]}, "do not exist"), ({"top_k": 9}, "exceeds")):
        with pytest.raises(ValueError, match=msg):
            rp.peft.apply(backbone, RAPConfig(**kw))
        assert not hasattr(backbone, "readpvla_rap") and not hasattr(backbone, "readpvla_config")
        assert all(p.requires_grad for p in backbone.vision_model.parameters())
    assert all(torch.equal(v, state[n]) for n, v in backbone.state_dict().items())
    model = _rap(backbone)
    frames = torch.randn(1, 5, 3, 16, 16)
    with pytest.raises(ValueError, match="exceed"):
        model.encode_video(frames, texts=torch.randn(1, 16))
    holes = torch.tensor([[True, False, True, True]])
    with pytest.raises(ValueError, match="real frames first"):
        model.encode_video(frames[:, :4], holes, texts=torch.randn(1, 16))
    with pytest.raises(ValueError, match="readpvla_rap_slots"):
        rp.peft.apply(torch.nn.Sequential(torch.nn.Linear(2, 2)), RAPConfig())


def test_save_and_load_round_trip(tmp_path, backbone):
    frames, ids, am = _batch()
    model = _rap(backbone, layers=[0, 1], warp="temporal")
    with torch.no_grad():
        for p in model.readpvla_rap.parameters():
            p.normal_(std=0.2)
    rp.peft.save_adapter(model, tmp_path / "rap")
    loaded = rp.peft.load_adapter(copy.deepcopy(backbone), tmp_path / "rap")
    assert loaded.readpvla_config == model.readpvla_config
    assert torch.equal(loaded(frames, ids, am).logits_per_text, model(frames, ids, am).logits_per_text)
    assert str(rp.peft.count_parameters(loaded)) == str(rp.peft.count_parameters(model))
