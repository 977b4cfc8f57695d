"""The retrieval and recognition tasks: batches, losses, evaluation, one run, a table through the
experiment layer (on a tiny rendered benchmark and a tiny video CLIP), and the shipped pretrained
video CLIPs (zero-shot well above chance; the frame bag at chance on the order-only pairs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import readpvla as rp
from readpvla import experiment as ex
from readpvla.backbones.checkpoint import save_backbone
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.data import rendered
from readpvla.tasks import recognition, retrieval

TINY_RENDER = rendered.RenderConfig(frames=4, size=16, domains=("flat",), n_source_train=2,
                                    n_source_test=1, n_train=2, n_test=1, captions_train=2,
                                    shots=(2,), fewshot_seeds=1, base_novel_seeds=1)
RET = retrieval.TransferSettings(epochs=1, batch_size=8, warmup_steps=0)
REC = recognition.TransferSettings(shots=2, epochs=1, batch_size=16, warmup_steps=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny rendered benchmark (one target domain, 16 px, 4 frames) and a tiny video CLIP with
    the real (offline) MiniLM text tower, saved as a checkpoint."""
    root = tmp_path_factory.mktemp("rendered")
    rendered.generate(root, seed=0, config=TINY_RENDER, splits="flat_train,flat_test", quiet=True)
    model = VideoCLIP.tiny(temporal="frames", num_frames=4, text="minilm")
    save_backbone(model, root / "ckpt")
    return root, model


def test_retrieval_batches_pair_each_video_with_one_of_its_captions(tiny):
    root, model = tiny
    data = retrieval.dataset("flat_train", root)
    batches = retrieval.TrainBatches(data, model.tokenize, 8, seed=0)
    b = next(iter(batches))
    assert b["frames"].shape == (8, 4, 3, 16, 16) and b["frames"].dtype == torch.float32
    assert b["input_ids"].shape[0] == 8 and len(batches) == len(data) // 8
    with pytest.raises(ValueError, match="contrastive"):
        retrieval.TrainBatches(data, model.tokenize, 1)
    with pytest.raises(ValueError, match="videos in"):
        retrieval.TrainBatches(data, model.tokenize, 10 ** 6)


def test_retrieval_evaluation_is_clip4clips_on_the_model_similarities(tiny):
    root, model = tiny
    test = retrieval.dataset("flat_test", root)
    sim = retrieval.similarity(model, test)
    assert sim.shape == (test.n_captions, len(test))
    res = retrieval.evaluate(model, test, per_item=True)
    assert res["t2v_R1"] == rp.metrics.evaluate_retrieval(sim, test.caption_video)["t2v"]["R1"]
    assert np.mean(res["per_item"]["t2v_R1"]) == pytest.approx(res["t2v_R1"], abs=1e-6)
    assert {"t2v_R5", "t2v_MR", "v2t_R1", "v2t_MeanR"} <= set(res)


def test_retrieval_run_trains_only_the_adapter_and_zero_shot_trains_nothing(tiny):
    root, model = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zs = retrieval.run_one(model, "Zero-shot", "flat", 0, RET, root)
    assert zs["trainable"] == 0 and zs["epochs_run"] == 0
    lora = retrieval.run_one(model, "LoRA", "flat", 0, RET, root, return_model=True)
    assert lora["trainable"] > 0 and lora["epochs_run"] == 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # a copy trains
    trained = rp.peft.adapter_state_dict(lora["model"])
    assert trained and all("lora_" in n for n in trained)
    again = retrieval.run_one(model, "LoRA", "flat", 0, RET, root)
    assert again["test"] == lora["test"]  # same machine, same seed: the same numbers


def test_retrieval_table_through_the_experiment_layer(tiny, tmp_path):
    root, _ = tiny
    table = retrieval.run_transfer("frames", ["Zero-shot", "Bias"], ["flat"], (0, 1), tmp_path,
                                   settings=RET, root=root, checkpoint=root / "ckpt",
                                   progress=False)
    saved = json.loads((tmp_path / "retrieval_frames.json").read_text())
    assert list(saved["rows"]) == ["Zero-shot", "Bias"] and len(saved["runs"]) == 4
    assert ex.summarize(saved["runs"], ex.spec_of(saved), saved["seeds"]) == saved["rows"]
    zs = [r["test"]["t2v_R1"] for r in saved["runs"] if r["row"] == "Zero-shot"]
    assert zs[0] == zs[1]  # no training: the seed changes nothing
    assert "| Zero-shot |" in (tmp_path / "retrieval_frames.md").read_text()
    assert table["rows"] == saved["rows"]


