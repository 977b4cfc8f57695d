"""Partial optimal transport (batched, masked, log-stable Dykstra Sinkhorn) and the PVLA loss.

- :func:`partial_sinkhorn` -> ``(plan, info)``: entropic partial OT (READ-PVLA Eq. 7-8), POT-exact.
- :class:`ConvergenceWarning`: emitted once per call by the losses when a plan did not converge.
- :func:`partial_wasserstein_cost`: its per-item transport cost, with envelope / unrolled grads.
- :func:`pvla_loss`, :func:`vla_loss`, :func:`pooled_distance_loss`, :func:`alignment_loss`: the
  PVLA loss and the ablation family of Tables 6 and 9; :func:`alignment_losses`: every block's
  loss of a training step with one batched solve.
- :func:`paper_algorithm1` (Algorithm 1 as printed: balanced OT in disguise), :func:`sinkhorn`
  (balanced), :func:`cosine_cost`, :func:`l2_cost`.
- :func:`plan_share`, :func:`summarize_shares`: how much of a plan lands on given pairs (the
  alignment probes inside trained models).
"""

from .balanced import sinkhorn
from .cost import check_features, cosine_cost, l2_cost
from .partial import (
    ConvergenceWarning,
    PartialOTInfo,
    paper_algorithm1,
    partial_sinkhorn,
    partial_wasserstein_cost,
)
from .probe import plan_share, summarize_shares
from .pvla import (
    ALIGNMENT_METHODS,
    alignment_loss,
    alignment_losses,
    pooled_distance_loss,
    pvla_loss,
    vla_loss,
)

__all__ = [
    "ALIGNMENT_METHODS",
    "ConvergenceWarning",
    "PartialOTInfo",
    "alignment_loss",
    "alignment_losses",
    "check_features",
    "cosine_cost",
    "l2_cost",
    "paper_algorithm1",
    "plan_share",
    "partial_sinkhorn",
    "partial_wasserstein_cost",
    "pooled_distance_loss",
    "pvla_loss",
    "sinkhorn",
    "summarize_shares",
    "vla_loss",
]
