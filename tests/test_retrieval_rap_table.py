"""RAP in the retrieval task: the ablation rows train at RAP's chosen rate, every record carries
its dual-softmax ("*") R@1, RAP is the tables' "Δ vs" reference, and a rerun is compared with the
shipped runs by the shared rule. Tiny rendered benchmark and tiny video CLIP."""

from __future__ import annotations

import json

import numpy as np
import pytest

import readpvla as rp
from readpvla import experiment as ex
from readpvla.backbones.checkpoint import save_backbone
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.data import rendered
from readpvla.metrics.retrieval import dual_softmax, evaluate_retrieval
from readpvla.tasks import retrieval

TINY_RENDER = rendered.RenderConfig(frames=4, size=16, domains=("flat",), n_source_train=2,
                                    n_source_test=1, n_train=2, n_test=1, captions_train=2,
                                    shots=(2,), fewshot_seeds=1, base_novel_seeds=1)
RET = retrieval.TransferSettings(epochs=1, batch_size=8, warmup_steps=0, n_val=12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("rendered")
    rendered.generate(root, seed=0, config=TINY_RENDER, splits="flat_train,flat_test", quiet=True)
    save_backbone(VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm"), root / "ckpt")
    return root


def test_ablation_rows_are_rap_variants_at_raps_rate():
    rows, s = retrieval.ROWS, retrieval.TransferSettings(lrs={"RAP": 2e-3})
    variants = [r for r in retrieval.ABLATION_ROWS if r.startswith("RAP ")]
    assert len(variants) == 9 and all(rows[r].method == "rap" for r in variants)
    assert not set(retrieval.ABLATION_ROWS) & set(retrieval.TABLE_ROWS)
    assert "RAP" in retrieval.TABLE_ROWS
    # the SSF base: own rows with their own rates
    assert rows["SSF"].method == "ssf" and rows["RAP+SSF"].config().ssf is True
    assert s.lr(rows["RAP+SSF"]) == retrieval.HPARAMS["RAP+SSF"]["lr"]
    for r in variants:
        assert s.lr(rows[r]) == 2e-3
        cfg = rows[r].config()
        assert isinstance(cfg, rp.peft.RAPConfig) and cfg != rows["RAP"].config()
    assert rows["RAP LoRM only"].config().asa is False
    assert rows["RAP zero offsets"].config().offsets == "zero"
    assert retrieval.QUICK.lr(rows["RAP R=1"]) == retrieval.QUICK.lr(rows["RAP"])  # no choice: base


def test_evaluate_reports_dual_softmax_r1_with_per_item_hits(tiny):
    data = retrieval.dataset("flat_test", tiny)
    model = VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm")
    out = retrieval.evaluate(model, data, per_item=True)
    sim = retrieval.similarity(model, data)
    want = evaluate_retrieval(sim, data.caption_video, dsl=True)
    assert out["t2v_R1_dsl"] == pytest.approx(want["t2v"]["R1"])
    assert out["v2t_R1_dsl"] == pytest.approx(want["v2t"]["R1"])
    assert np.mean(out["per_item"]["t2v_R1_dsl"]) == pytest.approx(out["t2v_R1_dsl"])
    assert dual_softmax(sim).shape == sim.shape


def test_ablation_table_marks_rows_against_rap_and_compares_reruns(tiny, tmp_path, monkeypatch):
    kw = {"settings": RET, "root": tiny, "checkpoint": tiny / "ckpt", "progress": False}
    rows = ["RAP", "RAP LoRM only"]
    table = retrieval.run_transfer("frames", rows, ["flat"], (0, 1), tmp_path,
                                   lrs={"RAP": 3e-3}, name="retrieval_ablations", **kw)
    assert (tmp_path / "retrieval_ablations_frames.md").is_file()
    assert (tmp_path / "runs_retrieval_ablations_frames.jsonl").is_file()
    assert table["lrs"] == {"RAP": 3e-3, "RAP LoRM only": 3e-3}
    spec = ex.spec_of(table)
    assert spec.delta.reference == "RAP" and "Avg. DSL" in [c.header for c in spec.columns]
    assert spec.reference is None  # the interval replaced the ‡ marks
    iv = table["rows"]["RAP LoRM only"]["delta"]
    assert iv["column"] == "Avg." and iv["lo"] <= iv["diff"] <= iv["hi"]
    assert table["rows"]["RAP"].get("delta") is None
    # the shipped-run comparison: same settings -> pairs; a moved run is flagged
    monkeypatch.setattr(retrieval.shipped, "results_dir", lambda: tmp_path)
    settings = retrieval.TransferSettings(**{**json.loads(json.dumps(table["settings"])),
                                             "lrs": tuple(map(tuple, table["settings"]["lrs"]))})
    runs = table["runs"]
    cmp = retrieval.compare_with_shipped(runs, "frames", settings)
    assert len(cmp["pairs"]) == 4 and not cmp["outside"] and cmp["verdict"].startswith("all 4")
    moved = [{**runs[0], "test": {**runs[0]["test"], "t2v_R1": runs[0]["test"]["t2v_R1"]
                                  + retrieval.RERUN_TOLERANCE + 1}}]
    assert len(retrieval.compare_with_shipped(moved, "frames", settings)["outside"]) == 1
    other = retrieval.compare_with_shipped(runs, "frames", retrieval.QUICK)
    assert other["pairs"] == [] and other["verdict"].startswith("no shipped")


# -- the shipped tables (data_samples/rendered/results/) -------------------------------------------
SHIPPED = sorted(retrieval.results_dir().glob("retrieval*_*.json"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped retrieval tables")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tables_follow_from_their_runs(path):
    """Every cell and interval of a shipped table is what its stored runs give, the Markdown is
    what format_table makes of them, every run is there, and each run trained at the recorded
    rate."""
    payload = json.loads(path.read_text())
    spec = ex.verify_table(payload, path.with_suffix(".md").read_text())
    for r in payload["runs"]:
        assert r["params"] == str(rp.peft.ParamCount(r["trainable"], r["total"]))
        if r["method"] is not None:
            assert r["lr"] == payload["lrs"][r["row"]]
    assert spec.delta.reference == "RAP" and spec.reference is None


@pytest.mark.parametrize("temporal", ["frames", "spatiotemporal"])
def test_a_shipped_rap_run_reruns_within_the_measured_tolerance(temporal):
    """Across machines a run is not bit-exact (DESIGN.md fact 7); a rerun of a shipped RAP run
    lands within RERUN_TOLERANCE of it (measured by benchmarks/bench_retrieval_portability.py),
    on both backbones."""
    payload = retrieval.shipped_table(temporal)
    if payload is None:
        pytest.skip(f"no shipped retrieval table for {temporal}")
    settings = retrieval.TransferSettings(**{**payload["settings"],
                                             "lrs": tuple(map(tuple, payload["settings"]["lrs"]))})
    rec = retrieval.run_one(retrieval.load(temporal), "RAP", "flat", 0, settings)
    cmp = retrieval.compare_with_shipped([rec], temporal, settings)
    assert len(cmp["pairs"]) == 1 and not cmp["outside"], cmp["verdict"]
