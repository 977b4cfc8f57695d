"""The shared experiment layer: summaries, significance marks, Markdown, records, failures.

The grid runner is exercised end to end on the real TLG / VLS tasks in test_tlg_task.py and
test_vls.py (and on Ray in test_ray.py); here a fake task isolates the layer's own logic.
"""

from __future__ import annotations

import json
import statistics
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import wilcoxon

from readpvla import experiment as ex


@dataclass(frozen=True)
class FakeSettings:
    scale: float = 1.0


def fake_run(job: ex.Job) -> dict:
    """A deterministic 'run': the score depends on row, split and seed; row 'boom' raises."""
    if job.row == "boom":
        raise RuntimeError(f"boom on {job.split}")
    rng = np.random.default_rng([hash(job.row) % 1000, len(job.split), job.seed])
    items = (rng.random(20) * 10 + (5 if job.row == "ref" else 0)) * job.settings.scale
    return {"test": {"m": float(items.mean()), "other": float(job.seed)},
            "per_item": {"m": items.tolist()}, "params": "0.01 (1.00%)", "trainable": 10,
            "total": 1000}


@pytest.fixture
def fake_task(monkeypatch):
    mod = types.ModuleType("readpvla.tasks.fake")
    mod.run = fake_run
    monkeypatch.setitem(sys.modules, "readpvla.tasks.fake", mod)
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    return mod


def grid(rows=("ref", "base"), splits=("a", "b"), seeds=(0, 1, 2), settings=FakeSettings()):
    return [ex.Job("fake", r, s, seed, "bb", "ckpt", "data", settings)
            for s in splits for seed in seeds for r in rows]


SPEC = ex.TableSpec(
    title="Fake table", rows=(("Ref", "ref"), ("Base", "base")),
    columns=(ex.Column("A", "a", "m"), ex.Column("B", "b", "m"), ex.Column("Avg.", "avg", "m")),
    splits=("a", "b"), reference="ref", note="a note.", extra_metrics=("other",))


def test_summaries_follow_from_the_records(fake_task):
    records = ex.run_grid(grid(), progress=False)
    summary = ex.summarize(records, SPEC, [0, 1, 2])
    base = [r for r in records if r["row"] == "base"]
    a = [r["test"]["m"] for r in base if r["split"] == "a"]
    assert summary["Base"]["cells"]["A"]["mean"] == round(statistics.fmean(a), 2)
    assert summary["Base"]["cells"]["A"]["std"] == round(statistics.stdev(a), 2)
    per_seed = [statistics.fmean(r["test"]["m"] for r in base if r["seed"] == s) for s in (0, 1, 2)]
    assert summary["Base"]["cells"]["Avg."] == ex.mean_std(per_seed)
    assert summary["Base"]["avg"]["other"]["mean"] == 1.0  # extra metrics are summarised too
    assert summary["Base"]["params"] == "0.01 (1.00%)" and summary["Base"]["percent"] == 1.0


def test_significance_is_a_one_sided_wilcoxon_on_seed_averaged_items(fake_task):
    records = ex.run_grid(grid(), progress=False)
    marks = ex.significance(records, SPEC, [0, 1, 2])
    assert set(marks) == {"base"} and set(marks["base"]) == {"A", "B", "Avg."}
    by = {(r["row"], r["split"], r["seed"]): np.array(r["per_item"]["m"]) for r in records}
    ref = np.mean([by[("ref", "a", s)] for s in (0, 1, 2)], axis=0)
    base = np.mean([by[("base", "a", s)] for s in (0, 1, 2)], axis=0)
    p = wilcoxon(ref - base, alternative="greater", zero_method="zsplit").pvalue
    assert marks["base"]["A"] == (p < 0.05) and marks["base"]["A"]  # ref is +5 on every item
    flipped = ex.TableSpec(**{**SPEC.__dict__, "reference": "base",
                              "rows": (("Base", "base"), ("Ref", "ref"))})
    assert not any(ex.significance(records, flipped, [0, 1, 2])["ref"].values())


def test_no_per_item_scores_no_marks(fake_task):
    records = [{k: v for k, v in r.items() if k != "per_item"}
               for r in ex.run_grid(grid(), progress=False)]
    assert ex.significance(records, SPEC, [0, 1, 2]) == {"base": {}}
    md = ex.format_table(ex.summarize(records, SPEC, [0, 1, 2]), SPEC)
    assert "‡" not in md


def test_markdown_table_and_payload_round_trip(fake_task, tmp_path):
    records = ex.run_grid(grid(), progress=False)
    summary = ex.summarize(records, SPEC, [0, 1, 2])
    md = ex.format_table(summary, SPEC)
    assert md.startswith("### Fake table\n\n| Method | #params (M) | A | B | Avg. |\n")
    base = summary["Base"]["cells"]
    assert f"| Base | 0.01 (1.00%) | {base['A']['mean']:.2f} ± {base['A']['std']:.2f} ‡ |" in md
    assert "‡: Ref's gain over the row is significant at the 0.05 level (one-sided Wilcoxon" in md
    payload = ex.table_payload(SPEC, summary, records, [0, 1, 2], task="fake")
    ex.write_table(tmp_path, "t", payload, md)
    saved = json.loads((tmp_path / "t.json").read_text())
    assert ex.spec_of(saved) == SPEC
    assert ex.summarize(saved["runs"], ex.spec_of(saved), saved["seeds"]) == saved["rows"]
    one = ex.summarize([r for r in records if r["seed"] == 0], SPEC, [0])
    assert " ± " not in ex.format_table(one, SPEC)  # one seed: the mean alone


