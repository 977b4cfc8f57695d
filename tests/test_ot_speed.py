"""The solver's fast paths keep its plans: per-item stopping, one batched solve for every block,
the stabilised log domain, the compiled loop (and its fallback), the specialised loop bodies.

Speed itself is measured in ``benchmarks/bench_ot.py`` (printed ratios, never timed here)."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch

from readpvla.ot import (
    alignment_loss,
    alignment_losses,
    cosine_cost,
    partial_sinkhorn,
)
from readpvla.ot import iterations as its

F64 = torch.float64


def _cost(seed: int, B: int, N: int, M: int, dtype=F64, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, N, M, generator=g, dtype=F64) * scale).to(dtype)


def _masks(B: int, N: int, M: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    nv = torch.randint(1, N + 1, (B,), generator=g)
    nl = torch.randint(1, M + 1, (B,), generator=g)
    return torch.arange(N) < nv[:, None], torch.arange(M) < nl[:, None]


# ----------------------------------------------------------------------------- per-item stopping
@pytest.mark.parametrize("mass", [0.4, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_an_item_stops_on_its_own_residual(mass, dtype):
    """An item's plan (and iteration count) is the one it gets when solved alone: the batch it sits
    in does not move it, so batching problems never changes their plans."""
    C = _cost(1, 6, 9, 7, dtype)
    C[2] *= 0.2  # an easier item, converges at another check than the others
    mv, ml = _masks(6, 9, 7)
    T, info = partial_sinkhorn(C, mass, 0.05, 2000, 1e-6, mask_a=mv, mask_b=ml)
    assert info.iterations.shape == (6,) and info.n_iter == int(info.iterations.max())
    assert len(set(info.iterations.tolist())) > 1  # the items did stop at different checks
    for k in range(6):
        Tk, ik = partial_sinkhorn(C[k:k + 1], mass, 0.05, 2000, 1e-6, mask_a=mv[k:k + 1],
                                  mask_b=ml[k:k + 1])
        assert int(ik.iterations[0]) == int(info.iterations[k])
        atol = 1e-6 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(T[k], Tk[0], rtol=0, atol=atol)
    assert bool(info.converged.all())


def test_mixed_balanced_and_partial_items_match_pot():
    """A batch mixing mass-1 (balanced, uncapped) and partial items runs the general loop body;
    partial items equal POT's plans, balanced ones the textbook log domain's, item by item."""
    C = _cost(2, 4, 8, 8)
    mass = torch.tensor([1.0, 0.3, 1.0, 0.7], dtype=F64)
    T, info = partial_sinkhorn(C, mass, 0.05, 3000, 0.0)
    a = np.full(8, 1 / 8)
    for k in range(4):
        m = float(mass[k])
        if m == 1.0:
            ref = partial_sinkhorn(C[k], 1.0, 0.05, 3000, 0.0, domain="logsumexp")[0].numpy()
        else:
            ref = ot.partial.entropic_partial_wasserstein(a, a, C[k].numpy(), 0.05, m=m,
                                                          numItermax=3000, stopThr=0)
        np.testing.assert_allclose(T[k].numpy(), ref, rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------- stabilised log
@pytest.mark.parametrize("tau", [1e-3, 1e-2, 0.05])
@pytest.mark.parametrize("mass", [0.3, 0.8, 1.0])
def test_stabilised_log_domain_equals_logsumexp_and_pot(tau, mass):
    """The stabilised scaling (absorbed exp-domain iterations) reproduces the textbook log domain's
    plans, and POT's log-scale solver, in float64 at small tau, with padding."""
    C = _cost(3, 3, 9, 7)
    mv, ml = _masks(3, 9, 7, seed=3)
    Ts, info_s = partial_sinkhorn(C, mass, tau, 300, 0.0, mask_a=mv, mask_b=ml, domain="log")
    Tl, info_l = partial_sinkhorn(C, mass, tau, 300, 0.0, mask_a=mv, mask_b=ml,
                                  domain="logsumexp")
    assert info_s.domain == "log" and info_l.domain == "logsumexp"
    torch.testing.assert_close(Ts, Tl, rtol=0, atol=1e-10)
    if mass < 1:  # POT's log-scale partial solver, on the unpadded first item
        n, m = int(mv[0].sum()), int(ml[0].sum())
        ref = ot.partial.entropic_partial_wasserstein_logscale(
            np.full(n, 1 / n), np.full(m, 1 / m), C[0, :n, :m].numpy(), tau,
            m=mass * min(1.0, 1.0), numItermax=300)
        np.testing.assert_allclose(Ts[0, :n, :m].numpy(), ref, rtol=0, atol=1e-8)


