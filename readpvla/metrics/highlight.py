"""Highlight detection (HL) metrics of the QVHighlights protocol: mAP and Hit@1 per saliency level.

The numbers are meant to equal those of Moment-DETR's ``standalone_eval/eval.py``; conventions one
would not guess are marked "(as the standard)".

Symbols: a video of duration ``D`` seconds has ``n = int(D / clip_length)`` clips of 2 s; ``A``
annotators (3 in QVHighlights) gave each relevant clip a saliency score in 0..4 (unlisted clips
score 0); a prediction is one saliency score per clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from readpvla.metrics.moment import percent

# Saliency level name -> minimum annotator score for a clip to count as positive.
SALIENCY_LEVELS: dict[str, int] = {"Fair": 2, "Good": 3, "VeryGood": 4}


def saliency_matrix(duration: float, relevant_clip_ids: np.ndarray, saliency_scores: np.ndarray,
                    clip_length: float = 2.0) -> np.ndarray:
    """Dense GT saliency of a whole video.

    Args:
        duration: video length in seconds; the video has ``n = int(duration / clip_length)`` clips.
        relevant_clip_ids: ``[R]`` distinct clip indices in ``[0, n)``.
        saliency_scores: ``[R, A]`` annotator scores of those clips.
        clip_length: seconds per clip (2 in QVHighlights).

    Returns:
        ``[n, A]`` scores, zero for clips not listed.
    """
    n_clips = int(duration / clip_length)
    scores = np.zeros((n_clips, saliency_scores.shape[1]))
    scores[relevant_clip_ids] = saliency_scores
    return scores


def saliency_ap(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray | float:
    r"""Average precision of a clip ranking (the video2gif / Moment-DETR HL variant).

    Rank clips by ``y_score`` descending; clips with equal scores form one rank (sklearn's
    ``precision_recall_curve`` thresholds). At each rank ``g``, precision
    :math:`p_g = \mathrm{TP}_g / n_g` (clips ranked at or above ``g``). Then

    .. math:: \mathrm{AP} = \frac{1}{|G^+|} \sum_{g \in G^+} \max_{g' \ge g} p_{g'}

    where :math:`G^+` are the ranks that add at least one positive and :math:`g' \ge g` runs over
    the ranks at or below ``g``. So a tie of several positives counts once, not once per positive
    (as the standard). All-negative ``y_true`` gives 0 and all-positive gives 1 (as the standard).

    Args:
        y_true: ``[n]`` 0/1 (or bool) labels, or ``[n, C]``: ``C`` label columns (annotators,
            levels) ranked by the same scores.
        y_score: ``[n]`` scores.

    Returns:
        AP in ``[0, 1]``: a float for 1-D ``y_true``, ``[C]`` for 2-D.
    """
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim != 1 or len(y_score) == 0 or np.shape(y_true)[:1] != y_score.shape:
        raise ValueError(f"y_score must be a non-empty [n] vector and y_true [n] or [n, C]; got "
                         f"shapes {list(np.shape(y_true))} and {list(y_score.shape)}")
    labels = np.asarray(y_true, dtype=bool).reshape(len(y_score), -1)  # (n, C)
    order = np.argsort(-y_score, kind="stable")
    ends = np.append(np.flatnonzero(np.diff(y_score[order])), len(order) - 1)  # rank ends
    tps = np.cumsum(labels[order], axis=0, dtype=np.float64)[ends]  # (G, C) TP at or above
    precision = tps / (ends + 1)[:, None]
    # Walk from the lowest rank up, as the standard does on sklearn's reversed curve.
    prec_up = np.maximum.accumulate(precision[::-1], axis=0)  # max precision at or below rank
    tps_up = tps[::-1]
    adds = tps_up != np.vstack([tps_up[1:], np.zeros((1, tps.shape[1]))])  # recall changes
    ap = np.array([np.mean(prec_up[adds[:, c], c]) if 0 < tps[-1, c] < len(order)
                   else float(tps[-1, c] == len(order)) for c in range(tps.shape[1])])
    return float(ap[0]) if np.ndim(y_true) == 1 else ap


def fit_length(y_score: np.ndarray, n_clips: int) -> np.ndarray:
    """Truncate or zero-pad predicted saliency to ``n_clips`` (as the standard: padding is 0,
    so padded clips outrank clips with negative predicted scores)."""
    out = np.zeros(n_clips)
    m = min(n_clips, len(y_score))
    out[:m] = y_score[:m]
    return out


def eval_highlight(pred_saliency: Mapping[Any, np.ndarray],
                   gt_saliency: Mapping[Any, np.ndarray]) -> dict[str, dict[str, float]]:
    r"""HL mAP and Hit@1 at each saliency level.

    For level ``L`` (minimum score ``s_L``), a clip is positive for annotator ``a`` when its
    score ``>= s_L``.

    - ``HL-mAP`` = mean over queries and annotators of :func:`saliency_ap` of the prediction
      truncated / zero-padded to the video's ``n`` clips (:func:`fit_length`).
    - ``HL-Hit1`` = fraction of queries whose top-scored clip (over the *whole* predicted list,
      first one on ties) is positive for at least one annotator; a top clip at index ``>= n``
      is a miss (as the standard).

    Args:
        pred_saliency: qid -> ``[n_pred]`` predicted scores, validated, non-empty.
        gt_saliency: qid -> ``[n, A]`` dense GT scores (:func:`saliency_matrix`), same qids.

    Returns:
        ``{"HL-min-Fair": {"HL-mAP": .., "HL-Hit1": ..}, "HL-min-Good": .., "HL-min-VeryGood": ..}``
        in percent, two decimals.
    """
    qids = list(pred_saliency)
    results: dict[str, dict[str, float]] = {}
    for name, min_score in SALIENCY_LEVELS.items():
        ap = np.zeros((len(qids), gt_saliency[qids[0]].shape[1]))  # (Q, A)
        hit = np.zeros(len(qids))  # (Q,)
        for i, q in enumerate(qids):
            positive = gt_saliency[q] >= min_score  # (n, A)
            ap[i] = saliency_ap(positive, fit_length(pred_saliency[q], len(positive)))
            top = int(np.argmax(pred_saliency[q]))
            hit[i] = float(top < len(positive) and positive[top].any())
        results[f"HL-min-{name}"] = {"HL-mAP": percent(np.mean(ap)),
                                     "HL-Hit1": percent(np.mean(hit))}
    return results


def highlight_scores_per_query(pred_saliency: Mapping[Any, np.ndarray],
                               gt_saliency: Mapping[Any, np.ndarray]
                               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-query HL quantities, in the qid order of ``pred_saliency``: ``{"HL-min-<level>":
    (ap [Q], hit [Q])}`` with ``ap`` the query's :func:`saliency_ap` averaged over its annotators
    and ``hit`` 1.0 / 0.0 (fractions, unrounded). Every query has the same number of annotators,
    so ``HL-mAP`` = ``percent(ap.mean())`` and ``HL-Hit1`` = ``percent(hit.mean())`` (the same
    computation as :func:`eval_highlight`, kept per query)."""
    qids = list(pred_saliency)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, min_score in SALIENCY_LEVELS.items():
        ap, hit = np.zeros(len(qids)), np.zeros(len(qids))
        for i, q in enumerate(qids):
            positive = gt_saliency[q] >= min_score  # (n, A)
            ap[i] = np.mean(saliency_ap(positive, fit_length(pred_saliency[q], len(positive))))
            top = int(np.argmax(pred_saliency[q]))
            hit[i] = float(top < len(positive) and positive[top].any())
        out[f"HL-min-{name}"] = (ap, hit)
    return out
