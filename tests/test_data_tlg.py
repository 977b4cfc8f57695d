"""readpvla.data: the QVHighlights-format loader, collate, and the synthetic TLG generator."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from readpvla.data import (
    TLGSample,
    collate_tlg,
    generate_synthetic_tlg,
    load_features,
    load_tlg,
    read_annotations,
    save_npz,
)
from readpvla.data.synthetic_tlg import (
    SyntheticTLGConfig,
    domain_style,
    load_recipe,
    split_digest,
    text_to_video_space,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data_samples" / "tlg"
QVH_VAL = REPO.parent / "shared" / "reference" / "qvhighlights" / "highlight_val_release.jsonl"
TINY = dict(n_source=6, n_source_val=3, domains=("dog", "gym"), n_train=9, n_val=3, n_test=6,
            d_video=32, p_repeat=0.9)
TINY_SPLITS = "source_val,dog_train,dog_test,gym_val"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _latent(root: Path, split: str) -> dict[str, dict]:
    lines = (root / "latent" / f"{split}.jsonl").read_text().splitlines()
    return {v["vid"]: v for v in map(json.loads, lines)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_synthetic_tlg(tmp_path_factory.mktemp("tiny"), seed=0, splits=TINY_SPLITS,
                                  **TINY)


# ------------------------------------------------------------------------------------------------
# loader
# ------------------------------------------------------------------------------------------------
def test_loader_round_trip(tiny):
    from readpvla.backbones.text_encoder import encode_tokens

    ds = load_tlg(tiny, "dog_train")
    lines = [json.loads(x) for x in (tiny / "annotations" / "dog_train.jsonl").read_text()
             .splitlines()]
    assert len(ds) == len(lines) == 9 and ds.has_labels
    for s, rec in zip(ds, lines):
        assert (s.qid, s.vid, s.query, s.domain) == (rec["qid"], rec["vid"], rec["query"], "dog")
        assert s.video.dtype == np.float32 and s.text.dtype == np.float32
        assert s.video.shape == (math.ceil(rec["duration"] / 2), 32)
        assert s.relevant_windows == rec["relevant_windows"]
        assert s.saliency_scores == rec["saliency_scores"]
        with np.load(tiny / "video_features" / f"{s.vid}.npz", allow_pickle=False) as z:
            assert z["features"].dtype == np.float16
            np.testing.assert_array_equal(s.video, z["features"].astype(np.float32))
    # the stored query features are MiniLM's token states of the query text (float16-rounded)
    ref = encode_tokens([ds[0].query, ds[1].query])
    for s, r in zip([ds[0], ds[1]], ref):
        assert s.text.shape == r.shape and r.shape[1] == 384
        np.testing.assert_allclose(s.text, r, atol=2e-2 * np.abs(r).max())


def _sample(qid, duration, n_v, n_l, windows=None, ids=None, scores=None, d_v=2, d_t=3):
    video = np.arange(n_v * d_v, dtype=np.float32).reshape(n_v, d_v) + 1
    text = -np.arange(n_l * d_t, dtype=np.float32).reshape(n_l, d_t) - 1
    return TLGSample(qid=qid, vid=f"v{qid}", query=f"q{qid}", duration=duration, domain=None,
                     video=video, text=text, relevant_windows=windows, relevant_clip_ids=ids,
                     saliency_scores=scores)


def test_collate_by_hand():
    a = _sample(1, 6.0, 3, 2, [[2, 6]], [1, 2], [[4, 4, 4], [1, 2, 3]])
    b = _sample(2, 9.0, 5, 4, [[0, 4], [6, 8]], [0, 1, 3], [[0, 0, 0], [2, 2, 2], [3, 3, 3]])
    batch = collate_tlg([a, b])
    assert batch.video.shape == (2, 5, 2) and batch.text.shape == (2, 4, 3)
    assert batch.video_mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert batch.text_mask.tolist() == [[True, True, False, False], [True] * 4]
    assert torch.equal(batch.video[0, :3], torch.from_numpy(a.video))
    assert batch.video[0, 3:].abs().sum() == 0 and batch.text[0, 2:].abs().sum() == 0
    # mean of the 3 scores / 4 on relevant clips, 0 elsewhere and at padding
    torch.testing.assert_close(batch.saliency, torch.tensor([[0, 1.0, 0.5, 0, 0],
                                                             [0, 0.5, 0, 0.75, 0]]))
    # first window as (center, width) / duration
    torch.testing.assert_close(batch.span, torch.tensor([[4 / 6, 4 / 6], [2 / 9, 4 / 9]]))
    assert [w.tolist() for w in batch.windows] == [[[2, 6]], [[0, 4], [6, 8]]]
    assert batch.duration.tolist() == [6.0, 9.0] and batch.qid == [1, 2]
    assert batch.vid == ["v1", "v2"] and batch.query == ["q1", "q2"] and len(batch) == 2
    moved = batch.to("meta")
    assert moved.video.device.type == "meta" and moved.windows[1].device.type == "meta"
    assert moved.saliency.device.type == "meta" and batch.video.device.type == "cpu"


def test_collate_unlabelled_and_errors():
    batch = collate_tlg([_sample(1, 6.0, 3, 2), _sample(2, 4.0, 2, 1)])
    assert batch.saliency is None and batch.windows is None and batch.span is None
    with pytest.raises(ValueError, match="mixes samples"):
        collate_tlg([_sample(1, 6.0, 3, 2), _sample(2, 6.0, 3, 2, [[0, 2]], [0], [[1, 1, 1]])])
    with pytest.raises(ValueError, match="empty"):
        collate_tlg([])
    with pytest.raises(ValueError, match="feature sizes"):
        collate_tlg([_sample(1, 6.0, 3, 2), _sample(2, 6.0, 3, 2, d_v=4)])
    with pytest.raises(ValueError, match="needs 3"):
        collate_tlg([_sample(1, 6.0, 5, 2)])


GOOD = {"qid": 1, "query": "a dog runs", "duration": 10, "vid": "v1",
        "relevant_windows": [[2, 6]], "relevant_clip_ids": [1, 2],
        "saliency_scores": [[1, 2, 3], [4, 4, 4]]}
BAD_LINES = {
    "bad JSON": '{"qid": 2, "query": ',
    "missing qid": {k: v for k, v in GOOD.items() if k != "qid"},
    "missing query": {k: v for k, v in GOOD.items() if k != "query"},
    "missing duration": {k: v for k, v in GOOD.items() if k != "duration"},
    "missing vid": {k: v for k, v in GOOD.items() if k != "vid"},
    "end < start": {**GOOD, "relevant_windows": [[6, 2]]},
    "window past duration": {**GOOD, "relevant_windows": [[4, 12]]},
    "negative start": {**GOOD, "relevant_windows": [[-2, 4]]},
    "clip id out of range": {**GOOD, "relevant_clip_ids": [1, 5]},
    "negative clip id": {**GOOD, "relevant_clip_ids": [-1, 2]},
    "saliency row of 2": {**GOOD, "saliency_scores": [[1, 2], [4, 4, 4]]},
    "saliency score 5": {**GOOD, "saliency_scores": [[1, 2, 5], [4, 4, 4]]},
    "saliency not int": {**GOOD, "saliency_scores": [[1, 2.5, 3], [4, 4, 4]]},
    "length mismatch": {**GOOD, "saliency_scores": [[1, 2, 3]]},
    "duplicate qid": {**GOOD, "qid": 0},
    "non-positive duration": {**GOOD, "duration": 0},
    "vid with a path": {**GOOD, "vid": "../v1"},
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_malformed_line_names_file_and_line(tmp_path, case):
    bad = BAD_LINES[case]
    ann = tmp_path / "annotations" / "val.jsonl"
    ann.parent.mkdir()
    first = json.dumps({**GOOD, "qid": 0})
    ann.write_text(first + "\n\n" + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n")
    with pytest.raises(ValueError, match=rf"{ann}:3: "):
        read_annotations(ann)
    with pytest.raises(ValueError, match=rf"{ann}:3: "):
        load_tlg(tmp_path, "val")


def test_good_lines_and_test_split_without_labels(tmp_path):
    ann = tmp_path / "a.jsonl"
    unlabelled = {k: GOOD[k] for k in ("qid", "query", "duration", "vid")}
    ann.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "qid": 2}) + "\n")
    recs = read_annotations(ann)
    assert [r["qid"] for r in recs] == [1, 2] and recs[1]["relevant_windows"] == [[2, 6]]
    # a test split has no labels on any line (a file mixing the two is an error, see
    # tests/test_data_errors.py)
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps(unlabelled) + "\n" + json.dumps({**unlabelled, "qid": 2}) + "\n")
    recs = read_annotations(test)
    assert [r["qid"] for r in recs] == [1, 2] and "relevant_windows" not in recs[1]


@pytest.mark.skipif(not QVH_VAL.is_file(), reason="shared/reference not present")
def test_real_qvhighlights_annotations_validate():
    recs = read_annotations(QVH_VAL)
    assert len(recs) == 1550 and max(len(r["relevant_windows"]) for r in recs) > 1


def _mini_root(tmp_path: Path, video: np.ndarray, duration: float = 10.0) -> Path:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "video_features").mkdir()
    (tmp_path / "text_features").mkdir()
    rec = {**GOOD, "duration": duration}
    (tmp_path / "annotations" / "val.jsonl").write_text(json.dumps(rec) + "\n")
    save_npz(tmp_path / "video_features" / "v1.npz", features=video)
    save_npz(tmp_path / "text_features" / "qid1.npz",
             last_hidden_state=np.ones((4, 3), np.float16))
    return tmp_path


def test_missing_feature_file_names_path(tmp_path):
    root = _mini_root(tmp_path, np.ones((5, 2), np.float32))
    (root / "video_features" / "v1.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"vid 'v1'.*video_features/v1\.npz"):
        load_tlg(root, "val")
    save_npz(root / "video_features" / "v1.npz", features=np.ones((5, 2), np.float32))
    (root / "text_features" / "qid1.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"qid 1.*text_features/qid1\.npz"):
        load_tlg(root, "val")
    with pytest.raises(FileNotFoundError, match="split 'nope'.*available splits: \\['val'\\]"):
        load_tlg(root, "nope")


@pytest.mark.parametrize("video, message", [
    (np.array([[1.0, np.nan]] * 5, np.float32), "NaN or inf"),
    (np.array([[1.0, np.inf]] * 5, np.float16), "NaN or inf"),
    (np.ones(5, np.float32), "rank 2"),
    (np.ones((5, 2, 1), np.float32), "rank 2"),
    (np.ones((7, 2), np.float32), "7 clips but the duration needs 5"),
    (np.ones((3, 2), np.float32), "3 clips but the duration needs 5"),
])
def test_bad_video_features_name_the_file(tmp_path, video, message):
    ds = load_tlg(_mini_root(tmp_path, video), "val")
    with pytest.raises(ValueError, match=rf"video_features/v1\.npz.*{message}"):
        ds[0]


def test_clip_count_tolerance_of_one(tmp_path):
    path = tmp_path / "f.npz"
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    save_npz(path, features=rows)
    np.testing.assert_array_equal(load_features(path, "features", expected_rows=5), rows[:5])
    padded = load_features(path, "features", expected_rows=7)
    np.testing.assert_array_equal(padded, np.concatenate([rows, rows[-1:]]))
    with pytest.raises(ValueError, match="no array 'last_hidden_state'"):
        load_features(path, "last_hidden_state")
    np.save(tmp_path / "bare.npy", rows)
    (tmp_path / "bare.npy").rename(tmp_path / "bare.npz")
    with pytest.raises(ValueError, match=r"bare\.npz: expected an \.npz archive"):
        load_features(tmp_path / "bare.npz", "features")
    np.savez(tmp_path / "obj.npz", features=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: 'features' cannot be loaded"):
        load_features(tmp_path / "obj.npz", "features")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz: cannot be read"):
        load_features(tmp_path / "junk.npz", "features")


def test_save_npz_is_byte_deterministic_and_refuses_objects(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float16)
    a, b = save_npz(tmp_path / "a.npz", features=x), save_npz(tmp_path / "b.npz", features=x)
    assert a.read_bytes() == b.read_bytes()
    with np.load(a, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["features"], x)
    with pytest.raises(TypeError, match="dtype object"):
        save_npz(tmp_path / "c.npz", features=np.array([{}], dtype=object))


# ------------------------------------------------------------------------------------------------
# generator
# ------------------------------------------------------------------------------------------------
def test_generator_is_deterministic(tiny, tmp_path):
    again = generate_synthetic_tlg(tmp_path / "again", seed=0, splits=TINY_SPLITS, **TINY)
    assert _files(again) == _files(tiny)
    # writing one split alone gives the same files as writing it with the others
    alone = generate_synthetic_tlg(tmp_path / "alone", seed=0, splits="dog_test", **TINY)
    ref = _files(tiny)
    got = {k: v for k, v in _files(alone).items() if k != "recipe.json"}
    assert got and all(ref[k] == v for k, v in got.items())
    other = generate_synthetic_tlg(tmp_path / "other", seed=1, splits="dog_test", **TINY)
    assert (other / "annotations/dog_test.jsonl").read_bytes() != ref["annotations/dog_test.jsonl"]
    assert not np.array_equal(load_tlg(other, "dog_test")[0].video[:3],
                              load_tlg(tiny, "dog_test")[0].video[:3])
    with pytest.raises(ValueError, match="another recipe"):
        generate_synthetic_tlg(other, seed=2, splits="dog_test", **TINY)


def test_command_line_regenerates_from_the_recipe(tiny, tmp_path, capsys):
    from readpvla.data.synthetic_tlg import main

    main(["--recipe", str(tiny / "recipe.json"), "--out", str(tmp_path / "cli"),
          "--splits", "gym_val"])
    assert "gym_val: 3 queries" in capsys.readouterr().out
    got = _files(tmp_path / "cli")
    ref = _files(tiny)
    assert {k for k in got if k.startswith("annotations")} == {"annotations/gym_val.jsonl"}
    assert all(ref[k] == v for k, v in got.items() if k != "recipe.json")


@pytest.mark.parametrize("knobs, message", [
    ({"domains": ("cats",)}, "unknown domains"),
    ({"d_video": 500}, "d_video <= 384"),
    ({"max_events": 9}, "exceed 75 clips"),
    ({"p_repeat": 1.5}, "p_repeat"),
    ({"min_events": 2}, "partial correspondence"),
    ({"seed": -1}, "non-negative int"),
    ({"splits": "dog_tests"}, "unknown split 'dog_tests'"),
])
def test_generator_refuses_bad_settings(tmp_path, knobs, message):
    with pytest.raises(ValueError, match=message):
        generate_synthetic_tlg(tmp_path, **{"seed": 0, **knobs})
    assert not (tmp_path / "recipe.json").exists()


def test_recipe_records_everything(tiny):
    recipe = load_recipe(tiny)
    assert recipe["seed"] == 0 and recipe["config"]["d_video"] == 32
    assert list(recipe["splits"]) == ["source_val", "dog_train", "dog_test", "gym_val"]
    for split, info in recipe["splits"].items():
        assert info["sha256"] == split_digest(tiny, split)
        assert info["queries"] == len(load_tlg(tiny, split))
    cfg = {**recipe["config"], "domains": tuple(recipe["config"]["domains"])}
    assert SyntheticTLGConfig(**cfg) == SyntheticTLGConfig(**TINY)


def test_windows_and_saliency_are_valid(tiny):
    for split in ("source_val", "dog_train", "dog_test", "gym_val"):
        for rec in read_annotations(tiny / "annotations" / f"{split}.jsonl"):
            clips = []
            for st, ed in rec["relevant_windows"]:
                assert st % 2 == 0 and ed % 2 == 0 and 0 <= st < ed <= rec["duration"]
                clips += list(range(int(st) // 2, int(ed) // 2))
            assert rec["relevant_clip_ids"] == clips
            assert 1 <= len(rec["relevant_windows"]) <= 3 and rec["duration"] <= 150
            scores = np.array(rec["saliency_scores"])
            assert scores.shape == (len(clips), 3) and scores.min() >= 0 and scores.max() <= 4


def test_saliency_peaks_inside_the_event(tiny):
    middle, edge = [], []
    for rec in read_annotations(tiny / "annotations" / "dog_test.jsonl"):
        mean = np.array(rec["saliency_scores"]).mean(1)
        st, ed = rec["relevant_windows"][0]
        n = int(ed - st) // 2
        middle.append(mean[n // 2])
        edge.append((mean[0] + mean[n - 1]) / 2)
    assert np.mean(middle) > np.mean(edge) + 0.5


def _triple(ev: dict) -> tuple[str, str, str]:
    return ev["actor"], ev["action"], ev["object"]


def test_temporal_queries_need_temporal_order(tiny):
    n_temporal = 0
    for split in ("dog_train", "dog_test", "gym_val"):
        latent = _latent(tiny, split)
        ds = load_tlg(tiny, split)
        by_qid = {s.qid: s for s in ds}
        for video in latent.values():
            events = video["events"]
            for q in video["queries"]:
                if q["kind"] == "plain":
                    continue
                n_temporal += 1
                s = by_qid[q["qid"]]
                target, anchor = events[q["target"][0]], events[q["anchor"]]
                same = [e for e in events if _triple(e) == _triple(target)]
                assert len(same) >= 2                        # the action happens several times
                assert [_triple(e) for e in events].count(_triple(anchor)) == 1
                assert q["kind"] in s.query.lower() and target["action"] in s.query
                assert anchor["action"] in s.query
                if q["kind"] == "after":                     # first occurrence after the anchor
                    right = min((e for e in same if e["start"] >= anchor["end"]),
                                key=lambda e: e["start"])
                else:                                        # last occurrence before it
                    right = max((e for e in same if e["end"] <= anchor["start"]),
                                key=lambda e: e["start"])
                assert s.relevant_windows == [[2.0 * right["start"], 2.0 * right["end"]]]
                # the two occurrences really look alike in the clip features
                occ = [s.video[e["start"]:e["end"]].mean(0) for e in same[:2]]
                others = [s.video[e["start"]:e["end"]].mean(0) for e in events
                          if _triple(e) != _triple(target)]
                cos = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))  # noqa: E731
                assert cos(*occ) > max(cos(occ[0], o) for o in others)
    assert n_temporal >= 3


def test_every_video_holds_events_the_query_does_not_mention(tiny):
    for split in ("source_val", "dog_train", "dog_test", "gym_val"):
        latent = _latent(tiny, split)
        for rec in read_annotations(tiny / "annotations" / f"{split}.jsonl"):
            events = latent[rec["vid"]]["events"]
            unmentioned = [e for e in events if e["action"] not in rec["query"]]
            assert unmentioned, rec["query"]
            # and each GT window is exactly an event the query mentions
            for st, ed in rec["relevant_windows"]:
                ev = next(e for e in events if 2 * e["start"] == st and 2 * e["end"] == ed)
                assert ev["action"] in rec["query"] and ev["object"] in rec["query"]


def test_actions_are_unambiguous_within_a_domain():
    from readpvla.data.synthetic_tlg import VOCAB

    for domain in VOCAB:
        actions = set(VOCAB[domain]["action"]) | set(VOCAB["source"]["action"])
        clash = [(a, b) for a in actions for b in actions if a != b and a in b]
        assert not clash, (domain, clash)


def test_target_domains_use_their_style_and_vocabulary(tiny):
    cfg = SyntheticTLGConfig(**TINY)
    src, dog = domain_style(0, "source", cfg), domain_style(0, "dog", cfg)
    np.testing.assert_array_equal(src["R"], np.eye(32))
    np.testing.assert_allclose(dog["R"] @ dog["R"].T, np.eye(32), atol=1e-10)   # a rotation
    assert np.trace(dog["R"]) / 32 < 0.9 and np.linalg.norm(dog["offset"]) > 0
    from readpvla.data.synthetic_tlg import VOCAB

    dog_words = set(VOCAB["dog"]["action"]) | set(VOCAB["dog"]["object"])
    queries = [r["query"] for r in read_annotations(tiny / "annotations/dog_train.jsonl")]
    assert sum(any(w in q for w in dog_words) for q in queries) >= len(queries) // 2


# ------------------------------------------------------------------------------------------------
# the shipped benchmark
# ------------------------------------------------------------------------------------------------
needs_shipped = pytest.mark.skipif(not (SHIPPED / "recipe.json").is_file(),
                                   reason="data_samples/tlg not generated")


@needs_shipped
def test_shipped_benchmark_loads_and_matches_its_recipe():
    recipe = load_recipe(SHIPPED)
    names = [f"{d}_{p}" for d in recipe["config"]["domains"] for p in ("train", "val", "test")]
    assert list(recipe["splits"]) == names and len(names) == 18
    # the benchmark data (annotations, latent scripts, features); checkpoints/ and results/ sit
    # beside it and are not part of the generated benchmark
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()
               and p.relative_to(SHIPPED).parts[0] not in {"checkpoints", "results"})
    assert size < 12.5e6, f"data_samples/tlg benchmark data is {size / 1e6:.1f} MB"
    for split in names:
        ds = load_tlg(SHIPPED, split)
        assert len(ds) == {"train": 40, "val": 20, "test": 60}[split.rsplit("_", 1)[1]]
        assert recipe["splits"][split]["sha256"] == split_digest(SHIPPED, split)
    batch = collate_tlg([ds[i] for i in range(8)])
    assert batch.video.shape[2] == recipe["config"]["d_video"] and batch.text.shape[2] == 384


@needs_shipped
def test_shipped_language_video_link_is_learnable():
    """The query's pooled MiniLM feature, pushed through the generator's fixed projection, is
    closer (cosine) to the clips inside its ground-truth windows than to the clips outside."""
    recipe = load_recipe(SHIPPED)
    seed, d_video = recipe["seed"], recipe["config"]["d_video"]
    gaps = []
    for domain in recipe["config"]["domains"]:
        samples = list(load_tlg(SHIPPED, f"{domain}_test"))
        pooled = np.stack([s.text.mean(0) for s in samples])                     # (N, 384)
        # one call per domain: the map is row-wise, and each call builds the projection anew
        zs = text_to_video_space(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), seed,
                                 d_video)
        for s, z in zip(samples, zs):
            cos = s.video @ z / np.linalg.norm(s.video, axis=1)                    # (Nv,)
            inside = np.zeros(len(cos), bool)
            inside[s.relevant_clip_ids] = True
            gaps.append(cos[inside].mean() - cos[~inside].mean())
    gaps = np.array(gaps)
    assert gaps.mean() > 0.1 and (gaps > 0).mean() > 0.9


def test_copy_of_dataset_with_user_dirs(tiny, tmp_path):
    """Real QVHighlights users keep features in clip_features/ and clip_text_features/."""
    shutil.copytree(tiny / "video_features", tmp_path / "clip_features")
    shutil.copytree(tiny / "text_features", tmp_path / "clip_text_features")
    ds = load_tlg(tiny, "gym_val", video_dir=tmp_path / "clip_features",
                  text_dir=tmp_path / "clip_text_features")
    ref = load_tlg(tiny, "gym_val")
    np.testing.assert_array_equal(ds[0].video, ref[0].video)
    both = load_tlg(tiny, "gym_val", video_dir=[tiny / "video_features",
                                                tmp_path / "clip_features"])
    assert both[0].video.shape == (ref[0].video.shape[0], 64)
