"""Paired bootstrap intervals between table rows (readpvla.experiment.intervals), the tables'
"Δ vs reference [lo, hi]" column, and "how many seeds do I need" -- on synthetic records whose
true difference is known."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from readpvla import experiment as ex

SPLITS = ("a", "b", "c")


def records(shift: float = 0.0, *, n_items: int = 40, seeds=(0, 1, 2, 3, 4), item_sd: float = 20.0,
            seed_sd: float = 1.0, noise: float = 5.0, rng_seed: int = 0, metric: str = "m",
            rows=("new", "ref"), offsets: dict | None = None) -> list[dict]:
    """Run records of two rows over the same items and seeds. ``new`` = ``ref`` + ``shift`` +
    per-item heterogeneity + per-seed effect + noise; every item has a difficulty shared by both
    rows (``item_sd``); ``offsets``: extra per-item vectors added to a row, by row."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for p in SPLITS:
        difficulty = rng.normal(0, item_sd, n_items)  # shared by both rows
        hetero = rng.normal(0, 2.0, n_items)  # the gain differs a little between items
        for s in seeds:
            base = 50 + difficulty + rng.normal(0, noise, n_items)
            scores = {rows[1]: base,
                      rows[0]: base + shift + hetero + rng.normal(0, seed_sd)
                      + rng.normal(0, noise, n_items)}
            for row, x in scores.items():
                x = x + (offsets or {}).get(row, 0.0)
                out.append({"row": row, "split": p, "seed": s,
                            "test": {metric: float(x.mean())}, "per_item": {metric: x.tolist()},
                            "params": "0.01 (1.00%)", "trainable": 1, "total": 100})
    return out


# -- the interval ---------------------------------------------------------------------------------
def test_interval_covers_a_known_shift_and_excludes_zero_only_when_there_is_one():
    big = ex.compare_rows(records(5.0), "new", "ref", "m")
    assert big.lo <= 5.0 <= big.hi and big.excludes_zero and big.lo > 0
    none = ex.compare_rows(records(0.0, rng_seed=3), "new", "ref", "m")
    assert none.lo <= 0.0 <= none.hi and not none.excludes_zero
    # the observed difference is the difference of the two rows' table numbers (Avg. column)
    recs = records(5.0)
    table = {row: np.mean([np.mean([r["test"]["m"] for r in recs if r["row"] == row
                                    and r["seed"] == s]) for s in range(5)])
             for row in ("new", "ref")}
    assert big.diff == pytest.approx(table["new"] - table["ref"])
    assert big.splits == SPLITS and big.seeds == (0, 1, 2, 3, 4) and big.n_items == (40,) * 3
    assert str(big) == f"{big.diff:+.2f} [{big.lo:+.2f}, {big.hi:+.2f}]"


def test_coverage_over_repeated_experiments():
    """Over 100 synthetic experiments with a true shift of 2, the 95% interval covers 2 at
    least ~90% of the time (the two-way bootstrap is, if anything, conservative)."""
    hits = 0
    for r in range(100):
        iv = ex.compare_rows(records(2.0, rng_seed=100 + r), "new", "ref", "m", n_boot=500,
                             seed=r)
        hits += iv.lo <= 2.0 <= iv.hi
    assert hits >= 90


def test_paired_a_shared_per_item_offset_does_not_widen_it():
    rng = np.random.default_rng(7)
    offset = rng.normal(0, 100.0, 40)  # huge item differences, the same in both rows
    plain = ex.compare_rows(records(1.0), "new", "ref", "m")
    shared = ex.compare_rows(records(1.0, offsets={"new": offset, "ref": offset}),
                             "new", "ref", "m")
    assert shared.lo == pytest.approx(plain.lo, abs=1e-9)
    assert shared.hi == pytest.approx(plain.hi, abs=1e-9)
    # the same offsets in one row only are real item-to-item noise of the difference: wider
    one = ex.compare_rows(records(1.0, offsets={"new": offset}), "new", "ref", "m")
    assert one.half_width > 5 * plain.half_width


