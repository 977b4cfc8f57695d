"""Temporal language grounding (TLG) evaluation: QVHighlights JSONL in, the standard metrics out.

``evaluate_tlg`` gives exactly the numbers of Moment-DETR's ``standalone_eval/eval.py`` (the
evaluation users of QVHighlights run), from the same JSONL lines:

- ground truth: ``{qid, query, duration, vid, relevant_windows: [[st, ed], ...],
  relevant_clip_ids: [...], saliency_scores: [[a1, a2, a3] per relevant clip]}``
- prediction: ``{qid, query, vid, pred_relevant_windows: [[st, ed, score], ...] (best first),
  pred_saliency_scores: [one per 2 s clip]}``

Unlike the standard, bad input is refused with a ``ValueError`` that names the line (file:line,
or ``predictions[i]`` / ``ground_truth[i]``) and the qid, instead of an ``AssertionError``, a
crash or a silent NaN. The metric definitions live in :mod:`~readpvla.metrics.moment` (MR) and
:mod:`~readpvla.metrics.highlight` (HL).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from readpvla.metrics.highlight import eval_highlight, saliency_matrix
from readpvla.metrics.moment import MAX_PRED_WINDOWS, eval_moment_retrieval

BRIEF_KEYS: tuple[str, ...] = (
    "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75",
    "MR-long-mAP", "MR-middle-mAP", "MR-short-mAP",
    "HL-min-Fair-mAP", "HL-min-Fair-Hit1", "HL-min-Good-mAP", "HL-min-Good-Hit1",
    "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1",
)  # the standard's "brief" keys, in its order


# ----------------------------------------------------------------------------- JSONL files

def _read_jsonl(path: str | Path) -> tuple[list[Any], list[str]]:
    """Records of a JSONL file and their locations ``"path:line"``; blank lines are skipped."""
    records, locs = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON line: {e.msg} "
                                 f"(column {e.colno})") from None
            locs.append(f"{path}:{lineno}")
    return records, locs


def load_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON Lines file (one JSON object per line; blank lines skipped).

    Raises:
        ValueError: a line is not valid JSON (names ``file:line``) or not a JSON object.
    """
    records, locs = _read_jsonl(path)
    for rec, loc in zip(records, locs):
        if not isinstance(rec, dict):
            raise ValueError(f"{loc}: expected a JSON object, got {type(rec).__name__}")
    return records


def save_jsonl(records: Sequence[dict], path: str | Path) -> None:
    """Write ``records`` as JSON Lines (one object per line)."""
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


# ----------------------------------------------------------------------------- validation

def _has_bool(value: list | tuple, ndim: int) -> bool:
    """Whether a numeric list (numpy turns ``True`` into 1) holds a bool."""
    if ndim == 1:
        return bool in map(type, value)
    return any(bool in map(type, row) for row in value)


