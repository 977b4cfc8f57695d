r"""Building blocks shared by the backbones: sine positions, multi-head attention, the FFN.

- :func:`sinusoidal_embedding` / :func:`sinusoidal_positions`: fixed sine/cosine positions
  (Vaswani et al. 2017), used by both TLG backbones and by the VG video projection;
- :class:`MultiHeadAttention`: scaled dot-product attention over heads with a key padding mask,
  the attention of every block of :mod:`~readpvla.backbones.tlg` and
  :mod:`~readpvla.backbones.moment_detr` and the attention part of the VG fusion
  (:class:`readpvla.backbones.vg.CrossModalFusion`, which adds its forget gate);
- :class:`FeedForward`: ``fc2(GELU(fc1(x)))``, the FFN READ and the Houlsby adapter wrap.

Attention is written out with explicit ``nn.Linear`` q/k/v/output projections, not
``nn.MultiheadAttention`` (which reads ``out_proj.weight`` directly instead of calling
``out_proj``), so that LoRA, the Houlsby adapter and READ can wrap each projection.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FeedForward", "MultiHeadAttention", "sinusoidal_embedding", "sinusoidal_positions"]


def sinusoidal_embedding(t: Tensor, d: int) -> Tensor:
    r"""Sine/cosine embedding of (possibly fractional) positions ``t`` ``[...]`` -> ``[..., d]``.

    .. math:: PE_{t, 2i} = \sin(t / 10000^{2i/d}),\quad PE_{t, 2i+1} = \cos(t / 10000^{2i/d})
    """
    freq = torch.exp(torch.arange(0, d, 2, device=t.device, dtype=torch.float32)
                     * (-math.log(10000.0) / d))                                  # (d/2,)
    angle = t.float()[..., None] * freq                                           # (..., d/2)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)              # (..., d')
    return pe[..., :d]


def sinusoidal_positions(n: int, d: int, device: Any = None, dtype: Any = None) -> Tensor:
    """Fixed positions 0..n-1 (Vaswani et al. 2017): ``[n, d]``, see :func:`sinusoidal_embedding`."""
    t = torch.arange(n, device=device, dtype=torch.float32)
    return sinusoidal_embedding(t, d).to(dtype or torch.float32)


class MultiHeadAttention(nn.Module):
    r"""``W_o(softmax(Q K^T / sqrt(d_h)) V)`` per head, with a key padding mask (READ-PVLA Eq. 1).

    :math:`Q = X_q W_q`, :math:`K = X_k W_k`, :math:`V = X_v W_v` (``q_proj``, ``k_proj``,
    ``v_proj``), :math:`W_o` the output projection, :math:`d_h = d / n_{heads}`; dropout on the
    attention weights.

    Written out (not ``nn.MultiheadAttention``, which bypasses ``out_proj.forward``) so that LoRA
    and the Houlsby adapter can wrap ``q_proj`` / ``k_proj`` / ``v_proj`` and the output
    projection.

    Args:
        d_model: d, the width of queries, keys, values and output.
        n_heads: heads (must divide ``d_model``).
        dropout: dropout on the attention weights.
        out_name: the output projection's attribute name, and so its parameter names
            (``out_proj`` in the TLG backbones; ``o_proj`` in the VG fusion, whose checkpoints
            store ``fusion.o_proj.*``).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0,
                 out_name: str = "out_proj") -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if not out_name.isidentifier() or out_name in ("q_proj", "k_proj", "v_proj", "dropout"):
            raise ValueError(f"out_name must be a new attribute name, got {out_name!r}")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.out_name = out_name
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.add_module(out_name, nn.Linear(d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def attend(self, query: Tensor, key: Tensor, value: Tensor | None = None,
               key_mask: Tensor | None = None) -> Tensor:
        """query ``[B, Nq, d]``, key/value ``[B, Nk, d]`` (value defaults to key), key_mask bool
        ``[B, Nk]`` (True = real; None: all real) -> ``[B, Nq, d]``."""
        value = key if value is None else value
        b, nq, _ = query.shape
        nk = key.shape[1]
        q = self.q_proj(query).view(b, nq, self.n_heads, self.d_head).transpose(1, 2)  # (B,h,Nq,dh)
        k = self.k_proj(key).view(b, nk, self.n_heads, self.d_head).transpose(1, 2)    # (B,h,Nk,dh)
        v = self.v_proj(value).view(b, nk, self.n_heads, self.d_head).transpose(1, 2)  # (B,h,Nk,dh)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)                      # (B,h,Nq,Nk)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        attn = self.dropout(scores.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(b, nq, self.n_heads * self.d_head)      # (B,Nq,d)
        return getattr(self, self.out_name)(x)  # the module there now (a PEFT wrapper, if any)

    def forward(self, query: Tensor, key: Tensor, value: Tensor | None = None,
                key_mask: Tensor | None = None) -> Tensor:
        """See :meth:`attend`."""
        return self.attend(query, key, value, key_mask)


class FeedForward(nn.Module):
    """``fc2(dropout(GELU(fc1(x))))``; READ / the Houlsby adapter wrap ``fc2`` (paper Eq. 3, 5)."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ffn)
        self.fc2 = nn.Linear(d_ffn, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))
