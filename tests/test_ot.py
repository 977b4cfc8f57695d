"""readpvla.ot.partial_sinkhorn against POT, masks, marginals, numerics and every input error."""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch

import readpvla as rp
from readpvla.ot import paper_algorithm1, partial_sinkhorn, sinkhorn

F64 = torch.float64


def _cost(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    return rng.uniform(0.0, 2.0, (n, m))


def _entropic_objective(T: torch.Tensor, C: torch.Tensor, tau: float) -> float:
    T = T.clamp_min(1e-300)
    return float((T * C).sum() + tau * (T * (T.log() - 1)).sum())


# ----------------------------------------------------------------------------- POT reference
@pytest.mark.parametrize("domain", ["exp", "log"])
def test_matches_pot_entropic_partial(domain):
    rng = np.random.default_rng(0)
    for _ in range(10):
        n, m = (int(x) for x in rng.integers(2, 25, 2))
        mass = float(rng.uniform(0.02, 0.98))
        C = _cost(rng, n, m)
        a, b = np.full(n, 1 / n), np.full(m, 1 / m)
        ref = ot.partial.entropic_partial_wasserstein(a, b, C, 0.05, m=mass, numItermax=1000)
        T, info = partial_sinkhorn(torch.tensor(C), mass, 0.05, 1000, 0.0, domain=domain)
        assert info.domain == domain and info.n_iter == 1000
        np.testing.assert_allclose(T.numpy(), ref, rtol=0, atol=1e-8)


def test_matches_pot_with_weights():
    rng = np.random.default_rng(1)
    for _ in range(5):
        n, m = (int(x) for x in rng.integers(2, 15, 2))
        a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, m)
        a, b = a / a.sum() * rng.uniform(0.5, 1.5), b / b.sum()
        mass = float(rng.uniform(0.1, 0.9))
        C = _cost(rng, n, m)
        ref = ot.partial.entropic_partial_wasserstein(
            a, b, C, 0.05, m=mass * min(a.sum(), b.sum()), numItermax=1000)
        T, info = partial_sinkhorn(torch.tensor(C), mass, 0.05, 1000, 0.0, torch.tensor(a),
                                   torch.tensor(b))
        np.testing.assert_allclose(T.numpy(), ref, rtol=0, atol=1e-8)
        assert math.isclose(float(info.mass), mass * min(a.sum(), b.sum()), rel_tol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_small_tau_is_finite_and_matches_pot_logscale(dtype):
    rng = np.random.default_rng(2)
    C = _cost(rng, 9, 7)
    a, b = np.full(9, 1 / 9), np.full(7, 1 / 7)
    ref = ot.partial.entropic_partial_wasserstein_logscale(a, b, C, 1e-3, m=0.6, numItermax=300)
    T, info = partial_sinkhorn(torch.tensor(C, dtype=dtype), 0.6, 1e-3, 300, 0.0)
    assert info.domain == "log" and bool(torch.isfinite(T).all())
    np.testing.assert_allclose(T.double().numpy(), ref, rtol=0,
                               atol=1e-8 if dtype == F64 else 1e-4)


def test_tends_to_exact_partial_wasserstein():
    """Stated tolerance at tau = 1e-3 (costs in [0, 2]): transport cost within 1e-5 of the LP
    optimum (measured <= 1.7e-6) and plan within 1e-3 (measured <= 3.2e-4: near-ties in the LP
    make the plan, not the cost, converge slowly in tau). At tau = 1e-2 the gap is visible."""
    gaps_coarse = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        for n, m, mass in [(6, 5, 0.4), (8, 7, 0.7), (5, 9, 0.3)]:
            C = _cost(rng, n, m)
            a, b = np.full(n, 1 / n), np.full(m, 1 / m)
            exact = ot.partial.partial_wasserstein(a, b, C, m=mass)
            lp = float((exact * C).sum())
            T, info = partial_sinkhorn(torch.tensor(C), mass, 1e-3, 8000, 1e-10)
            assert bool(info.converged) and info.domain == "log"
            np.testing.assert_allclose(T.numpy(), exact, rtol=0, atol=1e-3)
            assert abs(float((T.numpy() * C).sum()) - lp) < 1e-5
            T2, _ = partial_sinkhorn(torch.tensor(C), mass, 1e-2, 8000, 1e-10)
            gaps_coarse.append(float((T2.numpy() * C).sum()) - lp)
    assert min(gaps_coarse) > 0 and max(gaps_coarse) > 1e-4  # entropic cost is above the LP


# ----------------------------------------------------------------------------- batching, masks
def _padded_batch(rng, sizes, fill=float("nan")):
    B, N, M = len(sizes), max(s[0] for s in sizes), max(s[1] for s in sizes)
    C = torch.full((B, N, M), fill, dtype=F64)
    ma, mb = torch.zeros(B, N, dtype=torch.bool), torch.zeros(B, M, dtype=torch.bool)
    items = []
    for k, (n, m) in enumerate(sizes):
        c = torch.tensor(_cost(rng, n, m))
        C[k, :n, :m] = c
        ma[k, :n], mb[k, :m] = True, True
        items.append(c)
    return C, ma, mb, items


@pytest.mark.parametrize("domain", ["exp", "log"])
def test_batched_masked_equals_unpadded(domain):
    rng = np.random.default_rng(4)
    sizes = [(7, 3), (2, 9), (12, 12), (5, 1)]
    C, ma, mb, items = _padded_batch(rng, sizes)  # NaN padding must not leak
    mass = torch.tensor([0.3, 0.5, 0.9, 1.0], dtype=F64)
    T, info = partial_sinkhorn(C, mass, 0.05, 500, 0.0, mask_a=ma, mask_b=mb, domain=domain)
    for k, (c, (n, m)) in enumerate(zip(items, sizes)):
        Tk, ik = partial_sinkhorn(c, float(mass[k]), 0.05, 500, 0.0, domain=domain)
        torch.testing.assert_close(T[k, :n, :m], Tk, rtol=0, atol=1e-13)
        assert float(T[k].sum()) == pytest.approx(float(mass[k]), abs=1e-12)
        assert bool((T[k, n:] == 0).all()) and bool((T[k, :, m:] == 0).all())
        torch.testing.assert_close(info.violation[k], ik.violation, rtol=1e-6, atol=1e-15)
    # with early stopping, every item is within tol of its own converged solution
    T3, info3 = partial_sinkhorn(C, mass, 0.05, 5000, 1e-9, mask_a=ma, mask_b=mb, domain=domain)
    assert bool(info3.converged.all()) and info3.n_iter < 5000
    for k, (c, (n, m)) in enumerate(zip(items, sizes)):
        Tk, _ = partial_sinkhorn(c, float(mass[k]), 0.05, 5000, 1e-12, domain=domain)
        torch.testing.assert_close(T3[k, :n, :m], Tk, rtol=0, atol=1e-8)


def test_empty_item_gives_zero_plan():
    rng = np.random.default_rng(5)
    C, ma, mb, _ = _padded_batch(rng, [(4, 3), (3, 5), (2, 2)])
    ma[1] = False  # item 1 has no real video token
    mb[2] = False
    T, info = partial_sinkhorn(C, 0.5, 0.05, 200, 0.0, mask_a=ma, mask_b=mb)
    assert bool((T[1:] == 0).all())
    assert info.mass.tolist()[1:] == [0.0, 0.0] and info.violation.tolist()[1:] == [0.0, 0.0]
    T0, _ = partial_sinkhorn(C[0, :4, :3], 0.5, 0.05, 200, 0.0)
    torch.testing.assert_close(T[0, :4, :3], T0, rtol=0, atol=1e-14)


def test_mass_and_marginals():
    rng = np.random.default_rng(6)
    for mass in [1e-9, 1e-3, 0.2, 0.5, 0.8, 0.999, 1.0]:
        n, m = (int(x) for x in rng.integers(2, 20, 2))
        C = torch.tensor(_cost(rng, n, m))
        T, info = partial_sinkhorn(C, mass, 0.05, 5000, 1e-11)
        assert bool(info.converged), (mass, info)
        assert float(T.sum()) == pytest.approx(mass, rel=1e-10)
        assert bool((T.sum(1) <= 1 / n + 1e-10).all()) and bool((T.sum(0) <= 1 / m + 1e-10).all())
        assert bool((T >= 0).all())


def test_full_mass_is_balanced_ot():
    """mass = 1 works (POT refuses it with uniform weights by rounding, DESIGN fact 4)."""
    rng = np.random.default_rng(7)
    C = _cost(rng, 6, 6)
    T, info = partial_sinkhorn(torch.tensor(C), 1.0, 0.05, 20000, 1e-12)
    ref = ot.sinkhorn(np.full(6, 1 / 6), np.full(6, 1 / 6), C, 0.05, stopThr=1e-14,
                      numItermax=20000)
    assert bool(info.converged) and info.n_iter < 1000  # uncapped scalings: fast
    with pytest.raises(ValueError, match="infeasible"):  # POT's rounding issue, not ours
        ot.partial.entropic_partial_wasserstein(np.full(6, 1 / 6), np.full(6, 1 / 6), C, 0.05,
                                                m=1.0)
    np.testing.assert_allclose(T.numpy(), ref, rtol=0, atol=1e-9)
    Ts, _ = sinkhorn(torch.tensor(C), 0.05, 20000, 1e-13)
    np.testing.assert_allclose(Ts.numpy(), ref, rtol=0, atol=1e-9)


def test_info_and_early_stop():
    rng = np.random.default_rng(8)
    C = torch.tensor(np.stack([_cost(rng, 10, 6) for _ in range(3)]))
    T, info = partial_sinkhorn(C, 0.5, 0.05, 1000, 1e-6, check_every=7)
    assert info.n_iter % 7 == 0 and info.n_iter < 1000
    assert info.violation.shape == (3,) and info.converged.dtype == torch.bool
    assert bool(info.converged.all()) and bool((info.violation <= 1e-6).all())
    _, slow = partial_sinkhorn(C, 0.5, 0.05, 3, 1e-6)
    assert slow.n_iter == 3 and not bool(slow.converged.all())
    assert float(slow.violation.max()) > float(info.violation.max())
    T1, i1 = partial_sinkhorn(C[0], 0.5)
    assert i1.violation.shape == () and T1.shape == (10, 6)


def test_host_syncs_once_per_check_not_per_iteration(monkeypatch):
    """The stopping test reads the device every ``check_every`` iterations only."""
    C = torch.tensor(_cost(np.random.default_rng(15), 9, 7))
    calls = {"n": 0}

    def counting(real):
        def read(self, *args):
            calls["n"] += 1
            return real(self, *args)
        return read

    for name in ("__bool__", "tolist", "item"):  # every way the loop could read the device
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    counts = {}
    for max_iter in (100, 200):
        calls["n"] = 0
        _, info = partial_sinkhorn(C, 0.5, 0.05, max_iter, 1e-30, check_every=10)
        assert info.n_iter == max_iter
        counts[max_iter] = calls["n"]
    assert counts[200] - counts[100] == 10  # 100 more iterations, 10 more checks


def test_deterministic_and_dtypes():
    rng = np.random.default_rng(9)
    C = torch.tensor(_cost(rng, 8, 5))
    ref, _ = partial_sinkhorn(C, 0.4, 0.05, 300, 0.0)
    again, _ = partial_sinkhorn(C, 0.4, 0.05, 300, 0.0)
    assert torch.equal(ref, again)
    for dtype, atol in [(torch.float32, 1e-6), (torch.bfloat16, 2e-3), (torch.float16, 2e-3)]:
        T, _ = partial_sinkhorn(C.to(dtype), 0.4, 0.05, 300, 0.0)
        assert T.dtype == dtype
        torch.testing.assert_close(T.double(), ref, rtol=0, atol=atol)


def test_per_item_mass_tensor():
    rng = np.random.default_rng(10)
    C = torch.tensor(np.stack([_cost(rng, 5, 4) for _ in range(3)]))
    mass = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
    T, info = partial_sinkhorn(C, mass, 0.05, 300, 0.0)
    torch.testing.assert_close(info.mass, mass)
    for k in range(3):
        torch.testing.assert_close(T[k], partial_sinkhorn(C[k], float(mass[k]), 0.05, 300,
                                                          0.0)[0], rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- paper / teaching
def test_paper_algorithm1_is_balanced_sinkhorn():
    rng = np.random.default_rng(11)
    C = _cost(rng, 5, 4)
    a, b = np.full(5, 0.2), np.full(4, 0.25)
    ref = ot.sinkhorn(a, b, C, 0.05, numItermax=1000, stopThr=1e-14)
    loss, T = paper_algorithm1(torch.tensor(C), 0.05, 1000)
    np.testing.assert_allclose(T.numpy(), ref, rtol=0, atol=1e-10)
    assert float(loss) == pytest.approx(float((ref * C).sum()), abs=1e-10)
    Tp, info = partial_sinkhorn(torch.tensor(C), 0.3, 0.05, 1000, method="paper")
    torch.testing.assert_close(Tp, T)  # the mass is ignored: Algorithm 1 transports mass 1
    assert float(info.mass) == 1.0 and float(info.violation) < 1e-9


def test_alternating_projections_land_on_a_worse_plan():
    """DESIGN fact 2: without Dykstra's corrections the iteration stops at another, feasible plan
    with a higher entropic objective once both caps bind."""
    for seed, mass in [(3, 0.5), (2, 0.7), (3, 0.7)]:  # instances where Dykstra converges fast
        rng = np.random.default_rng(seed)
        C = torch.tensor(_cost(rng, 6, 6))
        T_alt, info = partial_sinkhorn(C, mass, 0.05, 1000, method="alternating")
        T_alt2, _ = partial_sinkhorn(C, mass, 0.05, 1100, method="alternating")
        T_opt, i_opt = partial_sinkhorn(C, mass, 0.05, 5000, 1e-10)
        assert bool(i_opt.converged) and float(info.violation) < 1e-9  # both feasible
        assert float((T_alt2 - T_alt).abs().max()) < 1e-9  # a fixed point, not slow progress
        assert float((T_alt - T_opt).abs().max()) > 1e-4
        gap = _entropic_objective(T_alt, C, 0.05) - _entropic_objective(T_opt, C, 0.05)
        assert gap > 1e-5


# ----------------------------------------------------------------------------- errors
GOOD = torch.rand(4, 3, dtype=F64)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(mass=0.0), ValueError, "mass"),
    (dict(mass=-0.1), ValueError, "mass"),
    (dict(mass=1.5), ValueError, "mass"),
    (dict(mass=float("nan")), ValueError, "mass"),
    (dict(mass=torch.tensor([0.5, 0.5])), ValueError, "mass"),
    (dict(mass="half"), TypeError, "mass"),
    (dict(cost=-GOOD), ValueError, "non-negative"),
    (dict(cost=torch.where(GOOD > 0.5, float("nan"), GOOD)), ValueError, "NaN"),
    (dict(cost=torch.where(GOOD > 0.5, float("inf"), GOOD)), ValueError, "inf"),
    (dict(cost=torch.ones(4, 3, dtype=torch.int64)), TypeError, "floating"),
    (dict(cost=GOOD.numpy()), TypeError, "torch.Tensor"),
    (dict(cost=torch.rand(4)), ValueError, "shape"),
    (dict(tau=0.0), ValueError, "tau"),
    (dict(tau=-1.0), ValueError, "tau"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(mask_a=torch.ones(5, dtype=torch.bool)), ValueError, "mask_a"),
    (dict(mask_a=torch.ones(4)), TypeError, "mask_a"),
    (dict(mask_b=torch.ones(3, dtype=torch.bool, device="meta")), ValueError, "device"),
    (dict(a=-torch.ones(4, dtype=F64)), ValueError, "non-negative"),
    (dict(a=torch.zeros(4, dtype=F64)), ValueError, "zero total"),
    (dict(a=torch.ones(5, dtype=F64)), ValueError, "shape"),
    (dict(b=torch.ones(3, dtype=F64, device="meta")), ValueError, "device"),
    (dict(method="sinkhorn"), ValueError, "method"),
    (dict(domain="linear"), ValueError, "domain"),
    (dict(method="paper", mask_a=torch.ones(4, dtype=torch.bool)), ValueError, "masks"),
])
def test_errors(kwargs, exc, match):
    kw = dict(cost=GOOD, mass=0.5)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        partial_sinkhorn(**kw)


