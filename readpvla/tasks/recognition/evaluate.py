"""Recognition evaluation: scores of every test video against every class prompt, then top-1 /
top-5 accuracy, mean per-class accuracy, accuracy on the order-only pairs, and base / novel /
harmonic mean (:mod:`readpvla.metrics.recognition`).

**Order-only pairs.** For a test video of an order-only class (9 pairs: left to right / right to
left, growing / shrinking, ...), the choice between its class and its reverse partner only: its
frames, played backwards, are a video of the partner. A backbone that pools a bag of frames
gives both videos the same embedding, so it is right on exactly one class of each pair: 50%.

The table's number is **top-1 accuracy** (``top1``); ``order_pairs`` sits beside it. The
base-to-novel protocol reports ``base`` / ``novel`` / ``HM`` (:func:`evaluate_base_to_novel`), the
zero-shot protocol top-1 among the unseen classes (:func:`evaluate_zeroshot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from readpvla.data.videotext import RecognitionData
from readpvla.metrics.recognition import accuracy, base_novel_accuracy, mean_class_accuracy

from ..retrieval.data import frames_tensor
from .data import PAIRS, TEMPLATE, prompts

__all__ = ["EXTRA_METRICS", "TABLE_METRIC", "class_scores", "evaluate", "evaluate_base_novel",
           "evaluate_base_to_novel", "evaluate_zeroshot", "order_pair_accuracy"]

TABLE_METRIC = "top1"
EXTRA_METRICS = ("top5", "mean_class", "order_pairs")


@torch.no_grad()
def class_scores(model: nn.Module, data: RecognitionData, classes: Sequence[str] | None = None,
                 template: str = TEMPLATE, batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of every video of ``data`` with every class prompt, ``[N, C]`` (classes
    default ``data.classes``; eval mode, restored after)."""
    classes = list(classes) if classes is not None else list(data.classes)
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        tok = model.tokenize(prompts(classes, template))
        text = model.encode_text(tok["input_ids"].to(dev), tok["attention_mask"].to(dev))
        # the class prompts are RAP's candidate sentences (ignored by every other method)
        videos = [model.encode_video(frames_tensor(data, range(i, min(i + batch_size, len(data))))
                                     .to(dev), texts=text)
                  for i in range(0, len(data), batch_size)]
    finally:
        model.train(was)
    return (torch.cat(videos) @ text.t()).double().cpu().numpy()


def order_pair_accuracy(scores: np.ndarray, labels: Sequence[int], classes: Sequence[str]
                        ) -> tuple[float, list[float]]:
    """Accuracy (%) between each order-only video's class and its reverse partner, and the per
    video hits (100 / 0). NaN (and no hits) when no test video is of an order-only class."""
    index = {c: k for k, c in enumerate(classes)}
    hits = []
    for row, lab in zip(np.asarray(scores), np.asarray(labels).tolist()):
        partner = PAIRS.get(classes[lab])
        if partner is None or partner not in index:
            continue
        hits.append(100.0 * float(row[lab] > row[index[partner]]))
    return (float(np.mean(hits)) if hits else float("nan")), hits


def evaluate(model: nn.Module, data: RecognitionData, template: str = TEMPLATE,
             per_item: bool = False) -> dict[str, Any]:
    """``{"top1", "top5", "mean_class", "order_pairs"}`` (percent) of ``model`` on ``data``; with
    ``per_item`` also ``"per_item": {"top1": 100 or 0 per video}``."""
    scores = class_scores(model, data, template=template)
    labels = data.labels
    k = (1, 5) if scores.shape[1] >= 5 else (1,)
    acc = accuracy(scores, labels, k=k)
    pairs, _ = order_pair_accuracy(scores, labels, data.classes)
    out: dict[str, Any] = {"top1": acc["top1"], "top5": acc.get("top5", float("nan")),
                           "mean_class": mean_class_accuracy(scores, labels),
                           "order_pairs": pairs}
    if per_item:
        out["per_item"] = {"top1": [100.0 * float(p == y) for p, y in
                                    zip(scores.argmax(1).tolist(), labels.tolist())]}
    return out


