"""Retrieval evaluation: embed every test caption and video, rank, and score as CLIP4Clip does
(:func:`readpvla.metrics.evaluate_retrieval`: text-to-video and video-to-text R@1/5/10, MdR,
MnR; optional dual softmax); and the order-only pairs (:func:`order_pairs`).

The table's number is **text-to-video R@1** (``t2v_R1``); the other metrics sit beside it, and
``order_pairs`` (accuracy %, chance 50) says whether the tuned model sees frame order.

**The candidate set.** Captions are encoded first; the videos are then encoded with
``model.encode_video(frames, texts=<every caption embedding>)``: RAP (text-conditioned patch
selection) picks each video's patches with the candidate sentences in view. At test time the
candidate set is the test sentences, so a video's encoding depends on the *candidate set*, not on
each query (one encoding per video, as in the RAP paper's inference); with RAP, changing the
candidate set (other test sentences, or the class prompts of :func:`order_pairs`) means encoding
the videos again. Models without RAP ignore ``texts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from readpvla.data.videotext import RecognitionData, RetrievalData
from readpvla.metrics.retrieval import dual_softmax, evaluate_retrieval, true_ranks

from .data import frames_tensor

__all__ = ["EXTRA_METRICS", "TABLE_METRIC", "embed", "encode_texts", "encode_videos",
           "evaluate", "order_pairs", "similarity"]

TABLE_METRIC = "t2v_R1"
EXTRA_METRICS = ("t2v_R5", "t2v_R10", "t2v_MR", "v2t_R1", "v2t_R5", "order_pairs")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_texts(model: nn.Module, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Unit embeddings ``[N, D]`` of ``texts`` (on the model's device; call in eval mode)."""
    dev = _device(model)
    out = []
    for i in range(0, len(texts), batch_size):
        tok = model.tokenize(list(texts[i: i + batch_size]))
        out.append(model.encode_text(tok["input_ids"].to(dev), tok["attention_mask"].to(dev)))
    return torch.cat(out)