def test_padding_may_hold_nan_but_real_entries_may_not():
    C = torch.rand(2, 3, 3, dtype=F64)
    C[0, 2, :] = float("nan")
    mask_a = torch.tensor([[True, True, False], [True, True, True]])
    T, _ = partial_sinkhorn(C, 0.5, mask_a=mask_a)
    assert bool(torch.isfinite(T).all())
    with pytest.raises(ValueError, match="NaN"):
        partial_sinkhorn(C, 0.5)


def test_paper_underflow_raises_not_nan():
    C = torch.full((3, 3), 2.0, dtype=F64)
    C[0, 0] = 1.5
    with pytest.raises(ValueError, match="Algorithm 1 under/overflowed"):
        paper_algorithm1(C.to(torch.float32), tau=1e-3, n_iter=5)


def test_lazy_import():
    assert rp.ot.partial_sinkhorn is partial_sinkhorn


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(13)
    C, ma, mb, _ = _padded_batch(rng, [(7, 3), (2, 9), (12, 12)])
    ref, _ = partial_sinkhorn(C, 0.5, 0.05, 300, 0.0, mask_a=ma, mask_b=mb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        T, info = partial_sinkhorn(C.cuda(), 0.5, 0.05, 300, 0.0, mask_a=ma.cuda(),
                                   mask_b=mb.cuda())
    assert T.device.type == "cuda" and info.violation.device.type == "cuda"
    torch.testing.assert_close(T.cpu(), ref, rtol=0, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_equals_eager():
    rng = np.random.default_rng(14)
    C, ma, mb, _ = _padded_batch(rng, [(7, 3), (2, 9), (12, 12), (5, 5)])
    C, ma, mb = C.cuda(), ma.cuda(), mb.cuda()
    mass = torch.tensor([0.3, 0.6, 0.9, 1.0], dtype=F64, device="cuda")
    for tol, max_iter in [(0.0, 95), (1e-9, 3000)]:
        ref, i_ref = partial_sinkhorn(C, mass, 0.05, max_iter, tol, mask_a=ma, mask_b=mb,
                                      cuda_graph=False)
        for graph in (None, True):
            T, info = partial_sinkhorn(C, mass, 0.05, max_iter, tol, mask_a=ma, mask_b=mb,
                                       cuda_graph=graph)
            assert info.n_iter == i_ref.n_iter
            torch.testing.assert_close(T, ref, rtol=0, atol=1e-15)
    T16, _ = partial_sinkhorn(C.to(torch.bfloat16), 0.5, mask_a=ma, mask_b=mb)
    assert T16.dtype == torch.bfloat16 and bool(torch.isfinite(T16).all())


# ----------------------------------------------------------------------------- shifts, mass check
@pytest.mark.parametrize("dtype, offset", [(torch.float32, 1e5), (F64, 1e12)])
@pytest.mark.parametrize("mass", [0.5, 1.0])
def test_log_domain_is_shift_invariant(dtype, offset, mass):
    """<T, C + c> = <T, C> + c m on the polytope (the total mass is an equality), so the plan of
    C + c is the plan of C; the log domain must not lose it to the rounding of (C + c) / tau."""
    g = torch.Generator().manual_seed(0)
    C = (torch.rand(2, 6, 7, generator=g, dtype=F64) + offset).to(dtype)  # (B, N, M)
    ref, _ = partial_sinkhorn(C.double() - offset, mass, 0.01, 5000, 1e-12)  # exact shift
    tol, atol = (1e-6, 1e-5) if dtype == torch.float32 else (1e-11, 1e-9)
    T, info = partial_sinkhorn(C, mass, 0.01, 5000, tol, domain="log")
    assert bool(info.converged.all()), info
    torch.testing.assert_close(T.double().sum((1, 2)), torch.full((2,), mass, dtype=F64),
                               rtol=0, atol=atol)
    torch.testing.assert_close(T.double(), ref, rtol=0, atol=atol)
    Ta, ia = partial_sinkhorn(C, mass, 0.01, 5000, tol)  # auto picks the domain; same plan
    assert bool(ia.converged.all())
    torch.testing.assert_close(Ta.double(), ref, rtol=0, atol=atol)
    if mass == 1.0:
        Ts, isk = sinkhorn(C, 0.01, 5000, tol)
        assert bool(isk.converged.all())
        torch.testing.assert_close(Ts.double(), ref, rtol=0, atol=atol)


def test_masked_shift_uses_real_entries_only():
    """The per-item shift is the minimum over real entries: a huge padding value changes nothing."""
    g = torch.Generator().manual_seed(1)
    C = (torch.rand(2, 5, 6, generator=g) + 1e5).float()  # (B, N, M) float32
    mask_a = torch.tensor([[True] * 5, [True, True, True, False, False]])
    C[1, 3:] = 1e30
    ref, _ = partial_sinkhorn(C[1, :3].double() - 1e5, 0.5, 0.05, 5000, 1e-12)  # exact shift
    T, info = partial_sinkhorn(C, 0.5, 0.05, mask_a=mask_a, domain="log")
    assert bool(info.converged.all()), info
    torch.testing.assert_close(T[1, :3].double(), ref, rtol=0, atol=1e-5)


def test_violation_includes_total_mass(monkeypatch):
    """A plan whose total mass is off is never reported converged, whatever the loop believed."""
    from readpvla.ot import partial as partial_mod

    real = partial_mod.dykstra_exp

    def off_by_ten_percent(*args, **kw):
        plan, *rest = real(*args, **kw)
        return (0.9 * plan, *rest)

    monkeypatch.setattr(partial_mod, "dykstra_exp", off_by_ten_percent)
    C = torch.tensor(_cost(np.random.default_rng(3), 6, 5))
    T, info = partial_sinkhorn(C, 0.5, 0.05, domain="exp")
    assert float(T.sum()) == pytest.approx(0.45)
    assert not bool(info.converged) and float(info.violation) >= 0.05 - 1e-12
