r"""Text-video retrieval metrics: R@K, MdR, MnR in both directions, CLIP4Clip's numbers.

Every retrieval paper of this field (CLIP4Clip, RAP, READ-PVLA's retrieval tables) reports the
numbers of CLIP4Clip's ``metrics.compute_metrics`` (Luo et al. 2022, github.com/ArrowLuo/CLIP4Clip)
and of its multi-sentence evaluation in ``main_task_retrieval.py``. This module computes the
same numbers from a similarity matrix, refusing bad input with a ``ValueError``.

Symbols: ``S`` is the similarity matrix ``[N_t, N_v]`` (row = text / caption, column = video).
Without a caption map, ``S`` is square and text ``i`` belongs to video ``i``. With one,
``caption_video[i]`` is the video of caption ``i``. For a query ``q`` (a row of the ranked matrix)
whose true item has score ``s_q = S[q, t_q]``, its 0-based rank is the number of items ranked
before it,

.. math:: r_q = \#\{\, j : S_{qj} > s_q \,\}  \qquad (\text{no ties})

and over the ``Q`` ranks,

.. math::
    \mathrm{R@K} = \frac{100}{Q} \#\{q : r_q < K\}, \qquad
    \mathrm{MdR} = \operatorname{median}_q(r_q) + 1, \qquad
    \mathrm{MnR} = \frac{1}{Q}\sum_q r_q + 1 .

The result dicts use CLIP4Clip's keys: ``R1``, ``R5``, ``R10``, ``MR`` (= MdR, median rank, as
papers print it) and ``MeanR`` (= MnR, mean rank). Text-to-video ranks the rows of ``S``,
video-to-text the rows of ``S^T``.

Conventions (ties and several captions: CLIP4Clip's, so that the numbers equal its numbers):

- **Ties** (``ties="clip4clip"``, the default). ``compute_metrics`` sorts each row, subtracts the
  true score and keeps *every* position where the difference is 0 (``np.where`` on the whole
  matrix): a true item tied with ``e`` other items contributes the ``e + 1`` ranks
  ``g, g+1, ..., g+e`` (``g`` = items strictly above it), and R@K, MdR and MnR are taken over
  that longer list. Without ties this is one rank per query. A constant ``N x N`` matrix thus
  gives R@1 = 100/N and MdR = MnR = (N+1)/2 (the expected values under a random order), not
  R@1 = 100. ``ties="optimistic"`` keeps one rank per query, ``g`` (the first tied position);
  ``ties="pessimistic"`` keeps ``g + e``. Similarities of a trained model rarely tie exactly, and
  then the three agree.
- **Several captions per video** (a caption map where some video has two or more captions),
  CLIP4Clip's multi-sentence protocol: it reshapes ``S`` to ``[N_v, max_captions, N_v]`` padding
  with ``-inf``. Text-to-video: one rank per caption, its video's rank in its row; MdR is
  ``torch.median``'s *lower* median (the smaller of the two middle ranks when their count is even)
  + 1, and R@K is divided in float32 (torch's default dtype). CLIP4Clip's double
  ``torch.argsort`` leaves the order of tied scores unspecified, so in this direction ties take
  the optimistic rank (``"pessimistic"`` still takes the pessimistic one).
  Video-to-text (``tensor_video_to_text_sim``): every video's captions form one candidate whose
  score is the *best* of its captions,
  ``M[v, g] = max_{i: caption_video[i] = g} S[i, v]``, and ``M`` (``[N_v, N_v]``, true item on the
  diagonal) is ranked as above. A video's rank is therefore the number of *other videos* having a
  caption above its best caption, not the number of such captions.
  A caption map in which every video has exactly one caption is the one-to-one protocol (columns
  reordered), whatever the order of the captions.
- **DSL** (dual softmax at inference; Cheng et al. 2021, CAMoE, arXiv:2109.04290; RAP's "RAP*").
  The similarity of a query to a candidate is rescaled by how strongly that candidate prefers the
  query among all queries:

  .. math:: S'_{qj} = S_{qj}\cdot \frac{\exp(T S_{qj})}{\sum_{q'} \exp(T S_{q'j})}

  i.e. ``S * softmax(T * S, axis=0)`` on the matrix being ranked (``T = 100``: the form and
  value of the public implementations, e.g. X-Pool's, Gorti et al. 2022, ``sims *
  np_softmax(sims * 100, axis=0)``; CAMoE's training loss has the same shape). Text-to-video
  applies it to ``S`` (softmax over texts), video-to-text to ``S^T`` (softmax over videos), each
  direction its own prior (some code instead ranks the transpose of the text-to-video DSL
  matrix for video-to-text); with several captions per video, before the best-caption
  reduction. No DSL code of RAP is public, so this is the common form, not RAP's own.

>>> import numpy as np
>>> evaluate_retrieval(np.eye(3))["t2v"]
{'R1': 100.0, 'R5': 100.0, 'R10': 100.0, 'MR': 1.0, 'MeanR': 1.0}
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TIES: tuple[str, ...] = ("clip4clip", "optimistic", "pessimistic")
RECALL_AT: tuple[int, ...] = (1, 5, 10)  # R@K reported (CLIP4Clip's R1, R5, R10)
DSL_TEMPERATURE = 100.0  # the inverse temperature of the public DSL implementations


# ----------------------------------------------------------------------------- validation

def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like (numpy, lists, torch tensors on any device)."""
    if hasattr(x, "detach"):  # torch.Tensor (bfloat16 / float16 widened: numpy lacks bfloat16)
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def _check_scores(x: Any, name: str) -> np.ndarray:
    """``x`` as a non-empty, finite, 2-D float64 array."""
    a = _to_numpy(x)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {list(a.shape)}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {list(a.shape)})")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(f"{name}[{i}, {j}] = {a[i, j]} is NaN or infinite "
                         f"({int(bad.sum())} such entries)")
    return a


