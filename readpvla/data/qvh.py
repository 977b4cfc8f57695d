"""Temporal language grounding data in the QVHighlights / Moment-DETR format.

Layout of a dataset root (the Moment-DETR release layout, simplified)::

    ROOT/annotations/{split}.jsonl    one query per line (format below)
    ROOT/video_features/{vid}.npz     key "features":          [n_clips, D_v], one row per 2 s clip
    ROOT/text_features/qid{qid}.npz   key "last_hidden_state": [n_tokens, D_t]

An annotation line (QVHighlights ``highlight_*_release.jsonl``)::

    {"qid": 2579, "query": "A girl and her mother cooked ...", "duration": 150,
     "vid": "NUsG9BgSes0_210.0_360.0",
     "relevant_windows": [[82, 150]],            # seconds, 0 <= st < ed <= duration
     "relevant_clip_ids": [41, 42, ..., 74],     # 2 s clip indices, 0 <= id < ceil(duration / 2)
     "saliency_scores": [[1, 1, 2], ...],        # 3 annotator scores in 0..4 per relevant clip
     "domain": "dog"}                            # optional (our synthetic benchmark sets it)

Test splits may lack the three label fields. When ``ROOT/latent/{split}.jsonl`` (the synthetic
benchmark's hidden script) exists, :func:`load_tlg` adds its per-query fields
(:data:`LATENT_FIELDS`: the query ``kind``) to the records, for slicing the metrics
(``evaluate_tlg(..., group_by="kind")``); the files on disk are not changed. Real QVHighlights users point ``video_dir`` at
``clip_features/`` (or a list of folders, e.g. ``[slowfast_features/, clip_features/]``, whose
features are concatenated along D, as Moment-DETR does) and ``text_dir`` at
``clip_text_features/``.

**Clip count vs duration.** A video of ``duration`` seconds must have ``ceil(duration / clip_len)``
feature rows. Released QVHighlights features are sometimes one clip longer or shorter, so a
difference of :data:`CLIP_TOLERANCE` (= 1) row is repaired (an extra row is dropped, a missing one
repeats the last row); a larger difference raises ``ValueError`` naming the file.

Feature files are read with ``np.load(..., allow_pickle=False)`` and may be float16 on disk; the
loader returns float32. Every malformed annotation raises ``ValueError("FILE:LINE: ...")``: a
byte that is not UTF-8, bad JSON, a bad field, a repeated qid, a vid given two durations, label
fields present on some lines and absent on others (a file is all labelled or all unlabelled). A
file without any record raises too. Feature files are read lazily; every file that cannot be read,
holds NaN/inf, or whose width differs from the first file read from the same folder raises
``ValueError("FILE: ...")`` (a width mismatch names both files).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["CLIP_LEN", "CLIP_TOLERANCE", "LATENT_FIELDS", "TLGSample", "TLGDataset", "TLGBatch",
           "load_tlg", "collate_tlg", "read_annotations", "write_annotations", "save_npz",
           "load_features", "n_clips_for", "read_latent_fields", "add_latent_fields"]

CLIP_LEN = 2.0       # seconds per clip feature in QVHighlights
CLIP_TOLERANCE = 1   # feature rows that may differ from ceil(duration / clip_len) (repaired)
_REQUIRED = ("qid", "query", "duration", "vid")
_LABELS = ("relevant_windows", "relevant_clip_ids", "saliency_scores")
#: per-query fields of the synthetic benchmark's latent script (``ROOT/latent/{split}.jsonl``)
#: that :func:`load_tlg` adds to the annotation records: ``kind`` = ``"plain"``, ``"after"`` or
#: ``"before"`` (whether the query needs temporal order). Analysis only: :class:`TLGSample` has no
#: slot for them, so a model never sees them (the query text says "after" / "before" anyway).
LATENT_FIELDS = ("kind",)
_EPS = 1e-6

PathLike = str | Path


def n_clips_for(duration: float, clip_len: float = CLIP_LEN) -> int:
    """Number of clips covering ``duration`` seconds: ``ceil(duration / clip_len)``."""
    return max(1, math.ceil(duration / clip_len - 1e-9))


# ------------------------------------------------------------------------------------------------
# files: deterministic npz, JSON lines
# ------------------------------------------------------------------------------------------------
def _utf8_error(path: Path, data: bytes | None = None) -> ValueError | None:
    """``ValueError("PATH:LINE: ...")`` at the first byte of ``data`` (default: the file's bytes)
    that is not UTF-8, or None if all of it is. Lines count as Python's text mode counts them
    (``\\n``, ``\\r\\n`` and ``\\r`` end a line)."""
    if data is None:
        data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        head = data[: err.start].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        lineno = head.count("\n") + 1
        column = len(head) - head.rfind("\n")
        return ValueError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{data[err.start]:02x} at "
                          f"column {column}: {err.reason}); save the file as UTF-8")
    return None


def _json_lines(path: Path) -> Iterator[tuple[int, str, Any]]:
    """``(line number, "PATH:LINE", parsed JSON)`` for each non-blank line of a JSON-lines file;
    bad JSON raises ``ValueError("PATH:LINE: bad JSON (...)")``."""
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: bad JSON ({err.msg} at column {err.colno})") from None
        yield lineno, where, rec


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, numbered from 1.

    A byte that is not UTF-8 raises ``ValueError("PATH:LINE: not valid UTF-8 ...")`` instead of
    a bare ``UnicodeDecodeError`` (which names neither the file nor the line).
    """
    try:
        with open(path, encoding="utf-8") as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError as err:
        raise (_utf8_error(path) or ValueError(f"{path}: not valid UTF-8 ({err})")) from None


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _open_npz(path: Path, what: str = "") -> Any:
    """``np.load(path, allow_pickle=False)`` as an open ``NpzFile``; any failure (not a zip, a
    truncated or corrupt one, an empty file, a bare ``.npy``) raises ``ValueError`` naming
    ``path``."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as err:  # BadZipFile, EOFError, OSError, ValueError (pickled data), ...
        raise ValueError(f"{path}: cannot be read as .npz ({_why(err)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive{what}, got a bare array")
    return loaded


def _npz_array(npz: Any, key: str, where: str) -> np.ndarray:
    """``npz[key]``; a member that cannot be read (object array, bad CRC, corrupt deflate stream,
    bad header) raises ``ValueError(where + ": ...")``."""
    try:
        return npz[key]
    except MemoryError:
        raise
    except Exception as err:  # ValueError (object array), BadZipFile, zlib.error, EOFError, ...
        raise ValueError(f"{where} cannot be loaded ({_why(err)})") from None


def save_npz(path: PathLike, compress: bool = True, **arrays: np.ndarray) -> Path:
    """Write arrays to an ``.npz`` that ``np.load(path, allow_pickle=False)`` reads.

    Unlike ``np.savez`` the bytes depend only on the arrays (zip entries carry a fixed timestamp),
    so regenerating data gives byte-identical files. Object arrays are refused (no pickle).

    Args:
        path: output file (``.npz``).
        compress: deflate the entries (``np.savez_compressed``) or store them.
        **arrays: name -> array; each is stored as ``name.npy``.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            if arr.dtype == object:
                raise TypeError(f"array {name!r} has dtype object; only numeric arrays are saved")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return path


def write_annotations(path: PathLike, records: Iterable[dict[str, Any]]) -> Path:
    """Write one JSON object per line (keys in the given order, UTF-8, ``\\n`` endings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return (isinstance(x, int | float) and not isinstance(x, bool)) and math.isfinite(x)


def _validate(rec: Any, where: str, clip_len: float) -> dict[str, Any]:
    """Check one annotation record; raise ``ValueError(where + ': ...')`` on the first problem."""
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for key in _REQUIRED:
        if key not in rec:
            raise ValueError(f"{where}: missing field {key!r}")
    qid, query, duration, vid = (rec[k] for k in _REQUIRED)
    if not (_is_int(qid) or (isinstance(qid, str) and qid and "/" not in qid
                             and "\\" not in qid)):
        raise ValueError(f"{where}: 'qid' must be an int or a file-name-safe str (non-empty, no "
                         f"'/' or '\\'), got {qid!r}")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{where}: 'query' must be a non-empty string, got {query!r}")
    if not _is_num(duration) or duration <= 0:
        raise ValueError(f"{where}: 'duration' must be a positive number, got {duration!r}")
    if not isinstance(vid, str) or not vid or vid in (".", "..") or "/" in vid or "\\" in vid:
        raise ValueError(f"{where}: 'vid' must be a file-name-safe string, got {vid!r}")
    if "domain" in rec and not isinstance(rec["domain"], str):
        raise ValueError(f"{where}: 'domain' must be a string, got {rec['domain']!r}")
    n_clips = n_clips_for(duration, clip_len)

    windows = rec.get("relevant_windows")
    if windows is not None:
        if not isinstance(windows, list) or not windows:
            raise ValueError(f"{where}: 'relevant_windows' must be a non-empty list of [st, ed]")
        for k, w in enumerate(windows):
            if not (isinstance(w, list) and len(w) == 2 and all(_is_num(x) for x in w)):
                raise ValueError(f"{where}: relevant_windows[{k}] must be [st, ed] numbers, "
                                 f"got {w!r}")
            st, ed = w
            if ed <= st:
                raise ValueError(f"{where}: relevant_windows[{k}] = {w}: end must be > start")
            if st < -_EPS or ed > duration + _EPS:
                raise ValueError(f"{where}: relevant_windows[{k}] = {w} lies outside "
                                 f"[0, duration={duration}]")
    clip_ids = rec.get("relevant_clip_ids")
    if clip_ids is not None:
        if not isinstance(clip_ids, list) or not all(_is_int(c) for c in clip_ids):
            raise ValueError(f"{where}: 'relevant_clip_ids' must be a list of ints")
        bad = [c for c in clip_ids if not 0 <= c < n_clips]
        if bad:
            raise ValueError(f"{where}: relevant_clip_ids {bad[:5]} out of range "
                             f"[0, {n_clips}) for duration {duration} s")
        if len(set(clip_ids)) != len(clip_ids):
            raise ValueError(f"{where}: 'relevant_clip_ids' has duplicates")
    scores = rec.get("saliency_scores")
    if scores is not None:
        if not isinstance(scores, list):
            raise ValueError(f"{where}: 'saliency_scores' must be a list of 3-lists")
        for k, row in enumerate(scores):
            if not (isinstance(row, list) and len(row) == 3
                    and all(_is_int(s) and 0 <= s <= 4 for s in row)):
                raise ValueError(f"{where}: saliency_scores[{k}] = {row!r} must be 3 ints in 0..4")
        if clip_ids is None:
            raise ValueError(f"{where}: 'saliency_scores' given without 'relevant_clip_ids'")
        if len(scores) != len(clip_ids):
            raise ValueError(f"{where}: len(relevant_clip_ids) = {len(clip_ids)} but "
                             f"len(saliency_scores) = {len(scores)}")
    return rec


def read_annotations(path: PathLike, clip_len: float = CLIP_LEN) -> list[dict[str, Any]]:
    """Read and validate a QVHighlights JSONL annotation file.

    Args:
        path: the ``.jsonl`` file (UTF-8); blank lines are skipped.
        clip_len: seconds per clip (2 in QVHighlights), for the clip-id range check.

    Returns:
        The records (dicts) in file order (at least one).

    Raises:
        FileNotFoundError: no such file.
        ValueError: ``"PATH:LINE: what is wrong"`` for a byte that is not UTF-8, bad JSON, a
            missing field, a window with end <= start or outside ``[0, duration]``, clip ids out
            of ``[0, ceil(duration / clip_len))`` or duplicated, a saliency row that is not 3 ints
            in 0..4, a length mismatch between ``relevant_clip_ids`` and ``saliency_scores``, a
            repeated qid (or an int and a str qid naming the same ``qid{qid}.npz``), a vid whose
            duration differs from an earlier line's, a label field (``relevant_windows``,
            ``relevant_clip_ids``, ``saliency_scores``) present on this line but not on the
            first one or the other way round; ``"PATH: ..."`` for a file without any record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    records: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}                              # qid -> line
    text_files: dict[str, tuple[Any, int]] = {}            # str(qid) -> (qid, line)
    durations: dict[str, tuple[float, int]] = {}           # vid -> (duration, line)
    labelled: tuple[tuple[bool, ...], int] | None = None   # label fields of the first record
    for lineno, where, rec in _json_lines(path):
        rec = _validate(rec, where, clip_len)
        qid, vid, duration = rec["qid"], rec["vid"], rec["duration"]
        if qid in seen:
            raise ValueError(f"{where}: qid {qid!r} already used at line {seen[qid]}")
        seen[qid] = lineno
        other, other_line = text_files.setdefault(str(qid), (qid, lineno))
        if other_line != lineno:
            raise ValueError(f"{where}: qid {qid!r} and qid {other!r} (line {other_line}) both "
                             f"use the text features qid{qid}.npz")
        first, first_line = durations.setdefault(vid, (duration, lineno))
        if abs(duration - first) > _EPS:
            raise ValueError(f"{where}: vid {vid!r} has duration {duration} here but {first} at "
                             f"line {first_line}; a video has one duration")
        has = tuple(rec.get(k) is not None for k in _LABELS)
        if labelled is None:
            labelled = (has, lineno)
        elif has != labelled[0]:
            k = next(i for i in range(len(_LABELS)) if has[i] != labelled[0][i])
            this, then = ("has", "has none") if has[k] else ("has no", "has it")
            raise ValueError(f"{where}: {this} {_LABELS[k]!r} but line {labelled[1]} {then}; "
                             "label every line of a file or none (a test split has no labels)")
        records.append(rec)
    if not records:
        raise ValueError(f"{path}: no annotation records (the file is empty or has only blank "
                         "lines)")
    return records


