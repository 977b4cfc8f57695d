"""The equal-effort tuning protocol (readpvla.experiment.tuning) and its TLG driver on the toy
benchmark: the same number of runs for every row, the choice on validation only, the Pareto
points and Table 1 at the chosen settings."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from tlg_toy import TINY_SETTINGS, make_toy

from readpvla import peft
from readpvla.experiment import tuning
from readpvla.tasks import tlg


# -- the protocol -------------------------------------------------------------------------------
def test_every_row_gets_the_same_number_of_runs_over_the_same_rate_range():
    rows = {"Full": "full", "LoRA": "lora", "READ": "read", "Prompt": "prompt", "Zero": None}
    cands = tuning.candidates(rows)
    per_row = {r: [c for c in cands if c.row == r] for r in rows}
    assert per_row["Zero"] == []  # nothing to tune
    n = len(tuning.FACTORS) * 4
    assert {r: len(c) for r, c in per_row.items() if r != "Zero"} == dict.fromkeys(
        ("Full", "LoRA", "READ", "Prompt"), n)
    for cs in per_row.values():
        if cs:
            fs = [c.factor for c in cs]
            assert min(fs) == pytest.approx(min(tuning.FACTORS))
            assert max(fs) == pytest.approx(max(tuning.FACTORS))
    assert {c.size for c in per_row["Full"]} == {None}
    assert sorted({c.size for c in per_row["LoRA"]}) == list(tuning.SIZES["lora"])
    # sizeless rows: a finer grid, evenly spaced in log
    fs = np.log([c.factor for c in per_row["Full"]])
    assert np.allclose(np.diff(fs), np.diff(fs)[0])
    # every method's default size is in its grid (so the shipped rows are candidates)
    for method, knob in tuning.SIZE_KNOBS.items():
        assert getattr(peft.METHODS[method](), knob) in tuning.SIZES[method]


def test_size_overrides_make_configs_of_that_size():
    assert tuning.size_overrides("read", 8) == (("bottleneck", 8),)
    assert tuning.size_overrides("lora", 2) == (("r", 2), ("alpha", 4.0))  # alpha = 2 r
    assert tuning.size_overrides("full", None) == ()
    cfg = peft.METHODS["prompt"](**dict(tuning.size_overrides("prompt", 5)))
    assert cfg.n_tokens == 5
    with pytest.raises(ValueError, match="has no size knob"):
        tuning.size_overrides("full", 4)
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        tuning.size_overrides("read", 0)
    with pytest.raises(ValueError, match="factors must be distinct"):
        tuning.candidates({"READ": "read"}, factors=(1.0, 1.0))
    with pytest.raises(ValueError, match="needs distinct sizes"):
        tuning.candidates({"READ": "read"}, sizes={"read": ()})


def test_choose_takes_the_best_and_breaks_ties_to_smaller_size_then_rate():
    C = tuning.Candidate
    scores = {C("A", "read", 8, 1.0): 30.0, C("A", "read", 4, 3.0): 30.0,
              C("A", "read", 4, 1.0): 30.0, C("A", "read", 2, 1.0): 10.0,
              C("B", "full", None, 3.0): 5.0, C("B", "full", None, 1.0): 7.0}
    best = tuning.choose(scores)
    assert best["A"] == C("A", "read", 4, 1.0) and best["B"] == C("B", "full", None, 1.0)
    with pytest.raises(ValueError, match="finite numbers"):
        tuning.choose({C("A", "read", 4, 1.0): math.nan})
    with pytest.raises(ValueError, match="no candidate scores"):
        tuning.choose({})


def test_pareto_front():
    pts = [(10, 5.0), (20, 4.0), (20, 9.0), (5, 1.0), (40, 9.0), (50, 12.0), (5, 1.0)]
    assert tuning.pareto_front(pts) == [3, 0, 2, 5]
    # brute force: on the front iff no other point dominates it (<= params and >= score, one of
    # them strictly) and no earlier point is the same
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = [(float(rng.integers(1, 6)), float(rng.integers(0, 6))) for _ in range(12)]
        front = set(tuning.pareto_front(p))
        for i, (x, y) in enumerate(p):
            dominated = any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for x2, y2 in p)
            duplicate = any(j < i and p[j] == p[i] for j in range(len(p)))
            assert (i in front) == (not dominated and not duplicate), (p, i)
    with pytest.raises(ValueError, match="finite"):
        tuning.pareto_front([(1, math.inf)])


# -- TLG ------------------------------------------------------------------------------------------
def test_tlg_sized_rows():
    assert tlg.sized_label("READ", 4) == "READ" and tlg.sized_label("READ", None) == "READ"
    assert tlg.sized_label("READ-PVLA", 8) == "READ-PVLA (bottleneck=8)"
    v = tlg.ROWS["READ-PVLA (bottleneck=8)"]
    assert (v.method, v.align, v.config().bottleneck) == ("read", "pvla", 8)
    assert tlg.ROWS["LoRA (r=2)"].config().alpha == 4.0
    with pytest.raises(ValueError, match="has no size knob"):
        tlg.sized_label("Full", 2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp("tlg"))


def _points_follow_from_stored_runs(path, sel):
    """A Pareto file's points are what tuning.points makes of the runs it stores."""
    stored = json.loads(path.read_text())
    variants = {p["variant"]: (p["row"], p["size"], p["factor"]) for p in stored["points"]}
    chosen = {row: c["variant"] for row, c in sel["chosen"].items()}
    assert {r["row"] for r in stored["runs"]} == set(variants)
    assert stored["run_seconds"] == pytest.approx(sum(r["seconds"] for r in stored["runs"]),
                                                  abs=0.1 * len(stored["runs"]))
    assert tuning.points(variants, stored["runs"], stored["seeds"], lambda r: r["score"],
                         chosen) == stored["points"]


