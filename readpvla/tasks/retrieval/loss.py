r"""Retrieval task loss: the symmetric InfoNCE of CLIP (and CLIP4Clip), both directions,
optionally plus an alignment loss between each matched pair's frames and words (READ-PVLA).

.. math:: \mathcal L = \tfrac12\Big(\mathrm{CE}(s\,L V^\top, I) + \mathrm{CE}(s\,V L^\top, I)\Big)
          \;+\; \lambda\,\frac1B\sum_{i=1}^{B}\mathcal L_{align}(H_V^{(i)}, H_L^{(i)})

over a batch of ``B`` (video, caption) pairs, ``L`` / ``V`` the unit text / video embeddings,
``s`` the learned logit scale (:func:`readpvla.backbones.video_clip.contrastive_loss`);
:math:`H_V^{(i)}` = ``out.h_v[i]`` ``[T, D]`` the projected frames of video ``i`` and
:math:`H_L^{(i)}` = ``out.h_l[i]`` ``[L, D]`` the projected word tokens of its caption (padding
masked by ``out.mask_v`` / ``out.mask_l``): only matched pairs are aligned, as in the paper's
PVLA (Section 3.2). The second term is there only for rows with ``align`` set
(:class:`~.rows.Row`); READ-PVLA uses ``align="pvla"``, :math:`\lambda` = 0.1.

PVLA settings are those of the TLG task (:mod:`readpvla.tasks.tlg.loss`): ``tau = 0.05``
(paper), ``mass = 0.5`` (DESIGN.md fact 3: a hyperparameter), at most 100 Sinkhorn iterations
or constraint violation ``1e-4`` in training; envelope gradients. The paper applies PVLA at every
block; here it is applied once, in the joint (projected) space, where frames and words are
comparable (the towers' hidden states have different widths).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from torch import Tensor, nn

from readpvla import ot
from readpvla.tasks.tlg.loss import MASS, PVLA_MAX_ITER, PVLA_TOL, TAU

__all__ = ["LossFn", "describe_loss", "loss_fn", "retrieval_loss"]

LossFn = Callable[[nn.Module, dict[str, Any]], tuple[Tensor, dict[str, float]]]


def retrieval_loss(model: nn.Module, batch: dict[str, Any], align: str | None = None,
                   lam: float = 0.1, mass: float = MASS, tau: float = TAU,
                   max_iter: int = PVLA_MAX_ITER, tol: float = PVLA_TOL
                   ) -> tuple[Tensor, dict[str, float]]:
    r"""InfoNCE (+ ``lam`` x alignment when ``align`` is set; module docstring) on a batch of
    :class:`~readpvla.tasks.retrieval.data.TrainBatches`, for :func:`readpvla.train.fit`.

    Args:
        model: a video CLIP (possibly with an adapter).
        batch: ``{"frames", "input_ids", "attention_mask"}``, text ``i`` describing video ``i``.
        align: None, ``"pvla"`` or another method of :data:`readpvla.ot.ALIGNMENT_METHODS`.
        lam: :math:`\lambda`, the alignment weight.
        mass, tau, max_iter, tol: PVLA settings (``mass`` only for ``"pvla"``).

    Returns:
        ``(loss, logs)``: ``nce``, the temperature ``scale``, and ``align`` (0 without one).
    """
    if align is not None and (align not in ot.ALIGNMENT_METHODS or align == "none"):
        raise ValueError(f"align must be None or one of {ot.ALIGNMENT_METHODS[:-1]}, "
                         f"got {align!r}")
    if not (isinstance(lam, int | float) and lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    out = model(batch["frames"], batch["input_ids"], batch["attention_mask"], return_loss=True)
    scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
    logs = {"nce": float(out.loss.detach()), "scale": scale, "align": 0.0}
    if align is None or lam == 0:
        return out.loss, logs
    kw: dict[str, Any] = {}
    if align in ("pvla", "vla"):
        kw = {"tau": tau, "max_iter": max_iter, "tol": tol, **({"mass": mass}
                                                              if align == "pvla" else {})}
    # matched pairs only: video i with caption i; [B, T, D] vs [B, L, D]
    al = ot.alignment_loss(out.h_v, out.h_l, out.mask_v, out.mask_l, method=align, **kw)
    logs["align"] = float(al.detach())
    return out.loss + lam * al, logs


def loss_fn(align: str | None = None, lam: float = 0.1) -> LossFn:
    """The training loss of a row (``row.align``, ``row.lam``): :func:`retrieval_loss` with them
    bound."""
    if align is None:
        return retrieval_loss
    return partial(retrieval_loss, align=align, lam=lam)


def describe_loss(align: str | None = None, lam: float = 0.1) -> str:
    """What a record says about its loss: ``"infonce"`` or e.g. ``"infonce + 0.1 * pvla(mass=0.5,
    tau=0.05)"``."""
    if align is None:
        return "infonce"
    extra = {"pvla": f"(mass={MASS:g}, tau={TAU:g})", "vla": f"(tau={TAU:g})"}.get(align, "")
    return f"infonce + {lam:g} * {align}{extra}"
