"""Hostile inputs to the data loaders: every one is a ValueError that names the file (and the line
for text files), never a bare decode error, a silent fallback or a failure at collate time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from readpvla.data import collate_tlg, load_tlg, read_annotations, save_npz
from readpvla.data.how2 import load_split, load_tokenizer

GOOD = {"qid": 1, "query": "a dog runs", "duration": 10, "vid": "v1",
        "relevant_windows": [[2, 6]], "relevant_clip_ids": [1, 2],
        "saliency_scores": [[1, 2, 3], [4, 4, 4]]}
UNLABELLED = {k: GOOD[k] for k in ("qid", "query", "duration", "vid")}
HOW2_TOKENIZER = Path(__file__).resolve().parents[1] / "data_samples" / "how2" / "tokenizer.json"


def _root(tmp_path: Path, records: list[dict], d_video: dict[str, int] | None = None,
          d_text: dict[int, int] | None = None) -> Path:
    """A QVHighlights-format root holding ``records`` and features of the given widths."""
    for d in ("annotations", "video_features", "text_features"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "annotations" / "val.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records))
    for r in records:
        n = int(np.ceil(r["duration"] / 2))
        save_npz(tmp_path / "video_features" / f"{r['vid']}.npz",
                 features=np.ones((n, (d_video or {}).get(r["vid"], 2)), np.float16))
        save_npz(tmp_path / "text_features" / f"qid{r['qid']}.npz",
                 last_hidden_state=np.ones((4, (d_text or {}).get(r["qid"], 3)), np.float16))
    return tmp_path


# ------------------------------------------------------------------------------------------------
# TLG annotations: encoding, empty files, consistency between lines
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bad_line", [3, 300])  # 300: past the first 8 KiB the decoder reads
def test_tlg_non_utf8_byte_names_file_and_line(tmp_path, newline, bad_line):
    lines = [json.dumps({**GOOD, "qid": i}) for i in range(bad_line + 2)]
    lines[1] = ""                                               # a blank line still counts
    lines[bad_line - 1] = lines[bad_line - 1].replace("a dog", "a d\\u00f6g")
    data = newline.join(lines).encode() + newline.encode()
    data = data.replace(b"a d\\u00f6g", b"a d\xf6g")           # latin-1, not UTF-8
    ann = tmp_path / "annotations" / "val.jsonl"
    ann.parent.mkdir()
    ann.write_bytes(data)
    with pytest.raises(ValueError, match=rf"{ann}:{bad_line}: .*UTF-8.*0xf6"):
        read_annotations(ann)
    with pytest.raises(ValueError, match=rf"{ann}:{bad_line}: .*UTF-8"):
        load_tlg(tmp_path, "val")


@pytest.mark.parametrize("content", ["", "\n", "\n  \n\t\n"])
def test_tlg_empty_annotation_file_raises(tmp_path, content):
    root = _root(tmp_path, [])
    ann = root / "annotations" / "val.jsonl"
    ann.write_text(content)
    with pytest.raises(ValueError, match=rf"{ann}: no annotation records"):
        read_annotations(ann)
    with pytest.raises(ValueError, match=rf"{ann}: no annotation records"):
        load_tlg(root, "val")


def test_tlg_blank_lines_in_the_middle_and_end_are_skipped(tmp_path):
    ann = tmp_path / "a.jsonl"
    ann.write_text(json.dumps(GOOD) + "\n\n  \n" + json.dumps({**GOOD, "qid": 2}) + "\n\n\n")
    assert [r["qid"] for r in read_annotations(ann)] == [1, 2]


@pytest.mark.parametrize("first, second, field", [
    (GOOD, UNLABELLED, "relevant_windows"),
    (UNLABELLED, GOOD, "relevant_windows"),
    (GOOD, {k: v for k, v in GOOD.items() if k != "relevant_windows"}, "relevant_windows"),
    (GOOD, {k: v for k, v in GOOD.items() if k != "saliency_scores"}, "saliency_scores"),
    (GOOD, {**GOOD, "relevant_windows": None}, "relevant_windows"),
])
def test_tlg_labels_on_some_lines_only(tmp_path, first, second, field):
    recs = [first, {**first, "qid": 5}, {**second, "qid": 2}]   # line 2 agrees with line 1
    root = _root(tmp_path, recs)
    ann = root / "annotations" / "val.jsonl"
    with pytest.raises(ValueError, match=rf"{ann}:3: .*{field}.*line 1"):
        read_annotations(ann)
    with pytest.raises(ValueError, match=rf"{ann}:3: "):
        load_tlg(root, "val")


def test_tlg_one_vid_with_two_durations(tmp_path):
    recs = [GOOD, {**GOOD, "qid": 2, "vid": "v2"}, {**GOOD, "qid": 3, "duration": 12}]
    ann = tmp_path / "a.jsonl"
    ann.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(ValueError, match=rf"{ann}:3: vid 'v1' has duration 12 .*10 at line 1"):
        read_annotations(ann)
    # the same duration written as int and float is the same duration
    recs[2]["duration"] = 10.0
    ann.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert len(read_annotations(ann)) == 3


@pytest.mark.parametrize("second_qid, message", [
    ("1", r"qid '1' and qid 1 \(line 1\) both use the text features qid1\.npz"),
    ("a/b", r"'qid' must be an int or a file-name-safe str"),
    ("..\\b", r"'qid' must be an int or a file-name-safe str"),
])
def test_tlg_qids_that_share_or_escape_a_feature_file(tmp_path, second_qid, message):
    ann = tmp_path / "a.jsonl"
    ann.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "qid": second_qid}) + "\n")
    with pytest.raises(ValueError, match=rf"{ann}:2: {message}"):
        read_annotations(ann)


# ------------------------------------------------------------------------------------------------
# TLG features: widths that differ between files
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cache", [True, False])
def test_tlg_video_width_mismatch_names_both_files(tmp_path, cache):
    recs = [GOOD, {**GOOD, "qid": 2, "vid": "v2"}]
    root = _root(tmp_path, recs, d_video={"v1": 512, "v2": 256})
    ds = load_tlg(root, "val", cache=cache)
    assert ds[0].video.shape == (5, 512)
    with pytest.raises(ValueError, match=r"video_features/v2\.npz: 'features' has 256 columns "
                                         r"but .*video_features/v1\.npz has 512"):
        ds[1]
    # whichever file is read first sets the width
    ds = load_tlg(root, "val", cache=cache)
    with pytest.raises(ValueError, match=r"v1\.npz: 'features' has 512 columns but .*v2\.npz "
                                         r"has 256"):
        [ds[1], ds[0]]


def test_tlg_text_width_mismatch_names_both_files(tmp_path):
    recs = [GOOD, {**GOOD, "qid": 2, "vid": "v2"}]
    root = _root(tmp_path, recs, d_text={1: 384, 2: 512})
    ds = load_tlg(root, "val")
    assert ds[0].text.shape == (4, 384)
    with pytest.raises(ValueError, match=r"text_features/qid2\.npz: 'last_hidden_state' has 512 "
                                         r"columns but .*text_features/qid1\.npz has 384"):
        ds[1]


def test_tlg_widths_are_checked_per_video_folder(tmp_path):
    """Several video folders are concatenated along D: each keeps its own width."""
    recs = [GOOD, {**GOOD, "qid": 2, "vid": "v2"}]
    root = _root(tmp_path, recs)
    other = tmp_path / "slowfast"
    other.mkdir()
    save_npz(other / "v1.npz", features=np.ones((5, 7), np.float16))
    save_npz(other / "v2.npz", features=np.ones((5, 7), np.float16))
    ds = load_tlg(root, "val", video_dir=[root / "video_features", other])
    assert collate_tlg([ds[0], ds[1]]).video.shape == (2, 5, 9)
    save_npz(other / "v2.npz", features=np.ones((5, 6), np.float16))
    ds = load_tlg(root, "val", video_dir=[root / "video_features", other])
    ds[0]
    with pytest.raises(ValueError, match=r"slowfast/v2\.npz: 'features' has 6 columns but "
                                         r".*slowfast/v1\.npz has 7"):
        ds[1]


def test_tlg_nan_in_text_features_names_the_file(tmp_path):
    root = _root(tmp_path, [GOOD])
    save_npz(root / "text_features" / "qid1.npz",
             last_hidden_state=np.array([[1.0, np.nan, 0.0]], np.float32))
    with pytest.raises(ValueError, match=r"text_features/qid1\.npz: 'last_hidden_state' contains "
                                         r"NaN or inf"):
        load_tlg(root, "val")[0]


def test_tlg_empty_or_corrupt_feature_file_names_the_file(tmp_path):
    """Every single-byte corruption of a feature .npz (and an empty one) either still loads or
    raises ValueError naming the file: never a bare BadZipFile, zlib.error, EOFError, ..."""
    root = _root(tmp_path, [GOOD])
    path = root / "video_features" / "v1.npz"
    save_npz(path, features=np.arange(10, dtype=np.float16).reshape(5, 2))
    good = path.read_bytes()
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{path}: cannot be read as \.npz"):
        load_tlg(root, "val")[0]
    failures = set()
    for i in range(len(good)):
        path.write_bytes(good[:i] + bytes([good[i] ^ 0x55]) + good[i + 1:])
        try:
            load_tlg(root, "val")[0]
        except ValueError as err:
            assert str(err).startswith(f"{path}: "), (i, err)
        except Exception as err:  # noqa: BLE001 - the point of the test
            failures.add(f"byte {i}: {type(err).__name__}: {err}")
    assert not failures, sorted(failures)[:5]


# ------------------------------------------------------------------------------------------------
# How2
# ------------------------------------------------------------------------------------------------
def _how2(tmp_path: Path, rows: list[dict], feats: dict[str, np.ndarray] | None = None) -> Path:
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    feats = feats or {r["vid"]: np.zeros((3, 4), np.float32) for r in rows}
    np.savez(tmp_path / "x_video.npz", **feats)
    return tmp_path


ROW = {"vid": "a", "transcript": "t", "summary": "s"}


def test_how2_non_utf8_byte_names_file_and_line(tmp_path):
    root = _how2(tmp_path, [ROW, {**ROW, "vid": "b"}])
    data = (root / "x.jsonl").read_bytes().replace(b'"vid": "b", "transcript": "t"',
                                                   b'"vid": "b", "transcript": "t\xe9"')
    (root / "x.jsonl").write_bytes(b"\n" + data)
    with pytest.raises(ValueError, match=r"x\.jsonl:3: .*UTF-8.*0xe9"):
        load_split(root, "x")


def test_how2_tokenizer_file_errors_name_the_file(tmp_path):
    data = HOW2_TOKENIZER.read_bytes()
    pos = data.index(b'"<unk>"')
    line = data[:pos].count(b"\n") + 1
    (tmp_path / "tokenizer.json").write_bytes(data[:pos] + b'"<unk\xff>"' + data[pos + 7:])
    with pytest.raises(ValueError, match=rf"tokenizer\.json:{line}: .*UTF-8.*0xff"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"tokenizer\.json: cannot be read as a tokenizer"):
        load_tokenizer(tmp_path)


def test_how2_width_mismatch_names_both_videos(tmp_path):
    rows = [ROW, {**ROW, "vid": "b"}, {**ROW, "vid": "c"}]
    root = _how2(tmp_path, rows, {"a": np.zeros((3, 4), np.float32),
                                  "b": np.zeros((2, 4), np.float32),
                                  "c": np.zeros((3, 5), np.float32)})
    with pytest.raises(ValueError, match=r"x\.jsonl:3: features of 'c' have D=5 but those of "
                                         r"'a' \(line 1\) have D=4"):
        load_split(root, "x")
    (root / "x_video.npz").unlink()
    (root / "x_video").mkdir()
    np.save(root / "x_video" / "a.npy", np.zeros((3, 4), np.float32))
    np.save(root / "x_video" / "b.npy", np.zeros((3, 4), np.float32))
    np.save(root / "x_video" / "c.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"x\.jsonl:3: features of 'c' have D=5 .*x_video/c\.npy"
                                         r".* 'a' \(line 1\) have D=4 .*x_video/a\.npy"):
        load_split(root, "x")


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p, a=np.array([{}], dtype=object)), r"x_video\.npz\['a'\]: cannot be loaded"),
    (lambda p: p.write_bytes(b"junk"), r"x_video\.npz: cannot be read as \.npz"),
    (lambda p: p.write_bytes(b""), r"x_video\.npz: cannot be read as \.npz"),
    (lambda p: np.save(open(p, "wb"), np.zeros((3, 4))), r"x_video\.npz: expected an \.npz"),
])
def test_how2_unreadable_feature_archive_names_the_file(tmp_path, make, message):
    root = _how2(tmp_path, [ROW])
    make(root / "x_video.npz")
    with pytest.raises(ValueError, match=message):
        load_split(root, "x")


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p, np.array([{}], dtype=object)), r"x_video/a\.npy: cannot be read"),
    (lambda p: p.write_bytes(b"junk"), r"x_video/a\.npy: cannot be read"),
    (lambda p: np.savez(open(p, "wb"), a=np.zeros((3, 4))), r"x_video/a\.npy: expected an \.npy"),
    (lambda p: np.save(p, np.array([["1", "2"]])), r"features of 'a' must be real numbers"),
])
def test_how2_unreadable_npy_names_the_file(tmp_path, make, message):
    root = _how2(tmp_path, [ROW])
    (root / "x_video.npz").unlink()
    (root / "x_video").mkdir()
    make(root / "x_video" / "a.npy")
    with pytest.raises(ValueError, match=rf"x\.jsonl:1: .*{message}"):
        load_split(root, "x")


@pytest.mark.parametrize("extra, message", [
    ({"steps": "cut the bread , eat it"}, "'steps' must be a list of strings"),
    ({"steps": ["cut the bread", 3]}, "'steps' must be a list of strings"),
    ({"task": ["bake"]}, "'task' must be a string"),
    ({"domain": 7}, "'domain' must be a string"),
])
def test_how2_optional_fields_of_the_wrong_type(tmp_path, extra, message):
    root = _how2(tmp_path, [ROW, {**ROW, "vid": "b", **extra}])
    with pytest.raises(ValueError, match=rf"x\.jsonl:2: {message}"):
        load_split(root, "x")


def test_how2_corrupt_feature_archive_names_the_file(tmp_path):
    root = _how2(tmp_path, [ROW], {"a": np.arange(12, dtype=np.float16).reshape(3, 4)})
    path = root / "x_video.npz"
    good = path.read_bytes()
    failures = set()
    for i in range(len(good)):
        path.write_bytes(good[:i] + bytes([good[i] ^ 0x55]) + good[i + 1:])
        try:
            load_split(root, "x")
        except ValueError as err:
            assert str(path) in str(err), (i, err)
        except Exception as err:  # noqa: BLE001 - the point of the test
            failures.add(f"byte {i}: {type(err).__name__}: {err}")
    assert not failures, sorted(failures)[:5]


def test_how2_blank_only_file_raises(tmp_path):
    root = _how2(tmp_path, [ROW])
    (root / "x.jsonl").write_text("\n \n")
    with pytest.raises(ValueError, match=r"x\.jsonl: no samples"):
        load_split(root, "x")


@pytest.mark.parametrize("video, message", [
    (np.zeros((3, 0), np.float32), r"shape \(3, 0\)"),
    (np.zeros((0, 4), np.float32), r"shape \(0, 4\)"),
    (np.array([[1.0, np.inf, 0.0, 0.0]] * 3, np.float32), r"3 values are NaN or inf"),
])
def test_how2_empty_or_non_finite_features(tmp_path, video, message):
    root = _how2(tmp_path, [ROW], {"a": video})
    with pytest.raises(ValueError, match=rf"x\.jsonl:1: features of 'a' .*{message}"):
        load_split(root, "x")


def test_how2_null_optional_fields_are_absent(tmp_path):
    root = _how2(tmp_path, [{**ROW, "task": None, "domain": None, "steps": None}])
    s = load_split(root, "x")[0]
    assert (s.task, s.domain, s.steps) == ("", "", [])
