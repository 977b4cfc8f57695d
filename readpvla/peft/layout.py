"""Where the tokens of a sequence are: padding masks and modality segments for READ.

READ's recurrence (paper Eq. 5) runs along the token axis of each sequence. Two things decide
which tokens one recurrence sees:

- the padding mask: padded positions must never feed real ones;
- the modality segments: where one block's sequence holds video clips *and* words (a joint
  encoder), the recurrence runs within each modality separately — the last clip is not the
  "previous token" of the first word.

A :class:`TokenLayout` holds both; :func:`token_layout` makes it visible to every READ layer
inside a module while that module runs::

    with rp.peft.token_layout(model.encoder, mask=mask, segments=segments):
        h = model.encoder(x)

Our own backbones do this in their ``forward``; for ``transformers`` models the injector
installs hooks on the encoder / decoder stacks that read their ``attention_mask`` (see
:mod:`readpvla.peft.recipes`), so users of BERT / BART / T5 / CLIP need not do anything.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# id(recurrent layer) -> the layout it must use right now. A contextvar, so nested scopes and
# threads behave: an inner scope (an encoder) overrides an outer one (the whole model).
_ACTIVE: contextvars.ContextVar[dict[int, TokenLayout] | None] = contextvars.ContextVar(
    "readpvla_token_layout", default=None
)


@dataclass(frozen=True)
class _Groups:
    """Index tensors that move real tokens into left-aligned per-(item, segment) rows."""

    flat_pos: Tensor  # (n_real,) positions in the flattened (B*T) sequence, grouped
    group: Tensor  # (n_real,) row of the packed tensor
    rank: Tensor  # (n_real,) column (time step) inside that row
    n_groups: int
    max_len: int


class TokenLayout:
    """Padding mask and modality segments of a batch of sequences.

    Args:
        mask: bool ``[B, T]``, True = real token (None: all real).
        segments: int ``[B, T]``, the modality index of each token (e.g. 0 = video clip,
            1 = word); None: one segment. The recurrence restarts at every segment and runs over
            the segment's real tokens in their order, wherever they sit in the sequence.
    """

    def __init__(self, mask: Tensor | None = None, segments: Tensor | None = None) -> None:
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dim() != 2:
                raise ValueError(f"mask must be a [B, T] tensor, got {_describe(mask)}")
            if mask.dtype != torch.bool:
                if mask.dtype.is_floating_point or mask.dtype.is_complex:
                    raise ValueError(f"mask must be bool or 0/1 integers, got dtype {mask.dtype}")
                if ((mask != 0) & (mask != 1)).any():
                    raise ValueError("an integer mask must hold only 0 and 1")
                mask = mask.bool()
        if segments is not None:
            if not isinstance(segments, Tensor) or segments.dim() != 2:
                raise ValueError(f"segments must be a [B, T] tensor, got {_describe(segments)}")
            if segments.dtype.is_floating_point or segments.dtype == torch.bool:
                raise ValueError(f"segments must be an integer tensor, got dtype {segments.dtype}")
            if segments.numel() and segments.min() < 0:
                raise ValueError("segment indices must be >= 0")
            if mask is not None and segments.shape != mask.shape:
                raise ValueError(
                    f"mask {tuple(mask.shape)} and segments {tuple(segments.shape)} differ in shape"
                )
        self.mask = mask
        self.segments = segments
        self._cache: dict[torch.device, _Groups] = {}

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(B, T)``, or None when the layout holds neither a mask nor segments."""
        t = self.mask if self.mask is not None else self.segments
        return None if t is None else (t.shape[0], t.shape[1])

    @property
    def trivial(self) -> bool:
        """True when every token is real and there is a single segment."""
        all_real = self.mask is None or bool(self.mask.all())
        one_segment = self.segments is None or bool((self.segments == self.segments[:, :1]).all())
        return all_real and one_segment

    def groups(self, device: torch.device) -> _Groups:
        """The packing indices (computed once per device)."""
        if device not in self._cache:
            self._cache[device] = self._compute_groups(device)
        return self._cache[device]

    def _compute_groups(self, device: torch.device) -> _Groups:
        b, t = self.shape  # type: ignore[misc]
        mask = self.mask if self.mask is not None else torch.ones(b, t, dtype=torch.bool)
        seg = self.segments if self.segments is not None else torch.zeros(b, t, dtype=torch.long)
        mask, seg = mask.to(device), seg.to(device=device, dtype=torch.long)
        n_seg = int(seg.max()) + 1 if seg.numel() else 1
        gid = torch.arange(b, device=device)[:, None] * n_seg + seg  # (B, T) group of each token
        flat_pos = mask.flatten().nonzero().squeeze(1)  # real tokens, in (item, time) order
        g = gid.flatten()[flat_pos]
        order = torch.sort(g, stable=True).indices  # stable: keeps time order inside a group
        flat_pos, g = flat_pos[order], g[order]
        counts = torch.bincount(g, minlength=b * n_seg)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(g.numel(), device=device) - starts[g]
        compact = torch.cumsum(counts > 0, 0) - 1  # drop empty groups
        n_groups = int((counts > 0).sum())
        max_len = int(counts.max()) if counts.numel() else 0
        return _Groups(flat_pos, compact[g], rank, n_groups, max_len)


