"""Datasets for readpvla.

- :mod:`readpvla.data.qvh`            the QVHighlights / Moment-DETR format: JSONL annotations plus
  per-video and per-query ``.npz`` features; :func:`load_tlg`, :func:`collate_tlg`.
- :mod:`readpvla.data.synthetic_tlg`  a seeded synthetic temporal-language-grounding benchmark in
  that format (source split + YouTube-Highlights-like target domains);
  :func:`generate_synthetic_tlg`. Imported on first use, so that
  ``python -m readpvla.data.synthetic_tlg`` runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import Any

from readpvla.data.qvh import (
    CLIP_LEN,
    TLGBatch,
    TLGDataset,
    TLGSample,
    collate_tlg,
    load_features,
    load_tlg,
    read_annotations,
    save_npz,
    write_annotations,
)

_LAZY = {"DOMAINS": "synthetic_tlg", "SyntheticTLGConfig": "synthetic_tlg",
         "generate_synthetic_tlg": "synthetic_tlg",
         **{name: "how2" for name in ("How2Collator", "How2Config", "How2Sample", "generate_split",
                                      "load_split", "write_split", "load_tokenizer",
                                      "train_tokenizer", "build_data_samples")}}

__all__ = [
    # QVHighlights format
    "CLIP_LEN",
    "TLGBatch",
    "TLGDataset",
    "TLGSample",
    "collate_tlg",
    "load_features",
    "load_tlg",
    "read_annotations",
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
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"readpvla.data.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'readpvla.data' has no attribute {name!r}")
