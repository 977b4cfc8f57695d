"""The VLS mechanism probes (issue 15): the clip labels behind the alignment probe, the order
scores, shuffled clips, the probe variants of a row, the plan-mass aggregation, the shared
difference in differences, a small end-to-end grid, and the shipped probe tables."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from readpvla import experiment as ex
from readpvla.data import how2
from readpvla.data.how2 import How2Collator, How2Sample, load_split
from readpvla.tasks import vls
from readpvla.tasks.vls import probes
from readpvla.tasks.vls.rows import Variant, parse_variant, row_label

RESULTS = Path(__file__).resolve().parents[1] / "data_samples" / "how2" / "results"
DATA = Path(__file__).resolve().parents[1] / "data_samples" / "how2"


# -- clip labels --------------------------------------------------------------------------------
@pytest.mark.parametrize("domain", ["target_hard", "target", "source"])
def test_clip_step_labels_recover_the_generators_truth(domain):
    truth: list[np.ndarray] = []
    samples = how2.generate_split(domain, 60, 11, clip_labels=truth)
    agree = total = 0
    for s, t in zip(samples, truth):
        assert t.shape == (len(s.video),)
        got = how2.clip_step_labels(s)
        real = t != -2  # transition clips blend two steps: either label is right
        agree += int((got[real] == t[real]).sum())
        total += int(real.sum())
        assert set(got[~real]) <= set(range(-1, len(s.steps)))
    assert total > 1000 and agree / total >= 0.995


def test_clip_labels_argument_leaves_the_draws_unchanged():
    a = how2.generate_split("target_hard", 5, 3)
    b = how2.generate_split("target_hard", 5, 3, clip_labels=[])
    assert all(np.array_equal(x.video, y.video) and x.summary == y.summary for x, y in zip(a, b))


def test_clip_step_labels_refuse_what_they_cannot_label():
    s = how2.generate_split("target", 1, 0)[0]
    with pytest.raises(ValueError, match="no 'steps'"):
        how2.clip_step_labels(dataclasses.replace(s, steps=[]))
    with pytest.raises(ValueError, match="is not '<verb> the <object>'"):
        how2.clip_step_labels(dataclasses.replace(s, steps=["juggle the moon"]))
    with pytest.raises(ValueError, match=r"video must be \[T, 48\]"):
        how2.clip_step_labels(dataclasses.replace(s, video=s.video[:, :5]))


# -- order scores ---------------------------------------------------------------------------------
STEPS = ["chop the garlic", "heat the butter", "cover the pot"]


@pytest.mark.parametrize("prediction, expected", [
    ("first chop the garlic , then heat the butter , finally cover the pot .", (100.0, 100.0)),
    ("cover the pot , heat the butter and chop the garlic", (100.0, 0.0)),
    ("chop the garlic , cover the pot , heat the butter", (100.0, 200 / 3)),
    ("chop the garlic then heat the butter", (100 / 3, 100 / 3)),
    ("heat the butter , chop the garlic", (100 / 3, 0.0)),
    ("chop the garlics , heat the butters", (0.0, 0.0)),  # whole words only
    ("", (0.0, 0.0)),
])
def test_step_order_counts_named_and_ordered_pairs(prediction, expected):
    assert probes.step_order(prediction, STEPS) == pytest.approx(expected)


def test_step_order_edge_cases_and_batch():
    assert probes.step_order("chop the garlic", ["chop the garlic"]) == (100.0, 100.0)
    assert probes.step_order("nothing", ["chop the garlic"]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="needs the video's steps"):
        probes.step_order("x", [])
    s = How2Sample("a", "t", "s", np.zeros((2, 48), np.float32), steps=STEPS)
    out = probes.order_scores(["cover the pot , heat the butter and chop the garlic"], [s])
    assert out == {"steps named": [100.0], "steps in order": [0.0]}
    with pytest.raises(ValueError, match="2 predictions for 1 videos"):
        probes.order_scores(["a", "b"], [s])


def test_order_given_named_is_the_ratio_of_the_means():
    recs = [{"row": "r", "split": "test", "seed": 0,
             "per_item": {"steps named": [100.0, 50.0], "steps in order": [100.0, 0.0]}},
            {"row": "r", "split": "test", "seed": 1,
             "per_item": {"steps named": [0.0, 50.0], "steps in order": [0.0, 25.0]}},
            {"row": "other", "split": "test", "seed": 0,
             "per_item": {"steps named": [100.0], "steps in order": [0.0]}}]
    assert probes.order_given_named(recs, "r") == {"percent": 62.5, "named": 50.0}
    nothing = [{**recs[0], "per_item": {"steps named": [0.0], "steps in order": [0.0]}}]
    assert probes.order_given_named(nothing, "r") == {"percent": 0.0, "named": 0.0}
    with pytest.raises(ValueError, match="no run of 'x'"):
        probes.order_given_named(recs, "x")


def test_reference_summaries_name_every_step_in_order():
    test = load_split(DATA, "hard_test")[:40]
    scores = probes.order_scores([s.summary for s in test], test)
    assert scores["steps in order"] == [100.0] * 40


# -- shuffled clips -------------------------------------------------------------------------------
def test_shuffle_clips_is_a_fixed_permutation_per_video():
    samples = how2.generate_split("target_hard", 6, 5)
    before = [s.video.copy() for s in samples]
    a, b = probes.shuffle_clips(samples), probes.shuffle_clips(samples[::-1])[::-1]
    for s, x, y, v in zip(samples, a, b, before):
        assert np.array_equal(s.video, v)  # the input is untouched
        assert np.array_equal(x.video, y.video)  # same video, same order, wherever it is read
        assert not np.array_equal(x.video, v)
        assert sorted(map(tuple, x.video.tolist())) == sorted(map(tuple, v.tolist()))
        assert (x.vid, x.transcript, x.summary, x.steps) == (s.vid, s.transcript, s.summary,
                                                             s.steps)


# -- probe variants -------------------------------------------------------------------------------
def test_parse_variant_reads_every_part():
    assert parse_variant("read") == ("read", None)
    assert parse_variant("read [probe]") == ("read", Variant())
    assert parse_variant("read [clips shuffled]") == ("read", Variant(shuffled=True))
    assert parse_variant("read-pvla (bottleneck=4) [lambda=0.3, mass=0.8, lr×3]") == (
        "read-pvla (bottleneck=4)", Variant(lam=0.3, mass=0.8, lr_factor=3.0))
    cfg = Variant(lam=0.3, mass=0.8).config(vls.PROBE_CONFIG)
    assert (cfg.pvla_weight, cfg.pvla_mass) == (0.3, 0.8)
    assert Variant(lr_factor=3.0).config(vls.PROBE_CONFIG) is vls.PROBE_CONFIG
    assert row_label("read [probe]") == "READ"
    assert row_label("lora [clips shuffled]") == "LoRA [clips shuffled]"
    assert row_label("read-pvla (bottleneck=4) [probe]") == "READ-PVLA (bottleneck=4)"


@pytest.mark.parametrize("row, match", [
    ("read [lambda=0.3]", "READ-PVLA rows only"),
    ("adapter [mass=0.5]", "READ-PVLA rows only"),
    ("read-pvla [lambda=-1]", "out of range"),
    ("read-pvla [mass=1.5]", "out of range"),
    ("read-pvla [lr×0]", "must be > 0"),
    ("read-pvla [lr×nan]", "must be > 0"),
    ("read [colour=red]", "unknown part"),
    ("read [probe", "malformed variant"),
    ("read []", "malformed variant"),
    ("reed [probe]", "unknown VLS row"),
])
def test_parse_variant_rejects_bad_rows_naming_them(row, match):
    with pytest.raises(ValueError, match=match):
        parse_variant(row)
    with pytest.raises(ValueError):
        vls.jobs("bart", [row], [0], vls.PROBE_CONFIG)


# -- plan mass --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bart():
    model, tok = vls.load_backbone("bart")
    return model.eval(), How2Collator(tok)


def test_ground_truth_pairs_words_with_their_steps_clips(bart):
    _, collate = bart
    s = how2.generate_split("target_hard", 1, 2)[0]
    s = dataclasses.replace(s, transcript=f"now {s.steps[1]} here")
    enc = collate.tokenizer.encode(s.transcript)
    gt = probes._ground_truth([s], collate, len(s.video), len(enc.ids))[0]  # (N_V, N_L)
    labels = how2.clip_step_labels(s)
    verb, _, obj = s.steps[1].split()
    words = s.transcript.split()
    for j, w in enumerate(enc.word_ids):
        named = w is not None and words[w] in (verb, obj) and not any(
            words[w] in step.split()[::2] for k, step in enumerate(s.steps) if k != 1)
        if named:  # the token names only step 1: exactly step 1's clips
            assert torch.equal(gt[:, j], torch.from_numpy(labels == 1))
        elif w is None or words[w] in ("now", "the", "here"):
            assert not gt[:, j].any()
    assert gt.any()


def test_plan_mass_share_follows_the_plan(bart, monkeypatch):
    model, collate = bart
    samples = how2.generate_split("target_hard", 3, 4)
    calls = []

    def plan_on(where):
        def fake(cost, **kw):  # all mass on the ground-truth pairs, or off them
            gt = probes._ground_truth(samples, collate, cost.shape[1], cost.shape[2])
            mask = kw["mask_a"][:, :, None] & kw["mask_b"][:, None, :]
            calls.append(1)
            plan = ((gt if where == "on" else ~gt) & mask).to(cost.dtype)
            return plan / plan.sum((1, 2), keepdim=True).clamp(min=1e-30), None
        return fake

    monkeypatch.setattr("readpvla.ot.probe.partial_sinkhorn", plan_on("on"))
    on = probes.plan_mass_on_steps(model, samples, collate)
    monkeypatch.setattr("readpvla.ot.probe.partial_sinkhorn", plan_on("off"))
    off = probes.plan_mass_on_steps(model, samples, collate)
    assert len(on["layers"]) == model.fusion_layer + 1 and on["n_videos"] == 3
    for a, b in zip(on["layers"], off["layers"]):
        assert a["per_item"]["share"] == pytest.approx([100.0] * 3)
        assert b["per_item"]["share"] == pytest.approx([0.0] * 3)
        assert 0 < a["chance"] < 100 and a["lift"] == pytest.approx(100 / a["chance"], rel=1e-3)
    assert model.training is False


def test_plan_mass_of_the_real_plan_is_a_share(bart):
    model, collate = bart
    model.train()
    samples = how2.generate_split("target_hard", 4, 6)
    res = probes.plan_mass_on_steps(model, samples, collate)
    assert model.training  # mode restored
    for layer in res["layers"]:
        assert all(0 <= x <= 100 for x in layer["per_item"]["share"])
        assert np.isfinite(layer["share"])
    with pytest.raises(ValueError, match="at least one video"):
        probes.plan_mass_on_steps(model, [], collate)
    model.eval()


# -- the shared difference in differences -------------------------------------------------------------
def _rec(row, seed, scores, split="test"):
    return {"row": row, "split": split, "seed": seed, "per_item": {"m": list(scores)}}


def test_difference_in_differences_of_constant_effects_is_exact():
    base = np.arange(6.0)
    treated = [r for s in (0, 1) for r in (_rec("a", s, base + 5), _rec("ref", s, base))]
    control = [r for s in (0, 1) for r in (_rec("a", s, base + 2), _rec("ref", s, base + 1))]
    iv = ex.difference_in_differences(treated, control, "a", "ref", "m")
    assert (iv.diff, iv.lo, iv.hi) == pytest.approx((4.0, 4.0, 4.0))
    with pytest.raises(ValueError, match="no run of 'ref'"):
        ex.difference_in_differences(treated[:1], control, "a", "ref", "m")
    with pytest.raises(ValueError, match="no run of 'b'"):
        ex.difference_in_differences(treated, control, "b", "ref", "m")


# -- a small grid, end to end ----------------------------------------------------------------------
def test_run_probes_end_to_end(tmp_path):
    cfg = dataclasses.replace(vls.PROBE_CONFIG, n_train=16, n_test=6, steps=2, batch_size=8)
    out = vls.run_probes("bart", seeds=(0, 1), out_dir=tmp_path, config=cfg,
                         tables=("order", "alignment"))
    assert set(out["tables"]) == {"order", "alignment"}
    stored = json.loads((tmp_path / "probes_vls_hard_bart.json").read_text())
    assert stored["contrasts"] == out["contrasts"]
    order = out["tables"]["order"]
    assert len(order["runs"]) == 6 * 2
    for r in order["runs"]:
        assert {"steps named", "steps in order", "share, layer 0", "chance"} <= set(r["test"])
        assert len(r["per_item"]["steps in order"]) == 6
    assert ex.summarize(order["runs"], ex.spec_of(order), [0, 1]) == order["rows"]
    align = out["tables"]["alignment"]
    frozen = [r for r in align["runs"] if r["row"] == "backbone"]
    assert len(frozen) == 2 and frozen[0]["test"] == frozen[1]["test"]
    assert set(out["order_given_named"]) == {"Adapter", "READ", "LoRA"}
    assert "share in the right order" in out["markdown"]
    for label, c in out["contrasts"].items():
        assert set(c) == {"steps in order", "steps named"} and c["steps named"]["lo"] <= \
            c["steps named"]["diff"] <= c["steps named"]["hi"], label
    lines = (tmp_path / "runs_probes_vls_hard_bart.jsonl").read_text().splitlines()
    assert len(lines) == 7 * 2  # 7 rows: the alignment table's READ is the order table's run
    with pytest.raises(ValueError, match="unknown table"):
        vls.run_probes("bart", out_dir=None, config=cfg, tables=("colour",))


# -- the shipped probe tables ---------------------------------------------------------------------
SHIPPED = sorted(RESULTS.glob("probes_vls_hard_*.json"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped probe tables")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_probe_tables_follow_from_their_runs(path):
    payload = json.loads(path.read_text())
    seeds = payload["seeds"]
    assert len(seeds) >= 3
    rows = probes.probe_rows()
    for name, table in payload["tables"].items():
        spec = ex.spec_of(table)
        assert [k for _, k in spec.rows] == (["backbone"] if name == "alignment" else []) \
            + rows[name]
        assert ex.summarize(table["runs"], spec, seeds) == table["rows"], name
        assert len(table["runs"]) == len(spec.rows) * len(seeds)
        assert table["settings"] == json.loads(json.dumps(dataclasses.asdict(vls.PROBE_CONFIG)))
    order = payload["tables"]["order"]["runs"]
    ordered = [r for r in order if r["row"].endswith("[probe]")]
    shuffled = [{**r, "row": r["row"].replace(" [clips shuffled]", " [probe]")}
                for r in order if r["row"].endswith("[clips shuffled]")]
    for label, c in payload["contrasts"].items():
        row = {"READ - Adapter": "read", "LoRA - Adapter": "lora"}[label]
        for metric, stored in c.items():
            iv = ex.difference_in_differences(shuffled, ordered, f"{row} [probe]",
                                              "adapter [probe]", metric, seeds)
            assert iv.as_dict() == stored, (label, metric)
    for label, conds in payload["order_given_named"].items():
        row = {"Adapter": "adapter", "READ": "read", "LoRA": "lora"}[label]
        assert conds["ordered"] == probes.order_given_named(order, f"{row} [probe]")
        assert conds["shuffled"] == probes.order_given_named(order, f"{row} [clips shuffled]")
    # a pair in order is a named pair: per video, "steps in order" <= "steps named"
    for table in payload["tables"].values():
        for r in table["runs"]:
            named, ordered_ = (np.asarray(r["per_item"][k]) for k in ("steps named",
                                                                     "steps in order"))
            assert (ordered_ <= named + 1e-9).all() and len(named) == 200
            assert "rouge2" not in r["per_item"] and all(  # stored to 0.01
                x == round(x, 2) for v in r["per_item"].values() for x in v)


@pytest.mark.skipif(not SHIPPED, reason="no shipped probe tables")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_frozen_backbone_plan_shares_reproduce_here(path):
    """The control row needs no training: recompute its plan shares on 24 test videos (another
    CPU's kernels move the last digits only, DESIGN.md fact 7)."""
    payload = json.loads(path.read_text())
    frozen = next(r for r in payload["tables"]["alignment"]["runs"] if r["row"] == "backbone")
    model, tok = vls.load_backbone(payload["backbone"])
    test = load_split(DATA, "hard_test")[:24]
    res = probes.plan_mass_on_steps(model.eval(), test, How2Collator(tok))
    for layer in res["layers"]:
        stored = frozen["per_item"][f"share, layer {layer['layer']}"][:24]
        assert layer["per_item"]["share"] == pytest.approx(stored, abs=0.05)
    assert res["layers"][0]["per_item"]["chance"] == pytest.approx(
        frozen["per_item"]["chance"][:24], abs=0.006)  # stored to 0.01


def test_summarize_shares_means_and_lift():
    from readpvla import ot

    out = ot.summarize_shares([[10.0, 0.0], [30.0, 20.0]], [5.0, 15.0], "layer")
    assert [o["layer"] for o in out] == [0, 1]
    assert (out[0]["share"], out[0]["chance"], out[0]["lift"]) == (20.0, 10.0, 2.0)
    assert out[1]["per_item"] == {"share": [0.0, 20.0], "chance": [5.0, 15.0]}
    with pytest.raises(ValueError, match="one chance per item"):
        ot.summarize_shares([[1.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="one chance per item"):
        ot.summarize_shares([], [])
