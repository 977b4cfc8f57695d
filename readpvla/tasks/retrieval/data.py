"""Retrieval data: the rendered benchmark's MSR-VTT-style splits, where they live, batches.

Splits (:mod:`readpvla.data.rendered`): ``source_train`` (2400 videos x 5 captions, pretraining)
and ``source_test``; per target domain (``flat``, ``noisy``, ``dark``: the style shifts)
``{domain}_train`` (480 videos x 5 captions) and ``{domain}_test`` (192 videos x 1 caption, the
1k-A protocol scaled down). For choosing learning rates, :func:`train_val` carves a fixed,
seeded hold-out of 96 of a domain's 480 training videos (``{domain}_val``; the remaining 384 are
``{domain}_trainval``): the test split is never looked at to choose anything. The test splits ship in ``data_samples/rendered``; the others are
generated into the cache on first use (:func:`readpvla.data.rendered.ensure`, ~9 s on 2 cores).
A real MSR-VTT drops in through :func:`readpvla.data.videotext.load_retrieval`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from readpvla.data import rendered
from readpvla.data.video import clip_normalize
from readpvla.data.videotext import RetrievalData, load_retrieval

__all__ = ["DOMAINS", "N_VAL", "TrainBatches", "data_root", "dataset", "frames_tensor", "subset",
           "train_val", "val_indices"]

#: the target domains (style shifts) of the rendered benchmark
DOMAINS = tuple(rendered.DOMAINS)


def data_root(split: str | None = None, root: str | Path | None = None) -> Path:
    """Where ``split`` lives: ``root`` if given; the shipped ``data_samples/rendered`` if it holds
    the split (the test splits); else the generated cache (:func:`rendered.ensure`)."""
    if root is not None:
        return Path(root)
    shipped = rendered.shipped_dir()
    if split is not None and (shipped / "retrieval" / f"{split}.json").is_file():
        return shipped
    return rendered.ensure(quiet=True)


_DATA: dict[tuple[str, str], RetrievalData] = {}


def dataset(split: str, root: str | Path | None = None) -> RetrievalData:
    """``load_retrieval`` of ``split`` (frames cached in memory), loaded once per process."""
    where = data_root(split, root)
    key = (str(where), split)
    if key not in _DATA:
        _DATA[key] = load_retrieval(where, split)
    return _DATA[key]


#: videos held out of a target domain's training split for validation (of 480)
N_VAL = 96


def subset(data: RetrievalData, indices: Sequence[int], split: str) -> RetrievalData:
    """The videos ``indices`` of ``data`` (in that order) with all their captions, as a
    :class:`~readpvla.data.videotext.RetrievalData` named ``split`` (frames already read are
    shared, not read again)."""
    idx = [int(i) for i in indices]
    if len(set(idx)) != len(idx) or any(not 0 <= i < len(data) for i in idx):
        raise ValueError(f"indices must be distinct video indices of {data.split!r} "
                         f"(0..{len(data) - 1})")
    caps = [(j, new) for new, i in enumerate(idx) for j in data.captions_of(i)]
    out = RetrievalData(
        split=split, annotation_file=data.annotation_file,
        video_ids=[data.video_ids[i] for i in idx], video_paths=[data.video_paths[i] for i in idx],
        domains=[data.domains[i] for i in idx], captions=[data.captions[j] for j, _ in caps],
        caption_video=np.asarray([new for _, new in caps], dtype=np.int64),
        sen_ids=[data.sen_ids[j] for j, _ in caps], num_frames=data.num_frames, size=data.size,
        cache=data.cache)
    out._frames.update({new: data._frames[i] for new, i in enumerate(idx) if i in data._frames})
    return out


def val_indices(n: int, n_val: int = N_VAL, seed: int = 0) -> list[int]:
    """The held-out video indices (sorted) of a training split of ``n`` videos: a seeded random
    choice of ``n_val`` (numpy ``default_rng(seed)``), the same on every machine."""
    if isinstance(n_val, bool) or not isinstance(n_val, int) or not 0 < n_val < n:
        raise ValueError(f"n_val must be an integer in [1, {n - 1}] for {n} videos, got {n_val!r}")
    return sorted(np.random.default_rng(seed).choice(n, size=n_val, replace=False).tolist())


def train_val(domain: str, root: str | Path | None = None, n_val: int = N_VAL, seed: int = 0
              ) -> tuple[RetrievalData, RetrievalData]:
    """``({domain}_trainval, {domain}_val)``: the domain's training split without / with only
    the :func:`val_indices` hold-out (``n_val`` of its videos, every caption of each). The
    learning-rate protocol (:func:`~.transfer.select_lr`) trains on the first and scores the
    second; the tables still train on the whole training split."""
    train = dataset(f"{domain}_train", root)
    held = val_indices(len(train), n_val, seed)
    gone = set(held)
    keep = [i for i in range(len(train)) if i not in gone]
    return subset(train, keep, f"{domain}_trainval"), subset(train, held, f"{domain}_val")


def frames_tensor(data: Any, indices: Sequence[int]) -> Tensor:
    """Videos ``indices`` of ``data`` (anything with ``frames(i) -> uint8 [T, H, W, 3]``),
    CLIP-normalised: float32 ``[B, T, 3, H, W]``."""
    return torch.from_numpy(np.stack([clip_normalize(data.frames(i)) for i in indices]))


class TrainBatches:
    """Contrastive training batches: each pass a seeded permutation of the videos, cut into
    ``batch_size`` batches (the remainder dropped: InfoNCE wants full batches), each video with
    one of its captions drawn at random (seeded). Yields ``{"frames", "input_ids",
    "attention_mask"}`` (text ``i`` describes video ``i``).

    Args:
        data: a :class:`~readpvla.data.videotext.RetrievalData`.
        tokenize: ``texts -> {"input_ids", "attention_mask"}`` (the model's
            :meth:`~readpvla.backbones.VideoCLIP.tokenize`).
        batch_size: videos per batch (>= 2).
        seed: the order and caption draws.
    """

    def __init__(self, data: RetrievalData, tokenize: Callable[[list[str]], dict[str, Tensor]],
                 batch_size: int, seed: int = 0) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for a contrastive loss, got {batch_size}")
        if len(data) < batch_size:
            raise ValueError(f"batch_size {batch_size} > {len(data)} videos in {data.split!r}")
        self.data, self.tokenize, self.batch_size = data, tokenize, batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.rng.permutation(len(self.data))
        for pos in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[pos: pos + self.batch_size].tolist()
            caps = [self.data.captions[int(self.rng.choice(self.data.captions_of(i)))]
                    for i in idx]
            yield {"frames": frames_tensor(self.data, idx), **self.tokenize(caps)}
