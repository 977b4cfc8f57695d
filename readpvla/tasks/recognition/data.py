"""Recognition data: the rendered benchmark's class list, label files, few-shot training sets,
base/novel and zero-shot class splits, class prompts.

A class is recognised by video-text similarity to its prompt ("a video of {class}", CLIP-style).
Splits: ``{domain}_train`` / ``{domain}_test`` per target domain (``flat``, ``noisy``, ``dark``;
24 classes, 9 of them order-only pairs), K-shot subsets ``fewshot/{domain}_K{K}_seed{s}`` of the
training split (K = 2, 4, 8, 16; seeds 0-2), base/novel splits (3 seeds; each order-only pair on
one side), and the zero-shot classes the source split never shows. Test splits and class files
ship in ``data_samples/rendered``; the rest is generated into the cache on first use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from readpvla.data import rendered
from readpvla.data.videotext import RecognitionData, load_recognition

from ..retrieval.data import frames_tensor

__all__ = ["DOMAINS", "PAIRS", "TEMPLATE", "TrainBatches", "base_novel", "data_root", "dataset",
           "dataset_of", "holdout", "prompts", "zeroshot_classes"]

DOMAINS = tuple(rendered.DOMAINS)
#: the prompt a class name goes into (CLIP's zero-shot habit)
TEMPLATE = "a video of {}"
#: each order-only class and its reverse partner (the same frames played backwards)
PAIRS: dict[str, str] = {a.name: rendered.action(a.reverse).name
                         for a in rendered.ACTIONS if getattr(a, "order_only", False)}


def data_root(split: str | None = None, root: str | Path | None = None) -> Path:
    """Where ``split`` lives: ``root`` if given; the shipped ``data_samples/rendered`` if it holds
    the split's label file; else the generated cache (:func:`rendered.ensure`)."""
    if root is not None:
        return Path(root)
    shipped = rendered.shipped_dir()
    if split is not None and (shipped / "recognition" / f"{split}.txt").is_file():
        return shipped
    return rendered.ensure(quiet=True)


_DATA: dict[tuple[str, str], RecognitionData] = {}


def dataset(split: str, root: str | Path | None = None) -> RecognitionData:
    """``load_recognition`` of ``split`` (frames cached in memory), loaded once per process."""
    where = data_root(split, root)
    key = (str(where), split)
    if key not in _DATA:
        _DATA[key] = load_recognition(where, split)
    return _DATA[key]


def dataset_of(split: str, classes: Sequence[str] | None = None,
               root: str | Path | None = None) -> RecognitionData:
    """``dataset(split)``, restricted to ``classes`` (relabelled in their order,
    :meth:`RecognitionData.restrict`) when given; loaded once per process, frames cached."""
    if classes is None:
        return dataset(split, root)
    key = (str(data_root(split, root)), f"{split}|" + "|".join(classes))
    if key not in _DATA:
        _DATA[key] = dataset(split, root).restrict(classes)
    return _DATA[key]


def holdout(domain: str, shots: int = 16, kset: int = 0,
            root: str | Path | None = None) -> RecognitionData:
    """The learning-rate protocol's validation videos: ``{domain}_train``'s videos that the
    K-shot set ``fewshot/{domain}_K{shots}_seed{kset}`` does not hold (split name
    ``{domain}_val_K{shots}_seed{kset}``; for K = 16, 4 per class, 96). Never the test split."""
    train = dataset(f"{domain}_train", root)
    kshot = dataset(f"fewshot/{domain}_K{shots}_seed{kset}", root)
    if kshot.classes != train.classes or not set(kshot.video_ids) <= set(train.video_ids):
        raise ValueError(f"{kshot.label_file}: not a subset of {train.label_file} with the same "
                         f"classes")
    key = (str(data_root(f"{domain}_train", root)), f"{domain}_val_K{shots}_seed{kset}")
    if key not in _DATA:
        taken = set(kshot.video_ids)
        keep = [i for i, v in enumerate(train.video_ids) if v not in taken]
        if not keep:
            raise ValueError(f"{kshot.label_file} holds every video of {train.label_file}: "
                             "nothing is left to validate on")
        _DATA[key] = replace(train, split=key[1], video_ids=[train.video_ids[i] for i in keep],
                             video_paths=[train.video_paths[i] for i in keep],
                             labels=train.labels[keep].copy(), _frames={})
    return _DATA[key]


def _class_file(name: str, root: str | Path | None) -> Any:
    """A JSON file of ``recognition/`` (``zeroshot.json``, ``base_novel/seed{s}.json``): from
    ``root`` if given, else the shipped folder, else the generated cache."""
    if root is not None:
        where = Path(root)
    else:
        shipped = rendered.shipped_dir()
        where = shipped if (shipped / "recognition" / name).is_file() else \
            rendered.ensure(quiet=True)
    path = where / "recognition" / name
    if not path.is_file():
        raise FileNotFoundError(f"class split file not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def base_novel(split: int, root: str | Path | None = None) -> dict[str, list[str]]:
    """Base-to-novel class split ``split`` (0, 1, 2): ``{"base": [12 classes], "novel": [12]}``
    (``recognition/base_novel/seed{split}.json``; an order-only pair is always on one side)."""
    if isinstance(split, bool) or not isinstance(split, int) or split < 0:
        raise ValueError(f"base-to-novel split must be an integer >= 0, got {split!r}")
    d = _class_file(f"base_novel/seed{split}.json", root)
    return {"base": list(d["base"]), "novel": list(d["novel"])}


def zeroshot_classes(root: str | Path | None = None) -> dict[str, list[str]]:
    """``{"seen": [...], "unseen": [...]}``: the classes of the source split (the pretraining's)
    and the ones it never shows (``recognition/zeroshot.json``)."""
    d = _class_file("zeroshot.json", root)
    return {"seen": list(d["seen"]), "unseen": list(d["unseen"])}


def prompts(classes: Sequence[str], template: str = TEMPLATE) -> list[str]:
    """The class prompts, ``template.format(class)`` each."""
    if "{}" not in template:
        raise ValueError(f"template must hold '{{}}' where the class name goes, got {template!r}")
    return [template.format(c) for c in classes]


class TrainBatches:
    """Classification batches: each pass a seeded permutation of the videos in ``batch_size``
    batches (the last one may be smaller); yields ``{"frames" [B, T, 3, H, W], "labels" [B]}``."""

    def __init__(self, data: RecognitionData, batch_size: int, seed: int = 0) -> None:
        if len(data) == 0:
            raise ValueError(f"split {data.split!r} has no video")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size = data, batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.rng.permutation(len(self.data)).tolist()
        for pos in range(0, len(order), self.batch_size):
            idx = order[pos: pos + self.batch_size]
            yield {"frames": frames_tensor(self.data, idx),
                   "labels": torch.as_tensor(self.data.labels[idx], dtype=torch.long)}
