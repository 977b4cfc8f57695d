"""Datasets for readpvla.

- :mod:`readpvla.data.qvh`            the QVHighlights / Moment-DETR format: JSONL annotations plus
  per-video and per-query ``.npz`` features; :func:`load_tlg`, :func:`collate_tlg`.
- :mod:`readpvla.data.synthetic_tlg`  a seeded synthetic temporal-language-grounding benchmark in
  that format (source split + YouTube-Highlights-like target domains);
  :func:`generate_synthetic_tlg`. Imported on first use, so that
  ``python -m readpvla.data.synthetic_tlg`` runs cleanly.
- :mod:`readpvla.data.video`      frames and video files: :func:`read_frames` (``.npz`` or PyAV,
  uniform sampling, resizing), :func:`write_mp4`, :func:`clip_normalize`.
- :mod:`readpvla.data.videotext`  MSR-VTT-style retrieval JSON and recognition class / label
  lists: :func:`load_retrieval`, :func:`load_recognition`, base/novel, zero-shot, descriptions.
- :mod:`readpvla.data.rendered`   the seeded rendered-video benchmark in those formats;
  :func:`ensure_rendered` (= ``rendered.ensure``, generate into the cache on first use) and
  :func:`generate_rendered` (= ``rendered.generate``). These three are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from readpvla.data.qvh import (
    CLIP_LEN,
    LATENT_FIELDS,
    TLGBatch,
    TLGDataset,
    TLGSample,
    add_latent_fields,
    collate_tlg,
    load_features,
    load_tlg,
    read_annotations,
    read_latent_fields,
    save_npz,
    write_annotations,
)

_LAZY = {"DOMAINS": "synthetic_tlg", "SyntheticTLGConfig": "synthetic_tlg",
         "generate_synthetic_tlg": "synthetic_tlg",
         **{name: "how2" for name in ("How2Collator", "How2Config", "How2Sample", "generate_split",
                                      "load_split", "write_split", "load_tokenizer",
                                      "train_tokenizer", "build_data_samples")},
         **{name: "video" for name in ("CLIP_MEAN", "CLIP_STD", "MissingVideoError",
                                       "clip_normalize", "read_frames", "resize_frames",
                                       "sample_indices", "write_mp4")},
         **{name: "videotext" for name in ("RecognitionData", "RetrievalData", "find_video",
                                           "load_class_split", "load_descriptions",
                                           "load_recognition", "load_retrieval", "load_zeroshot",
                                           "read_classes", "read_labels")},
         # "module:attribute" where the package-level name differs from the module's
         "RenderConfig": "rendered", "generate_rendered": "rendered:generate",
         "ensure_rendered": "rendered:ensure"}

__all__ = [
    # QVHighlights format
    "CLIP_LEN",
    "LATENT_FIELDS",
    "TLGBatch",
    "TLGDataset",
    "TLGSample",
    "collate_tlg",
    "add_latent_fields",
    "load_features",
    "load_tlg",
    "read_annotations",
    "read_latent_fields",
    "save_npz",
    "write_annotations",
    # synthetic benchmark
    "DOMAINS",
    "SyntheticTLGConfig",
    "generate_synthetic_tlg",
    # synthetic How2-like summarisation data
    "How2Collator",
    "How2Config",
    "How2Sample",
    "build_data_samples",
    "generate_split",
    "load_split",
    "load_tokenizer",
    "train_tokenizer",
    "write_split",
    # frames and video files
    "CLIP_MEAN",
    "CLIP_STD",
    "MissingVideoError",
    "clip_normalize",
    "read_frames",
    "resize_frames",
    "sample_indices",
    "write_mp4",
    # retrieval / recognition formats
    "RecognitionData",
    "RetrievalData",
    "find_video",
    "load_class_split",
    "load_descriptions",
    "load_recognition",
    "load_retrieval",
    "load_zeroshot",
    "read_classes",
    "read_labels",
    # rendered video benchmark
    "RenderConfig",
    "ensure_rendered",
    "generate_rendered",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        value = getattr(importlib.import_module(f"readpvla.data.{module}"), attr or name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'readpvla.data' has no attribute {name!r}")
