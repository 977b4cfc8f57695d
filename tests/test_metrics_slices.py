"""Sliced TLG metrics (``evaluate_tlg(..., group_by=FIELD)``, ``readpvla eval-tlg --group-by``),
the query ``kind`` the loader adds from the synthetic benchmark's latent script, and the
per-query scores TLG run records keep (``per_query_tlg``, ``record["per_item"]``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from readpvla.cli import main as cli_main
from readpvla.data import add_latent_fields, load_tlg, read_latent_fields
from readpvla.metrics import (
    BRIEF_KEYS,
    IOU_THRESHOLDS,
    evaluate_tlg,
    evaluate_tlg_files,
    moment_ap,
    per_query_tlg,
    save_jsonl,
    tlg_main,
)

SHIPPED = Path(__file__).resolve().parents[1] / "data_samples" / "tlg"
DOMAINS = ("dog", "gym", "parkour", "skating", "skiing", "surfing")
KINDS = ("after", "before", "plain")


def fake_predictions(gts: list[dict], seed: int = 0) -> list[dict]:
    """Deterministic prediction lines: plain queries near their GT window, temporal queries
    often at the wrong occurrence (shifted), saliency random."""
    rng = np.random.default_rng(seed)
    preds = []
    for g in gts:
        st, ed = g["relevant_windows"][0]
        shift = float(rng.choice([0, 2, 4])) if g.get("kind", "plain") == "plain" \
            else float(rng.choice([0, 6, 20]))
        wins = [[st + shift, ed + shift, 0.9], [max(0.0, st - 8), st, 0.6],
                [st, min(g["duration"], ed + 4), 0.3]]
        n = int(np.ceil(g["duration"] / 2))
        preds.append({"qid": g["qid"], "query": g["query"], "vid": g["vid"],
                      "pred_relevant_windows": wins,
                      "pred_saliency_scores": rng.random(n).round(4).tolist()})
    return preds


@pytest.fixture(scope="module")
def shipped_test():
    """Every shipped test split (360 queries, loaded with their kind) and predictions."""
    gts = [r for d in DOMAINS for r in load_tlg(SHIPPED, f"{d}_test").records]
    return gts, fake_predictions(gts)


# -- the kind field -------------------------------------------------------------------------------
def test_loader_adds_the_query_kind_from_the_latent_script_without_touching_the_files():
    counts = dict.fromkeys(KINDS, 0)
    for d in DOMAINS:
        for part in ("train", "val", "test"):
            split = f"{d}_{part}"
            on_disk = (SHIPPED / "annotations" / f"{split}.jsonl").read_text(encoding="utf-8")
            assert '"kind"' not in on_disk  # derived at load time; the shipped file is unchanged
            ds = load_tlg(SHIPPED, split)
            for r in ds.records:
                words = set(r["query"].lower().replace(",", " ").replace(".", " ").split())
                # the kind agrees with the query text, which is unchanged
                assert r["kind"] == ("after" if "after" in words else
                                     "before" if "before" in words else "plain")
                counts[r["kind"]] += 1
            plain = load_tlg(SHIPPED, split, latent_file=False)
            assert [{k: v for k, v in r.items() if k != "kind"} for r in ds.records] == \
                plain.records and "kind" not in plain.records[0]
    assert counts == {"plain": 548, "after": 90, "before": 82}  # RECIPE.md's statistics


def test_latent_fields_errors(tmp_path):
    latent = SHIPPED / "latent" / "dog_test.jsonl"
    recs = load_tlg(SHIPPED, "dog_test", latent_file=False).records
    kinds = read_latent_fields(latent)
    assert len(kinds) == 60 and set(v["kind"] for v in kinds.values()) == set(KINDS)
    with pytest.raises(ValueError, match="no query 1100000"):
        add_latent_fields(load_tlg(SHIPPED, "dog_val", latent_file=False).records, latent)
    wrong = [{**recs[0], "kind": "sideways"}, *recs[1:]]
    with pytest.raises(ValueError, match="'kind' is 'sideways' in the annotations but"):
        add_latent_fields(wrong, latent)
    (tmp_path / "bad.jsonl").write_text('{"vid": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: a latent line needs a 'queries' list"):
        read_latent_fields(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError):
        load_tlg(SHIPPED, "dog_test", latent_file=tmp_path / "none.jsonl")


# -- group_by -------------------------------------------------------------------------------------
def test_group_by_kind_returns_all_unchanged_and_each_kind(shipped_test):
    gts, preds = shipped_test
    res = evaluate_tlg(preds, gts, group_by="kind")
    assert list(res) == ["all", *KINDS]
    assert res["all"] == evaluate_tlg(preds, gts)  # the existing numbers, unchanged
    for kind in KINDS:
        sub = [i for i, g in enumerate(gts) if g["kind"] == kind]
        assert res[kind] == evaluate_tlg([preds[i] for i in sub], [gts[i] for i in sub])
    # the fake predictions put temporal queries at the wrong occurrence more often
    assert res["plain"]["MR-full-mAP"] > res["after"]["MR-full-mAP"]


def test_group_metrics_weighted_by_query_counts_sum_back_to_all(shipped_test):
    """Every brief number is a mean over queries (over thresholds / annotators within a query),
    so the groups' numbers weighted by their query counts give "all"'s, up to the 2-decimal
    rounding of each number (<= 0.005 each, so <= 0.01 together)."""
    gts, preds = shipped_test
    res = evaluate_tlg(preds, gts, group_by="kind", detailed=True)
    n = {k: sum(g["kind"] == k for g in gts) for k in KINDS}
    for key in BRIEF_KEYS:
        head = key.rsplit("-", 1)[0]  # MR-full, MR-short, HL-min-Good, ...
        bucket = head[3:] if key.startswith("MR-") else None
        if bucket in ("short", "middle", "long"):  # a mean over the bucket's queries
            w = {k: res[k].get(bucket, {}).get("num_queries", 0) for k in KINDS}
        else:
            w = n
        if not sum(w.values()):  # no GT window of that length at all: the key is left out
            assert key not in res["all"]["brief"]
            continue
        got = sum(w[k] * res[k]["brief"][key] for k in KINDS if w[k]) / sum(w.values())
        assert got == pytest.approx(res["all"]["brief"][key], abs=0.01), key


def test_group_map_merges_values(shipped_test):
    gts, preds = shipped_test
    res = evaluate_tlg(preds, gts, group_by="kind",
                       group_map={"after": "temporal", "before": "temporal"})
    assert list(res) == ["all", "plain", "temporal"]
    sub = [i for i, g in enumerate(gts) if g["kind"] != "plain"]
    assert res["temporal"] == evaluate_tlg([preds[i] for i in sub], [gts[i] for i in sub])
    by_domain = evaluate_tlg(preds, gts, group_by="domain")  # any field, not only kind
    assert list(by_domain) == ["all", *DOMAINS]


def test_group_by_errors_name_the_field_and_the_fields_available(shipped_test):
    gts, preds = shipped_test
    with pytest.raises(ValueError, match=r"cannot group by 'colour': ground_truth\[0\] \(qid "
                       r"1200000\) has no field 'colour' \(360 of 360 GT lines lack it\); fields "
                       r"every GT line has: \['domain', 'duration', 'kind', 'qid', 'query', "
                       r"'vid'\]"):
        evaluate_tlg(preds, gts, group_by="colour")
    with pytest.raises(ValueError, match="relevant_windows = .* not a str, int, float or bool"):
        evaluate_tlg(preds, gts, group_by="relevant_windows")
    with pytest.raises(ValueError, match="group_by must be a field name"):
        evaluate_tlg(preds, gts, group_by="")
    with pytest.raises(ValueError, match="group_by must be a field name"):
        evaluate_tlg(preds, gts, group_by=["kind"])
    with pytest.raises(ValueError, match="the value 'all'"):
        evaluate_tlg(preds, gts, group_by="kind", group_map={"plain": "all"})
    with pytest.raises(ValueError, match="group_map needs group_by"):
        evaluate_tlg(preds, gts, group_map={"after": "temporal"})
    some = [dict(g) for g in gts]
    del some[5]["kind"]
    with pytest.raises(ValueError, match=r"ground_truth\[5\] .* \(1 of 360 GT lines lack it\)"):
        evaluate_tlg(preds, some, group_by="kind")


# -- per-query scores -----------------------------------------------------------------------------
def test_per_query_scores_average_to_the_table_numbers(shipped_test):
    gts, preds = shipped_test
    brief = evaluate_tlg(preds, gts)
    per = per_query_tlg(preds, gts)
    assert per["qid"] == [g["qid"] for g in gts]
    assert set(per) - {"qid"} == {k for k in BRIEF_KEYS if "-full-" in k or k.startswith("HL-")}
    for key, values in per.items():
        if key != "qid":
            assert len(values) == len(gts)
            # the standard rounds to 2 decimals; the mean of the per-query values is exact
            assert np.mean(values) == pytest.approx(brief[key], abs=0.005 + 1e-9), key
    i = 7
    ap = moment_ap(np.array(preds[i]["pred_relevant_windows"]),
                   np.array(gts[i]["relevant_windows"]), IOU_THRESHOLDS)
    assert per["MR-full-mAP"][i] == pytest.approx(100 * ap.mean())
    # GT order, whatever the order of the predictions
    assert per_query_tlg(preds[::-1], gts) == per


# -- the command line -----------------------------------------------------------------------------
def test_eval_tlg_group_by_on_the_shipped_annotations(tmp_path, capsys):
    gt_path = SHIPPED / "annotations" / "gym_test.jsonl"
    gts = load_tlg(SHIPPED, "gym_test").records
    preds = fake_predictions(gts, seed=1)
    save_jsonl(preds, tmp_path / "p.jsonl")
    argv = ["--pred", str(tmp_path / "p.jsonl"), "--gt", str(gt_path), "--group-by", "kind"]
    assert tlg_main(argv + ["--out", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    # the GT file has no kind: it comes from data_samples/tlg/latent/gym_test.jsonl
    assert printed == json.loads((tmp_path / "m.json").read_text()) \
        == evaluate_tlg(preds, gts, group_by="kind") \
        == evaluate_tlg_files(tmp_path / "p.jsonl", gt_path, group_by="kind")
    assert list(printed) == ["all", *KINDS]
    assert printed["all"] == evaluate_tlg_files(tmp_path / "p.jsonl", gt_path)
    # through the readpvla command, with merged values and an explicit latent script
    assert cli_main(["eval-tlg", *argv, "--group-map", "after=temporal", "before=temporal",
                     "--latent", str(SHIPPED / "latent" / "gym_test.jsonl")]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["all", "plain", "temporal"]
    # an unknown field: exit status 1, the field and the available ones on stderr
    assert tlg_main(argv[:-1] + ["colour"]) == 1
    err = capsys.readouterr().err
    assert "cannot group by 'colour'" in err and "'kind'" in err and "'domain'" in err
    # a GT file outside the benchmark layout has no latent script: kind is unknown there
    save_jsonl(load_tlg(SHIPPED, "gym_test", latent_file=False).records, tmp_path / "g.jsonl")
    assert tlg_main(["--pred", str(tmp_path / "p.jsonl"), "--gt", str(tmp_path / "g.jsonl"),
                     "--group-by", "kind"]) == 1
    assert "has no field 'kind'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tlg_main(argv[:4] + ["--group-map", "after=temporal"])  # needs --group-by
    capsys.readouterr()


# -- TLG run records keep per-query scores --------------------------------------------------------
def test_tlg_run_records_store_per_item_scores(tmp_path):
    import tlg_toy

    from readpvla import experiment as ex
    from readpvla.backbones.checkpoint import load_backbone
    from readpvla.tasks import tlg

    toy = tlg_toy.make_toy(tmp_path)
    backbone = load_backbone(toy / "ckpt" / "crossmodal")
    rec = tlg.run_one(backbone, "Adapter", "dog", 0, tlg_toy.TINY_SETTINGS, toy)
    ds = load_tlg(toy, "dog_test")
    assert rec["item_ids"] == [r["qid"] for r in ds.records]
    assert set(rec["per_item"]) == set(rec["test"]) == {tlg.TABLE_METRIC, *tlg.EXTRA_METRICS}
    for key, values in rec["per_item"].items():
        assert len(values) == len(ds)
        assert np.mean(values) == pytest.approx(rec["test"][key], abs=0.005 + 1e-9)
    # the shared paired bootstrap reads them
    other = tlg.run_one(backbone, "Proj", "dog", 0, tlg_toy.TINY_SETTINGS, toy)
    iv = ex.compare_rows([rec, other], "Adapter", "Proj", tlg.TABLE_METRIC)
    assert iv.n_items == (len(ds),) and iv.seeds == (0,) and iv.lo <= iv.diff <= iv.hi
    assert iv.diff == pytest.approx(np.mean(rec["per_item"][tlg.TABLE_METRIC])
                                    - np.mean(other["per_item"][tlg.TABLE_METRIC]))
