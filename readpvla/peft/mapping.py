"""One way to apply, count, save and load every method.

``apply`` freezes the backbone, lets the method inject its modules, then marks what trains in one
place (``config.is_trainable``); the same rule decides what an adapter checkpoint holds, so
``save_adapter`` / ``load_adapter`` are a few lines: safetensors weights + a JSON config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .config import PeftConfig, Target
from .layer import WrapperLayer
from .layout import _MaskHook
from .recipes import find_modules, resolve_targets

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 1


def _methods() -> dict[str, type[PeftConfig]]:
    from . import METHODS

    return METHODS


# -- injection helpers the method configs use ------------------------------------------------


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def check_called(model: nn.Module, names: list[str], what: str) -> None:
    """Refuse targets whose ``forward`` the model never calls.

    ``nn.MultiheadAttention`` reads ``out_proj.weight`` directly instead of calling
    ``out_proj``, so a wrapper (READ, Adapter, LoRA) put there would silently do nothing.
    """
    for name in names:
        parent_name, _, _ = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(parent, nn.MultiheadAttention):
            raise ValueError(
                f"{what}: {name} sits inside nn.MultiheadAttention, which never calls it "
                "(it reads out_proj.weight directly), so an adapter there would do nothing; "
                "write the attention with explicit q/k/v/o nn.Linear layers or target other modules"
            )


def wrap_targets(
    model: nn.Module,
    target: Target,
    kind: str,
    what: str,
    make: Callable[[nn.Module, str], nn.Module],
) -> list[str]:
    """Replace each target module by ``make(original, name)``; return the wrapped names."""
    names = resolve_targets(model, target, kind, what)
    check_called(model, names, what)
    for name in names:
        base = model.get_submodule(name)
        if isinstance(base, WrapperLayer):
            raise ValueError(f"{what}: {name} is already wrapped by {type(base).__name__}")
        _set_module(model, name, make(base, name))
    return names


def is_wrapper_param(model: nn.Module, name: str, cls: type[WrapperLayer]) -> bool:
    """True if parameter ``name`` belongs to a ``cls`` wrapper but not to its ``base_layer``."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        owner = ".".join(parts[:i])
        if isinstance(model.get_submodule(owner), cls):
            return parts[i] != cls.base_name
    return False


def install_stack_hooks(model: nn.Module) -> None:
    """Hook the encoder / decoder stacks named by the recipes so READ sees their padding."""
    try:
        stacks = find_modules(model, "stacks")
    except ValueError:
        stacks = []  # no recipe declares stacks: the backbone opens token_layout itself
    hooks = [_MaskHook(model.get_submodule(n) if n else model) for n in stacks]
    model._readpvla_hooks = hooks  # type: ignore[attr-defined]


# -- apply / count ---------------------------------------------------------------------------


def apply(model: nn.Module, config: PeftConfig) -> nn.Module:
    """Freeze ``model``, insert the method of ``config``, mark its parameters trainable.

    The model is changed **in place** and returned (pass ``copy.deepcopy(backbone)`` to keep the
    original). Applying a second method to the same model raises.

    Example::

        model = rp.peft.apply(backbone, rp.peft.READConfig(bottleneck=4, cell="rnn"))
        print(rp.peft.count_parameters(model))   # 0.02 (0.61%)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"apply needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, PeftConfig):
        raise TypeError(f"apply needs a readpvla.peft config, got {type(config).__name__}")
    if getattr(model, "readpvla_config", None) is not None:
        raise ValueError(
            f"{type(model).__name__} already carries a {model.readpvla_config.method!r} adapter; "
            "apply methods to a fresh copy of the backbone"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    config.inject(model)
    model.readpvla_config = config  # type: ignore[assignment]
    if requires_full_sequence(model):
        install_stack_hooks(model)
    mark_trainable(model)
    if count_parameters(model).trainable == 0:
        raise ValueError(f"{config.method}: no trainable parameter in {type(model).__name__}")
    return model


def mark_trainable(model: nn.Module) -> None:
    """The one place that decides what trains: the config's rule, nothing else."""
    config = _config_of(model)
    for name, p in model.named_parameters():
        p.requires_grad_(config.is_trainable(name, model))


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The method's own weights (what trains), by parameter name."""
    config = _config_of(model)
    return {n: p for n, p in model.named_parameters() if config.is_trainable(n, model)}


