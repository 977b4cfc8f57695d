r"""Tables from run records: mean ± std over seeds, significance marks, Markdown and JSON.

A :class:`TableSpec` says which rows (methods) and which columns a table shows; a column is one
metric on one split, or ``split="avg"``: per seed the mean over the table's splits, then mean ±
std over seeds (the paper's "Avg." column). Every cell is computed from the records, so a stored
table can always be checked against its stored runs (:func:`summarize` again).

Significance (the paper's ``‡``): with ``reference`` set (READ-PVLA in the paper), a cell of
another row is marked when the reference is better on the same test items: a one-sided Wilcoxon
signed-rank test (scipy, ``zero_method="zsplit"``) of reference minus row over the items' scores
(each item's score averaged over the seeds; the ``avg`` column pools the items of every split), at
level ``alpha``. It needs per-item scores in the records (``record["per_item"][metric]``, same
item order in every run of a split); a column without them gets no mark, never a guessed one.

Intervals (``TableSpec(delta=Delta("Adapter"))``): a column ``Δ vs Adapter`` with, per row, the
row's difference to the reference row on one column and its 95% paired bootstrap interval over
test items and seeds (:mod:`readpvla.experiment.intervals`), e.g. ``+1.23 [-0.40, +2.91]``. It
too needs ``per_item`` scores; a row without them shows ``n/a`` and the note says why. A column
that is a harmonic mean of two item means (base-to-novel HM) gets its interval from
``Delta(..., harmonic=(first, second))``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Column", "Delta", "TableSpec", "compare_runs", "deltas", "format_table", "mean_std",
           "note_of", "retable", "significance", "spec_of", "summarize", "table_payload",
           "verify_table", "write_json", "write_table"]

AVG = "avg"
SIGNIFICANCE_TEST = "one-sided Wilcoxon signed-rank over test items (scipy, zero_method='zsplit')"


@dataclass(frozen=True)
class Column:
    """One column: ``metric`` on ``split`` (or ``split="avg"``), headed ``header``."""

    header: str
    split: str
    metric: str


@dataclass(frozen=True)
class Delta:
    """A table's "Δ vs reference [lo, hi]" column (:func:`deltas`).

    Attributes:
        reference: the row key every other row is compared with (row minus reference).
        column: the header of the column whose metric and split(s) are compared (default: the
            first ``avg`` column, else the first column).
        n_boot: bootstrap replicates.
        level: the interval's nominal coverage.
        seed: the bootstrap's seed (the same seed gives the same intervals).
        harmonic: None (the column is a mean over test items of its metric), or two per-item
            metrics whose item means the column's number is the harmonic mean of, per split
            and seed (base-to-novel HM: ``("base", "novel")``); the interval then comes from
            :func:`readpvla.experiment.intervals.compare_rows_hm`.
    """

    reference: str
    column: str | None = None
    n_boot: int = 2000
    level: float = 0.95
    seed: int = 0
    harmonic: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.harmonic is not None:
            h = tuple(self.harmonic)
            if len(h) != 2 or not all(isinstance(m, str) and m for m in h) or h[0] == h[1]:
                raise ValueError(f"harmonic must be two different per-item metric names, got "
                                 f"{self.harmonic!r}")
            object.__setattr__(self, "harmonic", h)  # a JSON list comes back as a tuple


@dataclass(frozen=True)
class TableSpec:
    """What a table shows.

    Attributes:
        title: the heading (``### title`` in Markdown).
        rows: ``(shown label, row key)`` pairs, in order.
        columns: the columns after "Method" and "#params (M)".
        splits: the splits an ``avg`` column averages over.
        reference: the row whose gain is tested for the ``‡`` marks (None: no marks).
        alpha: the test's level.
        note: text under the table.
        extra_metrics: metrics summarised for the JSON only.
        delta: show each row's difference to a reference row with a paired bootstrap interval
            (:class:`Delta`); None: no such column.
    """

    title: str
    rows: tuple[tuple[str, str], ...]
    columns: tuple[Column, ...]
    splits: tuple[str, ...] = ()
    reference: str | None = None
    alpha: float = 0.05
    note: str = ""
    extra_metrics: tuple[str, ...] = field(default=())
    delta: Delta | None = None

    def delta_column(self) -> Column | None:
        """The column :attr:`delta` compares on (None without ``delta``); ``ValueError`` for a
        header that is not a column."""
        if self.delta is None:
            return None
        if self.delta.column is None:
            return next((c for c in self.columns if c.split == AVG), self.columns[0])
        for c in self.columns:
            if c.header == self.delta.column:
                return c
        raise ValueError(f"delta column {self.delta.column!r} is not a column of the table; "
                         f"columns: {[c.header for c in self.columns]}")

    def metrics(self) -> list[str]:
        """Every metric a column or ``extra_metrics`` names (summarised for the JSON)."""
        out: list[str] = []
        for m in [c.metric for c in self.columns] + list(self.extra_metrics):
            if m not in out:
                out.append(m)
        return out


def mean_std(xs: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std" (sample, ddof=1; 0 for one value), "values"}``, rounded to 2 decimals."""
    xs = [float(x) for x in xs]
    return {"mean": round(statistics.fmean(xs), 2),
            "std": round(statistics.stdev(xs), 2) if len(xs) > 1 else 0.0,
            "values": [round(x, 2) for x in xs]}


def _index(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["row"], r["split"], int(r["seed"])): r for r in records}


