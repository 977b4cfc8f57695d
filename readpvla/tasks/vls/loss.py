r"""VLS task loss: token cross-entropy of the summary, plus READ-PVLA's alignment term.

.. math:: \mathcal L = \mathrm{CE}(y \mid \text{transcript}, \text{video})
          + \lambda\,\mathcal L_{PVLA}

(paper Sec. 3.3, "loss at all blocks"; :func:`pvla_term`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .data import model_inputs

__all__ = ["PVLASettings", "pvla_term", "vls_loss"]


@dataclass(frozen=True)
class PVLASettings:
    """The alignment term's settings (``weight`` 0: no PVLA)."""

    weight: float = 0.0   # lambda of L = L_task + lambda * L_PVLA
    mass: float = 0.5     # transported mass m of the partial plan (DESIGN.md: a hyperparameter)
    tau: float = 0.05     # entropic temperature (paper: 0.05)
    max_iter: int = 1000  # Sinkhorn iterations (paper: 1000)
    layers: str = "all"   # "all" encoder layers up to the fusion layer, or "fusion" only

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"PVLA weight must be >= 0, got {self.weight!r}")
        if self.layers not in ("all", "fusion"):
            raise ValueError(f"pvla layers must be 'all' or 'fusion', got {self.layers!r}")


def pvla_term(out: Any, fusion_layer: int, cfg: PVLASettings) -> torch.Tensor:
    r"""The PVLA term of READ-PVLA's objective (paper Sec. 3.3, "loss at all blocks").

    .. math:: \mathcal L_{PVLA} = \frac{1}{f+1}\sum_{m=0}^{f}
              D_{POT}\big(H_V, H_L^{(m)}\big),\qquad
              \mathcal L = \mathcal L_{task} + \lambda\,\mathcal L_{PVLA}

    with :math:`D_{POT}` the entropic partial OT cost under cosine distance, uniform weights over
    the real tokens, transported mass ``cfg.mass``, temperature ``cfg.tau``
    (:func:`readpvla.ot.pvla_loss`, averaged over the batch). :math:`H_L^{(m)}` are the transcript
    tokens after encoder layer ``m < f`` (``out.h_l_layers[m]``) and, at the fusion layer ``f``,
    before the video is mixed in (``out.h_l``); :math:`H_V` are the projected clips ``out.h_v``
    at every layer (paper Eq. 4: :math:`H_V^{(m+1)} = H_V^{(m)}`). ``cfg.layers="fusion"``
    keeps only :math:`m = f`. Shapes: ``h_v [B, N_V, d]``, ``h_l [B, N_L, d]``; returns a scalar.
    """
    from readpvla.ot import alignment_losses

    h_ls = [out.h_l] if cfg.layers == "fusion" else [*out.h_l_layers[:fusion_layer], out.h_l]
    # every layer's OT problems in one batched solve (same losses as one pvla_loss per layer)
    return alignment_losses([out.h_v] * len(h_ls), h_ls, out.mask_v, out.mask_l, "pvla",
                            mass=cfg.mass, tau=cfg.tau, max_iter=cfg.max_iter).mean()


def vls_loss(model: Any, batch: dict[str, Any], pvla: PVLASettings = PVLASettings()
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy (+ ``pvla.weight`` x :func:`pvla_term`) on a collated batch, for
    :func:`readpvla.train.fit`; logs ``ce`` (and ``pvla``)."""
    out = model(**model_inputs(batch))
    if pvla.weight > 0:
        term = pvla_term(out, model.fusion_layer, pvla)
        return out.loss + pvla.weight * term, {"ce": float(out.loss.detach()),
                                                "pvla": float(term.detach())}
    return out.loss, {"ce": float(out.loss.detach())}
