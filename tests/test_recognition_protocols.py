"""Recognition protocols (few-shot, base-to-novel, zero-shot, fully supervised) through the
experiment layer, MSTA + L_CC and READ-PVLA training with their extra loss terms, the
AdaptFormer row, the ablation row sets, and the tables (on a tiny rendered benchmark and a tiny
video CLIP)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

import readpvla as rp
from readpvla import experiment as ex
from readpvla.backbones.checkpoint import save_backbone
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.data import rendered
from readpvla.tasks import recognition as rec
from readpvla.tasks.recognition import cli as rec_cli

TINY_RENDER = rendered.RenderConfig(frames=4, size=16, domains=("flat",), n_source_train=2,
                                    n_source_test=1, n_train=2, n_test=1, captions_train=2,
                                    shots=(2,), fewshot_seeds=1)
TINY = rec.TransferSettings(shots=2, epochs=1, batch_size=16, warmup_steps=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One target domain (16 px, 4 frames, 2 training / 1 test video per class), the class
    splits, and a tiny video CLIP with the real (offline) MiniLM text tower, saved."""
    root = tmp_path_factory.mktemp("rendered")
    rendered.generate(root, seed=0, config=TINY_RENDER, splits="flat_train,flat_test", quiet=True)
    model = VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm")
    save_backbone(model, root / "ckpt")
    return root, model


# -- job lists ----------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", rec.PROTOCOLS)
def test_job_lists_are_rows_x_domains_x_seeds_of_the_protocol(protocol, tiny):
    root, _ = tiny
    settings = rec.TransferSettings(protocol=protocol)
    rows, domains, seeds = ["Zero-shot", "AdaptFormer", "MSTA + L_CC"], ["flat", "dark"], [0, 1, 2]
    grid = rec.jobs("frames", rows, domains, seeds, settings, root)
    assert len(grid) == len(rows) * len(domains) * len(seeds)
    assert {j.key for j in grid} == {(r, d, s) for r in rows for d in domains for s in seeds}
    assert all(j.settings.protocol == protocol and j.task == "recognition" for j in grid)
    # the protocol is in the fingerprint: records of two protocols never stand for each other
    other = rec.jobs("frames", rows, domains, seeds, rec.TransferSettings(), root)
    assert (grid[0].fingerprint() == other[0].fingerprint()) == (protocol == "fewshot")


def test_main_rows_and_ablation_row_sets():
    assert rec.TABLE_ROWS[0] == "Zero-shot"
    for r in ("Full", "LoRA", "AdaptFormer", "Adapter", "Prompt", "READ", "READ-PVLA", "RAP",
              "MSTA", "MSTA + L_CC"):
        assert r in rec.TABLE_ROWS
    assert set(rec.ABLATIONS) == {"msta-branches", "msta-descriptions", "msta-start",
                                  "msta-temporal", "msta-scale", "msta-descriptions-scaled"}
    assert [rec.ROWS[r].config().scale for r in rec.ABLATIONS["msta-scale"]] == [0.005, 0.05, 0.5]
    for name, rows in rec.ABLATIONS.items():
        assert all(r in rec.ROWS for r in rows), name
        grid = rec.jobs("frames", list(rows), ["flat"], [0, 1, 2], root="/nonexistent")
        assert len(grid) == 3 * len(rows)
    cfg = {r: rec.ROWS[r].config() for r in rec.ABLATIONS["msta-branches"]}
    assert (cfg["MSTA language only"].branches, cfg["MSTA vision only"].branches,
            cfg["MSTA no shared layer"].shared) == ("text", "vision", False)
    assert all(rec.ROWS[r].consistency is None for r in rec.ABLATIONS["msta-branches"])
    desc = {r: rec.ROWS[r].consistency for r in rec.ABLATIONS["msta-descriptions"]}
    assert sorted((c.n, c.hallucination) for c in desc.values()) == [
        (1, 0.0), (2, 0.0), (4, 0.0), (4, 0.5), (8, 0.0), (8, 0.5)]
    # the second N sweep: the same (N, hallucination) pairs, every row at lambda = 0.05
    scaled = rec.ABLATIONS["msta-descriptions-scaled"]
    assert [(rec.ROWS[r].consistency.n, rec.ROWS[r].consistency.hallucination) for r in scaled] \
        == [(desc[r].n, desc[r].hallucination) for r in rec.ABLATIONS["msta-descriptions"]]
    assert {rec.ROWS[r].config().scale for r in scaled} == {0.05}
    assert {rec.ROWS[r].lr_from for r in scaled} == {"MSTA + L_CC"}
    assert [rec.ROWS[r].config().start for r in rec.ABLATIONS["msta-start"]] == [0, 1, 2, 3]
    assert [rec.ROWS[r].config().temporal for r in rec.ABLATIONS["msta-temporal"]] == [True, False]
    # the retrieval task's rows are untouched
    from readpvla.tasks import retrieval
    assert "AdaptFormer" not in retrieval.ROWS and "MSTA" not in retrieval.ROWS


