"""Layers whose every parameter and buffer carries a leading member axis.

A "member" is one independent run. M members train side by side in one process:
member m's weights are slice m of each tensor, and nothing mixes members, so
a pack of M gives the same numbers as M separate runs and a plain run is M = 1.

Two activation layouts are used:
- dense: (M, B, F), multiplied with `torch.baddbmm`;
- packed images: (B, M * C, H, W), convolved with `groups=M`, so one grouped
  convolution runs every member's convolution at once.
Every tensor with a member axis has it first, so slicing dim 0 selects members
(used to drop finished members from a pack).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MemberLinear",
    "MemberConv2d",
    "MemberConvTranspose2d",
    "MemberNorm",
    "MemberEmbedding",
    "MemberDropout",
    "MinibatchStd",
    "activation",
    "to_packed",
    "from_packed",
    "member_randn",
    "member_rand",
]

Generators = Sequence[torch.Generator]


def member_randn(gens: Generators, shape: Sequence[int], device: torch.device) -> Tensor:
    """(M, *shape) standard normals, slice m drawn from member m's own generator."""
    # Filling slices in place draws what torch.randn(shape, generator=g) would, minus a copy.
    out = torch.empty((len(gens), *shape), device=device)
    for row, g in zip(out, gens, strict=True):
        row.normal_(generator=g)
    return out


def member_rand(gens: Generators, shape: Sequence[int], device: torch.device) -> Tensor:
    """(M, *shape) uniforms in [0, 1), slice m drawn from member m's own generator."""
    out = torch.empty((len(gens), *shape), device=device)
    for row, g in zip(out, gens, strict=True):
        row.uniform_(generator=g)
    return out


def to_packed(x: Tensor) -> Tensor:
    """(M, B, C, H, W) -> (B, M*C, H, W)."""
    m, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, m * c, h, w)