def requires_full_sequence(model: nn.Module) -> bool:
    """True if the model holds READ layers, whose recurrence needs the whole token prefix
    (so incremental decoding with a KV cache must be off: ``generate(use_cache=False)``)."""
    return any(getattr(m, "reads_token_layout", False) for m in model.modules())


@dataclass(frozen=True)
class ParamCount:
    """Trainable and total parameters; ``str()`` prints the paper's "#params (M)" cell."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        """Trainable share of all parameters, in percent."""
        return 100.0 * self.trainable / self.total if self.total else 0.0

    @property
    def millions(self) -> float:
        return self.trainable / 1e6

    def __str__(self) -> str:
        m, p = self.millions, self.percent
        # two significant digits below 0.01 M: small adapters (4.2K vs 5.3K) must stay apart
        ms = f"{m:.2f}" if m >= 0.01 or m == 0 else f"{m:#.2g}"
        ps = f"{p:.2f}" if p >= 0.01 or p == 0 else f"{p:.2g}"
        return f"{ms} ({ps}%)"


def count_parameters(model: nn.Module) -> ParamCount:
    """Trainable / total parameter counts (shared weights counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():  # parameters() already skips tied duplicates
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return ParamCount(trainable, total)


def _config_of(model: nn.Module) -> PeftConfig:
    config = getattr(model, "readpvla_config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} has no readpvla adapter; call rp.peft.apply first")
    return config


# -- save / load -----------------------------------------------------------------------------


def save_adapter(model: nn.Module, path: str | Path) -> Path:
    """Write the adapter's weights (safetensors) and its config (JSON) into directory ``path``.

    Only what the method trains is written (READ: its own weights; Full: everything).
    """
    config = _config_of(model)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {n: p.detach().to("cpu").contiguous() for n, p in adapter_state_dict(model).items()}
    meta = {
        "format": "readpvla-adapter",
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "backbone_class": type(model).__name__,
        "n_parameters": sum(t.numel() for t in state.values()),
        "parameters": {n: list(t.shape) for n, t in state.items()},
    }
    save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "readpvla-adapter"})
    (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_adapter_config(path: str | Path) -> PeftConfig:
    """The method config stored in an adapter directory."""
    cfg_file = Path(path) / CONFIG_NAME
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {path}: not a readpvla adapter directory")
    try:
        meta = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file}: invalid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != "readpvla-adapter":
        raise ValueError(f"{cfg_file}: not a readpvla adapter config")
    cfg = meta.get("config", {})
    method = cfg.get("method") if isinstance(cfg, dict) else None
    methods = _methods()
    if method not in methods:
        raise ValueError(f"{cfg_file}: unknown method {method!r}; known: {sorted(methods)}")
    return methods[method].from_dict(cfg)


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Rebuild the adapter saved in ``path`` on ``model`` (a fresh backbone) and load its weights.

    Raises ``ValueError`` naming the first parameter whose name or shape does not match the
    backbone (with both shapes), so a checkpoint from another backbone fails loudly.
    """
    path = Path(path)
    config = read_adapter_config(path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
    state = load_file(str(weights))
    model = apply(model, config)
    own = adapter_state_dict(model)
    for name in sorted(state):
        if name not in own:
            raise ValueError(
                f"adapter parameter {name!r} (shape {list(state[name].shape)}) does not exist in "
                f"{type(model).__name__} with this {config.method!r} config: wrong backbone?"
            )
        if tuple(state[name].shape) != tuple(own[name].shape):
            raise ValueError(
                f"adapter parameter {name!r} has shape {list(state[name].shape)} in {weights} "
                f"but {list(own[name].shape)} in {type(model).__name__}: wrong backbone?"
            )
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{weights} lacks {len(missing)} adapter parameter(s), first {missing[0]!r}")
    with torch.no_grad():
        for name, p in own.items():
            t = state[name]
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise ValueError(f"{weights}: parameter {name!r} holds NaN or inf")
            p.copy_(t.to(device=p.device, dtype=p.dtype))
    return model


def numel_regex(model: nn.Module, pattern: str) -> int:
    """Number of parameter elements whose name fully matches ``pattern`` (for tests/notebooks)."""
    rx = re.compile(pattern)
    return sum(p.numel() for n, p in model.named_parameters() if rx.fullmatch(n))


__all__ = [
    "ParamCount",
    "adapter_state_dict",
    "apply",
    "count_parameters",
    "load_adapter",
    "mark_trainable",
    "read_adapter_config",
    "requires_full_sequence",
    "save_adapter",
]