def read_latent_fields(path: PathLike, fields: Sequence[str] = LATENT_FIELDS
                       ) -> dict[Any, dict[str, Any]]:
    """Per-query fields of a latent script (the synthetic benchmark's ``latent/{split}.jsonl``).

    A latent line is one video: ``{"vid", ..., "queries": [{"qid", "kind", "target",
    "anchor"}, ...]}``.

    Args:
        path: the latent ``.jsonl`` file.
        fields: which per-query fields to return (default :data:`LATENT_FIELDS`).

    Returns:
        ``{qid: {field: value}}`` for every query of the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: ``"PATH:LINE: ..."`` for bad JSON, a line without a ``queries`` list, a
            query without ``qid`` or one of ``fields``, or a repeated qid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latent script not found: {path}")
    out: dict[Any, dict[str, Any]] = {}
    for _, where, rec in _json_lines(path):
        queries = rec.get("queries") if isinstance(rec, dict) else None
        if not isinstance(queries, list):
            raise ValueError(f"{where}: a latent line needs a 'queries' list")
        for q in queries:
            if not isinstance(q, dict) or "qid" not in q:
                raise ValueError(f"{where}: every query needs a 'qid', got {q!r:.80}")
            missing = [f for f in fields if f not in q]
            if missing:
                raise ValueError(f"{where}: query {q['qid']!r} has no field(s) {missing}")
            if q["qid"] in out:
                raise ValueError(f"{where}: qid {q['qid']!r} appears twice")
            out[q["qid"]] = {f: q[f] for f in fields}
    return out


def add_latent_fields(records: Sequence[dict[str, Any]], latent_file: PathLike,
                      fields: Sequence[str] = LATENT_FIELDS) -> list[dict[str, Any]]:
    """Copies of ``records`` with the per-query ``fields`` of ``latent_file`` added, joined by qid
    (:func:`read_latent_fields`); ``records`` themselves are left unchanged.

    Raises:
        ValueError: a record's qid is not in the latent script, or a record already has one of
            the fields with another value (names the qid, the field and both values).
    """
    latent = read_latent_fields(latent_file, fields)
    out = []
    for rec in records:
        extra = latent.get(rec["qid"])
        if extra is None:
            raise ValueError(f"{latent_file}: no query {rec['qid']!r} (the annotations and the "
                             "latent script belong to different splits?)")
        for f, v in extra.items():
            if f in rec and rec[f] != v:
                raise ValueError(f"qid {rec['qid']!r}: field {f!r} is {rec[f]!r} in the "
                                 f"annotations but {v!r} in {latent_file}")
        out.append({**rec, **extra})
    return out


def load_features(path: PathLike, key: str, expected_rows: int | None = None) -> np.ndarray:
    """Load one feature matrix ``[n, D]`` from an ``.npz`` as float32.

    Args:
        path: the ``.npz`` file (read with ``allow_pickle=False``).
        key: the array name (``"features"`` for videos, ``"last_hidden_state"`` for queries).
        expected_rows: if given, the row count is fitted to it within :data:`CLIP_TOLERANCE`
            (drop the extra row / repeat the last row); a larger difference raises.

    Returns:
        float32 ``[n, D]`` (``n = expected_rows`` when given).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable ``.npz`` (empty, truncated, corrupt, a bare ``.npy``), key
            missing, rank != 2, zero rows or columns, non-finite values, or a row count beyond the
            tolerance; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    with _open_npz(path, f" with key {key!r}") as npz:
        if key not in npz.files:
            raise ValueError(f"{path}: no array {key!r} (has {sorted(npz.files)})")
        arr = _npz_array(npz, key, f"{path}: {key!r}")
    if arr.ndim != 2:
        raise ValueError(f"{path}: {key!r} must have rank 2 [n, D], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{path}: {key!r} is empty, shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{path}: {key!r} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: {key!r} contains NaN or inf "
                         f"({int((~np.isfinite(arr)).sum())} values)")
    if expected_rows is not None and arr.shape[0] != expected_rows:
        diff = arr.shape[0] - expected_rows
        if abs(diff) > CLIP_TOLERANCE:
            raise ValueError(f"{path}: {arr.shape[0]} clips but the duration needs "
                             f"{expected_rows} (tolerance {CLIP_TOLERANCE})")
        if diff > 0:
            arr = arr[:expected_rows]
        else:
            arr = np.concatenate([arr, np.repeat(arr[-1:], -diff, axis=0)], axis=0)
    return np.ascontiguousarray(arr)