def test_stabilised_log_domain_in_float32_is_finite_and_accurate():
    """float32 costs at tau = 1e-3 (spread / tau = 2000, far past float32's e^88): the stabilised
    loop runs in float64 and returns float32 plans within float32 rounding of float64's."""
    C = _cost(4, 4, 12, 10)
    T64, _ = partial_sinkhorn(C, 0.5, 1e-3, 500, 0.0, domain="logsumexp")
    T32, info = partial_sinkhorn(C.float(), 0.5, 1e-3, 500, 0.0)
    assert info.domain == "log" and T32.dtype == torch.float32
    torch.testing.assert_close(T32.double(), T64, rtol=0, atol=1e-6)


def test_absorption_happens_and_keeps_the_plan(monkeypatch):
    """At small tau the scalings leave [e^-theta, e^theta] and are absorbed into the kernel
    (several times); the plan is still the textbook log domain's."""
    C = _cost(5, 2, 8, 6)
    calls = {"n": 0}
    real = its._Kernel.set

    def counting(self, *args):
        calls["n"] += 1
        return real(self, *args)

    monkeypatch.setattr(its._Kernel, "set", counting)
    T, info = partial_sinkhorn(C, 0.5, 2e-3, 400, 0.0, domain="log")
    assert calls["n"] > 2 and info.domain == "log"  # the first kernel, then absorptions
    ref, _ = partial_sinkhorn(C, 0.5, 2e-3, 400, 0.0, domain="logsumexp")
    torch.testing.assert_close(T, ref, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- compiled loop
def test_compile_falls_back_to_the_plain_loop_with_one_warning(monkeypatch):
    """Where torch.compile fails (no C++ compiler), the solver warns once and gives the plain
    loop's plans."""
    def broken(fn, **kw):
        def run(*args):
            raise RuntimeError("no C++ compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(its, "_COMPILED", {})
    C = _cost(6, 3, 7, 5, torch.float32)
    ref, _ = partial_sinkhorn(C, 0.5, 0.05, 200, 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T, info = partial_sinkhorn(C, 0.5, 0.05, 200, 0.0, compile=True)
        T2, _ = partial_sinkhorn(C, 0.5, 0.05, 200, 0.0, compile=True)
    msgs = [w for w in caught if "could not be compiled" in str(w.message)]
    assert len(msgs) == 1 and issubclass(msgs[0].category, RuntimeWarning)
    assert torch.equal(T, ref) and torch.equal(T2, ref) and info.n_iter == 200


def test_compiled_loop_gives_the_plain_loops_plans():
    """The compiled chunk (TorchInductor, where a C++ compiler exists) runs the same updates:
    plans equal to float32 rounding. Skipped where compiling is not possible."""
    C = _cost(7, 2, 6, 5, torch.float32)
    ref, info_ref = partial_sinkhorn(C, 0.5, 0.05, 40, 1e-6, check_every=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T, info = partial_sinkhorn(C, 0.5, 0.05, 40, 1e-6, check_every=10, compile=True)
    if any("could not be compiled" in str(w.message) for w in caught):
        pytest.skip("torch.compile is not available on this machine")
    torch.testing.assert_close(T, ref, rtol=0, atol=1e-6)
    assert torch.equal(info.iterations, info_ref.iterations)


# ----------------------------------------------------------------------------- one solve, M blocks
def _blocks(M=3, B=4, N=9, L=6, d=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hv = [torch.randn(B, N, d, generator=g).to(dtype) for _ in range(M)]
    hl = [torch.randn(B, L, d, generator=g).to(dtype) for _ in range(M)]
    mv, ml = _masks(B, N, L, seed)
    return hv, hl, mv, ml


@pytest.mark.parametrize("method", ["pvla", "vla", "avg-cosine"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_one_batched_solve_gives_every_blocks_loss_and_gradient(method, dtype):
    """``alignment_losses`` (one solve for all blocks) = one ``alignment_loss`` per block: the same
    losses and the same gradients, so training with it changes no plan."""
    hv, hl, mv, ml = _blocks(dtype=dtype)
    kw = {"tau": 0.05, "max_iter": 100, "tol": 1e-4} if method != "avg-cosine" else {}
    x1 = [h.clone().requires_grad_() for h in hv]
    x2 = [h.clone().requires_grad_() for h in hv]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batched = alignment_losses(x1, hl, mv, ml, method, **kw)
        each = torch.stack([alignment_loss(x, h, mv, ml, method, **kw) for x, h in zip(x2, hl)])
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(batched, each, rtol=0, atol=atol)
    batched.sum().backward()
    each.sum().backward()
    for g1, g2 in zip(x1, x2):
        torch.testing.assert_close(g1.grad, g2.grad, rtol=0, atol=atol)


def test_batched_blocks_solve_the_same_plans():
    """The plans behind the losses: stacking the blocks' costs into one call returns, block by
    block, the plans of separate calls (tol > 0: items stop at different checks)."""
    hv, hl, mv, ml = _blocks(M=4, dtype=F64)
    costs = [cosine_cost(v, h) for v, h in zip(hv, hl)]
    T, info = partial_sinkhorn(torch.cat(costs), 0.5, 0.05, 1000, 1e-6, mask_a=mv.repeat(4, 1),
                               mask_b=ml.repeat(4, 1))
    for k, Ck in enumerate(costs):
        Tk, ik = partial_sinkhorn(Ck, 0.5, 0.05, 1000, 1e-6, mask_a=mv, mask_b=ml)
        torch.testing.assert_close(T[4 * k:4 * k + 4], Tk, rtol=0, atol=1e-12)
        assert torch.equal(info.iterations[4 * k:4 * k + 4], ik.iterations)


def test_alignment_losses_input_errors():
    hv, hl, mv, ml = _blocks()
    with pytest.raises(ValueError, match="as many video as language"):
        alignment_losses(hv, hl[:2], mv, ml)
    with pytest.raises(ValueError, match="as many video as language"):
        alignment_losses([], [], mv, ml)
    with pytest.raises(ValueError, match="reduction"):
        alignment_losses(hv, hl, mv, ml, reduction="sum")
    with pytest.raises(ValueError, match="mask_v has shape"):
        alignment_losses(hv, hl, mv[:, :3], ml)
    bad = [h.clone() for h in hv]
    bad[2][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        alignment_losses(bad, hl, torch.ones_like(mv), ml)


def test_tlg_alignment_uses_one_solve_per_step(monkeypatch):
    """TLG's alignment term solves every block's problems in one call, and its value is the mean
    of the per-block losses."""
    from types import SimpleNamespace

    from readpvla.ot import partial as partial_mod
    from readpvla.tasks.tlg import loss as tlg_loss

    hv, hl, mv, ml = _blocks(M=4)
    out = SimpleNamespace(h_v=hv, h_l=hl, mask_v=mv, mask_l=ml)
    calls = {"n": 0}
    real = partial_mod.partial_sinkhorn

    def counting(*args, **kw):
        calls["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(partial_mod, "partial_sinkhorn", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = tlg_loss.alignment(out, "pvla")
    assert calls["n"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        each = [alignment_loss(v, h, mv, ml, "pvla", mass=tlg_loss.MASS, tau=tlg_loss.TAU,
                               max_iter=tlg_loss.PVLA_MAX_ITER, tol=tlg_loss.PVLA_TOL)
                for v, h in zip(hv, hl)]
    torch.testing.assert_close(value, torch.stack(each).mean(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-6), (torch.float32, 1e-4)])
def test_an_item_the_loop_stops_is_reported_converged(dtype, tol):
    """The stopping test counts the mass error as the reported violation does, so an item frozen
    before ``max_iter`` is never reported unconverged (no spurious ConvergenceWarning)."""
    for seed in range(8):
        C = _cost(10 + seed, 8, 12, 9, dtype)
        mv, ml = _masks(8, 12, 9, seed)
        _, info = partial_sinkhorn(C, 0.5, 0.05, 500, tol, mask_a=mv, mask_b=ml)
        stopped = info.iterations < 500
        assert bool(stopped.any())
        assert bool(info.converged[stopped].all()), (seed, info.violation[stopped])
