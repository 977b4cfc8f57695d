"""Moment retrieval (MR) metrics of the QVHighlights protocol: mAP over IoU thresholds and R1@t.

The numbers are meant to equal those of Moment-DETR's ``standalone_eval/eval.py`` (Lei, Berg and
Bansal, NeurIPS 2021), which is what QVHighlights papers report. Where that evaluation has a
convention one would not guess, the code says "(as the standard)".

Symbols: a query has ``K`` predicted windows ``(st, ed, score)`` and ``M`` ground-truth (GT)
windows ``(st, ed)`` in seconds; ``T`` IoU thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# 0.5:0.05:0.95, each the double nearest to its two-decimal value (as the standard).
IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

# GT window length buckets, (lo, hi] in seconds. "full" keeps every query and every window,
# whatever its length (as the standard).
LENGTH_BUCKETS: dict[str, tuple[float, float]] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
}

MAX_PRED_WINDOWS = 10  # only the first 10 windows *as listed* are scored (as the standard)


def percent(x: float) -> float:
    """``100·x`` rounded to two decimals, the way the standard formats every number."""
    return float(f"{100 * x:.2f}")


def temporal_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    r"""Temporal IoU of every pair of windows.

    .. math:: \mathrm{IoU}(a, b) = \frac{|a \cap b|}{|a| + |b| - |a \cap b|},
              \quad |a \cap b| = \max(0, \min(a_e, b_e) - \max(a_s, b_s))

    Args:
        spans1: ``[N, >=2]`` windows, columns ``st, ed`` (extra columns, e.g. a score, ignored).
        spans2: ``[M, >=2]`` windows.

    Returns:
        ``[N, M]`` IoU in ``[0, 1]``; 0 where the union is empty (two zero-length windows).
    """
    a = np.asarray(spans1, dtype=np.float64)[:, :2]
    b = np.asarray(spans2, dtype=np.float64)[:, :2]
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1])
                    - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)  # (N, M)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter  # (N, M)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)


def _hull_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paired IoU ``[N]`` of rows of ``a`` and ``b`` (``[N, 2]``), the union taken as the hull
    ``max(ed) - min(st)``, as the standard's R1 does (equal to the IoU whenever they overlap)."""
    inter = np.maximum(0, np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]))
    hull = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)


def voc_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray | float:
    r"""Interpolated average precision (PASCAL VOC 2010+, ActivityNet detection).

    .. math:: \mathrm{AP} = \sum_i (r_i - r_{i-1})\, p^{\mathrm{interp}}(r_i), \qquad
              p^{\mathrm{interp}}(r) = \max_{r' \ge r} p(r')

    with the curve padded by ``(r, p) = (0, 0)`` in front and ``(1, 0)`` behind; the sum runs
    over the points where recall changes.

    Args:
        precision: ``[K]`` precision after each ranked prediction, or ``[T, K]`` (one curve per
            row, e.g. per IoU threshold).
        recall: same shape, recall after each ranked prediction (non-decreasing along K).

    Returns:
        AP in ``[0, 1]``: a float for 1-D input, ``[T]`` for 2-D input.
    """
    prec2, rec2 = np.atleast_2d(precision), np.atleast_2d(recall)
    pad0, pad1 = np.zeros((len(prec2), 1)), np.ones((len(prec2), 1))
    mprec = np.concatenate([pad0, prec2, pad0], axis=1)  # (T, K + 2)
    mrec = np.concatenate([pad0, rec2, pad1], axis=1)
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]  # envelope, from the right
    step = mrec[:, 1:] - mrec[:, :-1]  # (T, K + 1)
    term = step * mprec[:, 1:]
    # Sum each row's terms where recall changes, one compact row at a time (np.sum's order, so
    # the floats equal the standard's bit for bit).
    ap = np.array([np.sum(term[t][mrec[t, 1:] != mrec[t, :-1]]) for t in range(len(term))])
    return float(ap[0]) if np.ndim(precision) == 1 else ap