# -- errors ---------------------------------------------------------------------------------------
def test_bad_protocols_and_shots_raise_clear_errors(tiny, tmp_path):
    root, model = tiny
    with pytest.raises(ValueError, match=r"protocol must be one of \('fewshot', 'base2novel'"):
        rec.TransferSettings(protocol="few-shot")
    with pytest.raises(ValueError, match="shots must be one of"):
        rec.TransferSettings(shots=3)
    with pytest.raises(ValueError, match="shots must be one of"):
        rec.TransferSettings(shots=True)
    with pytest.raises(ValueError, match="shots must be distinct values of"):
        rec.check_shots([2, 5])
    with pytest.raises(ValueError, match="shots must be distinct values of"):
        rec.check_shots([2, 2])
    with pytest.raises(ValueError, match="protocol must be one of"):
        rec.run_transfer("frames", ["Zero-shot"], ["flat"], (0,), tmp_path, protocol="b2n",
                         root=root, checkpoint=root / "ckpt", progress=False)
    with pytest.raises(ValueError, match="shots must be one of"):
        rec.run_transfer("frames", ["Zero-shot"], ["flat"], (0,), tmp_path, shots=32,
                         root=root, checkpoint=root / "ckpt", progress=False)
    with pytest.raises(ValueError, match="unknown ablation"):
        rec.run_transfer("frames", None, ["flat"], (0,), tmp_path, ablations="bogus",
                         root=root, checkpoint=root / "ckpt", progress=False)
    with pytest.raises(ValueError, match="protocol must be one of"):
        rec.table_spec("t", ["Zero-shot"], ["flat"], "", protocol="zero-shot")
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--protocol", "bogus"])
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--shots", "3"])
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--protocol", "zeroshot", "--shots", "2", "4"])


def test_cli_errors_name_the_problem(capsys):
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--protocol", "zeroshot", "--shots", "2", "4"])
    assert "several --shots are for --protocol fewshot" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--protocol", "b2n"])
    assert "invalid choice" in capsys.readouterr().err


# -- smoke runs: one per protocol ------------------------------------------------------------------
METRICS = {"fewshot": {"top1", "top5", "mean_class", "order_pairs"},
           "supervised": {"top1", "top5", "mean_class", "order_pairs"},
           "base2novel": {"base", "novel", "HM", "order_pairs", "order_pairs_base",
                          "order_pairs_novel"},
           "zeroshot": {"top1", "mean_class", "top1_all", "order_pairs"}}


