r"""Paired bootstrap intervals on the difference between two table rows, and how many seeds a
table needs.

A row's number in a table is a mean over seeds of a mean over the table's splits (domains) of a
mean over each split's test items (queries, captions, videos). The difference between two rows,

.. math:: \hat\Delta = \frac{1}{|S|} \sum_{s \in S} \frac{1}{|P|} \sum_{p \in P}
          \frac{1}{n_p} \sum_{i=1}^{n_p} \big(x^{A}_{p,s,i} - x^{B}_{p,s,i}\big),

(:math:`S` seeds, :math:`P` splits, :math:`n_p` test items of split :math:`p`, :math:`x` the
per-item score stored in a run's record, ``record["per_item"][metric]``), varies for two reasons:
which test items happened to be drawn, and which seeds. :func:`paired_bootstrap` resamples both.
One bootstrap replicate

- draws :math:`n_p` items with replacement **within each split** (splits are the table's fixed
  columns and are not resampled), the **same** items for both rows and for every seed (the
  test items are crossed with the seeds: every run of a split scores the same items);
- draws :math:`|S|` seeds with replacement, the same seeds for both rows (seed ``s`` of row A is
  paired with seed ``s`` of row B: they share the data order);
- recomputes :math:`\hat\Delta` with those items and seeds.

Because both rows see one resample, whatever an item adds to both rows' scores (an easy or a
hard query) cancels in the difference and does not widen the interval: the bootstrap is *paired*.
The interval is the percentile interval of :math:`\hat\Delta^*` over ``n_boot`` replicates
(Efron & Tibshirani 1993, ch. 13), deterministic under ``seed``.

With one seed, resampling seeds changes nothing: the interval then shows the test-item noise
only, not the seed-to-seed noise (which DESIGN.md fact 7 shows is large here); say so where it is
shown. Resampling both crossed factors independently is mildly conservative (Owen 2007); with
few seeds the seed part is underestimated by the factor :math:`(|S|-1)/|S|` in variance, as any
bootstrap of a mean of :math:`|S|` values.

**Harmonic means.** A base-to-novel table's HM is not a mean over test items but, per split
and seed, :math:`H = 2BN / (B + N)` of two item means (base accuracy :math:`B` over the base
classes' videos, novel accuracy :math:`N` over the novel classes'). :func:`paired_bootstrap_hm`
resamples both item sets (each within its split, the same resample for both rows and every seed)
and the seeds as above, and recomputes :math:`\frac{1}{|S|}\sum_s \frac{1}{|P|}\sum_p
(H^A_{p,s} - H^B_{p,s})` from the resampled means; :math:`H = 0` where :math:`B + N = 0`.

References:
    1. B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993
       (ch. 13: confidence intervals from bootstrap percentiles).
    2. A. B. Owen, "The pigeonhole bootstrap", *Annals of Applied Statistics* 1, 2007
       (bootstrapping data crossed by two factors).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np

__all__ = ["Interval", "NoItemScores", "SeedCurve", "compare_rows", "compare_rows_hm",
           "difference_in_differences", "harmonic_mean", "interval_vs_seeds", "item_scores", "paired_bootstrap",
           "paired_bootstrap_hm"]

Scores = Mapping[tuple[str, int], Sequence[float] | np.ndarray]


class NoItemScores(ValueError):
    """The records have no per-item scores for the metric (so no interval can be computed)."""


@dataclass(frozen=True)
class Interval:
    """A difference ``A - B`` with its percentile bootstrap interval.

    Attributes:
        diff: the observed difference (mean over seeds of the mean over splits of the mean over
            items of A - B): the difference of the two rows' table numbers, before rounding.
        lo, hi: the interval's ends (the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
            of the bootstrap replicates).
        level: the interval's nominal coverage (0.95).
        n_boot: bootstrap replicates.
        n_items: test items per split, in ``splits`` order.
        splits, seeds: what the difference runs over.
        seed: the bootstrap's random seed.
    """

    diff: float
    lo: float
    hi: float
    level: float
    n_boot: int
    n_items: tuple[int, ...]
    splits: tuple[str, ...]
    seeds: tuple[int, ...]
    seed: int

    @property
    def half_width(self) -> float:
        """``(hi - lo) / 2``."""
        return (self.hi - self.lo) / 2

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0."""
        return self.lo > 0 or self.hi < 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field rounded to 4 decimals where a float, plus ``half_width``."""
        d = asdict(self)
        for k in ("diff", "lo", "hi"):
            d[k] = round(d[k], 4)
        d.update(n_items=list(self.n_items), splits=list(self.splits), seeds=list(self.seeds),
                 half_width=round(self.half_width, 4))
        return d

    def __str__(self) -> str:
        return f"{self.diff:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}]"


def _check_level(level: float, n_boot: int) -> None:
    if not (isinstance(level, int | float) and 0 < level < 1):
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")


def _layout(a: Scores, b: Scores) -> tuple[list[str], list[int], dict[str, np.ndarray]]:
    """Splits, seeds and, per split, the ``[S, n_p]`` differences ``a - b``; checks that both
    hold the same (split, seed) keys, a full split x seed grid and one item count per split."""
    if not a:
        raise ValueError("no (split, seed) scores given")
    if set(a) != set(b):
        only_a = sorted(set(a) - set(b))
        only_b = sorted(set(b) - set(a))
        raise ValueError(f"the two rows have different (split, seed) runs: only in the first "
                         f"{only_a[:5]}, only in the second {only_b[:5]}")
    splits = list(dict.fromkeys(k[0] for k in a))
    seeds = sorted({int(k[1]) for k in a})
    missing = [(p, s) for p in splits for s in seeds if (p, s) not in a]
    if missing:
        raise ValueError(f"not every split has every seed: missing (split, seed) {missing[:5]}; "
                         "give a full split x seed grid")
    diffs = {}
    for p in splits:
        rows = []
        for s in seeds:
            xa = np.asarray(a[(p, s)], dtype=np.float64)
            xb = np.asarray(b[(p, s)], dtype=np.float64)
            if xa.ndim != 1 or xb.ndim != 1 or len(xa) == 0:
                raise ValueError(f"split {p!r}, seed {s}: per-item scores must be non-empty "
                                 f"vectors, got shapes {list(xa.shape)} and {list(xb.shape)}")
            if len(xa) != len(xb):
                raise ValueError(f"split {p!r}, seed {s}: the rows score different numbers of "
                                 f"items ({len(xa)} vs {len(xb)}); a paired comparison needs "
                                 "the same test items")
            if rows and len(xa) != len(rows[0]):
                raise ValueError(f"split {p!r}: seed {s} scores {len(xa)} items but seed "
                                 f"{seeds[0]} scores {len(rows[0])}; every seed must score the "
                                 "same test items")
            if not (np.isfinite(xa).all() and np.isfinite(xb).all()):
                raise ValueError(f"split {p!r}, seed {s}: per-item scores hold NaN or inf")
            rows.append(xa - xb)
        diffs[p] = np.stack(rows)  # (S, n_p)
    return splits, seeds, diffs


def _resample_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """``[n_boot, n]``: how often each of ``n`` things is drawn in each resample (with
    replacement), divided by ``n`` (a resampled mean is ``weights @ values``)."""
    return rng.multinomial(n, np.full(n, 1 / n), size=n_boot) / n


def paired_bootstrap(a: Scores, b: Scores, *, n_boot: int = 2000, level: float = 0.95,
                     seed: int = 0) -> Interval:
    """Percentile interval of the mean difference ``a - b`` by a paired bootstrap over test
    items (within each split) and seeds (module docstring).

    Args:
        a, b: ``{(split, seed): per-item scores [n_split]}`` of two rows, the same keys (a full
            split x seed grid) and, per split, the same items in the same order.
        n_boot: bootstrap replicates.
        level: nominal coverage of the interval.
        seed: the resampling's seed (same seed, same interval).

    Returns:
        An :class:`Interval` (``diff`` = the observed difference).

    Raises:
        ValueError: different keys, a split missing a seed, different item counts between the
            rows or between seeds, empty or non-finite scores, a bad ``level`` or ``n_boot``.
    """
    _check_level(level, n_boot)
    splits, seeds, diffs = _layout(a, b)
    rng = np.random.default_rng(seed)
    seed_w = _resample_weights(rng, len(seeds), n_boot)  # (B, S)
    total = np.zeros(n_boot)
    observed = 0.0
    for p in splits:
        d = diffs[p]  # (S, n_p)
        n = d.shape[1]
        item_w = _resample_weights(rng, n, n_boot)  # (B, n_p)
        per_seed = item_w @ d.T  # (B, S): mean over the resampled items, per seed
        total += (per_seed * seed_w).sum(axis=1)
        observed += float(d.mean(axis=1).mean())
    total /= len(splits)
    lo, hi = np.quantile(total, [(1 - level) / 2, (1 + level) / 2])
    return Interval(diff=observed / len(splits), lo=float(lo), hi=float(hi), level=level,
                    n_boot=n_boot, n_items=tuple(diffs[p].shape[1] for p in splits),
                    splits=tuple(splits), seeds=tuple(seeds), seed=seed)


def harmonic_mean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise ``2xy / (x + y)``, 0 where ``x + y == 0`` (both accuracies 0)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    total = x + y
    return np.where(total > 0, 2 * x * y / np.where(total > 0, total, 1.0), 0.0)


def _stacked(scores: Scores, splits: list[str], seeds: list[int], what: str
             ) -> dict[str, np.ndarray]:
    """Per split the ``[S, n_p]`` scores of one row's part (same item count for every seed)."""
    out = {}
    for p in splits:
        rows = [np.asarray(scores[(p, s)], dtype=np.float64) for s in seeds]
        if any(r.ndim != 1 or len(r) != len(rows[0]) for r in rows):
            raise ValueError(f"{what}, split {p!r}: every seed must score the same number of "
                             f"items, got {[list(r.shape) for r in rows]}")
        out[p] = np.stack(rows)
    return out


