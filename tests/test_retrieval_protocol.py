"""The retrieval task's additions for issue 13: prompt rows (VPT / CoOp), READ-PVLA's loss, the
validation hold-out and the learning-rate protocol, the order-pairs column, the candidate set of
the video encoding. Tiny rendered benchmark and tiny video CLIP, so each test takes seconds."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import readpvla as rp
from readpvla import ot
from readpvla.backbones.checkpoint import save_backbone
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.data import rendered
from readpvla.tasks import recognition, retrieval
from readpvla.tasks.tlg.loss import MASS, PVLA_MAX_ITER, PVLA_TOL, TAU

TINY_RENDER = rendered.RenderConfig(frames=4, size=16, domains=("flat",), n_source_train=2,
                                    n_source_test=1, n_train=2, n_test=1, captions_train=2,
                                    shots=(2,), fewshot_seeds=1, base_novel_seeds=1)
# 48 training videos (2 per class), 12 held out; one epoch of batches of 8
EVAL = sys.modules["readpvla.tasks.retrieval.evaluate"]  # retrieval.evaluate is the function
RET = retrieval.TransferSettings(epochs=1, batch_size=8, warmup_steps=0, n_val=12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("rendered")
    rendered.generate(root, seed=0, config=TINY_RENDER, splits="flat_train,flat_test", quiet=True)
    model = VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm")
    save_backbone(model, root / "ckpt")
    return root, model


# -- rows ---------------------------------------------------------------------------------------
def test_prompt_rows_put_prompts_where_their_names_say(tiny):
    _, model = tiny
    slots = {}
    for label in ("Prompt", "VPT", "CoOp"):
        m = rp.peft.apply(VideoCLIP.tiny(text="clip"), retrieval.ROWS[label].config())
        slots[label] = {n for n, p in m.named_parameters() if p.requires_grad}
    assert slots == {"Prompt": {"readpvla_prompts.video", "readpvla_prompts.text"},
                     "VPT": {"readpvla_prompts.video"}, "CoOp": {"readpvla_prompts.text"}}


def test_rows_rates_and_losses():
    rows = retrieval.ROWS
    assert rows["READ-PVLA"].method == "read" and rows["READ-PVLA"].align == "pvla"
    assert rows["READ"].align is None and rows["READ-PVLA"].lam == 0.1
    s = retrieval.QUICK
    assert s.lr(rows["READ-PVLA"]) == s.lr(rows["READ"])  # READ-PVLA's entry is READ's
    assert s.lr(rows["VPT"]) == retrieval.HPARAMS["prompt"]["lr"]
    chosen = retrieval.TransferSettings(lrs=(("READ", 1e-3),))
    assert chosen.lr(rows["READ"]) == 1e-3 and chosen.lr(rows["LoRA"]) == s.lr(rows["LoRA"])
    assert retrieval.TransferSettings(lrs={"READ": 1e-3}) == chosen  # a dict is accepted
    assert ("RAP" in rows) == ("rap" in rp.peft.METHODS)
    if "RAP" in rows:
        assert s.lr(rows["RAP"]) == 1e-3 and s.weight_decay(rows["RAP"]) == 0.0
    assert retrieval.describe_loss() == "infonce"
    assert retrieval.describe_loss("pvla", 0.1) == "infonce + 0.1 * pvla(mass=0.5, tau=0.05)"
    with pytest.raises(ValueError, match="align must be"):
        retrieval.Row("bad", "read", align="sinkhorn")
    with pytest.raises(ValueError, match="lrs"):
        retrieval.TransferSettings(lrs=(("READ", -1.0),))


# -- READ-PVLA's loss ---------------------------------------------------------------------------
def _batch(model, data, n=4):
    caps = [data.captions[data.captions_of(i)[0]] for i in range(n)]
    return {"frames": retrieval.frames_tensor(data, range(n)), **model.tokenize(caps)}


@pytest.mark.filterwarnings("ignore:partial OT did not converge")
def test_read_pvla_loss_is_infonce_plus_lam_pvla_and_reaches_read(tiny):
    root, base = tiny
    torch.manual_seed(0)
    model = rp.peft.apply(VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm"),
                          retrieval.ROWS["READ-PVLA"].config())
    with torch.no_grad():  # W_up = 0 at start: give READ an output so every parameter matters
        for n, p in model.named_parameters():
            if p.requires_grad and "up" in n:
                p.normal_(std=0.1)
    batch = _batch(model, retrieval.dataset("flat_train", root))
    model.eval()  # no dropout: the same forward twice
    fn = retrieval.loss_fn("pvla", 0.1)
    loss, logs = fn(model, batch)
    assert torch.isfinite(loss) and logs["align"] > 0
    # by hand: InfoNCE of the same forward + 0.1 x PVLA of each matched (frames, words) pair
    with torch.no_grad():
        out = model(batch["frames"], batch["input_ids"], batch["attention_mask"],
                    return_loss=True)
        pvla = ot.pvla_loss(out.h_v, out.h_l, out.mask_v, out.mask_l, mass=MASS, tau=TAU,
                            max_iter=PVLA_MAX_ITER, tol=PVLA_TOL)
    assert float(loss.detach()) == pytest.approx(float(out.loss + 0.1 * pvla), rel=1e-5, abs=1e-6)
    assert logs["nce"] == pytest.approx(float(out.loss), rel=1e-5)
    # the alignment term alone sends a gradient to every READ parameter of the video tower
    model.zero_grad()
    (loss - out.loss).backward()
    read = {n: p.grad for n, p in model.named_parameters()
            if p.requires_grad and n.startswith("vision_model")}
    assert read and all(g is not None and float(g.abs().sum()) > 0 for g in read.values())
    plain, plogs = retrieval.loss_fn()(model, batch)
    assert plogs["align"] == 0.0 and float(plain.detach()) == pytest.approx(float(out.loss), rel=1e-5)


# -- the validation hold-out --------------------------------------------------------------------
def test_val_hold_out_is_disjoint_deterministic_and_sized(tiny):
    root, _ = tiny
    full = retrieval.dataset("flat_train", root)
    tr, val = retrieval.train_val("flat", root, n_val=12)
    assert (len(tr), len(val)) == (36, 12) and tr.split == "flat_trainval"
    assert not set(tr.video_ids) & set(val.video_ids)
    assert set(tr.video_ids) | set(val.video_ids) == set(full.video_ids)
    assert tr.n_captions + val.n_captions == full.n_captions  # every caption goes with its video
    for sub in (tr, val):
        for i, vid in enumerate(sub.video_ids):
            j = full.video_ids.index(vid)
            assert [sub.captions[c] for c in sub.captions_of(i)] == \
                [full.captions[c] for c in full.captions_of(j)]
            assert np.array_equal(sub.frames(i), full.frames(j))
    again = retrieval.train_val("flat", root, n_val=12)[1]
    assert again.video_ids == val.video_ids
    assert retrieval.val_indices(480) == retrieval.val_indices(480)
    assert len(retrieval.val_indices(480)) == 96 == retrieval.N_VAL
    assert retrieval.val_indices(480, seed=1) != retrieval.val_indices(480)
    with pytest.raises(ValueError, match="n_val"):
        retrieval.val_indices(10, 10)


def test_select_lr_runs_the_protocol_writes_every_record_and_its_choice(tiny, tmp_path):
    root, _ = tiny
    kw = {"settings": RET, "root": root, "checkpoint": root / "ckpt", "progress": False}
    sel = retrieval.select_lr("frames", ["Zero-shot", "Bias", "READ-PVLA"], "flat", (1.0, 3.0),
                              out_dir=tmp_path, **kw)
    assert set(sel["lrs"]) == {"Bias", "READ-PVLA"}  # Zero-shot has nothing to train
    for row in ("Bias", "READ-PVLA"):
        base = retrieval.HPARAMS[retrieval.row_key(retrieval.ROWS[row])]["lr"]
        scores = {float(k): v for k, v in sel["scores"][row].items()}
        assert sorted(scores) == pytest.approx([base, 3 * base])
        best = max(scores.values())
        assert sel["lrs"][row] == pytest.approx(min(lr for lr, v in scores.items() if v == best))
    saved = json.loads((tmp_path / "lr_selection_frames.json").read_text())
    assert saved["lrs"] == sel["lrs"] and saved["n_val"] == 12
    lines = (tmp_path / "runs_lr_selection_frames.jsonl").read_text().splitlines()
    recs = [json.loads(x)["record"] for x in lines]
    assert len(recs) == 4 and {r["eval_split"] for r in recs} == {"flat_val"}
    assert {r["loss"] for r in recs if r["row"] == "READ-PVLA"} == \
        {"infonce + 0.1 * pvla(mass=0.5, tau=0.05)"}
    assert sorted(r["lr"] for r in recs if r["row"] == "Bias") == \
        pytest.approx([retrieval.HPARAMS["bias"]["lr"], 3 * retrieval.HPARAMS["bias"]["lr"]])
    # resume takes every run from the file (nothing retrains), same choice
    again = retrieval.select_lr("frames", ["Bias", "READ-PVLA"], "flat", (1.0, 3.0),
                                out_dir=tmp_path, resume=True, **kw)
    assert again["scores"] == sel["scores"]
    # the table trains at the chosen rates and says so
    table = retrieval.run_transfer("frames", ["Bias"], ["flat"], (0,), tmp_path / "t",
                                   lrs=tmp_path / "lr_selection_frames.json", **kw)
    assert table["lrs"] == {"Bias": sel["lrs"]["Bias"]}
    assert table["runs"][0]["lr"] == sel["lrs"]["Bias"]
    assert table["runs"][0]["eval_split"] == "flat_test"
    with pytest.raises(ValueError, match="unknown row"):
        retrieval.load_lrs({"Bogus": 1e-3})


# -- order pairs --------------------------------------------------------------------------------
def test_order_pairs_known_cases(tiny, monkeypatch):
    root, model = tiny
    data = retrieval.dataset("flat_test", root)
    labels = recognition.dataset("flat_test", root)
    n_order = sum(labels.classes[y] in recognition.PAIRS for y in labels.labels)
    # a model that scores each video's class prompt by its true class: 100%; its partner's: 0%
    truth = [labels.classes[y] for y in labels.labels]
    for swap, expected in ((False, 100.0), (True, 0.0)):
        cls = [recognition.PAIRS.get(c, c) if swap else c for c in truth]
        target = torch.nn.functional.one_hot(
            torch.tensor([labels.classes.index(c) for c in cls]), len(labels.classes)).float()
        # videos embedded as the one-hot of a class; class prompts through the real text tower
        # would not be one-hot, so the prompts are replaced too
        monkeypatch.setattr(EVAL, "encode_videos",
                            lambda m, d, idx, cand, bs=64, t=target: t[list(idx)])
        monkeypatch.setattr(EVAL, "encode_texts",
                            lambda m, texts, bs=64: torch.eye(len(texts)))
        res = retrieval.order_pairs(model, data, labels)
        assert res["order_pairs"] == expected and len(res["hits"]) == n_order
    monkeypatch.undo()
    # the real model: the same number through evaluate()
    real = retrieval.order_pairs(model, data, labels)
    assert 0 <= real["order_pairs"] <= 100
    assert retrieval.evaluate(model, data, labels=labels)["order_pairs"] == real["order_pairs"]
    other = recognition.dataset("flat_train", root)
    with pytest.raises(ValueError, match="same videos"):
        retrieval.order_pairs(model, data, other)


def test_videos_are_encoded_with_every_caption_as_candidates(tiny, monkeypatch):
    root, model = tiny
    data = retrieval.dataset("flat_test", root)
    seen = []
    real = model.encode_video

    def spy(frames, frame_mask=None, texts=None):
        seen.append(texts)
        return real(frames, frame_mask)

    monkeypatch.setattr(model, "encode_video", spy)
    v, t = retrieval.embed(model, data, batch_size=10)
    assert len(seen) == 3 and all(s is not None and s.shape == t.shape for s in seen)
    assert all(torch.equal(s.cpu(), t) for s in seen)  # the candidate set = all test captions