def test_deterministic_under_its_seed():
    recs = records(1.0)
    a = ex.compare_rows(recs, "new", "ref", "m", seed=11)
    assert ex.compare_rows(recs, "new", "ref", "m", seed=11) == a
    other = ex.compare_rows(recs, "new", "ref", "m", seed=12)
    assert other.diff == a.diff and (other.lo, other.hi) != (a.lo, a.hi)


def test_one_seed_shows_item_noise_only_and_a_single_split_works():
    recs = records(3.0, seeds=(0,))
    iv = ex.compare_rows(recs, "new", "ref", "m", splits=["b"])
    assert iv.seeds == (0,) and iv.splits == ("b",) and iv.lo < iv.hi


def test_errors_for_mismatched_items_and_seeds():
    recs = records(1.0)
    short = [dict(r, per_item={"m": r["per_item"]["m"][:-1]})
             if (r["row"], r["split"], r["seed"]) == ("new", "b", 2) else r for r in recs]
    with pytest.raises(ValueError, match=r"split 'b', seed 2: the rows score different numbers "
                                         r"of items \(39 vs 40\)"):
        ex.compare_rows(short, "new", "ref", "m")
    both = [dict(r, per_item={"m": r["per_item"]["m"][:-1]})
            if (r["split"], r["seed"]) == ("b", 2) else r for r in recs]
    with pytest.raises(ValueError, match="seed 2 scores 39 items but seed 0 scores 40"):
        ex.compare_rows(both, "new", "ref", "m")
    fewer = [r for r in recs if not (r["row"] == "ref" and r["seed"] == 4)]
    with pytest.raises(ValueError, match=r"different seeds \(\[0, 1, 2, 3, 4\] vs \[0, 1, 2, 3\]"):
        ex.compare_rows(fewer, "new", "ref", "m")
    with pytest.raises(ValueError, match="no run for row 'ref', split 'a', seed 4"):  # first
        ex.compare_rows(fewer, "new", "ref", "m", seeds=[0, 1, 2, 3, 4])
    ids = [dict(r, item_ids=list(range(40)) if r["row"] == "ref" else list(range(1, 41)))
           for r in recs]
    with pytest.raises(ValueError, match="scores other items \\(item_ids\\)"):
        ex.compare_rows(ids, "new", "ref", "m")
    with pytest.raises(ex.NoItemScores, match=r"no per-item scores for 'x' \(per_item has \['m'\]"):
        ex.compare_rows(recs, "new", "ref", "x")
    with pytest.raises(ValueError, match="no run of row 'nope'"):
        ex.compare_rows(recs, "nope", "ref", "m")
    a = ex.item_scores(recs, "new", "m")
    b = ex.item_scores(recs, "ref", "m")
    with pytest.raises(ValueError, match="different \\(split, seed\\) runs"):
        ex.paired_bootstrap(a, {k: v for k, v in b.items() if k != ("a", 0)})
    with pytest.raises(ValueError, match="level must lie in"):
        ex.paired_bootstrap(a, b, level=95)
    with pytest.raises(ValueError, match="n_boot must be a positive int"):
        ex.paired_bootstrap(a, b, n_boot=0)
    nan = dict(a)
    nan[("a", 0)] = np.full(40, np.nan)
    with pytest.raises(ValueError, match="NaN or inf"):
        ex.paired_bootstrap(nan, b)


def test_retrieval_style_hit_records():
    """Retrieval / recognition records keep 100-or-0 hits per caption / video
    (``per_item["t2v_R1"]``); the interval works on them the same way."""
    rng = np.random.default_rng(5)
    recs = []
    for p in ("d1", "d2"):
        easy = rng.random(100)
        for s in (0, 1, 2):
            for row, gain in (("RAP", 0.25), ("CLIP4Clip", 0.0)):
                hits = 100.0 * (rng.random(100) < np.clip(easy * 0.6 + gain, 0, 1))
                recs.append({"row": row, "split": p, "seed": s,
                             "test": {"t2v_R1": float(hits.mean())},
                             "per_item": {"t2v_R1": hits.tolist()}})
    iv = ex.compare_rows(recs, "RAP", "CLIP4Clip", "t2v_R1")
    assert iv.excludes_zero and iv.lo <= 25.0 <= iv.hi


