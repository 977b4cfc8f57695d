"""The shipped equal-effort TLG results (data_samples/tlg/results/{tuning,pareto}_tlg_*.json,
table1_tuned_*): the choice per row follows from the stored validation scores by the protocol's
rule, the tuned Table 1 follows from its runs, which trained at the chosen size and rate, and
the Pareto points of the chosen settings are the table's averages."""

from __future__ import annotations

import json

import pytest
from tuned_checks import check_choice, check_tuned_table

from readpvla.experiment import tuning
from readpvla.tasks import tlg

RESULTS = tlg.default_data_dir() / "results"
SHIPPED = sorted(RESULTS.glob("tuning_tlg_*.json"))


def _backbone(path):
    return path.stem[len("tuning_tlg_"):]


@pytest.mark.skipif(not SHIPPED, reason="no shipped TLG tuning")
@pytest.mark.parametrize("path", SHIPPED, ids=_backbone)
def test_the_choice_follows_from_the_stored_validation_scores(path):
    check_choice(json.loads(path.read_text()))


@pytest.mark.skipif(not SHIPPED, reason="no shipped TLG tuning")
@pytest.mark.parametrize("path", SHIPPED, ids=_backbone)
def test_the_tuned_table_and_pareto_points_follow_from_their_runs(path):
    backbone = _backbone(path)
    sel = json.loads(path.read_text())
    table_path = RESULTS / f"table1_tuned_{backbone}.json"
    payload = json.loads(table_path.read_text())
    variant_of = check_tuned_table(sel, payload, table_path.with_suffix(".md").read_text())
    for r in payload["runs"]:  # on test
        assert r["split"] in sel["domains"] and "test" in r
    # every point follows from the stored runs, and the table's runs are among them
    pareto = json.loads((RESULTS / f"pareto_tlg_{backbone}.json").read_text())
    assert pareto["seeds"] == payload["seeds"]
    variants = {tlg.sized_label(row, size): (row, size, factor)
                for row, size, factor in tuning.sized_points(sel["best_per_size"])}
    runs = pareto["runs"]
    assert len(runs) == len(variants) * len(sel["domains"]) * len(pareto["seeds"])
    assert tuning.points(variants, runs, pareto["seeds"], lambda r: r["score"],
                         variant_of) == pareto["points"]
    score = {(r["row"], r["split"], r["seed"]): r["score"] for r in runs}
    for r in payload["runs"]:
        assert score[(r["row"], r["split"], r["seed"])] == r["test"][tlg.TABLE_METRIC]
    for row, variant in variant_of.items():
        p = next(p for p in pareto["points"] if p["variant"] == variant)
        assert p["chosen"]
        assert p["mean"] == pytest.approx(payload["rows"][row]["cells"]["Avg."]["mean"], abs=0.011)
    assert any(p["frontier"] for p in pareto["points"])
