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

Beyond the standard: ``group_by=FIELD`` gives the metrics per value of any GT field (e.g. the
synthetic benchmark's query ``kind``: plain / after / before) beside ``"all"``, and
:func:`per_query_tlg` gives the per-query scores whose mean is each table number (for paired
bootstrap intervals, :mod:`readpvla.experiment.intervals`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from readpvla.metrics.highlight import (
    SALIENCY_LEVELS,
    eval_highlight,
    highlight_scores_per_query,
    saliency_matrix,
)
from readpvla.metrics.moment import (
    IOU_THRESHOLDS,
    MAX_PRED_WINDOWS,
    eval_moment_retrieval,
    moment_scores_per_query,
)

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
                 clip_length: float = 2.0, group_by: str | None = None,
                 group_map: Mapping[Any, Any] | None = None) -> dict:
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
        group_by: a GT field (e.g. ``"kind"``, ``"domain"``): also evaluate each group of
            queries that share its value (see Returns). Every GT line must have it, with a str,
            int, float or bool value.
        group_map: with ``group_by``, relabel values before grouping, e.g.
            ``{"after": "temporal", "before": "temporal"}``; values not in it keep their own.

    Returns:
        With ``group_by``: ``{"all": <the result without group_by>, "<value>": <the same
        evaluation on that group's queries only>, ...}`` (values as strings, sorted; ``"all"``
        is the unchanged overall result). Every number below is a mean over queries (R1, Hit1,
        and mAP over thresholds and, for HL, annotators), so a group's number weighted by its
        query count sums back to ``"all"``'s up to the 2-decimal rounding (a length bucket:
        weighted by the group's ``num_queries`` in that bucket).

        Without ``group_by``, ``detailed=False``: the standard's "brief" dict, values in percent rounded to 2 decimals:
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
            names the line (``predictions[i]`` / ``ground_truth[i]``) and the qid. With
            ``group_by``: a field some GT line lacks or whose value is not a scalar (names the
            field, the line and the fields every GT line has), or a value (after ``group_map``)
            equal to ``"all"``.
        TypeError: ``preds`` or ``gts`` is not a list.
    """
    pred_locs = [f"predictions[{i}]" for i in range(len(preds))]
    gt_locs = [f"ground_truth[{i}]" for i in range(len(gts))]
    return _evaluate_grouped(preds, pred_locs, gts, gt_locs, verbose, detailed,
                             max_pred_windows, clip_length, group_by, group_map)


def evaluate_tlg_files(pred_path: str | Path, gt_path: str | Path, verbose: bool = False,
                       detailed: bool = False, *, max_pred_windows: int = MAX_PRED_WINDOWS,
                       clip_length: float = 2.0, group_by: str | None = None,
                       group_map: Mapping[Any, Any] | None = None,
                       latent_file: str | Path | None = None) -> dict:
    """:func:`evaluate_tlg` on two JSONL files; errors name ``file:line`` and the qid.

    With ``group_by`` a field the GT lines lack, the per-query fields of a latent script (the
    synthetic benchmark's query ``kind``, :func:`readpvla.data.qvh.read_latent_fields`) are
    joined to them by qid first: ``latent_file``, or by default ``ROOT/latent/NAME`` beside
    ``ROOT/annotations/NAME`` when it exists. A GT line's own fields win.
    """
    preds, pred_locs = _read_jsonl(pred_path)
    gts, gt_locs = _read_jsonl(gt_path)
    if group_by is not None:
        gts = _with_latent_field(gts, gt_path, group_by, latent_file)
    return _evaluate_grouped(preds, pred_locs, gts, gt_locs, verbose, detailed,
                             max_pred_windows, clip_length, group_by, group_map)


def _with_latent_field(gts: list[Any], gt_path: str | Path, field: str,
                       latent_file: str | Path | None) -> list[Any]:
    """``gts`` with the latent script's per-query fields (:data:`readpvla.data.qvh.LATENT_FIELDS`)
    added where a line lacks them (see :func:`evaluate_tlg_files`); unchanged when every line
    has ``field`` or no script is found."""
    if all(isinstance(g, dict) and field in g for g in gts):
        return gts
    if latent_file is None:
        gt_path = Path(gt_path)
        guess = gt_path.parent.parent / "latent" / gt_path.name
        if gt_path.parent.name != "annotations" or not guess.is_file():
            return gts
        latent_file = guess
    from readpvla.data.qvh import read_latent_fields

    extra = read_latent_fields(latent_file)
    return [{**extra[g["qid"]], **g} if isinstance(g, dict) and g.get("qid") in extra else g
            for g in gts]


def _group_values(gts: Sequence[Any], gt_locs: Sequence[str], group_by: Any,
                  group_map: Mapping[Any, Any] | None) -> list[str]:
    """The group label of every GT line (``str`` of the field's value after ``group_map``)."""
    if not isinstance(group_by, str) or not group_by:
        raise ValueError(f"group_by must be a field name (a non-empty str), got {group_by!r}")
    if group_map is not None and not isinstance(group_map, Mapping):
        raise ValueError(f"group_map must be a mapping (value -> label), got "
                         f"{type(group_map).__name__}")

    def available() -> list[str]:
        keys = [set(k for k, v in g.items() if isinstance(v, str | int | float | bool))
                for g in gts]
        return sorted(set.intersection(*keys)) if keys else []

    labels = []
    for g, loc in zip(gts, gt_locs):
        if group_by not in g:
            n = sum(group_by not in x for x in gts)
            raise ValueError(f"cannot group by {group_by!r}: {loc} (qid {g.get('qid')!r}) has no "
                             f"field {group_by!r} ({n} of {len(gts)} GT lines lack it); fields "
                             f"every GT line has: {available()}")
        value = g[group_by]
        if not isinstance(value, str | int | float | bool):
            raise ValueError(f"cannot group by {group_by!r}: {loc} (qid {g.get('qid')!r}) has "
                             f"{group_by} = {value!r:.60}, not a str, int, float or bool; fields "
                             f"with such values on every GT line: {available()}")
        if group_map is not None and value in group_map:
            value = group_map[value]
        label = str(value)
        if label == "all":
            raise ValueError(f"cannot group by {group_by!r}: {loc} has the value 'all', which "
                             "names the overall result; relabel it with group_map")
        labels.append(label)
    return labels


def _evaluate_grouped(preds: Sequence[Any], pred_locs: Sequence[str], gts: Sequence[Any],
                      gt_locs: Sequence[str], verbose: bool, detailed: bool,
                      max_pred_windows: int, clip_length: float, group_by: str | None,
                      group_map: Mapping[Any, Any] | None) -> dict:
    """:func:`_evaluate`, and with ``group_by`` also on each group's queries (see
    :func:`evaluate_tlg`)."""
    if group_by is None:
        if group_map is not None:
            raise ValueError("group_map needs group_by")
        return _evaluate(preds, pred_locs, gts, gt_locs, verbose, detailed, max_pred_windows,
                         clip_length)
    overall = _evaluate(preds, pred_locs, gts, gt_locs, verbose, detailed, max_pred_windows,
                        clip_length)  # validates every line first
    labels = _group_values(gts, gt_locs, group_by, group_map)
    by_qid = {g["qid"]: lab for g, lab in zip(gts, labels)}
    out: dict[str, Any] = {"all": overall}
    for lab in sorted(set(labels)):
        p_idx = [i for i, p in enumerate(preds) if by_qid[p["qid"]] == lab]
        g_idx = [i for i, g in enumerate(gts) if by_qid[g["qid"]] == lab]
        out[lab] = _evaluate([preds[i] for i in p_idx], [pred_locs[i] for i in p_idx],
                             [gts[i] for i in g_idx], [gt_locs[i] for i in g_idx], False,
                             detailed, max_pred_windows, clip_length)
    return out


def per_query_tlg(preds: list[dict], gts: list[dict], *,
                  max_pred_windows: int = MAX_PRED_WINDOWS, clip_length: float = 2.0
                  ) -> dict[str, list]:
    """Per-query scores, in percent and unrounded, whose mean over queries is the metric of the
    same name in :func:`evaluate_tlg` (before the standard's rounding to 2 decimals).

    - ``MR-full-mAP``: the query's detection AP averaged over the IoU thresholds 0.5:0.05:0.95.
      ``MR-full-mAP`` is a mean over queries of the per-threshold means over queries, which is
      exactly the mean over queries of this per-query average (every query has all thresholds).
    - ``MR-full-mAP@0.5`` / ``@0.75``: the query's AP at that threshold.
    - ``MR-full-R1@0.5`` / ``@0.7``: 100 if the first listed window has IoU >= t with its
      best-overlapping GT window, else 0.
    - ``HL-min-{Fair,Good,VeryGood}-mAP``: the query's saliency AP averaged over its annotators
      (every query has the same annotators, so the mean over queries is the metric);
      ``-Hit1``: 100 or 0.

    The length buckets (``MR-short/middle/long-mAP``) are means over the queries that have a GT
    window of that length, with only those windows, so they have no per-query value for every
    query and are not given.

    Returns:
        ``{"qid": [...], metric: [...], ...}``, lists in the order of ``gts``; MR keys only when
        MR can be evaluated, HL keys only when HL can (as :func:`evaluate_tlg`).

    Raises:
        ValueError, TypeError: as :func:`evaluate_tlg`.
    """
    pred_locs = [f"predictions[{i}]" for i in range(len(preds))]
    gt_locs = [f"ground_truth[{i}]" for i in range(len(gts))]
    mr_pred, mr_gt, hl_pred, hl_gt = _parse(preds, pred_locs, gts, gt_locs, clip_length)
    qids = [g["qid"] for g in gts]
    out: dict[str, list] = {"qid": list(qids)}
    if mr_pred is not None:
        ap, iou = moment_scores_per_query({q: mr_pred[q] for q in qids}, mr_gt, max_pred_windows)
        out["MR-full-mAP"] = (100 * ap.mean(axis=1)).tolist()
        for t in ("0.5", "0.75"):
            out[f"MR-full-mAP@{t}"] = (100 * ap[:, [str(x) for x in IOU_THRESHOLDS].index(t)]
                                       ).tolist()
        for t in (0.5, 0.7):
            out[f"MR-full-R1@{t}"] = (100.0 * (iou >= t)).tolist()
    if hl_pred is not None:
        per_level = highlight_scores_per_query({q: hl_pred[q] for q in qids}, hl_gt)
        for name in SALIENCY_LEVELS:
            ap_hl, hit = per_level[f"HL-min-{name}"]
            out[f"HL-min-{name}-mAP"] = (100 * ap_hl).tolist()
            out[f"HL-min-{name}-Hit1"] = (100 * hit).tolist()
    return out


def _label_pair(text: str) -> tuple[str, str]:
    value, sep, label = text.partition("=")
    if not sep or not value or not label:
        raise argparse.ArgumentTypeError(f"expected VALUE=LABEL, got {text!r}")
    return value, label


def tlg_main(argv: list[str] | None = None) -> int:
    """Command line: ``readpvla eval-tlg --pred PRED.jsonl --gt GT.jsonl [--out M.json]
    [--detailed] [--group-by FIELD [--group-map VALUE=LABEL ...] [--latent LATENT.jsonl]]``.
    Prints the metrics as JSON; returns 0, or 1 on bad input (message on stderr)."""
    parser = argparse.ArgumentParser(
        prog="readpvla eval-tlg",
        description="QVHighlights moment retrieval / highlight detection evaluation "
                    "(same numbers as Moment-DETR's standalone_eval).")
    parser.add_argument("--pred", required=True, help="prediction JSONL file")
    parser.add_argument("--gt", required=True, help="ground-truth JSONL file")
    parser.add_argument("--out", help="also write the JSON metrics to this file")
    parser.add_argument("--detailed", action="store_true",
                        help="per-threshold and per-bucket tables, not only the brief keys")
    parser.add_argument("--group-by", metavar="FIELD",
                        help="also the metrics per value of this GT field, beside 'all' (e.g. "
                             "kind: plain / after / before on the synthetic benchmark, read from "
                             "its latent script when the GT lines lack it)")
    parser.add_argument("--group-map", nargs="+", type=_label_pair, metavar="VALUE=LABEL",
                        help="with --group-by, merge values, e.g. after=temporal before=temporal")
    parser.add_argument("--latent", metavar="LATENT.jsonl",
                        help="with --group-by, the latent script to read the field from (default "
                             "ROOT/latent/NAME beside ROOT/annotations/NAME, when present)")
    args = parser.parse_args(argv)
    if (args.group_map or args.latent) and not args.group_by:
        parser.error("--group-map and --latent need --group-by")
    try:
        result = evaluate_tlg_files(args.pred, args.gt, detailed=args.detailed,
                                    group_by=args.group_by,
                                    group_map=dict(args.group_map) if args.group_map else None,
                                    latent_file=args.latent)
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
