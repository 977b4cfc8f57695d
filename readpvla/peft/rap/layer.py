r"""RAP's modules: low-rank modulation (LoRM) and asynchronous self-attention (ASA).

Cao et al., "RAP: Efficient Text-Video Retrieval with Sparse-and-Correlated Adapter", ACL
Findings 2024, Sections 3.2-3.3. No code was released; every choice the paper leaves open is
marked **(choice)** below.

**LoRM, video (Eq. 1-2).** In block l of the video tower, before the block runs, the tokens of
frame t (CLS and patches alike) are scaled and shifted::

    c_v = c^a c^b,  s_v = s^a s^b           c^a, s^a: [T, R]   c^b, s^b: [R, D_v]
    u[t, n] = (1 + c_v[t]) * x[t, n] + s_v[t]                      (Eq. 2, u replaces x)

**(choice)** The paper writes ``u = c_v * x + s_v``; a scale that is a product of factors cannot
start at 1 while every factor trains, so we modulate around 1. c^a and s^a start at 0 (the
block is unchanged at step 0) and c^b, s^b at N(0, 1/R), so the first step moves c^a and s^a and
the second step every factor, and c_v, s_v have rank <= R at all times. A video with T' < T
frames uses rows 0..T'-1; more than T frames is an error.

**LoRM, text (Eq. 3).** ``z = (1 + c_t) * w + s_t`` on the sentence feature w (full rank,
``[D_t]``). **(choice)** The paper modulates CLIP's EOS state per layer; our text towers pool
(MiniLM averages its tokens), so we modulate the pooled sentence feature once, before the text
projection.

**ASA, selection (Eq. 5-6).** Per video: the mean of its real frames' CLS states f, projected,
picks the candidate sentence w* with the highest ``Proj(f) . w``; then per frame the K patches
with the highest ``Proj(u_t^n) . w*``. **(choice)** Proj is the backbone's own frozen
``post_layernorm`` + ``visual_projection`` (the paper calls the selection parameter-free and
Proj a map from the visual to the text space: CLIP's projection is exactly that). Candidates:
the batch's sentences in training, all test sentences at test time, so a video is encoded once
per candidate set, not once per query. Cost per video and block: one projection of its T x N
patches (T N D_v D) and T N + M dot products of width D (M candidates); changing the candidate
set means encoding the videos again.

**ASA, warping (Eq. 7-8).** For a selected patch n of frame t, its key and value are replaced
by those of patch ``n + gamma_n`` of frame ``t + delta_t`` (gamma ``[N]``, delta ``[T]``, shared by
all blocks); every query of the frame then attends to the warped keys (Eq. 8 with the frozen
W_q, W_k, W_v). **(choice)** Offsets are real numbers, made differentiable by linear
interpolation between the two neighbouring frames (patches) and clamped to the video's real
frames (to [0, N-1]); at the last frame the interpolation uses the frame before, so an offset
at a border still gets a gradient pointing inwards. gamma moves along the patches' raster order
(the paper's gamma is one number per patch). Offsets start at 0, where ASA is exactly vanilla
attention (``1 * k + 0 * k'`` is ``k`` bit for bit). **(choice)** The parameters hold the offsets
as fractions of the video: ``delta_t = T * delta[t]`` frames, ``gamma_n = N * gamma[n]`` patches
(:attr:`RAPModule.frame_offsets`, :attr:`RAPModule.patch_offsets`). Adam moves a parameter by
about the learning rate per step, so offsets kept in frames would move by less than 0.1 frame in
a 75-step budget at an adapter's rate (measured: |delta| <= 0.002 frames after 15 steps at 1e-3):
ASA would stay vanilla attention. In units of the video they can cross frames.

**Parameters.** Per block 2 R (T + D_v), plus 2 D_t for the text and T + N offsets: 4,056 for
the offline video CLIP (T = 8, N = 16, D_v = 128, D_t = 384, 4 blocks), 0.057 M for ViT-B/32
with T = 12. The paper reports 1.06 M; its Table 4 gives 0.34 M with neither LoRM nor ASA, the
parameter count and R@1 (40.8) of its SSF row, so its RAP apparently sits on an SSF base (a scale
and shift after every operation, Lian et al. 2022) that Sections 3.2-3.3 do not describe. We
build what the equations say, and ``RAPConfig(ssf=True)`` adds the SSF base
(:class:`readpvla.peft.SSFConfig`) so that the difference can be measured.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import RAPConfig

__all__ = ["LowRankModulation", "RAPContext", "RAPModule", "interpolate_offsets"]


class LowRankModulation(nn.Module):
    """c_v = c^a c^b and s_v = s^a s^b of one block (Eq. 1), around scale 1."""

    def __init__(self, frames: int, rank: int, width: int, **factory) -> None:
        super().__init__()
        self.c_a = nn.Parameter(torch.zeros(frames, rank, **factory))
        self.s_a = nn.Parameter(torch.zeros(frames, rank, **factory))
        self.c_b = nn.Parameter(torch.randn(rank, width, **factory) * rank ** -0.5)
        self.s_b = nn.Parameter(torch.randn(rank, width, **factory) * rank ** -0.5)

    def scale_shift(self, t: int) -> tuple[Tensor, Tensor]:
        """``(c_v, s_v)`` of the first t frames, each ``[t, D_v]`` of rank <= R."""
        return self.c_a[:t] @ self.c_b, self.s_a[:t] @ self.s_b

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, T, P, D_v]`` -> ``(1 + c_v) * x + s_v``, broadcast over the P tokens."""
        c, s = self.scale_shift(x.shape[1])
        return (1 + c)[None, :, None] * x + s[None, :, None]


