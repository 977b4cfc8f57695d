"""The PVLA gradient reaches READ's parameters when the loss sits on a READ model's features."""

from __future__ import annotations

import pytest
import torch
from toymodels import JointEncoder

import readpvla as rp


@pytest.mark.parametrize("grad", ["envelope", "unroll"])
def test_pvla_gradient_reaches_every_read_parameter(grad):
    torch.manual_seed(0)
    model = rp.peft.apply(JointEncoder(), rp.peft.READConfig(bottleneck=4, cell="gru"))
    read = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.SGD(read.values(), lr=0.5)
    v, t = torch.randn(3, 5, 6), torch.randn(3, 4, 5)
    vm = torch.tensor([[1, 1, 1, 0, 0], [1] * 5, [1, 1, 1, 1, 0]], dtype=torch.bool)
    tm = torch.tensor([[1, 1, 0, 0], [1] * 4, [1, 1, 1, 0]], dtype=torch.bool)
    seen = []
    for _ in range(2):
        opt.zero_grad()
        h, _ = model(v, t, vm, tm)  # (B, 5 + 4, d): [clips; words]
        loss = rp.ot.pvla_loss(h[:, :5], h[:, 5:], vm, tm, mass=0.5, tau=0.05, max_iter=300,
                               grad=grad)  # PVLA alone: no task loss
        loss.backward()
        seen.append({n: p.grad.abs().sum().item() for n, p in read.items()})
        opt.step()
    assert all(g > 0 for n, g in seen[0].items() if ".w_up." in n)  # step 0: through W_up
    zero = [n for n, g in seen[1].items() if g == 0]
    assert not zero, f"PVLA gave no gradient to {zero}"
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
