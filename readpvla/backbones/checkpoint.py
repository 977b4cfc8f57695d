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
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["BACKBONE_CLASSES", "save_backbone", "load_backbone", "read_backbone_config",
           "register_backbone"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "readpvla-backbone"
FORMAT_VERSION = 1

#: class name -> "module:attribute" (imported on first use); extend with register_backbone
BACKBONE_CLASSES: dict[str, str] = {
    "CrossModalTLG": "readpvla.backbones.tlg:CrossModalTLG",
    "MomentDETR": "readpvla.backbones.moment_detr:MomentDETR",
}


def register_backbone(cls: type[nn.Module]) -> type[nn.Module]:
    """Make ``cls`` loadable by :func:`load_backbone` (it needs ``config_class`` and ``config``)."""
    if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
        raise TypeError(f"{cls.__name__} needs a `config_class` dataclass attribute")
    BACKBONE_CLASSES[cls.__name__] = f"{cls.__module__}:{cls.__qualname__}"
    return cls


def _resolve(name: str) -> type[nn.Module]:
    if name not in BACKBONE_CLASSES:
        raise ValueError(f"unknown backbone class {name!r}; known: {sorted(BACKBONE_CLASSES)}")
    module, attr = BACKBONE_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def save_backbone(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config into directory ``path`` (created).

    Args:
        model: a backbone with a ``config`` dataclass (e.g. :class:`CrossModalTLG`).
        path: output directory; ``model.safetensors`` and ``config.json`` are (over)written.
        meta: JSON-serialisable extras stored under ``"meta"`` (training recipe, metrics).

    Returns:
        ``Path(path)``.

    Raises:
        TypeError: the model has no config dataclass, or ``meta`` is not JSON-serialisable.
        ValueError: the model carries a readpvla adapter (save it with ``save_adapter``).
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
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "config": dataclasses.asdict(config),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "meta": meta or {},
    }
    try:
        text = json.dumps(info, indent=2)
    except TypeError as e:
        raise TypeError(f"meta must be JSON-serialisable: {e}") from e
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / WEIGHTS_NAME), metadata={"format": FORMAT, "class": name})
    (path / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")
    return path


def read_backbone_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a backbone directory (format checked)."""
    cfg_file = Path(path) / CONFIG_NAME
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {path}: not a readpvla backbone directory")
    try:
        info = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file}: invalid JSON ({e})") from e
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{cfg_file}: not a readpvla backbone config (format != {FORMAT!r})")
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{cfg_file}: format_version {info['format_version']} is newer than this "
                         f"readpvla ({FORMAT_VERSION}); upgrade readpvla")
    return info


def load_backbone(path: str | Path, expected_class: str | type[nn.Module] | None = None,
                  device: str | torch.device | None = None) -> nn.Module:
    """Rebuild the backbone saved in ``path`` and load its weights (in eval mode).

    Args:
        path: a directory written by :func:`save_backbone`.
        expected_class: if given (a name or a class), the checkpoint must hold that class.
        device: where to put the model (default CPU).

    Raises:
        FileNotFoundError: missing ``config.json`` or ``model.safetensors``.
        ValueError: another class than expected, an unknown class, a config field the class does
            not know, or a tensor whose name or shape differs from the rebuilt model (named).
    """
    path = Path(path)
    info = read_backbone_config(path)
    name = info.get("class")
    if expected_class is not None:
        want = expected_class if isinstance(expected_class, str) else expected_class.__name__
        if name != want:
            raise ValueError(f"{path} holds a {name!r} backbone, not the expected {want!r}")
    cls = _resolve(name)
    config_cls = cls.config_class
    fields = {f.name for f in dataclasses.fields(config_cls)}
    stored = dict(info.get("config", {}))
    unknown = sorted(set(stored) - fields)
    if unknown:
        raise ValueError(f"{path}: config field(s) {unknown} unknown to {config_cls.__name__} "
                         f"(known: {sorted(fields)}); checkpoint from another version or class?")
    model = cls(config_cls(**stored))
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
    state = load_file(str(weights))
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"{weights} does not match {name} with its config: missing "
                         f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
                         f"{extra[:3]}{'...' if len(extra) > 3 else ''}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{weights}: tensor {k!r} has shape {list(v.shape)} but {name} with "
                             f"this config expects {list(own[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{weights}: tensor {k!r} holds NaN or inf")
    model.load_state_dict(state)
    return model.to(device or "cpu").eval()
