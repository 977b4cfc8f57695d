"""Text-video data in the formats real datasets use: MSR-VTT-style retrieval annotations and
recognition class lists with per-video label files. Frames are read lazily
(:func:`readpvla.data.video.read_frames`: ``.npz`` or any video file PyAV decodes).

Layout of a dataset root (what :mod:`readpvla.data.rendered` writes)::

    ROOT/videos/{video_id}.npz               key "frames": uint8 [T, H, W, 3]  (or .mp4, .avi, ...)
    ROOT/retrieval/{split}.json              {"videos": [...], "sentences": [...]}  (MSR-VTT)
    ROOT/recognition/classes.txt             one class name per line; line index = label
    ROOT/recognition/{split}.txt             "video_id label" per line (label: 0-based int)
    ROOT/recognition/fewshot/{d}_K{K}_seed{s}.txt   K-shot lists (load as split "fewshot/...")
    ROOT/recognition/base_novel/seed{s}.json {"base": [...], "novel": [...]}
    ROOT/recognition/zeroshot.json           {"seen": [...], "unseen": [...]}
    ROOT/recognition/descriptions.json       {class: {"spatial": [...], "temporal": [...]}}

**Retrieval JSON** (MSR-VTT ``train_val_videodatainfo.json`` keys; extra keys are ignored)::

    {"videos":    [{"video_id": "video0", "split": "train", "domain": "flat"}, ...],
     "sentences": [{"video_id": "video0", "caption": "a man ...", "sen_id": 0}, ...]}

When the file's videos carry two or more distinct ``split`` values (the real MSR-VTT file holds
``train`` and ``validate``), only the videos of the requested split and their sentences are
kept; a file with one split value (or none) is the split. The MSR-VTT 1k-A test list
``MSRVTT_JSFUSION_test.csv`` (columns ``key, vid_key, video_id, sentence``) is read too: pass
it as ``annotation_file``. A video id may name a file with its extension or without one (then
``.npz``, ``.mp4``, ``.avi``, ... are tried in :data:`VIDEO_SUFFIXES` order), and may hold
``/`` for subfolders of ``video_dir``.

Every malformed input raises ``ValueError("FILE:LINE: ...")``: bad JSON, a record without
``video_id`` / ``caption``, a repeated video id or ``sen_id``, a sentence whose video is not in
the file, a blank or malformed label line, a label out of range, a repeated or blank class
name; a missing video file raises :class:`~readpvla.data.video.MissingVideoError` (a
``ValueError`` and a ``FileNotFoundError``) naming the annotation line, at load time. A video
that does not decode or has the wrong shape raises when its frames are first read, naming the
video file.
"""

from __future__ import annotations

import bisect
import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from readpvla.data.qvh import _text_lines, _utf8_error
from readpvla.data.video import VIDEO_EXTENSIONS, MissingVideoError, read_frames

__all__ = ["VIDEO_SUFFIXES", "RecognitionData", "RetrievalData", "find_video",
           "load_class_split", "load_descriptions", "load_recognition", "load_retrieval",
           "load_zeroshot", "read_classes", "read_labels"]

#: suffixes tried, in order, for a video id without an extension
VIDEO_SUFFIXES = (".npz", *VIDEO_EXTENSIONS)
PathLike = str | Path
_INT = re.compile(r"-?[0-9]+")
_WS = re.compile(r"[ \t\n\r]*")


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _check_video_id(vid: Any, where: str) -> str:
    if not isinstance(vid, str) or not vid.strip() or vid != vid.strip():
        raise ValueError(f"{where}: 'video_id' must be a non-empty string without surrounding "
                         f"spaces, got {vid!r}")
    parts = vid.replace("\\", "/").split("/")
    if vid.startswith(("/", "\\")) or ":" in parts[0] or any(p in ("", ".", "..")
                                                              for p in parts) or "\0" in vid:
        raise ValueError(f"{where}: video_id {vid!r} must be a relative path inside the video "
                         "folder (no '..', no absolute path)")
    return vid


def find_video(video_dir: PathLike, video_id: str) -> Path | None:
    """The file of ``video_id`` in ``video_dir``: ``video_dir/video_id`` if that names a file
    with a known suffix, else the first of ``video_dir/{video_id}{suffix}`` for the suffixes of
    :data:`VIDEO_SUFFIXES` that exists; None if none does."""
    video_dir = Path(video_dir)
    direct = video_dir / video_id
    if direct.suffix.lower() in VIDEO_SUFFIXES and direct.is_file():
        return direct
    for suffix in VIDEO_SUFFIXES:
        p = video_dir / f"{video_id}{suffix}"
        if p.is_file():
            return p
    return None


