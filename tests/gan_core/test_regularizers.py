import pytest
import torch

from gan_core.regularizers import (
    clip_fraction,
    clip_weights,
    feature_matching,
    gradient_penalty,
    instance_noise_std,
    r1_penalty,
)


def linear_critic(w):
    # D(x) = <w_m, x> per member: grad wrt x is w_m everywhere, so the penalties are closed-form.
    return lambda x: (x * w.view(w.shape[0], 1, -1)).sum(-1)


def test_gradient_penalty_of_linear_critic_is_closed_form():
    w = torch.tensor([[3.0, 4.0], [0.6, 0.8]])  # norms 5 and 1
    real, fake = torch.randn(2, 16, 2), torch.randn(2, 16, 2)
    gp = gradient_penalty(linear_critic(w), real, fake, torch.rand(2, 16), target=1.0)
    assert gp.tolist() == pytest.approx([(5 - 1) ** 2, 0.0], abs=1e-5)
    gp2 = gradient_penalty(linear_critic(w), real, fake, torch.rand(2, 16), target=2.0)
    assert gp2.tolist() == pytest.approx([9.0, 1.0], abs=1e-5)


def test_gradient_penalty_is_differentiable_in_critic_weights():
    w = torch.tensor([[3.0, 4.0]], requires_grad=True)
    gp = gradient_penalty(
        linear_critic(w), torch.randn(1, 8, 2), torch.randn(1, 8, 2), torch.rand(1, 8)
    )
    (g,) = torch.autograd.grad(gp.sum(), w)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * w / 5
    assert g[0].tolist() == pytest.approx([2 * 4 * 3 / 5, 2 * 4 * 4 / 5], rel=1e-5)


def test_r1_of_quadratic_critic():
    # D(x) = 0.5 ||x||^2 -> grad = x -> R1 = 0.5 E||x||^2
    def critic(x):
        return 0.5 * (x ** 2).sum(-1)

    real = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])
    assert r1_penalty(critic, real).item() == pytest.approx(0.5 * (5 + 9) / 2)


def test_feature_matching_and_clipping():
    real = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])
    fake = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    assert feature_matching(real, fake).item() == pytest.approx(2.0 ** 2 + 1.0)
    params = [torch.tensor([[0.5, -0.001, 0.02], [0.0, 0.0, 0.0]])]
    clip_weights(params, 0.01)
    assert params[0][0].tolist() == pytest.approx([0.01, -0.001, 0.01])
    assert clip_fraction(params, 0.01).tolist() == pytest.approx([2 / 3, 0.0])


def test_instance_noise_decays_linearly_to_zero():
    assert [instance_noise_std(0.2, 4, e) for e in (1, 2, 3, 5, 9)] == pytest.approx(
        [0.2, 0.15, 0.1, 0.0, 0.0]
    )
    assert instance_noise_std(0.0, 4, 1) == 0.0
