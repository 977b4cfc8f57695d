r"""Balanced entropic OT (Sinkhorn), log domain -- the reference that Algorithm 1 reduces to.

.. math::
    T^\star = \arg\min_{T \ge 0} \langle T, C\rangle + \tau \sum_{ij} T_{ij}(\log T_{ij} - 1)
    \quad\text{s.t.}\quad T\mathbf 1 = a,\; T^\top\mathbf 1 = b .

Kept small and for teaching: READ-PVLA's Algorithm 1 as printed converges to this plan
(DESIGN.md fact 2; :func:`readpvla.ot.paper_algorithm1`). For the PVLA loss use
:func:`readpvla.ot.partial_sinkhorn`, which also solves this problem with ``mass=1``.

References
----------
[1] Cuturi (2013). Sinkhorn distances: lightspeed computation of optimal transport. NeurIPS.
[2] Peyre, Cuturi (2019). Computational Optimal Transport, Section 4.4 (log-domain Sinkhorn).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .partial import PartialOTInfo, _check_loop, _info, _prepare

__all__ = ["sinkhorn"]


def sinkhorn(cost: Tensor, tau: float = 0.05, max_iter: int = 1000, tol: float = 1e-6,
             a: Tensor | None = None, b: Tensor | None = None, mask_a: Tensor | None = None,
             mask_b: Tensor | None = None, *, check_every: int = 10
             ) -> tuple[Tensor, PartialOTInfo]:
    r"""Balanced entropic OT plan by log-domain Sinkhorn iterations, batched and masked.

    Iterates :math:`f = \log a - \mathrm{LSE}_j(-C_{ij}/\tau + g_j)`,
    :math:`g = \log b - \mathrm{LSE}_i(-C_{ij}/\tau + f_i)`; the plan is
    :math:`T = \exp(-C/\tau + f_i + g_j)`. ``C`` enters as ``C - min C`` (per item, real
    entries): the same plan, since :math:`\langle T, C + c\rangle = \langle T, C\rangle + c|a|`.
    Nothing to transport (``B``, ``N`` or ``M`` = 0) gives an all-zero plan, as in
    :func:`partial_sinkhorn`.

    Args:
        cost: ``[N, M]`` or ``[B, N, M]`` non-negative cost ``C``.
        tau: entropic temperature.
        max_iter, tol, check_every: stop when ``||T1 - a||_1 <= tol`` (checked every
            ``check_every`` iterations on the plan itself; the column marginal is exact after
            each iteration, and ``||T1 - a||_1`` bounds the mass error ``|1'T1 - |a||``).
        a, b: marginals (uniform over real tokens by default); ``|a| = |b|`` per item is required.
        mask_a, mask_b: bool masks of real rows / columns, as in :func:`partial_sinkhorn`.

    Returns:
        ``(plan, info)`` as :func:`readpvla.ot.partial_sinkhorn` (``info.mass = |a|``).
    """
    _check_loop(max_iter, tol, check_every)
    p = _prepare(cost, 1.0, tau, a, b, mask_a, mask_b)
    if p["C"].numel() == 0:  # B, N or M is 0: nothing to transport
        zero = torch.zeros_like(p["m"])
        none = torch.zeros_like(zero, dtype=torch.long)
        return cost.new_zeros(cost.shape), _info(none, zero, tol, zero, "log", p["unbatched"])
    sa, sb = p["a"].sum(-1), p["b"].sum(-1)
    if not bool(torch.allclose(sa, sb, rtol=1e-6, atol=0.0)):
        raise ValueError("balanced OT needs |a| = |b| for every item; use partial_sinkhorn for "
                         "unequal masses")
    # (B, N, M) <= 0; shifting C by its per-item minimum over real entries leaves the plan
    # unchanged (<T, C + c> = <T, C> + c |a|) and keeps -C/tau from rounding away the spread
    L = (p["cmin"][:, None, None] - p["C"]) / p["tau"]
    la, lb = p["a"].log(), p["b"].log()  # -inf on padding
    g = torch.where(p["mb"], 0.0, -torch.inf).to(L.dtype)  # (B, M)
    n_iter, viol = 0, None
    for it in range(1, max_iter + 1):
        f = la - torch.logsumexp(L + g[:, None, :], 2)  # (B, N)
        g = lb - torch.logsumexp(L + f[:, :, None], 1)  # (B, M)
        n_iter = it
        if it % check_every == 0 or it == max_iter:
            T = torch.exp(L + f[:, :, None] + g[:, None, :])
            viol = (T.sum(2) - p["a"]).abs().sum(-1)
            if tol > 0 and bool((viol <= tol).all()):
                break
    T = torch.where(p["keep"], torch.exp(L + f[:, :, None] + g[:, None, :]), 0.0)
    viol = torch.where(p["empty"], 0.0, viol)
    m = torch.where(p["empty"], 0.0, sa)
    T = T.to(cost.dtype)
    iters = torch.full_like(m, n_iter, dtype=torch.long)
    return (T[0] if p["unbatched"] else T), _info(iters, viol, tol, m, "log", p["unbatched"])
