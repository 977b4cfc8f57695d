r"""Action recognition metrics: top-k accuracy, per-class / mean-class accuracy, base-to-novel HM.

Symbols: ``N`` test videos, ``C`` classes, ``s`` the scores ``[N, C]`` (logits, probabilities or
video-prompt similarities: only their order matters), ``y`` the labels ``[N]`` in ``[0, C)``.

Top-k accuracy counts a video as correct when its label is among its ``k`` best-scored classes,

.. math:: \mathrm{Acc@k} = \frac{100}{N}\,\#\{n : \rho_n < k\},\qquad
          \rho_n = \#\{c : s_{nc} > s_{n y_n}\} + \#\{c < y_n : s_{nc} = s_{n y_n}\}

(``rho_n``: 0-based rank of the label). Ties go to the lower class index, as ``np.argmax`` and a
stable descending sort do.

Base-to-novel generalisation (Zhou et al. 2022, CoCoOp, CVPR, the protocol of CoOp's follow-ups;
ViFi-CLIP, Rasheed et al. 2023, for video): the classes are split into base (seen in training)
and novel (unseen). Base accuracy is measured on the test videos of base classes, each classified
among the base classes only; novel accuracy on the test videos of novel classes among the novel
classes only; and their harmonic mean

.. math:: \mathrm{HM} = \frac{2\,B\,N}{B + N}

summarises both (0 when both are 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from readpvla.metrics.retrieval import _check_index, _check_scores, _to_numpy

TOP_K: tuple[int, ...] = (1, 5)  # the accuracies recognition papers report


def _inputs(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(scores [N, C] float64, labels [N] int64)``."""
    s = _check_scores(scores, "scores")  # [N, C]
    y = _check_index(labels, "labels", len(s), s.shape[1], "one per row of scores")  # [N]
    return s, y


def _check_k(k: Any, n_classes: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_classes:
        raise ValueError(f"k must be an integer in [1, C] = [1, {n_classes}], got {k!r}")
    return int(k)


def label_ranks(scores: Any, labels: Any) -> np.ndarray:
    r"""0-based rank of each video's label among its classes, ties to the lower class index.

    .. math:: \rho_n = \#\{c : s_{nc} > s_{n y_n}\} + \#\{c < y_n : s_{nc} = s_{n y_n}\}

    Args:
        scores: ``[N, C]`` class scores (numpy, torch or lists), finite.
        labels: ``[N]`` integer labels in ``[0, C)``.

    Returns:
        ``[N]`` int64 ranks (0 = the label is the prediction).
    """
    s, y = _inputs(scores, labels)
    true = s[np.arange(len(s)), y][:, None]  # [N, 1]
    before = np.arange(s.shape[1])[None, :] < y[:, None]  # [N, C]
    return ((s > true) | ((s == true) & before)).sum(axis=1)  # [N]


def accuracy(scores: Any, labels: Any, k: int | Sequence[int] = TOP_K) -> float | dict[str, float]:
    r"""Top-k accuracy in percent, :math:`100\,\#\{n : \rho_n < k\} / N`.

    Args:
        scores: ``[N, C]`` class scores (logits, probabilities, similarities); numpy or torch.
        labels: ``[N]`` integer labels in ``[0, C)``.
        k: one ``k`` (returns a float) or several (returns ``{"top1": .., "top5": ..}``);
            ``(1, 5)`` by default.

    Returns:
        The accuracy in percent, or a dict ``{"top{k}": accuracy}`` in the order of ``k``.

    Raises:
        ValueError: ``scores`` not 2-D, empty, NaN or infinite; ``labels`` not 1-D, of another
            length, not integers or out of range; ``k`` not an integer in ``[1, C]``; empty ``k``.
    """
    s, y = _inputs(scores, labels)
    ranks = label_ranks(s, y)  # [N]
    if isinstance(k, int | np.integer) and not isinstance(k, bool):
        return float(np.sum(ranks < _check_k(k, s.shape[1]))) * 100 / len(ranks)
    ks = list(k) if isinstance(k, Sequence) else None
    if not ks:
        raise ValueError(f"k must be an integer or a non-empty sequence of integers, got {k!r}")
    return {f"top{kk}": float(np.sum(ranks < kk)) * 100 / len(ranks)
            for kk in (_check_k(kk, s.shape[1]) for kk in ks)}


def per_class_accuracy(scores: Any, labels: Any, k: int = 1) -> np.ndarray:
    r"""Top-k accuracy of each class over its own test videos, in percent.

    .. math:: \mathrm{Acc}_c = \frac{100}{N_c}\,\#\{n : y_n = c,\ \rho_n < k\}, \qquad
              N_c = \#\{n : y_n = c\}

    Args:
        scores: ``[N, C]`` class scores.
        labels: ``[N]`` labels in ``[0, C)``.
        k: top-k (1 by default).

    Returns:
        ``[C]`` float64; NaN for a class without test videos (``N_c = 0``).
    """
    s, y = _inputs(scores, labels)
    hit = (label_ranks(s, y) < _check_k(k, s.shape[1])).astype(np.float64)  # [N]
    n_c = np.bincount(y, minlength=s.shape[1]).astype(np.float64)  # [C]
    hits_c = np.bincount(y, weights=hit, minlength=s.shape[1])  # [C]
    out = np.full(s.shape[1], np.nan)
    np.divide(hits_c * 100, n_c, out=out, where=n_c > 0)
    return out


def mean_class_accuracy(scores: Any, labels: Any, k: int = 1) -> float:
    r"""Mean of :func:`per_class_accuracy` over the classes that have test videos,
    :math:`\frac{1}{|\{c : N_c > 0\}|}\sum_{c : N_c > 0} \mathrm{Acc}_c` (percent).

    Classes without test videos are left out (they have no accuracy), not counted as 0.
    """
    acc = per_class_accuracy(scores, labels, k)  # [C]
    return float(np.mean(acc[~np.isnan(acc)]))


def harmonic_mean(base: float, novel: float) -> float:
    r"""Harmonic mean of base and novel accuracy, :math:`\mathrm{HM} = 2BN / (B + N)`; 0 when
    ``B = N = 0``.

    Raises:
        ValueError: an accuracy that is negative, NaN or infinite.
    """
    for name, v in (("base", base), ("novel", novel)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer) \
                or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} accuracy must be a finite number >= 0, got {v!r}")
    b, n = float(base), float(novel)
    return 0.0 if b + n == 0 else 2 * b * n / (b + n)