# ------------------------------------------------------------------------------------------------
# dataset
# ------------------------------------------------------------------------------------------------
@dataclass
class TLGSample:
    """One query-video pair. Label fields are ``None`` on unlabelled (test) splits.

    Attributes:
        qid, vid, query, duration, domain: from the annotation line (``domain`` may be None).
        video: float32 ``[Nv, Dv]``, ``Nv = ceil(duration / clip_len)``.
        text: float32 ``[Nl, Dt]`` query token features.
        relevant_windows: ``[[st, ed], ...]`` in seconds.
        relevant_clip_ids: clip indices of the relevant clips.
        saliency_scores: one ``[s1, s2, s3]`` (0..4) per relevant clip.
    """

    qid: int | str
    vid: str
    query: str
    duration: float
    domain: str | None
    video: np.ndarray
    text: np.ndarray
    relevant_windows: list[list[float]] | None = None
    relevant_clip_ids: list[int] | None = None
    saliency_scores: list[list[int]] | None = None


class TLGDataset(Dataset):
    """A QVHighlights-format split as a ``torch.utils.data.Dataset`` of :class:`TLGSample`.

    Build it with :func:`load_tlg`. Items come in annotation-file order; features are read on
    first access and kept in memory when ``cache`` is True (videos are shared between queries).
    Every file read is checked against the first one read from the same folder: a different
    width (D) raises ``ValueError`` naming both files, so that mismatched features fail where
    they are read, not later in :func:`collate_tlg`.

    Attributes:
        records: the validated annotation dicts.
        split: the split name.
        video_dirs: folders whose ``{vid}.npz`` features are concatenated along D.
        text_dir: folder of ``qid{qid}.npz``.
        clip_len: seconds per clip.
    """

    def __init__(self, records: list[dict[str, Any]], video_dirs: Sequence[Path], text_dir: Path,
                 split: str = "", clip_len: float = CLIP_LEN, cache: bool = True) -> None:
        self.records = records
        self.video_dirs = [Path(d) for d in video_dirs]
        self.text_dir = Path(text_dir)
        self.split = split
        self.clip_len = clip_len
        self.cache = cache
        self._video: dict[str, np.ndarray] = {}
        self._text: dict[Any, np.ndarray] = {}
        self._width: dict[tuple[str, int], tuple[Path, int]] = {}  # folder -> first file, its D
        for rec in records:  # fail early, naming the query, if a file is missing
            for path in self.video_paths(rec["vid"]):
                if not path.is_file():
                    raise FileNotFoundError(f"video features for vid {rec['vid']!r} (qid "
                                            f"{rec['qid']!r}) not found: {path}")
            path = self.text_path(rec["qid"])
            if not path.is_file():
                raise FileNotFoundError(f"text features for qid {rec['qid']!r} not found: {path}")

    def video_paths(self, vid: str) -> list[Path]:
        """The feature file(s) of video ``vid``."""
        return [d / f"{vid}.npz" for d in self.video_dirs]

    def text_path(self, qid: int | str) -> Path:
        """The feature file of query ``qid``."""
        return self.text_dir / f"qid{qid}.npz"

    def __len__(self) -> int:
        return len(self.records)

    def _checked(self, slot: tuple[str, int], path: Path, key: str, arr: np.ndarray) -> np.ndarray:
        """``arr``, after checking its width against the first file read into ``slot``."""
        first, d = self._width.setdefault(slot, (path, arr.shape[1]))
        if arr.shape[1] != d:
            raise ValueError(f"{path}: {key!r} has {arr.shape[1]} columns but {first} has {d}; "
                             "all feature files of a folder must have the same width")
        return arr

    def _load_video(self, vid: str, duration: float) -> np.ndarray:
        if vid in self._video:
            return self._video[vid]
        n = n_clips_for(duration, self.clip_len)
        parts = [self._checked(("video", i), p, "features",
                               load_features(p, "features", expected_rows=n))
                 for i, p in enumerate(self.video_paths(vid))]
        video = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)  # (Nv, Dv)
        if self.cache:
            self._video[vid] = video
        return video

    def _load_text(self, qid: int | str) -> np.ndarray:
        if qid in self._text:
            return self._text[qid]
        path = self.text_path(qid)
        text = self._checked(("text", 0), path, "last_hidden_state",
                             load_features(path, "last_hidden_state"))          # (Nl, Dt)
        if self.cache:
            self._text[qid] = text
        return text

    def __getitem__(self, i: int) -> TLGSample:
        rec = self.records[i]
        return TLGSample(
            qid=rec["qid"], vid=rec["vid"], query=rec["query"], duration=float(rec["duration"]),
            domain=rec.get("domain"), video=self._load_video(rec["vid"], rec["duration"]),
            text=self._load_text(rec["qid"]), relevant_windows=rec.get("relevant_windows"),
            relevant_clip_ids=rec.get("relevant_clip_ids"),
            saliency_scores=rec.get("saliency_scores"))

    @property
    def has_labels(self) -> bool:
        """True when every record carries windows, clip ids and saliency scores."""
        return all(all(rec.get(k) is not None for k in _LABELS) for rec in self.records)

    def __repr__(self) -> str:
        return (f"TLGDataset(split={self.split!r}, n={len(self)}, video_dirs="
                f"{[str(d) for d in self.video_dirs]}, text_dir='{self.text_dir}')")