def _locate(video_dir: Path, vid: str, where: str) -> Path:
    path = find_video(video_dir, vid)
    if path is None:
        raise MissingVideoError(f"{where}: video {vid!r} not found: no file "
                                f"{video_dir / vid}{{{','.join(VIDEO_SUFFIXES[:4])},...}}")
    return path


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    err = _utf8_error(path, data)
    if err is not None:
        raise err
    return data.decode("utf-8").lstrip("\ufeff")


def _element_offsets(text: str, keys: tuple[str, ...]) -> dict[str, list[int]]:
    """Character offsets of the elements of the top-level arrays ``keys`` of a JSON object
    (``text`` must be valid JSON). Best effort: {} when the layout is not an object."""
    dec = json.JSONDecoder()

    def skip(i: int) -> int:
        return _WS.match(text, i).end()                     # type: ignore[union-attr]

    out: dict[str, list[int]] = {}
    try:
        i = skip(0)
        if text[i] != "{":
            return {}
        i = skip(i + 1)
        if text[i] == "}":
            return {}
        while True:
            key, i = dec.raw_decode(text, i)
            i = skip(skip(i) + 1)                            # past ':'
            if key in keys and text[i] == "[":
                starts: list[int] = []
                i = skip(i + 1)
                if text[i] == "]":
                    i += 1
                else:
                    while True:
                        starts.append(i)
                        _, i = dec.raw_decode(text, i)
                        i = skip(i)
                        if text[i] == ",":
                            i = skip(i + 1)
                            continue
                        i += 1                               # ']'
                        break
                out[key] = starts
            else:
                _, i = dec.raw_decode(text, i)
            i = skip(i)
            if text[i] != ",":
                break
            i = skip(i + 1)
    except (ValueError, IndexError):
        return {}
    return out