def _get(index: dict, row: str, split: str, seed: int) -> dict[str, Any]:
    if (row, split, seed) not in index:
        raise ValueError(f"no run for row {row!r}, split {split!r}, seed {seed}")
    return index[(row, split, seed)]


def _values(index: dict, row: str, col: Column, splits: Sequence[str], seeds: Sequence[int]
            ) -> list[float]:
    """Per seed: the metric on the column's split, or its mean over ``splits`` (``avg``)."""
    if col.split == AVG:
        return [statistics.fmean(_get(index, row, s, seed)["test"][col.metric] for s in splits)
                for seed in seeds]
    return [_get(index, row, col.split, seed)["test"][col.metric] for seed in seeds]


def _items(index: dict, row: str, col: Column, splits: Sequence[str], seeds: Sequence[int]
           ) -> np.ndarray | None:
    """Per test item, the column's metric averaged over seeds (``avg``: items of all splits)."""
    parts = []
    for s in (splits if col.split == AVG else [col.split]):
        runs = [_get(index, row, s, seed).get("per_item", {}).get(col.metric) for seed in seeds]
        if any(r is None for r in runs) or len({len(r) for r in runs}) != 1:
            return None
        parts.append(np.mean(np.asarray(runs, dtype=np.float64), axis=0))
    return np.concatenate(parts) if parts else None


def significance(records: Sequence[dict[str, Any]], spec: TableSpec, seeds: Sequence[int]
                 ) -> dict[str, dict[str, bool]]:
    """``{row key: {column header: reference significantly better}}`` (module docstring); empty
    without a reference. Columns without per-item scores are left out."""
    if spec.reference is None:
        return {}
    from scipy.stats import wilcoxon

    index = _index(records)
    marks: dict[str, dict[str, bool]] = {}
    for _, row in spec.rows:
        if row == spec.reference:
            continue
        marks[row] = {}
        for col in spec.columns:
            ref = _items(index, spec.reference, col, spec.splits, seeds)
            other = _items(index, row, col, spec.splits, seeds)
            if ref is None or other is None or len(ref) != len(other):
                continue
            diff = ref - other
            if not np.any(diff != 0):
                marks[row][col.header] = False
                continue
            p = wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue
            marks[row][col.header] = bool(p < spec.alpha)
    return marks


def deltas(records: Sequence[dict[str, Any]], spec: TableSpec, seeds: Sequence[int]
           ) -> dict[str, dict[str, Any] | None]:
    """``{row key: interval}`` for every row but the reference (empty without ``spec.delta``):
    :func:`readpvla.experiment.intervals.compare_rows` of the row minus the reference on
    :meth:`TableSpec.delta_column` (its split, or every split of the table for ``avg``) over
    ``seeds``, as :meth:`Interval.as_dict`; None for a row whose (or whose reference's) records
    have no ``per_item`` scores for the metric. With ``spec.delta.harmonic`` the difference is
    of the harmonic mean of those two per-item metrics' item means
    (:func:`readpvla.experiment.intervals.compare_rows_hm`)."""
    from .intervals import NoItemScores, compare_rows, compare_rows_hm

    col = spec.delta_column()
    if col is None:
        return {}
    d = spec.delta
    rows = [row for _, row in spec.rows]
    if d.reference not in rows:
        raise ValueError(f"delta reference {d.reference!r} is not a row of the table; rows: "
                         f"{rows}")
    splits = list(spec.splits) if col.split == AVG else [col.split]
    out: dict[str, dict[str, Any] | None] = {}
    for row in rows:
        if row == d.reference:
            continue
        try:
            if d.harmonic is not None:
                iv = compare_rows_hm(records, row, d.reference, d.harmonic, splits, seeds,
                                     n_boot=d.n_boot, level=d.level, seed=d.seed)
            else:
                iv = compare_rows(records, row, d.reference, col.metric, splits, seeds,
                                  n_boot=d.n_boot, level=d.level, seed=d.seed)
        except NoItemScores:
            out[row] = None
            continue
        out[row] = {"column": col.header, "metric": col.metric, **iv.as_dict()}
    return out


