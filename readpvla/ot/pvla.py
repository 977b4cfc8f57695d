r"""The Partial Video-Language Alignment loss (READ-PVLA Section 3.3) and its ablation family.

.. math::
    \mathcal L_{\text{PVLA}} = \frac1{B}\sum_{k=1}^{B} \langle T^{\star}_k, C_k\rangle, \qquad
    C_{k,ij} = 1 - \cos(h_{v,i}, h_{l,j}),

where :math:`T^\star_k` is the entropic partial OT plan of item ``k``
(:func:`readpvla.ot.partial_sinkhorn`) between uniform weights over its real video tokens
(:math:`a = \mathbf 1/N_V`) and real language tokens (:math:`b = \mathbf 1/N_L`), transporting
``mass`` (the paper's count ``s`` is ``mass * min(N_V, N_L)``; DESIGN.md fact 3: a min over ``s``
always picks the smallest, so ``mass`` is a hyperparameter). The ablations of the paper share the
call shape: full VLA (Table 6: ``mass = 1``) and pooled distances (Table 9: average- or max-pool
each sequence over its real tokens, then cosine or L2 distance).

When some item's plan has not converged (``violation > tol`` after ``max_iter`` iterations), the
OT losses still return it but emit one :class:`readpvla.ot.ConvergenceWarning` per call.

References
----------
[1] Nguyen et al. (2024). READ-PVLA, Eq. 7-8, Algorithm 1, Tables 6 and 9.
[2] Danskin (1967); Bertsekas, Nonlinear Programming, Prop. B.25 (envelope / Danskin theorem).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from .cost import _cosine, _promote, check_features
from .partial import ConvergenceWarning, _convergence_warning, _transport_cost

__all__ = ["ALIGNMENT_METHODS", "alignment_loss", "alignment_losses", "pooled_distance_loss",
           "pvla_loss", "vla_loss"]

ALIGNMENT_METHODS = ("pvla", "vla", "avg-cosine", "max-cosine", "avg-l2", "max-l2", "none")
REDUCTIONS = ("mean", "sum", "none")
COSTS = ("cosine", "l2")


def _features(h_v, h_l, mask_v, mask_l):
    """Validate; return batched (h_v, h_l) with padding zeroed, masks [B, N], nonempty [B], flag."""
    check_features(h_v, "h_v", finite=False)
    check_features(h_l, "h_l", finite=False)
    if h_l.ndim != h_v.ndim:
        raise ValueError(f"h_v {tuple(h_v.shape)} and h_l {tuple(h_l.shape)} must both be "
                         "batched [B, N, d] or both unbatched [N, d]")
    unbatched = h_v.ndim == 2
    hv = h_v.unsqueeze(0) if unbatched else h_v
    hl = h_l.unsqueeze(0) if unbatched else h_l
    if hv.shape[0] != hl.shape[0] or hv.shape[-1] != hl.shape[-1]:
        raise ValueError(f"h_v {tuple(h_v.shape)} and h_l {tuple(h_l.shape)} need the same batch "
                         "size and feature dimension d")
    if hv.device != hl.device:
        raise ValueError(f"device mismatch: h_v is on {hv.device}, h_l on {hl.device}")
    hv, hl = _promote(hv, hl)  # e.g. float32 video and float64 text -> float64
    masks = []
    for mask, h, name in ((mask_v, hv, "mask_v"), (mask_l, hl, "mask_l")):
        B, N = h.shape[:2]
        if mask is None:
            masks.append(torch.ones(B, N, dtype=torch.bool, device=h.device))
            continue
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor (True = real token)")
        want = (N,) if unbatched else (B, N)
        if tuple(mask.shape) != want:
            raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {want}")
        if mask.device != h.device:
            raise ValueError(f"device mismatch: {name} is on {mask.device}, features on {h.device}")
        masks.append(mask.view(B, N))
    mv, ml = masks
    finite = torch.stack([(torch.isfinite(h).all(-1) | ~mask).all()
                          for h, mask in ((hv, mv), (hl, ml))]).tolist()  # one host sync
    for ok, name in zip(finite, ("h_v", "h_l")):
        if not ok:
            raise ValueError(f"{name} contains NaN or inf on real (unmasked) tokens")
    hv = torch.where(mv[..., None], hv, 0.0)  # padding may hold anything, even NaN
    hl = torch.where(ml[..., None], hl, 0.0)
    nonempty = mv.any(-1) & ml.any(-1)
    return hv, hl, mv, ml, nonempty, unbatched


def _reduce(per_item: Tensor, nonempty: Tensor, reduction: str, unbatched: bool) -> Tensor:
    """'mean' averages over the items that have a real video and a real language token (0 when
    there are none, e.g. an empty batch)."""
    if reduction == "none":
        return per_item[0] if unbatched else per_item
    if reduction == "sum":
        return per_item.sum()
    return per_item.sum() / nonempty.sum().clamp_min(1).to(per_item.dtype)


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _l2_relative(hv: Tensor, hl: Tensor, mv: Tensor, ml: Tensor) -> Tensor:
    """``||h_v,i - h_l,j|| / s`` with ``s`` the item's largest distance over real pairs (1 if
    that is 0 or the item is empty); ``[B, N_V, N_L]`` in ``[0, 1]`` on real pairs."""
    D = torch.cdist(hv, hl, compute_mode="donot_use_mm_for_euclid_dist")  # (B, N_V, N_L)
    if D.numel() == 0:
        return D
    real = mv[:, :, None] & ml[:, None, :]  # (B, N_V, N_L)
    s = torch.where(real, D, 0.0).amax((1, 2), keepdim=True)  # (B, 1, 1), not detached
    return D / torch.where(s > 0, s, 1.0)


def _pvla(h_v, h_l, mask_v, mask_l, mass, tau, max_iter, grad, tol, reduction, cost,
          kw) -> tuple[Tensor, ConvergenceWarning | None]:
    """:func:`pvla_loss` without the warning: ``(loss, warning or None)``."""
    _check_reduction(reduction)
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    hv, hl, mv, ml, nonempty, unbatched = _features(h_v, h_l, mask_v, mask_l)
    C = _cosine(hv, hl) if cost == "cosine" else _l2_relative(hv, hl, mv, ml)  # (B, N_V, N_L)
    per_item, info = _transport_cost(C, mass, tau, max_iter, tol, None, None, mv, ml, grad,
                                     **kw)  # (B,)
    loss = _reduce(per_item, nonempty, reduction, unbatched)
    return loss, _convergence_warning(info, tol, max_iter, tau)


def _pvla_kw(h_v, h_l, mask_v, mask_l, mass=0.5, tau=0.05, max_iter=1000, grad="envelope", *,
             tol=1e-6, reduction="mean", cost="cosine", **kw):
    """:func:`_pvla` with :func:`pvla_loss`'s defaults, for the other entry points."""
    return _pvla(h_v, h_l, mask_v, mask_l, mass, tau, max_iter, grad, tol, reduction, cost, kw)