# ------------------------------------------------------------------------------------------------
# retrieval
# ------------------------------------------------------------------------------------------------
@dataclass
class RetrievalData:
    """One retrieval split: videos, captions and which video each caption describes.

    Attributes:
        split: the split name.
        annotation_file: the JSON / CSV it was read from.
        video_ids: ``[n_videos]`` in file order.
        video_paths: the file of each video (checked to exist at load time).
        domains: each video's ``domain`` field (None where absent).
        captions: ``[n_captions]`` in file order.
        caption_video: int64 ``[n_captions]``: index into ``video_ids`` of each caption's video.
        sen_ids: each caption's ``sen_id`` (its index in the file where absent).
        num_frames, size: passed to :func:`~readpvla.data.video.read_frames`.
        cache: keep frames in memory after the first read.
    """

    split: str
    annotation_file: Path
    video_ids: list[str]
    video_paths: list[Path]
    domains: list[str | None]
    captions: list[str]
    caption_video: np.ndarray
    sen_ids: list[Any]
    num_frames: int | None = None
    size: int | tuple[int, int] | None = None
    cache: bool = True
    _frames: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _by_video: list[list[int]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._by_video = [[] for _ in self.video_ids]
        for j, i in enumerate(self.caption_video.tolist()):
            self._by_video[i].append(j)

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    def captions_of(self, i: int) -> list[int]:
        """Indices into :attr:`captions` of video ``i``'s captions."""
        return list(self._by_video[i])

    def frames(self, i: int) -> np.ndarray:
        """Video ``i`` as ``uint8 [T, H, W, 3]`` (read on first use)."""
        if i in self._frames:
            return self._frames[i]
        arr = read_frames(self.video_paths[i], num_frames=self.num_frames, size=self.size)
        if self.cache:
            self._frames[i] = arr
        return arr

    def __getitem__(self, i: int) -> np.ndarray:
        return self.frames(i)

    def __repr__(self) -> str:
        return (f"RetrievalData(split={self.split!r}, videos={len(self)}, "
                f"captions={self.n_captions}, annotation_file='{self.annotation_file}')")


def _read_msrvtt_json(path: Path, split: str
                      ) -> tuple[list[tuple[str, str | None, str]], list[tuple[str, str, Any, str]]]:
    """``(videos, sentences)``: ``(video_id, domain, where)`` and ``(video_id, caption, sen_id,
    where)`` of the requested split, validated."""
    text = _read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: bad JSON ({err.msg} at column {err.colno})"
                         ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("videos"), list) or not isinstance(
            obj.get("sentences"), list):
        raise ValueError(f"{path}:1: expected a JSON object with lists 'videos' and 'sentences' "
                         "(MSR-VTT layout)")
    offsets = _element_offsets(text, ("videos", "sentences"))
    newlines = [m.start() for m in re.finditer("\n", text)]

    def where(key: str, k: int) -> str:
        off = offsets.get(key)
        if off is not None and k < len(off):
            return f"{path}:{bisect.bisect_left(newlines, off[k]) + 1}"
        return f"{path}: {key}[{k}]"

    all_videos: dict[str, tuple[str | None, str, Any]] = {}     # vid -> (domain, where, split)
    for k, rec in enumerate(obj["videos"]):
        w = where("videos", k)
        if not isinstance(rec, dict) or "video_id" not in rec:
            raise ValueError(f"{w}: a video must be an object with 'video_id', got {rec!r:.80}")
        vid = _check_video_id(rec["video_id"], w)
        if vid in all_videos:
            raise ValueError(f"{w}: video_id {vid!r} repeats (first at {all_videos[vid][1]})")
        domain = rec.get("domain")
        if domain is not None and not isinstance(domain, str):
            raise ValueError(f"{w}: 'domain' must be a string, got {domain!r}")
        sp = rec.get("split")
        if sp is not None and not isinstance(sp, str):
            raise ValueError(f"{w}: 'split' must be a string, got {sp!r}")
        all_videos[vid] = (domain, w, sp)
    splits = {v[2] for v in all_videos.values() if v[2] is not None}
    if len(splits) >= 2:
        if split not in splits:
            raise ValueError(f"{path}: no video has split {split!r} (splits in the file: "
                             f"{sorted(splits)})")
        keep = {vid for vid, v in all_videos.items() if v[2] == split}
    else:
        keep = set(all_videos)
    if not keep:
        raise ValueError(f"{path}: no videos")
    seen_sen: dict[Any, str] = {}
    sentences = []
    for k, rec in enumerate(obj["sentences"]):
        w = where("sentences", k)
        if not isinstance(rec, dict) or "video_id" not in rec or "caption" not in rec:
            raise ValueError(f"{w}: a sentence must be an object with 'video_id' and 'caption', "
                             f"got {rec!r:.80}")
        vid, cap = rec["video_id"], rec["caption"]
        if not isinstance(vid, str) or vid not in all_videos:
            raise ValueError(f"{w}: sentence of video {vid!r}, which is not in 'videos'")
        if not isinstance(cap, str) or not cap.strip():
            raise ValueError(f"{w}: 'caption' must be a non-empty string, got {cap!r}")
        sen = rec.get("sen_id", k)
        if not (isinstance(sen, str) or (isinstance(sen, int) and not isinstance(sen, bool))):
            raise ValueError(f"{w}: 'sen_id' must be an int or a string, got {sen!r}")
        if sen in seen_sen:
            raise ValueError(f"{w}: sen_id {sen!r} repeats (first at {seen_sen[sen]})")
        seen_sen[sen] = w
        if vid in keep:
            sentences.append((vid, cap.strip(), sen, w))
    videos = [(vid, all_videos[vid][0], all_videos[vid][1]) for vid in all_videos if vid in keep]
    return videos, sentences


def _read_jsfusion_csv(path: Path) -> tuple[list[tuple[str, str | None, str]],
                                              list[tuple[str, str, Any, str]]]:
    """MSR-VTT 1k-A ``MSRVTT_JSFUSION_test.csv``: ``key, vid_key, video_id, sentence``."""
    _read_text(path)                                        # UTF-8 check with line numbers
    videos: dict[str, str] = {}
    sentences = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or not {"video_id", "sentence"} <= {h.strip() for h in header}:
            raise ValueError(f"{path}:1: expected a CSV header with 'video_id' and 'sentence' "
                             f"(MSR-VTT 1k-A layout), got {header!r}")
        cols = [h.strip() for h in header]
        iv, isent = cols.index("video_id"), cols.index("sentence")
        ikey = cols.index("key") if "key" in cols else None
        for row in reader:
            w = f"{path}:{reader.line_num}"
            if not row:
                raise ValueError(f"{w}: blank line")
            if len(row) != len(cols):
                raise ValueError(f"{w}: {len(row)} fields, the header has {len(cols)}")
            vid = _check_video_id(row[iv], w)
            cap = row[isent].strip()
            if not cap:
                raise ValueError(f"{w}: empty sentence")
            videos.setdefault(vid, w)
            sentences.append((vid, cap, row[ikey] if ikey is not None else len(sentences), w))
    if not videos:
        raise ValueError(f"{path}: no rows")
    return [(vid, None, w) for vid, w in videos.items()], sentences