def summarize(records: Sequence[dict[str, Any]], spec: TableSpec, seeds: Sequence[int]
              ) -> dict[str, Any]:
    """Table rows from run records: per row, every column's and every metric's mean ± std over
    seeds (``cells`` by column header; ``per_split`` and ``avg`` by metric, for the JSON), the
    parameter counts of its first run, its total seconds and its ``‡`` marks; with
    ``spec.delta`` also ``delta``: its interval against the reference (:func:`deltas`; None for
    the reference row and for rows without per-item scores). A missing run raises
    ``ValueError``."""
    index = _index(records)
    splits = list(spec.splits)
    seeds = [int(s) for s in seeds]
    marks = significance(records, spec, seeds)
    intervals = deltas(records, spec, seeds)
    out: dict[str, Any] = {}
    for shown, row in spec.rows:
        entry: dict[str, Any] = {"row": row, "cells": {}, "per_split": {}, "avg": {}}
        for col in spec.columns:
            entry["cells"][col.header] = mean_std(_values(index, row, col, splits, seeds))
        for metric in spec.metrics():
            if splits:
                for s in splits:
                    entry["per_split"].setdefault(s, {})[metric] = mean_std(
                        _values(index, row, Column("", s, metric), splits, seeds))
                entry["avg"][metric] = mean_std(
                    _values(index, row, Column("", AVG, metric), splits, seeds))
        first = _get(index, row, (splits or [spec.columns[0].split])[0], seeds[0])
        entry.update(params=first["params"], trainable=first["trainable"], total=first["total"],
                     percent=round(100.0 * first["trainable"] / first["total"], 4),
                     seconds=round(sum(r.get("seconds", 0.0) for k, r in index.items()
                                       if k[0] == row and int(k[2]) in seeds), 1),
                     significant=marks.get(row, {}))
        if spec.delta is not None:
            entry["delta"] = intervals.get(row)
        out[shown] = entry
    return out


def _cell(ms: dict[str, Any], mark: bool) -> str:
    text = f"{ms['mean']:.2f}" if len(ms["values"]) == 1 else f"{ms['mean']:.2f} ± {ms['std']:.2f}"
    return text + (" ‡" if mark else "")  # one seed has no spread: no "± 0.00"


def _delta_cell(row: str, entry: dict[str, Any], spec: TableSpec) -> str:
    if row == spec.delta.reference:
        return "—"
    iv = entry.get("delta")
    if iv is None:
        return "n/a"
    def num(x: float) -> str:  # -0.001 shows as +0.00, not -0.00
        return f"{round(x, 2) + 0.0:+.2f}"

    return f"{num(iv['diff'])} [{num(iv['lo'])}, {num(iv['hi'])}]"