def moment_ap(pred_windows: np.ndarray, gt_windows: np.ndarray,
              iou_thresholds: Sequence[float] = IOU_THRESHOLDS) -> np.ndarray:
    """Detection average precision of one query at each IoU threshold.

    Predictions are ranked by score, descending; ties keep their listed order. At threshold
    ``t`` each prediction, in rank order, is a true positive if some GT window not yet matched
    has IoU >= ``t`` with it; it takes the unmatched one of highest IoU. Every other prediction
    is a false positive. Each GT window counts once, so a duplicated GT window needs two matching
    predictions. Then :func:`voc_ap`.

    GT windows of equal IoU are tried in the order of ``np.argsort(iou)[::-1]``, as the standard
    does. numpy's default sort is not stable: with its SIMD sorts (x86 AVX2 / AVX-512) equal
    values come out in an order that depends on the machine and the numpy version. So when two
    such windows both pass ``t`` and a later prediction could take only one of them, the
    standard's AP depends on the machine; this function follows it on the machine it runs on
    (deterministic there). QVHighlights GT windows do not overlap, so this does not arise
    for ``t >= 0.5`` on that data.

    Args:
        pred_windows: ``[K, 3]`` rows ``(st, ed, score)``; the caller truncates to the top 10.
        gt_windows: ``[M, 2]`` rows ``(st, ed)``, ``M >= 1``.
        iou_thresholds: ``T`` thresholds.

    Returns:
        ``[T]`` AP in ``[0, 1]`` (zeros when ``K == 0``).
    """
    thr = np.asarray(iou_thresholds, dtype=np.float64)[:, None]  # (T, 1)
    n_thr, n_pred, n_gt = len(thr), len(pred_windows), len(gt_windows)
    if n_pred == 0:
        return np.zeros(n_thr)
    pred = np.asarray(pred_windows, dtype=np.float64)
    pred = pred[np.argsort(-pred[:, 2], kind="stable")]  # rank by score, stable
    iou = temporal_iou(pred, gt_windows)  # (K, M)
    tp = np.zeros((n_thr, n_pred), dtype=bool)
    if n_gt == 1:  # one GT window: the first ranked prediction that reaches t takes it
        cand = iou[:, 0][None, :] >= thr  # (T, K)
        hit = cand.any(axis=1)
        tp[np.flatnonzero(hit), cand.argmax(axis=1)[hit]] = True
    else:
        locked = np.zeros((n_thr, n_gt), dtype=bool)  # GT already matched, per threshold
        for k in range(n_pred):
            gt_order = np.argsort(iou[k])[::-1]  # IoU descending, ties as the standard's
            cand = (iou[k, gt_order][None, :] >= thr) & ~locked[:, gt_order]  # (T, M)
            hit = cand.any(axis=1)  # (T,)
            first = gt_order[cand.argmax(axis=1)]  # best unmatched GT per threshold
            tp[hit, k] = True
            locked[np.flatnonzero(hit), first[hit]] = True
    tp_cum = np.cumsum(tp, axis=1).astype(np.float64)  # (T, K)
    fp_cum = np.cumsum(~tp, axis=1).astype(np.float64)
    recall = tp_cum / float(n_gt)
    precision = tp_cum / (tp_cum + fp_cum)
    return voc_ap(precision, recall)


def _in_bucket(gt_windows: np.ndarray, bucket: str) -> np.ndarray:
    """GT windows of one query whose length lies in ``bucket`` (all of them for "full")."""
    if bucket == "full":
        return gt_windows
    lo, hi = LENGTH_BUCKETS[bucket]
    length = gt_windows[:, 1] - gt_windows[:, 0]
    return gt_windows[(lo < length) & (length <= hi)]