def paired_bootstrap_hm(a: tuple[Scores, Scores], b: tuple[Scores, Scores], *,
                        n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile interval of the difference of harmonic means ``H(a) - H(b)``, where per split
    and seed :math:`H = 2XY / (X + Y)` of the item means of two parts (base-to-novel: the base
    and the novel videos), by a paired bootstrap over each part's items and the seeds (module
    docstring, "Harmonic means").

    Args:
        a, b: per row ``(first part, second part)``, each ``{(split, seed): per-item scores}``
            as for :func:`paired_bootstrap`: the same keys everywhere, and per part and split the
            same items for both rows.
        n_boot, level, seed: as :func:`paired_bootstrap`.

    Returns:
        An :class:`Interval`; ``n_items`` holds, per split, the first part's item count plus
        the second's.

    Raises:
        ValueError: as :func:`paired_bootstrap`, for either part.
    """
    _check_level(level, n_boot)
    if len(a) != 2 or len(b) != 2:
        raise ValueError("a and b must each be a (first part, second part) pair of scores")
    if set(a[0]) != set(a[1]):
        raise ValueError("the two parts have different (split, seed) runs")
    splits, seeds, _ = _layout(a[0], b[0])  # checks keys, grid, counts, finiteness per part
    _layout(a[1], b[1])
    parts = [(_stacked(a[i], splits, seeds, f"part {i}"), _stacked(b[i], splits, seeds,
                                                                   f"part {i}"))
             for i in range(2)]
    rng = np.random.default_rng(seed)
    seed_w = _resample_weights(rng, len(seeds), n_boot)  # (B, S)
    total = np.zeros(n_boot)
    observed = 0.0
    for p in splits:
        means_boot, means_obs = [], []
        for xa, xb in ((parts[0][0][p], parts[0][1][p]), (parts[1][0][p], parts[1][1][p])):
            n = xa.shape[1]
            w = _resample_weights(rng, n, n_boot)  # (B, n)
            means_boot.append((w @ xa.T, w @ xb.T))  # (B, S) per row
            means_obs.append((xa.mean(axis=1), xb.mean(axis=1)))  # (S,) per row
        (xa_b, xb_b), (ya_b, yb_b) = means_boot
        d = harmonic_mean(xa_b, ya_b) - harmonic_mean(xb_b, yb_b)  # (B, S)
        total += (d * seed_w).sum(axis=1)
        (xa_o, xb_o), (ya_o, yb_o) = means_obs
        observed += float((harmonic_mean(xa_o, ya_o) - harmonic_mean(xb_o, yb_o)).mean())
    total /= len(splits)
    lo, hi = np.quantile(total, [(1 - level) / 2, (1 + level) / 2])
    return Interval(diff=observed / len(splits), lo=float(lo), hi=float(hi), level=level,
                    n_boot=n_boot, n_items=tuple(parts[0][0][p].shape[1] + parts[1][0][p].shape[1]
                                                 for p in splits),
                    splits=tuple(splits), seeds=tuple(seeds), seed=seed)


def item_scores(records: Sequence[dict[str, Any]], row: str, metric: str,
                splits: Sequence[str] | None = None, seeds: Sequence[int] | None = None
                ) -> dict[tuple[str, int], np.ndarray]:
    """``{(split, seed): record["per_item"][metric]}`` of one row's run records.

    Args:
        records: run records (``row``, ``split``, ``seed``, ``per_item``; ``item_ids`` when the
            task stores them).
        row: the row key.
        metric: a key of ``record["per_item"]``.
        splits, seeds: which runs (default: every split / seed the row has).

    Raises:
        ValueError: no run of ``row``; a requested (split, seed) without a run; runs of one
            split whose ``item_ids`` differ.
        NoItemScores: a run without ``per_item[metric]`` (names the keys it has).
    """
    runs = {(r["split"], int(r["seed"])): r for r in records if r["row"] == row}
    if not runs:
        rows = sorted({r["row"] for r in records})
        raise ValueError(f"no run of row {row!r}; rows: {rows}")
    splits = list(splits) if splits is not None else list(dict.fromkeys(k[0] for k in runs))
    seeds = [int(s) for s in seeds] if seeds is not None else sorted({k[1] for k in runs})
    out: dict[tuple[str, int], np.ndarray] = {}
    for p in splits:
        for s in seeds:
            r = runs.get((p, s))
            if r is None:
                raise ValueError(f"no run for row {row!r}, split {p!r}, seed {s}")
            per_item = r.get("per_item") or {}
            if metric not in per_item:
                raise NoItemScores(f"row {row!r}, split {p!r}, seed {s}: no per-item scores for "
                                   f"{metric!r} (per_item has {sorted(per_item)})")
            out[(p, s)] = np.asarray(per_item[metric], dtype=np.float64)
    return out


def _item_ids(records: Sequence[dict[str, Any]], rows: Sequence[str], splits: Sequence[str],
              seeds: Sequence[int]) -> None:
    """Runs that store ``item_ids`` must list the same items, per split, in every row and seed."""
    for p in splits:
        first: tuple[Any, list] | None = None
        for r in records:
            if r["row"] in rows and r["split"] == p and int(r["seed"]) in seeds \
                    and r.get("item_ids") is not None:
                if first is None:
                    first = ((r["row"], int(r["seed"])), list(r["item_ids"]))
                elif list(r["item_ids"]) != first[1]:
                    raise ValueError(f"split {p!r}: run ({r['row']!r}, seed {r['seed']}) scores "
                                     f"other items (item_ids) than run ({first[0][0]!r}, seed "
                                     f"{first[0][1]}); a paired comparison needs the same items "
                                     "in the same order")


def _common_grid(records: Sequence[dict[str, Any]], row: str, reference: str,
                 splits: Sequence[str] | None, seeds: Sequence[int] | None
                 ) -> tuple[list[str], list[int]]:
    def keys(r: str) -> list[tuple[str, int]]:  # in record order
        return [(x["split"], int(x["seed"])) for x in records if x["row"] == r]

    ka, kb = keys(row), keys(reference)
    for r, k in ((row, ka), (reference, kb)):
        if not k:
            raise ValueError(f"no run of row {r!r}; rows: {sorted({x['row'] for x in records})}")
    if splits is None:
        splits = list(dict.fromkeys(k[0] for k in ka))
    if seeds is None:
        seeds_a, seeds_b = sorted({k[1] for k in ka}), sorted({k[1] for k in kb})
        if seeds_a != seeds_b:
            raise ValueError(f"rows {row!r} and {reference!r} were run with different seeds "
                             f"({seeds_a} vs {seeds_b}); pass the seeds to compare")
        seeds = seeds_a
    return list(splits), [int(s) for s in seeds]


def compare_rows(records: Sequence[dict[str, Any]], row: str, reference: str, metric: str,
                 splits: Sequence[str] | None = None, seeds: Sequence[int] | None = None, *,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """:func:`paired_bootstrap` of ``row`` minus ``reference`` from run records.

    Works for any task whose records keep ``per_item[metric]`` (TLG: ``MR-full-mAP`` per query;
    retrieval: ``t2v_R1`` hits per caption, ``order_pairs``; recognition: ``top1`` per video;
    VLS: ROUGE per video). Where the records also keep ``item_ids`` they must match.

    Args:
        records: run records of both rows.
        row, reference: row keys; the difference is ``row - reference``.
        metric: the per-item metric.
        splits: the splits the difference averages over (default: the row's splits, in record
            order; one split for a single-domain column).
        seeds: default every seed, which must be the same for both rows.
        n_boot, level, seed: as :func:`paired_bootstrap`.

    Raises:
        NoItemScores: a run lacks ``per_item[metric]``.
        ValueError: missing runs, different seeds or items (see :func:`paired_bootstrap`).
    """
    splits, seeds = _common_grid(records, row, reference, splits, seeds)
    a = item_scores(records, row, metric, splits, seeds)
    b = item_scores(records, reference, metric, splits, seeds)
    _item_ids(records, (row, reference), splits, seeds)
    return paired_bootstrap(a, b, n_boot=n_boot, level=level, seed=seed)


def difference_in_differences(treated: Sequence[dict[str, Any]], control: Sequence[dict[str, Any]],
                              row: str, reference: str, metric: str,
                              seeds: Sequence[int] | None = None, *, n_boot: int = 2000,
                              level: float = 0.95, seed: int = 0) -> Interval:
    r"""How much more ``row`` beats ``reference`` under one condition than under another:

    .. math:: \Delta\Delta = (	ext{row} - 	ext{reference} \mid 	ext{treated})
              - (	ext{row} - 	ext{reference} \mid 	ext{control})

    with a paired bootstrap interval over the test items x seeds (the mechanism probes of issue
    15: an order-blind backbone or shuffled clips as the treatment, the intact one as the
    control). Both conditions must score the same items with the same seeds in every split, so
    that each item's two differences pair up.

    Args:
        treated, control: run records of both rows under each condition (the same row names).
        row, reference, metric, seeds, n_boot, level, seed: as :func:`compare_rows`.

    Raises:
        NoItemScores, ValueError: as :func:`compare_rows` (a missing run of either row, seeds or
            items that differ).
    """
    def diffs(records: Sequence[dict[str, Any]], label: str) -> list[dict[str, Any]]:
        by = {(r["row"], r["split"], int(r["seed"])): r for r in records if "error" not in r}
        out = []
        for (r, split, s), rec in by.items():
            if r != row:
                continue
            other = by.get((reference, split, s))
            if other is None:
                raise ValueError(f"no run of {reference!r} on {split!r} seed {s} ({label})")
            a, b = (np.asarray(x["per_item"][metric], dtype=float) if metric in
                    x.get("per_item", {}) else None for x in (rec, other))
            if a is None or b is None:
                raise NoItemScores(f"a run lacks per-item {metric!r} scores ({label})")
            if a.shape != b.shape:
                raise ValueError(f"{row!r} and {reference!r} score different items on {split!r} "
                                 f"seed {s} ({label})")
            out.append({"row": label, "split": split, "seed": s,
                        "per_item": {metric: list(a - b)}})
        if not out:
            raise ValueError(f"no run of {row!r} ({label})")
        return out

    pseudo = diffs(treated, "treated") + diffs(control, "control")
    return compare_rows(pseudo, "treated", "control", metric, seeds=seeds, n_boot=n_boot,
                        level=level, seed=seed)


def compare_rows_hm(records: Sequence[dict[str, Any]], row: str, reference: str,
                    parts: tuple[str, str], splits: Sequence[str] | None = None,
                    seeds: Sequence[int] | None = None, *, n_boot: int = 2000,
                    level: float = 0.95, seed: int = 0) -> Interval:
    """:func:`paired_bootstrap_hm` of ``row`` minus ``reference`` from run records: the
    harmonic mean of the item means of the per-item metrics ``parts`` (recognition's
    base-to-novel HM: ``("base", "novel")``). Arguments and errors as :func:`compare_rows`."""
    if len(parts) != 2 or parts[0] == parts[1]:
        raise ValueError(f"parts must be two different per-item metrics, got {parts!r}")
    splits, seeds = _common_grid(records, row, reference, splits, seeds)
    _item_ids(records, (row, reference), splits, seeds)
    a = tuple(item_scores(records, row, m, splits, seeds) for m in parts)
    b = tuple(item_scores(records, reference, m, splits, seeds) for m in parts)
    return paired_bootstrap_hm(a, b, n_boot=n_boot, level=level, seed=seed)


@dataclass(frozen=True)
class SeedCurve:
    """Interval half-width against the number of seeds (:func:`interval_vs_seeds`).

    Attributes:
        rows: per number of seeds ``k``: ``{"n_seeds", "half_width"`` (the paired bootstrap's,
            mean over subsets of ``k`` seeds), ``"min", "max"`` (over the subsets),
            ``"subsets", "diff"`` (mean difference over the subsets), ``"projected"}``
            (:meth:`projected`).
        item_part: variance of the difference that comes from the test items (of the seed-
            averaged per-item differences, per split, divided by the items and combined over
            the splits): more seeds cannot remove it, only more test items.
        seed_part: variance of one seed's difference (sample variance over the seeds of the
            per-seed difference of the table numbers): divided by ``k`` with ``k`` seeds.
            None with one seed.
        level: the intervals' coverage.
    """

    rows: tuple[dict[str, Any], ...]
    item_part: float
    seed_part: float | None
    level: float = 0.95
    header: str = field(default="", repr=False)

    def projected(self, n_seeds: int) -> float | None:
        """Normal-approximation half-width with ``n_seeds`` seeds:
        ``z * sqrt(item_part + seed_part / n_seeds)``, ``z`` the normal quantile of the level
        (None without a seed part)."""
        if self.seed_part is None:
            return None
        from scipy.stats import norm

        z = float(norm.ppf((1 + self.level) / 2))
        return z * math.sqrt(self.item_part + self.seed_part / n_seeds)

    def seeds_for(self, half_width: float, max_seeds: int = 10_000) -> int | None:
        """Fewest seeds whose :meth:`projected` half-width is at most ``half_width``; None when
        even ``max_seeds`` would not do (the test items' part alone is wider: more test items
        are needed, not seeds) or without a seed part."""
        if self.seed_part is None:
            return None
        for k in range(1, max_seeds + 1):
            if self.projected(k) <= half_width:
                return k
        return None

    def format(self) -> str:
        """The curve as a small text table (what :func:`interval_vs_seeds` prints)."""
        lines = [self.header] if self.header else []
        lines.append("seeds  bootstrap half-width (min - max)  subsets  mean diff  projected")
        for r in self.rows:
            proj = f"{r['projected']:9.2f}" if r["projected"] is not None else "        -"
            lines.append(f"{r['n_seeds']:>5d}  {r['half_width']:20.2f} "
                         f"({r['min']:.2f} - {r['max']:.2f})  {r['subsets']:>7d}  "
                         f"{r['diff']:+9.2f}  {proj}")
        lines.append("(bootstrap: measured on subsets of the seeds; with 1 seed it sees no seed "
                     "noise, with 2-3 it understates it (with 2 its interval is the two seeds' "
                     "range). projected: z * sqrt(items + seeds / k) from all the seeds.)")
        if self.seed_part is not None:
            lines.append(f"variance parts: test items {self.item_part:.3g} (half-width floor "
                         f"{self.projected(10**12):.2f}), one seed {self.seed_part:.3g}")
        return "\n".join(lines)


def interval_vs_seeds(records: Sequence[dict[str, Any]], row: str, reference: str, metric: str,
                      splits: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                      *, subsets: int = 20, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0, file: TextIO | None = sys.stdout) -> SeedCurve:
    """How many seeds do I need? The paired-bootstrap half-width of ``row - reference`` with
    ``k = 1 .. S`` of the ``S`` seeds the records have, each ``k`` averaged over subsets of the
    seeds (every subset when there are at most ``subsets`` of them, else ``subsets`` random
    ones), printed to ``file`` (None: not printed).

    The measured half-widths are what a table made with ``k`` seeds would show; for small ``k``
    they understate the seed noise (a bootstrap over 2 seeds can only reach their range), so
    they need not shrink steadily. For planning, the curve also splits the variance of the
    difference into a test-item part and a per-seed part (from all ``S`` seeds) and projects
    the half-width for any ``k``, ``z * sqrt(items + seeds / k)``
    (:meth:`SeedCurve.seeds_for`: how many seeds bring the interval under a target, e.g. under
    the differences a paper reports; None when the test items alone are too noisy).

    Raises:
        as :func:`compare_rows`; ``subsets`` not a positive int.
    """
    splits, seeds = _common_grid(records, row, reference, splits, seeds)
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets must be a positive int, got {subsets!r}")
    _check_level(level, n_boot)
    a = item_scores(records, row, metric, splits, seeds)
    b = item_scores(records, reference, metric, splits, seeds)
    _item_ids(records, (row, reference), splits, seeds)
    _, _, diffs = _layout(a, b)
    per_seed = np.mean([diffs[p].mean(axis=1) for p in splits], axis=0)  # (S,) table differences
    seed_part = float(np.var(per_seed, ddof=1)) if len(seeds) > 1 else None
    item_part = float(sum(np.var(diffs[p].mean(axis=0), ddof=1) / diffs[p].shape[1]
                          for p in splits) / len(splits) ** 2)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(1, len(seeds) + 1):
        combos = list(itertools.combinations(seeds, k))
        if len(combos) > subsets:
            pick = rng.choice(len(combos), size=subsets, replace=False)
            combos = [combos[i] for i in sorted(pick)]
        widths, means = [], []
        for j, combo in enumerate(combos):
            keep = [(p, s) for p in splits for s in combo]
            iv = paired_bootstrap({q: a[q] for q in keep}, {q: b[q] for q in keep},
                                  n_boot=n_boot, level=level, seed=seed + 1 + j)
            widths.append(iv.half_width)
            means.append(iv.diff)
        rows.append({"n_seeds": k, "half_width": round(float(np.mean(widths)), 4),
                     "min": round(float(np.min(widths)), 4),
                     "max": round(float(np.max(widths)), 4), "subsets": len(combos),
                     "diff": round(float(np.mean(means)), 4)})
    n_items = sum(diffs[p].shape[1] for p in splits)
    header = (f"{row} - {reference}, {metric}: {level:.0%} paired bootstrap half-width "
              f"against seeds ({len(splits)} split(s), {n_items} test items, "
              f"{n_boot} resamples)")
    curve = SeedCurve(tuple(rows), item_part, seed_part, level, header)
    for r in rows:
        p = curve.projected(r["n_seeds"])
        r["projected"] = round(p, 4) if p is not None else None
    if file is not None:
        print(curve.format(), file=file)
    return curve
