"""The synthetic How2-like corpus: determinism, step order, clip features, tokenizer, loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from readpvla.data import how2
from readpvla.data.how2 import (
    EOS_ID,
    LOW_RESOURCE,
    PAD_ID,
    SOURCE_TASKS,
    TARGET_TASKS,
    How2Collator,
    How2Config,
    _world,
    decode,
    generate_split,
    load_split,
    load_tokenizer,
    train_tokenizer,
    write_split,
)

ROOT = Path(__file__).resolve().parents[1] / "data_samples" / "how2"


def test_same_seed_same_data_other_seed_other_data():
    a, b = generate_split("source", 5, seed=3), generate_split("source", 5, seed=3)
    c = generate_split("source", 5, seed=4)
    assert [s.transcript for s in a] == [s.transcript for s in b]
    assert all(np.array_equal(x.video, y.video) for x, y in zip(a, b))
    assert [s.transcript for s in a] != [s.transcript for s in c]


def test_summary_lists_the_steps_in_the_order_they_happen():
    for domain in ("source", "target"):
        for s in generate_split(domain, 30, seed=1):
            positions = [s.summary.index(step) for step in s.steps]
            assert positions == sorted(positions), (s.summary, s.steps)
            assert s.task in s.summary


def test_step_order_varies_so_order_must_be_read():
    # the same task appears with its steps in different orders
    orders: dict[str, set] = {}
    for s in generate_split("source", 300, seed=2):
        orders.setdefault(s.task, set()).add(tuple(s.steps))
    assert max(len(v) for v in orders.values()) > 5


def test_clip_features_follow_the_latent_steps_in_order():
    cfg = How2Config()
    world = _world(cfg)
    s = generate_split("target", 1, seed=5, config=cfg)[0]
    protos = np.stack([world[f"v:{st.split(' the ')[0]}"] + world[f"o:{st.split(' the ')[1]}"]
                       for st in s.steps])  # (K, D)
    nearest = np.argmax(s.video @ protos.T - 0.5 * (protos**2).sum(1), axis=1)  # (T,)
    head = s.video @ world["head"]
    step_clips = nearest[head < 0.5 * (world["head"] ** 2).sum()]  # drop talking-head clips
    # the nearest step index never goes backwards along time and visits every step
    assert np.all(np.diff(step_clips) >= 0) and set(step_clips) == set(range(len(s.steps)))


def test_clip_noise_is_temporally_smooth():
    s = generate_split("source", 40, seed=6)
    d1 = np.mean([np.linalg.norm(np.diff(x.video, axis=0), axis=1).mean() for x in s])
    shuffled = np.mean([np.linalg.norm(np.diff(x.video[np.random.default_rng(0).permutation(len(x.video))],
                                                axis=0), axis=1).mean() for x in s])
    assert d1 < 0.8 * shuffled


def test_target_tasks_are_new_but_made_of_source_words():
    src_titles = {t for t, _, _ in SOURCE_TASKS}
    src_steps = {st for _, _, steps in SOURCE_TASKS for st in steps}
    src_words = {w for _, _, steps in SOURCE_TASKS for st in steps for w in st}
    for title, _, steps in TARGET_TASKS:
        assert title not in src_titles
        assert all(w in src_words for st in steps for w in st), title
        assert any(st not in src_steps for st in steps), title  # new combinations


def test_every_target_word_occurs_in_the_source_corpus():
    # the pretrained model has read (and written) every word the transfer needs
    src = {w for s in generate_split("source", 3000, 0) for w in f"{s.transcript} {s.summary}".split()}
    tgt = {w for s in generate_split("target", 300, 1) for w in f"{s.transcript} {s.summary}".split()}
    assert tgt <= src, sorted(tgt - src)


def test_some_step_sentences_are_vague_so_the_video_matters():
    s = generate_split("source", 200, seed=8)
    missing = sum(step not in x.transcript for x in s for step in x.steps)
    assert missing > 0.2 * sum(len(x.steps) for x in s)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="domain"):
        generate_split("other", 3, 0)
    with pytest.raises(ValueError, match="positive"):
        generate_split("source", 0, 0)
    with pytest.raises(ValueError, match="min_steps"):
        generate_split("source", 2, 0, How2Config(min_steps=4, max_steps=3))


def test_tokenizer_roundtrip_specials_and_eos():
    texts = [s.transcript for s in generate_split("source", 50, 0)]
    tok = train_tokenizer(texts, vocab_size=300)
    enc = tok.encode(texts[0])
    assert enc.ids[-1] == EOS_ID and tok.token_to_id("<pad>") == PAD_ID
    assert decode(tok, enc.ids) == texts[0]


def test_shipped_tokenizer_covers_the_corpus():
    tok = load_tokenizer(ROOT)
    s = generate_split("source", 20, 11) + generate_split("target", 20, 12)
    for x in s:
        for text in (x.transcript, x.summary):
            assert decode(tok, tok.encode(text).ids) == text
            assert tok.token_to_id("<unk>") not in tok.encode(text).ids


def test_shipped_splits_load_with_documented_sizes():
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert total < 10 * 2**20
    for split, (n, _) in LOW_RESOURCE.items():
        samples = load_split(ROOT, split)
        assert len(samples) == n
        assert samples[0].video.dtype == np.float32 and samples[0].video.shape[1] == 48
        assert all(s.domain and " : first " in s.summary and " , finally " in s.summary for s in samples)


def test_write_then_load_roundtrip(tmp_path):
    s = generate_split("target", 4, 0)
    write_split(s, tmp_path, "x")
    back = load_split(tmp_path, "x")
    assert [b.transcript for b in back] == [a.transcript for a in s]
    assert [b.steps for b in back] == [a.steps for a in s]
    assert all(np.allclose(a.video, b.video, atol=1e-2) for a, b in zip(s, back))  # float16 files


def test_features_from_a_folder_of_npy(tmp_path):
    s = generate_split("target", 2, 0)
    write_split(s, tmp_path, "x")
    (tmp_path / "x_video.npz").unlink()
    (tmp_path / "x_video").mkdir()
    for x in s:
        np.save(tmp_path / "x_video" / f"{x.vid}.npy", x.video)
    assert np.array_equal(load_split(tmp_path, "x")[1].video, s[1].video)


def _write_lines(tmp_path, lines, feats=None):
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    np.savez(tmp_path / "x_video.npz", **(feats or {"a": np.zeros((3, 4), np.float32)}))


@pytest.mark.parametrize("line, feats, message", [
    ("{not json", None, r"x\.jsonl:2: not valid JSON"),
    ('{"vid": "a", "transcript": "t"}', None, r"x\.jsonl:2: field 'summary'"),
    ('{"vid": "b", "transcript": "t", "summary": "s"}', None, r"x\.jsonl:2: vid 'b' has no features"),
    ('[1, 2]', None, r"x\.jsonl:2: expected a JSON object"),
    ('{"vid": "c", "transcript": "t", "summary": "s"}',
     {"a": np.zeros((3, 4), np.float32), "c": np.zeros((3, 5), np.float32)}, r"x\.jsonl:2: .*D=5"),
    ('{"vid": "c", "transcript": "t", "summary": "s"}',
     {"a": np.zeros((3, 4), np.float32), "c": np.full((3, 4), np.nan, np.float32)},
     r"x\.jsonl:2: features of 'c' must be a finite"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, feats, message):
    good = json.dumps({"vid": "a", "transcript": "t", "summary": "s"})
    _write_lines(tmp_path, [good, line], feats)
    with pytest.raises(ValueError, match=message):
        load_split(tmp_path, "x")


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such split"):
        load_split(tmp_path, "nope")
    (tmp_path / "y.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="no clip features"):
        load_split(tmp_path, "y")


def test_collate_pads_masks_and_labels():
    tok = load_tokenizer(ROOT)
    s = generate_split("target", 3, 0)
    b = How2Collator(tok, max_source_len=20, max_clips=10)(s)
    assert b["input_ids"].shape[0] == 3 and b["input_ids"].shape[1] <= 20
    assert (b["input_ids"][b["attention_mask"] == 0] == PAD_ID).all()
    for i in range(3):  # every row ends with </s> (truncated rows too)
        n = int(b["attention_mask"][i].sum())
        assert b["input_ids"][i, n - 1] == EOS_ID
        m = int((b["labels"][i] != -100).sum())
        assert decode(tok, b["labels"][i, :m]) == s[i].summary
    assert b["video"].shape[1] <= 10 and b["video_mask"].dtype == torch.bool
    lengths = [min(len(x.video), 10) for x in s]
    assert b["video_mask"].sum(1).tolist() == lengths
    with pytest.raises(ValueError, match="empty"):
        How2Collator(tok)([])


def test_recipe_mentions_the_regeneration_command():
    text = (ROOT / "RECIPE.md").read_text()
    assert re.search(r"python -m readpvla\.data\.how2", text)
    assert re.search(r"pretrain", text)


# -- the hard target (issue 15: the target split saturates) ---------------------------------------
def _modal_wording(x) -> str:
    """The right task and steps in the most common wording: what a model that knows the content
    but cannot guess the paraphrase should write."""
    mid = "".join(f" , then {p}" for p in x.steps[1:-1])
    return f"learn how to {x.task} : first {x.steps[0]}{mid} , finally {x.steps[-1]} ."


def test_hard_target_paraphrases_its_summaries_and_caps_rouge():
    from readpvla.metrics.rouge import rouge_scores

    hard = generate_split("target_hard", 300, 5)
    openings = {x.summary.split(" : ")[0].replace(x.task, "T") for x in hard}
    assert openings == {o.format(task="T").rstrip(" :") for o in how2.HARD_OPENINGS}
    # the content is the target's: the steps in the order they happen, after the task
    for x in hard:
        pos = [x.summary.index(step) for step in x.steps]
        assert pos == sorted(pos) and x.task in x.summary
    # knowing the content exactly is not enough for a saturating score: the wording is drawn
    # at random per video (the issue asks that no method exceed ~85 ROUGE-1)
    oracle = rouge_scores([_modal_wording(x) for x in hard], [x.summary for x in hard])
    assert 70 < oracle["rouge1"] < 85
    target = generate_split("target", 300, 5)
    assert rouge_scores([_modal_wording(x) for x in target],
                        [x.summary for x in target])["rouge1"] > 99.9


def test_hard_target_leaves_more_steps_to_the_video():
    def unnamed(xs):
        return sum(step not in x.transcript for x in xs for step in x.steps) / sum(
            len(x.steps) for x in xs)

    assert unnamed(generate_split("target_hard", 300, 6)) > unnamed(
        generate_split("target", 300, 6)) + 0.15


def test_hard_target_words_are_in_the_shipped_tokenizer():
    tok = load_tokenizer(ROOT / "tokenizer.json")
    src = {w for s in generate_split("source", 3000, 0) for w in f"{s.transcript} {s.summary}".split()}
    for x in generate_split("target_hard", 200, 7):
        assert set(f"{x.transcript} {x.summary}".split()) <= src
        for text in (x.transcript, x.summary):
            assert decode(tok, tok.encode(text).ids) == text


def test_shipped_hard_splits_are_the_generator_s():
    for split, (n, seed) in how2.HARD.items():
        if not (ROOT / f"hard_{split}.jsonl").is_file():
            pytest.skip("no shipped hard splits")
        shipped = load_split(ROOT, f"hard_{split}")
        fresh = generate_split("target_hard", n, seed, prefix=f"hard_{split}")
        assert len(shipped) == n
        assert [s.summary for s in shipped] == [s.summary for s in fresh]
        assert [s.transcript for s in shipped] == [s.transcript for s in fresh]
        assert all(np.allclose(a.video, b.video, atol=1e-2) for a, b in zip(shipped, fresh))
