"""The shipped equal-effort VLS results (data_samples/how2/results/{tuning,pareto}_vls_*.json,
<stem>_tuned.*): the choice per row follows from the stored validation scores by the protocol's
rule, with the same number of runs for every row; the tuned table follows from its runs, which
trained at the chosen size and rate; every Pareto point follows from the stored runs, and the
chosen settings' points are the table's averages. No tuned row ends below the untuned backbone
unless it also did on validation (selection includes the start)."""

from __future__ import annotations

import json

import pytest
from tuned_checks import check_choice, check_tuned_table

from readpvla.experiment import tuning
from readpvla.tasks import vls
from readpvla.tasks.vls.tuning import TEST_METRIC

RESULTS = vls.DATA_ROOT / "results"
SHIPPED = sorted(RESULTS.glob("tuning_vls_*.json"))


def _stem(path):
    return path.stem[len("tuning_"):]


@pytest.mark.skipif(not SHIPPED, reason="no shipped VLS tuning")
@pytest.mark.parametrize("path", SHIPPED, ids=_stem)
def test_the_choice_follows_from_the_stored_validation_scores(path):
    sel = json.loads(path.read_text())
    check_choice(sel)
    assert sorted(sel["chosen"]) == sorted(vls.LABELS[m] for m in vls.METHODS)


@pytest.mark.skipif(not SHIPPED, reason="no shipped VLS tuning")
@pytest.mark.parametrize("path", SHIPPED, ids=_stem)
def test_the_tuned_table_and_pareto_points_follow_from_their_runs(path):
    stem = _stem(path)
    sel = json.loads(path.read_text())
    table_path = RESULTS / f"{stem}_tuned.json"
    payload = json.loads(table_path.read_text())
    variant_of = check_tuned_table(sel, payload, table_path.with_suffix(".md").read_text())
    assert all(r["split"] == "test" for r in payload["runs"])
    pareto = json.loads((RESULTS / f"pareto_{stem}.json").read_text())
    assert pareto["seeds"] == payload["seeds"]
    method_of = {vls.LABELS[m]: m for m in vls.METHODS}
    variants = {vls.sized_row(method_of[row], size, payload["settings"]["bottleneck"]):
                (row, size, factor)
                for row, size, factor in tuning.sized_points(sel["best_per_size"])}
    runs = pareto["runs"]
    assert len(runs) == len(variants) * len(pareto["seeds"])
    assert tuning.points(variants, runs, pareto["seeds"], lambda r: r["score"],
                         variant_of) == pareto["points"]
    score = {(r["row"], r["seed"]): r["score"] for r in runs}
    for r in payload["runs"]:
        assert score[(r["row"], r["seed"])] == r["test"][TEST_METRIC]
    for variant in variant_of.values():
        assert next(p for p in pareto["points"] if p["variant"] == variant)["chosen"]
    assert any(p["frontier"] for p in pareto["points"])


@pytest.mark.skipif(not SHIPPED, reason="no shipped VLS tuning")
@pytest.mark.parametrize("path", SHIPPED, ids=_stem)
def test_no_tuned_run_ends_below_the_start_unless_validation_says_so(path):
    payload = json.loads((RESULTS / f"{_stem(path)}_tuned.json").read_text())
    # Full fine-tuning starts at the backbone itself (a prompt starts from its random tokens)
    backbone_val = {r["start_val_rouge"] for r in payload["runs"] if r["method"] == "full"}
    assert len(backbone_val) == 1
    for r in payload["runs"]:
        # selection by validation ROUGE-L keeps the untuned start when nothing beats it
        assert r["best_val_rouge"] >= r["start_val_rouge"] - 1e-9, r["row"]
        if r["best_step"] == 0 and r["start_val_rouge"] == pytest.approx(*backbone_val):
            assert r["test"]["rougeL"] == pytest.approx(payload["zero_shot"]["rougeL"], abs=1e-6)