@pytest.mark.parametrize("protocol", rec.PROTOCOLS)
def test_one_run_per_protocol_returns_the_protocols_metrics(protocol, tiny):
    root, model = tiny
    settings = rec.TransferSettings(shots=2, epochs=1, batch_size=16, warmup_steps=0,
                                    protocol=protocol)
    zs = rec.run_one(model, "Zero-shot", "flat", 0, settings, root)
    assert set(zs["test"]) == METRICS[protocol] and zs["protocol"] == protocol
    msta = rec.run_one(model, "MSTA + L_CC", "flat", 0, settings, root)
    assert set(msta["test"]) == METRICS[protocol] and msta["trainable"] > 0
    # L_CC is wired: the consistency term is logged and nonzero
    assert msta["train_log"]["train_cc"] > 0 and "cc(n=2" in msta["loss"]
    n_classes = {"fewshot": 24, "supervised": 24, "base2novel": 12, "zeroshot": 20}[protocol]
    assert msta["train_classes"] == n_classes
    assert msta["train_split"] == ("flat_train" if protocol == "supervised"
                                   else "fewshot/flat_K2_seed0")
    if protocol == "base2novel":
        assert zs["test"]["HM"] == pytest.approx(rp.metrics.recognition.harmonic_mean(
            zs["test"]["base"], zs["test"]["novel"]))
        assert msta["class_split"] == 0
    if protocol == "zeroshot":  # 4 unseen classes x 1 test video
        assert len(zs["per_item"]["top1"]) == 4


def test_msta_without_l_cc_read_pvla_and_rap_train_with_their_own_losses(tiny):
    root, model = tiny
    plain = rec.run_one(model, "MSTA", "flat", 0, TINY, root)
    assert "train_cc" not in plain["train_log"] and plain["loss"] == "ce"
    pvla = rec.run_one(model, "READ-PVLA", "flat", 0, TINY, root)
    assert pvla["train_log"]["train_align"] > 0 and pvla["loss"] == "ce + 0.1 * pvla"
    # RAP picks patches by candidate sentences: here the class prompts
    rap = rec.run_one(model, "RAP", "flat", 0, TINY, root)
    assert rap["trainable"] > 0 and set(rap["test"]) == METRICS["fewshot"]


def test_protocol_tables_through_the_experiment_layer(tiny, tmp_path):
    root, _ = tiny
    common = dict(root=root, checkpoint=root / "ckpt", progress=False, settings=TINY)
    b2n = rec.run_transfer("frames", ["Zero-shot"], ["flat"], (0,), tmp_path,
                           protocol="base2novel", **common)
    md = (tmp_path / "recognition_base2novel_frames_K2.md").read_text()
    assert ("| Method | #params (M) | Base | Novel | HM | Order pairs (base) | "
            "Order pairs (novel) |") in md
    assert b2n["protocol"] == "base2novel" and b2n["runs"][0]["class_split"] == 0
    rec.run_transfer("frames", ["Zero-shot"], ["flat"], (0,), tmp_path, protocol="zeroshot",
                     **common)
    assert "| Method | #params (M) | flat | Avg. | Order pairs |" in \
        (tmp_path / "recognition_zeroshot_frames_K2.md").read_text()
    # several K: each K's table and one over K (only K = 2 exists in the tiny benchmark)
    curve = rec.run_shots("frames", ["Zero-shot"], ["flat"], (0,), tmp_path, shots=[2],
                          **common)
    assert (tmp_path / "recognition_frames_K2.md").is_file()
    assert "| Method | #params (M) | K = 2 | Avg. | Order pairs |" in \
        (tmp_path / "recognition_frames_shots.md").read_text()
    k2 = json.loads((tmp_path / "recognition_frames_K2.json").read_text())
    assert curve["rows"]["Zero-shot"]["cells"]["K = 2"]["mean"] == \
        k2["rows"]["Zero-shot"]["cells"]["Avg."]["mean"]


