"""The "Does PVLA align?" probe (readpvla.tasks.tlg.probes): the share of each block's PVLA plan
on the ground-truth clips, its chance level, the probe table with its interval, and clear errors.
Tiny TLG benchmark and tiny backbones (tests/tlg_toy.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tlg_toy import TINY_SETTINGS, make_toy

from readpvla import experiment as ex
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
    payload = json.loads(path.read_text())
    spec = ex.verify_table(payload, path.with_suffix(".md").read_text())
    assert len(payload["splits"]) == 6
    if path.stem.startswith("seeds10"):
        assert payload["seeds"] == list(range(10))
        assert all(tlg.TEMPORAL_METRIC in r["test"] for r in payload["runs"])
    else:
        assert spec.rows[0][1] == probes.BACKBONE_ROW


# -- does recurrence inject order? ------------------------------------------------------------
def test_order_blind_backbone_is_permutation_equivariant_and_read_is_not():
    """The control of probe_order: without clip positions, permuting the clips permutes every
    per-clip output; with them, or with READ's recurrence on top, it does not."""
    import readpvla as rp
    from readpvla.backbones.tlg import CrossModalConfig, CrossModalTLG

    v, t = torch.randn(2, 7, 8), torch.randn(2, 3, 6)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))

    @torch.no_grad()
    def gap(model):
        model.eval()
        a, b = model(v, None, t, None), model(v[:, perm], None, t, None)
        return max(float((a.saliency[:, perm] - b.saliency).abs().max()),
                   float((a.offsets[:, perm] - b.offsets).abs().max()))

    cfg = dict(d_video=8, d_text=6, d_model=16, n_heads=2)
    torch.manual_seed(0)
    blind = CrossModalTLG(CrossModalConfig(**cfg, video_positions=False))
    torch.manual_seed(0)
    aware = CrossModalTLG(CrossModalConfig(**cfg))
    assert gap(blind) < 1e-5 and gap(aware) > 1e-3
    read = rp.peft.apply(blind, rp.peft.READConfig())
    with torch.no_grad():  # READ starts as the identity: move it off so the recurrence acts
        for p in read.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    assert gap(read) > 1e-3
    with pytest.raises(ValueError, match="video_positions must be True or False"):
        CrossModalConfig(video_positions=0)


@pytest.fixture(scope="module")
def toy_kinds(tmp_path_factory):
    """The toy benchmark with a query kind per annotation (every other query "after"), an
    order-aware and an order-blind tiny checkpoint."""
    from tlg_toy import TINY, make_toy

    from readpvla.backbones.checkpoint import save_backbone

    root = make_toy(tmp_path_factory.mktemp("order"))
    for path in (root / "annotations").glob("*.jsonl"):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "kind": "after" if i % 2 else "plain"}) + "\n"
                                for i, r in enumerate(lines)))
    torch.manual_seed(0)
    save_backbone(tlg.build_backbone("crossmodal", **TINY, video_positions=False),
                  root / "ckpt" / "blind")
    return root