@torch.no_grad()
def encode_videos(model: nn.Module, data: Any, indices: Sequence[int],
                  candidates: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Unit embeddings ``[len(indices), D]`` of videos ``indices`` of ``data``, each encoded with
    the candidate sentences ``candidates [N_c, D]`` in view (``encode_video(..., texts=...)``;
    ignored without RAP). Call in eval mode."""
    dev = _device(model)
    idx = list(indices)
    return torch.cat([model.encode_video(frames_tensor(data, idx[i: i + batch_size]).to(dev),
                                         texts=candidates)
                      for i in range(0, len(idx), batch_size)])


@torch.no_grad()
def embed(model: nn.Module, data: RetrievalData, batch_size: int = 64
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings of every video ``[N_v, D]`` and every caption ``[N_c, D]`` (eval mode,
    restored after).

    The captions are encoded first, then every video with all of them as its candidate set
    (``encode_video(frames, texts=captions)``): the candidate set at test time is the test
    sentences. A video's encoding thus depends on the candidate set, not on each query; with RAP,
    changing the candidate set means re-encoding the videos (models without RAP ignore it).
    """
    was = model.training
    model.eval()
    try:
        texts = encode_texts(model, data.captions, batch_size)
        videos = encode_videos(model, data, range(len(data)), texts, batch_size)
    finally:
        model.train(was)
    return videos.cpu(), texts.cpu()


def similarity(model: nn.Module, data: RetrievalData, batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of every caption with every video, ``[N_c, N_v]`` float64."""
    v, t = embed(model, data, batch_size)
    return (t @ v.t()).double().numpy()


def order_pairs(model: nn.Module, data: RetrievalData, labels: RecognitionData,
                batch_size: int = 64) -> dict[str, Any]:
    """Accuracy (%) on the order-only pairs of the retrieval test videos: for each video of an
    order-only class (9 pairs of actions that are the same frames in opposite order), does the
    model score its class prompt ``"a video of <class>"`` above its reverse partner's? Chance is
    50, and a frame bag (CLIP4Clip meanP) is at 50 by construction.

    The classes come from ``labels``, the recognition view of the same rendered split
    (:func:`readpvla.tasks.recognition.dataset`), which must list the same video ids as
    ``data``; the score is :func:`readpvla.tasks.recognition.order_pair_accuracy`. The candidate
    set of the videos' encoding is the class prompts (module docstring). Only the order-only
    videos are encoded.

    Returns:
        ``{"order_pairs": accuracy (NaN when no video is of an order-only class), "hits": 100 / 0
        per order-only video, "videos": their indices in data}``.
    """
    from readpvla.tasks.recognition.data import PAIRS, prompts
    from readpvla.tasks.recognition.evaluate import order_pair_accuracy

    if list(labels.video_ids) != list(data.video_ids):
        raise ValueError(f"the recognition labels ({labels.split!r}, {len(labels)} videos) do not "
                         f"list the same videos as the retrieval split {data.split!r} "
                         f"({len(data)} videos)")
    classes = list(labels.classes)
    lab = np.asarray(labels.labels).tolist()
    idx = [i for i, y in enumerate(lab) if classes[y] in PAIRS and PAIRS[classes[y]] in classes]
    if not idx:
        return {"order_pairs": float("nan"), "hits": [], "videos": []}
    was = model.training
    model.eval()
    try:
        text = encode_texts(model, prompts(classes), batch_size)  # (C, D)
        videos = encode_videos(model, data, idx, text, batch_size)  # (n, D)
    finally:
        model.train(was)
    scores = (videos @ text.t()).double().cpu().numpy()  # (n, C)
    acc, hits = order_pair_accuracy(scores, [lab[i] for i in idx], classes)
    return {"order_pairs": acc, "hits": hits, "videos": idx}


def evaluate(model: nn.Module, data: RetrievalData, dsl: bool = False, batch_size: int = 64,
             per_item: bool = False, labels: RecognitionData | None = None) -> dict[str, Any]:
    """Retrieval metrics of ``model`` on ``data``: ``{"t2v_R1", "t2v_R5", "t2v_R10", "t2v_MR",
    "t2v_MeanR", "v2t_..."}`` (CLIP4Clip's evaluation; ``dsl``: dual softmax first); with
    ``labels`` (the recognition view of the same split) also ``"order_pairs"``
    (:func:`order_pairs`). With ``per_item``, also ``"per_item": {"t2v_R1": 100 or 0 per
    caption}`` for paired tests (and ``"order_pairs"``: 100 / 0 per order-only video).
    Always also ``"t2v_R1_dsl"`` / ``"v2t_R1_dsl"``: R@1 after the dual softmax (the paper's
    RAP* post-processing, Cheng et al. 2021), so every row has its "*" number."""
    sim = similarity(model, data, batch_size)
    cv = data.caption_video
    res = evaluate_retrieval(sim, cv, dsl=dsl)
    out: dict[str, Any] = {f"{d}_{k}": float(v) for d, m in res.items() for k, v in m.items()}
    # the same similarities after the dual softmax (the paper's "*" rows), for every row
    dsl_sim = dual_softmax(sim)
    with_dsl = res if dsl else evaluate_retrieval(sim, cv, dsl=True)
    out.update({f"{d}_R1_dsl": float(with_dsl[d]["R1"]) for d in ("t2v", "v2t")})
    pairs = order_pairs(model, data, labels, batch_size) if labels is not None else None
    if pairs is not None:
        out["order_pairs"] = pairs["order_pairs"]
    if per_item:
        ranks = true_ranks(sim, cv, ties="optimistic")  # one rank per caption (0-based)
        out["per_item"] = {"t2v_R1": [100.0 * float(r < 1) for r in np.asarray(ranks).tolist()]}
        ranks = true_ranks(dsl_sim, cv, ties="optimistic")
        out["per_item"]["t2v_R1_dsl"] = [100.0 * float(r < 1) for r in np.asarray(ranks).tolist()]
        if pairs is not None:
            out["per_item"]["order_pairs"] = pairs["hits"]
    return out
