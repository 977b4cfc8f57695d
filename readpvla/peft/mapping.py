"""One way to apply, count, save and load every method.

``apply`` freezes the backbone, lets the method inject its modules, then marks what trains in one
place (``config.is_trainable``); the same rule decides what an adapter checkpoint holds, so
``save_adapter`` / ``load_adapter`` are short: safetensors weights + a JSON config.

Failing safely: ``apply`` and ``load_adapter`` are transactions (an error leaves the model exactly
as it was, see :class:`~readpvla.peft.transaction.Undo`); ``save_adapter`` replaces both files or neither
(:class:`~readpvla.peft.safeio.AtomicFiles`); ``load_adapter`` checks the files' headers, dtypes,
shapes and values before it builds or copies anything.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from .config import PeftConfig, Target
from .layer import WrapperLayer
from .layout import _MaskHook, recurrent_layers
from .recipes import find_modules, resolve_targets
from .safeio import (
    CONFIG_COPY_KEY,
    AtomicFiles,
    Header,
    check_finite,
    check_float_dtypes,
    dtype_name,
    load_tensors,
    read_format_json,
    read_header,
)
from .transaction import Undo

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "readpvla-adapter"
#: 2 adds a copy of the JSON config inside the weights file and each tensor's dtype to the JSON
FORMAT_VERSION = 2


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
    refuse: Callable[[nn.Module, list[str]], None] | None = None,
) -> list[str]:
    """Replace each target module by ``make(original, name)``; return the wrapped names.

    ``refuse(model, names)`` may raise for targets the method cannot work on (READ: modules
    whose output has no token axis) before anything is wrapped.
    """
    names = resolve_targets(model, target, kind, what)
    check_called(model, names, what)
    if refuse is not None:
        refuse(model, names)
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
    """Hook the encoder / decoder stacks named by the recipes so READ sees their padding.

    A stack that holds READ layers also refuses a call that continues from a KV cache (see
    :func:`disable_kv_cache`).
    """
    try:
        stacks = find_modules(model, "stacks")
    except ValueError:
        stacks = []  # no recipe declares stacks: the backbone opens token_layout itself
    hooks = []
    for n in stacks:
        stack = model.get_submodule(n) if n else model
        hooks.append(_MaskHook(stack, guard_cache=bool(recurrent_layers(stack))))
    model._readpvla_hooks = hooks  # type: ignore[attr-defined]


def _read_outside_encoder(model: nn.Module) -> bool:
    """True if ``model`` (a generative ``transformers`` model) has a READ layer that runs during
    decoding: anywhere in a decoder-only model, in the decoder of an encoder-decoder."""
    reads = recurrent_layers(model)
    if not reads:
        return False
    encoder = None
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        get_encoder = getattr(model, "get_encoder", None)
        encoder = get_encoder() if callable(get_encoder) else None
    in_encoder = {id(m) for m in recurrent_layers(encoder)} if isinstance(encoder, nn.Module) else set()
    return any(id(m) not in in_encoder for m in reads)


def disable_kv_cache(model: nn.Module) -> None:
    """Make ``generate()`` run the decoder on the whole prefix where READ sits in it.

    READ's recurrence needs every token before t (:func:`requires_full_sequence`); with a KV cache
    each decoding step feeds the decoder one token, so the recurrence would restart at every step
    and ``generate()`` would write other tokens than a teacher-forced pass scores. For each
    ``transformers`` model inside ``model`` whose decoder holds READ, ``apply`` sets
    ``generation_config.use_cache = False`` (on a copy of the config object, so models sharing it
    are unaffected). This is the same choice readpvla's VG wrappers make in their ``generate``.
    An explicit ``generate(use_cache=True)`` raises ``ValueError`` at the first step that
    continues from the cache (the stack hooks of :func:`install_stack_hooks`).
    """
    for m in model.modules():
        gen = m.__dict__.get("generation_config")
        if gen is None or not getattr(gen, "use_cache", False) or not _read_outside_encoder(m):
            continue
        gen = copy.deepcopy(gen)
        gen.use_cache = False
        m.generation_config = gen


def _check_fresh(model: nn.Module) -> None:
    if getattr(model, "readpvla_config", None) is not None:
        raise ValueError(
            f"{type(model).__name__} already carries a {model.readpvla_config.method!r} adapter; "
            "apply methods to a fresh copy of the backbone"
        )


# -- apply / count ---------------------------------------------------------------------------


def apply(model: nn.Module, config: PeftConfig) -> nn.Module:
    """Freeze ``model``, insert the method of ``config``, mark its parameters trainable.

    The model is changed **in place** and returned (pass ``copy.deepcopy(backbone)`` to keep the
    original). Applying a second method to the same model raises. On any error ``model`` is left
    exactly as it was (nothing frozen, nothing wrapped, no hooks, no adapter marker).

    Where READ sits in the decoder of a ``transformers`` generative model, its
    ``generation_config.use_cache`` is set to False, so ``generate()`` feeds the recurrence the
    whole prefix (see :func:`disable_kv_cache`).

    Example::

        model = rp.peft.apply(backbone, rp.peft.READConfig(bottleneck=4, cell="rnn"))
        print(rp.peft.count_parameters(model))   # 0.02 (0.61%)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"apply needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, PeftConfig):
        raise TypeError(f"apply needs a readpvla.peft config, got {type(config).__name__}")
    _check_fresh(model)
    undo = Undo(model)
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        config.inject(model)
        model.readpvla_config = config  # type: ignore[assignment]
        if requires_full_sequence(model):
            install_stack_hooks(model)
            disable_kv_cache(model)
        mark_trainable(model)
        if count_parameters(model).trainable == 0:
            raise ValueError(f"{config.method}: no trainable parameter in {type(model).__name__}")
    except BaseException:
        undo.restore()
        raise
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
    (so incremental decoding with a KV cache must be off: ``generate(use_cache=False)``;
    ``apply`` sets that default on ``transformers`` models, see :func:`disable_kv_cache`)."""
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

    The save is all-or-nothing: ``path`` is checked first (a directory, or creatable as one, and
    writable; else ``ValueError``), both files are written to temporary files beside the targets
    and renamed into place only when both are complete, and an error on the way leaves an adapter
    already at ``path`` as it was. The weights file also stores a copy of the JSON config, so that
    :func:`load_adapter` refuses a pair of files from two different saves (a process killed
    between the two renames). Other files in ``path`` are not touched.

    Returns:
        ``Path(path)``.
    """
    config = _config_of(model)
    path = Path(path)
    with AtomicFiles(path) as out:  # checks the target before any work
        state = {n: p.detach().to("cpu").contiguous() for n, p in adapter_state_dict(model).items()}
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "backbone_class": type(model).__name__,
            "n_parameters": sum(t.numel() for t in state.values()),
            "parameters": {n: list(t.shape) for n, t in state.items()},
            "dtypes": {n: dtype_name(t.dtype) for n, t in state.items()},
        }
        text = json.dumps(meta, indent=2) + "\n"
        file_meta = {"format": FORMAT, CONFIG_COPY_KEY: text}
        out.write(WEIGHTS_NAME, lambda f: save_file(state, str(f), metadata=file_meta))
        out.write(CONFIG_NAME, lambda f: f.write_text(text, encoding="utf-8"))
    return path