def _class_set(classes: Any, name: str, n_classes: int) -> np.ndarray:
    c = _to_numpy(classes)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of class indices, "
                         f"got shape {list(c.shape)}")
    c = _check_index(c, name, len(c), n_classes, f"class indices of scores' {n_classes} columns")
    if len(np.unique(c)) != len(c):
        raise ValueError(f"{name} has duplicate classes")
    return c


def base_novel_accuracy(scores: Any, labels: Any, base_classes: Any,
                        novel_classes: Any) -> dict[str, float]:
    r"""Base-to-novel accuracy as in CoCoOp / ViFi-CLIP: each split classified among its own
    classes only, and their harmonic mean.

    .. math::
        B = \mathrm{Acc@1}\big(s[y \in \mathcal B][:, \mathcal B],\ y\big), \quad
        N = \mathrm{Acc@1}\big(s[y \in \mathcal N][:, \mathcal N],\ y\big), \quad
        \mathrm{HM} = \frac{2BN}{B+N}

    Restricting the columns changes the prediction of a base video whose best class overall is
    a novel one (and vice versa): it is judged only against the classes of its own split.

    Args:
        scores: ``[N, C]`` scores over all ``C`` classes (e.g. video-prompt similarities).
        labels: ``[N]`` labels in ``[0, C)``, each in ``base_classes`` or ``novel_classes``.
        base_classes: ``[C_b]`` distinct class indices of the base split.
        novel_classes: ``[C_n]`` distinct class indices of the novel split, disjoint from base.
            (Ties inside a split go to the class listed first.)

    Returns:
        ``{"base": B, "novel": N, "HM": HM}`` in percent.

    Raises:
        ValueError: bad ``scores`` / ``labels`` (see :func:`accuracy`); an empty, duplicated or
            out-of-range class list; overlapping splits; a label in neither split; a split
            without test videos.
    """
    s, y = _inputs(scores, labels)
    n_classes = s.shape[1]
    base = _class_set(base_classes, "base_classes", n_classes)  # [C_b]
    novel = _class_set(novel_classes, "novel_classes", n_classes)  # [C_n]
    both = np.intersect1d(base, novel)
    if len(both):
        raise ValueError(f"base_classes and novel_classes share {len(both)} class(es) "
                         f"(first: {both[:5].tolist()})")
    outside = ~np.isin(y, base) & ~np.isin(y, novel)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"labels[{i}] = {y[i]} is in neither base_classes nor novel_classes "
                         f"({int(outside.sum())} such labels)")
    out = {}
    for name, split in (("base", base), ("novel", novel)):
        rows = np.isin(y, split)  # [N]
        if not rows.any():
            raise ValueError(f"no test video has a label in {name}_classes")
        local = np.full(n_classes, -1)
        local[split] = np.arange(len(split))  # global class -> column within the split
        out[name] = accuracy(s[rows][:, split], local[y[rows]], k=1)  # [N_split, C_split]
    out["HM"] = harmonic_mean(out["base"], out["novel"])
    return out