# -- AdaptFormer -------------------------------------------------------------------------------------
def test_adaptformer_trains_only_parallel_adapters_of_the_video_tower(tiny):
    _, backbone = tiny
    cfg = rec.ROWS["AdaptFormer"].config()
    assert (cfg.placement, cfg.scale, cfg.activation) == ("parallel", 0.1, "relu")
    model = rp.peft.apply(copy.deepcopy(backbone), cfg)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    pattern = re.compile(r"vision_model\.encoder\.layers\.\d+\.mlp\.(w_down|w_up)\.(weight|bias)")
    assert names and all(pattern.fullmatch(n) for n in names)
    layers, d, k = 2, 32, cfg.bottleneck  # the tiny video tower
    assert rp.peft.count_parameters(model).trainable == layers * (d * k + k + k * d + d)
    frames = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():  # W_up = 0: the model starts as the backbone
        assert torch.equal(model.encode_video(frames), backbone.encode_video(frames))
    # a gradient reaches the adapters (W_up first) and nothing else
    tok = backbone.tokenize(["a video of x", "a video of y"])
    loss, _ = rec.recognition_loss(model, {"frames": frames, "labels": torch.tensor([0, 1])},
                                   tok)
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == set(names) and any(model.get_parameter(n).grad.abs().sum() > 0
                                       for n in names if ".w_up." in n)
    record = rec.run_one(backbone, "AdaptFormer", "flat", 0, TINY, tiny[0])
    assert record["trainable"] == layers * (d * k + k + k * d + d)


def test_parallel_adapter_config_is_validated():
    with pytest.raises(ValueError, match="placement='parallel' .* pass target"):
        rp.peft.AdapterConfig(placement="parallel")
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        rp.peft.AdapterConfig(scale=0)
    with pytest.raises(ValueError, match="activation must be one of"):
        rp.peft.AdapterConfig(activation="tanh")
    with pytest.raises(ValueError, match="input and output widths agree"):
        rp.peft.apply(VideoCLIP.tiny(), rp.peft.AdapterConfig(
            placement="parallel", target=r"vision_model\.encoder\.layers\.\d+\.mlp\.fc1"))


def test_adaptformer_saves_and_loads(tiny, tmp_path):
    _, backbone = tiny
    model = rp.peft.apply(copy.deepcopy(backbone), rec.ROWS["AdaptFormer"].config())
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    rp.peft.save_adapter(model, tmp_path / "af")
    loaded = rp.peft.load_adapter(copy.deepcopy(backbone), tmp_path / "af")
    frames = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.encode_video(frames), loaded.encode_video(frames))
        assert not torch.equal(model.encode_video(frames), backbone.encode_video(frames))


# -- tables from fake records ---------------------------------------------------------------------------
def _fake(row, split, seed, test):
    return {"row": row, "split": split, "seed": seed, "test": test, "params": "0.01 (1.0%)",
            "trainable": 10, "total": 1000, "seconds": 1.0}


def test_base_to_novel_table_from_fake_records_has_mean_std_and_hm():
    rows, domains, seeds = ["Zero-shot", "MSTA + L_CC"], ["flat", "dark"], [0, 1, 2]
    records = []
    for r_i, row in enumerate(rows):
        for d_i, d in enumerate(domains):
            for s in seeds:
                b, n = 40.0 + 10 * r_i + s, 20.0 + 10 * r_i + 2 * d_i
                records.append(_fake(row, d, s, {
                    "base": b, "novel": n, "HM": rp.metrics.recognition.harmonic_mean(b, n),
                    "order_pairs": 50.0, "order_pairs_base": 50.0 + s,
                    "order_pairs_novel": 50.0}))
    spec = rec.table_spec("B2N", rows, domains, "note", protocol="base2novel")
    summary = ex.summarize(records, spec, seeds)
    md = ex.format_table(summary, spec)
    assert ("| Method | #params (M) | Base | Novel | HM | Order pairs (base) | "
            "Order pairs (novel) |") in md
    cells = summary["MSTA + L_CC"]["cells"]
    assert cells["Base"] == {"mean": 51.0, "std": 1.0, "values": [50.0, 51.0, 52.0]}
    assert cells["Novel"]["mean"] == 31.0 and cells["Novel"]["std"] == 0.0
    # HM: per seed the mean over domains of each domain's HM, then mean ± std over seeds
    hm = [(rp.metrics.recognition.harmonic_mean(50.0 + s, 30.0)
           + rp.metrics.recognition.harmonic_mean(50.0 + s, 32.0)) / 2 for s in seeds]
    assert cells["HM"]["values"] == [round(h, 2) for h in hm]
    assert f"| MSTA + L_CC | 0.01 (1.0%) | 51.00 ± 1.00 | 31.00 ± 0.00 | {cells['HM']['mean']:.2f}" \
        f" ± {cells['HM']['std']:.2f} | 51.00 ± 1.00 | 50.00 ± 0.00 |" in md