def test_tlg_tune_then_pareto_on_the_toy(toy, tmp_path):
    kw = dict(data_dir=toy, checkpoint=toy / "ckpt" / "crossmodal", progress=False)
    sizes = {"read": (2, 4)}
    sel = tlg.tune("crossmodal", ["Proj", "READ"], ["dog"], tmp_path, settings=TINY_SETTINGS,
                   factors=(1.0, 3.0), sizes=sizes, **kw)
    saved = json.loads((tmp_path / "tuning_tlg_crossmodal.json").read_text())
    assert saved["chosen"] == json.loads(json.dumps(sel["chosen"]))
    assert saved["budget"] == {"Proj": 4, "READ": 4}  # same number of runs for both rows
    cands = saved["candidates"]
    runs = [json.loads(x)["record"] for x in (tmp_path / "runs_tuning_tlg_crossmodal.jsonl")
            .read_text().splitlines()]
    # each candidate's score is its run's best validation score, never a test score
    for c in cands:
        r = next(r for r in runs if r["row"] == c["variant"]
                 and r["split"] == f"dog lr×{c['factor']:.4g}")
        assert c["val"] == pytest.approx(r["val_best"], abs=1e-4)
        assert r["lr"] == pytest.approx(c["lr"])  # the factor reached the optimiser
    best = max(cands, key=lambda c: (c["val"], -(c["size"] or 0), -c["factor"]))
    read = [c for c in cands if c["row"] == "READ"]
    top = max(read, key=lambda c: c["val"])
    assert sel["chosen"]["READ"]["val"] == pytest.approx(top["val"])
    assert best["val"] >= sel["chosen"]["READ"]["val"] or best["row"] == "Proj"
    out = tlg.pareto("crossmodal", tmp_path / "tuning_tlg_crossmodal.json", seeds=(0, 1),
                     out_dir=tmp_path, **kw)
    pts = out["points"]
    assert sorted((p["row"], p["size"]) for p in pts) == [("Proj", None), ("READ", 2), ("READ", 4)]
    assert [p["trainable"] for p in pts if p["row"] == "READ"] == sorted(
        p["trainable"] for p in pts if p["row"] == "READ")
    assert any(p["frontier"] for p in pts)
    table = json.loads((tmp_path / "table1_tuned_crossmodal.json").read_text())
    # the table's rows are the chosen variants, their cells the Pareto runs of those variants
    keys = [r["row"] for r in table["rows"].values()]
    assert keys == [sel["chosen"]["Proj"]["variant"], sel["chosen"]["READ"]["variant"]]
    assert list(table["rows"]) == ["Proj", "READ"]
    point = next(p for p in pts if p["chosen"] and p["row"] == "READ")
    assert table["rows"]["READ"]["cells"]["Avg."]["mean"] == pytest.approx(point["mean"], abs=0.01)
    _points_follow_from_stored_runs(tmp_path / "pareto_tlg_crossmodal.json", sel)
    with pytest.raises(ValueError, match="covers Table 1's rows"):
        tlg.tune("crossmodal", ["READ-VLA"], ["dog"], tmp_path, **kw)
    with pytest.raises(ValueError, match="is for backbone 'crossmodal'"):
        tlg.pareto("momentdetr", sel, out_dir=tmp_path, **kw)