def load_tlg(root: PathLike, split: str, video_dir: PathLike | Sequence[PathLike] | None = None,
             text_dir: PathLike | None = None, annotation_file: PathLike | None = None,
             clip_len: float = CLIP_LEN, cache: bool = True,
             latent_file: PathLike | bool | None = None) -> TLGDataset:
    """Load one split of a QVHighlights-format dataset.

    Args:
        root: dataset root with ``annotations/``, ``video_features/``, ``text_features/``.
        split: annotation file stem, e.g. ``"train"``, ``"val"``, ``"dog_train"``.
        video_dir: folder of ``{vid}.npz`` (default ``root/video_features``), or several folders
            whose features are concatenated along D (e.g. SlowFast + CLIP for QVHighlights).
        text_dir: folder of ``qid{qid}.npz`` (default ``root/text_features``).
        annotation_file: the JSONL file (default ``root/annotations/{split}.jsonl``).
        clip_len: seconds per feature row (2 in QVHighlights).
        cache: keep loaded features in memory (right for low-resource splits; pass False for
            the full QVHighlights training set).
        latent_file: a latent script whose per-query fields (:data:`LATENT_FIELDS`, the query
            ``kind``) are added to the records (:func:`add_latent_fields`). Default (None):
            ``root/latent/{split}.jsonl`` when that file exists (the synthetic benchmark),
            nothing otherwise; False: never.

    Returns:
        A :class:`TLGDataset` in annotation-file order.

    Raises:
        FileNotFoundError: the annotation file, or any feature file (message names the vid/qid and
            the path).
        ValueError: a malformed annotation line (``"FILE:LINE: ..."``, see
            :func:`read_annotations`), an annotation file without records, or a latent script
            that does not cover every qid (:func:`add_latent_fields`). Feature files are
            read on first access; their errors (unreadable, NaN/inf, a row count that does not
            fit the duration, a width other than the folder's first file) come from there.
    """
    root = Path(root)
    if clip_len <= 0:
        raise ValueError(f"clip_len must be > 0, got {clip_len}")
    ann = Path(annotation_file) if annotation_file is not None else (
        root / "annotations" / f"{split}.jsonl")
    if not ann.is_file():
        have = sorted(p.stem for p in (root / "annotations").glob("*.jsonl"))
        raise FileNotFoundError(f"annotation file for split {split!r} not found: {ann}"
                                + (f" (available splits: {have})" if have else ""))
    if video_dir is None:
        video_dirs = [root / "video_features"]
    elif isinstance(video_dir, str | Path):
        video_dirs = [Path(video_dir)]
    else:
        video_dirs = [Path(d) for d in video_dir]
        if not video_dirs:
            raise ValueError("video_dir is an empty list")
    text = Path(text_dir) if text_dir is not None else root / "text_features"
    records = read_annotations(ann, clip_len=clip_len)
    if latent_file is None:
        default = root / "latent" / f"{split}.jsonl"
        latent_file = default if default.is_file() else False
    if latent_file is not False:
        if latent_file is True:
            raise ValueError("latent_file must be a path, None or False, not True")
        records = add_latent_fields(records, latent_file)
    return TLGDataset(records, video_dirs, text, split=split, clip_len=clip_len, cache=cache)


