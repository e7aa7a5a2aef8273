"""Adam and RMSprop over stacked member parameters, with one learning rate per member.

torch.optim takes one scalar learning rate per parameter group, but a pack may hold
members with different learning rates in one tensor. These optimizers do the same
elementwise arithmetic as torch.optim.Adam / RMSprop (so a member equals a solo run),
with the learning rate broadcast along the leading member axis.

All of a network's parameters live in one flat (M, P) buffer: each parameter is a view
of its columns (member m's values in row m), and the gradients are gathered into one
(M, P) tensor per step, so an update is a handful of whole-buffer operations however many
layers the network has (a per-tensor loop costs more than the arithmetic for small nets).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["MemberOptimizer", "make_optimizer", "backward"]


class MemberOptimizer:
    """Adam (Kingma & Ba) or RMSprop (Hinton) on parameters shaped (M, ...).

    The parameters' storage is moved into one flat (M, P) buffer (`flat`); the Parameter
    objects stay the same, so modules and callers keep their references.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: Sequence[float],
        kind: str,
        betas: tuple[float, float] = (0.5, 0.999),
        eps: float = 1e-8,
        alpha: float = 0.99,
    ):
        self.kind, self.betas, self.eps, self.alpha = kind, betas, eps, alpha
        self._adopt(params)
        self.lr = torch.tensor(list(lr), dtype=self.flat.dtype, device=self.flat.device)
        self.step_count = 0
        self._exp_avg = torch.zeros_like(self.flat) if kind == "adam" else None
        self._exp_avg_sq = torch.zeros_like(self.flat)

    def _adopt(self, params: Sequence[Tensor]) -> None:
        """Copy `params` into one flat buffer and make each of them a view of its columns."""
        self.params = list(params)
        self._sizes = [p[0].numel() for p in self.params]
        self._offsets = [0]
        for n in self._sizes:
            self._offsets.append(self._offsets[-1] + n)
        members = self.params[0].shape[0]
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(members, -1) for p in self.params], dim=1)
        for p, view in zip(self.params, self._views(self.flat), strict=True):
            p.data = view
        self._grad_buf = torch.zeros_like(self.flat)
        self._grad_views = self._views(self._grad_buf)

    def _views(self, flat: Tensor) -> list[Tensor]:
        """Per-parameter views of a flat (M, P) tensor, shaped like the parameters."""
        return [
            flat[:, a:b].view(p.shape)
            for p, a, b in zip(self.params, self._offsets, self._offsets[1:], strict=False)
        ]

    @property
    def exp_avg(self) -> list[Tensor]:
        return self._views(self._exp_avg) if self._exp_avg is not None else []

    @property
    def exp_avg_sq(self) -> list[Tensor]:
        return self._views(self._exp_avg_sq)

    def zero_grad(self) -> None:
        """Zero the gradients: each parameter's .grad is a view of one flat (M, P) buffer.

        Autograd then accumulates into those views in place (a backward pass without
        create_graph), so the step finds every gradient already in one tensor.
        """
        self._grad_buf.zero_()
        for p, view in zip(self.params, self._grad_views, strict=True):
            p.grad = view

    def flat_grad(self) -> Tensor:
        """The parameters' gradients as one (M, P) tensor (zeros where a grad is None)."""
        if all(p.grad is view for p, view in zip(self.params, self._grad_views, strict=True)):
            return self._grad_buf
        # Someone replaced a .grad (set by hand, or an out-of-place accumulation): gather.
        members = self.flat.shape[0]
        return torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(members, -1)
                for p in self.params
            ],
            dim=1,
        )

    def grad_norms(self, groups: Sequence[Sequence[Tensor]]) -> list[Tensor]:
        """Per member, the L2 norm of the gradients of each group of params: (M,) tensors.

        A group whose params are neighbours in the flat buffer (a layer's weight and bias)
        costs one reduction over its columns.
        """
        grad = self.flat_grad()
        index = {id(p): i for i, p in enumerate(self.params)}
        norms = []
        for group in groups:
            ids = sorted(index[id(p)] for p in group)
            if ids == list(range(ids[0], ids[-1] + 1)):
                cols = grad[:, self._offsets[ids[0]] : self._offsets[ids[-1] + 1]]
                norms.append(torch.linalg.vector_norm(cols, dim=1))
            else:
                sq = sum(
                    grad[:, self._offsets[i] : self._offsets[i + 1]].square().sum(dim=1)
                    for i in ids
                )
                norms.append(torch.as_tensor(sq).sqrt())
        return norms

    @torch.no_grad()
    def step(self) -> None:
        grad = self.flat_grad()
        self.step_count += 1
        lr = self.lr.view(-1, 1)
        if self.kind == "adam":
            b1, b2 = self.betas
            assert self._exp_avg is not None
            self._exp_avg.lerp_(grad, 1 - b1)
            self._exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            bc1 = 1 - b1**self.step_count
            bc2_sqrt = math.sqrt(1 - b2**self.step_count)
            denom = self._exp_avg_sq.sqrt().div_(bc2_sqrt).add_(self.eps)
            update = torch.div(self._exp_avg, denom, out=denom)
            update.mul_(lr * (1.0 / bc1))
        else:
            self._exp_avg_sq.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
            denom = self._exp_avg_sq.sqrt().add_(self.eps)
            update = torch.div(grad, denom, out=denom)
            update.mul_(lr)
        self.flat.sub_(update)

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
        for dst, src in zip(self.exp_avg, state["exp_avg"], strict=False):
            dst.copy_(src)
        for dst, src in zip(self.exp_avg_sq, state["exp_avg_sq"], strict=False):
            dst.copy_(src)

    def select(self, keep: Tensor, params: Sequence[Tensor]) -> None:
        """Keep the members at positions `keep`; `params` are the parameters already sliced so."""
        self._adopt(params)
        self.lr = self.lr[keep]
        if self._exp_avg is not None:
            self._exp_avg = self._exp_avg[keep]
        self._exp_avg_sq = self._exp_avg_sq[keep]


def make_optimizer(
    params: Sequence[Tensor], lr: Sequence[float], kind: str, betas: tuple[float, float]
) -> MemberOptimizer:
    return MemberOptimizer(params, lr, kind, betas)


def backward(loss: Tensor, inputs: Sequence[Tensor] | None = None) -> None:
    """loss.backward(inputs=...), accumulating into the optimizers' flat gradient views.

    Autograd warns that those strided views break its gradient layout contract (it would
    rather hand out contiguous grads it allocates itself); accumulating in place into them
    is exactly what we want, so that one warning is silenced here, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
        loss.backward(inputs=inputs)