def evaluate_base_novel(model: nn.Module, data: RecognitionData, base: Sequence[str],
                        novel: Sequence[str], template: str = TEMPLATE) -> dict[str, float]:
    """Base-to-novel accuracy (CoCoOp / ViFi-CLIP protocol): base-class test videos classified
    among the base classes only, novel-class ones among the novel classes only, and their
    harmonic mean ``HM = 2BN / (B + N)``."""
    scores = class_scores(model, data, template=template)
    index = {c: k for k, c in enumerate(data.classes)}
    return base_novel_accuracy(scores, data.labels, [index[c] for c in base],
                               [index[c] for c in novel])


def evaluate_base_to_novel(model: nn.Module, data: RecognitionData, base: Sequence[str],
                           novel: Sequence[str], template: str = TEMPLATE,
                           per_item: bool = False) -> dict[str, Any]:
    """The base-to-novel protocol's record: ``base``, ``novel``, ``HM`` (as
    :func:`evaluate_base_novel`), ``order_pairs`` over every order-only test video and
    ``order_pairs_base`` / ``order_pairs_novel`` over those of base / novel classes (a pair is
    always on one side of a split, so the choice between a class and its partner stays within
    it); with ``per_item`` also ``{"per_item": {"order_pairs": hits, "base": hits, "novel":
    hits}}`` (``base``: each base video's top-1 hit among the base classes, 100 or 0; their mean
    is ``base``; ``novel`` likewise). One pass over the test videos."""
    scores = class_scores(model, data, template=template)
    index = {c: k for k, c in enumerate(data.classes)}
    labels = np.asarray(data.labels)
    out: dict[str, Any] = dict(base_novel_accuracy(scores, labels, [index[c] for c in base],
                                                   [index[c] for c in novel]))
    pairs, hits = order_pair_accuracy(scores, labels, data.classes)
    out["order_pairs"] = pairs
    for part, classes in (("base", base), ("novel", novel)):
        keep = np.isin(labels, [index[c] for c in classes])
        out[f"order_pairs_{part}"] = order_pair_accuracy(scores[keep], labels[keep],
                                                         data.classes)[0]
    if per_item:
        out["per_item"] = {"order_pairs": hits}
        for part, classes in (("base", base), ("novel", novel)):
            cols = [index[c] for c in classes]
            keep = np.isin(labels, cols)
            pred = np.asarray(cols)[np.asarray(scores)[keep][:, cols].argmax(1)]
            out["per_item"][part] = [100.0 * float(p == y) for p, y in
                                     zip(pred.tolist(), labels[keep].tolist())]
    return out


def evaluate_zeroshot(model: nn.Module, data: RecognitionData, unseen: Sequence[str],
                      template: str = TEMPLATE, per_item: bool = False) -> dict[str, Any]:
    """The zero-shot protocol's record on the test videos of the ``unseen`` classes: ``top1``
    and ``mean_class`` among the unseen classes only (ViFi-CLIP's zero-shot protocol: the
    target's own label set), ``top1_all`` among all of ``data.classes`` (generalised zero-shot),
    ``order_pairs`` (the unseen order-only pairs); with ``per_item`` the top-1 hits."""
    test = data.restrict(unseen)
    scores_all = class_scores(model, test, classes=data.classes, template=template)  # [N, C]
    cols = [data.classes.index(c) for c in test.classes]
    scores = scores_all[:, cols]  # [N, C_unseen]  (a video's score per class does not depend
    labels = test.labels          #                 on the other classes)
    out: dict[str, Any] = {
        "top1": accuracy(scores, labels, k=1),
        "mean_class": mean_class_accuracy(scores, labels),
        "top1_all": accuracy(scores_all, np.asarray(cols)[labels], k=1),
        "order_pairs": order_pair_accuracy(scores, labels, test.classes)[0]}
    if per_item:
        out["per_item"] = {"top1": [100.0 * float(p == y) for p, y in
                                    zip(scores.argmax(1).tolist(), labels.tolist())]}
    return out