def _numbers(value: Any, where: str, field: str, ndim: int, ncols: int | None = None) -> np.ndarray:
    """``value`` as a float64 array of ``ndim`` dims (and ``ncols`` columns), non-empty, finite."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: {field} must be a list, got {type(value).__name__}")
    if len(value) == 0:
        raise ValueError(f"{where}: {field} is empty")
    try:
        arr = np.asarray(value)
    except ValueError:
        raise ValueError(f"{where}: {field} must be a rectangular list of numbers") from None
    if arr.dtype.kind not in "iuf" or _has_bool(value, arr.ndim):
        raise ValueError(f"{where}: {field} must contain only numbers, got {value!r:.120}")
    shape_ok = arr.ndim == ndim and (ncols is None or arr.shape[1] == ncols)
    if not shape_ok:
        want = f"[n, {ncols}]" if ncols is not None else ("[n]" if ndim == 1 else f"{ndim}-D")
        raise ValueError(f"{where}: {field} must have shape {want}, got {list(arr.shape)}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))[0])
        raise ValueError(f"{where}: {field}[{i}] = {value[i]!r} is NaN or infinite")
    return arr


def _check_windows(arr: np.ndarray, where: str, field: str, strict: bool) -> None:
    bad = arr[:, 1] <= arr[:, 0] if strict else arr[:, 1] < arr[:, 0]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rel = "<=" if strict else "<"
        raise ValueError(f"{where}: {field}[{i}] = {arr[i].tolist()} has end {rel} start")


def _qids(records: Sequence[Any], locs: Sequence[str], what: str) -> list[Any]:
    """qid of every record; checks records are dicts with a unique int/str qid."""
    qids, seen = [], {}
    for rec, loc in zip(records, locs):
        if not isinstance(rec, dict):
            raise ValueError(f"{loc}: expected a JSON object (dict), got {type(rec).__name__}")
        if "qid" not in rec:
            raise ValueError(f"{loc}: missing field 'qid'")
        qid = rec["qid"]
        if isinstance(qid, bool) or not isinstance(qid, int | str):
            raise ValueError(f"{loc}: qid must be an int or a str, got {qid!r}")
        if qid in seen:
            raise ValueError(f"{loc}: duplicate qid {qid!r} in {what} (first at {seen[qid]})")
        seen[qid] = loc
        qids.append(qid)
    return qids


def _field(rec: dict, name: str, where: str) -> Any:
    if name not in rec:
        raise ValueError(f"{where}: missing field {name!r}")
    return rec[name]


def _parse(preds: Sequence[Any], pred_locs: Sequence[str], gts: Sequence[Any],
           gt_locs: Sequence[str], clip_length: float) -> tuple[dict | None, ...]:
    """Validate both sides; return qid -> arrays for MR (pred, GT) and HL (pred, GT), or None
    for a task that cannot be evaluated (no prediction field, or no GT labels at all)."""
    for side, name in ((preds, "predictions"), (gts, "ground truth")):
        if isinstance(side, str | bytes | dict) or not isinstance(side, Sequence):
            raise TypeError(f"{name} must be a list of dicts, got {type(side).__name__}")
        if len(side) == 0:
            raise ValueError(f"{name} is empty")
    pred_qids = _qids(preds, pred_locs, "predictions")
    gt_qids = _qids(gts, gt_locs, "ground truth")
    pred_set, gt_set = set(pred_qids), set(gt_qids)
    if pred_set != gt_set:
        missing = [q for q in gt_qids if q not in pred_set]
        extra = [q for q in pred_qids if q not in gt_set]
        raise ValueError(
            "prediction and ground-truth qids differ: "
            f"{len(missing)} GT qid(s) without prediction (first: {missing[:5]}), "
            f"{len(extra)} predicted qid(s) not in the GT (first: {extra[:5]})")

    has_mr = any("pred_relevant_windows" in p for p in preds)
    has_hl = any("pred_saliency_scores" in p for p in preds)
    if not (has_mr or has_hl):
        raise ValueError(f"{pred_locs[0]}: predictions have neither 'pred_relevant_windows' "
                         "nor 'pred_saliency_scores'")
    gt_mr = any("relevant_windows" in g for g in gts)
    gt_hl = any("saliency_scores" in g for g in gts)
    do_mr, do_hl = has_mr and gt_mr, has_hl and gt_hl
    if not (do_mr or do_hl):
        have = " and ".join(f for f, h in (("pred_relevant_windows", has_mr),
                                            ("pred_saliency_scores", has_hl)) if h)
        raise ValueError(f"nothing to evaluate: the predictions have {have} but the ground "
                         "truth has no matching labels (relevant_windows for moment retrieval, "
                         "saliency_scores for highlight detection)")

    mr_pred, mr_gt, hl_pred, hl_gt = {}, {}, {}, {}
    for p, loc, q in zip(preds, pred_locs, pred_qids):
        where = f"{loc} (qid {q!r})"
        if do_mr:
            w = _numbers(_field(p, "pred_relevant_windows", where), where,
                         "pred_relevant_windows", ndim=2, ncols=3)
            _check_windows(w, where, "pred_relevant_windows", strict=False)
            mr_pred[q] = w
        if do_hl:
            hl_pred[q] = _numbers(_field(p, "pred_saliency_scores", where), where,
                                  "pred_saliency_scores", ndim=1)
    n_annotators = None
    for g, loc, q in zip(gts, gt_locs, gt_qids):
        where = f"{loc} (qid {q!r})"
        if do_mr:
            w = _numbers(_field(g, "relevant_windows", where), where, "relevant_windows",
                         ndim=2, ncols=2)
            _check_windows(w, where, "relevant_windows", strict=True)
            mr_gt[q] = w
        if do_hl:
            hl_gt[q] = _parse_saliency(g, where, clip_length)
            n_a = hl_gt[q][2].shape[1]
            if n_a and n_annotators and n_a != n_annotators:
                raise ValueError(f"{where}: saliency_scores has {n_a} annotator scores per "
                                 f"clip, earlier lines have {n_annotators}")
            n_annotators = n_annotators or n_a
    for q, (duration, ids, scores) in hl_gt.items():  # dense [n_clips, A]
        scores = scores if len(ids) else np.zeros((0, n_annotators or 3))
        hl_gt[q] = saliency_matrix(duration, ids, scores, clip_length)
    return ((mr_pred, mr_gt) if do_mr else (None, None)) + \
        ((hl_pred, hl_gt) if do_hl else (None, None))


def _parse_saliency(g: dict, where: str, clip_length: float) -> tuple[float, np.ndarray,
                                                                       np.ndarray]:
    """``(duration, relevant_clip_ids [R], saliency_scores [R, A])`` of one GT line, validated
    (``R = 0`` allowed: no relevant clip, every clip scores 0)."""
    duration = _field(g, "duration", where)
    if isinstance(duration, bool) or not isinstance(duration, int | float) \
            or not math.isfinite(duration) or duration < clip_length:
        raise ValueError(f"{where}: duration must be a finite number >= clip_length "
                         f"({clip_length}), got {duration!r}")
    n_clips = int(duration / clip_length)
    ids_raw = _field(g, "relevant_clip_ids", where)
    scores_raw = _field(g, "saliency_scores", where)
    if ids_raw == [] and scores_raw == []:
        return duration, np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    ids = _numbers(ids_raw, where, "relevant_clip_ids", ndim=1)
    scores = _numbers(scores_raw, where, "saliency_scores", ndim=2)
    if np.any(ids != np.round(ids)) or ids.min() < 0 or ids.max() >= n_clips:
        raise ValueError(f"{where}: relevant_clip_ids must be integers in [0, {n_clips}) "
                         f"for duration {duration} s, got {ids_raw!r:.120}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{where}: relevant_clip_ids has duplicates")
    if len(scores) != len(ids):
        raise ValueError(f"{where}: saliency_scores has {len(scores)} rows but "
                         f"relevant_clip_ids has {len(ids)}")
    return duration, ids.astype(np.int64), scores


# ----------------------------------------------------------------------------- evaluation

def _evaluate(preds: Sequence[Any], pred_locs: Sequence[str], gts: Sequence[Any],
              gt_locs: Sequence[str], verbose: bool, detailed: bool, max_pred_windows: int,
              clip_length: float) -> dict:
    if isinstance(max_pred_windows, bool) or not isinstance(max_pred_windows, int) \
            or max_pred_windows < 1:
        raise ValueError(f"max_pred_windows must be a positive int, got {max_pred_windows!r}")
    if not (isinstance(clip_length, int | float) and clip_length > 0):
        raise ValueError(f"clip_length must be a positive number, got {clip_length!r}")
    t0 = time.perf_counter()
    mr_pred, mr_gt, hl_pred, hl_gt = _parse(preds, pred_locs, gts, gt_locs, clip_length)
    tables: dict[str, Any] = {}
    if mr_pred is not None:
        tables.update(eval_moment_retrieval(mr_pred, mr_gt, max_pred_windows))
    if hl_pred is not None:
        tables.update(eval_highlight(hl_pred, hl_gt))
    tables = dict(sorted(tables.items()))  # the standard's order: "HL-min-...", "full", ...
    brief = {}
    for key in BRIEF_KEYS:
        head, _, tail = key.rpartition("-")  # e.g. "MR-full" and "mAP@0.5"
        if key.startswith("MR-") and head[3:] in tables:
            metric, _, thr = tail.partition("@")
            brief[key] = tables[head[3:]]["MR-" + metric][thr or "average"]
        elif key.startswith("HL-") and head in tables:
            brief[key] = tables[head]["HL-" + tail]
    if verbose:
        for bucket in ("short", "middle", "long", "full"):
            if bucket in tables:
                n = tables[bucket]["num_queries"]
                print(f"[evaluate_tlg] MR {bucket}: {n}/{len(preds)} queries", file=sys.stderr)
        print(f"[evaluate_tlg] {len(preds)} queries in {time.perf_counter() - t0:.2f} s",
              file=sys.stderr)
    return {"brief": brief, **tables} if detailed else brief


def evaluate_tlg(preds: list[dict], gts: list[dict], verbose: bool = False,
                 detailed: bool = False, *, max_pred_windows: int = MAX_PRED_WINDOWS,
                 clip_length: float = 2.0) -> dict:
    """QVHighlights moment retrieval + highlight detection metrics, as the standard evaluation.

    MR (when the predictions have ``pred_relevant_windows`` and the GT ``relevant_windows``):
    ``MR-{bucket}-mAP`` = mean over queries and IoU thresholds 0.5:0.05:0.95 of detection AP over
    the first 10 listed windows (``@0.5``, ``@0.75``: one threshold); buckets by GT window length,
    short (0, 10], middle (10, 30], long (30, 150] s, full = all; ``MR-full-R1@t`` = share of
    queries whose first listed window has IoU >= t with its best-overlapping GT window. See
    :func:`~readpvla.metrics.moment.eval_moment_retrieval`.

    HL (when the predictions have ``pred_saliency_scores`` and the GT ``saliency_scores``):
    ``HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}`` with positives = annotator score >= 2, 3, 4; see
    :func:`~readpvla.metrics.highlight.eval_highlight`.

    Args:
        preds: prediction lines (dicts), one per qid.
        gts: ground-truth lines (dicts), the same qids.
        verbose: print per-bucket query counts and the time taken to stderr.
        detailed: also return the per-threshold tables (see Returns).
        max_pred_windows: listed windows scored for mAP (10 in the standard).
        clip_length: seconds per saliency clip (2 in QVHighlights).

    Returns:
        ``detailed=False``: the standard's "brief" dict, values in percent rounded to 2 decimals:
        ``MR-full-R1@0.5``, ``MR-full-R1@0.7``, ``MR-full-mAP``, ``MR-full-mAP@0.5``,
        ``MR-full-mAP@0.75``, ``MR-long-mAP``, ``MR-middle-mAP``, ``MR-short-mAP``,
        ``HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}``. A task that cannot be evaluated (no GT labels
        for it, or no prediction field for it) leaves out its keys; a length bucket with no GT
        window leaves out its ``MR-<bucket>-mAP`` (never NaN).

        ``detailed=True``: the standard's full layout and key order, ``{"brief": <as above>,
        "HL-min-Fair" | "HL-min-Good" | "HL-min-VeryGood": {"HL-mAP": .., "HL-Hit1": ..},
        "full" | "long" | "middle" | "short": {"MR-mAP": {"0.5": .., .., "0.95": ..,
        "average": ..}, "MR-R1": {"0.5": .., .., "0.95": ..}, "num_queries": n}}``
        (``num_queries``: queries with a GT window in the bucket; not in the standard).

    Raises:
        ValueError: differing qid sets (lists the missing / extra qids), duplicate qids, missing
            fields, non-numeric / NaN / infinite numbers, windows with end < start (GT: end <=
            start), empty window or saliency lists, clip ids outside the video. The message
            names the line (``predictions[i]`` / ``ground_truth[i]``) and the qid.
        TypeError: ``preds`` or ``gts`` is not a list.
    """
    return _evaluate(preds, [f"predictions[{i}]" for i in range(len(preds))],
                     gts, [f"ground_truth[{i}]" for i in range(len(gts))],
                     verbose, detailed, max_pred_windows, clip_length)


def evaluate_tlg_files(pred_path: str | Path, gt_path: str | Path, verbose: bool = False,
                       detailed: bool = False, *, max_pred_windows: int = MAX_PRED_WINDOWS,
                       clip_length: float = 2.0) -> dict:
    """:func:`evaluate_tlg` on two JSONL files; errors name ``file:line`` and the qid."""
    preds, pred_locs = _read_jsonl(pred_path)
    gts, gt_locs = _read_jsonl(gt_path)
    return _evaluate(preds, pred_locs, gts, gt_locs, verbose, detailed, max_pred_windows,
                     clip_length)


def tlg_main(argv: list[str] | None = None) -> int:
    """Command line: ``readpvla eval-tlg --pred PRED.jsonl --gt GT.jsonl [--out M.json]
    [--detailed]``. Prints the metrics as JSON; returns 0, or 1 on bad input (message on
    stderr)."""
    parser = argparse.ArgumentParser(
        prog="readpvla eval-tlg",
        description="QVHighlights moment retrieval / highlight detection evaluation "
                    "(same numbers as Moment-DETR's standalone_eval).")
    parser.add_argument("--pred", required=True, help="prediction JSONL file")
    parser.add_argument("--gt", required=True, help="ground-truth JSONL file")
    parser.add_argument("--out", help="also write the JSON metrics to this file")
    parser.add_argument("--detailed", action="store_true",
                        help="per-threshold and per-bucket tables, not only the brief keys")
    args = parser.parse_args(argv)
    try:
        result = evaluate_tlg_files(args.pred, args.gt, detailed=args.detailed)
    except (ValueError, OSError) as e:
        print(f"readpvla eval-tlg: error: {e}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


# ----------------------------------------------------------------------------- predictions

def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def top_k_windows(windows: Any, k: int = MAX_PRED_WINDOWS) -> np.ndarray:
    """The ``k`` best-scored windows, best first (no NMS; ties keep their order).

    Args:
        windows: ``[K, 3]`` array-like (numpy, torch, lists) of ``(st, ed, score)``.
        k: how many to keep.

    Returns:
        ``[min(K, k), 3]`` float64 array sorted by score, descending.
    """
    w = _to_numpy(windows)
    if w.ndim != 2 or w.shape[1] != 3:
        raise ValueError(f"windows must have shape [K, 3] (st, ed, score), got {list(w.shape)}")
    if not np.isfinite(w).all():
        raise ValueError("windows contain NaN or infinite values")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return w[np.argsort(-w[:, 2], kind="stable")[:k]]


def windows_to_pred_line(qid: int | str, query: str, vid: str, windows: Any, saliency: Any,
                         k: int = MAX_PRED_WINDOWS) -> dict:
    """One prediction line in the QVHighlights format, windows sorted best first.

    Args:
        qid, query, vid: copied from the GT line.
        windows: ``[K, 3]`` ``(st, ed, score)`` in seconds (numpy, torch or lists).
        saliency: ``[n_clips]`` predicted saliency, one score per 2 s clip.
        k: windows kept (the evaluation scores the first 10).

    Returns:
        ``{"qid", "query", "vid", "pred_relevant_windows": [[st, ed, score], ...],
        "pred_saliency_scores": [...]}`` with plain Python numbers (JSON-ready).
    """
    s = _to_numpy(saliency)
    if s.ndim != 1 or len(s) == 0 or not np.isfinite(s).all():
        raise ValueError(f"saliency must be a non-empty finite [n_clips] vector, "
                         f"got shape {list(s.shape)}")
    if isinstance(qid, np.integer):
        qid = int(qid)
    return {"qid": qid, "query": query, "vid": vid,
            "pred_relevant_windows": top_k_windows(windows, k).tolist(),
            "pred_saliency_scores": s.tolist()}
