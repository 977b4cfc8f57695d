r"""Equal effort per method: one tuning protocol for every table row, and the
accuracy-vs-trainable-parameters (Pareto) frontier it measures on the way.

A comparison of PEFT methods is only fair when each method got the same chance to be good. The
protocol, the same for every row of every task that uses it:

1. **Candidates.** A row whose method has a size knob (:data:`SIZE_KNOBS`: READ's and the
   Houlsby adapter's bottleneck, LoRA's rank, the prompt's length) tries every size of
   :data:`SIZES` at every learning-rate factor of :data:`FACTORS` (times the row's base rate):
   ``|SIZES| x |FACTORS|`` runs. A row without one (Full, Partial, Bias, Proj) spends **the same
   number of runs** on a finer learning-rate grid over the same range (:func:`row_factors`:
   ``|SIZES| x |FACTORS|`` factors spaced evenly in log between the smallest and the largest
   factor), so no row gets more tries than another.
2. **Scores.** Every candidate trains on the task's tuning domains with seed 0 and is scored on
   the **validation** split (never the test split) by the task's validation metric, averaged
   over the domains.
3. **Choice** (:func:`choose`): the best mean validation score wins; ties go to the smaller
   size (fewer trainable parameters), then to the smaller rate.
4. **Pareto frontier** (:func:`pareto_front`): per row and size, the test score at that size's
   best rate against its trainable parameters; a point is on the frontier when no other point
   has at most as many parameters and a higher score.

**(choices)** The grids below; LoRA keeps ``alpha = 2 r`` at every rank (the shipped default
``r = 4, alpha = 8``), so the rank changes the adapter's capacity and not its output scale
(Hu et al. 2021 fix ``alpha`` and note that the scale then acts like a learning rate). The base
rates are each task's existing per-method rates, so the grid is centred where earlier sweeps
found a good rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FACTORS", "SIZES", "SIZE_KNOBS", "Candidate", "candidates", "choose",
           "finite_or_zero", "pareto_front", "point_runs", "points", "row_factors", "run_seconds",
           "selection", "size_overrides", "sized_points"]

#: the config field that sets each method's size (methods not listed have none)
SIZE_KNOBS: dict[str, str] = {"read": "bottleneck", "adapter": "bottleneck", "lora": "r",
                              "prompt": "n_tokens"}
#: the sizes each method tries (each includes the shipped default: 4, 4, 4, 10)
SIZES: dict[str, tuple[int, ...]] = {"read": (2, 4, 8, 16), "adapter": (2, 4, 8, 16),
                                     "lora": (1, 2, 4, 8), "prompt": (2, 5, 10, 20)}
#: learning-rate multiples of a row's base rate
FACTORS: tuple[float, ...] = (1 / 3, 1.0, 3.0)


@dataclass(frozen=True)
class Candidate:
    """One tuning run's setting: ``row`` (a table row) with ``method`` at ``size`` (None: the
    method has no size knob) and learning rate ``base x factor``."""

    row: str
    method: str
    size: int | None
    factor: float

    def overrides(self) -> tuple[tuple[str, Any], ...]:
        """The method-config overrides of this size (:func:`size_overrides`)."""
        return size_overrides(self.method, self.size)


def size_overrides(method: str, size: int | None) -> tuple[tuple[str, Any], ...]:
    """Config overrides that give ``method`` the size ``size`` (``()`` for None); LoRA also gets
    ``alpha = 2 r`` (module docstring).

    Raises:
        ValueError: a size for a method without a size knob, or a size that is not an int >= 1.
    """
    if size is None:
        return ()
    if method not in SIZE_KNOBS:
        raise ValueError(f"method {method!r} has no size knob; methods with one: "
                         f"{sorted(SIZE_KNOBS)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    out: tuple[tuple[str, Any], ...] = ((SIZE_KNOBS[method], int(size)),)
    if method == "lora":
        out += (("alpha", 2.0 * int(size)),)
    return out


def _check_factors(factors: Sequence[float]) -> list[float]:
    fs = [float(f) for f in factors]
    if not fs or any(not (f > 0 and math.isfinite(f)) for f in fs) or len(set(fs)) != len(fs):
        raise ValueError(f"factors must be distinct finite numbers > 0, got {list(factors)}")
    return fs


def row_factors(method: str, factors: Sequence[float] = FACTORS,
                sizes: Mapping[str, Sequence[int]] = SIZES) -> tuple[float, ...]:
    """The learning-rate factors a row of ``method`` tries: ``factors`` for a sized method; for
    one without a size knob, ``max |sizes|`` x ``|factors|`` factors evenly spaced in log over
    ``[min factors, max factors]`` (the same number of runs, module docstring)."""
    fs = _check_factors(factors)
    if method in SIZE_KNOBS:
        return tuple(fs)
    n = max(len(s) for s in sizes.values()) * len(fs) if sizes else len(fs)
    if n == 1:
        return tuple(fs)
    return tuple(float(x) for x in np.geomspace(min(fs), max(fs), n))


def candidates(rows: Mapping[str, str], factors: Sequence[float] = FACTORS,
               sizes: Mapping[str, Sequence[int]] = SIZES) -> list[Candidate]:
    """Every candidate of the protocol for ``rows`` (``{row: method}``; a method None, such as a
    zero-shot row, has nothing to tune and gets none), in row order, then size, then factor.

    Raises:
        ValueError: bad factors, or a sized method with no sizes / bad sizes.
    """
    out = []
    for row, method in rows.items():
        if method is None:
            continue
        if method in SIZE_KNOBS:
            ss = list(sizes.get(method, ()))
            if not ss or len(set(ss)) != len(ss):
                raise ValueError(f"row {row!r}: method {method!r} needs distinct sizes, got {ss}")
            for s in ss:
                size_overrides(method, s)  # checks the size
        else:
            ss = [None]
        for s in ss:
            out += [Candidate(row, method, s, f) for f in row_factors(method, factors, sizes)]
    return out


def choose(scores: Mapping[Candidate, float]) -> dict[str, Candidate]:
    """Per row the candidate with the best score (ties: the smaller size, then the smaller
    factor).

    Raises:
        ValueError: no scores, or a score that is not a finite number (a diverged run must be
            scored, e.g. as 0, not skipped silently).
    """
    if not scores:
        raise ValueError("no candidate scores given")
    bad = {c.row: v for c, v in scores.items()
           if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)}
    if bad:
        raise ValueError(f"candidate scores must be finite numbers; not so for rows {bad}")
    best: dict[str, Candidate] = {}
    for c, v in scores.items():
        b = best.get(c.row)
        key = (-v, c.size if c.size is not None else 0, c.factor)
        if b is None or key < (-scores[b], b.size if b.size is not None else 0, b.factor):
            best[c.row] = c
    return best


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(trainable parameters, score)`` on the frontier, sorted by
    parameters: the points no other point dominates (at most as many parameters and at least as
    high a score, one of the two strictly); of equal points the first.

    Raises:
        ValueError: a non-finite coordinate.
    """
    pts = [(float(p), float(s)) for p, s in points]
    if any(not (math.isfinite(p) and math.isfinite(s)) for p, s in pts):
        raise ValueError("points must have finite parameters and scores")
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], -pts[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if pts[i][1] > best:
            front.append(i)
            best = pts[i][1]
    return front


# -- the task-independent bookkeeping of a tuning run and of its Pareto runs ---------------------
def finite_or_zero(v: Any) -> float:
    """A run's score as a float; a run without a finite score (diverged, or no validation)
    scores 0: counted against its candidate, not skipped."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return 0.0
    return float(v)


def selection(scores: Mapping[Candidate, float], label: Callable[[Candidate], str],
              lr: Callable[[Candidate], float],
              parts: Mapping[Candidate, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Step 3 of the protocol as a record: every candidate's score, the choice per row
    (:func:`choose`), each size's best factor (the Pareto runs use it) and the number of runs
    per row (the budget; equal for every row by construction).

    Args:
        scores: each candidate's validation score (mean over the task's tuning domains).
        label: the table row of a candidate's size (e.g. ``"READ (bottleneck=8)"``).
        lr: the learning rate a candidate trained with.
        parts: optional per-domain scores of each candidate, stored beside the mean.

    Returns:
        ``{"candidates": [{"row", "size", "factor", "lr", "variant", "val"[, "per_domain"]}],
        "chosen": {row: {"size", "factor", "variant", "lr", "val"}}, "best_per_size": {row:
        {str(size): factor}}, "budget": {row: runs}}``.
    """
    table = []
    for c, v in scores.items():
        item = {"row": c.row, "size": c.size, "factor": c.factor, "lr": lr(c),
                "variant": label(c), "val": round(v, 4)}
        if parts is not None:
            item["per_domain"] = {d: round(x, 4) for d, x in parts[c].items()}
        table.append(item)
    chosen = choose(scores)
    best_size: dict[str, dict[str, float]] = {}
    for row in dict.fromkeys(c.row for c in scores):
        for size in dict.fromkeys(c.size for c in scores if c.row == row):
            sub = {c: v for c, v in scores.items() if c.row == row and c.size == size}
            best_size.setdefault(row, {})[str(size)] = choose(sub)[row].factor
    return {"candidates": table, "best_per_size": best_size,
            "budget": {row: sum(c.row == row for c in scores) for row in chosen},
            "chosen": {row: {"size": c.size, "factor": c.factor, "variant": label(c),
                             "lr": lr(c), "val": round(scores[c], 4)}
                       for row, c in chosen.items()}}


def sized_points(best_per_size: Mapping[str, Mapping[str, float]]
                 ) -> list[tuple[str, int | None, float]]:
    """The Pareto runs' settings of a :func:`selection`: ``(row, size, factor)`` for every row
    and size, at that size's best factor on validation."""
    return [(row, None if s == "None" else int(s), float(f))
            for row, per in best_per_size.items() for s, f in per.items()]


def points(variants: Mapping[str, tuple[str, int | None, float]], records: Sequence[dict],
           seeds: Sequence[int], metric: Callable[[dict], float], chosen: Mapping[str, str]
           ) -> list[dict[str, Any]]:
    """The accuracy-vs-trainable-parameters points of the Pareto runs.

    Args:
        variants: ``{row label of the runs: (row, size, factor)}``.
        records: the runs (``"row"``, ``"seed"``, ``"trainable"``, ``"total"`` and the metric).
        seeds: a point's score is the mean over seeds of the seed's mean over its runs (the
            task's domains); ``std`` the sample std over seeds.
        metric: a record's test score.
        chosen: ``{row: the variant the protocol chose}``.

    Returns:
        ``[{"row", "size", "factor", "variant", "trainable", "total", "mean", "std", "chosen",
        "frontier"}]`` (:func:`pareto_front`).

    Raises:
        ValueError: a variant or a (variant, seed) without runs.
    """
    out = []
    for label, (row, size, factor) in variants.items():
        rs = [r for r in records if r["row"] == label and "error" not in r]
        per_seed = []
        for s in seeds:
            xs = [metric(r) for r in rs if int(r["seed"]) == int(s)]
            if not xs:
                raise ValueError(f"no finished run of {label!r} with seed {s}")
            per_seed.append(float(sum(xs) / len(xs)))
        out.append({"row": row, "size": size, "factor": factor, "variant": label,
                    "trainable": rs[0]["trainable"], "total": rs[0]["total"],
                    "mean": round(float(np.mean(per_seed)), 4),
                    "std": round(float(np.std(per_seed, ddof=1)), 4) if len(per_seed) > 1
                    else None, "chosen": chosen.get(row) == label})
    front = set(pareto_front([(p["trainable"], p["mean"]) for p in out]))
    for i, p in enumerate(out):
        p["frontier"] = i in front
    return out


def point_runs(variants: Mapping[str, Any], records: Sequence[dict],
               metric: Callable[[dict], float]) -> list[dict[str, Any]]:
    """The Pareto runs reduced to what :func:`points` reads, ``[{"row", "split", "seed",
    "seconds", "trainable", "total", "score"}]`` (finished runs of ``variants`` only), so a
    shipped Pareto file can be checked against its runs: ``points(variants, point_runs(...),
    seeds, lambda r: r["score"], chosen)`` gives the same points."""
    return [{"row": r["row"], "split": r.get("split"), "seed": int(r["seed"]),
             "seconds": r.get("seconds"), "trainable": r["trainable"], "total": r["total"],
             "score": float(metric(r))}
            for r in records if r["row"] in variants and "error" not in r]


def run_seconds(records: Sequence[dict]) -> float:
    """The runs' own training time summed (s, 1 decimal): unlike a call's wall time, it covers
    runs that an earlier, resumed call made."""
    return round(sum(r.get("seconds") or 0 for r in records), 1)
