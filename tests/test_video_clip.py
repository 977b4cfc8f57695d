"""VideoCLIP: CLIP weights by name, the two temporal variants, READ along frames, every PEFT
method, checkpoints with the external (package) text tower. Tiny random configs, no download."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertModel,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    VisionTextDualEncoderConfig,
    VisionTextDualEncoderModel,
)

import readpvla as rp
from readpvla.backbones.checkpoint import load_backbone, save_backbone
from readpvla.backbones.video_clip import VideoCLIP, VideoCLIPConfig, contrastive_loss
from readpvla.peft import READConfig, READLayer, TokenLayout, token_layout
from readpvla.peft.safeio import CONFIG_COPY_KEY

TEMPORAL = ["frames", "spatiotemporal"]
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 16, "patch_size": 8}
CLIP_TEXT = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": 0,
             "bos_token_id": 62, "eos_token_id": 63}


# -- inputs ----------------------------------------------------------------------------------


def _frames(b=3, t=4, seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, size, size, generator=g)


def _ids(b=3, lengths=(7, 5, 3), seed=0, width=7):
    """CLIP-style ids: 62 start, 63 end, 0 padding (right)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 62, (b, width), generator=g)
    mask = torch.zeros(b, width, dtype=torch.long)
    for i, n in enumerate(lengths[:b]):
        ids[i, 0], ids[i, n - 1], ids[i, n:] = 62, 63, 0
        mask[i, :n] = 1
    return ids, mask


def _tiny(temporal="frames", text="clip", seed=0):
    return VideoCLIP.tiny(temporal=temporal, text=text, seed=seed).eval()


