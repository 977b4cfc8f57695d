"""Retrieval evaluation: embed every test video and caption, rank, and score as CLIP4Clip does
(:func:`readpvla.metrics.evaluate_retrieval`: text-to-video and video-to-text R@1/5/10, MdR,
MnR; optional dual softmax).

The table's number is **text-to-video R@1** (``t2v_R1``); the other metrics sit beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from readpvla.data.videotext import RetrievalData
from readpvla.metrics.retrieval import evaluate_retrieval, true_ranks

from .data import frames_tensor

__all__ = ["TABLE_METRIC", "EXTRA_METRICS", "embed", "evaluate", "similarity"]

TABLE_METRIC = "t2v_R1"
EXTRA_METRICS = ("t2v_R5", "t2v_R10", "t2v_MR", "v2t_R1", "v2t_R5")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed(model: nn.Module, data: RetrievalData, batch_size: int = 64
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings of every video ``[N_v, D]`` and every caption ``[N_c, D]`` (eval mode,
    restored after)."""
    was = model.training
    model.eval()
    dev = _device(model)
    try:
        videos = [model.encode_video(frames_tensor(data, range(i, min(i + batch_size, len(data))))
                                     .to(dev)) for i in range(0, len(data), batch_size)]
        texts = []
        for i in range(0, data.n_captions, batch_size):
            tok = model.tokenize(data.captions[i: i + batch_size])
            texts.append(model.encode_text(tok["input_ids"].to(dev),
                                           tok["attention_mask"].to(dev)))
    finally:
        model.train(was)
    return torch.cat(videos).cpu(), torch.cat(texts).cpu()


def similarity(model: nn.Module, data: RetrievalData, batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of every caption with every video, ``[N_c, N_v]`` float64."""
    v, t = embed(model, data, batch_size)
    return (t @ v.t()).double().numpy()


def evaluate(model: nn.Module, data: RetrievalData, dsl: bool = False, batch_size: int = 64,
             per_item: bool = False) -> dict[str, Any]:
    """Retrieval metrics of ``model`` on ``data``: ``{"t2v_R1", "t2v_R5", "t2v_R10", "t2v_MR",
    "t2v_MeanR", "v2t_..."}`` (CLIP4Clip's evaluation; ``dsl``: dual softmax first). With
    ``per_item``, also ``"per_item": {"t2v_R1": 100 or 0 per caption}`` for paired tests."""
    sim = similarity(model, data, batch_size)
    cv = data.caption_video
    res = evaluate_retrieval(sim, cv, dsl=dsl)
    out: dict[str, Any] = {f"{d}_{k}": float(v) for d, m in res.items() for k, v in m.items()}
    if per_item:
        ranks = true_ranks(sim, cv, ties="optimistic")  # one rank per caption (0-based)
        out["per_item"] = {"t2v_R1": [100.0 * float(r < 1) for r in np.asarray(ranks).tolist()]}
    return out