# -- in tables ------------------------------------------------------------------------------------
SPEC = ex.TableSpec(
    title="T", rows=(("New", "new"), ("Ref", "ref")),
    columns=(ex.Column("A", "a", "m"), ex.Column("Avg.", "avg", "m")), splits=SPLITS,
    note="n.", delta=ex.Delta("ref"))


def test_table_shows_delta_vs_reference_with_its_interval(tmp_path):
    recs = records(5.0)
    seeds = [0, 1, 2, 3, 4]
    summary = ex.summarize(recs, SPEC, seeds)
    d = summary["New"]["delta"]
    iv = ex.compare_rows(recs, "new", "ref", "m", SPLITS, seeds)
    assert d == {"column": "Avg.", "metric": "m", **iv.as_dict()}
    assert summary["Ref"]["delta"] is None
    md = ex.format_table(summary, SPEC)
    assert "| Method | #params (M) | A | Avg. | Δ vs Ref |" in md
    line = next(x for x in md.splitlines() if x.startswith("| New |"))
    assert line.endswith(f" | {d['diff']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] |")
    assert next(x for x in md.splitlines() if x.startswith("| Ref |")).endswith(" | — |")
    assert "95% paired bootstrap percentile interval (Efron & Tibshirani 1993)" in md
    assert "test items within each split and of the 5 seed(s)" in md
    # the payload keeps the option, and the rows follow from the runs again
    payload = ex.table_payload(SPEC, summary, recs, seeds, task="fake")
    ex.write_table(tmp_path, "t", payload, md)
    saved = json.loads((tmp_path / "t.json").read_text())
    assert ex.spec_of(saved) == SPEC
    assert ex.summarize(saved["runs"], ex.spec_of(saved), saved["seeds"]) == saved["rows"]
    # one column of one split
    spec_a = ex.TableSpec(**{**SPEC.__dict__, "delta": ex.Delta("ref", column="A", n_boot=500)})
    assert ex.summarize(recs, spec_a, seeds)["New"]["delta"]["splits"] == ["a"]