def _check_index(x: Any, name: str, length: int, high: int, what: str) -> np.ndarray:
    """``x`` as an int64 vector of ``length`` entries in ``[0, high)``."""
    a = _to_numpy(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {list(a.shape)}")
    if len(a) != length:
        raise ValueError(f"{name} has {len(a)} entries, expected {length} ({what})")
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {a[i]} is out of range [0, {high})")
    return a


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}; got {ties!r}")


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) \
            or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature)


# ----------------------------------------------------------------------------- ranks

def true_ranks(sim: Any, target: Any = None, *, ties: str = "clip4clip") -> np.ndarray:
    r"""0-based ranks of each row's true item, best first.

    .. math:: g_q = \#\{j : S_{qj} > S_{q t_q}\}, \qquad e_q = \#\{j \ne t_q : S_{qj} = S_{q t_q}\}

    Args:
        sim: ``[Q, I]`` scores (higher = better), numpy / torch / lists; finite.
        target: ``[Q]`` column of each row's true item; default ``q`` (the diagonal, ``Q <= I``).
        ties: ``"clip4clip"``: the ranks ``g_q, ..., g_q + e_q`` of every tied position, row after
            row (CLIP4Clip's ``np.where``; ``Q`` ranks when nothing ties); ``"optimistic"``:
            ``g_q``; ``"pessimistic"``: ``g_q + e_q``.

    Returns:
        int64 ranks: ``[Q]``, or ``[Q + sum_q e_q]`` for ``"clip4clip"``.
    """
    _check_ties(ties)
    s = _check_scores(sim, "sim")  # [Q, I]
    n_q, n_i = s.shape
    if target is None:
        if n_q > n_i:
            raise ValueError(f"sim has more rows than columns ({n_q} > {n_i}), so row i has no "
                             "column i: pass target")
        target = np.arange(n_q)
    t = _check_index(target, "target", n_q, n_i, "one per row of sim")
    true = s[np.arange(n_q), t][:, None]  # [Q, 1]
    above = (s > true).sum(axis=1)  # [Q]  g_q
    tied = (s == true).sum(axis=1) - 1  # [Q]  e_q
    if ties == "optimistic":
        return above
    if ties == "pessimistic":
        return above + tied
    if not tied.any():
        return above
    return np.concatenate([np.arange(g, g + e + 1) for g, e in zip(above, tied)])  # clip4clip


