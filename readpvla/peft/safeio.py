"""Checkpoint files that fail safely: atomic writes, header-first reads, named errors.

Adapters (:func:`readpvla.peft.save_adapter`) and backbones
(:func:`readpvla.backbones.checkpoint.save_backbone`) are each a pair of files, safetensors weights
and a JSON config. This module holds what both need:

- :class:`AtomicFiles` writes the files of one save into hidden temporary files beside the targets
  and renames them into place only when all are written; an error restores what was there.
- :func:`read_header` gives a safetensors file's tensor names, shapes, dtypes and metadata without
  reading any tensor, so a loader can check everything before it builds or copies anything.
- :func:`load_tensors` / :func:`check_finite` read tensors and refuse NaN / inf, naming the file
  and the tensor.

Nothing here unpickles: safetensors files hold raw tensor bytes and a JSON header.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

#: safetensors dtype code -> torch dtype, for the floating-point dtypes a checkpoint may hold
FLOAT_DTYPES: dict[str, torch.dtype] = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}
#: safetensors dtype code -> torch dtype name (for messages and the adapter JSON)
DTYPE_NAMES: dict[str, str] = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
ACCEPTED_FLOATS = ", ".join(DTYPE_NAMES[c] for c in FLOAT_DTYPES)

#: safetensors metadata key that holds a copy of the JSON config written beside the weights
CONFIG_COPY_KEY = "config_json"


def dtype_name(dtype: torch.dtype | str) -> str:
    """``torch.float32`` or ``"F32"`` -> ``"float32"``."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return DTYPE_NAMES.get(dtype, dtype)


# -- writing ---------------------------------------------------------------------------------


class AtomicFiles:
    """Write several files of one directory all together, or not at all.

    ::

        with AtomicFiles(path) as out:           # checks that `path` can be written, first
            out.write("model.safetensors", lambda f: save_file(state, str(f)))
            out.write("config.json", lambda f: f.write_text(text))
        # here both files are in place

    Entering checks the target (a directory, or creatable as one, and writable) before the caller
    does any work. Each :meth:`write` goes to a hidden temporary file in the directory (flushed to
    disk). On a normal exit the files are renamed over their targets in the order written
    (``os.replace``: each rename is atomic); if a rename fails, the files already renamed are put
    back from hard-link backups. On an exception inside the ``with`` nothing is renamed. Either way
    the temporary files, the backups and a directory this call created are removed.

    A process killed between two renames leaves the new first file beside the old second one;
    that is why the loaders also compare the config copy stored inside the weights with the JSON
    file (:data:`CONFIG_COPY_KEY`). Files of other names in the directory are never touched.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._created: list[Path] = []  # directories this save created, deepest first
        self._staged: list[tuple[str, Path]] = []
        self._token = secrets.token_hex(4)

    def __enter__(self) -> AtomicFiles:
        self._prepare()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            self._cleanup()

    # -- steps -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        d = self.directory
        if d.exists() and not d.is_dir():
            raise ValueError(f"cannot save into {d}: it exists and is not a directory")
        missing, p = [], d
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        if not p.is_dir():
            raise ValueError(f"cannot create {d}: {p} is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"cannot save into {d}: {p} is not writable")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create {d}: {e}") from e
        self._created = missing
        try:  # the real test: a file can be created there
            fd, probe = tempfile.mkstemp(prefix=".readpvla-probe-", dir=d)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            self._remove_created()
            raise ValueError(f"cannot save into {d}: it is not writable ({e})") from e

    def write(self, name: str, writer: Callable[[Path], Any]) -> None:
        """Stage file ``name``: ``writer(tmp_path)`` writes its content to a temporary file."""
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{self._token}.tmp",
                                   dir=self.directory)
        os.close(fd)
        tmp_path = Path(tmp)
        self._staged.append((name, tmp_path))
        writer(tmp_path)
        with open(tmp_path, "rb+") as fh:  # on disk before it replaces anything
            os.fsync(fh.fileno())

    def _commit(self) -> None:
        done: list[tuple[Path, Path | None]] = []  # (target, backup of the old target or None)
        try:
            for name, tmp in self._staged:
                target = self.directory / name
                backup = None
                if target.exists():
                    backup = self.directory / f".{name}.{self._token}.bak"
                    try:
                        os.link(target, backup)  # the old file survives the rename below
                    except OSError:
                        shutil.copy2(target, backup)
                done.append((target, backup))
                os.replace(tmp, target)
        except BaseException:
            for target, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)

    def _cleanup(self) -> None:
        for _, tmp in self._staged:
            tmp.unlink(missing_ok=True)
        for name, _ in self._staged:
            (self.directory / f".{name}.{self._token}.bak").unlink(missing_ok=True)
        if self._created and not any((self.directory / n).exists() for n, _ in self._staged):
            self._remove_created()

    def _remove_created(self) -> None:
        for p in self._created:  # deepest first; only if still empty
            try:
                p.rmdir()
            except OSError:
                break
        self._created = []


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header declares it."""

    shape: tuple[int, ...]
    dtype: str  # safetensors code: "F32", "I64", ...

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)


