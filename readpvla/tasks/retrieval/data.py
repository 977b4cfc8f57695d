"""Retrieval data: the rendered benchmark's MSR-VTT-style splits, where they live, batches.

Splits (:mod:`readpvla.data.rendered`): ``source_train`` (2400 videos x 5 captions, pretraining)
and ``source_test``; per target domain (``flat``, ``noisy``, ``dark``: the style shifts)
``{domain}_train`` (480 videos x 5 captions) and ``{domain}_test`` (192 videos x 1 caption, the
1k-A protocol scaled down). The test splits ship in ``data_samples/rendered``; the others are
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

__all__ = ["DOMAINS", "TrainBatches", "data_root", "dataset", "frames_tensor"]

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
