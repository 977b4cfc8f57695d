"""VLS predictions and evaluation: generated summaries, ROUGE-1/2/L (the paper's Tables 4 / 5
metric, through ``rouge-score``), per-video scores, and the validation loss that early stopping
watches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from readpvla.backbones.vg import VisionGuidedSeq2Seq
from readpvla.data.how2 import How2Collator, How2Sample, decode

from .data import model_inputs, to_device

__all__ = ["METRICS", "evaluate", "per_sample_rouge", "summarize", "validation_loss",
           "validation_rouge"]

#: the table's metrics (ROUGE F-measures, percent)
METRICS = ("rouge1", "rouge2", "rougeL")


@torch.no_grad()
def validation_loss(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample],
                    collate: How2Collator, batch_size: int = 64) -> float:
    """Mean token cross-entropy of ``model`` on ``samples`` (teacher forcing, eval mode)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    try:
        for i in range(0, len(samples), batch_size):
            batch = to_device(collate(samples[i: i + batch_size]), device)
            tokens = int((batch["labels"] != -100).sum())
            total += float(model(**model_inputs(batch)).loss) * tokens
            n += tokens
    finally:
        model.train(was)
    return total / n


@torch.no_grad()
def summarize(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample], collate: How2Collator,
              batch_size: int = 50, num_beams: int = 4, max_new_tokens: int = 48) -> list[str]:
    """Generated summaries (text) for ``samples``."""
    device = next(model.parameters()).device
    preds: list[str] = []
    for i in range(0, len(samples), batch_size):
        b = to_device(collate(samples[i: i + batch_size]), device)
        ids = model.generate(b["input_ids"], b["attention_mask"], b["video"], b["video_mask"],
                             num_beams=num_beams, max_new_tokens=max_new_tokens)
        preds += [decode(collate.tokenizer, row[1:]) for row in ids.cpu()]  # drop start token
    return preds


@torch.no_grad()
def validation_rouge(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample],
                     collate: How2Collator, metric: str = "rougeL", batch_size: int = 50,
                     max_new_tokens: int = 48) -> float:
    """Mean per-video ROUGE F-measure (``metric``, percent) of greedy summaries of ``samples``:
    the validation score that model selection with ``select="rouge"`` maximises (aligned with
    the tables' metric, unlike the validation loss). Eval mode; the model's mode is restored."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    was = model.training
    model.eval()
    try:
        preds = summarize(model, samples, collate, batch_size, num_beams=1,
                          max_new_tokens=max_new_tokens)
    finally:
        model.train(was)
    scores = per_sample_rouge(preds, [s.summary for s in samples])[metric]
    return float(sum(scores) / len(scores))


def per_sample_rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """ROUGE-1/2/L F-measures in percent, one per pair (the settings of ``rouge_scores``)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeL": []}
    for p, r in zip(predictions, references):
        s = scorer.score(r, p)
        for k in out:
            out[k].append(100.0 * s[k].fmeasure)
    return out


def evaluate(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample], collate: How2Collator,
             num_beams: int = 4, max_new_tokens: int = 48, batch_size: int = 50) -> dict[str, Any]:
    """Summarise ``samples`` and score them: ``{"rouge1", "rouge2", "rougeL"}`` (percent,
    :func:`readpvla.metrics.rouge.rouge_scores`), plus ``predictions`` and ``per_sample``."""
    from readpvla.metrics.rouge import rouge_scores

    preds = summarize(model, samples, collate, batch_size, num_beams, max_new_tokens)
    refs = [s.summary for s in samples]
    scores = rouge_scores(preds, refs)
    return {"rouge1": scores["rouge1"], "rouge2": scores["rouge2"], "rougeL": scores["rougeL"],
            "predictions": preds, "per_sample": per_sample_rouge(preds, refs)}