@dataclass(frozen=True)
class Header:
    """The header of a safetensors file: tensors and string metadata, no tensor data."""

    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]

    def config_copy(self) -> dict[str, Any] | None:
        """The JSON config stored in the metadata by the save that wrote this file, if any."""
        text = self.metadata.get(CONFIG_COPY_KEY)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.path}: the config stored in its metadata is not valid JSON "
                             f"({e})") from e
        if not isinstance(value, dict):
            raise ValueError(f"{self.path}: the config stored in its metadata is not a JSON object")
        return value


def read_header(path: str | Path) -> Header:
    """Names, shapes and dtypes of the tensors in ``path`` and its metadata; reads no tensor.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a complete, valid safetensors file (truncated, corrupted), naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {}
            for k in f.keys():
                s = f.get_slice(k)
                tensors[k] = TensorInfo(tuple(int(n) for n in s.get_shape()), str(s.get_dtype()))
    except Exception as e:  # safetensors raises its own SafetensorError
        raise ValueError(f"{path}: not a readable safetensors file, truncated or corrupted "
                         f"({e})") from e
    return Header(path, tensors, metadata)


def check_float_dtypes(header: Header, what: str = "tensor",
                       names: Iterable[str] | None = None) -> None:
    """Refuse any (or any of ``names``) tensor that is not float32/64, float16 or bfloat16."""
    for name in header.tensors if names is None else names:
        info = header.tensors[name]
        if info.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{header.path}: {what} {name!r} has dtype {info.dtype_name}; "
                             f"expected a floating-point dtype ({ACCEPTED_FLOATS})")


def load_tensors(header: Header, names: Iterable[str]) -> dict[str, Tensor]:
    """Read tensors ``names`` of the file (on CPU); a read error names the file and tensor."""
    out: dict[str, Tensor] = {}
    name = None
    try:
        with safe_open(str(header.path), framework="pt") as f:
            for name in names:
                out[name] = f.get_tensor(name)
    except Exception as e:
        raise ValueError(f"{header.path}: cannot read tensor {name!r} ({e}); truncated or "
                         "corrupted file?") from e
    return out


def check_finite(path: Path, name: str, t: Tensor, what: str = "tensor", note: str = "") -> None:
    """Refuse a floating tensor holding NaN or inf, naming the file and the tensor."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{path}: {what} {name!r} holds NaN or inf{note}")


__all__ = [
    "ACCEPTED_FLOATS",
    "CONFIG_COPY_KEY",
    "FLOAT_DTYPES",
    "AtomicFiles",
    "Header",
    "TensorInfo",
    "check_finite",
    "check_float_dtypes",
    "dtype_name",
    "load_tensors",
    "read_header",
]


def read_format_json(cfg_file: Path, fmt: str, max_version: int, what: str,
                     default_version: int | None = None) -> dict:
    """Parse a readpvla JSON file of format ``fmt`` (``what``: "adapter" / "backbone") whose
    ``format_version`` is a known one (1 .. ``max_version``; a missing one reads as
    ``default_version``); ``ValueError`` naming the file otherwise."""
    try:
        info = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{cfg_file}: invalid JSON ({e})") from e
    if not isinstance(info, dict) or info.get("format") != fmt:
        raise ValueError(f"{cfg_file}: not a readpvla {what} config (format != {fmt!r})")
    version = info.get("format_version", default_version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{cfg_file}: format_version {version!r} is not a known {what} format "
                         f"version (this readpvla reads 1 to {max_version})")
    if version > max_version:
        raise ValueError(f"{cfg_file}: format_version {version} is newer than this readpvla "
                         f"reads (up to {max_version}); upgrade readpvla to load it")
    return info