@dataclass
class RAPContext:
    """Where the tokens of one video-tower call are: ``b`` videos of ``t`` frames of ``p``
    tokens (patches at positions ``start .. start+N-1``), ``n_real [B]`` real frames per video
    (real frames come first), the candidate sentences ``[M, D]`` (unit, or None), and the frozen
    ``project`` (vision width -> joint space) the selection uses."""

    b: int
    t: int
    p: int
    start: int
    n_real: Tensor
    candidates: Tensor | None
    project: Callable[[Tensor], Tensor]


def interpolate_offsets(z: Tensor, dim: int, offset: Tensor, n_valid: Tensor | int) -> Tensor:
    """``z`` read at real positions ``i + offset[i]`` along ``dim`` by linear interpolation.

    Args:
        z: ``[B, T, N, d]``; ``dim`` 1 (frames) or 2 (patches).
        offset: ``[size of dim]`` real offsets.
        n_valid: positions ``0 .. n_valid-1`` along ``dim`` are readable: an int, or ``[B]`` per
            item (dim 1: each video's real frames). Reads are clamped into that range.

    Returns:
        ``[B, T, N, d]``; exactly ``z`` where ``offset`` is 0.
    """
    b, size = z.shape[0], z.shape[dim]
    pos = torch.arange(size, device=z.device, dtype=z.dtype) + offset.to(z.dtype)  # (S,)
    hi_lim = (torch.as_tensor(n_valid, device=z.device).reshape(-1, 1).expand(b, size) - 1)
    pos = torch.clamp(pos[None].expand(b, size), min=torch.zeros_like(hi_lim, dtype=z.dtype),
                      max=hi_lim.to(z.dtype))  # (B, S)  inside the readable range
    lo = torch.minimum(pos.detach().floor().long(), hi_lim - 1).clamp(min=0)  # (B, S)
    hi = torch.minimum(lo + 1, hi_lim)
    alpha = pos - lo.to(z.dtype)  # (B, S)  0 at integer positions, 1 at the last one
    shape = [b, 1, 1, 1]
    shape[dim] = size
    idx_shape = list(z.shape)

    def take(idx: Tensor) -> Tensor:
        return z.gather(dim, idx.reshape(shape).expand(idx_shape))

    a = alpha.reshape(shape)
    return (1 - a) * take(lo) + a * take(hi)


