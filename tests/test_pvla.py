"""readpvla.ot PVLA loss: values, gradients (envelope vs unroll vs finite differences), masks,
memory, the ablation family and input errors."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch

import readpvla as rp
from readpvla.ot import (
    ALIGNMENT_METHODS,
    ConvergenceWarning,
    alignment_loss,
    cosine_cost,
    l2_cost,
    partial_sinkhorn,
    partial_wasserstein_cost,
    pooled_distance_loss,
    pvla_loss,
    vla_loss,
)

F64 = torch.float64


def _feats(B=3, N=6, M=4, d=8, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, d, generator=g, dtype=dtype), torch.randn(B, M, d, generator=g,
                                                                        dtype=dtype)


def _masks(B=3, N=6, M=4):
    mv, ml = torch.ones(B, N, dtype=torch.bool), torch.ones(B, M, dtype=torch.bool)
    mv[1, 4:], ml[1, 3:], mv[2, 2:] = False, False, False
    return mv, ml


def _entropic_value(C: torch.Tensor, mass: float, tau: float) -> float:
    """V_tau(C) = min <T, C> + tau sum T (log T - 1) over the partial polytope, converged."""
    T, info = partial_sinkhorn(C, mass, tau, 50000, 1e-14)
    T = T.clamp_min(1e-300)
    return float((T * C).sum() + tau * (T * (T.log() - 1)).sum())


def _transport_cost(C: torch.Tensor, mass: float, tau: float, n_iter: int) -> float:
    T, _ = partial_sinkhorn(C, mass, tau, n_iter, 0.0)
    return float((T * C).sum())


# ----------------------------------------------------------------------------- cost
def test_cosine_cost_range_and_zero_vectors():
    h_v, h_l = _feats()
    h_v[0, 0] = 0.0  # zero-norm token: guarded, distance 1 to everything
    C = cosine_cost(h_v, h_l)
    assert C.shape == (3, 6, 4) and bool(torch.isfinite(C).all())
    assert float(C.min()) >= 0 and float(C.max()) <= 2
    torch.testing.assert_close(C[0, 0], torch.ones(4, dtype=F64))
    same = cosine_cost(h_v[1], h_v[1])
    assert float(same.diagonal().abs().max()) < 1e-12 and float(same.min()) >= 0  # clamped
    ref = 1 - torch.nn.functional.cosine_similarity(h_v[1, :, None], h_l[1, None], dim=-1)
    torch.testing.assert_close(C[1], ref)
    torch.testing.assert_close(l2_cost(h_v, h_l), torch.cdist(h_v, h_l))


# ----------------------------------------------------------------------------- loss values
def test_pvla_loss_equals_pot_plan_cost():
    h_v, h_l = _feats()
    mv, ml = _masks()
    per_item = pvla_loss(h_v, h_l, mv, ml, mass=0.4, tau=0.05, max_iter=1000, tol=0.0,
                         reduction="none")
    ref = []
    for k in range(3):
        hv, hl = h_v[k][mv[k]], h_l[k][ml[k]]
        C = cosine_cost(hv, hl).numpy()
        n, m = C.shape
        T = ot.partial.entropic_partial_wasserstein(np.full(n, 1 / n), np.full(m, 1 / m), C,
                                                    0.05, m=0.4, numItermax=1000)
        ref.append((T * C).sum())
    np.testing.assert_allclose(per_item.numpy(), ref, rtol=0, atol=1e-10)
    mean = pvla_loss(h_v, h_l, mv, ml, mass=0.4, tol=0.0)
    assert float(mean) == pytest.approx(float(np.mean(ref)), abs=1e-10)


def test_batched_masked_equals_unpadded_for_every_method():
    h_v, h_l = _feats()
    mv, ml = _masks()
    h_v[~mv] = float("nan")  # padding may hold anything
    h_l[~ml] = 1e30
    for method in ALIGNMENT_METHODS:
        if method == "none":
            assert float(alignment_loss(h_v, h_l, mv, ml, method=method)) == 0.0
            continue
        kw = {"tol": 0.0, "max_iter": 300} if method in ("pvla", "vla") else {}  # same iterations
        batched = alignment_loss(h_v, h_l, mv, ml, method=method, reduction="none", **kw)
        for k in range(3):
            single = alignment_loss(h_v[k][mv[k]], h_l[k][ml[k]], method=method, **kw)
            torch.testing.assert_close(batched[k], single, rtol=0, atol=1e-9, msg=method)


def test_vla_is_full_mass_and_mass_is_a_hyperparameter():
    """DESIGN fact 3: partial OT cost per unit mass grows with the mass, so a min over s (or
    mass) would always pick the smallest one."""
    h_v, h_l = _feats(B=2, N=10, M=7, seed=3)
    torch.testing.assert_close(vla_loss(h_v, h_l), pvla_loss(h_v, h_l, mass=1.0))
    per_unit = [float(pvla_loss(h_v, h_l, mass=m, tau=0.01, max_iter=3000)) / m
                for m in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert all(x < y for x, y in zip(per_unit, per_unit[1:]))


def test_empty_items_and_mean_over_real_items():
    h_v, h_l = _feats()
    mv, ml = _masks()
    ml[0] = False  # item 0 has no language token
    per = pvla_loss(h_v, h_l, mv, ml, reduction="none")
    assert float(per[0]) == 0.0 and bool((per[1:] > 0).all())
    torch.testing.assert_close(pvla_loss(h_v, h_l, mv, ml), per[1:].mean())
    torch.testing.assert_close(pvla_loss(h_v, h_l, mv, ml, reduction="sum"), per.sum())
    pooled = pooled_distance_loss(h_v, h_l, mv, ml, reduction="none")
    assert float(pooled[0]) == 0.0


def test_pooling_ignores_padding():
    h_v, h_l = _feats()
    mv, ml = _masks()
    for pool in ("avg", "max"):
        ref = pooled_distance_loss(h_v, h_l, mv, ml, pool=pool, metric="l2", reduction="none")
        h_v2 = h_v.clone()
        h_v2[~mv] = 1e6  # would win a max-pool and dominate an average if not masked
        out = pooled_distance_loss(h_v2, h_l, mv, ml, pool=pool, metric="l2", reduction="none")
        torch.testing.assert_close(out, ref)
    avg = h_v[1, :4].mean(0)
    expect = torch.linalg.vector_norm(avg - h_l[1, :3].mean(0))
    got = pooled_distance_loss(h_v, h_l, mv, ml, pool="avg", metric="l2", reduction="none")[1]
    torch.testing.assert_close(got, expect)
    mx = h_v[1, :4].amax(0)
    expect = 1 - torch.nn.functional.cosine_similarity(mx, h_l[1, :3].amax(0), dim=0)
    got = pooled_distance_loss(h_v, h_l, mv, ml, pool="max", metric="cosine", reduction="none")[1]
    torch.testing.assert_close(got, expect)


# ----------------------------------------------------------------------------- gradients
def test_envelope_gradient_is_gradient_of_entropic_value():
    """grad='envelope' = T* = d V_tau / dC (Danskin), checked by central differences of V_tau."""
    g = torch.Generator().manual_seed(1)
    C = 2 * torch.rand(4, 5, generator=g, dtype=F64)
    Cg = C.clone().requires_grad_()
    partial_wasserstein_cost(Cg, 0.6, 0.1, 50000, 1e-14, grad="envelope").backward()
    h = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 4), (2, 1)]:
        E = torch.zeros_like(C)
        E[i, j] = h
        fd = (_entropic_value(C + E, 0.6, 0.1) - _entropic_value(C - E, 0.6, 0.1)) / (2 * h)
        assert abs(float(Cg.grad[i, j]) - fd) < 1e-7


@pytest.mark.parametrize("domain", ["exp", "log"])
def test_unroll_gradient_matches_finite_differences(domain):
    g = torch.Generator().manual_seed(2)
    C = (2 * torch.rand(2, 3, 4, generator=g, dtype=F64)).requires_grad_()

    def f(c):
        return partial_wasserstein_cost(c, 0.5, 0.1, 60, 0.0, grad="unroll", domain=domain)

    assert torch.autograd.gradcheck(f, (C,), eps=1e-6, atol=1e-6)


def test_envelope_and_unroll_differ_then_agree_as_tau_shrinks():
    """At tau = 0.1 the plan's own sensitivity makes them differ; at tau = 0.01 it vanishes."""
    g = torch.Generator().manual_seed(0)
    C = 2 * torch.rand(4, 5, generator=g, dtype=F64)
    diffs = {}
    for tau in (0.1, 0.01):
        grads = []
        for grad in ("envelope", "unroll"):
            Cg = C.clone().requires_grad_()
            partial_wasserstein_cost(Cg, 0.6, tau, 3000, 0.0, grad=grad).backward()
            grads.append(Cg.grad)
        diffs[tau] = float((grads[0] - grads[1]).abs().max())
        # unroll = d <T(C), C> / dC: check one entry by central differences
        E = torch.zeros_like(C)
        E[1, 2] = 1e-6
        fd = (_transport_cost(C + E, 0.6, tau, 3000) - _transport_cost(C - E, 0.6, tau, 3000)) / 2e-6
        assert abs(float(grads[1][1, 2]) - fd) < 1e-7
    assert diffs[0.1] > 1e-2 and diffs[0.01] < 1e-8


