import pytest
import torch

from gan_core.optim import MemberOptimizer


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_member_optimizer_equals_torch_per_member(kind):
    torch.manual_seed(0)
    init = torch.randn(3, 4, 5)
    lrs = [1e-3, 5e-3, 2e-2]
    stacked = init.clone().requires_grad_(True)
    opt = MemberOptimizer([stacked], lrs, kind, betas=(0.5, 0.999))
    solos = [init[m].clone().requires_grad_(True) for m in range(3)]
    refs = [torch.optim.Adam([p], lr=lr, betas=(0.5, 0.999)) if kind == "adam"
            else torch.optim.RMSprop([p], lr=lr) for p, lr in zip(solos, lrs, strict=True)]
    for _step in range(20):
        target = torch.randn(4, 5)
        opt.zero_grad()
        ((stacked - target) ** 2).sum().backward()
        opt.step()
        for p, ref in zip(solos, refs, strict=True):
            ref.zero_grad()
            ((p - target) ** 2).sum().backward()
            ref.step()
    for m in range(3):
        assert torch.allclose(stacked[m], solos[m], rtol=1e-5, atol=1e-6)


def test_state_round_trip():
    p = torch.randn(2, 3, requires_grad=True)
    opt = MemberOptimizer([p], [0.1, 0.2], "adam")
    p.grad = torch.ones_like(p)
    opt.step()
    other = MemberOptimizer([p], [0.1, 0.2], "adam")
    other.load_state_dict(opt.state_dict())
    assert other.step_count == 1 and torch.equal(other.exp_avg[0], opt.exp_avg[0])