def _delta_note(summary: dict[str, Any], spec: TableSpec, ref: str) -> str:
    d, col = spec.delta, spec.delta_column()
    shown = [r for r in summary.values() if r["row"] != d.reference]
    have = [r["delta"] for r in shown if r.get("delta") is not None]
    if not have:
        return (f"Δ vs {ref}: n/a, the run records have no per-item scores for {col.metric}, so "
                "no interval can be computed.")
    seeds = have[0]["seeds"]
    if d.harmonic is not None:
        x, y = d.harmonic
        text = (f"Δ vs {ref}: the row minus {ref} in {col.metric} ({col.header} column, per "
                f"split and seed the harmonic mean of the {x} and the {y} items' means), with a "
                f"{d.level:.0%} paired bootstrap percentile interval (Efron & Tibshirani 1993): "
                f"{d.n_boot} resamples of the {x} and of the {y} test items within each split "
                f"and of the {len(seeds)} seed(s), the harmonic mean recomputed from each "
                f"resample, the same resample for both rows (bootstrap seed {d.seed}).")
    else:
        text = (f"Δ vs {ref}: the row minus {ref} in {col.metric} ({col.header} column), with a "
                f"{d.level:.0%} paired bootstrap percentile interval (Efron & Tibshirani 1993): "
                f"{d.n_boot} resamples of the test items within each split and of the "
                f"{len(seeds)} seed(s), the same resample for both rows (bootstrap seed "
                f"{d.seed}).")
    if len(seeds) == 1:
        text += " With one seed the interval shows test-item noise only, not seed noise."
    if len(have) < len(shown):
        text += " n/a: runs without per-item scores."
    return text


def format_table(summary: dict[str, Any], spec: TableSpec, note: str | None = None) -> str:
    """Markdown: ``### title``, ``| Method | #params (M) | <columns> |``, the note; a cell is
    ``mean ± std`` over seeds (the mean alone for one seed), ``‡`` where marked. With
    ``spec.delta`` a last column ``Δ vs <reference>``: ``+d [lo, hi]``, ``—`` for the
    reference, ``n/a`` without per-item scores (the note says which)."""
    head = ["Method", "#params (M)", *[c.header for c in spec.columns]]
    shown_of = dict((row, shown) for shown, row in spec.rows)
    if spec.delta is not None:
        ref_shown = shown_of.get(spec.delta.reference, spec.delta.reference)
        head.append(f"Δ vs {ref_shown}")
    lines = [f"### {spec.title}", "", f"| {' | '.join(head)} |",
             f"|{'|'.join(['---'] * 2 + ['---:'] * (len(head) - 2))}|"]
    for shown, row in summary.items():
        cells = [shown, row["params"],
                 *[_cell(row["cells"][c.header], row["significant"].get(c.header, False))
                   for c in spec.columns]]
        if spec.delta is not None:
            cells.append(_delta_cell(row["row"], row, spec))
        lines.append(f"| {' | '.join(cells)} |")
    note = spec.note if note is None else note
    if any(any(r["significant"].values()) for r in summary.values()):
        ref = shown_of.get(spec.reference, spec.reference)
        note = (note + " " if note else "") + (
            f"‡: {ref}'s gain over the row is significant at the {spec.alpha:g} level "
            f"({SIGNIFICANCE_TEST}).")
    if spec.delta is not None:
        note = (note + " " if note else "") + _delta_note(summary, spec, ref_shown)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def table_payload(spec: TableSpec, summary: dict[str, Any], records: Sequence[dict[str, Any]],
                  seeds: Sequence[int], **extra: Any) -> dict[str, Any]:
    """The JSON of a table: its spec, rows, every run's record and ``extra`` (task, backbone,
    settings, wall time, ...)."""
    return {"table": spec.title, **extra,
            "columns": [{"header": c.header, "split": c.split, "metric": c.metric}
                        for c in spec.columns],
            "splits": list(spec.splits), "extra_metrics": list(spec.extra_metrics),
            "seeds": [int(s) for s in seeds],
            "reference": spec.reference, "significance_test": SIGNIFICANCE_TEST,
            "alpha": spec.alpha, "rows": summary, "runs": list(records), "note": spec.note,
            **({"delta": _delta_dict(spec.delta)} if spec.delta is not None else {})}


def _delta_dict(d: Delta) -> dict[str, Any]:
    """``asdict`` without ``harmonic`` where it is None (tables stored before it existed read
    the same)."""
    out = asdict(d)
    if out["harmonic"] is None:
        del out["harmonic"]
    else:
        out["harmonic"] = list(out["harmonic"])
    return out


def spec_of(payload: dict[str, Any]) -> TableSpec:
    """The :class:`TableSpec` a stored payload was made with (to check it against its runs)."""
    return TableSpec(
        title=payload["table"],
        rows=tuple((shown, r["row"]) for shown, r in payload["rows"].items()),
        columns=tuple(Column(c["header"], c["split"], c["metric"]) for c in payload["columns"]),
        splits=tuple(payload["splits"]), reference=payload.get("reference"),
        alpha=payload.get("alpha", 0.05), note=payload.get("note", ""),
        extra_metrics=tuple(payload.get("extra_metrics", ())),
        delta=Delta(**payload["delta"]) if payload.get("delta") else None)