def rank_metrics(ranks: Any, *, multi_sentence: bool = False) -> dict[str, float]:
    r"""R@1/5/10 (percent), MdR and MnR of 0-based ranks, as CLIP4Clip computes them.

    .. math:: \mathrm{R@K} = 100\,\#\{r < K\}/Q, \quad \mathrm{MR} = \operatorname{median}(r) + 1,
              \quad \mathrm{MeanR} = \bar r + 1

    Args:
        ranks: ``[Q]`` 0-based ranks (non-empty).
        multi_sentence: the arithmetic of CLIP4Clip's multi-sentence text-to-video
            (``tensor_text_to_video_metrics``): the median of an even count is the *smaller*
            middle rank (``torch.median``) instead of the mean of the two (``np.median``), R@K is
            divided in float32 (torch's default dtype) and MeanR is ``mean(r + 1)``.

    Returns:
        ``{"R1", "R5", "R10", "MR", "MeanR"}`` as Python floats (``MR`` = MdR, ``MeanR`` = MnR).
    """
    r = _to_numpy(ranks)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {list(r.shape)}")
    if multi_sentence:
        out = {f"R{k}": float(np.float32(np.sum(r < k) * 100) / np.float32(len(r)))
               for k in RECALL_AT}
        out["MR"] = float(np.sort(r)[(len(r) - 1) // 2] + 1)  # lower median
        out["MeanR"] = float(np.mean(r + 1))
        return out
    out = {f"R{k}": float(np.sum(r < k)) * 100 / len(r) for k in RECALL_AT}
    out["MR"] = float(np.median(r) + 1)
    out["MeanR"] = float(np.mean(r) + 1)
    return out


def retrieval_metrics(sim: Any, target: Any = None, *, ties: str = "clip4clip") -> dict[str, float]:
    """CLIP4Clip's ``compute_metrics``: rank each row's true item (default: the diagonal).

    ``retrieval_metrics(S)`` is text-to-video and ``retrieval_metrics(S.T)`` video-to-text for a
    square ``S`` whose text ``i`` describes video ``i``; see the module docstring for the formulas
    and the tie convention.

    Args:
        sim: ``[Q, I]`` scores, finite; numpy, torch or lists.
        target: ``[Q]`` column of each row's true item (default: column ``q`` for row ``q``).
        ties: ``"clip4clip"`` (default; equals ``compute_metrics``), ``"optimistic"``,
            ``"pessimistic"``.

    Returns:
        ``{"R1", "R5", "R10", "MR", "MeanR"}``: R@K in percent, MR = MdR = median rank + 1,
        MeanR = MnR = mean rank + 1 (ranks 1-based).

    Raises:
        ValueError: ``sim`` not 2-D, empty, non-numeric, NaN or infinite; more rows than columns
            without ``target``; ``target`` of the wrong length or out of range; unknown ``ties``.
    """
    return rank_metrics(true_ranks(sim, target, ties=ties))


# ----------------------------------------------------------------------------- DSL

def dual_softmax(sim: Any, temperature: float = DSL_TEMPERATURE) -> np.ndarray:
    r"""Dual-softmax (DSL) rescaling of a similarity matrix before ranking its rows.

    .. math:: S'_{qj} = S_{qj}\, \operatorname{softmax}_{q}(T\, S_{\cdot j})_q
              = S_{qj}\,\frac{e^{T S_{qj}}}{\sum_{q'} e^{T S_{q'j}}}

    (Cheng et al. 2021, CAMoE, "Improving video-text retrieval by multi-stream corpus alignment
    and dual softmax loss", arXiv:2109.04290; inference form ``sims * softmax(sims * 100,
    axis=0)`` as in the public implementations.) Each candidate ``j`` spreads a unit of prior
    over the queries; a query keeps its score in proportion to how much the candidate prefers it.

    Args:
        sim: ``[Q, I]`` scores; rows are the queries that will be ranked.
        temperature: ``T`` (inverse temperature), > 0; 100 by default.

    Returns:
        ``[Q, I]`` float64 rescaled scores.
    """
    t = _check_temperature(temperature)
    s = _check_scores(sim, "sim")  # [Q, I]
    z = t * s
    z = np.exp(z - z.max(axis=0, keepdims=True))  # [Q, I], stable: column max subtracted
    return s * (z / z.sum(axis=0, keepdims=True))  # [Q, I]


# ----------------------------------------------------------------------------- both directions

def _caption_groups(caption_video: Any, n_caption: int, n_video: int) -> np.ndarray:
    """Validated ``caption_video`` ``[N_t]``: every entry a video, every video with a caption."""
    cv = _check_index(caption_video, "caption_video", n_caption, n_video,
                      "one video per caption, i.e. per row of sim")
    counts = np.bincount(cv, minlength=n_video)  # [N_v]
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        raise ValueError(f"{len(missing)} video(s) have no caption in caption_video (first: "
                         f"{missing[:5].tolist()}); every column of sim needs its caption(s)")
    return cv


def _prepare(sim: Any, caption_video: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(S [N_t, N_v], caption_video or None)``; None: the one-to-one protocol with ``S``'s
    columns reordered so that the true video of text ``i`` is column ``i``."""
    s = _check_scores(sim, "sim")  # [N_t, N_v]
    n_t, n_v = s.shape
    if caption_video is None:
        if n_t != n_v:
            raise ValueError(f"sim is {n_t} x {n_v}: without caption_video it must be square "
                             "(text i describes video i); pass caption_video for several "
                             "captions per video")
        return s, None
    cv = _caption_groups(caption_video, n_t, n_v)
    if n_t == n_v:  # one caption per video: the one-to-one protocol
        return s[:, cv], None  # [N_t, N_t], true video of text i is column i
    return s, cv


def text_to_video(sim: Any, caption_video: Any = None, *, dsl: bool = False,
                  temperature: float = DSL_TEMPERATURE,
                  ties: str = "clip4clip") -> dict[str, float]:
    """Text-to-video R@1/5/10, MdR (``MR``), MnR (``MeanR``): rank each text's video in its row.

    Args:
        sim: ``[N_t, N_v]`` text-video similarities (rows texts / captions, columns videos).
        caption_video: ``[N_t]`` video index of each text; None: ``sim`` is square with text
            ``i`` describing video ``i``. Several captions per video select CLIP4Clip's
            multi-sentence protocol (lower median; see the module docstring).
        dsl: rescale with :func:`dual_softmax` (softmax over texts) before ranking.
        temperature: DSL inverse temperature (100).
        ties: see :func:`true_ranks`.

    Returns:
        ``{"R1", "R5", "R10", "MR", "MeanR"}``.

    Raises:
        ValueError: see :func:`evaluate_retrieval`.
    """
    _check_ties(ties)
    s, cv = _prepare(sim, caption_video)
    if dsl:
        s = dual_softmax(s, temperature)  # [N_t, N_v], softmax over texts
    if cv is None:
        return retrieval_metrics(s, ties=ties)
    # CLIP4Clip's tensor_text_to_video_metrics: one rank per caption, torch.median (lower)
    ranks = true_ranks(s, cv, ties="pessimistic" if ties == "pessimistic" else "optimistic")
    return rank_metrics(ranks, multi_sentence=True)


def video_to_text(sim: Any, caption_video: Any = None, *, dsl: bool = False,
                  temperature: float = DSL_TEMPERATURE,
                  ties: str = "clip4clip") -> dict[str, float]:
    """Video-to-text R@1/5/10, MdR (``MR``), MnR (``MeanR``): rank each video's text(s) in the
    video's column of ``sim``.

    With several captions per video (CLIP4Clip's ``tensor_video_to_text_sim``), each video's
    captions are one candidate scored by the best of them,
    ``M[v, g] = max_{i: caption_video[i] = g} S'[v, i]`` with ``S' = S^T`` (or its DSL), and ``M``
    is ranked as :func:`retrieval_metrics` does.

    Args:
        sim: ``[N_t, N_v]`` text-video similarities (the same matrix as for text-to-video).
        caption_video: ``[N_t]`` video index of each text, or None (square, diagonal).
        dsl: rescale ``S^T`` with :func:`dual_softmax` (softmax over videos) before ranking.
        temperature: DSL inverse temperature (100).
        ties: see :func:`true_ranks`.

    Returns:
        ``{"R1", "R5", "R10", "MR", "MeanR"}``.

    Raises:
        ValueError: see :func:`evaluate_retrieval`.
    """
    _check_ties(ties)
    s, cv = _prepare(sim, caption_video)
    st = s.T  # [N_v, N_t]
    if dsl:
        st = dual_softmax(st, temperature)  # [N_v, N_t], softmax over videos
    if cv is None:
        return retrieval_metrics(st, ties=ties)
    n_v = st.shape[0]
    best = np.full((n_v, n_v), -np.inf)  # [N_v groups, N_v videos]
    np.maximum.at(best, cv, st.T)  # best[g, v] = max over captions i of g of S'[v, i]
    return retrieval_metrics(best.T, ties=ties)  # [N_v videos, N_v groups], true on diagonal


def evaluate_retrieval(sim: Any, caption_video: Any = None, *, dsl: bool = False,
                       temperature: float = DSL_TEMPERATURE,
                       ties: str = "clip4clip") -> dict[str, dict[str, float]]:
    """Text-to-video and video-to-text metrics of one similarity matrix, as CLIP4Clip reports.

    Args:
        sim: ``[N_t, N_v]`` text-video similarities (numpy, torch or lists), finite.
        caption_video: ``[N_t]`` index of each text's video; None: square ``sim``, text ``i`` ↔
            video ``i``. Every video needs at least one caption.
        dsl: apply :func:`dual_softmax` in each direction before ranking (RAP*).
        temperature: DSL inverse temperature (100).
        ties: ``"clip4clip"`` (default), ``"optimistic"`` or ``"pessimistic"``; see the module
            docstring.

    Returns:
        ``{"t2v": {...}, "v2t": {...}}``, each ``{"R1", "R5", "R10", "MR", "MeanR"}`` (R@K in
        percent; MR = MdR and MeanR = MnR, 1-based).

    Raises:
        ValueError: ``sim`` not 2-D, empty, non-numeric, NaN or infinite; not square without
            ``caption_video``; ``caption_video`` not 1-D, of the wrong length, not integers, out
            of range, or leaving a video without a caption; unknown ``ties``; ``temperature``
            not a finite number > 0.
    """
    return {"t2v": text_to_video(sim, caption_video, dsl=dsl, temperature=temperature, ties=ties),
            "v2t": video_to_text(sim, caption_video, dsl=dsl, temperature=temperature, ties=ties)}


# ----------------------------------------------------------------------------- JSONL files

def retrieval_pred_lines(sim: Any, caption_video: Any = None,
                         text_ids: Sequence[Any] | None = None,
                         video_ids: Sequence[str] | None = None) -> list[dict]:
    """JSONL lines of a similarity matrix, the format :func:`load_retrieval_jsonl` reads.

    One line per text: ``{"text_id": ..., "video_id": <its video>, "scores": {video_id: score,
    ...}}``, the scores over every video in column order.

    Args:
        sim: ``[N_t, N_v]`` similarities.
        caption_video: ``[N_t]`` video index of each text (None: text ``i`` ↔ video ``i``).
        text_ids: ``N_t`` ids (default ``0, 1, ...``).
        video_ids: ``N_v`` distinct string ids (default ``"video0", "video1", ...``).
    """
    s = _check_scores(sim, "sim")  # [N_t, N_v]
    n_t, n_v = s.shape
    cv = np.arange(n_t) if caption_video is None else \
        _check_index(caption_video, "caption_video", n_t, n_v, "one per row of sim")
    text_ids = list(range(n_t)) if text_ids is None else list(text_ids)
    video_ids = [f"video{j}" for j in range(n_v)] if video_ids is None else \
        [str(v) for v in video_ids]
    if len(text_ids) != n_t or len(video_ids) != n_v or len(set(video_ids)) != n_v:
        raise ValueError(f"need {n_t} text ids and {n_v} distinct video ids, got "
                         f"{len(text_ids)} and {len(set(video_ids))}")
    return [{"text_id": tid, "video_id": video_ids[cv[i]],
             "scores": dict(zip(video_ids, s[i].tolist()))} for i, tid in enumerate(text_ids)]


def load_retrieval_jsonl(path: str | Path) -> tuple[np.ndarray, np.ndarray, list, list[str]]:
    """Read retrieval predictions: one JSON line per text (caption),

    ``{"text_id": "t0", "video_id": "v3", "scores": {"v0": 0.12, "v1": -0.40, ..., "v3": 0.91}}``

    ``video_id`` is the text's true video; ``scores`` maps *every* candidate video id to the
    text-video similarity. All lines score the same videos; their column order is that of the
    first line. Every video must be the true video of at least one line. Blank lines are skipped.

    Returns:
        ``(sim [N_t, N_v] float64, caption_video [N_t] int64, text_ids, video_ids)``, ready for
        :func:`evaluate_retrieval`.

    Raises:
        ValueError: malformed JSON, missing fields, duplicate text ids, a score set differing from
            the first line's, a true video not among the scores, non-numeric / NaN / infinite
            scores, a video that no text describes; the message names ``file:line``.
    """
    rows, cv, text_ids, seen = [], [], [], {}
    video_ids: list[str] | None = None
    col: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: malformed JSON line: {e.msg} (column {e.colno})") \
                    from None
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
            for field in ("text_id", "video_id", "scores"):
                if field not in rec:
                    raise ValueError(f"{where}: missing field {field!r}")
            tid, vid, scores = rec["text_id"], rec["video_id"], rec["scores"]
            if isinstance(tid, bool) or not isinstance(tid, int | str):
                raise ValueError(f"{where}: text_id must be an int or a str, got {tid!r}")
            if tid in seen:
                raise ValueError(f"{where}: duplicate text_id {tid!r} (first at {seen[tid]})")
            seen[tid] = where
            if isinstance(vid, bool) or not isinstance(vid, int | str):
                raise ValueError(f"{where}: video_id must be a str (or an int), got {vid!r}")
            if not isinstance(scores, dict) or not scores:
                raise ValueError(f"{where}: scores must be a non-empty object "
                                 "{video_id: similarity}")
            if video_ids is None:
                video_ids = list(scores)
                col = {v: j for j, v in enumerate(video_ids)}
            elif scores.keys() != col.keys():
                extra = [v for v in scores if v not in col]
                missing = [v for v in video_ids if v not in scores]
                raise ValueError(f"{where}: scores cover other videos than the first line: "
                                 f"{len(missing)} missing (first: {missing[:3]}), "
                                 f"{len(extra)} extra (first: {extra[:3]})")
            if str(vid) not in col:
                raise ValueError(f"{where}: video_id {vid!r} is not among the scored videos")
            row = [scores[v] for v in video_ids]
            if any(isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)
                   for x in row):
                bad = next(v for v, x in zip(video_ids, row) if isinstance(x, bool)
                           or not isinstance(x, int | float) or not math.isfinite(x))
                raise ValueError(f"{where}: scores[{bad!r}] = {scores[bad]!r} is not a finite "
                                 "number")
            rows.append(row)
            cv.append(col[str(vid)])
            text_ids.append(tid)
    if not rows:
        raise ValueError(f"{path}: no prediction lines")
    assert video_ids is not None
    counts = np.bincount(cv, minlength=len(video_ids))
    if (counts == 0).any():
        missing = [video_ids[j] for j in np.flatnonzero(counts == 0)[:5]]
        raise ValueError(f"{path}: {int((counts == 0).sum())} scored video(s) are no line's "
                         f"video_id (first: {missing}); every video needs a caption")
    return np.asarray(rows, dtype=np.float64), np.asarray(cv, dtype=np.int64), text_ids, video_ids


def _load_sim(path: str) -> np.ndarray:
    """The array of an ``.npy`` file (no pickles)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise ValueError(f"{path}: not a NumPy .npy file (save the matrix with np.save)")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: unreadable .npy file ({e})") from None


def _load_captions(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return _load_sim(path)
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON: {e.msg} (line {e.lineno})") from None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int)
                                          for v in value):
        raise ValueError(f"{path}: expected a JSON list of video indices (ints), one per row "
                         "of the similarity matrix")
    return np.asarray(value, dtype=np.int64)


def retrieval_main(argv: list[str] | None = None) -> int:
    """Command line: ``readpvla eval-retrieval (--sim S.npy [--captions C.json] | --pred P.jsonl)
    [--dsl] [--temperature T] [--ties MODE] [--out M.json]``. Prints ``{"t2v": {...}, "v2t":
    {...}}`` as JSON; returns 0, or 1 on bad input (one line on stderr); bad options exit 2."""
    from readpvla import cli

    ap = cli.Parser(
        prog="readpvla eval-retrieval",
        description="Text-video retrieval R@1/5/10, MdR (MR), MnR (MeanR) both ways (the numbers "
                    "of CLIP4Clip's compute_metrics).")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--sim", help="similarity matrix [N_text, N_video] saved with np.save; "
                                   "text i describes video i unless --captions is given")
    src.add_argument("--pred", help='JSONL, one line per text: {"text_id", "video_id" (its '
                                    'video), "scores": {video_id: similarity, ...}}')
    ap.add_argument("--captions", help="with --sim: JSON list (or .npy) of each text's video "
                                       "index, for several captions per video")
    ap.add_argument("--dsl", action="store_true",
                    help="dual-softmax re-scoring before ranking (CAMoE DSL; RAP*)")
    ap.add_argument("--temperature", type=cli.positive_float, default=DSL_TEMPERATURE,
                    help="DSL inverse temperature (default: 100)")
    ap.add_argument("--ties", choices=TIES, default="clip4clip",
                    help="rank of a true item tied with others (default: as CLIP4Clip)")
    ap.add_argument("--out", help="also write the JSON metrics to this file")
    a = ap.parse_args(argv)
    if a.captions and not a.sim:
        ap.error("--captions goes with --sim (a --pred file names each text's video)")
    if a.temperature != DSL_TEMPERATURE and not a.dsl:
        ap.error("--temperature is for --dsl")
    try:
        if a.sim:
            sim = _load_sim(a.sim)
            captions = _load_captions(a.captions) if a.captions else None
        else:
            sim, captions, _, _ = load_retrieval_jsonl(a.pred)
        result = evaluate_retrieval(sim, captions, dsl=a.dsl, temperature=a.temperature,
                                    ties=a.ties)
    except (ValueError, OSError) as e:
        print(f"readpvla eval-retrieval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        try:
            Path(a.out).write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            print(f"readpvla eval-retrieval: error: {e}", file=sys.stderr)
            return 1
    return 0