def _emit(loss: Tensor, warning: ConvergenceWarning | None) -> Tensor:
    if warning is not None:
        warnings.warn(warning, stacklevel=3)  # the line that called the public loss
    return loss


def pvla_loss(h_v: Tensor, h_l: Tensor, mask_v: Tensor | None = None,
              mask_l: Tensor | None = None, mass: float | Tensor = 0.5, tau: float = 0.05,
              max_iter: int = 1000, grad: str = "envelope", *, tol: float = 1e-6,
              reduction: str = "mean", cost: str = "cosine", **kw) -> Tensor:
    r"""PVLA loss: partial OT cost between video and language tokens under cosine distance.

    Per item :math:`\ell_k = \langle T^\star_k, C_k\rangle` with :math:`C = 1 - \cos(h_v, h_l)`
    and :math:`T^\star` the entropic partial plan of mass ``mass`` (temperature ``tau``).

    ``cost="l2"`` (an ablation; the authors' code used a squared L2 cost) uses instead the
    *relative* Euclidean cost :math:`C_{ij} = \|h_{v,i} - h_{l,j}\| / s_k`,
    :math:`s_k = \max_{ij\ \text{real}} \|h_{v,i} - h_{l,j}\|` (per item, over real tokens).
    Why: raw distances are on the features' scale (entries ~80 in d = 384 give ~2000), and since
    the plan of :math:`C/s` at ``tau`` is the plan of :math:`C` at :math:`s\,\tau`, a ``tau`` meant
    for costs in ``[0, 2]`` would be ~1e-4 of the cost scale: nearly an LP, far from converging in
    ``max_iter``. Dividing by :math:`s_k` makes ``tau`` a fraction of the item's largest distance,
    as it is (of 1) for the cosine cost, and the loss invariant to a common rescaling of
    ``h_v, h_l``; :math:`s_k` is not detached, so the gradient is that of this scale-free loss
    (it cannot be lowered by shrinking the features).

    Gradients (both exact for what they differentiate):

    - ``grad="envelope"``: :math:`T^\star` is computed under ``no_grad`` and held constant, so
      :math:`\partial\ell/\partial C = T^\star`. By Danskin's theorem this is the exact gradient
      of the entropic OT value :math:`V_\tau(C) = \min_{T\in\Pi_m}\langle T,C\rangle +
      \tau\sum T(\log T - 1)` (and of the exact partial OT value as ``tau -> 0``). Backward costs
      one product with the plan; memory does not depend on ``max_iter``.
    - ``grad="unroll"``: autograd through the iterations: the exact derivative of the returned
      quantity :math:`C \mapsto \langle T^\star(C), C\rangle`, i.e.
      :math:`T^\star + \sum_{ij} C_{ij}\,\partial T^\star_{ij}/\partial C`. The extra term is the
      plan's own sensitivity; it vanishes as ``tau -> 0`` (the LP plan is piecewise constant in
      ``C``) and is of the order of the plan's entropy change, so the two differ most for large
      ``tau``. Memory grows linearly with the iterations run (``O(B (N_V + N_L))`` per iteration
      in the exp domain, ``O(B N_V N_L)`` in the log domain). Both are checked against finite
      differences in ``tests/test_pvla.py``.

    Args:
        h_v: ``[B, N_V, d]`` (or ``[N_V, d]``) video token features.
        h_l: ``[B, N_L, d]`` (or ``[N_L, d]``) language token features.
        mask_v, mask_l: bool ``[B, N_V]`` / ``[B, N_L]``, True = real token. An item with no real
            video or no real language token has loss 0 and no gradient.
        mass: transported fraction in ``(0, 1]`` (number or ``[B]`` tensor).
        tau: entropic temperature (paper 0.05).
        max_iter: iteration cap (paper 1000); the solver stops earlier once ``tol`` is met.
        grad: ``"envelope"`` or ``"unroll"``.
        tol: stopping tolerance of :func:`partial_sinkhorn`.
        reduction: ``"mean"`` (over items with real tokens on both sides; 0 if there are none,
            e.g. an empty batch ``B = 0``), ``"sum"``, ``"none"``.
        cost: ``"cosine"`` (the paper's) or ``"l2"`` (relative Euclidean, above).
        **kw: passed to :func:`partial_sinkhorn` (``domain``, ``check_every``).

    Returns:
        The loss: a scalar, or ``[B]`` for ``reduction="none"`` (``[]`` unbatched).

    Warns:
        ConvergenceWarning: once per call, when some item's plan did not reach ``tol`` within
        ``max_iter`` iterations; it says how many items, the worst violation, ``tol`` and
        ``max_iter``. The loss is still returned (from the unfinished plans). ``tol = 0`` runs
        exactly ``max_iter`` iterations and never warns.
    """
    return _emit(*_pvla(h_v, h_l, mask_v, mask_l, mass, tau, max_iter, grad, tol, reduction,
                        cost, kw))