def load_retrieval(root: PathLike, split: str, annotation_file: PathLike | None = None,
                   video_dir: PathLike | None = None, num_frames: int | None = None,
                   size: int | tuple[int, int] | None = None, cache: bool = True
                   ) -> RetrievalData:
    """Load one retrieval split (MSR-VTT-style JSON, or the 1k-A CSV).

    Args:
        root: dataset root (``retrieval/``, ``videos/``).
        split: the split, e.g. ``"flat_test"``; names the default annotation file
            ``root/retrieval/{split}.json`` and selects videos in a multi-split file.
        annotation_file: another JSON (e.g. MSR-VTT's ``train_val_videodatainfo.json``) or the
            1k-A ``.csv``.
        video_dir: folder of the videos (default ``root/videos``).
        num_frames, size: frame sampling and resizing (:func:`~readpvla.data.video.read_frames`).
        cache: keep frames in memory once read (pass False for a large real dataset).

    Returns:
        :class:`RetrievalData` in file order.

    Raises:
        FileNotFoundError: the annotation file.
        ValueError: ``"FILE:LINE: ..."`` for a malformed record (see the module docstring);
            :class:`~readpvla.data.video.MissingVideoError` for a video without a file.
    """
    root = Path(root)
    ann = Path(annotation_file) if annotation_file is not None else (
        root / "retrieval" / f"{split}.json")
    if not ann.is_file():
        have = sorted(p.stem for p in (root / "retrieval").glob("*.json"))
        raise FileNotFoundError(f"retrieval annotations for split {split!r} not found: {ann}"
                                + (f" (available splits: {have})" if have else ""))
    vdir = Path(video_dir) if video_dir is not None else root / "videos"
    if ann.suffix.lower() == ".csv":
        videos, sentences = _read_jsfusion_csv(ann)
    else:
        videos, sentences = _read_msrvtt_json(ann, split)
    index = {vid: i for i, (vid, _, _) in enumerate(videos)}
    paths = [_locate(vdir, vid, w) for vid, _, w in videos]
    return RetrievalData(
        split=split, annotation_file=ann, video_ids=[v[0] for v in videos], video_paths=paths,
        domains=[v[1] for v in videos], captions=[s[1] for s in sentences],
        caption_video=np.asarray([index[s[0]] for s in sentences], dtype=np.int64),
        sen_ids=[s[2] for s in sentences], num_frames=num_frames, size=size, cache=cache)


# ------------------------------------------------------------------------------------------------
# recognition
# ------------------------------------------------------------------------------------------------
@dataclass
class RecognitionData:
    """One recognition split: videos and their class labels.

    Attributes:
        split: the split name.
        classes: class names; label ``k`` is ``classes[k]``.
        video_ids, video_paths: in label-file order (files checked to exist at load time).
        labels: int64 ``[n]``.
        label_file, class_file: where they came from.
        num_frames, size, cache: as in :class:`RetrievalData`.
    """

    split: str
    classes: list[str]
    video_ids: list[str]
    video_paths: list[Path]
    labels: np.ndarray
    label_file: Path
    class_file: Path
    num_frames: int | None = None
    size: int | tuple[int, int] | None = None
    cache: bool = True
    _frames: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.video_ids)

    def frames(self, i: int) -> np.ndarray:
        """Video ``i`` as ``uint8 [T, H, W, 3]`` (read on first use)."""
        if i in self._frames:
            return self._frames[i]
        arr = read_frames(self.video_paths[i], num_frames=self.num_frames, size=self.size)
        if self.cache:
            self._frames[i] = arr
        return arr

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        """``(frames, label)`` of video ``i``."""
        return self.frames(i), int(self.labels[i])

    def restrict(self, classes: Sequence[str]) -> RecognitionData:
        """The videos of ``classes`` only, relabelled ``0 .. len(classes) - 1`` in the given
        order (base / novel / zero-shot evaluation). Unknown names raise ``ValueError``."""
        classes = list(classes)
        unknown = [c for c in classes if c not in self.classes]
        if unknown or len(set(classes)) != len(classes):
            raise ValueError(f"restrict: unknown or repeated classes {unknown or classes}")
        new = {self.classes.index(c): k for k, c in enumerate(classes)}
        keep = [i for i, lab in enumerate(self.labels.tolist()) if lab in new]
        return replace(self, classes=classes, video_ids=[self.video_ids[i] for i in keep],
                       video_paths=[self.video_paths[i] for i in keep],
                       labels=np.asarray([new[int(self.labels[i])] for i in keep], np.int64),
                       _frames={})

    def __repr__(self) -> str:
        return (f"RecognitionData(split={self.split!r}, videos={len(self)}, "
                f"classes={len(self.classes)}, label_file='{self.label_file}')")