# ------------------------------------------------------------------------------------------------
# batching
# ------------------------------------------------------------------------------------------------
@dataclass
class TLGBatch:
    """A padded batch. Masks are True at real clips/tokens; padding is zero.

    Attributes:
        video: float32 ``[B, Nv_max, Dv]``;  video_mask: bool ``[B, Nv_max]``.
        text: float32 ``[B, Nl_max, Dt]``;   text_mask: bool ``[B, Nl_max]``.
        saliency: float32 ``[B, Nv_max]``: mean of the 3 annotator scores / 4 on relevant clips,
            0 elsewhere and at padding (None on unlabelled data).
        windows: per sample float32 ``[K_i, 2]`` ground-truth windows in seconds (None if
            unlabelled).
        span: float32 ``[B, 2]``: the first window as (center, width) / duration, in [0, 1] (None
            if unlabelled).
        duration: float32 ``[B]`` seconds.
        qid, vid, query, domain: lists of length B.
        clip_len: seconds per clip.
    """

    video: torch.Tensor
    video_mask: torch.Tensor
    text: torch.Tensor
    text_mask: torch.Tensor
    saliency: torch.Tensor | None
    windows: list[torch.Tensor] | None
    span: torch.Tensor | None
    duration: torch.Tensor
    qid: list[int | str]
    vid: list[str]
    query: list[str]
    domain: list[str | None]
    clip_len: float = CLIP_LEN

    def to(self, device: str | torch.device) -> TLGBatch:
        """A copy with every tensor on ``device`` (lists of strings are shared)."""
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device)
            elif f.name == "windows" and v is not None:
                v = [w.to(device) for w in v]
            moved[f.name] = v
        return TLGBatch(**moved)

    def __len__(self) -> int:
        return self.video.shape[0]


