r"""The cross-modal transformer of the READ-PVLA paper, Section 3.1, for temporal language grounding.

The paper's block (Eq. 1-4): the language representations are the queries, the video
representations the keys and values,

.. math::
    X^{(m)} = \mathrm{softmax}\!\Big(\frac{Q^{(m)} K^{(m)\top}}{\sqrt d}\Big) V^{(m)},\quad
    Q^{(m)} = H_L^{(m)} W_Q,\ K^{(m)} = H_V^{(m)} W_K,\ V^{(m)} = H_V^{(m)} W_V   \quad (1)

    P^{(m)} = \mathrm{LN}(X^{(m)} + H_L^{(m)})                                   \quad (2)

    O^{(m)} = \mathrm{FFN}(P^{(m)})                                              \quad (3)

    H_L^{(m+1)} = \mathrm{LN}(P^{(m)} + O^{(m)})                                 \quad (4)

READ (Eq. 5) wraps the FFN's output projection ``fc2``, so Eq. 4 becomes Eq. 6,
:math:`H = \mathrm{LN}(P + \tilde O)`.

Our remarks (choices where the paper is silent or cannot score clips as printed):

- Eq. 4 keeps :math:`H_V^{(m+1)} = H_V^{(m)}`, but grounding needs a score *per clip*. So each
  block also runs a video stream: video self-attention, then video queries attend to the updated
  language :math:`H_L^{(m+1)}`, then an FFN, each with Add & Norm (post-norm, as Eq. 2 and 4).
- Eq. 3 is a single ``GELU(Linear(P))``; we use the usual two-layer FFN ``fc2(GELU(fc1(P)))``
  (both streams), so READ and the Houlsby adapter wrap ``fc2`` of every FFN.
- Attention is multi-head; each head scales by :math:`\sqrt{d_h}`, :math:`d_h = d / n_{heads}`.
- Heads (one linear map ``head``, the "last linear projection" the Proj baseline trains): per clip
  a saliency logit, a foreground logit and two non-negative offsets :math:`(l_i, r_i)` (fractions of
  the video) from the clip centre to the window's start and end -- an anchor-free moment head in
  the spirit of UMT. Windows = every clip's window scored by its foreground probability, greedy
  NMS, top 10.

The building blocks (:class:`~readpvla.backbones.layers.MultiHeadAttention`,
:class:`~readpvla.backbones.layers.FeedForward`, :func:`~readpvla.backbones.layers.sinusoidal_positions`)
live in :mod:`readpvla.backbones.layers` (re-exported here); :class:`TLGBackbone` (config, input
embedding, prompt slots) is the base of both TLG backbones, this one and
:class:`readpvla.backbones.moment_detr.MomentDETR`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from readpvla.peft import token_layout

from .layers import FeedForward, MultiHeadAttention, sinusoidal_embedding, sinusoidal_positions

__all__ = ["CrossModalConfig", "CrossModalTLG", "CrossModalOutput", "CrossModalBlock",
           "TLGBackbone", "MultiHeadAttention", "FeedForward", "sinusoidal_positions",
           "sinusoidal_embedding", "check_inputs", "prepend_prompts", "nms_1d", "span_iou"]


# ------------------------------------------------------------------------------------------------
# shared by the TLG backbones (the generic layers are in readpvla.backbones.layers)
# ------------------------------------------------------------------------------------------------
def check_inputs(video: Tensor, video_mask: Tensor | None, text: Tensor, text_mask: Tensor | None,
                 d_video: int, d_text: int) -> tuple[Tensor, Tensor]:
    """Validate the four inputs of a TLG backbone; return bool masks (all-True when None)."""
    for name, x, d in (("video", video, d_video), ("text", text, d_text)):
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ValueError(f"{name} must be a [B, N, {d}] tensor, got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got dtype {x.dtype}")
        if x.shape[-1] != d:
            raise ValueError(f"{name} has feature size {x.shape[-1]}, the model expects {d} "
                             f"(config d_{'video' if name == 'video' else 'text'})")
    if video.shape[0] != text.shape[0]:
        raise ValueError(f"video batch {video.shape[0]} != text batch {text.shape[0]}")
    masks = []
    for name, x, m in (("video_mask", video, video_mask), ("text_mask", text, text_mask)):
        if m is None:
            m = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if not isinstance(m, Tensor) or m.dtype != torch.bool or tuple(m.shape) != tuple(x.shape[:2]):
            raise ValueError(f"{name} must be a bool tensor of shape {tuple(x.shape[:2])}, got "
                             f"{(m.dtype, tuple(m.shape)) if isinstance(m, Tensor) else m!r}")
        if not bool(m.any(dim=1).all()):
            raise ValueError(f"{name}: every item needs at least one real position (True)")
        masks.append(m)
    return masks[0], masks[1]


def prepend_prompts(model: nn.Module, slot: str, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, int]:
    """Prompt-tuning protocol (:mod:`readpvla.peft.prompt`): prepend ``model.readpvla_prompts[slot]``
    (``[n, d]``) to ``h`` ``[B, N, d]`` and True to ``mask``; return ``(h, mask, n)``."""
    prompts = getattr(model, "readpvla_prompts", None)
    if prompts is None or slot not in prompts:
        return h, mask, 0
    p = prompts[slot].to(dtype=h.dtype)                                          # (n, d)
    n = p.shape[0]
    h = torch.cat([p.unsqueeze(0).expand(h.shape[0], -1, -1), h], dim=1)         # (B, n+N, d)
    mask = torch.cat([mask.new_ones(mask.shape[0], n), mask], dim=1)
    return h, mask, n


class TLGBackbone(nn.Module):
    """What the two TLG backbones share: the config, the input embedding and the prompt slots.

    ``config_class`` (a dataclass with ``d_video``, ``d_text`` and ``d_model``) is set by each
    subclass; ``cls(config)`` or ``cls(**overrides)`` or both. The embedding layer is the
    parameters ``proj_v``, ``norm_v`` (clips) and ``proj_l``, ``norm_l`` (query tokens), built
    before a subclass's own layers (the random initialisation order the shipped checkpoints
    were trained from).
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__()
        cfg = config if config is not None else self.config_class()
        if overrides:
            cfg = self.config_class(**{**asdict(cfg), **overrides})
        self.config = cfg
        d = cfg.d_model
        self.proj_v = nn.Linear(cfg.d_video, d)                 # embedding layer: H_V^(0)
        self.norm_v = nn.LayerNorm(d)
        self.proj_l = nn.Linear(cfg.d_text, d)                  # embedding layer: H_L^(0)
        self.norm_l = nn.LayerNorm(d)

    def readpvla_prompt_slots(self) -> dict[str, int]:
        """Prompt tuning: learnable tokens of width d are prepended to both projected inputs."""
        return {"video": self.config.d_model, "text": self.config.d_model}

    def embed(self, video: Tensor, text: Tensor, type_v: Tensor | None = None,
              type_l: Tensor | None = None, text_positions: bool = True,
              video_positions: bool = True) -> tuple[Tensor, Tensor]:
        """The embedding layer -> ``H_V^(0)`` ``[B, Nv, d]``, ``H_L^(0)`` ``[B, Nl, d]``: per stream
        ``LN(x W + b)``, plus an optional modality-type vector ``type_v`` / ``type_l`` ``[d]``,
        plus sine positions 0..N-1 (the clips unless ``video_positions`` is False; the words
        unless ``text_positions`` is False)."""
        d = self.config.d_model
        out = []
        for x, proj, norm, typ, pos in ((video, self.proj_v, self.norm_v, type_v, video_positions),
                                        (text, self.proj_l, self.norm_l, type_l, text_positions)):
            h = norm(proj(x))                                                      # (B, N, d)
            if typ is not None:
                h = h + typ
            if pos:
                h = h + sinusoidal_positions(x.shape[1], d, x.device, h.dtype)
            out.append(h)
        return out[0], out[1]