def test_probe_order_runs_both_backbones_and_contrasts_them(toy_kinds, tmp_path):
    from tlg_toy import TINY_SETTINGS

    ck = {"aware": toy_kinds / "ckpt" / "crossmodal", "blind": toy_kinds / "ckpt" / "blind"}
    out = tlg.probe_order(ck, ("Adapter", "READ"), ["dog", "gym"], [0, 1], tmp_path,
                          settings=TINY_SETTINGS, data_dir=toy_kinds, progress=False)
    saved = json.loads((tmp_path / "probe_order.json").read_text())
    assert set(saved["tables"]) == {"aware", "blind"}
    c = out["contrasts"]["READ - Adapter"]
    # the contrast is the difference of the two tables' READ - Adapter on temporal queries
    t = {n: out["tables"][n]["rows"] for n in ("aware", "blind")}
    dd = ((t["blind"]["READ"]["avg"][tlg.TEMPORAL_METRIC]["mean"]
           - t["blind"]["Adapter"]["avg"][tlg.TEMPORAL_METRIC]["mean"])
          - (t["aware"]["READ"]["avg"][tlg.TEMPORAL_METRIC]["mean"]
             - t["aware"]["Adapter"]["avg"][tlg.TEMPORAL_METRIC]["mean"]))
    assert c["temporal"]["diff"] == pytest.approx(dd, abs=0.02)
    assert c["temporal"]["lo"] <= c["temporal"]["diff"] <= c["temporal"]["hi"]
    assert "Difference in differences" in (tmp_path / "probe_order.md").read_text()
    with pytest.raises(ValueError, match="not an order-blind backbone"):
        tlg.probe_order({"a": ck["aware"], "b": ck["aware"]}, out_dir=None, data_dir=toy_kinds)
    with pytest.raises(ValueError, match="exactly two"):
        tlg.probe_order({"a": ck["aware"]}, out_dir=None)
    with pytest.raises(ValueError, match="must include 'Adapter'"):
        tlg.probe_order(ck, ("READ",), out_dir=None)




@pytest.mark.skipif(not (RESULTS / "probe_order.json").is_file(), reason="not shipped")
def test_shipped_order_probe_follows_from_its_runs_and_its_blind_backbone_is_blind():
    payload = json.loads((RESULTS / "probe_order.json").read_text())
    assert list(payload["tables"]) == ["order-aware", "order-blind"]
    records = {}
    for name, table in payload["tables"].items():
        records[name] = table["runs"]
        again = ex.summarize(table["runs"], ex.spec_of(table), table["seeds"])
        assert again == table["rows"], name
        assert table["seeds"] == payload["seeds"] and len(payload["seeds"]) >= 3
        assert len(table["runs"]) == 3 * 6 * len(payload["seeds"])  # rows x domains x seeds
    for label, c in payload["contrasts"].items():
        row = label.split(" - ")[0]
        for kind, metric in (("temporal", tlg.TEMPORAL_METRIC), ("plain", tlg.PLAIN_METRIC)):
            iv = probes._contrast(records, row, "Adapter", "order-blind", "order-aware", metric,
                                  payload["seeds"])
            assert iv.as_dict() == c[kind], (label, kind)
    blind = load_backbone(tlg.default_data_dir() / "checkpoints" / "crossmodal-orderblind").eval()
    assert blind.config.video_positions is False
    v, t = torch.randn(1, 9, 128), torch.randn(1, 5, 384)
    perm = torch.randperm(9)
    with torch.no_grad():
        a, b = blind(v, None, t, None), blind(v[:, perm], None, t, None)
    assert torch.allclose(a.saliency[:, perm], b.saliency, atol=1e-4)


@pytest.mark.skipif(not (RESULTS / "sensitivity_crossmodal.json").is_file(), reason="not shipped")
def test_shipped_sensitivity_table_follows_from_its_runs():
    payload = json.loads((RESULTS / "sensitivity_crossmodal.json").read_text())
    md = (RESULTS / "sensitivity_crossmodal.md").read_text()
    ex.verify_table(payload, md)
    assert [r["row"] for r in payload["rows"].values()] == tlg.sensitivity_rows()
    assert payload["delta"]["reference"] == tlg.SENSITIVITY_REFERENCE
    runs = {(r["row"], r["split"], r["seed"]): r for r in payload["runs"]}
    assert len(runs) == len(tlg.sensitivity_rows()) * 6 * 3
    # each setting reached its run: lambda and mass in the record, the rate scaled
    assert runs[("READ-PVLA (lambda=1)", "dog", 0)]["lam"] == 1.0
    assert runs[("READ-PVLA (mass=0.2)", "dog", 0)]["mass"] == 0.2
    assert runs[("READ-PVLA (lr x3)", "dog", 0)]["lr"] == pytest.approx(
        3 * runs[("READ-PVLA", "dog", 0)]["lr"])