def test_few_shot_table_over_k_from_fake_records():
    by_k = {k: [_fake("LoRA", d, s, {"top1": float(k + s + (10 if d == "dark" else 0)),
                                    "top5": 0.0, "mean_class": 0.0, "order_pairs": 50.0 + k})
                for d in ("flat", "dark") for s in (0, 1)] for k in (2, 16)}
    records = rec.shots_records(by_k)
    assert {(r["split"], r["seed"]) for r in records} == {("K2", 0), ("K2", 1), ("K16", 0),
                                                          ("K16", 1)}
    spec = rec.shots_table_spec("over K", ["LoRA"], [2, 16], "note")
    summary = ex.summarize(records, spec, [0, 1])
    md = ex.format_table(summary, spec)
    assert "| Method | #params (M) | K = 2 | K = 16 | Avg. | Order pairs |" in md
    # K = 2: seeds give (2 + 12) / 2 = 7 and 8
    assert summary["LoRA"]["cells"]["K = 2"]["values"] == [7.0, 8.0]
    assert summary["LoRA"]["cells"]["Order pairs"]["mean"] == 59.0
    assert "| LoRA | 0.01 (1.0%) | 7.50 ± 0.71 | 21.50 ± 0.71 |" in md


def test_tables_show_each_row_against_msta_with_a_bootstrap_interval():
    """The Δ column: MSTA + L_CC is the main tables' reference (an ablation's: its first row);
    base-to-novel compares HM (resampling base and novel videos), the others Avg. (top-1)."""
    assert rec.table_reference(["Zero-shot", "LoRA", "MSTA + L_CC"]) == "MSTA + L_CC"
    assert rec.table_reference(["Zero-shot", "LoRA"]) is None
    assert rec.table_reference(list(rec.ABLATIONS["msta-branches"]), "msta-branches") == "MSTA"
    rows, domains, seeds = ["LoRA", "MSTA + L_CC"], ["flat"], [0, 1]
    records = []
    for row in rows:
        for s in seeds:
            base = [100.0] * 6 + [0.0] * 2 if row == "LoRA" else [100.0] * 2 + [0.0] * 6
            novel = [100.0] * 3 + [0.0] * 5 if row == "LoRA" else [100.0] * 4 + [0.0] * 4
            b, n = 25.0 + 50 * (row == "LoRA"), 37.5 + 12.5 * (row != "LoRA")
            rec_ = _fake(row, "flat", s, {"base": b, "novel": n, "HM": 2 * b * n / (b + n),
                                          "order_pairs": 50.0, "order_pairs_base": 50.0,
                                          "order_pairs_novel": 50.0})
            rec_["per_item"] = {"base": base, "novel": novel}
            records.append(rec_)
    spec = rec.table_spec("B2N", rows, domains, "note", protocol="base2novel",
                          reference="MSTA + L_CC")
    summary = ex.summarize(records, spec, seeds)
    delta = summary["LoRA"]["delta"]
    # HM: LoRA 2 * 75 * 37.5 / 112.5 = 50, MSTA + L_CC 2 * 25 * 50 / 75 = 33.33
    assert delta["column"] == "HM" and delta["diff"] == pytest.approx(50 - 100 / 3, abs=1e-4)
    assert delta["diff"] == pytest.approx(summary["LoRA"]["cells"]["HM"]["mean"]
                                          - summary["MSTA + L_CC"]["cells"]["HM"]["mean"], abs=0.01)
    assert delta["lo"] <= delta["diff"] <= delta["hi"] and delta["lo"] < delta["hi"]
    assert delta["n_items"] == [16]  # 8 base + 8 novel videos
    md = ex.format_table(summary, spec)
    assert "Δ vs MSTA + L_CC" in md.splitlines()[2]
    with pytest.raises(ValueError, match="reference 'MSTA' is not a row"):
        rec.table_spec("t", rows, domains, "", reference="MSTA")