def _all_or_none(samples: Sequence[TLGSample], name: str) -> bool:
    have = [getattr(s, name) is not None for s in samples]
    if any(have) and not all(have):
        raise ValueError(f"batch mixes samples with and without {name!r}; batch labelled and "
                         "unlabelled splits separately")
    return all(have)


def collate_tlg(samples: Sequence[TLGSample], clip_len: float = CLIP_LEN) -> TLGBatch:
    r"""Pad a list of :class:`TLGSample` into a :class:`TLGBatch` (order kept).

    Saliency target of clip ``j`` of sample ``b``:

    .. math:: y_{b,j} = \frac{1}{4}\cdot\frac{1}{3}\sum_{a=1}^{3} s_{b,j,a}
              \ \text{if } j \in \text{relevant\_clip\_ids}_b, \quad 0 \text{ otherwise.}

    Span target: the first window ``[st, ed]`` as ``((st + ed) / 2, ed - st) / duration``.

    Args:
        samples: non-empty list; all videos share ``Dv`` and all queries share ``Dt``.
        clip_len: seconds per clip; each video must have ``ceil(duration / clip_len)`` rows.

    Returns:
        The :class:`TLGBatch` (usable as ``DataLoader(ds, collate_fn=collate_tlg)``).

    Raises:
        ValueError: empty list, differing feature sizes, a video whose row count does not match
            its duration, a clip id beyond the video, labelled and unlabelled samples mixed.
    """
    if len(samples) == 0:
        raise ValueError("collate_tlg got an empty list of samples")
    d_v = {s.video.shape[1] for s in samples}
    d_t = {s.text.shape[1] for s in samples}
    if len(d_v) > 1 or len(d_t) > 1:
        raise ValueError(f"samples disagree on feature sizes: video D {sorted(d_v)}, "
                         f"text D {sorted(d_t)}")
    n_v = [s.video.shape[0] for s in samples]
    for s, n in zip(samples, n_v):
        if n != n_clips_for(s.duration, clip_len):
            raise ValueError(f"qid {s.qid!r}: video has {n} clips but duration {s.duration} s "
                             f"needs {n_clips_for(s.duration, clip_len)} at clip_len {clip_len}")
    n_l = [s.text.shape[0] for s in samples]
    b, nv_max, nl_max = len(samples), max(n_v), max(n_l)
    video = torch.zeros(b, nv_max, d_v.pop())                                    # (B, Nv, Dv)
    text = torch.zeros(b, nl_max, d_t.pop())                                     # (B, Nl, Dt)
    video_mask = torch.zeros(b, nv_max, dtype=torch.bool)
    text_mask = torch.zeros(b, nl_max, dtype=torch.bool)
    for i, s in enumerate(samples):
        video[i, : n_v[i]] = torch.as_tensor(s.video, dtype=torch.float32)
        text[i, : n_l[i]] = torch.as_tensor(s.text, dtype=torch.float32)
        video_mask[i, : n_v[i]] = True
        text_mask[i, : n_l[i]] = True

    saliency = windows = span = None
    if _all_or_none(samples, "relevant_clip_ids") & _all_or_none(samples, "saliency_scores"):
        saliency = torch.zeros(b, nv_max)                                        # (B, Nv)
        for i, s in enumerate(samples):
            if any(not 0 <= c < n_v[i] for c in s.relevant_clip_ids):
                raise ValueError(f"qid {s.qid!r}: a relevant clip id is outside [0, {n_v[i]})")
            ids = torch.as_tensor(s.relevant_clip_ids, dtype=torch.long)
            scores = torch.as_tensor(s.saliency_scores, dtype=torch.float32).reshape(-1, 3)
            saliency[i, ids] = scores.mean(dim=1) / 4.0
    if _all_or_none(samples, "relevant_windows"):
        windows = [torch.as_tensor(s.relevant_windows, dtype=torch.float32).reshape(-1, 2)
                   for s in samples]
        first = torch.stack([w[0] for w in windows])                             # (B, 2)
        dur = torch.tensor([s.duration for s in samples], dtype=torch.float32)
        span = torch.stack([(first[:, 0] + first[:, 1]) / 2, first[:, 1] - first[:, 0]], dim=1)
        span = (span / dur[:, None]).clamp(0.0, 1.0)                             # (B, 2)
    return TLGBatch(
        video=video, video_mask=video_mask, text=text, text_mask=text_mask, saliency=saliency,
        windows=windows, span=span,
        duration=torch.tensor([s.duration for s in samples], dtype=torch.float32),
        qid=[s.qid for s in samples], vid=[s.vid for s in samples],
        query=[s.query for s in samples], domain=[s.domain for s in samples], clip_len=clip_len)