def test_order_pair_accuracy_closed_form():
    classes = list(rendered.CLASSES)
    lr, rl = classes.index("moving something from left to right"), \
        classes.index("moving something from right to left")
    scores = np.zeros((3, len(classes)))
    scores[0, lr], scores[0, rl] = 0.9, 0.1    # an L->R video judged L->R: right
    scores[1, lr], scores[1, rl] = 0.9, 0.1    # an R->L video judged L->R: wrong
    scores[2, 0] = 1.0                          # a bouncing video: not an order-only class
    labels = [lr, rl, classes.index("something bouncing")]
    acc, hits = recognition.order_pair_accuracy(scores, labels, classes)
    assert acc == 50.0 and hits == [100.0, 0.0]
    assert np.isnan(recognition.order_pair_accuracy(scores[2:], labels[2:], classes)[0])
    assert len(recognition.PAIRS) == 18 and all(recognition.PAIRS[b] == a
                                                for a, b in recognition.PAIRS.items())


def test_recognition_run_and_table(tiny, tmp_path):
    root, model = tiny
    rec = recognition.run_one(model, "READ", "flat", 0, REC, root)
    assert rec["trainable"] > 0 and set(rec["test"]) == {"top1", "top5", "mean_class",
                                                         "order_pairs"}
    assert len(rec["per_item"]["top1"]) == len(recognition.dataset("flat_test", root))
    table = recognition.run_transfer("frames", ["Zero-shot", "Proj"], ["flat"], (0,), tmp_path,
                                     settings=REC, root=root, checkpoint=root / "ckpt",
                                     progress=False)
    md = (tmp_path / "recognition_frames_K2.md").read_text()
    assert "| Method | #params (M) | flat | Avg. | Order pairs |" in md
    assert table["rows"]["Proj"]["cells"]["Order pairs"]["mean"] == \
        table["rows"]["Proj"]["avg"]["order_pairs"]["mean"]
    base_novel = recognition.evaluate_base_novel(model, recognition.dataset("flat_test", root),
                                                 list(rendered.CLASSES[:12]),
                                                 list(rendered.CLASSES[12:]))
    assert set(base_novel) == {"base", "novel", "HM"}


def test_bad_task_arguments_raise(tiny):
    root, model = tiny
    with pytest.raises(ValueError, match="unknown domain"):
        retrieval.run_one(model, "Full", "mars", 0, RET, root)
    with pytest.raises(ValueError, match="unknown row"):
        retrieval.jobs("frames", ["Bogus"], ["flat"], [0])
    with pytest.raises(ValueError, match="temporal must be one of"):
        recognition.jobs("3d", ["Full"], ["flat"], [0])
    with pytest.raises(ValueError, match="shots must be one of"):
        recognition.TransferSettings(shots=3)
    with pytest.raises(ValueError, match="batch_size"):
        retrieval.TransferSettings(batch_size=1)
    with pytest.raises(ValueError, match="template"):
        recognition.prompts(["a"], "no slot")


# -- the shipped pretrained video CLIPs -------------------------------------------------------------
SHIPPED = {t: retrieval.default_checkpoint(t) for t in retrieval.TEMPORAL}
needs_shipped = pytest.mark.skipif(not all((p / "config.json").is_file() for p in SHIPPED.values()),
                                   reason="shipped video CLIP checkpoints not present")


@needs_shipped
@pytest.mark.parametrize("temporal", retrieval.TEMPORAL)
def test_shipped_video_clip_zero_shot_is_well_above_chance(temporal):
    model = retrieval.load(temporal)
    size = sum(f.stat().st_size for f in SHIPPED[temporal].iterdir())
    assert size < 6e6  # the MiniLM text tower is a reference, not stored
    # mean over the three target domains (each a style shift the pretraining never saw)
    r1 = np.mean([retrieval.evaluate(model, retrieval.dataset(f"{d}_test"))["t2v_R1"]
                  for d in retrieval.DOMAINS])
    assert r1 > 10 * 100 / 192  # chance: 1 / 192 (measured here: 10.1 frames, 12.7 st)
    top1 = np.mean([recognition.evaluate(model, recognition.dataset(f"{d}_test"))["top1"]
                    for d in recognition.DOMAINS])
    assert top1 > 2 * 100 / 24  # chance: 1 / 24 (measured here: 11.3 frames, 12.4 st)


@needs_shipped
def test_frame_bag_cannot_tell_a_video_from_its_reversal():
    """The frames (meanP) backbone gives a video and its frames reversed the same embedding (up
    to float rounding), so on the order-only pairs it can only be at chance."""
    model = retrieval.load("frames")
    test = recognition.dataset("flat_test")
    idx = [i for i, lab in enumerate(test.labels) if test.classes[lab] in recognition.PAIRS][:16]
    frames = retrieval.frames_tensor(test, idx)
    with torch.no_grad():
        fwd = model.encode_video(frames)
        rev = model.encode_video(frames.flip(1))
    assert torch.allclose(fwd, rev, atol=1e-5)
    acc = recognition.evaluate(model, test)
    assert 30 <= acc["order_pairs"] <= 70  # 144 videos: chance (50) within a wide margin
