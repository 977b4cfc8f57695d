"""The frozen models adapters go into, and the offline pretrained text encoder.

- :mod:`~readpvla.backbones.text_encoder`: all-MiniLM-L6-v2 token / sentence features (offline).
- :mod:`~readpvla.backbones.vg`: VG-BART / VG-T5, vision-guided wrappers over ``transformers``.
- :mod:`~readpvla.backbones.tlg`: the cross-modal TLG transformer of the paper's Section 3.1.
- :mod:`~readpvla.backbones.moment_detr`: a Moment-DETR-style joint encoder + moment decoder.
- :mod:`~readpvla.backbones.video_clip`: VideoCLIP, a CLIP4Clip / ViCLIP-style video-text dual
  encoder over ``transformers``' CLIP classes (frame bag or joint space-time attention).
- :mod:`~readpvla.backbones.layers`: the layers they share (multi-head attention, FFN, sine positions).
- :mod:`~readpvla.backbones.checkpoint`: backbone checkpoints (safetensors + JSON).

Submodules load on first use, so ``import readpvla.backbones`` does not import ``transformers``.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("text_encoder", "vg", "tlg", "moment_detr", "video_clip", "layers", "checkpoint")
_NAMES = {
    "TextEncoder": "text_encoder",
    "get_text_encoder": "text_encoder",
    "encode_tokens": "text_encoder",
    "encode_sentences": "text_encoder",
    "VGBart": "vg",
    "VGT5": "vg",
    "VisionGuidedSeq2Seq": "vg",
    "VGOutput": "vg",
    "load_vg": "vg",
    "tokenizer_fingerprint": "vg",
    "CrossModalTLG": "tlg",
    "CrossModalConfig": "tlg",
    "MomentDETR": "moment_detr",
    "VideoCLIP": "video_clip",
    "VideoCLIPConfig": "video_clip",
    "VideoCLIPOutput": "video_clip",
    "TowerOutput": "video_clip",
    "contrastive_loss": "video_clip",
    "load_backbone": "checkpoint",
    "save_backbone": "checkpoint",
}

__all__ = [*_SUBMODULES, *_NAMES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"readpvla.backbones.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(f"readpvla.backbones.{_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module 'readpvla.backbones' has no attribute {name!r}")
    globals()[name] = value
    return value