def _randomise_read(model, std=0.5, seed=0):
    """READ starts as the identity (W_up = 0); give W_up weights so its recurrence shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, READLayer):
                m.w_up.weight.copy_(torch.randn(m.w_up.weight.shape, generator=g) * std)


# -- transformers checkpoints loaded by name -------------------------------------------------


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=CLIP_TEXT, vision_config=VISION, projection_dim=16,
                     logit_scale_init_value=2.0)
    path = tmp_path_factory.mktemp("clip")
    CLIPModel(cfg).eval().save_pretrained(path)
    return path


def test_from_pretrained_gives_clip_model_embeddings_for_one_frame(clip_dir):
    clip = CLIPModel.from_pretrained(clip_dir).eval()
    model = VideoCLIP.from_pretrained(clip_dir)
    images = _frames(3, 1)[:, 0]
    ids, mask = _ids()
    with torch.no_grad():
        ref = clip(input_ids=ids, pixel_values=images, attention_mask=mask)
        out = model(images[:, None], ids, mask)
    torch.testing.assert_close(out.video_embeds, ref.image_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.text_embeds, ref.text_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.logits_per_text, ref.logits_per_text, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits_per_video, ref.logits_per_image, atol=1e-5, rtol=0)
    assert model.config.text_pooling == "eos" and model.config.tokenizer == str(clip_dir)
    # every CLIPModel parameter has its namesake in VideoCLIP (+ the temporal embedding)
    assert set(model.state_dict()) == set(clip.state_dict()) | {"temporal_embedding"}


def test_spatiotemporal_with_zero_temporal_embedding_and_one_frame_equals_frames(clip_dir):
    frames_model = VideoCLIP.from_pretrained(clip_dir, temporal="frames")
    st_model = VideoCLIP.from_pretrained(clip_dir, temporal="spatiotemporal", num_frames=4)
    assert not st_model.temporal_embedding.any()
    x = _frames(3, 1)
    with torch.no_grad():
        torch.testing.assert_close(st_model.encode_video(x), frames_model.encode_video(x),
                                   atol=1e-6, rtol=0)


def test_from_pretrained_loads_a_vision_text_dual_encoder_with_bert(tmp_path):
    torch.manual_seed(0)
    bert = BertConfig(vocab_size=50, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32)
    cfg = VisionTextDualEncoderConfig.from_vision_text_configs(
        CLIPVisionConfig(**VISION), bert, projection_dim=16)
    VisionTextDualEncoderModel(cfg).eval().save_pretrained(tmp_path)
    ref_model = VisionTextDualEncoderModel.from_pretrained(tmp_path).eval()
    model = VideoCLIP.from_pretrained(tmp_path)
    images = _frames(2, 1)[:, 0]
    ids = torch.randint(1, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with torch.no_grad():
        ref = ref_model(input_ids=ids, pixel_values=images, attention_mask=mask)
        out = model(images[:, None], ids, mask)
    assert model.config.text_pooling == "pooler"
    torch.testing.assert_close(out.video_embeds, ref.image_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.text_embeds, ref.text_embeds, atol=1e-6, rtol=0)
    # the recipes know the dual encoder itself too
    assert rp.peft.find_modules(ref_model, "proj") == ["visual_projection", "text_projection"]
    assert len(rp.peft.find_modules(ref_model, "ffn")) == 4


def test_from_pretrained_refuses_other_models(tmp_path):
    BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=8)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert' model.*'clip'"):
        VideoCLIP.from_pretrained(tmp_path)


# -- the two temporal variants ---------------------------------------------------------------


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_forward_shapes_loss_and_hidden_states(temporal):
    model = _tiny(temporal)
    ids, mask = _ids()
    out = model(_frames(3, 4), ids, mask, output_hidden_states=True, return_loss=True)
    assert out.logits_per_text.shape == (3, 3) and out.logits_per_video.shape == (3, 3)
    assert out.video_embeds.shape == out.text_embeds.shape == (3, 16)
    torch.testing.assert_close(out.video_embeds.norm(dim=-1), torch.ones(3))
    assert out.h_v.shape == (3, 4, 16) and out.h_l.shape == (3, 7, 16)
    assert out.mask_v.all() and torch.equal(out.mask_l, mask.bool())
    assert len(out.h_v_layers) == len(out.h_l_layers) == 2
    assert out.h_v_layers[0].shape == (3, 4, 32) and out.h_l_layers[0].shape == (3, 7, 32)
    torch.testing.assert_close(out.loss, contrastive_loss(out.logits_per_text))
    assert out.logits_per_text.max() <= model.logit_scale.exp() + 1e-4
    video, text = model.video_tower(_frames(3, 4), hidden=True), model.text_tower(ids, mask)
    assert torch.equal(video.embeds, out.video_embeds) and torch.equal(text.tokens, out.h_l)
    assert torch.equal(video.layers[1], out.h_v_layers[1]) and text.layers == ()
    assert rp.backbones.VideoCLIP is VideoCLIP


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_without_temporal_embedding_both_variants_are_a_bag_of_frames(temporal):
    # frames: each frame alone, then a mean; spatiotemporal with a zero temporal embedding:
    # attention is permutation-equivariant, so reordering frames only reorders the CLS states
    model = _tiny(temporal)
    x = _frames(2, 4)
    rev = x.flip(1)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(rev), model.encode_video(x), atol=1e-6, rtol=0)
        if temporal == "spatiotemporal":  # a temporal embedding makes order visible
            model.temporal_embedding.normal_(std=1.0)
            diff = (model.encode_video(rev) - model.encode_video(x)).abs().max()
            assert diff > 1e-3


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_padded_frames_change_nothing(temporal):
    model = _tiny(temporal)
    with torch.no_grad():
        model.temporal_embedding.normal_(std=1.0)
    x = _frames(2, 4)
    fmask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    noisy = x.clone()
    noisy[1, 2:] = 100.0  # garbage in the padded frames
    with torch.no_grad():
        full = model.encode_video(noisy, fmask)
        alone = model.encode_video(x[1:, :2])
        torch.testing.assert_close(full[1:], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(full[:1], model.encode_video(x[:1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("text", ["clip", "minilm"])
def test_text_padding_changes_nothing(text):
    model = _tiny(text=text)
    if text == "clip":
        ids, mask = _ids(2, (7, 4))
        short_ids, short_mask = ids[1:, :4], mask[1:, :4]
    else:
        enc = model.tokenize(["a dog runs across the wide green field", "a cat sleeps"])
        ids, mask = enc["input_ids"], enc["attention_mask"]
        n = int(mask[1].sum())
        short_ids, short_mask = ids[1:, :n], mask[1:, :n]
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(ids, mask)[1:],
                                   model.encode_text(short_ids, short_mask), atol=1e-5, rtol=0)


def test_minilm_text_side_is_the_sentence_transformers_embedding_projected():
    from readpvla.backbones.text_encoder import encode_sentences

    model = VideoCLIP(VideoCLIPConfig(vision=VISION, text="minilm", projection_dim=384)).eval()
    with torch.no_grad():
        model.text_projection.weight.copy_(torch.eye(384))  # see the pooled MiniLM itself
    texts = ["a person opens a door", "two dogs play"]
    with torch.no_grad():
        text = model.encode_text(**model.tokenize(texts))
    torch.testing.assert_close(text, torch.from_numpy(encode_sentences(texts)), atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in model.text_model.parameters())  # frozen


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_input_errors_are_named(temporal):
    model = _tiny(temporal)
    ids, mask = _ids()
    with pytest.raises(ValueError, match=r"frames must be \[B, T, 3, 16, 16\]"):
        model(_frames(3, 4, size=8), ids, mask)
    with pytest.raises(ValueError, match="frame_mask needs at least one True"):
        model(_frames(3, 4), ids, mask, frame_mask=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="outside"):
        model(_frames(3, 4), ids + 64, mask)
    if temporal == "spatiotemporal":
        with pytest.raises(ValueError, match="exceed num_frames=4"):
            model.encode_video(_frames(1, 5))
    else:
        assert model.encode_video(_frames(1, 5)).shape == (1, 16)  # a bag of any size
    no_end = ids.clone()
    no_end[no_end == 63] = 5
    with pytest.raises(ValueError, match="end token"):
        model.encode_text(no_end, mask)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"temporal": "joint"}, "temporal must be one of"),
    ({"num_frames": 0}, "num_frames must be a positive integer"),
    ({"projection_dim": True}, "projection_dim"),
    ({"text_pooling": "max"}, "text_pooling must be one of"),
    ({"text": ""}, "text must be"),
    ({"vision": "clip"}, "vision must be a dict"),
])
def test_bad_configs_raise(kw, msg):
    with pytest.raises(ValueError, match=msg):
        VideoCLIPConfig(**kw)


def test_eos_pooling_needs_a_clip_text_tower():
    with pytest.raises(ValueError, match="'eos' is for CLIP text towers"):
        VideoCLIP(VideoCLIPConfig(vision=VISION, text="minilm", text_pooling="eos"))


def test_tokenizer_is_required_for_a_text_tower_from_a_dict():
    model = _tiny()
    with pytest.raises(ValueError, match="no tokenizer is known"):
        model.tokenize(["a"])


# -- READ along frames: the grid layout ------------------------------------------------------


def test_grid_layout_rearranges_frames_into_time_major_rows():
    b, t, p = 2, 3, 4
    x = torch.arange(b * t * p).float()  # value = b*T*P + t*P + p
    layout = TokenLayout(grid=(t, p))
    for z in (x.view(b * t, p, 1), x.view(b, t * p, 1)):  # frames in the batch / token axis
        rows = layout.to_time_major(z).squeeze(-1)  # (B*P, T)
        expected = torch.tensor([[bb * t * p + tt * p + pp for tt in range(t)]
                                 for bb in range(b) for pp in range(p)]).float()
        assert torch.equal(rows, expected)
        assert torch.equal(layout.from_time_major(layout.to_time_major(z), tuple(z.shape)), z)


def test_grid_layout_errors():
    with pytest.raises(ValueError, match="grid must be"):
        TokenLayout(grid=(0, 3))
    with pytest.raises(ValueError, match="not mask"):
        TokenLayout(torch.ones(2, 3, dtype=torch.bool), grid=(3, 1))
    with pytest.raises(ValueError, match="frame_mask needs grid"):
        TokenLayout(frame_mask=torch.ones(2, 3, dtype=torch.bool))
    layer = READLayer(torch.nn.Linear(6, 6), READConfig(bottleneck=3))
    with token_layout(layer, grid=(3, 4)), pytest.raises(ValueError, match="grid of T=3 frames"):
        layer(torch.randn(2, 5, 6))  # neither [B*3, 4, d] nor [B, 12, d]


@pytest.mark.parametrize("frames_in", ["batch", "tokens"])
def test_read_recurs_along_frames_per_video_and_position(frames_in):
    torch.manual_seed(0)
    b, t, p, d = 2, 4, 3, 6
    layer = READLayer(torch.nn.Linear(d, d), READConfig(bottleneck=3))
    _randomise_read(layer)
    shape = (b * t, p, d) if frames_in == "batch" else (b, t * p, d)
    grid = lambda y: y.reshape(b, t, p, d)  # noqa: E731  (video, frame, position, d)
    x = torch.randn(shape)
    x2 = grid(x.clone())
    x2[1, 1, 2] += 1.0  # one token: video 1, frame 1, position 2
    x2 = x2.reshape(shape)
    with torch.no_grad(), token_layout(layer, grid=(t, p)):
        changed = (grid(layer(x2)) - grid(layer(x))).abs().amax(-1) > 0  # (B, T, P)
    expected = torch.zeros(b, t, p, dtype=torch.bool)
    expected[1, 1:, 2] = True  # the same position of the same video, this frame and later ones
    assert torch.equal(changed, expected)
    # a padded frame: adapter output 0 there (O~ = O), and it feeds no real frame
    fmask = torch.tensor([[True] * t, [True, False, True, True]])
    with torch.no_grad(), token_layout(layer, grid=(t, p), frame_mask=fmask):
        out, out2 = grid(layer(x)), grid(layer(x2))
    torch.testing.assert_close(out[1, 1], grid(layer.base_layer(x))[1, 1])
    assert torch.equal(out2[:, [0, 2, 3]], out[:, [0, 2, 3]])
    # the recurrence skips the padded frame: video 1 = its frames 0, 2, 3 on their own
    keep = grid(x)[1:, [0, 2, 3]]
    with torch.no_grad(), token_layout(layer, grid=(3, p)):
        alone = layer(keep.reshape(3, p, d) if frames_in == "batch" else keep.reshape(1, 3 * p, d))
    torch.testing.assert_close(alone.reshape(1, 3, p, d), out[1:, [0, 2, 3]])


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_read_makes_frame_order_matter_and_keeps_videos_independent(temporal):
    model = rp.peft.apply(_tiny(temporal), READConfig(bottleneck=4))
    _randomise_read(model)
    x = _frames(3, 4)
    with torch.no_grad():
        v = model.encode_video(x)
        # order matters now (the bare frames backbone is a bag of frames, see above)
        assert (model.encode_video(x.flip(1)) - v).abs().max() > 1e-3
        # changing video 2 leaves videos 0 and 1 as they were
        y = x.clone()
        y[2] = torch.randn_like(y[2])
        torch.testing.assert_close(model.encode_video(y)[:2], v[:2], atol=1e-6, rtol=0)
        # and one video alone gives the same embedding as in the batch
        torch.testing.assert_close(model.encode_video(x[1:2]), v[1:2], atol=1e-6, rtol=0)


def test_read_on_the_text_side_recurs_along_words_skipping_padding():
    model = rp.peft.apply(_tiny(text="minilm"), READConfig(bottleneck=4))
    _randomise_read(model, std=0.2)
    enc = model.tokenize(["a dog runs across the wide green field", "a cat sleeps"])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    n = int(mask[1].sum())
    with torch.no_grad():
        both = model.encode_text(ids, mask)
        torch.testing.assert_close(both[1:], model.encode_text(ids[1:, :n], mask[1:, :n]),
                                   atol=1e-5, rtol=0)
        swapped = ids.clone()
        swapped[0, [2, 3]] = swapped[0, [3, 2]]  # word order matters to READ's recurrence
        assert (model.encode_text(swapped, mask)[0] - both[0]).abs().max() > 1e-4


# -- every PEFT method -----------------------------------------------------------------------


def test_recipes_find_both_towers():
    model = _tiny()
    assert rp.peft.find_modules(model, "ffn") == [
        *(f"vision_model.encoder.layers.{i}.mlp.fc2" for i in range(2)),
        *(f"text_model.encoder.layers.{i}.mlp.fc2" for i in range(2))]
    assert rp.peft.find_modules(model, "attn")[0] == "vision_model.encoder.layers.0.self_attn.out_proj"
    assert rp.peft.find_modules(model, "proj") == ["visual_projection", "text_projection"]
    minilm = _tiny(text="minilm")
    ffn = rp.peft.find_modules(minilm, "ffn")
    assert ffn[2:] == [f"text_model.encoder.layer.{i}.output.dense" for i in range(6)]
    assert sorted(rp.peft.block_lists(minilm)) == ["text_model.encoder.layer",
                                                   "vision_model.encoder.layers"]
    with pytest.raises(ValueError, match="text_projection outputs one vector per item"):
        rp.peft.apply(_tiny(), READConfig(target=r"(text_projection|.*fc2)"))


METHODS = [
    READConfig(bottleneck=4),
    rp.peft.AdapterConfig(bottleneck=4),
    rp.peft.LoRAConfig(r=2),
    rp.peft.BitFitConfig(),
    rp.peft.PromptConfig(n_tokens=2),
    rp.peft.PartialConfig(),
    rp.peft.ProjConfig(),
]


@pytest.mark.parametrize("temporal", TEMPORAL)
@pytest.mark.parametrize("cfg", METHODS, ids=[c.method for c in METHODS])
def test_every_method_trains_only_its_parameters_and_round_trips(cfg, temporal, tmp_path):
    backbone = _tiny(temporal)
    with torch.no_grad():
        backbone.temporal_embedding.normal_(std=0.5)
    model = rp.peft.apply(copy.deepcopy(backbone), copy.deepcopy(cfg))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids, mask = _ids()
    x, fmask = _frames(3, 4), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(x, ids, mask, frame_mask=fmask, return_loss=True).loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable, sorted(changed - trainable)
    model.eval()
    rp.peft.save_adapter(model, tmp_path / "adapter")
    loaded = rp.peft.load_adapter(copy.deepcopy(backbone), tmp_path / "adapter").eval()
    with torch.no_grad():
        a = model(x, ids, mask, frame_mask=fmask, output_hidden_states=True)
        b = loaded(x, ids, mask, frame_mask=fmask, output_hidden_states=True)
    assert torch.equal(a.logits_per_text, b.logits_per_text)
    assert a.h_v.shape == (3, 4, 16) and a.h_l.shape == (3, 7, 16)  # prompts left out
    assert a.h_v_layers[0].shape == (3, 4, 32) and a.h_l_layers[0].shape == (3, 7, 32)


def test_partial_trains_the_last_block_of_each_tower_and_prompts_sit_in_both():
    model = rp.peft.apply(_tiny(), rp.peft.PartialConfig())
    last = ("vision_model.encoder.layers.1.", "text_model.encoder.layers.1.")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.startswith(last) for n in names)
    assert all(any(n.startswith(block) for n in names) for block in last)
    model = rp.peft.apply(_tiny(), rp.peft.PromptConfig(n_tokens=3))
    assert {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad} == {
        "readpvla_prompts.video": (3, 32), "readpvla_prompts.text": (3, 32)}


def test_read_on_the_offline_model_trains_and_round_trips(tmp_path):
    backbone = _tiny(text="minilm")
    model = rp.peft.apply(copy.deepcopy(backbone), READConfig(bottleneck=4))
    assert sum(isinstance(m, READLayer) for m in model.modules()) == 2 + 6
    enc = model.tokenize(["a dog runs", "a cat sleeps on the mat", "rain"])
    x = _frames(3, 4)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    model.train()
    for _ in range(2):  # step 0 moves W_up off zero; then every READ parameter has a gradient
        opt.zero_grad()
        model(x, enc["input_ids"], enc["attention_mask"], return_loss=True).loss.backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    model.eval()
    rp.peft.save_adapter(model, tmp_path / "a")
    loaded = rp.peft.load_adapter(copy.deepcopy(backbone), tmp_path / "a").eval()
    with torch.no_grad():
        assert torch.equal(loaded(x, **enc).logits_per_text, model(x, **enc).logits_per_text)


# -- checkpoints -----------------------------------------------------------------------------


def _edit_info(path: Path, fn) -> None:
    """Rewrite config.json and the copy of it inside the weights (a consistent tampering)."""
    info = fn(json.loads((path / "config.json").read_text()))
    text = json.dumps(info, indent=2) + "\n"
    (path / "config.json").write_text(text)
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(state, str(path / "model.safetensors"), metadata={**meta, CONFIG_COPY_KEY: text})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.parametrize("text", ["clip", "minilm"])
def test_backbone_checkpoint_round_trip(text, tmp_path):
    model = _tiny("spatiotemporal", text=text)
    with torch.no_grad():
        model.temporal_embedding.normal_()
    path = save_backbone(model, tmp_path / "ck", meta={"trained_on": "nothing"})
    keys = set(_weights(path))
    assert keys == {k for k in model.state_dict() if text == "clip" or not k.startswith("text_model.")}
    info = json.loads((path / "config.json").read_text())
    assert ("external" in info) == (text == "minilm")
    loaded = load_backbone(path, expected_class="VideoCLIP")
    ids, mask = _ids() if text == "clip" else model.tokenize(["a", "b c", "d e f"]).values()
    with torch.no_grad():
        assert torch.equal(loaded(_frames(3, 4), ids, mask).logits_per_text,
                           model(_frames(3, 4), ids, mask).logits_per_text)


def test_offline_checkpoint_stores_no_text_tower_and_is_small(tmp_path):
    model = VideoCLIP.offline(temporal="frames")
    assert model.config.vision["image_size"] == 32 and model.config.text == "minilm"
    path = save_backbone(model, tmp_path / "ck")
    size = (path / "model.safetensors").stat().st_size
    assert size < 6_000_000, size  # the 90 MB MiniLM comes from its package
    assert not any(k.startswith("text_model.") for k in _weights(path))
    loaded = load_backbone(path)
    assert torch.equal(loaded.text_model.embeddings.word_embeddings.weight,
                       model.text_model.embeddings.word_embeddings.weight)


def test_tampered_offline_checkpoints_are_refused(tmp_path):
    model = _tiny(text="minilm")
    path = save_backbone(model, tmp_path / "ck")
    fresh = lambda: save_backbone(model, tmp_path / "ck")  # noqa: E731
    # a text-tower tensor smuggled into the weights: not a key the checkpoint may hold
    name = "text_model.embeddings.word_embeddings.weight"
    state = _weights(path)
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        meta = f.metadata()
    save_file({**state, name: torch.zeros(30522, 384)}, str(path / "model.safetensors"), meta)
    with pytest.raises(ValueError, match=re.escape(f"unexpected ['{name}']")):
        load_backbone(path)
    # a stored tensor removed
    fresh()
    save_file({k: v for k, v in _weights(path).items() if k != "logit_scale"},
              str(path / "model.safetensors"), meta)
    with pytest.raises(ValueError, match=r"missing \['logit_scale'\]"):
        load_backbone(path)
    # the external record dropped: the config says text_model is external, the file does not
    fresh()
    _edit_info(path, lambda i: {k: v for k, v in i.items() if k != "external"})
    with pytest.raises(ValueError, match=r"records external submodules \[\] .*\['text_model'\]"):
        load_backbone(path)
    # another source, or other source weights (another package version)
    fresh()
    _edit_info(path, lambda i: {**i, "external": {"text_model": {**i["external"]["text_model"],
                                                                 "source": "some-other-bert"}}})
    with pytest.raises(ValueError, match="saved from 'some-other-bert'"):
        load_backbone(path)
    fresh()
    _edit_info(path, lambda i: {**i, "external": {"text_model": {**i["external"]["text_model"],
                                                                 "sha256": "0" * 64}}})
    with pytest.raises(ValueError, match="fingerprint was 000000000000"):
        load_backbone(path)
    # a text tower whose weights were changed would be lost: refused at save time
    with torch.no_grad():
        model.text_model.encoder.layer[0].output.dense.bias.add_(1.0)
    with pytest.raises(ValueError, match="differ from its source.*would be lost"):
        save_backbone(model, tmp_path / "ck2")
    assert not (tmp_path / "ck2" / "model.safetensors").exists()


@pytest.mark.parametrize("kind", ["bert", "clip"])
def test_text_tower_from_a_folder_is_external_too(kind, clip_dir, tmp_path):
    torch.manual_seed(0)
    if kind == "bert":
        folder = tmp_path / "bert"
        BertModel(BertConfig(vocab_size=40, hidden_size=24, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=32)).save_pretrained(folder)
        ids, mask = torch.randint(1, 40, (2, 5)), None
    else:  # the text tower of a CLIPModel folder
        folder = clip_dir
        ids, mask = _ids(2)
    model = VideoCLIP(VideoCLIPConfig(vision=VISION, text=str(folder), projection_dim=8)).eval()
    assert model.text_pooling == ("mean" if kind == "bert" else "eos")
    assert model.readpvla_external_weights()["text_model"]["source"] == str(folder)
    assert not any(p.requires_grad for p in model.text_model.parameters())
    if kind == "clip":
        clip = CLIPModel.from_pretrained(clip_dir)
        assert torch.equal(model.text_model.encoder.layers[1].mlp.fc2.weight,
                           clip.text_model.encoder.layers[1].mlp.fc2.weight)
    path = save_backbone(model, tmp_path / "ck")
    assert not any(k.startswith("text_model.") for k in _weights(path))
    loaded = load_backbone(path)
    with torch.no_grad():
        assert torch.equal(loaded(_frames(2, 2), ids, mask).logits_per_text,
                           model(_frames(2, 2), ids, mask).logits_per_text)


def test_a_frames_checkpoint_loads_as_spatiotemporal(tmp_path):
    path = save_backbone(_tiny("frames"), tmp_path / "ck")
    _edit_info(path, lambda i: {**i, "config": {**i["config"], "temporal": "spatiotemporal"}})
    model = load_backbone(path)
    assert model.temporal == "spatiotemporal"
