"""MSTA's class descriptions and its consistency constraint L_CC.

The ETL4Video description format loads, round-trips and names the file, key and line of anything
malformed; the rendered benchmark's LLM stand-in is seeded, nested and hallucinates only past the
first two descriptions (so more descriptions carry more noise); L_CC is 0 when a class prompt
points along both description means; its targets come from the frozen pretrained branch, which
training never changes; a row asks for L_CC and one tiny run trains with it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import readpvla as rp
from readpvla.backbones.video_clip import VideoCLIP
from readpvla.data import rendered
from readpvla.tasks.recognition import descriptions as desc
from readpvla.tasks.recognition.loss import (
    Consistency,
    consistency_loss,
    consistency_targets,
    recognition_loss,
    row_loss,
)
from readpvla.tasks.recognition.rows import MSTA_HPARAMS, MSTA_ROWS
from readpvla.train import fit

DATA = Path(__file__).parent / "data" / "etl4video_toy"
TOY = ["brush hair", "cartwheel", "pullup"]
CLASSES = [a.name for a in rendered.ACTIONS]


# -- ETL4Video files -------------------------------------------------------------------------------
def test_the_etl4video_files_load():
    d = desc.load_etl4video(DATA, "toy", 2, TOY)
    assert d.classes == tuple(TOY) and d.n == 2
    assert d.of("cartwheel")["spatial"][1] == "A video about arms and legs spread like spokes."
    assert d.of("pullup")["temporal"][0].startswith("A videos of pullup")  # kept as written
    assert d.hallucinated_share() == 0.0
    with pytest.raises(ValueError, match="no descriptions for class 'dive'"):
        d.of("dive")


def test_write_and_load_round_trip(tmp_path):
    d = desc.generate(CLASSES[:5], n=4, hallucination=0.5)
    s_path, t_path = desc.write_etl4video(tmp_path, "rendered", d)
    assert s_path.name == "4_s_description_rendered.json"
    assert t_path.name == "4_t_description_rendered.json"
    assert list(json.loads(s_path.read_text())) == ["0", "1", "2", "3", "4"]
    back = desc.load_etl4video(tmp_path, "rendered", 4, CLASSES[:5])
    assert back.spatial == d.spatial and back.temporal == d.temporal


def _write(folder: Path, kind: str, text: str) -> Path:
    path = desc.etl4video_path(folder, "bad", 2, kind)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = '{\n    "0": ["a", "b"],\n    "1": ["c", "d"]\n}\n'


@pytest.mark.parametrize("text, match", [
    ('{\n    "0": ["a", "b"],\n    "1": ["c", "d"\n}\n', r"not valid JSON \(line 4"),
    ('["a", "b"]', "expected a JSON object"),
    ('{\n    "0": ["a", "b"],\n    "x": ["c", "d"]\n}\n', r"key 'x' \(line 3\).*class indices"),
    ('{\n    "0": ["a", "b"],\n    "01": ["c", "d"]\n}\n', r"key '01' \(line 3\)"),
    ('{\n    "0": ["a", "b"],\n    "1": ["c", "d"],\n    "2": ["e", "f"]\n}\n',
     r"key '2' \(line 4\): class index out of range"),
    ('{\n    "0": ["a", "b"]\n}\n', r"no descriptions for class index\(es\) \[1\]"),
    ('{\n    "0": ["a", "b"],\n    "1": ["c"]\n}\n', r"key '1' \(line 3\): expected a list of 2 "
                                                     r"descriptions, got 1 items"),
    ('{\n    "0": "a",\n    "1": ["c", "d"]\n}\n', r"key '0' \(line 2\).*got str"),
    ('{\n    "0": ["a", "  "],\n    "1": ["c", "d"]\n}\n', r"key '0'.*description 1 must be"),
    ('{\n    "0": ["a", 3],\n    "1": ["c", "d"]\n}\n', r"description 1 must be a non-empty"),
    ('{\n    "0": ["a", "b"],\n    "1": ["c", "d"],\n    "1": ["e", "f"]\n}\n',
     r"key '1' appears twice \(line 3\)"),
])
@pytest.mark.parametrize("kind", ["spatial", "temporal"])
def test_malformed_files_name_file_key_and_line(tmp_path, text, match, kind):
    other = "temporal" if kind == "spatial" else "spatial"
    _write(tmp_path, other, GOOD)
    path = _write(tmp_path, kind, text)
    with pytest.raises(ValueError, match=match) as e:
        desc.load_etl4video(tmp_path, "bad", 2, ["a", "b"])
    assert str(path) in str(e.value)


def test_a_missing_file_is_named(tmp_path):
    _write(tmp_path, "spatial", GOOD)
    with pytest.raises(FileNotFoundError, match="2_t_description_bad.json"):
        desc.load_etl4video(tmp_path, "bad", 2, ["a", "b"])
    with pytest.raises(ValueError, match="n must be"):
        desc.load_etl4video(tmp_path, "bad", 0, ["a", "b"])


# -- the rendered benchmark's LLM stand-in ---------------------------------------------------------
def test_the_generator_is_seeded_nested_and_per_class():
    a = desc.generate(CLASSES, n=8, hallucination=0.3, seed=4)
    assert a == desc.generate(CLASSES, n=8, hallucination=0.3, seed=4)
    assert a.spatial != desc.generate(CLASSES, n=8, hallucination=0.3, seed=5).spatial
    small = desc.generate(CLASSES, n=2, hallucination=0.3, seed=4)
    assert all(s == full[:2] for s, full in zip(small.spatial, a.spatial))  # N = 2 in N = 8
    alone = desc.generate(CLASSES[3:4], n=8, hallucination=0.3, seed=4)
    assert alone.spatial[0] == a.spatial[3] and alone.temporal[0] == a.temporal[3]


def test_without_hallucination_it_says_what_the_scripts_say():
    d = desc.generate(CLASSES, n=8)
    truth = rendered.descriptions(8)
    for c in CLASSES:
        got = d.of(c)
        assert sorted(got["spatial"]) == sorted(truth[c]["spatial"])
        assert sorted(got["temporal"]) == sorted(truth[c]["temporal"])
        assert got["spatial"][0].startswith("A video about")
        assert " involves the following step: " in got["temporal"][0]


def test_more_descriptions_carry_more_hallucination():
    shares = [desc.generate(CLASSES, n=n, hallucination=0.6).hallucinated_share()
              for n in (1, 2, 4, 8)]
    assert shares[0] == shares[1] == 0.0  # the first two are always right
    assert 0 < shares[2] < shares[3]      # expected 0.6 * 2/4 = 0.3 and 0.6 * 6/8 = 0.45
    assert abs(shares[3] - 0.45) < 0.15


def test_hallucinations_are_the_wrong_object_or_the_wrong_order():
    d = desc.generate(CLASSES, n=8, hallucination=1.0)
    for i, c in enumerate(CLASSES):
        act = rendered.action(c)
        right_s = {desc._spatial(v, s) for v in act.visible for s in (0, 1)}
        right_t = {desc._temporal(c, st, s) for st in act.steps for s in (0, 1)}
        backwards = {desc._temporal(c, st[::-1], s) for st in act.steps for s in (0, 1)}
        for k in range(8):
            wrong_s, wrong_t = d.hallucinated["spatial"][i][k], d.hallucinated["temporal"][i][k]
            assert wrong_s == (k >= 2) and wrong_t == (k >= 2)
            assert (d.spatial[i][k] in right_s) != wrong_s
            assert (d.temporal[i][k] in backwards if wrong_t else d.temporal[i][k] in right_t)


@pytest.mark.parametrize("kw, match", [
    ({"n": 0}, "n must be"), ({"n": 9}, "n must be"), ({"hallucination": 1.5}, "hallucination"),
    ({"hallucination": "x"}, "hallucination"), ({"reliable": -1}, "reliable"),
])
def test_generator_arguments_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        desc.generate(CLASSES[:2], **kw)
    with pytest.raises(ValueError, match="unknown"):
        desc.generate(["juggling"])


# -- L_CC ------------------------------------------------------------------------------------------
def test_consistency_loss_is_zero_on_both_means_and_two_when_orthogonal():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(5, 8, generator=g)
    assert float(consistency_loss(d, d, 3 * d)) == pytest.approx(0.0, abs=1e-6)
    w = torch.zeros(5, 8)
    w[:, 0] = 1.0
    e = torch.zeros(5, 8)
    e[:, 1] = 1.0
    assert float(consistency_loss(w, e, e)) == pytest.approx(2.0)
    assert float(consistency_loss(w, -w, -w)) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="one shape"):
        consistency_loss(w, e[:4], e)


@pytest.fixture(scope="module")
def minilm_backbone():
    return VideoCLIP.tiny(text="minilm").eval()


def _batches(n_classes: int, steps: int = 2):
    g = torch.Generator().manual_seed(3)
    return [{"frames": torch.randn(4, 4, 3, 16, 16, generator=g),
             "labels": torch.randint(0, n_classes, (4,), generator=g)} for _ in range(steps)]


def test_the_frozen_description_branch_never_changes(minilm_backbone):
    classes = CLASSES[:3]
    d = desc.generate(classes, n=2)
    targets = consistency_targets(minilm_backbone, d, classes)
    assert targets.d_s.shape == targets.d_t.shape == (3, 16) and not targets.d_s.requires_grad
    frozen = {n: p.detach().clone() for n, p in minilm_backbone.named_parameters()}
    model = rp.peft.apply(copy.deepcopy(minilm_backbone), rp.peft.MSTAConfig())
    with pytest.raises(ValueError, match="pretrained backbone"):
        consistency_targets(model, d, classes)
    tokens = model.tokenize(rp.tasks.recognition.prompts(classes))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for batch in _batches(3):
        opt.zero_grad()
        loss, logs = recognition_loss(model, batch, tokens, targets)
        loss.backward()
        opt.step()
    assert "cc" in logs and logs["cc"] > 0
    again = consistency_targets(minilm_backbone, d, classes)
    assert torch.equal(again.d_s, targets.d_s) and torch.equal(again.d_t, targets.d_t)
    for n, p in minilm_backbone.named_parameters():
        assert torch.equal(p, frozen[n]), n
    # the mean of unit embeddings of the class's own descriptions
    tok = minilm_backbone.tokenize(d.of(classes[1])["temporal"])
    e = minilm_backbone.encode_text(tok["input_ids"], tok["attention_mask"])
    assert torch.allclose(targets.d_t[1], e.mean(0), atol=1e-6)


def test_l_cc_alone_reaches_the_text_adapters_through_the_shared_layer(minilm_backbone):
    classes = CLASSES[:3]
    targets = consistency_targets(minilm_backbone, desc.generate(classes), classes)
    model = rp.peft.apply(copy.deepcopy(minilm_backbone), rp.peft.MSTAConfig())
    tokens = model.tokenize(rp.tasks.recognition.prompts(classes))
    w = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    consistency_loss(w, targets.d_s, targets.d_t).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert "readpvla_msta.shared.0.weight" in grads and "readpvla_msta.text_up.1.weight" in grads
    assert not any(".video_" in n for n in grads)


def test_a_row_asks_for_l_cc_and_one_tiny_run_trains_with_it(minilm_backbone):
    classes = CLASSES[:3]
    plain, with_cc = MSTA_ROWS["MSTA"], MSTA_ROWS["MSTA + L_CC"]
    assert plain.consistency is None and with_cc.consistency == Consistency(alpha=1.0, n=2)
    assert MSTA_HPARAMS["msta"] == {"lr": 1e-3, "weight_decay": 1e-3}
    model = rp.peft.apply(copy.deepcopy(minilm_backbone), with_cc.config())
    tokens = model.tokenize(rp.tasks.recognition.prompts(classes))
    loss_fn = row_loss(with_cc, minilm_backbone, classes, tokens)
    logs = []
    res = fit(model, loss_fn, _batches(3), epochs=1, lr=1e-3, weight_decay=1e-3, seed=0,
              progress=False, log=logs.append)
    assert res.epochs_run == 1
    _, step_logs = loss_fn(model, _batches(3, 1)[0])
    assert {"ce", "cc", "acc"} <= set(step_logs) and np.isfinite(step_logs["cc"])
    _, plain_logs = row_loss(plain, minilm_backbone, classes, tokens)(model, _batches(3, 1)[0])
    assert "cc" not in plain_logs


def test_consistency_requests_are_checked(tmp_path):
    for kw, match in (({"alpha": 0.0}, "alpha"), ({"alpha": float("nan")}, "alpha"),
                      ({"n": 0}, "n must be"), ({"folder": "x"}, "go together"),
                      ({"hallucination": 2.0}, "hallucination")):
        with pytest.raises(ValueError, match=match):
            Consistency(**kw)
    request = Consistency(folder=str(DATA), dataset="toy")
    assert request.descriptions(TOY).of("brush hair")["spatial"][0].startswith("A video about")
