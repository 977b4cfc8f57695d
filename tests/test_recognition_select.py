"""The recognition learning-rate protocol (readpvla.tasks.recognition.select): the hold-out is
the training split minus the K-shot set, never the test split; one job per row x factor; the
chosen rate is the best hold-out top-1 (ties: the smaller); tables train at the chosen rates and
the ablation rows at their parent's; bad rates and files raise clear errors. Tiny rendered
benchmark (3 training videos per class, 2-shot sets) and a tiny video CLIP."""

from __future__ import annotations

import json

import pytest

from readpvla.backbones.checkpoint import save_backbone
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.data import rendered
from readpvla.tasks import recognition as rec
from readpvla.tasks.recognition import cli as rec_cli

TINY_RENDER = rendered.RenderConfig(frames=4, size=16, domains=("flat",), n_source_train=2,
                                    n_source_test=1, n_train=3, n_test=1, captions_train=2,
                                    shots=(2,), fewshot_seeds=1)
TINY = rec.TransferSettings(shots=2, epochs=1, batch_size=16, warmup_steps=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("rendered")
    rendered.generate(root, seed=0, config=TINY_RENDER, splits="flat_train,flat_test", quiet=True)
    model = VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm")
    save_backbone(model, root / "ckpt")
    return root, model


def test_holdout_is_the_training_split_outside_the_k_shot_set(tiny):
    root, _ = tiny
    train = rec.dataset("flat_train", root)
    kshot = rec.dataset("fewshot/flat_K2_seed0", root)
    val = rec.holdout("flat", 2, 0, root)
    test = rec.dataset("flat_test", root)
    assert len(val) == len(train) - len(kshot) == len(train.classes)  # 3 - 2 per class
    assert not set(val.video_ids) & set(kshot.video_ids)
    assert not set(val.video_ids) & set(test.video_ids)
    assert set(val.video_ids) | set(kshot.video_ids) == set(train.video_ids)
    assert val.classes == train.classes
    for v, lab in zip(val.video_ids, val.labels.tolist()):  # labels follow their videos
        assert lab == int(train.labels[train.video_ids.index(v)])


def test_lr_jobs_are_rows_x_factors_on_the_hold_out(tiny):
    root, _ = tiny
    grid = rec.lr_jobs("frames", ["Zero-shot", "MSTA", "LoRA"], "flat", (0.5, 2.0), 0, TINY,
                       root, root / "ckpt", shots=2)
    assert len(grid) == 4  # Zero-shot has nothing to train
    assert len({j.key for j in grid}) == 4
    base = {"MSTA": rec.HPARAMS["msta"]["lr"], "LoRA": rec.HPARAMS["lora"]["lr"]}
    for j in grid:
        assert j.settings.validation and j.settings.protocol == "fewshot"
        (row, lr), = j.settings.lrs
        assert row == j.row and lr in (base[row] * 0.5, base[row] * 2.0)
        assert j.split == f"flat lr={lr:.4g}"
    with pytest.raises(ValueError, match="factors must be distinct numbers > 0"):
        rec.lr_jobs("frames", ["MSTA"], "flat", (1.0, 1.0), 0, TINY, root, root / "ckpt", shots=2)
    with pytest.raises(ValueError, match="factors must be distinct numbers > 0"):
        rec.lr_jobs("frames", ["MSTA"], "flat", (0.0,), 0, TINY, root, root / "ckpt", shots=2)


def test_select_lr_picks_the_best_hold_out_score_and_tables_use_it(tiny, tmp_path):
    root, _ = tiny
    sel = rec.select_lr("frames", ["MSTA", "Prompt"], "flat", (1.0, 30.0), 0, tmp_path,
                        settings=TINY, root=root, checkpoint=root / "ckpt", progress=False,
                        shots=2)
    stored = json.loads((tmp_path / "lr_selection_recognition_frames.json").read_text())
    assert stored["lrs"] == sel["lrs"] and stored["n_val"] == 24
    runs = [json.loads(x)["record"] for x in
            (tmp_path / "runs_lr_selection_recognition_frames.jsonl").read_text().splitlines()]
    assert len(runs) == 4 and all(r["eval_split"] == "flat_val_K2_seed0" for r in runs)
    for row, scores in sel["scores"].items():
        best = max(scores.values())
        assert scores[f"{sel['lrs'][row]:.6g}"] == best
        ties = [float(k) for k, v in scores.items() if v == best]
        assert sel["lrs"][row] == min(ties)
    # a table at the chosen rates: the records and the JSON say so; an ablation row of MSTA
    # takes MSTA's chosen rate
    table = rec.run_transfer("frames", ["MSTA", "MSTA vision only"], ["flat"], (0,), tmp_path,
                             root=root, checkpoint=root / "ckpt", progress=False, settings=TINY,
                             lrs=tmp_path / "lr_selection_recognition_frames.json")
    assert table["lrs"] == {"MSTA": sel["lrs"]["MSTA"], "MSTA vision only": sel["lrs"]["MSTA"]}
    assert {r["lr"] for r in table["runs"]} == {sel["lrs"]["MSTA"]}
    assert all(r["eval_split"] == "flat_test" for r in table["runs"])


def test_settings_lr_falls_back_to_the_base_rate_and_lr_from():
    s = rec.TransferSettings(lrs=(("MSTA + L_CC", 0.02),))
    assert s.lr(rec.ROWS["MSTA + L_CC"]) == 0.02
    assert s.lr(rec.ROWS["MSTA + L_CC N=8"]) == 0.02  # lr_from
    assert s.lr(rec.ROWS["MSTA"]) == rec.HPARAMS["msta"]["lr"]
    assert rec.TransferSettings(lr_scale=2.0).lr(rec.ROWS["LoRA"]) == \
        2.0 * rec.HPARAMS["lora"]["lr"]


def test_bad_rates_and_files_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="validation .* is for the fewshot protocol"):
        rec.TransferSettings(protocol="base2novel", validation=True)
    with pytest.raises(ValueError, match=r"lrs must be \(\(row label, lr > 0\)"):
        rec.TransferSettings(lrs=(("MSTA", -1.0),))
    with pytest.raises(ValueError, match="unknown row"):
        rec.load_lrs({"lrs": {"NoSuchRow": 1e-3}})
    with pytest.raises(ValueError, match="learning rate of 'MSTA' must be a finite number > 0"):
        rec.load_lrs({"MSTA": float("nan")})
    with pytest.raises(ValueError, match="learning rate of 'MSTA' must be a finite number > 0"):
        rec.load_lrs({"MSTA": "0.001"})
    bad = tmp_path / "sel.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a learning-rate selection"):
        rec.load_lrs(bad)
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--lrs", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        rec_cli.transfer_main(["--select-lr", "--lrs", str(bad)])