class RAPModule(nn.Module):
    """All of RAP's parameters and its two per-block operations (module docstring).

    Attached to a backbone as ``readpvla_rap`` by :class:`RAPConfig`; the backbone's video
    tower calls :meth:`video_layer` for every block and its text tower :meth:`modulate_text`.
    ``last_selection`` holds, after each call, ``{block: {"patches": bool [B, T, N],
    "sentence": long [B]}}`` (the warped patches and each video's w*) for inspection.
    """

    def __init__(self, config: RAPConfig, frames: int, patches: int, layers: int,
                 vision_width: int, text_width: int, device: torch.device | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.config = config
        self.frames, self.patches, self.n_layers = int(frames), int(patches), int(layers)
        ids = tuple(range(layers)) if config.layers is None else tuple(config.layers)
        bad = [i for i in ids if i >= layers]
        if bad:
            raise ValueError(f"RAP layers {bad} do not exist: the video tower has {layers} blocks")
        if config.asa and config.selection != "all" and config.top_k > patches:
            raise ValueError(f"top_k={config.top_k} exceeds the {patches} patches of a frame")
        self.layer_ids = ids
        self.lorm = nn.ModuleDict({str(i): LowRankModulation(frames, config.rank, vision_width,
                                                             **factory)
                                   for i in ids} if config.lorm else {})
        if config.text:
            self.c_t = nn.Parameter(torch.zeros(text_width, **factory))
            self.s_t = nn.Parameter(torch.zeros(text_width, **factory))
        learn = config.asa and config.offsets == "learned"
        for name, size, used in (("delta", frames, config.warp in ("both", "temporal")),
                                 ("gamma", patches, config.warp in ("both", "spatial"))):
            if learn and used:
                setattr(self, name, nn.Parameter(torch.zeros(size, **factory)))
            else:
                self.register_buffer(name, torch.zeros(size, **factory), persistent=False)
        self.last_selection: dict[int, dict[str, Tensor]] = {}

    # -- text (Eq. 3) ------------------------------------------------------------------------
    def modulate_text(self, w: Tensor) -> Tensor:
        """``z = (1 + c_t) * w + s_t`` on sentence features ``w [B, D_t]``."""
        if not self.config.text:
            return w
        return (1 + self.c_t) * w + self.s_t

    # -- video -------------------------------------------------------------------------------
    @property
    def frame_offsets(self) -> Tensor:
        """delta ``[T]`` in frames (the parameter ``delta`` holds it in units of T)."""
        return self.frames * self.delta

    @property
    def patch_offsets(self) -> Tensor:
        """gamma ``[N]`` in patches (the parameter ``gamma`` holds it in units of N)."""
        return self.patches * self.gamma

    @property
    def needs_candidates(self) -> bool:
        """True if the video tower needs candidate sentences (text-conditioned selection)."""
        return self.config.asa and self.config.selection == "text"

    def check_frames(self, t: int) -> None:
        if t > self.frames:
            raise ValueError(f"{t} frames exceed RAP's T = {self.frames} (the length of its "
                             "modulation and offsets): sample at most T frames")

    def _grid(self, x: Tensor, ctx: RAPContext) -> Tensor:
        return x.reshape(ctx.b, ctx.t, ctx.p, x.shape[-1])  # (B, T, P, d) in both layouts

    @torch.no_grad()
    def select(self, u: Tensor, ctx: RAPContext) -> tuple[Tensor, Tensor | None]:
        """Eq. 5-6: the patches ASA warps, bool ``[B, T, N]``, and each video's w* index."""
        b, t, n, k = ctx.b, ctx.t, self.patches, self.config.top_k
        u = u.detach()  # discrete choice: no gradient (and no autograd state for module hooks)
        if self.config.selection == "all":
            return torch.ones(b, t, n, dtype=torch.bool, device=u.device), None
        if self.config.selection == "random":
            g = None if self.training else torch.Generator(u.device.type).manual_seed(0)
            scores = torch.rand(b, t, n, generator=g, device=u.device)
            sentence = None
        else:
            grid = self._grid(u, ctx)  # (B, T, P, d)
            real = (torch.arange(t, device=u.device)[None] < ctx.n_real[:, None]).to(u.dtype)
            f_bar = (grid[:, :, 0] * real[..., None]).sum(1) / real.sum(1, keepdim=True)  # (B, d)
            w = ctx.candidates.to(u.dtype)  # (M, D) unit
            sentence = (F.normalize(ctx.project(f_bar), dim=-1) @ w.t()).argmax(1)  # (B,)  Eq. 5
            w_star = w[sentence]  # (B, D)
            patches = ctx.project(grid[:, :, ctx.start:ctx.start + n])  # (B, T, N, D)
            scores = (patches * w_star[:, None, None]).sum(-1)  # (B, T, N)  Eq. 6
        top = scores.topk(k, dim=-1).indices
        chosen = torch.zeros(b, t, n, dtype=torch.bool, device=u.device)
        return chosen.scatter_(-1, top, True), sentence

    def warp(self, z: Tensor, chosen: Tensor, ctx: RAPContext) -> Tensor:
        """Eq. 7: keys (or values) ``z`` (a block's ``k_proj`` / ``v_proj`` output, tokens in
        (video, frame, position) order) with the chosen patches read at ``(t + delta_t, n +
        gamma_n)``; all other tokens unchanged."""
        shape = z.shape
        grid = self._grid(z, ctx)  # (B, T, P, d)
        n = self.patches
        kp = grid[:, :, ctx.start:ctx.start + n]  # (B, T, N, d)
        moved = kp
        if self.config.warp in ("both", "temporal"):
            moved = interpolate_offsets(moved, 1, self.frame_offsets[:ctx.t], ctx.n_real)
        if self.config.warp in ("both", "spatial"):
            moved = interpolate_offsets(moved, 2, self.patch_offsets, n)
        kp = torch.where(chosen[..., None], moved, kp)
        out = torch.cat([grid[:, :, :ctx.start], kp, grid[:, :, ctx.start + n:]], dim=2)
        return out.reshape(shape)

    def video_layer(self, i: int, layer: nn.Module, x: Tensor, ctx: RAPContext,
                    run: Callable[[nn.Module, Tensor], Tensor]) -> Tensor:
        """Block i of the video tower with RAP: LoRM on its input (Eq. 2), then the block with
        ASA in its attention (Eq. 5-8); ``run(layer, u)`` runs the block itself."""
        if str(i) in self.lorm:
            x = self.lorm[str(i)](self._grid(x, ctx)).reshape(x.shape)  # u
        if not (self.config.asa and i in self.layer_ids):
            return run(layer, x)
        if self.config.selection == "text" and ctx.candidates is None:
            raise ValueError(
                "RAP's asynchronous self-attention picks patches by the candidate sentences "
                "(Eq. 5): pass texts=<unit text embeddings [M, D]> to encode_video / "
                "video_tower, or call the model with input_ids")
        chosen, sentence = self.select(x, ctx)
        self.last_selection[i] = {"patches": chosen.detach().cpu(), **(
            {} if sentence is None else {"sentence": sentence.detach().cpu()})}
        if self.config.offsets == "zero":
            return run(layer, x)  # vanilla attention: the control of the ablation
        attn = layer.self_attn

        def hook(_module: nn.Module, _args: tuple, out: Tensor) -> Tensor:
            return self.warp(out, chosen, ctx)

        with ExitStack() as stack:
            for proj in (attn.k_proj, attn.v_proj):
                stack.callback(proj.register_forward_hook(hook).remove)
            return run(layer, x)