def test_pareto_figure():
    from readpvla.viz import pareto_figure

    pts = [{"row": "READ", "size": 2, "trainable": 100, "mean": 20.0, "std": 1.0},
           {"row": "READ", "size": 8, "trainable": 400, "mean": 25.0, "std": 2.0, "chosen": True},
           {"row": "Full", "size": None, "trainable": 10_000, "mean": 24.0}]
    fig = pareto_figure(pts)
    names = [t.name for t in fig.data]
    assert names[0] == "READ" and "Full" in names and names[-1] == "Pareto frontier"
    assert list(fig.data[-1].x) == [100, 400]  # Full (more parameters, lower score) is dominated
    assert fig.layout.xaxis.type == "log"
    ring = [t for t in fig.data if t.legendgroup == "READ" and t.showlegend is False]
    assert len(ring) == 1 and list(ring[0].x) == [400]
    # one colour per method even with every method's chosen point ringed (nine methods, as in
    # the shipped figures)
    many = [{"row": f"m{k}", "size": s, "trainable": 10 ** k * s, "mean": float(k + s),
             "chosen": s == 2} for k in range(9) for s in (1, 2)]
    lines = [t for t in pareto_figure(many).data if t.showlegend is not False
             and t.name != "Pareto frontier"]
    assert len(lines) == 9 and len({t.line.color for t in lines}) == 9
    assert all(t.marker.color == t.line.color for t in lines)
    with pytest.raises(ValueError, match="no points"):
        pareto_figure([])
    with pytest.raises(ValueError, match="lack one of"):
        pareto_figure([{"row": "x"}])


# -- READ-PVLA's sensitivity --------------------------------------------------------------------
def test_sensitivity_rows_move_one_knob_and_reach_the_run(toy, tmp_path):
    rows = tlg.sensitivity_rows(["lambda", "lr"])
    assert rows[:3] == ["Adapter", "READ", "READ-PVLA"]
    assert {tlg.ROWS[r].lam for r in tlg.SENSITIVITY["lambda"]} == {0.01, 0.03, 0.3, 1.0}
    for knob, labels in tlg.SENSITIVITY.items():  # every setting differs from READ-PVLA once
        for r in labels:
            v, ref = tlg.ROWS[r], tlg.ROWS["READ-PVLA"]
            moved = [f for f in ("lam", "mass", "lr_factor", "peft") if getattr(v, f) !=
                     getattr(ref, f)]
            assert len(moved) == 1 and v.align == "pvla" and v.method == "read", (knob, r)
    payload = tlg.run_sensitivity("crossmodal", ["lambda"], ["dog"], [0], tmp_path,
                                  settings=TINY_SETTINGS, data_dir=toy,
                                  checkpoint=toy / "ckpt" / "crossmodal", progress=False)
    runs = {r["row"]: r for r in payload["runs"]}
    assert runs["READ-PVLA (lambda=0.3)"]["lam"] == 0.3 and runs["READ-PVLA"]["lam"] == 0.1
    assert "lam" not in runs["Adapter"]
    assert payload["delta"]["reference"] == "Adapter"
    assert "| Δ vs Adapter |" in (tmp_path / "sensitivity_crossmodal.md").read_text()
    rec = tlg.run_one(tlg.build_backbone("crossmodal", d_video=8, d_text=6, d_model=16,
                                         n_heads=2, d_ffn=32),
                      "READ-PVLA (lr x3)", "dog", 0, TINY_SETTINGS, toy)
    assert rec["lr"] == pytest.approx(3 * tlg.HPARAMS["read"]["lr"])
    with pytest.raises(ValueError, match="unknown knob"):
        tlg.sensitivity_rows(["tau"])
    with pytest.raises(ValueError, match="mass must be None or in"):
        tlg.Variant("x", "read", mass=1.5)


def test_vls_sized_rows_round_trip_and_refuse_bad_names():
    from readpvla.tasks import vls

    assert vls.sized_row("read-pvla", 8) == "read-pvla (bottleneck=8)"
    assert vls.sized_row("read", 4) == "read" and vls.sized_row("lora", 4) == "lora"
    for row, want in (("lora (r=2)", ("lora", 2)), ("prompt (n_tokens=20)", ("prompt", 20)),
                      ("full", ("full", None))):
        assert vls.parse_row(row) == want
    assert vls.method_config("lora", size=2).alpha == 4.0  # alpha = 2 r
    assert vls.method_config("read-pvla", size=8).bottleneck == 8
    assert vls.row_label("read-pvla (bottleneck=8)") == "READ-PVLA (bottleneck=8)"
    for bad in ("lora (bottleneck=2)", "lora (r=0)", "lora (r=2", "nope"):
        with pytest.raises(ValueError, match="VLS row"):
            vls.parse_row(bad)
    with pytest.raises(ValueError, match="no size knob"):
        vls.sized_row("full", 4)


