"""The "Does PVLA align?" probe (readpvla.tasks.tlg.probes): the share of each block's PVLA plan
on the ground-truth clips, its chance level, the probe table with its interval, and clear errors.
Tiny TLG benchmark and tiny backbones (tests/tlg_toy.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tlg_toy import TINY_SETTINGS, make_toy

from readpvla import ot
from readpvla.backbones.checkpoint import load_backbone
from readpvla.data import collate_tlg, load_tlg
from readpvla.tasks import tlg
from readpvla.tasks.tlg import probes


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp("tlg"))


def test_share_is_the_plans_mass_on_the_ground_truth_clips(toy):
    model = load_backbone(toy / "ckpt" / "crossmodal").train()
    ds = load_tlg(toy, "dog_test")
    out = probes.plan_mass_on_gt(model, ds, batch_size=4)
    assert model.training  # left as it was
    assert out["n_queries"] == len(ds) and len(out["blocks"]) >= 1
    # by hand for query 0, block 0: the same plan, the GT clips from the annotation
    b = collate_tlg([ds[0]])
    with torch.no_grad():
        o = tlg.forward_batch(model.eval(), b)
    cost = ot.cosine_cost(o.h_v[0].double(), o.h_l[0].double())
    plan, _ = ot.partial_sinkhorn(cost, mass=tlg.MASS, tau=tlg.TAU, max_iter=tlg.PVLA_MAX_ITER,
                                  tol=tlg.PVLA_TOL, mask_a=o.mask_v, mask_b=o.mask_l)
    gt = ds.records[0]["relevant_clip_ids"]
    want = 100 * float(plan[0].sum(1)[gt].sum() / plan[0].sum())
    assert out["blocks"][0]["per_item"]["share"][0] == pytest.approx(want, abs=1e-3)
    n_clips = int(b.video_mask.sum())
    assert out["blocks"][0]["per_item"]["chance"][0] == pytest.approx(100 * len(gt) / n_clips,
                                                                       abs=1e-3)
    for blk in out["blocks"]:
        shares = np.asarray(blk["per_item"]["share"])
        assert ((shares >= 0) & (shares <= 100 + 1e-6)).all()
        assert blk["share"] == pytest.approx(shares.mean(), abs=1e-3)


def test_probe_needs_labels_and_queries(toy):
    model = load_backbone(toy / "ckpt" / "crossmodal")
    ds = load_tlg(toy, "dog_test")
    ds.records = [{k: v for k, v in r.items() if k not in ("relevant_windows",
                                                           "relevant_clip_ids",
                                                           "saliency_scores")}
                  for r in ds.records]
    with pytest.raises(ValueError, match="no labels"):
        probes.plan_mass_on_gt(model, ds)


def test_probe_table_has_the_control_row_and_an_interval(toy, tmp_path):
    payload = probes.probe_alignment("crossmodal", ["READ", "READ-PVLA"], ["dog"], [0, 1],
                                     tmp_path, settings=TINY_SETTINGS, data_dir=toy,
                                     checkpoint=toy / "ckpt" / "crossmodal")
    assert list(payload["rows"]) == [probes.BACKBONE_ROW, "READ", "READ-PVLA"]
    assert payload["rows"]["READ-PVLA"]["delta"]["column"] == "share, block 0"
    stored = json.loads((tmp_path / "probe_alignment_crossmodal.json").read_text())
    assert stored["rows"] == payload["rows"]
    control = [r for r in stored["runs"] if r["row"] == probes.BACKBONE_ROW]
    assert all(r["trainable"] == 0 for r in control)
    # the control's share does not depend on the seed (nothing is trained)
    assert control[0]["test"] == control[1]["test"]
    with pytest.raises(ValueError, match="unknown domain"):
        probes.probe_alignment("crossmodal", ["READ"], ["moon"], [0], settings=TINY_SETTINGS,
                               data_dir=toy, checkpoint=toy / "ckpt" / "crossmodal")


# -- the shipped issue-15 measurements (data_samples/tlg/results/) ----------------------------------
RESULTS = tlg.default_data_dir() / "results"
STUDIES = sorted([*RESULTS.glob("seeds10_*.json"), *RESULTS.glob("probe_alignment_*.json")])


@pytest.mark.skipif(not STUDIES, reason="no shipped seed study or probe table")
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_shipped_studies_follow_from_their_runs(path):
    """Every cell and interval of the 10-seed Table 1 and of the alignment probe is what the runs
    stored beside it give; every (row, domain, seed) is there."""
    from readpvla import experiment as ex

    payload = json.loads(path.read_text())
    spec = ex.verify_table(payload, path.with_suffix(".md").read_text())
    assert len(payload["splits"]) == 6
    if path.stem.startswith("seeds10"):
        assert payload["seeds"] == list(range(10))
        assert all(tlg.TEMPORAL_METRIC in r["test"] for r in payload["runs"])
    else:
        assert spec.rows[0][1] == probes.BACKBONE_ROW