def span_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Temporal IoU between windows ``a`` ``[N, 2]`` and ``b`` ``[M, 2]`` (start, end) -> ``[N, M]``."""
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1])
                    - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms_1d(windows: np.ndarray, iou_threshold: float = 0.7, k: int = 10) -> np.ndarray:
    """Greedy non-maximum suppression of scored windows ``[N, 3]`` (start, end, score).

    Keeps the best-scored window, drops every window overlapping it with IoU > ``iou_threshold``,
    repeats; returns at most ``k`` rows, best first. ``iou_threshold >= 1`` disables suppression.
    """
    order = np.argsort(-windows[:, 2], kind="stable")
    w = windows[order]
    if iou_threshold >= 1:
        return w[:k]
    keep: list[int] = []
    suppressed = np.zeros(len(w), dtype=bool)
    iou = span_iou(w[:, :2], w[:, :2])
    for i in range(len(w)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == k:
            break
        suppressed |= iou[i] > iou_threshold
    return w[keep]


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------
@dataclass
class CrossModalConfig:
    """Hyperparameters of :class:`CrossModalTLG` (stored in the checkpoint's ``config.json``)."""

    d_video: int = 128          # clip feature size (synthetic benchmark: 128)
    d_text: int = 384           # query token feature size (all-MiniLM-L6-v2: 384)
    d_model: int = 128          # d, the hidden size
    n_blocks: int = 2           # M, cross-modal blocks
    n_heads: int = 4            # attention heads
    d_ffn: int = 256            # FFN inner width
    dropout: float = 0.1        # dropout on the residual branches and inside the FFN (none on
                                # attention weights: sampling [B, h, N, N] masks dominated CPU time)
    # task loss weights (used by task_loss)
    w_saliency: float = 1.0     # BCE of the saliency logit against mean score / 4
    w_foreground: float = 1.0   # BCE of the foreground logit (clip centre inside a GT window)
    w_l1: float = 1.0           # L1 of the (start, end) offsets on foreground clips
    w_iou: float = 1.0          # 1 - IoU of each foreground clip's window with its GT window
    # False: the clips get no positions, so the backbone cannot see clip order (every layer is
    # per token or attention, so permuting the clips permutes every per-clip output): the
    # order-blind control of the recurrence probe (issue 15)
    video_positions: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.video_positions, bool):
            raise ValueError(f"video_positions must be True or False, got {self.video_positions!r}")
        for name in ("d_video", "d_text", "d_model", "n_blocks", "n_heads", "d_ffn"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("w_saliency", "w_foreground", "w_l1", "w_iou"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class CrossModalOutput:
    """What :class:`CrossModalTLG` returns (per-clip outputs never include prompt positions).

    Attributes:
        saliency: ``[B, Nv]`` saliency logits.
        foreground: ``[B, Nv]`` foreground logits (is the clip inside the queried moment?).
        offsets: ``[B, Nv, 2]`` >= 0, distances from the clip centre to the window's start and
            end, as fractions of the video duration.
        h_v: per block, the video token states ``[B, Nv, d]`` (block outputs, for PVLA).
        h_l: per block, the language token states ``[B, Nl, d]``.
        mask_v, mask_l: bool ``[B, Nv]`` / ``[B, Nl]``, True = real.
    """

    saliency: Tensor
    foreground: Tensor
    offsets: Tensor
    h_v: list[Tensor] = field(default_factory=list)
    h_l: list[Tensor] = field(default_factory=list)
    mask_v: Tensor | None = None
    mask_l: Tensor | None = None


class CrossModalBlock(nn.Module):
    """One block: the language stream of Eq. 1-4 and a video stream that scores clips."""

    def __init__(self, cfg: CrossModalConfig) -> None:
        super().__init__()
        d = cfg.d_model
        # language stream: Eq. 1-4
        self.attn_l = MultiHeadAttention(d, cfg.n_heads)   # Q from H_L, K/V from H_V
        self.norm_l1 = nn.LayerNorm(d)
        self.ffn_l = FeedForward(d, cfg.d_ffn, cfg.dropout)
        self.norm_l2 = nn.LayerNorm(d)
        # video stream: self-attention, video queries attend to language, FFN
        self.self_attn_v = MultiHeadAttention(d, cfg.n_heads)
        self.norm_v1 = nn.LayerNorm(d)
        self.cross_attn_v = MultiHeadAttention(d, cfg.n_heads)
        self.norm_v2 = nn.LayerNorm(d)
        self.ffn_v = FeedForward(d, cfg.d_ffn, cfg.dropout)
        self.norm_v3 = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h_v: Tensor, h_l: Tensor, mask_v: Tensor, mask_l: Tensor
                ) -> tuple[Tensor, Tensor]:
        """``(H_V^(m), H_L^(m))`` ``[B, Nv, d]``, ``[B, Nl, d]`` -> ``(H_V^(m+1), H_L^(m+1))``."""
        x = self.attn_l(h_l, h_v, key_mask=mask_v)              # (B, Nl, d)  Eq. 1
        p = self.norm_l1(x + h_l)                                # (B, Nl, d)  Eq. 2 (Add & Norm)
        o = self.ffn_l(p)                                        # (B, Nl, d)  Eq. 3 (READ: Eq. 5)
        h_l = self.norm_l2(p + self.drop(o))                     # (B, Nl, d)  Eq. 4 (READ: Eq. 6)
        s = self.norm_v1(h_v + self.drop(self.self_attn_v(h_v, h_v, key_mask=mask_v)))
        c = self.norm_v2(s + self.drop(self.cross_attn_v(s, h_l, key_mask=mask_l)))
        h_v = self.norm_v3(c + self.drop(self.ffn_v(c)))         # (B, Nv, d)
        return h_v, h_l


class CrossModalTLG(TLGBackbone):
    """The paper's Section 3.1 transformer with a saliency head and an anchor-free moment head.

    ``forward(video, video_mask, text, text_mask)``: video ``[B, Nv, d_video]`` clip features,
    text ``[B, Nl, d_text]`` query token features, bool masks (True = real). Returns a
    :class:`CrossModalOutput`. ``task_loss`` and ``decode`` turn it into a loss and into
    QVHighlights windows / saliency.

    Example:
        >>> model = CrossModalTLG(CrossModalConfig(d_video=8, d_text=6, d_model=16, n_heads=2))
        >>> out = model(torch.randn(2, 5, 8), None, torch.randn(2, 3, 6), None)
        >>> tuple(out.saliency.shape), len(out.h_v)
        ((2, 5), 2)
    """

    config_class = CrossModalConfig
    #: where the PEFT methods go (readpvla.peft.recipes): both FFN outputs of every block, the
    #: attention output projections, and the output head for Proj
    readpvla_recipe = {
        "ffn": r"blocks\.\d+\.ffn_[vl]\.fc2",
        "attn": r"blocks\.\d+\.(attn_l|self_attn_v|cross_attn_v)\.out_proj",
        "proj": r"head",
    }

    def __init__(self, config: CrossModalConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg, d = self.config, self.config.d_model
        self.blocks = nn.ModuleList(CrossModalBlock(cfg) for _ in range(cfg.n_blocks))
        self.head = nn.Linear(d, 4)                             # saliency, foreground, l, r
        with torch.no_grad():  # start with short windows: softplus(-2) ~ 0.13 of the video
            self.head.bias.copy_(torch.tensor([0.0, 0.0, -2.0, -2.0]))

    def forward(self, video: Tensor, video_mask: Tensor | None, text: Tensor,
                text_mask: Tensor | None) -> CrossModalOutput:
        """Run the M blocks; see the class docstring for shapes."""
        cfg = self.config
        mask_v, mask_l = check_inputs(video, video_mask, text, text_mask, cfg.d_video, cfg.d_text)
        h_v, h_l = self.embed(video, text, video_positions=cfg.video_positions)
        h_v, pmask_v, n_pv = prepend_prompts(self, "video", h_v, mask_v)         # (B, n+Nv, d)
        h_l, pmask_l, n_pl = prepend_prompts(self, "text", h_l, mask_l)          # (B, n+Nl, d)
        hs_v, hs_l = [], []
        with ExitStack() as scopes:  # READ recurs over each stream's own real tokens
            for blk in self.blocks:
                scopes.enter_context(token_layout(blk.ffn_v, mask=pmask_v))
                scopes.enter_context(token_layout(blk.ffn_l, mask=pmask_l))
            for blk in self.blocks:
                h_v, h_l = blk(h_v, h_l, pmask_v, pmask_l)
                hs_v.append(h_v[:, n_pv:])
                hs_l.append(h_l[:, n_pl:])
        y = self.head(hs_v[-1])                                                   # (B, Nv, 4)
        return CrossModalOutput(saliency=y[..., 0], foreground=y[..., 1],
                                offsets=F.softplus(y[..., 2:]), h_v=hs_v, h_l=hs_l,
                                mask_v=mask_v, mask_l=mask_l)

    # -- task: loss and decoding --------------------------------------------------------------
    @staticmethod
    def clip_centres(n_clips: int, duration: Tensor, clip_len: float) -> Tensor:
        """Clip centres as fractions of each video, ``[B, Nv]`` (capped at 1)."""
        t = (torch.arange(n_clips, device=duration.device, dtype=torch.float32) + 0.5) * clip_len
        return (t[None, :] / duration[:, None]).clamp(max=1.0)

    def task_loss(self, out: CrossModalOutput, batch: Any) -> tuple[Tensor, dict[str, float]]:
        r"""Grounding loss on a labelled batch (a :class:`readpvla.data.TLGBatch`).

        .. math::
            \mathcal L = w_s \mathrm{BCE}(s_i, y_i) + w_f \mathrm{BCE}(f_i, \mathbb 1[c_i \in G])
              + \frac{1}{|F|}\sum_{i \in F} w_1 \|(l_i, r_i) - (l_i^*, r_i^*)\|_1
              + w_{iou} (1 - \mathrm{IoU}_i)

        over real clips i; :math:`y_i` = mean annotator score / 4, :math:`c_i` the clip centre,
        :math:`F` the clips whose centre lies in a GT window (the first one that holds it),
        :math:`l^*_i, r^*_i` the distances to its start and end (fractions of the duration).
        """
        if batch.saliency is None or batch.windows is None:
            raise ValueError("task_loss needs a labelled batch (saliency and windows)")
        mask = out.mask_v
        dur = batch.duration.to(out.saliency.device)
        sal = batch.saliency.to(out.saliency.device)
        l_sal = F.binary_cross_entropy_with_logits(out.saliency[mask], sal[mask])
        c = self.clip_centres(mask.shape[1], dur, batch.clip_len)                 # (B, Nv)
        k = max(len(w) for w in batch.windows)
        gt = torch.zeros(len(batch.windows), k, 2, device=c.device)               # (B, K, 2)
        valid = torch.zeros(len(batch.windows), k, dtype=torch.bool, device=c.device)
        for i, w in enumerate(batch.windows):
            gt[i, : len(w)] = w.to(c.device) / dur[i]
            valid[i, : len(w)] = True
        inside = ((c[..., None] >= gt[:, None, :, 0]) & (c[..., None] < gt[:, None, :, 1])
                  & valid[:, None, :] & mask[..., None])                           # (B, Nv, K)
        fg = inside.any(-1)                                                        # (B, Nv)
        l_fg = F.binary_cross_entropy_with_logits(out.foreground[mask], fg[mask].float())
        idx = inside.float().argmax(-1, keepdim=True)                              # (B, Nv, 1)
        st = gt[..., 0].gather(1, idx.squeeze(-1))                                 # (B, Nv)
        ed = gt[..., 1].gather(1, idx.squeeze(-1))
        target = torch.stack([c - st, ed - c], dim=-1)[fg]                         # (F, 2)
        pred = out.offsets[fg]                                                     # (F, 2)
        if len(pred):
            l_l1 = (pred - target).abs().sum(-1).mean()
            inter = torch.minimum(pred, target).sum(-1)  # both windows hold the clip centre
            iou = inter / (pred.sum(-1) + target.sum(-1) - inter).clamp_min(1e-6)
            l_iou = (1 - iou).mean()
        else:
            l_l1 = l_iou = out.offsets.sum() * 0.0
        cfg = self.config
        loss = (cfg.w_saliency * l_sal + cfg.w_foreground * l_fg + cfg.w_l1 * l_l1
                + cfg.w_iou * l_iou)
        parts = {"saliency": l_sal, "foreground": l_fg, "l1": l_l1, "iou": l_iou}
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def decode(self, out: CrossModalOutput, duration: Tensor, clip_len: float = 2.0,
               k: int = 10, nms_iou: float = 0.7) -> list[tuple[np.ndarray, np.ndarray]]:
        """Windows and saliency per item: ``[(windows [<=k, 3] (st, ed, score) s, saliency [Nv_i])]``.

        Every real clip proposes ``[c - l, c + r]`` (clipped to the video) scored by its
        foreground probability; greedy NMS at ``nms_iou`` keeps the best ``k``.
        """
        mask = out.mask_v
        dur = duration.to(mask.device).float()
        c = self.clip_centres(mask.shape[1], dur, clip_len)                        # (B, Nv)
        st = (c - out.offsets[..., 0]).clamp(min=0) * dur[:, None]
        ed = (c + out.offsets[..., 1]).clamp(max=1) * dur[:, None]
        score = out.foreground.sigmoid()
        wins = torch.stack([st, ed, score], dim=-1).cpu().double().numpy()        # (B, Nv, 3)
        sal = out.saliency.sigmoid().cpu().double().numpy()
        n = mask.sum(1).tolist()
        return [(nms_1d(wins[i, : n[i]], nms_iou, k), sal[i, : n[i]]) for i in range(len(n))]