def read_classes(path: PathLike) -> list[str]:
    """Class names, one per line (surrounding spaces stripped); a blank line, a repeated name or
    an empty file raises ``ValueError("FILE:LINE: ...")``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    out: list[str] = []
    first: dict[str, int] = {}
    for lineno, line in _text_lines(path):
        name = line.strip()
        if not name:
            raise ValueError(f"{path}:{lineno}: blank line; expected one class name per line")
        if name in first:
            raise ValueError(f"{path}:{lineno}: class {name!r} repeats (first at line "
                             f"{first[name]})")
        first[name] = lineno
        out.append(name)
    if not out:
        raise ValueError(f"{path}: no classes")
    return out


def read_labels(path: PathLike, n_classes: int) -> list[tuple[str, int, int]]:
    """``(video_id, label, line)`` of a label file with lines ``video_id label`` (0-based int
    label); a blank or malformed line, a label outside ``[0, n_classes)``, a repeated video id
    or an empty file raises ``ValueError("FILE:LINE: ...")``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    out: list[tuple[str, int, int]] = []
    first: dict[str, int] = {}
    for lineno, line in _text_lines(path):
        where = f"{path}:{lineno}"
        parts = line.split()
        if not parts:
            raise ValueError(f"{where}: blank line; expected 'video_id label'")
        if len(parts) != 2:
            raise ValueError(f"{where}: expected 'video_id label' (2 fields), got "
                             f"{len(parts)}: {line.strip()!r:.80}")
        vid, lab = parts
        _check_video_id(vid, where)
        if not _INT.fullmatch(lab):
            raise ValueError(f"{where}: label {lab!r} is not an integer")
        label = int(lab)
        if not 0 <= label < n_classes:
            raise ValueError(f"{where}: label {label} out of range [0, {n_classes}) (the class "
                             f"list has {n_classes} classes)")
        if vid in first:
            raise ValueError(f"{where}: video {vid!r} repeats (first at line {first[vid]})")
        first[vid] = lineno
        out.append((vid, label, lineno))
    if not out:
        raise ValueError(f"{path}: no lines")
    return out


def load_recognition(root: PathLike, split: str, label_file: PathLike | None = None,
                     class_file: PathLike | None = None, video_dir: PathLike | None = None,
                     num_frames: int | None = None, size: int | tuple[int, int] | None = None,
                     cache: bool = True) -> RecognitionData:
    """Load one recognition split.

    Args:
        root: dataset root (``recognition/``, ``videos/``).
        split: ``"flat_train"``, ``"flat_test"``, ``"fewshot/flat_K4_seed0"``, ...; names the
            default label file ``root/recognition/{split}.txt``.
        label_file: another label file (``video_id label`` lines).
        class_file: the class list (default ``root/recognition/classes.txt``).
        video_dir: folder of the videos (default ``root/videos``).
        num_frames, size, cache: as in :func:`load_retrieval`.

    Raises:
        FileNotFoundError: the label or class file.
        ValueError: ``"FILE:LINE: ..."`` (see :func:`read_classes`, :func:`read_labels`);
            :class:`~readpvla.data.video.MissingVideoError` for a video without a file.
    """
    root = Path(root)
    lab = Path(label_file) if label_file is not None else root / "recognition" / f"{split}.txt"
    cls = Path(class_file) if class_file is not None else root / "recognition" / "classes.txt"
    if not lab.is_file():
        have = sorted(p.stem for p in (root / "recognition").glob("*.txt") if p.stem != "classes")
        raise FileNotFoundError(f"label file for split {split!r} not found: {lab}"
                                + (f" (available splits: {have})" if have else ""))
    classes = read_classes(cls)
    rows = read_labels(lab, len(classes))
    vdir = Path(video_dir) if video_dir is not None else root / "videos"
    paths = [_locate(vdir, vid, f"{lab}:{line}") for vid, _, line in rows]
    return RecognitionData(split=split, classes=classes, video_ids=[r[0] for r in rows],
                           video_paths=paths,
                           labels=np.asarray([r[1] for r in rows], dtype=np.int64),
                           label_file=lab, class_file=cls, num_frames=num_frames, size=size,
                           cache=cache)


