"""VLS slices (issue 15): scores per value of an annotation field, and the tables' "Video"
column (ROUGE-1 on the test videos whose transcript leaves at least two steps to the video),
checked on hand-made samples and on every shipped table's stored per-video scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from readpvla import experiment as ex
from readpvla.data.how2 import How2Sample, load_split
from readpvla.tasks import vls
from readpvla.tasks.vls.evaluate import (
    VIDEO_METRIC,
    group_scores,
    unnamed_steps,
    video_reliant,
    with_video_slice,
)

RESULTS = Path(__file__).resolve().parents[1] / "data_samples" / "how2" / "results"


def _sample(vid: str, transcript: str, steps: list[str], task: str = "t") -> How2Sample:
    return How2Sample(vid, transcript, "s", np.zeros((2, 3), np.float32), task=task, steps=steps)


SAMPLES = [
    _sample("a", "first chop the garlic . then heat the butter", ["chop the garlic",
                                                               "heat the butter"], "rice"),
    _sample("b", "now this , like this", ["chop the garlic", "heat the butter"], "rice"),
    _sample("c", "cover the pot , like that", ["cover the pot", "pour the water",
                                                "season the rice"], "soup"),
]


def test_unnamed_steps_counts_the_steps_only_the_video_shows():
    assert [unnamed_steps(s) for s in SAMPLES] == [0, 2, 2]
    assert [video_reliant(s) for s in SAMPLES] == [False, True, True]
    with pytest.raises(ValueError, match="no latent steps"):
        unnamed_steps(_sample("d", "text", []))


def test_group_scores_average_per_value_and_over_all():
    per = {"rouge1": [10.0, 20.0, 60.0], "rougeL": [1.0, 2.0, 3.0]}
    by_task = group_scores(per, SAMPLES, "task")
    assert by_task["rice"] == {"rouge1": 15.0, "rougeL": 1.5, "n": 2}
    assert by_task["soup"] == {"rouge1": 60.0, "rougeL": 3.0, "n": 1}
    assert by_task["all"] == {"rouge1": 30.0, "rougeL": 2.0, "n": 3}
    by_unnamed = group_scores(per, SAMPLES, unnamed_steps)
    assert list(by_unnamed) == ["0", "2", "all"] and by_unnamed["2"]["rouge1"] == 40.0
    with pytest.raises(ValueError, match="2 entries for 3 samples"):
        group_scores({"rouge1": [1.0, 2.0]}, SAMPLES, "task")
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        group_scores(per, SAMPLES, "colour")
    with pytest.raises(ValueError, match="no samples"):
        group_scores({"rouge1": []}, [], "task")


def test_with_video_slice_reads_the_stored_per_video_scores_and_copies():
    record = {"row": "read", "seed": 0, "test": {"rouge1": 30.0},
              "per_item": {"rouge1": [10.0, 20.0, 60.0]}}
    out = with_video_slice(record, SAMPLES)
    assert out["test"][VIDEO_METRIC] == 40.0 and VIDEO_METRIC not in record["test"]
    assert with_video_slice(record, SAMPLES[:1] * 3)["test"] == {"rouge1": 30.0}  # no such video
    with pytest.raises(ValueError, match="2 per-video scores for 3 test videos"):
        with_video_slice({**record, "per_item": {"rouge1": [1.0, 2.0]}}, SAMPLES)


def test_the_table_gets_a_video_column_from_the_runs():
    spec = vls.table_spec("bart", ["read", "read-pvla"], [0], "note", video=True)
    assert [c.header for c in spec.columns] == ["R1", "R2", "RL", "Video"]
    assert spec.columns[-1].metric == VIDEO_METRIC
    assert [c.header for c in vls.table_spec("bart", ["read"], [0], "").columns] == [
        "R1", "R2", "RL"]


SHIPPED = sorted(p for p in RESULTS.glob("vls_*.json") if "Video" in json.loads(
    p.read_text())["markdown"]) if RESULTS.is_dir() else []


@pytest.mark.skipif(not SHIPPED, reason="no shipped VLS table with the Video column")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_video_score_is_the_mean_over_the_video_reliant_test_videos(path):
    payload = json.loads(path.read_text())
    settings = payload["settings"]
    split = "hard_test" if settings.get("target") == "hard" else "test"
    test = load_split(vls.DATA_ROOT, split)[: settings["n_test"]]
    mask = [video_reliant(s) for s in test]
    assert 0 < sum(mask) < len(mask)
    for r in payload["runs"]:
        per = r["per_item"]["rouge1"]
        want = sum(x for x, m in zip(per, mask) if m) / sum(mask)
        assert r["test"][VIDEO_METRIC] == pytest.approx(want, abs=1e-9), (r["row"], r["seed"])
    spec = ex.verify_table(payload, path.with_suffix(".md").read_text())
    assert spec.columns[-1].header == "Video"


def test_retable_with_video_adds_the_column_without_changing_a_cell(tmp_path):
    """On a small real run: the table made again with the "Video" column keeps every stored
    cell, its new cells are the slice of the stored per-video scores, and it is what
    run_transfer now writes itself."""
    cfg = vls.TransferConfig(n_train=16, n_test=12, n_val=0, steps=2, batch_size=8,
                             eval_every=0, num_beams=1, target="hard")
    rep = vls.run_transfer("bart", methods=("bias", "read-pvla"), seeds=(0,), config=cfg,
                           out_dir=tmp_path, log=None)
    assert "| Video |" in rep["markdown"] and vls.has_video_slice(rep["runs"])
    # the same table as an older version stored it: without the slice
    old_runs = [{**r, "test": {k: v for k, v in r["test"].items() if k != VIDEO_METRIC}}
                for r in rep["runs"]]
    spec = vls.table_spec("bart", ["bias", "read-pvla"], [0], ex.note_of(rep["markdown"]),
                          title=vls.transfer.TITLES["hard"])
    summary = ex.summarize(old_runs, spec, [0])
    md = ex.format_table(summary, spec)
    old = {**rep, **ex.table_payload(spec, summary, old_runs, [0]), "markdown": md}
    new, md2 = vls.retable_with_video(old, md)
    assert md2 == rep["markdown"] and new["rows"] == rep["rows"] and new["runs"] == rep["runs"]
    assert VIDEO_METRIC not in old["runs"][0]["test"]  # the argument is not modified
    bad = {**old, "runs": [{**r, "per_item": {"rouge1": r["per_item"]["rouge1"][:3]}}
                           for r in old["runs"]]}
    with pytest.raises(ValueError, match="3 per-video scores for 12 test videos"):
        vls.retable_with_video(bad, md)