def _read_meta(path: Path) -> tuple[dict, Path]:
    """The parsed, format-checked ``adapter_config.json`` of an adapter directory."""
    cfg_file = path / CONFIG_NAME
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {path}: not a readpvla adapter directory")
    return read_format_json(cfg_file, FORMAT, FORMAT_VERSION, "adapter"), cfg_file


def _config_from_meta(meta: dict, cfg_file: Path) -> PeftConfig:
    cfg = meta.get("config", {})
    method = cfg.get("method") if isinstance(cfg, dict) else None
    methods = _methods()
    if method not in methods:
        raise ValueError(f"{cfg_file}: unknown method {method!r}; known: {sorted(methods)}")
    return methods[method].from_dict(cfg)


def read_adapter_config(path: str | Path) -> PeftConfig:
    """The method config stored in an adapter directory (format and version checked)."""
    meta, cfg_file = _read_meta(Path(path))
    return _config_from_meta(meta, cfg_file)


def _check_files_agree(meta: dict, cfg_file: Path, header: Header) -> None:
    """The JSON config and the weights come from the same save and describe the same tensors."""
    weights = header.path
    fmt = header.metadata.get("format")
    if fmt != FORMAT:
        raise ValueError(f"{weights}: not readpvla adapter weights (metadata format {fmt!r})")
    copy_ = header.config_copy()
    if meta["format_version"] >= 2 or copy_ is not None:
        if copy_ is None:
            raise ValueError(
                f"{weights} holds no copy of its config but {cfg_file} is format_version "
                f"{meta['format_version']}: the two files come from different saves (an "
                "interrupted save_adapter?); save the adapter again")
        if copy_ != meta:
            diff = sorted(k for k in set(copy_) | set(meta) if copy_.get(k) != meta.get(k))
            raise ValueError(
                f"{cfg_file} and {weights} come from different saves (an interrupted "
                f"save_adapter?): the config stored with the weights differs in {diff}; "
                "save the adapter again")
    shapes = meta.get("parameters")
    if isinstance(shapes, dict):
        for name in sorted(set(shapes) | set(header.tensors)):
            info = header.tensors.get(name)
            if info is None or shapes.get(name) is None or list(info.shape) != shapes[name]:
                raise ValueError(
                    f"{weights} and {cfg_file} disagree on tensor {name!r}: "
                    f"{list(info.shape) if info else 'absent'} in the weights, "
                    f"{shapes.get(name, 'absent')} in the config")
    dtypes = meta.get("dtypes")
    if isinstance(dtypes, dict):
        for name, info in header.tensors.items():
            if dtypes.get(name) != info.dtype_name:
                raise ValueError(
                    f"{weights}: tensor {name!r} has dtype {info.dtype_name} but {cfg_file} "
                    f"records {dtypes.get(name)!r}")


