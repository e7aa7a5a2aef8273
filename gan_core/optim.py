"""Adam and RMSprop over stacked member parameters, with one learning rate per member.

torch.optim takes one scalar learning rate per parameter group, but a pack may hold
members with different learning rates in one tensor. These optimizers do the same
elementwise arithmetic as torch.optim.Adam / RMSprop (so a member equals a solo run),
with the learning rate broadcast along the leading member axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["MemberOptimizer", "make_optimizer"]


class MemberOptimizer:
    """Adam (Kingma & Ba) or RMSprop (Hinton) on parameters shaped (M, ...)."""

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: Sequence[float],
        kind: str,
        betas: tuple[float, float] = (0.5, 0.999),
        eps: float = 1e-8,
        alpha: float = 0.99,
    ):
        self.params = list(params)
        self.kind, self.betas, self.eps, self.alpha = kind, betas, eps, alpha
        device = self.params[0].device
        self.lr = torch.tensor(list(lr), dtype=self.params[0].dtype, device=device)
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params] if kind == "adam" else []
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _lr_views(self, scale: float) -> list[Tensor]:
        lr = self.lr * scale
        return [lr.view(-1, *([1] * (p.dim() - 1))) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.step_count += 1
        if self.kind == "adam":
            b1, b2 = self.betas
            torch._foreach_lerp_(self.exp_avg, grads, 1 - b1)
            torch._foreach_mul_(self.exp_avg_sq, b2)
            torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - b2)
            bc1 = 1 - b1**self.step_count
            bc2_sqrt = math.sqrt(1 - b2**self.step_count)
            denom = torch._foreach_sqrt(self.exp_avg_sq)
            torch._foreach_div_(denom, bc2_sqrt)
            torch._foreach_add_(denom, self.eps)
            update = torch._foreach_div(self.exp_avg, denom)
            torch._foreach_mul_(update, self._lr_views(1.0 / bc1))
        else:
            torch._foreach_mul_(self.exp_avg_sq, self.alpha)
            torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - self.alpha)
            denom = torch._foreach_sqrt(self.exp_avg_sq)
            torch._foreach_add_(denom, self.eps)
            update = torch._foreach_div(grads, denom)
            torch._foreach_mul_(update, self._lr_views(1.0))
        torch._foreach_sub_(self.params, update)

    def state_dict(self) -> dict:
        return {
            "step": self.step_count,
            "lr": self.lr,
            "exp_avg": self.exp_avg,
            "exp_avg_sq": self.exp_avg_sq,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.lr.copy_(state["lr"])
        for dst, src in zip(self.exp_avg, state["exp_avg"]):
            dst.copy_(src)
        for dst, src in zip(self.exp_avg_sq, state["exp_avg_sq"]):
            dst.copy_(src)

    def select(self, keep: Tensor, params: Sequence[Tensor]) -> None:
        """Keep the members at positions `keep`; `params` are the parameters already sliced so."""
        self.params = list(params)
        self.lr = self.lr[keep]
        self.exp_avg = [s[keep] for s in self.exp_avg]
        self.exp_avg_sq = [s[keep] for s in self.exp_avg_sq]


def make_optimizer(
    params: Sequence[Tensor], lr: Sequence[float], kind: str, betas: tuple[float, float]
) -> MemberOptimizer:
    return MemberOptimizer(params, lr, kind, betas)