def from_packed(x: Tensor, members: int) -> Tensor:
    """(B, M*C, H, W) -> (M, B, C, H, W)."""
    b, mc, h, w = x.shape
    return x.view(b, members, mc // members, h, w).transpose(0, 1)


def _uniform(shape: Sequence[int], bound: float, gens: Generators) -> Tensor:
    return torch.stack(
        [torch.empty(tuple(shape)).uniform_(-bound, bound, generator=g) for g in gens]
    )


def _normal(shape: Sequence[int], mean: float, std: float, gens: Generators) -> Tensor:
    return torch.stack([torch.empty(tuple(shape)).normal_(mean, std, generator=g) for g in gens])


class _SpectralNorm(nn.Module):
    """Per-member spectral normalisation: W / sigma_max(W), one power iteration per training call.

    Like torch.nn.utils.spectral_norm, but the power-iteration vector u is kept per member,
    so it works on stacked weights (the stock one treats the stack as one matrix).
    """

    def __init__(self, weight_shape: Sequence[int], gens: Generators, eps: float = 1e-12):
        super().__init__()
        out = weight_shape[1]
        u = F.normalize(_normal((out,), 0.0, 1.0, gens), dim=1, eps=eps)
        self.register_buffer("u", u)
        self.eps = eps

    def forward(self, weight: Tensor) -> Tensor:
        w = weight.flatten(2)  # (M, out, in)
        with torch.no_grad():
            u = self.u
            v = F.normalize(
                torch.bmm(w.transpose(1, 2), u.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps
            )
            if self.training:
                u = F.normalize(torch.bmm(w, v.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps)
                self.u.copy_(u)
            # Clones: the graph of sigma must not see later in-place updates of u (as torch's own).
            u, v = u.clone(), v.clone()
        sigma = torch.einsum("mo,moi,mi->m", u, w, v)
        return weight / sigma.view(-1, *([1] * (weight.dim() - 1)))


class MemberLinear(nn.Module):
    """Dense layer on (M, B, in) -> (M, B, out); PyTorch's nn.Linear initialisation per member."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        gens: Generators,
        spectral_norm: bool = False,
        init_std: float | None = None,
        bias: bool = True,
    ):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        if init_std is None:
            weight = _uniform((out_features, in_features), bound, gens)
        else:
            weight = _normal((out_features, in_features), 0.0, init_std, gens)
        self.weight = nn.Parameter(weight)
        self.bias = None
        if bias:
            self.bias = nn.Parameter(
                _uniform((out_features,), bound, gens)
                if init_std is None
                else torch.zeros(len(gens), out_features)
            )
        self.sn = _SpectralNorm(self.weight.shape, gens) if spectral_norm else None

    def forward(self, x: Tensor) -> Tensor:
        weight = self.sn(self.weight) if self.sn is not None else self.weight
        if self.bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, weight.transpose(1, 2))


class MemberConv2d(nn.Module):
    """Strided convolution on the packed layout (B, M*in, H, W), DCGAN N(0, 0.02) init."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        padding: int,
        gens: Generators,
        spectral_norm: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        self.members, self.stride, self.padding = len(gens), stride, padding
        self.weight = nn.Parameter(_normal((out_ch, in_ch, kernel, kernel), 0.0, 0.02, gens))
        self.bias = nn.Parameter(torch.zeros(len(gens), out_ch)) if bias else None
        self.sn = _SpectralNorm(self.weight.shape, gens) if spectral_norm else None

    def forward(self, x: Tensor) -> Tensor:
        weight = self.sn(self.weight) if self.sn is not None else self.weight
        bias = None if self.bias is None else self.bias.reshape(-1)
        return F.conv2d(
            x, weight.flatten(0, 1), bias, self.stride, self.padding, groups=self.members
        )


class MemberConvTranspose2d(nn.Module):
    """Transposed convolution on the packed layout, DCGAN N(0, 0.02) init."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        padding: int,
        gens: Generators,
        spectral_norm: bool = False,
        bias: bool = True,
        output_padding: int = 0,
    ):
        super().__init__()
        self.members, self.stride, self.padding = len(gens), stride, padding
        self.output_padding = output_padding
        # Stored as (M, out, in, k, k) so spectral norm sees (out x in) matrices like a conv.
        self.weight = nn.Parameter(_normal((out_ch, in_ch, kernel, kernel), 0.0, 0.02, gens))
        self.bias = nn.Parameter(torch.zeros(len(gens), out_ch)) if bias else None
        self.sn = _SpectralNorm(self.weight.shape, gens) if spectral_norm else None

    def forward(self, x: Tensor) -> Tensor:
        weight = self.sn(self.weight) if self.sn is not None else self.weight
        weight = weight.transpose(1, 2).flatten(0, 1)  # conv_transpose wants (M*in, out, k, k)
        bias = None if self.bias is None else self.bias.reshape(-1)
        return F.conv_transpose2d(
            x, weight, bias, self.stride, self.padding, self.output_padding, groups=self.members
        )


class MemberNorm(nn.Module):
    """Batch, layer or instance normalisation, per member, for dense or packed layouts.

    Batch norm keeps running statistics (M, C) for evaluation. Layer norm normalises each
    sample over all its features; instance norm each channel of each sample over H, W.
    """

    def __init__(
        self, kind: str, channels: int, members: int, momentum: float = 0.1, eps: float = 1e-5
    ):
        super().__init__()
        self.kind, self.members, self.momentum, self.eps = kind, members, momentum, eps
        self.weight = nn.Parameter(torch.ones(members, channels))
        self.bias = nn.Parameter(torch.zeros(members, channels))
        if kind == "batch":
            self.register_buffer("running_mean", torch.zeros(members, channels))
            self.register_buffer("running_var", torch.ones(members, channels))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # dense (M, B, C): statistics over the member's batch or features
            dims = (1,) if self.kind == "batch" else (2,)
            y = self._normalize(x, dims, x.shape[1])
            return y * self.weight.unsqueeze(1) + self.bias.unsqueeze(1)
        b, mc, h, w = x.shape
        x5 = x.view(b, self.members, mc // self.members, h, w)
        dims = {"batch": (0, 3, 4), "layer": (2, 3, 4), "instance": (3, 4)}[self.kind]
        y = self._normalize(x5, dims, b * h * w)
        y = y * self.weight.view(1, self.members, -1, 1, 1) + self.bias.view(
            1, self.members, -1, 1, 1
        )
        return y.view(b, mc, h, w)

    def _normalize(self, x: Tensor, dims: tuple[int, ...], count: int) -> Tensor:
        if self.kind == "batch" and not self.training:
            shape = _stat_shape(x, dims)
            mean, var = self.running_mean.view(shape), self.running_var.view(shape)
        else:
            var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
            if self.kind == "batch":
                with torch.no_grad():
                    unbiased = var.reshape(self.running_var.shape) * count / max(count - 1, 1)
                    self.running_mean.lerp_(mean.reshape(self.running_mean.shape), self.momentum)
                    self.running_var.lerp_(unbiased, self.momentum)
        return (x - mean) * torch.rsqrt(var + self.eps)


def _stat_shape(x: Tensor, dims: tuple[int, ...]) -> list[int]:
    return [1 if i in dims else s for i, s in enumerate(x.shape)]


class MemberEmbedding(nn.Module):
    """Label embedding per member: labels (M, B) -> (M, B, dim)."""

    def __init__(self, num_classes: int, dim: int, gens: Generators):
        super().__init__()
        self.weight = nn.Parameter(_normal((num_classes, dim), 0.0, 1.0, gens))

    def forward(self, labels: Tensor) -> Tensor:
        members = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1)
        return self.weight[members, labels]


class MemberDropout(nn.Module):
    """Dropout whose masks come from each member's generator, so packs match solo runs."""

    def __init__(self, p: float, gens: Generators):
        super().__init__()
        self.p, self.gens = p, gens

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = member_rand(self.gens, x.shape[1:], x.device) >= self.p
        return x * keep / (1.0 - self.p)


class MinibatchStd(nn.Module):
    """Appends the member's mean feature std over its batch as one more feature (ProGAN)."""

    def __init__(self, members: int):
        super().__init__()
        self.members = members

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # (M, B, F)
            std = x.std(dim=1, correction=0).mean(dim=1)  # (M,)
            return torch.cat([x, std.view(-1, 1, 1).expand(-1, x.shape[1], 1)], dim=2)
        b, mc, h, w = x.shape
        x5 = x.view(b, self.members, mc // self.members, h, w)
        std = x5.std(dim=0, correction=0).mean(dim=(1, 2, 3))  # (M,)
        extra = std.view(1, -1, 1, 1, 1).expand(b, -1, 1, h, w)
        return torch.cat([x5, extra], dim=2).view(b, -1, h, w)


def activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.LeakyReLU(0.2)