def eval_moment_retrieval(pred_windows: Mapping[Any, np.ndarray],
                          gt_windows: Mapping[Any, np.ndarray],
                          max_pred_windows: int = MAX_PRED_WINDOWS) -> dict[str, dict]:
    r"""MR mAP and R1 over all queries, for "full" and each length bucket.

    For a bucket, keep the queries with at least one GT window of that length and, of those,
    only the GT windows of that length (predictions untouched). Then

    - ``MR-mAP[t]`` = mean over queries of :func:`moment_ap` at ``t`` over the first
      ``max_pred_windows`` predicted windows as listed; ``MR-mAP["average"]`` = mean over ``t``.
    - ``MR-R1[t]`` = fraction of queries whose first listed window has IoU >= ``t`` with the GT
      window it overlaps most (as the standard: the first listed, not the best scored; files
      written by :func:`~readpvla.metrics.tlg.windows_to_pred_line` are sorted, so the two agree).

    Args:
        pred_windows: qid -> ``[K, 3]`` windows ``(st, ed, score)``, ``K >= 1``, validated.
        gt_windows: qid -> ``[M, 2]`` windows, ``M >= 1``, the same qids.
        max_pred_windows: how many listed windows count for mAP (10 in the standard).

    Returns:
        ``{bucket: {"MR-mAP": {"0.5": .., ..., "0.95": .., "average": ..},
        "MR-R1": {"0.5": .., ..., "0.95": ..}, "num_queries": n}}`` in percent (2 decimals), for
        "full" and for each bucket that has at least one query; an empty bucket is left out (the
        standard raises a ``TypeError`` there).
    """
    qids = list(pred_windows)
    results: dict[str, dict] = {}
    cache: dict[tuple, np.ndarray] = {}  # (qid, GT windows) -> AP; most buckets repeat "full"

    def ap_of(q: Any, gts: np.ndarray) -> np.ndarray:
        key = (q, gts.tobytes())
        if key not in cache:
            cache[key] = moment_ap(pred_windows[q][:max_pred_windows], gts)
        return cache[key]

    for bucket in ["short", "middle", "long", "full"]:
        gts = {q: _in_bucket(gt_windows[q], bucket) for q in qids}
        kept = [q for q in qids if len(gts[q]) > 0]
        if not kept:
            continue
        ap = np.stack([ap_of(q, gts[q]) for q in kept])  # (Q, T)
        ap_thr = ap.mean(axis=0)  # (T,) mAP per threshold
        mr_map = {str(t): percent(v) for t, v in zip(IOU_THRESHOLDS, ap_thr)}
        mr_map["average"] = percent(np.mean(ap_thr))

        top1 = np.stack([pred_windows[q][0, :2] for q in kept])  # (Q, 2), first listed
        best_gt = np.stack([gts[q][np.argmax(temporal_iou(top1[i:i + 1], gts[q])[0])]
                            for i, q in enumerate(kept)])  # (Q, 2)
        iou = _hull_iou(top1, best_gt)
        mr_r1 = {str(t): float(f"{np.mean(iou >= t) * 100:.2f}") for t in IOU_THRESHOLDS}
        results[bucket] = {"MR-mAP": mr_map, "MR-R1": mr_r1, "num_queries": len(kept)}
    return results


def moment_scores_per_query(pred_windows: Mapping[Any, np.ndarray],
                            gt_windows: Mapping[Any, np.ndarray],
                            max_pred_windows: int = MAX_PRED_WINDOWS
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Per-query MR quantities of the "full" bucket, in the qid order of ``pred_windows``.

    Returns:
        ``(ap, iou)``: ``ap`` ``[Q, T]`` is :func:`moment_ap` of each query at each threshold
        (fractions, unrounded), so ``MR-full-mAP`` = ``percent(ap.mean())`` and
        ``MR-full-mAP@t`` = ``percent(ap[:, t].mean())``; ``iou`` ``[Q]`` is the IoU of each
        query's first listed window with the GT window it overlaps most (as the standard's R1),
        so ``MR-full-R1@t`` = share of queries with ``iou >= t``. The same computation as
        :func:`eval_moment_retrieval`'s "full" bucket, kept per query.
    """
    qids = list(pred_windows)
    ap = np.stack([moment_ap(pred_windows[q][:max_pred_windows], gt_windows[q])
                   for q in qids])  # (Q, T)
    top1 = np.stack([pred_windows[q][0, :2] for q in qids])  # (Q, 2), first listed
    best_gt = np.stack([gt_windows[q][np.argmax(temporal_iou(top1[i:i + 1], gt_windows[q])[0])]
                        for i, q in enumerate(qids)])  # (Q, 2)
    return ap, _hull_iou(top1, best_gt)
