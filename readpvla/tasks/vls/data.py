"""VLS data: the synthetic How2 splits (:mod:`readpvla.data.how2`), where they live, batches.

The low-resource *target* split ships in ``data_samples/how2`` (400 training, 100 validation, 200
test videos); the *source* split that pretrains the backbones is generated on the fly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readpvla.data.how2 import How2Collator, How2Sample

__all__ = ["MODEL_INPUTS", "StepBatches", "default_data_dir", "model_inputs", "to_device"]

#: the batch keys a VG model's forward takes
MODEL_INPUTS = ("input_ids", "attention_mask", "video", "video_mask", "labels")


def default_data_dir() -> Path:
    """The shipped data: ``<repo>/data_samples/how2``."""
    return Path(__file__).resolve().parents[3] / "data_samples" / "how2"


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """A collated batch with its tensors on ``device``."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The keys of a collated batch that the model's forward takes."""
    return {k: batch[k] for k in MODEL_INPUTS}


class StepBatches:
    """Training batches for a step budget: each pass is one seeded permutation of ``samples``,
    cut into ``batch_size`` batches (the remainder dropped), a new permutation every pass.

    ``numpy.random.default_rng(seed)`` draws the permutations, so the order is the same on every
    machine. :func:`readpvla.train.fit` with ``steps=`` re-iterates it as needed.
    """

    def __init__(self, samples: Sequence[How2Sample], collate: How2Collator, batch_size: int,
                 seed: int) -> None:
        if not samples:
            raise ValueError("no training sample")
        if len(samples) < batch_size:
            raise ValueError(f"batch_size {batch_size} > {len(samples)} training samples")
        self.samples, self.collate, self.batch_size = samples, collate, batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self.rng.permutation(len(self.samples))
        for pos in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.collate([self.samples[i] for i in order[pos: pos + self.batch_size]])
