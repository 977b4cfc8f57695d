"""VLS predictions and evaluation: generated summaries, ROUGE-1/2/L (the paper's Tables 4 / 5
metric, through ``rouge-score``), per-video scores, and the validation loss that early stopping
watches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from readpvla.backbones.vg import VisionGuidedSeq2Seq
from readpvla.data.how2 import How2Collator, How2Sample, decode

from .data import model_inputs, to_device

__all__ = ["METRICS", "VIDEO_METRIC", "VIDEO_MIN_UNNAMED", "evaluate", "group_scores",
           "per_sample_rouge", "summarize", "unnamed_steps", "validation_loss",
           "validation_rouge", "video_note", "video_reliant", "with_video_slice"]

#: the table's metrics (ROUGE F-measures, percent)
METRICS = ("rouge1", "rouge2", "rougeL")
#: the tables' slice: ROUGE-1 on the test videos whose transcript never names at least
#: :data:`VIDEO_MIN_UNNAMED` of their steps, so that the summary's content must come from the video
VIDEO_METRIC = "rouge1 (video)"
VIDEO_MIN_UNNAMED = 2


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


def unnamed_steps(sample: How2Sample) -> int:
    """How many of ``sample``'s steps its transcript never names (their content is in the video
    only). Raises ``ValueError`` for a sample without its latent steps."""
    if not sample.steps:
        raise ValueError(f"video {sample.vid!r} has no latent steps; slices need the synthetic "
                         "How2 annotations (the 'steps' field)")
    return sum(step not in sample.transcript for step in sample.steps)


def video_reliant(sample: How2Sample) -> bool:
    """The tables' slice (:data:`VIDEO_METRIC`): at least :data:`VIDEO_MIN_UNNAMED` steps that
    only the video shows."""
    return unnamed_steps(sample) >= VIDEO_MIN_UNNAMED


def group_scores(per_sample: Mapping[str, Sequence[float]], samples: Sequence[How2Sample],
                 group_by: str | Callable[[How2Sample], Any]) -> dict[str, dict[str, float]]:
    """Every metric of ``per_sample`` (one score per sample, as :func:`per_sample_rouge`) averaged
    per value of ``group_by`` (an attribute of :class:`How2Sample`, e.g. ``"task"``, or a
    function of a sample, e.g. :func:`unnamed_steps`), plus ``"all"``; each group also carries
    ``"n"``, its number of videos. Values are keyed by their ``str``.

    Raises:
        ValueError: scores and samples of different lengths, no samples, or an unknown field.
    """
    if not samples:
        raise ValueError("no samples to group")
    bad = [k for k, v in per_sample.items() if len(v) != len(samples)]
    if bad:
        raise ValueError(f"per-sample scores {bad} have {len(per_sample[bad[0]])} entries for "
                         f"{len(samples)} samples")
    if isinstance(group_by, str):
        if group_by not in How2Sample.__dataclass_fields__ or group_by == "video":
            raise ValueError(f"cannot group by {group_by!r}; a field of How2Sample ("
                             "vid, task, domain, ...) or a function of a sample")
        name = group_by
        key = lambda s: getattr(s, name)  # noqa: E731
    else:
        key = group_by
    members: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        members.setdefault(str(key(s)), []).append(i)
    out = {}
    for g, idx in [*sorted(members.items()), ("all", list(range(len(samples))))]:
        out[g] = {k: float(sum(v[i] for i in idx) / len(idx)) for k, v in per_sample.items()}
        out[g]["n"] = len(idx)
    return out


def with_video_slice(record: dict[str, Any], samples: Sequence[How2Sample]) -> dict[str, Any]:
    """``record`` (a test run's record with per-video ``per_item`` scores over ``samples``) with
    :data:`VIDEO_METRIC` in its ``test`` scores, computed from those stored scores; the record
    unchanged when no sample is video-reliant. A copy: the argument is not modified.

    Raises:
        ValueError: the record's per-video scores do not match ``samples`` in number.
    """
    per = record["per_item"]["rouge1"]
    if len(per) != len(samples):
        raise ValueError(f"run ({record.get('row')}, seed {record.get('seed')}) has "
                         f"{len(per)} per-video scores for {len(samples)} test videos")
    mask = [video_reliant(s) for s in samples]
    if not any(mask):
        return dict(record)
    score = sum(x for x, m in zip(per, mask) if m) / sum(mask)
    return {**record, "test": {**record["test"], VIDEO_METRIC: float(score)}}


def video_note(samples: Sequence[How2Sample]) -> str:
    """The sentence that explains the tables' "Video" column for the test split ``samples``."""
    n = sum(video_reliant(s) for s in samples)
    return (f"Video: ROUGE-1 on the {n} of {len(samples)} test videos whose transcript never "
            f"names at least {VIDEO_MIN_UNNAMED} of their steps (that content is in the video "
            "only).")


def evaluate(model: VisionGuidedSeq2Seq, samples: Sequence[How2Sample], collate: How2Collator,
             num_beams: int = 4, max_new_tokens: int = 48, batch_size: int = 50,
             group_by: str | Callable[[How2Sample], Any] | None = None) -> dict[str, Any]:
    """Summarise ``samples`` and score them: ``{"rouge1", "rouge2", "rougeL"}`` (percent,
    :func:`readpvla.metrics.rouge.rouge_scores`), plus ``predictions`` and ``per_sample``; with
    ``group_by`` (a field or a function of a sample, :func:`group_scores`) also ``"groups"``:
    the mean per-video scores per value, and ``"all"``."""
    from readpvla.metrics.rouge import rouge_scores

    preds = summarize(model, samples, collate, batch_size, num_beams, max_new_tokens)
    refs = [s.summary for s in samples]
    scores = rouge_scores(preds, refs)
    per = per_sample_rouge(preds, refs)
    out = {"rouge1": scores["rouge1"], "rouge2": scores["rouge2"], "rougeL": scores["rougeL"],
           "predictions": preds, "per_sample": per}
    if group_by is not None:
        out["groups"] = group_scores(per, samples, group_by)
    return out