def _json_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"not found: {path}")
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: bad JSON ({err.msg} at column {err.colno})"
                         ) from None


def _classes_of(root: Path, classes: Sequence[str] | None) -> list[str]:
    return list(classes) if classes is not None else read_classes(
        root / "recognition" / "classes.txt")


def load_class_split(root: PathLike, seed: int = 0, classes: Sequence[str] | None = None
                     ) -> dict[str, list[str]]:
    """``{"base": [...], "novel": [...]}`` of ``root/recognition/base_novel/seed{seed}.json``;
    checked: disjoint, each a known class, together every class."""
    root = Path(root)
    path = root / "recognition" / "base_novel" / f"seed{seed}.json"
    obj = _json_file(path)
    names = _classes_of(root, classes)
    return _check_partition(path, obj, ("base", "novel"), names)


def load_zeroshot(root: PathLike, classes: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``{"seen": [...], "unseen": [...]}`` of ``root/recognition/zeroshot.json``: ``unseen``
    classes have no video in the source (pretraining) splits."""
    root = Path(root)
    path = root / "recognition" / "zeroshot.json"
    return _check_partition(path, _json_file(path), ("seen", "unseen"),
                            _classes_of(root, classes))


def _check_partition(path: Path, obj: Any, keys: tuple[str, str], names: list[str]
                     ) -> dict[str, list[str]]:
    if not isinstance(obj, dict) or any(not isinstance(obj.get(k), list) for k in keys):
        raise ValueError(f"{path}: expected {{{keys[0]!r}: [...], {keys[1]!r}: [...]}}")
    a, b = (list(obj[k]) for k in keys)
    unknown = [c for c in a + b if c not in names]
    if unknown:
        raise ValueError(f"{path}: unknown classes {unknown[:5]}")
    if set(a) & set(b) or len(set(a)) != len(a) or len(set(b)) != len(b):
        raise ValueError(f"{path}: {keys[0]!r} and {keys[1]!r} overlap or repeat a class")
    if set(a) | set(b) != set(names):
        raise ValueError(f"{path}: classes in neither list: "
                         f"{sorted(set(names) - set(a) - set(b))[:5]}")
    return {keys[0]: a, keys[1]: b}


def load_descriptions(root: PathLike, n: int | None = None,
                      classes: Sequence[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Per class ``{"spatial": [...], "temporal": [...]}`` (MSTA) of
    ``root/recognition/descriptions.json`` (or that file itself), the first ``n`` of each (all
    if None). Every class of the class list needs at least ``n`` (>= 1) of each."""
    root = Path(root)
    path = root if root.suffix == ".json" else root / "recognition" / "descriptions.json"
    obj = _json_file(path)
    names = list(classes) if classes is not None else (
        read_classes(root / "recognition" / "classes.txt") if root.suffix != ".json" else
        list(obj) if isinstance(obj, dict) else [])
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected an object {{class: {{'spatial': [...], "
                         "'temporal': [...]}}}}")
    need = 1 if n is None else n
    out: dict[str, dict[str, list[str]]] = {}
    for c in names:
        d = obj.get(c)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: class {c!r} has no descriptions")
        entry = {}
        for kind in ("spatial", "temporal"):
            lst = d.get(kind)
            if (not isinstance(lst, list) or len(lst) < need
                    or not all(isinstance(s, str) and s.strip() for s in lst)):
                raise ValueError(f"{path}: class {c!r}: {kind!r} must be a list of at least "
                                 f"{need} non-empty strings")
            entry[kind] = list(lst if n is None else lst[:n])
        out[c] = entry
    return out