def note_of(markdown: str) -> str:
    """The note a table's Markdown was made with: its last paragraph without the sentences
    :func:`format_table` adds (the ``‡`` and ``Δ vs`` explanations), so that
    ``format_table(summary, spec, note_of(md))`` makes ``md`` again."""
    last = markdown.rstrip("\n").split("\n\n")[-1]
    if last.startswith(("### ", "| ")):  # no note at all
        return ""
    return re.split(r"(?:^| )(?:‡: |Δ vs )", last, maxsplit=1)[0]


def verify_table(payload: dict[str, Any], markdown: str | None = None) -> TableSpec:
    """Check that a stored table follows from its stored runs: every cell, mark and interval is
    what :func:`summarize` makes of ``payload["runs"]``, every (row, split, seed) of the grid has
    its run, and ``markdown`` (if given) is what :func:`format_table` makes of them. Returns the
    table's spec.

    Raises:
        ValueError: naming what does not follow (the first row / cell that differs, the missing
            or extra runs, or the Markdown).
    """
    spec = spec_of(payload)
    again = summarize(payload["runs"], spec, payload["seeds"])
    if again != payload["rows"]:
        bad = next((k for k in payload["rows"] if again.get(k) != payload["rows"][k]),
                   sorted(set(again) ^ set(payload["rows"])))
        raise ValueError(f"table {payload.get('table')!r}: row {bad!r} does not follow from "
                         "the stored runs")
    keys = {(r["row"], r["split"], int(r["seed"])) for r in payload["runs"]}
    # a table without averaged splits (VLS: every column on "test") names them in its columns
    splits = payload["splits"] or sorted({c.split for c in spec.columns if c.split != AVG})
    want = {(row, d, int(s)) for _, row in spec.rows for d in splits for s in payload["seeds"]}
    if keys != want:
        raise ValueError(f"table {payload.get('table')!r}: runs missing {sorted(want - keys)[:5]}"
                         f", extra {sorted(keys - want)[:5]}")
    if markdown is not None and markdown != format_table(again, spec, note_of(markdown)):
        raise ValueError(f"table {payload.get('table')!r}: the Markdown is not what the stored "
                         "runs give")
    return spec