def test_vls_tune_then_pareto(tmp_path):
    from readpvla.tasks import vls

    cfg = vls.TransferConfig(n_train=16, n_test=4, n_val=4, steps=2, batch_size=8, eval_every=1,
                             num_beams=1, select="rouge")
    # the hard target's files carry its name, and its runs read its splits
    hard = vls.tune("bart", ["bias"], tmp_path, config=replace(cfg, target="hard"),
                    factors=(1.0,), sizes={}, progress=False)
    assert (tmp_path / "tuning_vls_hard_bart.json").is_file() and hard["budget"] == {"Bias": 1}
    sel = vls.tune("bart", ["bias", "read-pvla"], tmp_path, config=cfg, factors=(1.0, 3.0),
                   sizes={"read": (2, 4)}, progress=False)
    assert sel["budget"] == {"Bias": 4, "READ-PVLA": 4}  # same number of runs for both rows
    runs = [json.loads(x)["record"] for x in (tmp_path / "runs_tuning_vls_bart.jsonl")
            .read_text().splitlines()]
    assert len(runs) == 8 and all("test" not in r and "per_item" not in r for r in runs)
    for c in sel["candidates"]:  # the score is the run's validation ROUGE-L, its lr the factor's
        r = next(r for r in runs if r["row"] == c["variant"]
                 and r["split"] == f"val lr×{c['factor']:.4g}")
        assert c["val"] == pytest.approx(r["val"]["rougeL"], abs=1e-4)
        assert r["lr"] == pytest.approx(c["lr"])
    assert {c["variant"] for c in sel["candidates"] if c["row"] == "READ-PVLA"} == {
        "read-pvla (bottleneck=2)", "read-pvla"}
    out = vls.pareto("bart", tmp_path / "tuning_vls_bart.json", seeds=(0, 1), out_dir=tmp_path,
                     progress=False)
    assert sorted((p["row"], p["size"]) for p in out["points"]) == [
        ("Bias", None), ("READ-PVLA", 2), ("READ-PVLA", 4)]
    assert any(p["frontier"] for p in out["points"])
    table = json.loads((tmp_path / "vls_bart_tuned.json").read_text())
    assert [r["row"] for r in table["rows"].values()] == [
        sel["chosen"]["Bias"]["variant"], sel["chosen"]["READ-PVLA"]["variant"]]
    assert table["delta"]["reference"] == sel["chosen"]["READ-PVLA"]["variant"]
    point = next(p for p in out["points"] if p["chosen"] and p["row"] == "Bias")
    assert table["rows"]["Bias"]["cells"]["R1"]["mean"] == pytest.approx(point["mean"], abs=0.01)
    _points_follow_from_stored_runs(tmp_path / "pareto_vls_bart.json", sel)
    with pytest.raises(ValueError, match="select='rouge'"):
        vls.tune("bart", ["bias"], tmp_path, config=vls.TransferConfig.medium())
    with pytest.raises(ValueError, match="covers the methods"):
        vls.tune("bart", ["nope"], tmp_path, config=cfg)
    with pytest.raises(ValueError, match="is for backbone 'bart'"):
        vls.pareto("t5", sel, out_dir=tmp_path)


def test_points_refuse_a_variant_without_runs_and_transfer_run_refuses_val_without_selection():
    recs = [{"row": "READ", "seed": 0, "trainable": 10, "total": 100, "score": 1.0}]
    pts = tuning.points({"READ": ("READ", None, 1.0)}, recs, [0], lambda r: r["score"],
                        {"READ": "READ"})
    assert pts[0]["mean"] == 1.0 and pts[0]["chosen"] and pts[0]["frontier"]
    with pytest.raises(ValueError, match="no finished run of 'READ' with seed 1"):
        tuning.points({"READ": ("READ", None, 1.0)}, recs, [0, 1], lambda r: r["score"], {})
    from readpvla.tasks import vls

    cfg = vls.TransferConfig(n_train=8, n_test=2, n_val=0, steps=1, batch_size=8, eval_every=0,
                             num_beams=1)
    with pytest.raises(ValueError, match="needs select='rouge'"):
        vls.transfer_run(vls.load_transfer_data("bart", cfg), "bias", 0, cfg, test=False)
