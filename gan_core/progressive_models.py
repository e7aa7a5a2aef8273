"""ProGAN's generator and discriminator (Karras et al. 2018), grown resolution by resolution.

Both networks are built up front with a block per resolution of `ProgressiveConfig.resolutions`;
their `level` (index of the resolution they produce or read) and `alpha` (the fade-in weight of
the newest block, 0 -> 1) say which blocks run. While a block fades in, G's output is
`up(toRGB_{L-1}(h_{L-1})) + alpha (toRGB_L(block_L(h_{L-1})) - up(...))` and D's features at
the next resolution down are the same blend of `fromRGB_{L-1}(pool(x))` and
`block_L(fromRGB_L(x))`, so at alpha = 0 both compute exactly the previous stage.

Every parameter and buffer has a leading member axis (gan_core/layers.py): a pack of members
trains as one, convolutions grouped by member on the packed layout (B, M*C, H, W). The position
(level, alpha) is a buffer of each network, so checkpoints carry it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ProgressiveConfig
from .layers import MinibatchStd, from_packed, to_packed

__all__ = [
    "EqualizedConv2d",
    "EqualizedLinear",
    "PixelNorm",
    "ProgressiveGenerator",
    "ProgressiveDiscriminator",
    "channels_at",
]

Generators = Sequence[torch.Generator]
_GAIN = math.sqrt(2.0)  # He's gain for (leaky) ReLU layers; output layers use 1


def channels_at(cfg: ProgressiveConfig, side: int) -> int:
    """Feature maps at a side: min(fmap_base // side, fmap_max) (ProGAN's nf())."""
    return min(cfg.fmap_base // side, cfg.fmap_max)


def _normal(shape: Sequence[int], std: float, gens: Generators) -> Tensor:
    return torch.stack([torch.empty(tuple(shape)).normal_(0.0, std, generator=g) for g in gens])


class EqualizedConv2d(nn.Module):
    """k x k convolution (stride 1, same padding) on the packed layout, groups = members.

    With `equalized`, weights are drawn N(0, 1) and multiplied by He's constant gain/sqrt(fan_in)
    at every call, so Adam's scale-free steps move every layer at the same relative speed
    (paper 4.1); otherwise they are drawn N(0, (gain/sqrt(fan_in))^2) and used as they are.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        gens: Generators,
        equalized: bool,
        gain: float = _GAIN,
    ):
        super().__init__()
        he = gain / math.sqrt(in_ch * kernel * kernel)
        self.members, self.padding = len(gens), kernel // 2
        self.scale = he if equalized else 1.0
        self.weight = nn.Parameter(_normal((out_ch, in_ch, kernel, kernel), he / self.scale, gens))
        self.bias = nn.Parameter(torch.zeros(len(gens), out_ch))

    def forward(self, x: Tensor) -> Tensor:
        weight = (self.weight * self.scale).flatten(0, 1)
        return F.conv2d(x, weight, self.bias.reshape(-1), 1, self.padding, groups=self.members)


class EqualizedLinear(nn.Module):
    """Dense layer on (M, B, in) -> (M, B, out) with the same equalised-rate option."""

    def __init__(
        self, in_features: int, out_features: int, gens: Generators, equalized: bool, gain: float
    ):
        super().__init__()
        he = gain / math.sqrt(in_features)
        self.scale = he if equalized else 1.0
        self.weight = nn.Parameter(_normal((out_features, in_features), he / self.scale, gens))
        self.bias = nn.Parameter(torch.zeros(len(gens), out_features))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, (self.weight * self.scale).transpose(1, 2))


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit mean square (paper 4.2), per member."""

    def __init__(self, members: int):
        super().__init__()
        self.members = members

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # (M, B, F)
            return x * torch.rsqrt(x.square().mean(dim=2, keepdim=True) + 1e-8)
        b, mc, h, w = x.shape
        x5 = x.view(b, self.members, mc // self.members, h, w)
        return (x5 * torch.rsqrt(x5.square().mean(dim=2, keepdim=True) + 1e-8)).view(b, mc, h, w)


def _blend(low: Tensor, high: Tensor, alpha: Tensor, members: int) -> Tensor:
    """low + alpha (high - low) on the packed layout, alpha per member: exactly low at alpha 0."""
    b, mc, h, w = high.shape
    lo, hi = low.view(b, members, -1, h, w), high.view(b, members, -1, h, w)
    return (lo + alpha.view(1, members, 1, 1, 1) * (hi - lo)).view(b, mc, h, w)


def _sync_after_load(module: _Grown, _incompatible: Any) -> None:
    """A module-level hook (not a lambda), so a grown network pickles like any module."""
    module._sync()


class _Grown(nn.Module):
    """The schedule position of a grown network: `level` and per-member `alpha`.

    Both live in the buffer `position` (M, 2) = (level, alpha), so checkpoints carry them;
    `level` and `fading` mirror it as Python values, so a forward pass needs no host sync.
    """

    def __init__(self, members: int):
        super().__init__()
        self.members, self.level, self.fading = members, 0, False
        self.register_buffer("position", torch.tensor([[0.0, 1.0]]).repeat(members, 1))
        self.register_load_state_dict_post_hook(_sync_after_load)

    def set_position(self, level: int, alpha: float) -> None:
        """Run up to resolution index `level`, its block faded in by `alpha` in [0, 1]."""
        self.position[:, 0] = float(level)
        self.position[:, 1] = float(alpha)
        self.level, self.fading = level, level > 0 and alpha < 1.0

    def _sync(self) -> None:
        level, alpha = self.position[0].tolist()
        self.level, self.fading = int(level), int(level) > 0 and alpha < 1.0

    @property
    def alpha(self) -> Tensor:
        return self.position[:, 1]


class ProgressiveGenerator(_Grown):
    """z (M, B, latent) -> images (M, B, C, r, r) at the current resolution r (linear output).

    ProGAN's G: z pixel-normalised, a dense layer to r0 x r0, a 3x3 convolution; per next
    resolution a nearest 2x upsampling and two 3x3 convolutions; LeakyReLU 0.2 and pixel norm
    after every convolution; a 1x1 toRGB per resolution.
    """

    def __init__(self, cfg: ProgressiveConfig, out_channels: int, gens: Generators):
        super().__init__(len(gens))
        res, eq, m = cfg.resolutions, cfg.equalized_lr, len(gens)
        ch = [channels_at(cfg, r) for r in res]
        self.r0, self.c0 = res[0], ch[0]
        self.latent_norm = PixelNorm(m) if cfg.pixel_norm else nn.Identity()
        # gain sqrt(2)/4 at r0 = 4, as the reference code: the dense layer is a 4x4 transposed conv
        self.project = EqualizedLinear(
            cfg.latent_dim, ch[0] * res[0] ** 2, gens, eq, _GAIN / res[0]
        )

        def norm() -> nn.Module:
            return PixelNorm(m) if cfg.pixel_norm else nn.Identity()

        act = nn.LeakyReLU(0.2)
        self.first = nn.Sequential(
            act, norm(), EqualizedConv2d(ch[0], ch[0], 3, gens, eq), act, norm()
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                EqualizedConv2d(ch[i - 1], ch[i], 3, gens, eq),
                act,
                norm(),
                EqualizedConv2d(ch[i], ch[i], 3, gens, eq),
                act,
                norm(),
            )
            for i in range(1, len(res))
        )
        self.to_rgb = nn.ModuleList(
            EqualizedConv2d(c, out_channels, 1, gens, eq, gain=1.0) for c in ch
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        m, b = z.shape[:2]
        x = self.project(self.latent_norm(z)).view(m, b, self.c0, self.r0, self.r0)
        h = self.first(to_packed(x))
        for block in self.blocks[: max(self.level - 1, 0)]:
            h = block(h)
        if self.level == 0:
            return from_packed(self.to_rgb[0](h), self.members)
        out = self.to_rgb[self.level](self.blocks[self.level - 1](h))
        if self.fading:
            low = F.interpolate(self.to_rgb[self.level - 1](h), scale_factor=2, mode="nearest")
            out = _blend(low, out, self.alpha, self.members)
        return from_packed(out, self.members)


class ProgressiveDiscriminator(_Grown):
    """Images (M, B, C, r, r) at the current resolution -> (logits (M, B), features (M, B, F)).

    ProGAN's D, G mirrored: a 1x1 fromRGB per resolution; per resolution above the first two
    3x3 convolutions and a 2x average pooling; at r0: minibatch std (optional), a 3x3
    convolution, a dense layer and a linear output. LeakyReLU 0.2 throughout, no normalisation.
    """

    scale_sizes: tuple[int, ...] = ()  # one logit per sample

    def __init__(self, cfg: ProgressiveConfig, in_channels: int, gens: Generators):
        super().__init__(len(gens))
        res, eq, m = cfg.resolutions, cfg.equalized_lr, len(gens)
        ch = [channels_at(cfg, r) for r in res]
        act = nn.LeakyReLU(0.2)
        self.from_rgb = nn.ModuleList(
            nn.Sequential(EqualizedConv2d(in_channels, c, 1, gens, eq), act) for c in ch
        )
        self.blocks = nn.ModuleList(  # blocks[i - 1]: resolution i -> i - 1
            nn.Sequential(
                EqualizedConv2d(ch[i], ch[i], 3, gens, eq),
                act,
                EqualizedConv2d(ch[i], ch[i - 1], 3, gens, eq),
                act,
                nn.AvgPool2d(2),
            )
            for i in range(1, len(res))
        )
        self.mbstd = MinibatchStd(m) if cfg.minibatch_std else None
        extra = 1 if cfg.minibatch_std else 0
        self.final_conv = nn.Sequential(EqualizedConv2d(ch[0] + extra, ch[0], 3, gens, eq), act)
        self.final_dense = EqualizedLinear(ch[0] * res[0] ** 2, ch[0], gens, eq, _GAIN)
        self.head = EqualizedLinear(ch[0], 1, gens, eq, 1.0)
        self.act = act

    def forward(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        packed = to_packed(x)
        h = self.from_rgb[self.level](packed)
        if self.level > 0:
            h = self.blocks[self.level - 1](h)
            if self.fading:
                low = self.from_rgb[self.level - 1](F.avg_pool2d(packed, 2))
                h = _blend(low, h, self.alpha, self.members)
            for i in range(self.level - 1, 0, -1):
                h = self.blocks[i - 1](h)
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = self.final_conv(h)
        features = self.act(self.final_dense(from_packed(h, self.members).flatten(2)))
        return self.head(features).squeeze(2), features