def _check_expected(expected: dict[str, tuple[int, ...]], header: Header, model: nn.Module,
                    config: PeftConfig) -> None:
    """The file holds exactly the adapter tensors ``config`` builds on ``model``, same shapes."""
    weights, cls = header.path, type(model).__name__
    for name in sorted(header.tensors):
        shape = list(header.tensors[name].shape)
        if name not in expected:
            raise ValueError(
                f"adapter parameter {name!r} (shape {shape}) does not exist in {cls} with this "
                f"{config.method!r} config: wrong backbone?")
        if tuple(shape) != tuple(expected[name]):
            raise ValueError(
                f"adapter parameter {name!r} has shape {shape} in {weights} but "
                f"{list(expected[name])} in {cls}: wrong backbone?")
    missing = sorted(set(expected) - set(header.tensors))
    if missing:
        raise ValueError(f"{weights} lacks {len(missing)} adapter parameter(s), first {missing[0]!r}")


def _dry_run(model: nn.Module, config: PeftConfig) -> dict[str, tuple[int, ...]] | None:
    """The adapter tensors (name -> shape) ``config`` would build on ``model``, found by applying
    it to a copy of the module tree whose tensors live on the ``meta`` device (no memory).

    Returns None when the tree cannot be copied; ``load_adapter`` then builds for real and checks
    afterwards (rolled back on a mismatch).
    """
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        shadow_t = torch.empty_like(t, device="meta")
        if isinstance(t, nn.Parameter):
            shadow_t = nn.Parameter(shadow_t, requires_grad=t.requires_grad)
        memo[id(t)] = shadow_t
    memo[id(memo)] = [model]  # keep-alive list, as copy.deepcopy does
    try:
        shadow = copy.deepcopy(model, memo)
        shadow_config = copy.deepcopy(config)
    except Exception:  # an attribute that cannot be copied: check after the real build
        return None
    try:
        apply(shadow, shadow_config)
    except (ValueError, TypeError):
        raise  # the same error the real apply would give
    except Exception:  # an operation the meta device lacks: check after the real build
        return None
    return {n: tuple(p.shape) for n, p in adapter_state_dict(shadow).items()}


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Rebuild the adapter saved in ``path`` on ``model`` (a fresh backbone) and load its weights.

    The files are checked before anything is built or changed:

    - ``adapter_config.json``: format, ``format_version`` (1 and 2 load; a newer one is refused),
      the method config, and ``backbone_class`` (must be ``type(model).__name__``);
    - the safetensors header (read without loading tensors): a truncated or corrupted file is
      refused naming it; every tensor must be floating point (float32, float64, float16 or
      bfloat16; version 2 also records each tensor's dtype, which must match); it must come from
      the same save as the JSON (version 2 stores the JSON inside the weights);
    - names and shapes against what the config builds on ``model``, found by a dry run on the
      ``meta`` device: a wrong backbone or an edited config (say ``bottleneck: 20000``) fails
      naming the first parameter, with both shapes, before any memory is allocated;
    - values: NaN or inf is refused naming the tensor.

    Weights are cast to the dtype of the parameter they load into (an adapter trained in bfloat16
    loads into a float32 backbone). The call is a transaction: on any error ``model`` is left
    exactly as it was (structure, values, ``requires_grad``, hooks, no adapter marker).
    Nothing is unpickled.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"load_adapter needs a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    meta, cfg_file = _read_meta(path)
    config = _config_from_meta(meta, cfg_file)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
    header = read_header(weights)
    check_float_dtypes(header, "adapter parameter")
    _check_files_agree(meta, cfg_file, header)
    saved_on, cls = meta.get("backbone_class"), type(model).__name__
    if saved_on != cls:
        raise ValueError(f"{cfg_file}: the adapter was saved on a {saved_on!r} backbone, not on "
                         f"a {cls!r}; load it into the backbone class it was trained on")
    _check_fresh(model)
    undo = Undo(model)
    try:
        expected = _dry_run(model, config)
        if expected is not None:
            _check_expected(expected, header, model, config)
        state = load_tensors(header, header.tensors)
        for name, t in state.items():
            check_finite(weights, name, t, "parameter")
        existing = {id(p) for p in model.parameters()}
        apply(model, config)
        own = adapter_state_dict(model)
        _check_expected({n: tuple(p.shape) for n, p in own.items()}, header, model, config)
        staged = {}
        for name, p in own.items():
            t = state.pop(name).to(device=p.device, dtype=p.dtype)
            check_finite(weights, name, t, "parameter", f" once cast to {dtype_name(p.dtype)}")
            staged[name] = t
        with torch.no_grad():
            for name, p in own.items():
                t = staged.pop(name)
                if id(p) in existing:  # a backbone weight (Full, Partial, ...): keep its value
                    old = p.detach().clone()
                    undo.values.append((p, old))
                    p.copy_(t)
                    t.copy_(old)  # reuse t's memory for the backup: peak = file + one tensor
                    undo.values[-1] = (p, t)
                    del old
                else:  # created by apply: rolling back removes it anyway
                    p.copy_(t)
    except BaseException:
        undo.restore()
        raise
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
    "disable_kv_cache",
    "load_adapter",
    "mark_trainable",
    "read_adapter_config",
    "requires_full_sequence",
    "save_adapter",
]
