"""Discriminator regularizers as pure functions; the trainer applies their weights.

Each penalty returns one value per member, shape (M,). Because members never mix,
the gradient of the sum of all members' outputs with respect to the stacked input
is, slice by slice, each member's own input gradient: one autograd call serves a pack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "gradient_penalty",
    "r1_penalty",
    "feature_matching",
    "clip_weights",
    "clip_fraction",
    "instance_noise_std",
    "PENALTIES",
    "Penalty",
]

Critic = Callable[[Tensor], Tensor]  # x (M, B, ...) -> logits (M, B)


def _input_grad_norms(critic: Critic, x: Tensor) -> Tensor:
    """Per-sample L2 norm of d critic(x) / dx, shape (M, B), differentiable (create_graph)."""
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(2).norm(dim=2)


def gradient_penalty(
    critic: Critic, real: Tensor, fake: Tensor, eps: Tensor, target: float = 1.0
) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - target)^2] on interpolates.

    Args:
        critic: maps samples (M, B, ...) to logits (M, B).
        real, fake: (M, B, ...) samples; fake should be detached from G.
        eps: (M, B) interpolation weights in [0, 1], one per sample.
        target: the target gradient norm (1 for the 1-Lipschitz constraint).
    Returns:
        (M,) penalty per member, before its weight.
    """
    shape = eps.shape + (1,) * (real.dim() - 2)
    x_hat = (eps.view(shape) * real + (1.0 - eps.view(shape)) * fake).detach().requires_grad_(True)
    return ((_input_grad_norms(critic, x_hat) - target) ** 2).mean(dim=1)


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): 0.5 * E||grad D(x_real)||^2 (so weight gamma gives gamma/2)."""
    x = real.detach().requires_grad_(True)
    return 0.5 * (_input_grad_norms(critic, x) ** 2).mean(dim=1)


def feature_matching(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Salimans et al. 2016: ||E f(real) - E f(fake)||^2 over D's penultimate features.

    One value per member.
    """
    return ((real_features.mean(dim=1) - fake_features.mean(dim=1)) ** 2).sum(dim=1)


@torch.no_grad()
def clip_weights(params: list[Tensor], bound: float) -> None:
    """WGAN weight clipping (Arjovsky et al. 2017): every critic weight into [-c, c]."""
    for p in params:
        p.clamp_(-bound, bound)


@torch.no_grad()
def clip_fraction(params: list[Tensor], bound: float) -> Tensor:
    """Share of critic weights at the clip bound, per member, shape (M,)."""
    at_bound = sum((p.abs() >= bound * (1 - 1e-6)).flatten(1).sum(dim=1) for p in params)
    total = sum(p[0].numel() for p in params)
    return at_bound / total


def instance_noise_std(initial: float, decay_epochs: int, epoch: int) -> float:
    """Std of instance noise in `epoch` (1-based): linear decay from `initial` to 0.

    After Sonderby et al. 2016.
    """
    if initial <= 0:
        return 0.0
    if decay_epochs <= 0:
        return initial
    return initial * max(0.0, 1.0 - (epoch - 1) / decay_epochs)


@dataclass(frozen=True)
class Penalty:
    """A D penalty, its weight field in TrainingConfig and the record key it reports under."""

    weight_field: str
    key: str
    needs_fake: bool


# The trainer adds weight * penalty for every entry whose weight is > 0.
PENALTIES: dict[str, Penalty] = {
    "gp": Penalty("gp_weight", "loss/gp", True),
    "r1": Penalty("r1_weight", "loss/r1", False),
}
