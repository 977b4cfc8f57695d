"""Frame / video I/O (``readpvla.data.video``) and the retrieval / recognition loaders
(``readpvla.data.videotext``): PyAV round trips with uniform sampling, resizing, CLIP
normalisation, and every malformed input raising an error that names the file (and line)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from readpvla.data.qvh import save_npz
from readpvla.data.rendered import RenderConfig, generate
from readpvla.data.video import (
    CLIP_MEAN,
    CLIP_STD,
    MissingVideoError,
    clip_normalize,
    read_frames,
    resize_frames,
    sample_indices,
    write_mp4,
)
from readpvla.data.videotext import (
    load_class_split,
    load_descriptions,
    load_recognition,
    load_retrieval,
    load_zeroshot,
)

TINY = RenderConfig(domains=("flat",), n_source_train=1, n_source_test=1, n_train=2, n_test=1,
                    shots=(1, 2), fewshot_seeds=2, captions_train=3)


def _levels(n: int) -> np.ndarray:
    """Grey frames whose level encodes the index: ``10 + 12 k``."""
    return np.stack([np.full((32, 32, 3), 10 + 12 * k, np.uint8) for k in range(n)])


def _index_of(frames: np.ndarray) -> list[int]:
    return [int(round((float(f.mean()) - 10) / 12)) for f in frames]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("rendered"), seed=3, config=TINY,
                    splits="flat_train,flat_test", quiet=True)


# ------------------------------------------------------------------------------------------------
# sampling, resizing, normalisation
# ------------------------------------------------------------------------------------------------
def test_sample_indices_is_clip4clip_linspace():
    assert sample_indices(20, 8).tolist() == [0, 2, 5, 8, 10, 13, 16, 19]
    assert sample_indices(3, 5).tolist() == [0, 0, 1, 1, 2]        # short video: repeats
    assert sample_indices(7, 1).tolist() == [0]
    for n, m in [(1, 4), (9, 9), (100, 12)]:
        assert np.array_equal(sample_indices(n, m), np.linspace(0, n - 1, num=m).astype(int))
    with pytest.raises(ValueError):
        sample_indices(0, 3)


def test_resize_and_crop():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    assert resize_frames(frames, 16).shape == (2, 16, 16, 3)        # short side + centre crop
    assert resize_frames(frames, (12, 20)).shape == (2, 12, 20, 3)  # exact
    assert np.array_equal(resize_frames(frames, (24, 40)), frames)  # same size: unchanged
    flat = np.full((1, 30, 30, 3), 77, np.uint8)
    assert np.all(resize_frames(flat, 13) == 77) and np.all(resize_frames(flat, 64) == 77)
    # shrinking a 1-px checkerboard 2x averages it to mid grey (antialiased)
    check = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    small = resize_frames(np.repeat(check[None, :, :, None], 3, axis=3), 16)
    assert np.all(np.abs(small[:, 2:-2, 2:-2].astype(int) - 128) <= 1)


def test_clip_normalize():
    frames = np.zeros((2, 4, 5, 3), np.uint8)
    frames[0, 1, 2] = (255, 128, 0)
    x = clip_normalize(frames)
    assert x.shape == (2, 3, 4, 5) and x.dtype == np.float32
    want = (np.array([255, 128, 0]) / 255 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert np.allclose(x[0, :, 1, 2], want, atol=1e-6)
    assert np.allclose(x[1, :, 0, 0], -np.array(CLIP_MEAN) / np.array(CLIP_STD), atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        clip_normalize(frames.astype(np.float32))


# ------------------------------------------------------------------------------------------------
# PyAV and npz round trips
# ------------------------------------------------------------------------------------------------
def test_mp4_write_read_uniform_sampling(tmp_path):
    path = write_mp4(tmp_path / "levels.mp4", _levels(20), fps=10)
    every = read_frames(path)
    assert every.shape == (20, 32, 32, 3) and every.dtype == np.uint8
    assert np.all(np.abs(every.reshape(20, -1).mean(1) - (10 + 12 * np.arange(20))) < 3)
    picked = read_frames(path, num_frames=8)                        # container knows the count
    assert _index_of(picked) == [0, 2, 5, 8, 10, 13, 16, 19]
    assert _index_of(read_frames(path, num_frames=30)) == sample_indices(20, 30).tolist()
    assert read_frames(path, num_frames=4, size=16).shape == (4, 16, 16, 3)
    # .mkv: no frame count in the container -> decode everything, then sample
    mkv = write_mp4(tmp_path / "levels.mkv", _levels(11), fps=8)
    assert _index_of(read_frames(mkv, num_frames=5)) == sample_indices(11, 5).tolist()


def test_npz_read_and_sample(tmp_path):
    frames = _levels(9)
    path = save_npz(tmp_path / "v.npz", frames=frames)
    assert np.array_equal(read_frames(path), frames)
    assert _index_of(read_frames(path, num_frames=3)) == [0, 4, 8]
    assert read_frames(path, size=(8, 12)).shape == (9, 8, 12, 3)


def test_video_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(MissingVideoError, match=re.escape(str(missing))) as info:
        read_frames(missing)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match=re.escape(str(garbage))):
        read_frames(garbage)
    with pytest.raises(ValueError, match=re.escape(str(garbage))):
        read_frames(garbage, num_frames=4)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=re.escape(str(bad_npz))):
        read_frames(bad_npz)
    cases = {"float.npz": {"frames": np.zeros((2, 4, 4, 3), np.float32)},
             "gray.npz": {"frames": np.zeros((2, 4, 4), np.uint8)},
             "rgba.npz": {"frames": np.zeros((2, 4, 4, 4), np.uint8)},
             "empty.npz": {"frames": np.zeros((0, 4, 4, 3), np.uint8)},
             "nokey.npz": {"video": np.zeros((2, 4, 4, 3), np.uint8)}}
    for name, arrays in cases.items():
        p = save_npz(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=re.escape(str(p))):
            read_frames(p)
    with pytest.raises(ValueError, match="zero frames"):
        read_frames(tmp_path / "empty.npz")
    no_frames = write_mp4(tmp_path / "none.mp4", _levels(1))
    no_frames.write_bytes(no_frames.read_bytes()[:48])            # header only, no frames
    with pytest.raises(ValueError, match=re.escape(str(no_frames))):
        read_frames(no_frames)
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", np.zeros((2, 5, 6, 3), np.uint8))


# ------------------------------------------------------------------------------------------------
# loaders
# ------------------------------------------------------------------------------------------------
def test_loaders_round_trip(root):
    ret = load_retrieval(root, "flat_train")
    rec = load_recognition(root, "flat_train")
    assert len(ret) == len(rec) == 48 and ret.n_captions == 48 * 3
    assert ret.video_ids == rec.video_ids
    assert all(len(ret.captions_of(i)) == 3 for i in range(len(ret)))
    assert ret[0].shape == (8, 32, 32, 3) and ret.domains[0] == "flat"
    frames, label = rec[5]
    assert frames.dtype == np.uint8 and 0 <= label < 24
    assert np.bincount(rec.labels, minlength=24).tolist() == [2] * 24
    few = load_recognition(root, "fewshot/flat_K1_seed1")
    assert np.bincount(few.labels, minlength=24).tolist() == [1] * 24
    assert set(few.video_ids) <= set(rec.video_ids)
    sub = rec.restrict(["something growing", "moving something up"])
    assert sub.classes == ["something growing", "moving something up"]
    assert sorted(sub.labels.tolist()) == [0, 0, 1, 1]
    assert load_retrieval(root, "flat_test", num_frames=4, size=16)[0].shape == (4, 16, 16, 3)
    split = load_class_split(root, 1)
    assert len(split["base"]) == len(split["novel"]) == 12
    assert len(load_zeroshot(root)["unseen"]) == 4
    desc = load_descriptions(root, n=2)
    assert len(desc) == 24 and all(len(d["spatial"]) == len(d["temporal"]) == 2
                                   for d in desc.values())


def _retrieval_file(tmp_path: Path, videos, sentences) -> Path:
    from readpvla.data.rendered import write_retrieval_json

    return write_retrieval_json(tmp_path / "retrieval" / "x.json", videos, sentences)


def test_retrieval_errors_name_file_and_line(root, tmp_path):
    vids = [{"video_id": v, "split": "x"} for v in ("flat_test_00000", "flat_test_00001")]
    sens = [{"video_id": "flat_test_00000", "caption": "a red box", "sen_id": 0},
            {"video_id": "flat_test_00001", "caption": "a blue box", "sen_id": 1}]
    kw = {"video_dir": root / "videos"}
    ok = _retrieval_file(tmp_path, vids, sens)
    assert load_retrieval(tmp_path, "x", **kw).n_captions == 2
    # line numbers: line 1 '{"videos": [', videos on lines 2-3, '],' 4, '"sentences": [' 5, ...
    for bad_sens, line, what in [
            (sens + [{"video_id": "flat_test_00009", "caption": "a"}], 8, "not in 'videos'"),
            (sens + [{"video_id": "flat_test_00000", "caption": ""}], 8, "caption"),
            (sens + [{"video_id": "flat_test_00000", "caption": "c", "sen_id": 1}], 8,
             "sen_id 1 repeats")]:
        _retrieval_file(tmp_path, vids, bad_sens)
        with pytest.raises(ValueError, match=re.escape(f"{ok}:{line}: ") + ".*" + what):
            load_retrieval(tmp_path, "x", **kw)
    _retrieval_file(tmp_path, vids + [vids[0]], sens)
    with pytest.raises(ValueError, match=re.escape(f"{ok}:4: video_id 'flat_test_00000' "
                                                   f"repeats (first at {ok}:2)")):
        load_retrieval(tmp_path, "x", **kw)
    _retrieval_file(tmp_path, vids + [{"video_id": "flat_test_00077"}], sens)
    with pytest.raises(MissingVideoError, match=re.escape(f"{ok}:4: video 'flat_test_00077'")):
        load_retrieval(tmp_path, "x", **kw)
    _retrieval_file(tmp_path, vids + [{"video_id": "../secret"}], sens)
    with pytest.raises(ValueError, match=re.escape(f"{ok}:4:")):
        load_retrieval(tmp_path, "x", **kw)
    ok.write_text('{"videos": [\n{"video_id": "a"},\n{"video_id" "b"}\n]}', encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{ok}:3: bad JSON")):
        load_retrieval(tmp_path, "x", **kw)
    ok.write_text('{"videos": []}', encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{ok}:1:")):
        load_retrieval(tmp_path, "x", **kw)
    with pytest.raises(FileNotFoundError, match="available splits"):
        load_retrieval(root, "nope")


def test_msrvtt_layouts_and_mp4_videos(root, tmp_path):
    """The real MSR-VTT JSON (one line, train + validate in one file) and the 1k-A CSV, with
    .mp4 files decoded by PyAV."""
    src = load_retrieval(root, "flat_test")
    vdir = tmp_path / "videos"
    for k in range(3):
        write_mp4(vdir / f"video{k}.mp4", src[k])
    info = {"info": {}, "videos": [{"category": 0, "video_id": f"video{k}", "id": k,
                                    "split": "train" if k < 2 else "validate"}
                                   for k in range(3)],
            "sentences": [{"caption": f"caption {j}", "video_id": f"video{j % 3}", "sen_id": j}
                          for j in range(7)]}
    ann = tmp_path / "train_val_videodatainfo.json"
    ann.write_text(json.dumps(info), encoding="utf-8")
    train = load_retrieval(tmp_path, "train", annotation_file=ann, video_dir=vdir)
    assert train.video_ids == ["video0", "video1"] and train.n_captions == 5
    assert train.caption_video.tolist() == [0, 1, 0, 1, 0]
    val = load_retrieval(tmp_path, "validate", annotation_file=ann, video_dir=vdir, num_frames=4)
    assert val.video_ids == ["video2"] and val[0].shape == (4, 32, 32, 3)
    assert np.abs(val[0].astype(int) - src[2][[0, 2, 4, 7]].astype(int)).mean() < 8  # lossy
    with pytest.raises(ValueError, match="no video has split 'test'"):
        load_retrieval(tmp_path, "test", annotation_file=ann, video_dir=vdir)
    csv = tmp_path / "MSRVTT_JSFUSION_test.csv"
    csv.write_text("key,vid_key,video_id,sentence\nret0,msr0,video0,a man sings\n"
                   'ret1,msr1,video1,"a red box, then a blue one"\n', encoding="utf-8")
    test = load_retrieval(tmp_path, "1k-A", annotation_file=csv, video_dir=vdir)
    assert test.captions == ["a man sings", "a red box, then a blue one"]
    assert test.sen_ids == ["ret0", "ret1"]
    csv.write_text("key,vid_key,video_id,sentence\nret0,msr0,video0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{csv}:2: 3 fields")):
        load_retrieval(tmp_path, "1k-A", annotation_file=csv, video_dir=vdir)
    (vdir / "video1.mp4").write_bytes(b"\x00" * 100)               # undecodable, read lazily
    broken = load_retrieval(tmp_path, "train", annotation_file=ann, video_dir=vdir)
    with pytest.raises(ValueError, match=re.escape(str(vdir / "video1.mp4"))):
        broken.frames(1)


def test_recognition_errors_name_file_and_line(root, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\nc\n", encoding="utf-8")
    labels = tmp_path / "labels.txt"
    kw = {"class_file": classes, "video_dir": root / "videos", "label_file": labels}
    good = "flat_test_00000 0\nflat_test_00001 2\n"
    labels.write_text(good, encoding="utf-8")
    assert load_recognition(tmp_path, "x", **kw).labels.tolist() == [0, 2]
    for text, line, what in [(good + "flat_test_00002 3\n", 3, "out of range [0, 3)"),
                             (good + "flat_test_00002 -1\n", 3, "out of range"),
                             (good + "flat_test_00002 one\n", 3, "not an integer"),
                             (good + "flat_test_00002 1 extra\n", 3, "2 fields"),
                             (good + "\nflat_test_00002 1\n", 3, "blank line"),
                             (good + "flat_test_00000 1\n", 3, "repeats (first at line 1)"),
                             (good + "../x 1\n", 3, "relative path"),
                             (good + "no_such_video 1\n", 3, "'no_such_video' not found")]:
        labels.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=re.escape(f"{labels}:{line}: ") + ".*"
                           + re.escape(what)):
            load_recognition(tmp_path, "x", **kw)
    labels.write_text(good, encoding="utf-8")
    for text, line, what in [("a\n\nb\n", 2, "blank line"), ("a\nb\na\n", 3, "class 'a' repeats")]:
        classes.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=re.escape(f"{classes}:{line}: {what}")):
            load_recognition(tmp_path, "x", **kw)
    labels.write_bytes(b"flat_test_00000 0\nflat_test_00001 \xff\n")
    classes.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{labels}:2: not valid UTF-8")):
        load_recognition(tmp_path, "x", **kw)
    labels.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no lines"):
        load_recognition(tmp_path, "x", **kw)
    with pytest.raises(FileNotFoundError, match="available splits"):
        load_recognition(root, "nope")
    with pytest.raises(ValueError, match="unknown"):
        load_recognition(root, "flat_test").restrict(["not a class"])


def test_shipped_mp4_examples_match_their_npz():
    from readpvla.data.rendered import shipped_dir

    ship = shipped_dir()
    ex = ship / "examples"
    if not (ex / "retrieval.json").is_file():
        pytest.skip("no shipped examples")
    mp4 = load_retrieval(ship, "examples", annotation_file=ex / "retrieval.json",
                         video_dir=ex / "videos")
    rec = load_recognition(ship, "examples", label_file=ex / "labels.txt",
                           video_dir=ex / "videos")
    assert mp4.video_ids == rec.video_ids and all(p.suffix == ".mp4" for p in mp4.video_paths)
    for i, vid in enumerate(mp4.video_ids):
        npz = read_frames(ship / "videos" / f"{vid}.npz")
        assert mp4[i].shape == npz.shape
        assert np.abs(mp4[i].astype(int) - npz.astype(int)).mean() < 10  # H.264, yuv420p
