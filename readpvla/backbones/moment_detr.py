r"""A Moment-DETR-style grounding model (Lei, Berg and Bansal, 2021), small and readable.

Architecture::

    [clips; words] --proj + type/position--> joint encoder (M_enc blocks, self-attention)
        |-- encoder clip states --> saliency head (per clip)
        '-- memory --> decoder (M_dec blocks: N_q learnable moment queries, self-attention,
                       cross-attention to the memory, FFN) --> per query (centre, width) in [0, 1]
                       = sigmoid(anchor + delta) and a foreground logit

Set prediction (DETR): each item's ground-truth windows are matched one-to-one to queries by the
Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) on the cost

.. math::
    C_{qk} = w_{L1}\,\|\hat b_q - b_k\|_1 - w_{giou}\,\mathrm{GIoU}(\hat b_q, b_k) - w_{cls}\,\hat p_q,

with :math:`\hat b = (\text{centre}, \text{width})` and :math:`\hat p_q` the foreground probability;
the loss is the same three terms on the matched pairs (the class term as a BCE where unmatched
queries are background with weight ``eos_coef``, as Moment-DETR's weighted cross-entropy), at the
last decoder block and, with ``aux_loss``, at every earlier one. Saliency: a BCE of the saliency
logit against the mean annotator score / 4 on the encoder's clip outputs -- our choice instead of
Moment-DETR's hinge ranking loss, which samples clip pairs at random.

Blocks are post-norm (Add & Norm after each sub-layer, as the paper's Eq. 2 and 4), with the FFN
``fc2(GELU(fc1(x)))`` that READ wraps.

Our departures from Moment-DETR, made so that the set loss converges within a few minutes of CPU
pretraining (measured: without them, MR-full-mAP on source_val stayed near 10 after 14 epochs):

- each query owns a learnable anchor (centre, width); spans are ``sigmoid(anchor + delta)``
  (the box refinement of Deformable / DAB-DETR);
- positions for the decoder's cross-attention are fractions of each video: clip keys get
  ``PE(100 * (i + 1/2) / N_v)`` and queries ``PE(100 * anchor centre)`` added (DETR adds positions
  to the keys of every cross-attention), so a query can look at the clips around its anchor;
- pretraining starts with a few epochs of saliency loss only (:data:`readpvla.tasks.tlg.PRETRAIN`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from readpvla.peft import token_layout

from .layers import FeedForward, MultiHeadAttention, sinusoidal_embedding
from .tlg import TLGBackbone, check_inputs, prepend_prompts

__all__ = ["MomentDETRConfig", "MomentDETR", "MomentDETROutput", "span_cw_to_se", "generalized_iou",
           "hungarian_match"]


def span_cw_to_se(cw: Tensor) -> Tensor:
    """(centre, width) -> (start, end), last axis of size 2."""
    return torch.stack([cw[..., 0] - cw[..., 1] / 2, cw[..., 0] + cw[..., 1] / 2], dim=-1)


def generalized_iou(a: Tensor, b: Tensor) -> Tensor:
    r"""1-D generalised IoU between windows ``a`` ``[N, 2]`` and ``b`` ``[M, 2]`` (start, end).

    .. math:: \mathrm{GIoU} = \mathrm{IoU} - \frac{|H \setminus (A \cup B)|}{|H|},
              H = \text{the hull of } A, B.

    Returns ``[N, M]`` in ``[-1, 1]``.
    """
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1])
             - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)            # (N, M)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    hull = (torch.maximum(a[:, None, 1], b[None, :, 1])
            - torch.minimum(a[:, None, 0], b[None, :, 0])).clamp(min=1e-6)
    iou = inter / union.clamp(min=1e-6)
    return iou - (hull - union) / hull


POS_SCALE = 100.0  # a video is 100 position units long for the decoder's positional matching


@dataclass
class MomentDETRConfig:
    """Hyperparameters of :class:`MomentDETR` (stored in the checkpoint's ``config.json``)."""

    d_video: int = 128          # clip feature size
    d_text: int = 384           # query token feature size (all-MiniLM-L6-v2)
    d_model: int = 128          # hidden size
    n_enc: int = 2              # joint encoder blocks
    n_dec: int = 2              # decoder blocks
    n_heads: int = 4            # attention heads
    d_ffn: int = 256            # FFN inner width
    n_queries: int = 10         # learnable moment queries (Moment-DETR: 10)
    dropout: float = 0.1        # dropout on the residual branches and inside the FFN
    # set-prediction loss (Moment-DETR's defaults: span L1 10, GIoU 1, class 4, eos 0.1)
    w_l1: float = 10.0          # L1 on (centre, width), matching cost and loss
    w_giou: float = 1.0         # 1 - GIoU, matching cost and loss
    w_class: float = 4.0        # foreground BCE (cost: -probability)
    eos_coef: float = 0.1       # weight of the background (unmatched) queries in the class BCE
    w_saliency: float = 1.0     # saliency BCE on the encoder's clip outputs
    aux_loss: bool = True       # also supervise every earlier decoder block

    def __post_init__(self) -> None:
        for name in ("d_video", "d_text", "d_model", "n_enc", "n_dec", "n_heads", "d_ffn",
                     "n_queries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("w_l1", "w_giou", "w_class", "eos_coef", "w_saliency"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class MomentDETROutput:
    """What :class:`MomentDETR` returns (per-clip outputs never include prompt positions).

    Attributes:
        spans: ``[B, Nq, 2]`` (centre, width) in [0, 1], fractions of the video.
        logits: ``[B, Nq]`` foreground logits.
        saliency: ``[B, Nv]`` saliency logits.
        aux: per earlier decoder block, ``(spans, logits)``.
        h_v: per encoder block, the clip states ``[B, Nv, d]`` (for PVLA).
        h_l: per encoder block, the word states ``[B, Nl, d]``.
        mask_v, mask_l: bool ``[B, Nv]`` / ``[B, Nl]``.
    """

    spans: Tensor
    logits: Tensor
    saliency: Tensor
    aux: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    h_v: list[Tensor] = field(default_factory=list)
    h_l: list[Tensor] = field(default_factory=list)
    mask_v: Tensor | None = None
    mask_l: Tensor | None = None


class EncoderLayer(nn.Module):
    """``h = LN(h + SelfAttn(h)); h = LN(h + FFN(h))`` over the joint [clips; words] sequence."""

    def __init__(self, cfg: MomentDETRConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ffn, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        h = self.norm1(h + self.drop(self.self_attn(h, h, key_mask=mask)))     # (B, N, d)
        return self.norm2(h + self.drop(self.ffn(h)))                           # (B, N, d)


class DecoderLayer(nn.Module):
    """DETR decoder block: query self-attention, cross-attention to the memory, FFN (post-norm)."""

    def __init__(self, cfg: MomentDETRConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ffn, cfg.dropout)
        self.norm3 = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, t: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                memory_mask: Tensor) -> Tensor:
        q = t + query_pos                                                       # (B, Nq, d)
        t = self.norm1(t + self.drop(self.self_attn(q, q, t)))
        # DETR: positions are added to the queries and the keys of every cross-attention
        t = self.norm2(t + self.drop(self.cross_attn(t + query_pos, memory + memory_pos, memory,
                                                     key_mask=memory_mask)))
        return self.norm3(t + self.drop(self.ffn(t)))                           # (B, Nq, d)


class Encoder(nn.Module):
    """The joint encoder: a list of :class:`EncoderLayer`; returns every block's output."""

    def __init__(self, cfg: MomentDETRConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_enc))

    def forward(self, h: Tensor, mask: Tensor) -> list[Tensor]:
        outs = []
        for layer in self.layers:
            h = layer(h, mask)
            outs.append(h)
        return outs


class Decoder(nn.Module):
    """The moment decoder: a list of :class:`DecoderLayer`; returns every block's output."""

    def __init__(self, cfg: MomentDETRConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_dec))

    def forward(self, t: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                mask: Tensor) -> list[Tensor]:
        outs = []
        for layer in self.layers:
            t = layer(t, query_pos, memory, memory_pos, mask)
            outs.append(t)
        return outs