def _describe(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


def recurrent_layers(scope: nn.Module) -> list[nn.Module]:
    """All modules inside ``scope`` that read a token layout (READ layers)."""
    return [m for m in scope.modules() if getattr(m, "reads_token_layout", False)]


@contextmanager
def token_layout(
    scope: nn.Module, mask: Tensor | None = None, segments: Tensor | None = None
) -> Iterator[TokenLayout]:
    """Make ``mask`` / ``segments`` visible to every READ layer inside ``scope``.

    Inner scopes override outer ones. A READ layer whose input is not ``[B, T, d]`` with the
    layout's ``(B, T)`` ignores the layout (it then treats all tokens as real, one segment).
    """
    layout = mask if isinstance(mask, TokenLayout) else TokenLayout(mask, segments)
    active = dict(_ACTIVE.get() or {})
    for layer in recurrent_layers(scope):
        active[id(layer)] = layout
    token = _ACTIVE.set(active)
    try:
        yield layout
    finally:
        _ACTIVE.reset(token)


def active_layout(layer: nn.Module) -> TokenLayout | None:
    """The layout in force for ``layer`` now (None outside any :func:`token_layout`)."""
    active = _ACTIVE.get()
    return None if active is None else active.get(id(layer))


# -- hooks for transformers' encoder / decoder stacks ---------------------------------------


#: the names under which a stack's forward receives a KV cache (transformers 5: ``cache``)
_CACHE_ARGS = ("cache", "past_key_values", "past_key_value")


class _MaskHook:
    """Forward pre/post hooks that open a :func:`token_layout` from the ``attention_mask``
    argument a stack is called with (2-D masks only; 4-D attention biases are ignored).

    With ``guard_cache`` (the stack holds READ layers) a call that continues from a non-empty KV
    cache raises ``ValueError``: the recurrence would see only the new tokens, so the outputs
    would differ from a full pass. ``apply`` turns the cache off by default
    (:func:`readpvla.peft.disable_kv_cache`); only an explicit ``generate(use_cache=True)`` gets
    here.
    """

    def __init__(self, module: nn.Module, arg: str = "attention_mask",
                 guard_cache: bool = False) -> None:
        self.arg = arg
        self.guard_cache = guard_cache
        try:
            self.signature: inspect.Signature | None = inspect.signature(module.forward)
        except (TypeError, ValueError):  # pragma: no cover - builtins
            self.signature = None
        self.stack: list[object] = []
        self.handles = [
            module.register_forward_pre_hook(self.pre, with_kwargs=True),
            module.register_forward_hook(self.post, always_call=True),
        ]

    def _arg(self, name: str, args: tuple, kwargs: dict) -> object:
        if name in kwargs:
            return kwargs[name]
        if self.signature is not None and args:
            try:
                bound = self.signature.bind_partial(*args)
            except TypeError:
                return None
            return bound.arguments.get(name)
        return None

    def _mask(self, args: tuple, kwargs: dict) -> Tensor | None:
        return self._arg(self.arg, args, kwargs)  # type: ignore[return-value]

    def pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.guard_cache and any(_cached_length(self._arg(n, args, kwargs))
                                    for n in _CACHE_ARGS):
            raise ValueError(
                f"{type(module).__name__} holds READ layers, whose recurrence needs the whole "
                "token prefix, but this call continues from a KV cache and would feed them only "
                "the new tokens (a silently different output). Decode without a cache: "
                "generate(..., use_cache=False), the default after rp.peft.apply.")
        mask = self._mask(args, kwargs)
        if not (isinstance(mask, Tensor) and mask.dim() == 2):
            mask = None  # no mask (or a 4-D bias): all tokens real inside this stack
        ctx = token_layout(module, mask=mask)
        ctx.__enter__()
        self.stack.append(ctx)  # popped by post (which runs even if the call raises)

    def post(self, module: nn.Module, args: tuple, output: object) -> None:
        if self.stack:
            self.stack.pop().__exit__(None, None, None)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _cached_length(cache: object) -> int:
    """Tokens already in a KV cache (a ``transformers`` Cache or legacy tuples); 0 if none."""
    if cache is None:
        return 0
    get = getattr(cache, "get_seq_length", None)
    if callable(get):
        try:
            return int(get())
        except Exception:  # pragma: no cover - exotic caches
            return 0
    if isinstance(cache, tuple | list) and cache:
        first = cache[0]
        if isinstance(first, tuple | list) and first and isinstance(first[0], Tensor):
            return int(first[0].shape[-2])
    return 0
