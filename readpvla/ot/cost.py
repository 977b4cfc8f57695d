r"""Ground costs between video tokens :math:`h_{v,i}` and language tokens :math:`h_{l,j}`.

The PVLA cost (READ-PVLA Section 3.3) is the cosine distance

.. math::
    C_{ij} = c(h_{v,i}, h_{l,j}) = 1 - \frac{h_{v,i}^\top h_{l,j}}
             {\max(\|h_{v,i}\|, \epsilon)\,\max(\|h_{l,j}\|, \epsilon)} \in [0, 2],

clamped to ``[0, 2]`` so rounding never yields a (forbidden) negative cost; a zero vector is at
distance 1 from everything. The cosine is scale free, so a token whose norm overflows the dtype
(e.g. ``||h|| > 65504`` in float16) is first divided by its largest |entry|; when no token
overflows, the computation is the plain one, bit for bit. :func:`l2_cost` gives Euclidean
distances for the ablations. Features of different float dtypes are promoted to the common one
(as ``torch.promote_types``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["check_features", "cosine_cost", "l2_cost"]


def check_features(h: Tensor, name: str, finite: bool = True) -> None:
    """Raise ``TypeError`` / ``ValueError`` unless ``h`` is a float ``[N, d]`` / ``[B, N, d]``
    tensor, finite everywhere when ``finite``."""
    if not isinstance(h, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(h).__name__}")
    if not h.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {h.dtype}")
    if h.ndim not in (2, 3):
        raise ValueError(f"{name} must be [N, d] or [B, N, d], got shape {tuple(h.shape)}")
    if finite and not bool(torch.isfinite(h).all()):
        raise ValueError(f"{name} contains NaN or inf")


def _pair(h_v: Tensor, h_l: Tensor) -> tuple[Tensor, Tensor]:
    """Check a feature pair; return it in a common dtype."""
    check_features(h_v, "h_v")
    check_features(h_l, "h_l")
    if h_v.ndim != h_l.ndim or h_v.shape[-1] != h_l.shape[-1] or h_v.shape[:-2] != h_l.shape[:-2]:
        raise ValueError(f"h_v {tuple(h_v.shape)} and h_l {tuple(h_l.shape)} must be [B, N_V, d] "
                         "and [B, N_L, d] with the same B and d")
    if h_v.device != h_l.device:
        raise ValueError(f"device mismatch: h_v is on {h_v.device}, h_l on {h_l.device}")
    return _promote(h_v, h_l)


def _promote(h_v: Tensor, h_l: Tensor) -> tuple[Tensor, Tensor]:
    """Both features in their common float dtype (no copy when they already share it)."""
    dtype = torch.promote_types(h_v.dtype, h_l.dtype)
    return h_v.to(dtype), h_l.to(dtype)


def cosine_cost(h_v: Tensor, h_l: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine distance matrix ``1 - cos(h_v_i, h_l_j)`` in ``[0, 2]``.

    Args:
        h_v: ``[N_V, d]`` or ``[B, N_V, d]`` video token features.
        h_l: ``[N_L, d]`` or ``[B, N_L, d]`` language token features.
        eps: norm floor: vectors shorter than ``eps`` are not blown up (zero vectors give cos 0).

    Returns:
        ``[N_V, N_L]`` or ``[B, N_V, N_L]`` costs, differentiable in both inputs.
    """
    h_v, h_l = _pair(h_v, h_l)
    return _cosine(h_v, h_l, eps)


def _cosine(h_v: Tensor, h_l: Tensor, eps: float = 1e-8) -> Tensor:
    """:func:`cosine_cost` without input checks (for callers that already checked)."""
    big = [torch.isinf(torch.linalg.vector_norm(h.detach(), dim=-1)).any() for h in (h_v, h_l)]
    big_v, big_l = torch.stack(big).tolist()  # one host sync; True only if ||h||^2 overflows
    u_v = _unit_rescaled(h_v, eps) if big_v else F.normalize(h_v, dim=-1, eps=eps)
    u_l = _unit_rescaled(h_l, eps) if big_l else F.normalize(h_l, dim=-1, eps=eps)
    cos = u_v @ u_l.transpose(-1, -2)  # (B, N_V, N_L)
    return (1.0 - cos).clamp(0.0, 2.0)


def _unit_rescaled(h: Tensor, eps: float) -> Tensor:
    """``h / ||h||`` for features whose squared norm overflows the dtype: each token whose norm
    is inf is first divided by its largest |entry| (the direction is all the cosine needs); the
    other tokens are normalised exactly as ``F.normalize`` does."""
    hd = h.detach()
    big = torch.isinf(torch.linalg.vector_norm(hd, dim=-1, keepdim=True))  # (..., N, 1)
    scale = torch.where(big, hd.abs().amax(-1, keepdim=True), 1.0)  # finite, > 0 where big
    return F.normalize(torch.where(big, h / scale, h), dim=-1, eps=eps)


def l2_cost(h_v: Tensor, h_l: Tensor) -> Tensor:
    """Euclidean distance matrix ``||h_v_i - h_l_j||_2``, shapes as :func:`cosine_cost`.

    On the scale of the features: hidden states with entries ~80 in d = 384 give distances
    ~2000, so a temperature meant for costs in ``[0, 2]`` makes the OT problem nearly an LP that
    does not converge. :func:`readpvla.ot.pvla_loss` with ``cost="l2"`` divides by the per-item
    maximum instead (the plan of ``C / s`` at ``tau`` is the plan of ``C`` at ``s * tau``).
    """
    h_v, h_l = _pair(h_v, h_l)
    return torch.cdist(h_v, h_l, compute_mode="donot_use_mm_for_euclid_dist")
