"""The same numbers on CUDA as on the CPU (skipped where there is no GPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from toymodels import JointEncoder

import readpvla as rp

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_read_model_on_cuda_matches_cpu_and_trains(cell):
    torch.manual_seed(0)
    cpu = rp.peft.apply(JointEncoder(), rp.peft.READConfig(cell=cell))
    for m in cpu.modules():
        if isinstance(m, rp.peft.READLayer):
            torch.nn.init.normal_(m.w_up.weight, std=0.3)
    gpu = copy.deepcopy(cpu).cuda()
    v, t = torch.randn(3, 5, 6), torch.randn(3, 4, 5)
    vm = torch.tensor([[1, 1, 1, 0, 0], [1] * 5, [1, 1, 0, 0, 0]], dtype=torch.bool)
    h_c, s_c = cpu(v, t, vm)
    h_g, s_g = gpu(v.cuda(), t.cuda(), vm.cuda())
    assert torch.allclose(h_g.cpu(), h_c, atol=1e-4) and torch.allclose(s_g.cpu(), s_c, atol=1e-4)
    s_g.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in gpu.parameters() if p.requires_grad)


def test_adapter_save_on_cuda_load_on_cpu(tmp_path):
    torch.manual_seed(0)
    gpu = rp.peft.apply(JointEncoder(), rp.peft.READConfig()).cuda()
    path = rp.peft.save_adapter(gpu, tmp_path / "a")
    cpu = rp.peft.load_adapter(JointEncoder(), path)
    for (n, p), (_, q) in zip(rp.peft.adapter_state_dict(gpu).items(),
                              rp.peft.adapter_state_dict(cpu).items()):
        assert torch.equal(p.cpu(), q), n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_partial_sinkhorn_on_cuda_matches_cpu(dtype):
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(4, 9, 6, generator=g, dtype=torch.float64).to(dtype)
    ma = torch.ones(4, 9, dtype=torch.bool)
    ma[1, 5:] = False
    t_cpu, _ = rp.ot.partial_sinkhorn(cost, mass=0.6, tau=0.05, mask_a=ma, tol=1e-9)
    t_gpu, info = rp.ot.partial_sinkhorn(cost.cuda(), mass=0.6, tau=0.05, mask_a=ma.cuda(), tol=1e-9)
    assert t_gpu.is_cuda and bool(info.converged.all())
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.allclose(t_gpu.cpu(), t_cpu, atol=tol)


def test_pvla_loss_gradient_on_cuda():
    g = torch.Generator().manual_seed(0)
    h_v = torch.randn(2, 7, 16, generator=g).cuda().requires_grad_(True)
    h_l = torch.randn(2, 5, 16, generator=g).cuda()
    for grad in ("envelope", "unroll"):
        loss = rp.ot.pvla_loss(h_v, h_l, mass=0.5, tau=0.05, max_iter=200, grad=grad)
        (g_v,) = torch.autograd.grad(loss, h_v)
        assert g_v.is_cuda and torch.isfinite(g_v).all() and g_v.abs().sum() > 0
