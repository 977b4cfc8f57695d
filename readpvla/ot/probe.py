r"""Measuring transport plans inside trained models (issue 15's "does PVLA align?" probes).

Given the states of a model's clips :math:`H_V` and words :math:`H_L` and a boolean mask
:math:`\mathcal G` of the (clip, word) pairs that belong together, :func:`plan_share` solves the
partial plan PVLA trains with and returns the share of its mass on :math:`\mathcal G`:

.. math:: \text{share} = 100\,\frac{\sum_{(i,j) \in \mathcal G} T_{ij}}{\sum_{ij} T_{ij}}

and :func:`summarize_shares` turns per-item shares (one column per block or layer) and the
per-item chance shares into the probes' per-block summary. The TLG probe's :math:`\mathcal G`
is every word with the query's ground-truth clips; the VLS probe's pairs a word naming a step
with the clips that show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .cost import cosine_cost
from .partial import partial_sinkhorn

__all__ = ["plan_share", "summarize_shares"]


@torch.no_grad()
def plan_share(h_v: Tensor, h_l: Tensor, where: Tensor, mass: float = 0.5, tau: float = 0.05,
               max_iter: int = 1000, tol: float = 1e-6, mask_v: Tensor | None = None,
               mask_l: Tensor | None = None) -> Tensor:
    """Percent of the partial Sinkhorn plan's mass (cosine cost in float64, PVLA's settings)
    on the pairs ``where``.

    Shapes: ``h_v [B, N_V, d]``, ``h_l [B, N_L, d]``, ``where`` bool broadcastable to
    ``[B, N_V, N_L]``, masks bool ``[B, N_V]`` / ``[B, N_L]`` (True = real). Returns ``[B]``.
    """
    cost = cosine_cost(h_v.double(), h_l.double())  # (B, N_V, N_L)
    plan, _ = partial_sinkhorn(cost, mass=mass, tau=tau, max_iter=max_iter, tol=tol,
                               mask_a=mask_v, mask_b=mask_l)
    on = (plan * where.to(plan.device)).sum((1, 2))
    return 100.0 * on / plan.sum((1, 2)).clamp(min=1e-30)


def summarize_shares(shares: Sequence[Sequence[float]], chances: Sequence[float],
                     key: str = "block") -> list[dict[str, Any]]:
    """Per column m of ``shares`` (items x blocks, percent) and the items' ``chances``:
    ``{key: m, "share", "chance", "lift", "per_item": {"share", "chance"}}`` with the means over
    items and ``lift`` = mean share / mean chance (4 decimals)."""
    s, c = np.asarray(shares, dtype=float), np.asarray(chances, dtype=float)
    if s.ndim != 2 or s.shape[0] != c.shape[0] or s.shape[0] == 0:
        raise ValueError(f"shares must be [items, blocks] with one chance per item, got "
                         f"{s.shape} and {c.shape}")
    return [{key: m, "share": round(float(s[:, m].mean()), 4),
             "chance": round(float(c.mean()), 4),
             "lift": round(float(s[:, m].mean() / max(c.mean(), 1e-12)), 4),
             "per_item": {"share": s[:, m].round(4).tolist(), "chance": c.round(4).tolist()}}
            for m in range(s.shape[1])]