def retable(payload: dict[str, Any], markdown: str, *, delta: Delta | None = None,
            marks: bool = True, columns: Sequence[Column] | None = None,
            runs: Sequence[dict[str, Any]] | None = None, note: str | None = None
            ) -> tuple[dict[str, Any], str]:
    """A stored table made again from its own runs with another presentation: ``delta`` (a
    :class:`Delta`; None: as stored) adds or replaces the "Δ vs" interval column, ``marks=False``
    drops the ``‡`` significance marks (the interval replaces them), ``columns`` (None: as
    stored) replaces the columns, e.g. to add a slice. Nothing is retrained: every cell comes
    from ``payload["runs"]`` (:func:`summarize`), or from ``runs``: the same runs with scores
    derived from what they store (e.g. a slice of their per-item scores; every stored cell must
    still follow from them), the note from ``markdown`` (:func:`note_of`) unless ``note`` is
    given. Returns the new payload (every other field kept) and Markdown.

    Raises:
        ValueError: the stored cells do not follow from the stored runs (the payload was edited
            or made by other code: nothing is rewritten), ``runs`` are not the stored runs' keys,
            a column's metric is missing from a run, or ``delta`` names no row / column.
    """
    spec = spec_of(payload)
    if runs is None:
        runs = payload["runs"]
    elif [(r["row"], r["split"], r["seed"]) for r in runs] != [
            (r["row"], r["split"], r["seed"]) for r in payload["runs"]]:
        raise ValueError(f"table {payload.get('table')!r}: the runs given are not its stored "
                         "runs (row, split, seed)")
    if summarize(runs, spec, payload["seeds"]) != payload["rows"]:
        raise ValueError(f"table {payload.get('table')!r}: its cells do not follow from its "
                         "stored runs; not rewriting it")
    new = TableSpec(title=spec.title, rows=spec.rows,
                    columns=tuple(columns) if columns is not None else spec.columns,
                    splits=spec.splits,
                    reference=spec.reference if marks else None, alpha=spec.alpha,
                    note=spec.note, extra_metrics=spec.extra_metrics,
                    delta=delta if delta is not None else spec.delta)
    new.delta_column()  # a bad column raises here
    missing = [(c.header, r["row"], r["seed"]) for c in new.columns for r in runs
               if "error" not in r and c.metric not in r.get("test", {})]
    if missing and columns is not None:
        raise ValueError(f"table {payload.get('table')!r}: column {missing[0][0]!r} has no "
                         f"score in run ({missing[0][1]}, seed {missing[0][2]})")
    summary = summarize(runs, new, payload["seeds"])
    md = format_table(summary, new, note_of(markdown) if note is None else note)
    base = table_payload(new, summary, list(runs), payload["seeds"])
    out = {**payload, **base}
    if "markdown" in payload:  # a payload that stores its Markdown (VLS) gets the new one
        out["markdown"] = md
    if new.delta is None:
        out.pop("delta", None)
    return out, md


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as JSON (:func:`dumps`) at ``path``, atomically (a temp file beside it, then a
    rename: a crash leaves the old file or the new one, never half of one). Returns the path."""
    path = Path(path)
    _atomic_write(path, dumps(obj) + "\n")
    return path


def dumps(obj: Any, level: int = 0) -> str:
    """JSON as ``json.dumps(obj, indent=2)`` writes it, except that a list of scalars (a run's
    per-item scores) stays on one line: the same data, about half the bytes of a shipped table."""
    pad = "  " * level
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}  {json.dumps(str(k))}: {dumps(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list | tuple):
        if all(not isinstance(x, dict | list | tuple) for x in obj):
            return json.dumps(list(obj))
        items = [f"{pad}  {dumps(x, level + 1)}" for x in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def write_table(out_dir: str | Path, stem: str, payload: dict[str, Any], markdown: str
                ) -> tuple[Path, Path]:
    """Write ``stem.json`` (:func:`dumps`) and ``stem.md`` into ``out_dir`` (each replaced
    atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / f"{stem}.json", dumps(payload) + "\n")
    _atomic_write(out / f"{stem}.md", markdown)
    return out / f"{stem}.json", out / f"{stem}.md"


def compare_runs(records: Sequence[dict[str, Any]], shipped: Sequence[dict[str, Any]], metric: str,
                 tol: float) -> dict[str, Any]:
    """Set fresh run records beside stored runs with the same (row, split, seed).

    Runs are bit-exact on one machine but not across CPUs (DESIGN.md fact 7), so a rerun
    *agrees* with a stored run when ``|this - stored| <= tol`` in ``metric`` (each task states
    its measured tolerance).

    Returns:
        ``{"tol", "pairs": [{"row", "split", "seed", "this", "shipped", "delta"}], "missing":
        [(row, split, seed) without a stored run], "outside": [pairs with |delta| > tol],
        "verdict": str}``. The verdict names no volatile number when all agree, so it reads the
        same on every machine (what a notebook can show under nbval).
    """
    index = {(r["row"], r["split"], int(r["seed"])): r for r in shipped}
    pairs, missing = [], []
    for r in records:
        key = (r["row"], r["split"], int(r["seed"]))
        ref = index.get(key)
        if ref is None:
            missing.append(key)
            continue
        this, then = r["test"][metric], ref["test"][metric]
        pairs.append({"row": key[0], "split": key[1], "seed": key[2], "this": this,
                      "shipped": then, "delta": round(this - then, 2)})
    outside = [p for p in pairs if abs(p["delta"]) > tol]
    if not pairs:
        verdict = "no shipped run to compare with (other backbone, domain, seed or settings)"
    elif not outside:
        verdict = (f"all {len(pairs)} run(s) agree with the shipped runs of the same method, "
                   f"domain and seed within ±{tol:g} {metric}")
    else:
        verdict = (f"{len(outside)} of {len(pairs)} run(s) differ from the shipped runs by more "
                   f"than ±{tol:g} {metric}: "
                   + ", ".join(f"{p['row']} ({p['split']}, seed {p['seed']}): "
                               f"{p['this']:.2f} vs {p['shipped']:.2f}" for p in outside))
    if missing and pairs:
        verdict += f" ({len(missing)} run(s) have no shipped counterpart)"
    return {"tol": tol, "pairs": pairs, "missing": missing, "outside": outside,
            "verdict": verdict}