def test_table_without_per_item_scores_says_so():
    recs = [{k: v for k, v in r.items() if k != "per_item"} for r in records(5.0)]
    summary = ex.summarize(recs, SPEC, [0, 1, 2, 3, 4])
    assert summary["New"]["delta"] is None
    md = ex.format_table(summary, SPEC)
    assert next(x for x in md.splitlines() if x.startswith("| New |")).endswith(" | n/a |")
    assert "Δ vs Ref: n/a, the run records have no per-item scores for m" in md
    # without the option, nothing changes: no column, no key
    plain = ex.TableSpec(**{**SPEC.__dict__, "delta": None})
    out = ex.summarize(records(5.0), plain, [0, 1, 2, 3, 4])
    assert "delta" not in out["New"] and "Δ" not in ex.format_table(out, plain)
    assert "delta" not in ex.table_payload(plain, out, [], [0])
    with pytest.raises(ValueError, match="delta column 'Z' is not a column"):
        ex.summarize(records(5.0), ex.TableSpec(**{**SPEC.__dict__,
                                                   "delta": ex.Delta("ref", column="Z")}),
                     [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="delta reference 'zz' is not a row"):
        ex.summarize(records(5.0), ex.TableSpec(**{**SPEC.__dict__, "delta": ex.Delta("zz")}),
                     [0, 1, 2, 3, 4])


# -- how many seeds -------------------------------------------------------------------------------
def test_interval_vs_seeds_measures_and_projects_the_half_width():
    recs = records(1.0, seeds=tuple(range(6)), seed_sd=3.0, noise=2.0)
    buf = io.StringIO()
    curve = ex.interval_vs_seeds(recs, "new", "ref", "m", subsets=6, n_boot=400, file=buf)
    text = buf.getvalue()
    assert text.startswith("new - ref, m: 95% paired bootstrap half-width against seeds "
                           "(3 split(s), 120 test items, 400 resamples)")
    assert "variance parts: test items" in text and "with 1 seed it sees no seed noise" in text
    assert [r["n_seeds"] for r in curve.rows] == [1, 2, 3, 4, 5, 6]
    assert curve.rows[-1]["subsets"] == 1 and curve.rows[1]["subsets"] == 6
    full = ex.compare_rows(recs, "new", "ref", "m", n_boot=400, seed=1)
    assert curve.rows[-1]["half_width"] == pytest.approx(full.half_width)  # all seeds: the table's
    # one seed: the bootstrap sees only the items, far narrower than with all six
    assert curve.rows[0]["half_width"] < 0.5 * curve.rows[-1]["half_width"]
    # the projection shrinks with k; at k = S it is the bootstrap's up to its (S-1)/S variance
    proj = [r["projected"] for r in curve.rows]
    assert all(x > y for x, y in zip(proj, proj[1:]))
    assert proj[-1] * np.sqrt(5 / 6) == pytest.approx(curve.rows[-1]["half_width"], rel=0.15)
    assert curve.seed_part > 10 * curve.item_part  # the seeds dominate here
    k = curve.seeds_for(proj[-1] / 2)
    assert k is not None and k > 6 and curve.projected(k) <= proj[-1] / 2 < curve.projected(k - 1)
    floor = curve.projected(10**12)
    assert curve.seeds_for(floor * 0.99) is None  # the test items alone are wider
    # deterministic under its seed
    assert ex.interval_vs_seeds(recs, "new", "ref", "m", subsets=6, n_boot=400, file=None) == curve


def test_interval_vs_seeds_without_seed_noise_the_items_set_the_width():
    recs = records(1.0, seeds=(0, 1, 2, 3), seed_sd=0.0, noise=0.0)
    curve = ex.interval_vs_seeds(recs, "new", "ref", "m", n_boot=400, file=None)
    widths = [r["half_width"] for r in curve.rows]
    assert max(widths) - min(widths) < 0.2 * max(widths)  # only the items' noise is left
    assert curve.seed_part < 1e-20  # the items' gain is identical in every seed
    assert curve.seeds_for(0.5 * widths[0]) is None
    one = ex.interval_vs_seeds(records(1.0, seeds=(0,)), "new", "ref", "m", n_boot=100, file=None)
    assert one.seed_part is None and one.seeds_for(1.0) is None and one.rows[0]["projected"] is None
    with pytest.raises(ValueError, match="subsets must be a positive int"):
        ex.interval_vs_seeds(recs, "new", "ref", "m", subsets=0, file=None)


# -- harmonic means (base-to-novel HM) ------------------------------------------------------------
def hm_records(p_new=(0.6, 0.4), p_ref=(0.5, 0.4), *, n_items: int = 60, seeds=(0, 1, 2),
               rng_seed: int = 0) -> list[dict]:
    """Hit records (0 / 100 per video) of two rows on a base and a novel item set per split;
    a video's chance of a hit is the row's (base, novel) probability plus a difficulty shared by
    both rows."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for p in SPLITS:
        diff = {part: rng.normal(0, 0.15, n_items) for part in ("base", "novel")}
        for s in seeds:
            for row, probs in (("new", p_new), ("ref", p_ref)):
                per = {part: (100.0 * (rng.random(n_items) < np.clip(q + diff[part], 0, 1)))
                       .tolist() for part, q in zip(("base", "novel"), probs, strict=True)}
                b, n = np.mean(per["base"]), np.mean(per["novel"])
                out.append({"row": row, "split": p, "seed": s, "per_item": per,
                            "test": {"base": b, "novel": n,
                                     "HM": 2 * b * n / (b + n) if b + n else 0.0},
                            "params": "0.01 (1.00%)", "trainable": 1, "total": 100})
    return out


def test_hm_interval_diff_is_the_tables_hm_difference_and_the_interval_holds_it():
    recs = hm_records()
    iv = ex.compare_rows_hm(recs, "new", "ref", ("base", "novel"))
    table = {row: np.mean([np.mean([r["test"]["HM"] for r in recs
                                    if r["row"] == row and r["seed"] == s]) for s in (0, 1, 2)])
             for row in ("new", "ref")}
    assert iv.diff == pytest.approx(table["new"] - table["ref"])
    assert iv.lo < iv.diff < iv.hi and iv.n_items == (120,) * 3
    # HM is not the mean of per-item scores: the per-item bootstrap of "base" alone differs
    assert iv.diff != pytest.approx(ex.compare_rows(recs, "new", "ref", "base").diff)
    # identical rows: exactly 0, and both accuracies 0 gives HM 0, not NaN
    same = [dict(r, row="copy") for r in recs if r["row"] == "ref"]
    zero = ex.compare_rows_hm(recs + same, "copy", "ref", ("base", "novel"))
    assert (zero.diff, zero.lo, zero.hi) == (0.0, 0.0, 0.0)
    zeros = [dict(r, row="none", per_item={"base": [0.0] * 60, "novel": [0.0] * 60})
             for r in recs if r["row"] == "ref"]
    iv0 = ex.compare_rows_hm(recs + zeros, "none", "ref", ("base", "novel"))
    assert np.isfinite([iv0.diff, iv0.lo, iv0.hi]).all() and iv0.hi < 0
    from readpvla.experiment.intervals import harmonic_mean

    assert harmonic_mean(np.array([0.0, 50.0]), np.array([0.0, 25.0])).tolist() == \
        pytest.approx([0.0, 100 / 3])


def test_hm_interval_coverage_over_repeated_experiments():
    """True HM difference of (0.6, 0.4) vs (0.5, 0.4) is 48 - 44.44 = 3.56 points (up to the
    shared difficulty's clipping, small at these rates); the 95% interval covers the mean of
    the observed differences over 80 experiments at least ~88% of the time."""
    ivs = [ex.compare_rows_hm(hm_records(rng_seed=50 + r), "new", "ref", ("base", "novel"),
                              n_boot=400, seed=r) for r in range(80)]
    truth = float(np.mean([iv.diff for iv in ivs]))
    assert truth == pytest.approx(2 * 60 * 40 / 100 - 2 * 50 * 40 / 90, abs=1.0)
    assert sum(iv.lo <= truth <= iv.hi for iv in ivs) >= 70


def test_hm_errors_and_the_table_option(tmp_path):
    recs = hm_records(seeds=(0, 1))
    with pytest.raises(ValueError, match="parts must be two different"):
        ex.compare_rows_hm(recs, "new", "ref", ("base", "base"))
    with pytest.raises(ex.NoItemScores, match="no per-item scores for 'top1'"):
        ex.compare_rows_hm(recs, "new", "ref", ("base", "top1"))
    short = [dict(r, per_item={**r["per_item"], "novel": r["per_item"]["novel"][:-1]})
             if r["row"] == "new" else r for r in recs]
    with pytest.raises(ValueError, match="score different numbers of items"):
        ex.compare_rows_hm(short, "new", "ref", ("base", "novel"))
    with pytest.raises(ValueError, match="harmonic must be two different per-item metric names"):
        ex.Delta("ref", "HM", harmonic=("base",))
    spec = ex.TableSpec("HM", (("New", "new"), ("Ref", "ref")),
                        (ex.Column("Base", "avg", "base"), ex.Column("HM", "avg", "HM")),
                        splits=SPLITS, delta=ex.Delta("ref", "HM", harmonic=["base", "novel"]))
    assert spec.delta.harmonic == ("base", "novel")
    summary = ex.summarize(recs, spec, [0, 1])
    d = summary["New"]["delta"]
    assert d == {"column": "HM", "metric": "HM",
                 **ex.compare_rows_hm(recs, "new", "ref", ("base", "novel"), SPLITS,
                                      [0, 1]).as_dict()}
    md = ex.format_table(summary, spec)
    assert "harmonic mean of the base and the novel items' means" in md
    payload = ex.table_payload(spec, summary, recs, [0, 1], task="fake")
    ex.write_table(tmp_path, "t", payload, md)
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["delta"]["harmonic"] == ["base", "novel"]
    assert ex.spec_of(saved) == spec
    ex.verify_table(saved, md)
    # a table without the option stores no "harmonic" key (older tables read the same)
    plain = ex.TableSpec(**{**spec.__dict__, "delta": ex.Delta("ref", "Base")})
    p2 = ex.table_payload(plain, ex.summarize(recs, plain, [0, 1]), recs, [0, 1], task="fake")
    assert "harmonic" not in p2["delta"]