def vla_loss(h_v: Tensor, h_l: Tensor, mask_v: Tensor | None = None,
             mask_l: Tensor | None = None, tau: float = 0.05, max_iter: int = 1000,
             grad: str = "envelope", **kw) -> Tensor:
    """Full video-language alignment (Table 6 "VLA"): :func:`pvla_loss` with ``mass = 1``, i.e.
    ``s = min(N_V, N_L)``: all the mass of the smaller side is transported (balanced OT when
    ``N_V = N_L``). Same arguments as :func:`pvla_loss` (keyword ``tol``, ``reduction``,
    ``cost``) and the same :class:`~readpvla.ot.ConvergenceWarning`."""
    return _emit(*_pvla_kw(h_v, h_l, mask_v, mask_l, 1.0, tau, max_iter, grad, **kw))


def pooled_distance_loss(h_v: Tensor, h_l: Tensor, mask_v: Tensor | None = None,
                         mask_l: Tensor | None = None, pool: str = "avg", metric: str = "cosine",
                         *, reduction: str = "mean", eps: float = 1e-8) -> Tensor:
    r"""Pooled-distance alignment (Table 9): pool each sequence over its real tokens, then compare.

    :math:`\bar h_v = \mathrm{pool}_{i:\,\text{real}}\, h_{v,i}`, same for :math:`\bar h_l`;
    ``pool="avg"`` (masked mean) or ``"max"`` (masked max, padding never wins);
    ``metric="cosine"``: :math:`1 - \cos(\bar h_v, \bar h_l)`; ``"l2"``:
    :math:`\|\bar h_v - \bar h_l\|_2` (subgradient 0 at equality).

    Args:
        h_v, h_l, mask_v, mask_l, reduction: as :func:`pvla_loss`.
        pool: ``"avg"`` or ``"max"``.
        metric: ``"cosine"`` or ``"l2"``.
        eps: norm floor for the cosine.

    Returns:
        A scalar (or ``[B]`` for ``reduction="none"``); empty items give 0.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")
    _check_reduction(reduction)
    hv, hl, mv, ml, nonempty, unbatched = _features(h_v, h_l, mask_v, mask_l)
    pooled = []
    for h, mask in ((hv, mv), (hl, ml)):
        if pool == "avg":
            n = mask.sum(-1, keepdim=True).clamp_min(1).to(h.dtype)  # (B, 1)
            pooled.append(h.sum(1) / n)  # padding is already zero
        elif h.shape[1] == 0:  # no tokens at all: every item is empty
            pooled.append(h.new_zeros(h.shape[0], h.shape[2]))
        else:
            neg = torch.finfo(h.dtype).min
            pooled.append(torch.where(mask[..., None], h, neg).amax(1))
    pv, pl = (torch.where(nonempty[:, None], p, 0.0) for p in pooled)  # (B, d)
    if metric == "cosine":
        cos = torch.nn.functional.cosine_similarity(pv, pl, dim=-1, eps=eps)
        dist = 1.0 - cos
    else:
        dist = torch.linalg.vector_norm(pv - pl, dim=-1)
    dist = torch.where(nonempty, dist, 0.0)  # (B,)
    return _reduce(dist, nonempty, reduction, unbatched)


def alignment_loss(h_v: Tensor, h_l: Tensor, mask_v: Tensor | None = None,
                   mask_l: Tensor | None = None, method: str = "pvla", **kw) -> Tensor:
    """One entry point for the alignment family, as the trainer calls it.

    ``method``: ``"pvla"`` (:func:`pvla_loss`), ``"vla"`` (:func:`vla_loss`), ``"avg-cosine"``,
    ``"max-cosine"``, ``"avg-l2"``, ``"max-l2"`` (:func:`pooled_distance_loss`), or ``"none"``
    (a zero scalar on the features' device, the "w/o alignment" row of Table 6). ``kw`` go to the
    chosen function (``mass``, ``tau``, ``max_iter``, ``grad``, ``reduction``, ``cost``, ...).
    The OT methods emit at most one :class:`~readpvla.ot.ConvergenceWarning` per call.
    """
    if method == "pvla":
        return _emit(*_pvla_kw(h_v, h_l, mask_v, mask_l, **kw))
    if method == "vla":
        return _emit(*_pvla_kw(h_v, h_l, mask_v, mask_l, 1.0, **kw))
    if method in ("avg-cosine", "max-cosine", "avg-l2", "max-l2"):
        pool, metric = method.split("-")
        return pooled_distance_loss(h_v, h_l, mask_v, mask_l, pool=pool, metric=metric, **kw)
    if method == "none":
        check_features(h_v, "h_v", finite=False)
        return torch.zeros((), dtype=h_v.dtype, device=h_v.device)
    raise ValueError(f"method must be one of {ALIGNMENT_METHODS}, got {method!r}")


def alignment_losses(h_vs: Sequence[Tensor], h_ls: Sequence[Tensor], mask_v: Tensor | None = None,
                     mask_l: Tensor | None = None, method: str = "pvla", **kw) -> Tensor:
    r"""The alignment losses of ``M`` blocks, ``[M]``: :math:`\mathcal L_{align}(H_V^{(m)},
    H_L^{(m)})` for ``m = 1..M``, with the OT problems of every block solved in **one** batched
    call.

    Training puts PVLA at every block (TLG: :math:`\frac1M\sum_m`, Section 3.3); one
    :func:`alignment_loss` per block pays the solver's per-iteration overhead ``M`` times. Here the
    blocks' ``[B, N, d]`` features are stacked to ``[M B, N, d]`` (the masks repeated) and
    solved together. The solver stops each item on its own residual
    (:func:`~readpvla.ot.partial_sinkhorn`), so every block's loss is the one a separate
    :func:`alignment_loss` call returns (tested). Methods without OT (pooled distances, ``"none"``)
    and blocks whose shapes differ are computed block by block. At most one
    :class:`~readpvla.ot.ConvergenceWarning` per call (counting the items of all blocks).

    Args:
        h_vs, h_ls: ``M`` video / language features, ``[B, N_V, d]`` / ``[B, N_L, d]`` each.
        mask_v, mask_l: bool ``[B, N_V]`` / ``[B, N_L]`` shared by the blocks (True = real).
        method, **kw: as :func:`alignment_loss` (``reduction`` must stay ``"mean"``).

    Returns:
        ``[M]`` losses, one per block (``torch.stack`` of the per-block :func:`alignment_loss`).
    """
    h_vs, h_ls = list(h_vs), list(h_ls)
    if not h_vs or len(h_vs) != len(h_ls):
        raise ValueError(f"need as many video as language blocks, at least one; got {len(h_vs)} "
                         f"and {len(h_ls)}")
    if kw.get("reduction", "mean") != "mean":
        raise ValueError("alignment_losses averages each block over its items; reduction must "
                         f"be 'mean', got {kw['reduction']!r}")
    same = (all(isinstance(h, Tensor) and h.ndim == 3 for h in h_vs + h_ls)
            and len({tuple(h.shape) for h in h_vs}) == 1
            and len({tuple(h.shape) for h in h_ls}) == 1
            and len({(h.dtype, h.device) for h in h_vs + h_ls}) == 1)
    if method not in ("pvla", "vla") or len(h_vs) == 1 or not same:
        return torch.stack([alignment_loss(hv, hl, mask_v, mask_l, method, **kw)
                            for hv, hl in zip(h_vs, h_ls)])
    n_blocks, B = len(h_vs), h_vs[0].shape[0]
    masks = []
    for mk, h, name in ((mask_v, h_vs[0], "mask_v"), (mask_l, h_ls[0], "mask_l")):
        if isinstance(mk, Tensor) and tuple(mk.shape) != tuple(h.shape[:2]):  # before repeating
            raise ValueError(f"{name} has shape {tuple(mk.shape)}, expected {tuple(h.shape[:2])}")
        masks.append(mk.repeat(n_blocks, 1) if isinstance(mk, Tensor) else mk)  # others: checked
    if method == "vla":
        kw = {**kw, "mass": 1.0}
    per_item, warning = _pvla_kw(torch.cat(h_vs), torch.cat(h_ls), *masks,
                                 **{**kw, "reduction": "none"})  # (M B,), masks checked there
    nonempty = torch.ones(B, dtype=torch.bool, device=per_item.device)
    for mk in (mask_v, mask_l):
        if mk is not None:
            nonempty = nonempty & mk.any(-1)
    losses = per_item.view(n_blocks, B).sum(1) / nonempty.sum().clamp_min(1).to(per_item.dtype)
    return _emit(losses, warning)