def hungarian_match(spans: Tensor, logits: Tensor, gt: list[Tensor], w_l1: float, w_giou: float,
                    w_class: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per item, the one-to-one (query, GT window) assignment of least cost (module docstring).

    Args:
        spans: ``[B, Nq, 2]`` predicted (centre, width); logits: ``[B, Nq]``.
        gt: per item ``[K_i, 2]`` GT (centre, width), fractions of the video.

    Returns:
        Per item ``(query indices, GT indices)``, each of length ``min(Nq, K_i)``.
    """
    out = []
    with torch.no_grad():
        prob = logits.sigmoid()
        for i, g in enumerate(gt):
            cost = (w_l1 * torch.cdist(spans[i], g, p=1)
                    - w_giou * generalized_iou(span_cw_to_se(spans[i]), span_cw_to_se(g))
                    - w_class * prob[i][:, None])                              # (Nq, K)
            rows, cols = linear_sum_assignment(cost.cpu().double().numpy())
            out.append((rows, cols))
    return out


class MomentDETR(TLGBackbone):
    """Moment-DETR-style model: joint encoder, moment-query decoder, saliency head.

    ``forward(video, video_mask, text, text_mask)`` -> :class:`MomentDETROutput`;
    ``task_loss`` (set prediction + saliency) and ``decode`` (windows, saliency) as
    :class:`~readpvla.backbones.tlg.CrossModalTLG`.

    Example:
        >>> model = MomentDETR(MomentDETRConfig(d_video=8, d_text=6, d_model=16, n_heads=2))
        >>> out = model(torch.randn(2, 5, 8), None, torch.randn(2, 3, 6), None)
        >>> tuple(out.spans.shape), tuple(out.saliency.shape)
        ((2, 10, 2), (2, 5))
    """

    config_class = MomentDETRConfig
    readpvla_recipe = {
        "ffn": r"(encoder|decoder)\.layers\.\d+\.ffn\.fc2",
        "attn": r"(encoder|decoder)\.layers\.\d+\.(self_attn|cross_attn)\.out_proj",
        "proj": r"span_head|class_head|saliency_head",
    }

    def __init__(self, config: MomentDETRConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)  # config, proj_v, norm_v, proj_l, norm_l
        cfg, d = self.config, self.config.d_model
        self.type_embed = nn.Embedding(2, d)                   # 0 = clip, 1 = word
        self.encoder = Encoder(cfg)
        self.query_embed = nn.Embedding(cfg.n_queries, d)      # learnable moment queries
        # learnable anchor per query, (centre, width) in logit space; centres spread over the
        # video, width 2 / n_queries (our choice: anchors make the set loss converge in minutes
        # instead of Moment-DETR's 200 epochs -- DAB-/Deformable-DETR's box refinement)
        centre = (torch.arange(cfg.n_queries, dtype=torch.float32) + 0.5) / cfg.n_queries
        width = torch.full_like(centre, min(0.9, 2.0 / cfg.n_queries))
        self.anchors = nn.Parameter(torch.logit(torch.stack([centre, width], -1)))  # (Nq, 2)
        self.decoder = Decoder(cfg)
        self.span_head = nn.Linear(d, 2)                       # (centre, width) logit deltas
        self.class_head = nn.Linear(d, 1)                      # foreground logit
        self.saliency_head = nn.Linear(d, 1)                   # per-clip saliency logit

    def forward(self, video: Tensor, video_mask: Tensor | None, text: Tensor,
                text_mask: Tensor | None) -> MomentDETROutput:
        """Encode ``[clips; words]``, decode the moment queries; see the class docstring."""
        cfg, d = self.config, self.config.d_model
        mask_v, mask_l = check_inputs(video, video_mask, text, text_mask, cfg.d_video, cfg.d_text)
        b, nv = video.shape[0], video.shape[1]
        # clips: LN(proj) + type 0 + sine positions; words: LN(proj) + type 1 (no positions)
        h_v, h_l = self.embed(video, text, self.type_embed.weight[0], self.type_embed.weight[1],
                              text_positions=False)                       # (B, Nv, d), (B, Nl, d)
        h_v, pmask_v, n_pv = prepend_prompts(self, "video", h_v, mask_v)
        h_l, pmask_l, n_pl = prepend_prompts(self, "text", h_l, mask_l)
        nv_p = h_v.shape[1]
        h = torch.cat([h_v, h_l], dim=1)                                              # (B, N, d)
        mask = torch.cat([pmask_v, pmask_l], dim=1)                                   # (B, N)
        segments = torch.cat([torch.zeros_like(pmask_v, dtype=torch.long),
                              torch.ones_like(pmask_l, dtype=torch.long)], dim=1)     # 0 clip, 1 word
        with token_layout(self.encoder, mask=mask, segments=segments):
            enc = self.encoder(h, mask)
        memory = enc[-1]
        # positions as fractions of each video (x POS_SCALE), shared by the clip keys and the
        # anchor queries, so a query can attend to the clips around its anchor
        n_real = mask_v.sum(1, keepdim=True).float()                                   # (B, 1)
        frac = (torch.arange(nv, device=video.device).float()[None] + 0.5) / n_real    # (B, Nv)
        memory_pos = torch.zeros_like(memory)                                          # (B, N, d)
        memory_pos[:, n_pv:nv_p] = sinusoidal_embedding(frac * POS_SCALE, d)
        anchor = self.anchors.sigmoid()                                                # (Nq, 2)
        query_pos = (self.query_embed.weight + sinusoidal_embedding(anchor[:, 0] * POS_SCALE, d)
                     ).unsqueeze(0).expand(b, -1, -1)                                  # (B, Nq, d)
        q_mask = torch.ones(b, cfg.n_queries, dtype=torch.bool, device=video.device)
        with token_layout(self.decoder, mask=q_mask):
            dec = self.decoder(torch.zeros_like(query_pos), query_pos, memory, memory_pos, mask)
        heads = [((self.anchors + self.span_head(t)).sigmoid(), self.class_head(t).squeeze(-1))
                 for t in dec]                                  # spans = sigmoid(anchor + delta)
        clips = memory[:, n_pv:nv_p]                                                  # (B, Nv, d)
        return MomentDETROutput(
            spans=heads[-1][0], logits=heads[-1][1],
            saliency=self.saliency_head(clips).squeeze(-1), aux=heads[:-1],
            h_v=[e[:, n_pv:nv_p] for e in enc], h_l=[e[:, nv_p + n_pl:] for e in enc],
            mask_v=mask_v, mask_l=mask_l)

    # -- task: loss and decoding --------------------------------------------------------------
    def _set_loss(self, spans: Tensor, logits: Tensor, gt: list[Tensor]) -> tuple[Tensor, dict]:
        cfg = self.config
        match = hungarian_match(spans, logits, gt, cfg.w_l1, cfg.w_giou, cfg.w_class)
        bi = torch.cat([torch.full((len(r),), i, dtype=torch.long) for i, (r, _) in enumerate(match)])
        qi = torch.cat([torch.as_tensor(r, dtype=torch.long) for r, _ in match])
        pred = spans[bi, qi]                                                          # (P, 2)
        target = torch.cat([g[torch.as_tensor(c, dtype=torch.long)] for g, (_, c) in zip(gt, match)])
        l_l1 = (pred - target).abs().sum(-1).mean()
        l_giou = (1 - torch.diag(generalized_iou(span_cw_to_se(pred), span_cw_to_se(target)))).mean()
        fg = torch.zeros_like(logits)
        fg[bi, qi] = 1.0
        weight = torch.where(fg > 0, 1.0, cfg.eos_coef)
        l_cls = (F.binary_cross_entropy_with_logits(logits, fg, reduction="none") * weight).sum() \
            / weight.sum()
        loss = cfg.w_l1 * l_l1 + cfg.w_giou * l_giou + cfg.w_class * l_cls
        parts = {"l1": l_l1, "giou": l_giou, "class": l_cls}
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    def task_loss(self, out: MomentDETROutput, batch: Any) -> tuple[Tensor, dict[str, float]]:
        """Set-prediction loss (+ auxiliary blocks) + saliency BCE on a labelled batch."""
        if batch.saliency is None or batch.windows is None:
            raise ValueError("task_loss needs a labelled batch (saliency and windows)")
        dev = out.spans.device
        dur = batch.duration.to(dev)
        gt = []
        for i, w in enumerate(batch.windows):
            se = w.to(dev) / dur[i]                                                   # (K, 2)
            gt.append(torch.stack([(se[:, 0] + se[:, 1]) / 2, se[:, 1] - se[:, 0]], -1).clamp(0, 1))
        loss, logs = self._set_loss(out.spans, out.logits, gt)
        if self.config.aux_loss:
            for spans, logits in out.aux:
                loss = loss + self._set_loss(spans, logits, gt)[0]
        mask = out.mask_v
        l_sal = F.binary_cross_entropy_with_logits(out.saliency[mask], batch.saliency.to(dev)[mask])
        loss = loss + self.config.w_saliency * l_sal
        return loss, {**logs, "saliency": float(l_sal.detach())}

    @torch.no_grad()
    def decode(self, out: MomentDETROutput, duration: Tensor, clip_len: float = 2.0,
               k: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per item ``(windows [<=k, 3] (st, ed, score) in seconds, saliency [Nv_i])``.

        Every query's window, clipped to the video, scored by its foreground probability (no NMS,
        as Moment-DETR).
        """
        dur = duration.to(out.spans.device).float()
        se = span_cw_to_se(out.spans).clamp(0, 1) * dur[:, None, None]               # (B, Nq, 2)
        wins = torch.cat([se, out.logits.sigmoid()[..., None]], -1).cpu().double().numpy()
        sal = out.saliency.sigmoid().cpu().double().numpy()
        n = out.mask_v.sum(1).tolist()
        res = []
        for i in range(len(n)):
            w = wins[i][np.argsort(-wins[i][:, 2], kind="stable")][:k]
            res.append((w, sal[i, : n[i]]))
        return res
