"""readpvla.ot on hostile inputs: empty batches and dimensions, mixed dtypes, overflowing
features, extreme temperatures. Each either gives the documented answer or a clear error."""

from __future__ import annotations

import warnings

import pytest
import torch

import readpvla as rp
from readpvla.ot import (
    ALIGNMENT_METHODS,
    alignment_loss,
    cosine_cost,
    l2_cost,
    paper_algorithm1,
    partial_sinkhorn,
    partial_wasserstein_cost,
    pvla_loss,
    sinkhorn,
)

F64 = torch.float64


# ----------------------------------------------------------------------------- nothing to transport
@pytest.mark.parametrize("shape", [(0, 6, 7), (3, 0, 7), (3, 6, 0)])
def test_empty_batch_or_dimension_gives_empty_plan(shape):
    """Nothing to transport is not an error: like an item whose mask is all False, each item
    gets a zero plan, mass 0, violation 0, converged True (B = 0: empty results)."""
    C = torch.rand(*shape, dtype=F64)
    B = shape[0]
    for method in ("dykstra", "alternating", "paper"):
        T, info = partial_sinkhorn(C, 0.5, 0.05, method=method)
        assert T.shape == shape and T.dtype == F64 and bool((T == 0).all())
        assert info.violation.shape == info.converged.shape == info.mass.shape == (B,)
        assert bool(info.converged.all()) and bool((info.mass == 0).all())
    T, info = sinkhorn(C)
    assert T.shape == shape and info.converged.shape == (B,)
    loss, T = paper_algorithm1(C)
    assert loss.shape == (B,) and bool((loss == 0).all()) and T.shape == shape
    assert partial_wasserstein_cost(C).shape == (B,)


def test_empty_unbatched_dimension():
    T, info = partial_sinkhorn(torch.rand(0, 3), 0.5)
    assert T.shape == (0, 3) and info.violation.shape == () and bool(info.converged)
    assert float(partial_wasserstein_cost(torch.rand(4, 0))) == 0.0


def test_empty_batch_still_validates_its_arguments():
    with pytest.raises(ValueError, match="mass"):
        partial_sinkhorn(torch.rand(0, 3, 4), mass=1.5)
    with pytest.raises(ValueError, match="tau"):
        partial_sinkhorn(torch.rand(0, 3, 4), tau=0.0)
    with pytest.raises(ValueError, match="mask_a"):
        partial_sinkhorn(torch.rand(0, 3, 4), mask_a=torch.ones(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("hv_shape, hl_shape", [((0, 3, 4), (0, 5, 4)), ((2, 0, 4), (2, 5, 4)),
                                                ((2, 3, 4), (2, 0, 4))])
def test_alignment_losses_on_empty_inputs_are_zero(hv_shape, hl_shape):
    """The mean runs over items with a real video and a real language token; with none it is 0,
    for every method (as for a batch whose masks are all False)."""
    h_v = torch.rand(*hv_shape, requires_grad=True)
    h_l = torch.rand(*hl_shape)
    for method in ALIGNMENT_METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss = alignment_loss(h_v, h_l, method=method)
        assert loss.shape == () and float(loss.detach()) == 0.0, method
    per = pvla_loss(h_v, h_l, reduction="none")
    assert per.shape == (hv_shape[0],)
    pvla_loss(h_v, h_l).backward()  # no error; no gradient to give
    assert h_v.grad is None or bool((h_v.grad == 0).all())


# ----------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize("kwargs, match", [
    (dict(tol=True), "tol"),
    (dict(tol=float("inf")), "tol"),
    (dict(tau=float("nan")), "tau"),
    (dict(tau=float("inf")), "tau"),
    (dict(tau="0.05"), "tau"),
    (dict(max_iter=True), "max_iter"),
    (dict(mass=torch.tensor(float("nan"))), "mass"),
    (dict(mask_b=torch.ones(2, 4, dtype=torch.bool)), "mask_b"),
    (dict(b=torch.full((4,), float("nan"))), "finite"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    kw = dict(cost=torch.rand(3, 4), mass=0.5)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        partial_sinkhorn(**kw)


def test_cost_whose_spread_over_tau_overflows_raises_or_is_correct():
    """(max C - min C) / tau beyond the float range: a correct plan or a ValueError, never NaN."""
    C = torch.tensor([[0.0, 3e38], [3e38, 0.0]])
    for mass in (0.5, 1.0):
        try:
            T, info = partial_sinkhorn(C, mass, 1e-3)
        except ValueError as err:
            assert "non-finite" in str(err) or "overflow" in str(err)
            continue
        assert bool(torch.isfinite(T).all())
        torch.testing.assert_close(T, torch.eye(2) * mass / 2)


def test_tiny_tau_never_reports_a_wrong_plan_converged():
    C = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0))
    T, info = partial_sinkhorn(C, 0.5, 1e-30)
    assert bool(torch.isfinite(T).all())
    ok = info.converged
    err = (T.sum((1, 2)) - 0.5).abs()
    assert bool((err[ok] <= 1e-6).all())
    assert bool((T.sum(2) <= 0.25 + 1e-6)[ok].all()) and bool((T.sum(1) <= 0.2 + 1e-6)[ok].all())


# ----------------------------------------------------------------------------- features
def test_mixed_feature_dtypes_promote():
    g = torch.Generator().manual_seed(1)
    h_v, h_l = torch.randn(2, 5, 8, generator=g), torch.randn(2, 4, 8, generator=g, dtype=F64)
    ref = cosine_cost(h_v.double(), h_l)
    torch.testing.assert_close(cosine_cost(h_v, h_l), ref)
    torch.testing.assert_close(l2_cost(h_v, h_l), l2_cost(h_v.double(), h_l))
    for method in ("pvla", "vla", "avg-l2"):
        got = alignment_loss(h_v, h_l, method=method)
        assert got.dtype == F64
        torch.testing.assert_close(got, alignment_loss(h_v.double(), h_l, method=method))


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e30), (F64, 1e200),
                                          (torch.float16, 4e3)])
def test_cosine_cost_survives_overflowing_norms(dtype, scale):
    """The cosine is scale free; a squared norm that overflows must not turn every cost into 1."""
    g = torch.Generator().manual_seed(2)
    h_v, h_l = torch.randn(2, 5, 384, generator=g, dtype=F64), torch.randn(2, 4, 384, generator=g,
                                                                           dtype=F64)
    ref = cosine_cost(h_v, h_l)
    big = cosine_cost((scale * h_v).to(dtype), (scale * h_l).to(dtype))
    atol = 2e-3 if dtype == torch.float16 else 1e-5
    torch.testing.assert_close(big.double(), ref, rtol=0, atol=atol)
    loss = pvla_loss((scale * h_v).to(dtype), (scale * h_l).to(dtype))
    assert float(loss) == pytest.approx(float(pvla_loss(h_v, h_l)), abs=10 * atol)


def test_lazy_import_of_new_names():
    assert rp.ot.ConvergenceWarning.__module__.startswith("readpvla.ot")