def test_pvla_gradient_reaches_features_not_padding():
    h_v, h_l = _feats()
    mv, ml = _masks()
    for grad in ("envelope", "unroll"):
        hv, hl = h_v.clone().requires_grad_(), h_l.clone().requires_grad_()
        pvla_loss(hv, hl, mv, ml, grad=grad, max_iter=200).backward()
        assert bool((hv.grad[mv].abs().sum(-1) > 0).all())
        assert bool((hv.grad[~mv] == 0).all()) and bool((hl.grad[~ml] == 0).all())
    # features: envelope gradient = gradient of <T*, C(h)> with T* held fixed
    hv = h_v.clone().requires_grad_()
    pvla_loss(hv, h_l, mv, ml, max_iter=1000, tol=0.0, reduction="sum").backward()
    with torch.no_grad():
        T, _ = partial_sinkhorn(cosine_cost(h_v.masked_fill(~mv[..., None], 0), h_l), 0.5, 0.05,
                                1000, 0.0, mask_a=mv, mask_b=ml)
    hv2 = h_v.clone().requires_grad_()
    (T * cosine_cost(hv2.masked_fill(~mv[..., None], 0), h_l)).sum().backward()
    torch.testing.assert_close(hv.grad, hv2.grad)


def _saved_bytes(fn) -> int:
    """Bytes autograd keeps for backward while ``fn`` builds its graph (unique storages)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_envelope_memory_does_not_grow_with_iterations():
    h_v, h_l = _feats(B=2, N=8, M=5, dtype=torch.float32)
    h_v.requires_grad_()
    mem = {}
    for grad in ("envelope", "unroll"):
        for n in (10, 100):
            mem[grad, n] = _saved_bytes(
                lambda g=grad, n=n: pvla_loss(h_v, h_l, max_iter=n, tol=0.0, grad=g))
    assert mem["envelope", 10] == mem["envelope", 100]
    assert mem["unroll", 100] > 5 * mem["unroll", 10] > 5 * mem["envelope", 10]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(h_v=torch.full((2, 3, 4), float("nan"))), ValueError, "NaN"),
    (dict(h_l=torch.full((2, 5, 4), float("inf"))), ValueError, "inf"),
    (dict(h_v=torch.ones(2, 3, 4, dtype=torch.int64)), TypeError, "floating"),
    (dict(h_v=np.ones((2, 3, 4))), TypeError, "torch.Tensor"),
    (dict(h_l=torch.rand(2, 5, 7)), ValueError, "feature dimension"),
    (dict(h_l=torch.rand(3, 5, 4)), ValueError, "batch"),
    (dict(h_l=torch.rand(5, 4)), ValueError, "both"),
    (dict(h_v=torch.rand(3, 4, device="meta"), h_l=torch.rand(5, 4)), ValueError, "device"),
    (dict(mask_v=torch.ones(2, 4, dtype=torch.bool)), ValueError, "mask_v"),
    (dict(mask_l=torch.ones(2, 5)), TypeError, "mask_l"),
    (dict(grad="implicit"), ValueError, "grad"),
    (dict(reduction="max"), ValueError, "reduction"),
    (dict(mass=0.0), ValueError, "mass"),
    (dict(tau=-0.05), ValueError, "tau"),
])
def test_pvla_errors(kwargs, exc, match):
    kw = dict(h_v=torch.rand(2, 3, 4), h_l=torch.rand(2, 5, 4))
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        pvla_loss(**kw)


def test_dispatcher_errors():
    h_v, h_l = _feats()
    with pytest.raises(ValueError, match="method"):
        alignment_loss(h_v, h_l, method="emd")
    with pytest.raises(ValueError, match="pool"):
        pooled_distance_loss(h_v, h_l, pool="min")
    with pytest.raises(ValueError, match="metric"):
        pooled_distance_loss(h_v, h_l, metric="kl")
    out = alignment_loss(h_v, h_l, method="none")
    assert out.shape == () and out.dtype == F64 and float(out) == 0.0


# ----------------------------------------------------------------------------- convergence
def _recorded(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, caught


@pytest.mark.parametrize("call", ["pvla_loss", "vla_loss", "alignment_pvla", "alignment_vla",
                                  "partial_wasserstein_cost"])
def test_non_converged_plans_warn_exactly_once(call):
    h_v, h_l = _feats(B=3, N=8, M=5, d=16, seed=4)
    fns = {
        "pvla_loss": lambda **kw: pvla_loss(h_v, h_l, **kw),
        "vla_loss": lambda **kw: vla_loss(h_v, h_l, **kw),
        "alignment_pvla": lambda **kw: alignment_loss(h_v, h_l, method="pvla", **kw),
        "alignment_vla": lambda **kw: alignment_loss(h_v, h_l, method="vla", **kw),
        "partial_wasserstein_cost": lambda **kw: partial_wasserstein_cost(
            cosine_cost(h_v, h_l), **kw),
    }
    fn = fns[call]
    bad, caught = _recorded(lambda: fn(tau=1e-3, max_iter=3))
    assert [w.category for w in caught] == [ConvergenceWarning], caught
    w = caught[0]
    assert w.filename == __file__  # points at the caller's line, not into readpvla
    msg = str(w.message)
    assert "3 of 3 items" in msg and "max_iter=3" in msg and "tol=1e-06" in msg, msg
    assert w.message.n_unconverged == 3 and w.message.n_items == 3
    assert w.message.violation > 1e-6 and w.message.max_iter == 3 and w.message.tol == 1e-6
    good, caught = _recorded(lambda: fn(tau=1e-3, max_iter=5000))
    assert not caught, [str(c.message) for c in caught]
    assert float((bad - good).abs().max()) > 1e-3  # the warning was about a real difference


def test_convergence_warning_is_public_and_solver_returns_info_instead():
    assert issubclass(rp.ot.ConvergenceWarning, UserWarning)
    assert "ConvergenceWarning" in rp.ot.__all__
    C = cosine_cost(*_feats(seed=5))
    (_, info), caught = _recorded(lambda: partial_sinkhorn(C, 0.5, 1e-4, 3))
    assert not caught and not bool(info.converged.all())  # the solver reports, never warns
    _, caught = _recorded(lambda: pvla_loss(*_feats(seed=5), tau=1e-4, max_iter=3, tol=0.0))
    assert not caught  # tol = 0: a fixed iteration count was asked for, no convergence test


def test_partly_converged_batch_counts_items():
    h_v, h_l = _feats(B=3, N=8, M=5, seed=6)
    mv, ml = torch.ones(3, 8, dtype=torch.bool), torch.ones(3, 5, dtype=torch.bool)
    mv[0], ml[1] = False, False  # two empty items: converged by definition
    _, caught = _recorded(lambda: pvla_loss(h_v, h_l, mv, ml, tau=1e-4, max_iter=3))
    assert len(caught) == 1 and caught[0].message.n_unconverged == 1
    assert "1 of 3 items" in str(caught[0].message)


def test_l2_cost_on_hidden_state_scale_converges_and_is_scale_free():
    """Real hidden states (values ~80, d = 384) give L2 distances ~2000: at tau = 0.1 the raw
    cost is nearly an LP and does not converge. cost='l2' divides each item's distances by their
    maximum over real tokens, so tau is relative to that maximum."""
    g = torch.Generator().manual_seed(0)
    h_v, h_l = 80 * torch.randn(2, 30, 384, generator=g), 80 * torch.randn(2, 30, 384, generator=g)
    D = l2_cost(h_v, h_l)  # (B, N_V, N_L), entries ~2000
    _, raw = partial_sinkhorn(D, 0.5, 0.1)
    assert not bool(raw.converged.all())  # the problem the option fixes
    loss, caught = _recorded(lambda: pvla_loss(h_v, h_l, tau=0.1, cost="l2", reduction="none"))
    assert not caught, [str(c.message) for c in caught]
    s = D.amax((1, 2))  # (B,)
    for k in range(2):  # plan of C/s at tau = plan of C at s * tau
        ref = partial_wasserstein_cost(D[k].double(), 0.5, float(s[k]) * 0.1, tol=1e-9)
        assert float(loss[k]) == pytest.approx(float(ref / s[k]), rel=1e-5)
    again = pvla_loss(3 * h_v, 3 * h_l, tau=0.1, cost="l2", reduction="none")
    torch.testing.assert_close(again, loss, rtol=1e-5, atol=0)  # scale free


def test_l2_cost_masks_and_gradient():
    h_v, h_l = _feats()
    mv, ml = _masks()
    h_v[~mv] = 1e6  # padding must not set the scale
    per = pvla_loss(h_v, h_l, mv, ml, cost="l2", reduction="none", tol=1e-10, max_iter=5000)
    for k in range(3):
        single = pvla_loss(h_v[k][mv[k]], h_l[k][ml[k]], cost="l2", tol=1e-10, max_iter=5000)
        torch.testing.assert_close(per[k], single, rtol=0, atol=1e-9)
    hv = h_v.clone().requires_grad_()
    pvla_loss(hv, h_l, mv, ml, cost="l2").backward()
    assert bool(torch.isfinite(hv.grad).all()) and bool((hv.grad[~mv] == 0).all())
    with pytest.raises(ValueError, match="cost"):
        pvla_loss(h_v, h_l, cost="kl")


def test_cosine_default_is_unchanged_by_the_cost_option():
    h_v, h_l = _feats()
    mv, ml = _masks()
    torch.testing.assert_close(pvla_loss(h_v, h_l, mv, ml, cost="cosine"),
                               pvla_loss(h_v, h_l, mv, ml), rtol=0, atol=0)