def test_a_failed_run_is_reported_and_the_others_land(fake_task, tmp_path):
    path = tmp_path / "runs.jsonl"
    jobs = grid(rows=("ref", "boom"), splits=("a",), seeds=(0, 1))
    with pytest.raises(ex.GridError, match="2 of 4 runs failed") as err:
        ex.run_grid(jobs, records=path, progress=False)
    assert [r["row"] for r in err.value.failed] == ["boom", "boom"]
    assert "RuntimeError: boom on a" in str(err.value) and "Traceback" in err.value.failed[0][
        "traceback"]
    stored = ex.RecordFile(path).read()
    assert len(stored) == 4 and sum("error" in rec for _, rec in stored) == 2
    # resume reruns the failed runs only (a failure is never taken as finished)
    calls = []
    fake_task.run = lambda job: (calls.append(job.key), fake_run(job))[1]
    with pytest.raises(ex.GridError):
        ex.run_grid(jobs, records=path, resume=True, progress=False)
    assert sorted(calls) == [("boom", "a", 0), ("boom", "a", 1)]


def test_grid_errors_before_any_run(fake_task, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        ex.run_grid(grid() + grid()[:1], progress=False)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        ex.run_grid([ex.Job("nope", "r", "s", 0, "b", "c", "d", FakeSettings())], progress=False)
    with pytest.raises(ValueError, match="executor must be 'local' or 'ray'"):
        ex.run_grid(grid(), "slurm", progress=False)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        ex.run_grid(grid(), workers=0, progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write to"):
        ex.run_grid(grid(), records=blocker / "sub" / "runs.jsonl", progress=False)


def test_resume_refuses_records_made_with_other_settings(fake_task, tmp_path):
    path = tmp_path / "runs.jsonl"
    ex.run_grid(grid(seeds=(0,)), records=path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        ex.run_grid(grid(seeds=(0,), settings=FakeSettings(2.0)), records=path, resume=True,
                    progress=False)
    again = ex.run_grid(grid(seeds=(0,)), records=path, resume=True, progress=False)
    assert len(again) == 4 and len(ex.RecordFile(path).read()) == 4


def test_a_run_whose_process_was_lost_is_a_failed_record(fake_task, tmp_path):
    """An executor reports a run it lost for good (a killed worker out of retries, a crashed
    process) as an exception: the grid records that run as failed, the others land."""

    class Lossy:
        def map_unordered(self, fn, jobs):
            for i, job in enumerate(jobs):
                yield i, (RuntimeError("node died") if i == 1 else fn(job))

    path = tmp_path / "runs.jsonl"
    with pytest.raises(ex.GridError, match="run lost: RuntimeError: node died") as err:
        ex.run_grid(grid(seeds=(0,)), Lossy(), records=path, progress=False)
    assert len(err.value.failed) == 1 and len(ex.RecordFile(path).read()) == 4


# -- retable: a stored table again from its runs, with an interval column -----------------------
def _stored(fake_task, tmp_path):
    records = ex.run_grid(grid(), progress=False)
    summary = ex.summarize(records, SPEC, [0, 1, 2])
    md = ex.format_table(summary, SPEC, "a note. Wall time: 3 s.")
    payload = ex.table_payload(SPEC, summary, records, [0, 1, 2], task="fake", extra_field=7)
    ex.write_table(tmp_path, "fake", payload, md)
    return payload, md


def test_note_of_strips_only_the_generated_sentences(fake_task, tmp_path):
    payload, md = _stored(fake_task, tmp_path)
    assert "‡:" in md  # ref beats base here
    assert ex.note_of(md) == "a note. Wall time: 3 s."
    assert ex.note_of("### t\n\n| a |\n|---|\n") == ""


def test_retable_replaces_marks_with_intervals_and_keeps_everything_else(fake_task, tmp_path):
    payload, md = _stored(fake_task, tmp_path)
    new, md2 = ex.retable(payload, md, delta=ex.Delta("ref", "Avg."), marks=False)
    assert new["extra_field"] == 7 and new["task"] == "fake" and new["runs"] == payload["runs"]
    assert new["reference"] is None and "‡" not in md2 and "| Δ vs Ref |" in md2
    iv = new["rows"]["Base"]["delta"]
    want = ex.compare_rows(payload["runs"], "base", "ref", "m", ["a", "b"], [0, 1, 2])
    assert iv == {"column": "Avg.", "metric": "m", **want.as_dict()}
    for header in ("A", "B", "Avg."):  # cells unchanged
        assert new["rows"]["Base"]["cells"][header] == payload["rows"]["Base"]["cells"][header]
    # made again from what it wrote: the same table (idempotent), and it follows from its runs
    again, md3 = ex.retable(new, md2)
    assert md3 == md2 and again["rows"] == new["rows"]
    assert md2 == ex.format_table(ex.summarize(new["runs"], ex.spec_of(new), [0, 1, 2]),
                                  ex.spec_of(new), ex.note_of(md2))


def test_retable_refuses_an_edited_table_and_a_bad_reference(fake_task, tmp_path):
    payload, md = _stored(fake_task, tmp_path)
    edited = json.loads(json.dumps(payload))
    edited["rows"]["Base"]["cells"]["A"]["mean"] += 1.0
    with pytest.raises(ValueError, match="do not follow from its stored runs"):
        ex.retable(edited, md, delta=ex.Delta("ref"))
    with pytest.raises(ValueError, match="delta column 'Nope' is not a column"):
        ex.retable(payload, md, delta=ex.Delta("ref", "Nope"))


def test_retable_adds_a_column_from_scores_derived_from_the_stored_runs(fake_task, tmp_path):
    payload, md = _stored(fake_task, tmp_path)
    derived = [{**r, "test": {**r["test"], "half": r["test"]["m"] / 2}} for r in payload["runs"]]
    cols = (*ex.spec_of(payload).columns, ex.Column("Half", "a", "half"))
    new, md2 = ex.retable(payload, md, columns=cols, runs=derived)
    assert "| Half |" in md2 and new["runs"] == derived
    for row in ("Base", "Ref"):
        assert new["rows"][row]["cells"]["A"] == payload["rows"][row]["cells"]["A"]
        assert new["rows"][row]["cells"]["Half"]["mean"] == pytest.approx(
            new["rows"][row]["cells"]["A"]["mean"] / 2, abs=0.006)
    ex.verify_table(new, md2)
    with pytest.raises(ValueError, match="column 'Half' has no score in run"):
        ex.retable(payload, md, columns=cols)
    with pytest.raises(ValueError, match="not its stored runs"):
        ex.retable(payload, md, columns=cols, runs=derived[1:])
    changed = [{**r, "test": {**r["test"], "m": r["test"]["m"] + 1}} for r in payload["runs"]]
    with pytest.raises(ValueError, match="do not follow from its stored runs"):
        ex.retable(payload, md, runs=changed)


def test_retable_command_rewrites_the_files_atomically(fake_task, tmp_path, capsys):
    from readpvla import cli

    _stored(fake_task, tmp_path)
    before = (tmp_path / "fake.json").read_text()
    with pytest.raises(SystemExit):
        cli.main(["retable", str(tmp_path / "fake.json"), "--delta", "Nope"])
    assert "is not a row of the table" in capsys.readouterr().err
    assert (tmp_path / "fake.json").read_text() == before  # a failed call changes nothing
    assert cli.main(["retable", str(tmp_path / "fake.json"), "--delta", "ref",
                     "--no-marks"]) == 0
    stored = json.loads((tmp_path / "fake.json").read_text())
    assert stored["delta"]["reference"] == "ref" and "| Δ vs Ref |" in \
        (tmp_path / "fake.md").read_text()
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    (tmp_path / "bad.md").write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit):
        cli.main(["retable", str(tmp_path / "bad.json")])
    assert "not JSON" in capsys.readouterr().err
    # --harmonic: needs --delta and two different metrics; a failed call changes nothing
    before = (tmp_path / "fake.json").read_text()
    for args, msg in ((["--harmonic", "m", "n"], "--harmonic needs --delta ROW"),
                      (["--delta", "ref", "--harmonic", "m", "m"], "two different per-item")):
        with pytest.raises(SystemExit):
            cli.main(["retable", str(tmp_path / "fake.json"), *args])
        assert msg in capsys.readouterr().err, args
        assert (tmp_path / "fake.json").read_text() == before
    # a metric without per-item scores: the rows show n/a, never a number
    assert cli.main(["retable", str(tmp_path / "fake.json"), "--delta", "ref", "--column",
                     "Avg.", "--harmonic", "m", "nope"]) == 0
    stored = json.loads((tmp_path / "fake.json").read_text())
    assert stored["delta"]["harmonic"] == ["m", "nope"]
    assert stored["rows"]["Base"]["delta"] is None and "| n/a |" in (tmp_path / "fake.md").read_text()


def test_verify_table_names_what_does_not_follow(fake_task, tmp_path):
    payload, md = _stored(fake_task, tmp_path)
    assert ex.verify_table(payload, md).title == "Fake table"
    edited = json.loads(json.dumps(payload))
    edited["rows"]["Base"]["cells"]["A"]["mean"] += 1.0
    with pytest.raises(ValueError, match="row 'Base' does not follow"):
        ex.verify_table(edited)
    short = {**payload, "runs": payload["runs"][1:]}
    with pytest.raises(ValueError, match="no run for row .ref., split .a., seed 0"):
        ex.verify_table(short)
    with pytest.raises(ValueError, match="the Markdown is not what"):
        ex.verify_table(payload, md.replace("a note.", "another note.", 1) + "x")
