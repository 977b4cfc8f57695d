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

Video towers that run every frame through an image transformer hold a third kind of layout: the
tokens of one video form a ``[T, P]`` grid (T frames, P token positions per frame: the CLS token,
any prompts, the patches), and READ should recur **along the frame axis**, once per position p:
the sequence ``x[t=0, p], x[1, p], ..., x[T-1, p]``, never across videos or positions. A grid
layout says so::

    with rp.peft.token_layout(model.vision_model, grid=(T, P), frame_mask=frame_mask):
        h = model.vision_model.encoder(x)   # x: [B*T, P, d] (frames in the batch axis)
                                            #  or [B, T*P, d] (frames along the tokens)

Both shapes hold the tokens in (video, frame, position) order in memory, so one rearrangement
serves both: ``[.., d] -> [B, T, P, d] -> [B*P, T, d]``; READ recurs over those ``B*P`` rows of
length T and puts the result back (:meth:`TokenLayout.to_time_major` /
:meth:`TokenLayout.from_time_major`). Padded frames (``frame_mask`` False) are skipped as padded
tokens are: their adapter output is 0 and they never feed a real frame.
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
    """Padding mask and modality segments of a batch of sequences, or the frame grid of videos.

    Args:
        mask: bool ``[B, T]``, True = real token (None: all real).
        segments: int ``[B, T]``, the modality index of each token (e.g. 0 = video clip,
            1 = word); None: one segment. The recurrence restarts at every segment and runs over
            the segment's real tokens in their order, wherever they sit in the sequence.
        grid: ``(T, P)``: the tokens of each video form T frames of P positions, stored frame
            by frame, either with the frames in the batch axis (``[B*T, P, d]``) or along the
            token axis (``[B, T*P, d]``). READ then recurs along the frames, once per (video,
            position). Excludes ``mask`` and ``segments``.
        frame_mask: bool ``[B, T]`` (grid layouts only), True = real frame (None: all real).
    """

    def __init__(self, mask: Tensor | None = None, segments: Tensor | None = None, *,
                 grid: tuple[int, int] | None = None, frame_mask: Tensor | None = None) -> None:
        self.grid: tuple[int, int] | None = None
        self.frame_mask: Tensor | None = None
        if grid is not None or frame_mask is not None:
            self._init_grid(mask, segments, grid, frame_mask)
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

    def _init_grid(self, mask: Tensor | None, segments: Tensor | None,
                   grid: tuple[int, int] | None, frame_mask: Tensor | None) -> None:
        if grid is None:
            raise ValueError("frame_mask needs grid=(T, P): it marks the real frames of a grid")
        if mask is not None or segments is not None:
            raise ValueError("a grid layout takes frame_mask, not mask / segments (the tokens of "
                             "a frame grid are all real; padded frames go in frame_mask)")
        if (not isinstance(grid, tuple | list) or len(grid) != 2
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in grid)):
            raise ValueError(f"grid must be (T, P), two positive integers, got {grid!r}")
        n_frames, n_pos = int(grid[0]), int(grid[1])
        if frame_mask is not None:
            if not isinstance(frame_mask, Tensor) or frame_mask.dim() != 2 \
                    or frame_mask.shape[1] != n_frames:
                raise ValueError(f"frame_mask must be a [B, T={n_frames}] tensor, got "
                                 f"{_describe(frame_mask)}")
            if frame_mask.dtype != torch.bool:
                if frame_mask.dtype.is_floating_point or ((frame_mask != 0) & (frame_mask != 1)).any():
                    raise ValueError("frame_mask must be bool or 0/1 integers")
                frame_mask = frame_mask.bool()
        self.grid, self.frame_mask = (n_frames, n_pos), frame_mask
        self._time_major: dict[int, TokenLayout | None] = {}  # B -> layout of the [B*P, T] rows

    # -- frame grids ---------------------------------------------------------------------------
    def grid_videos(self, shape: tuple[int, ...], where: str = "") -> int:
        """The number of videos B in a ``[B*T, P, ..]`` or ``[B, T*P, ..]`` tensor of this grid.

        Raises:
            ValueError: ``shape`` is neither (READ must not guess which axis is time).
        """
        n_frames, n_pos = self.grid  # type: ignore[misc]
        rows, length = int(shape[0]), int(shape[1])
        if length == n_pos and rows % n_frames == 0:
            b = rows // n_frames  # frames in the batch axis
        elif length == n_frames * n_pos:
            b = rows  # frames along the token axis
        else:
            raise ValueError(
                f"{where or 'READ'}: the token layout says every video is a grid of "
                f"T={n_frames} frames x P={n_pos} tokens, stored as [B*T, P, d] or [B, T*P, d], "
                f"but this output is {list(shape)}; the backbone opened a layout that does not "
                "fit the sequences it runs")
        if self.frame_mask is not None and self.frame_mask.shape[0] != b:
            raise ValueError(f"{where or 'READ'}: frame_mask holds {self.frame_mask.shape[0]} "
                             f"videos but the output {list(shape)} holds {b}")
        return b

    def to_time_major(self, z: Tensor) -> Tensor:
        """``[B*T, P, k]`` or ``[B, T*P, k]`` -> ``[B*P, T, k]``: row ``b*P + p`` is position p
        of video b over its frames 0..T-1."""
        n_frames, n_pos = self.grid  # type: ignore[misc]
        b = self.grid_videos(tuple(z.shape))
        k = z.shape[-1]
        z = z.reshape(b, n_frames, n_pos, k)  # (B, T, P, k): both layouts are (b, t, p) in memory
        return z.transpose(1, 2).reshape(b * n_pos, n_frames, k)  # (B*P, T, k)

    def from_time_major(self, h: Tensor, shape: tuple[int, ...]) -> Tensor:
        """The inverse of :meth:`to_time_major`, back to ``shape[:-1] + (k,)``."""
        n_frames, n_pos = self.grid  # type: ignore[misc]
        b, k = h.shape[0] // n_pos, h.shape[-1]
        h = h.reshape(b, n_pos, n_frames, k).transpose(1, 2)  # (B, T, P, k)
        return h.reshape(*shape[:-1], k)

    def time_major_layout(self, n_videos: int) -> TokenLayout | None:
        """The padding layout of the ``[B*P, T]`` rows (None: every frame is real)."""
        if n_videos not in self._time_major:
            fm = self.frame_mask
            if fm is None or bool(fm.all()):
                self._time_major[n_videos] = None
            else:  # (B, T) -> (B, P, T) -> (B*P, T)
                n_pos = self.grid[1]  # type: ignore[index]
                rows = fm[:, None, :].expand(-1, n_pos, -1).reshape(-1, fm.shape[1])
                self._time_major[n_videos] = TokenLayout(rows)
        return self._time_major[n_videos]

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(B, T)``, or None when the layout holds neither a mask nor segments (or is a grid)."""
        t = self.mask if self.mask is not None else self.segments
        return None if t is None else (t.shape[0], t.shape[1])

    @property
    def trivial(self) -> bool:
        """True when every token is real and there is a single segment (never for a grid)."""
        if self.grid is not None:
            return False
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
    scope: nn.Module, mask: Tensor | None = None, segments: Tensor | None = None, *,
    grid: tuple[int, int] | None = None, frame_mask: Tensor | None = None,
) -> Iterator[TokenLayout]:
    """Make ``mask`` / ``segments`` (or a frame ``grid``) visible to every READ layer inside
    ``scope``.

    Inner scopes override outer ones. A READ layer whose input is not ``[B, T, d]`` with the
    layout's ``(B, T)`` ignores a mask / segment layout (it then treats all tokens as real, one
    segment); an input that does not fit a grid layout raises ``ValueError`` (recurring along the
    tokens instead of the frames would silently mix patch positions). See :class:`TokenLayout`.
    """
    layout = mask if isinstance(mask, TokenLayout) else TokenLayout(
        mask, segments, grid=grid, frame_mask=frame_mask)
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
