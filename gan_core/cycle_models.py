"""CycleGAN's networks on the member axis: the ResNet generator and the image pool.

Layouts as gan_core.models: images (M, B, C, H, W) outside, packed (B, M*C, H, W) inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import CycleConfig, DiscriminatorConfig
from .layers import (
    MemberConv2d,
    MemberConvTranspose2d,
    MemberNorm,
    from_packed,
    member_rand,
    to_packed,
)
from .models import PatchDiscriminator

__all__ = ["ResnetGenerator", "CycleGenerators", "CycleDiscriminators", "ImagePools"]

Generators = Sequence[torch.Generator]


def _conv_block(
    in_ch: int, out_ch: int, kernel: int, stride: int, gens: Generators, reflect: int = 0
) -> list[nn.Module]:
    """[reflection pad] -> conv (no bias: instance norm cancels it) -> instance norm -> ReLU."""
    pad: list[nn.Module] = [nn.ReflectionPad2d(reflect)] if reflect else []
    conv_pad = 0 if reflect else (kernel - 1) // 2
    return [
        *pad,
        MemberConv2d(in_ch, out_ch, kernel, stride, conv_pad, gens, bias=False),
        MemberNorm("instance", out_ch, len(gens)),
        nn.ReLU(),
    ]


class _ResidualBlock(nn.Module):
    """x + (pad, conv 3x3, IN, ReLU, pad, conv 3x3, IN)(x), reflection padding (Johnson et al.)."""

    def __init__(self, channels: int, gens: Generators):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_block(channels, channels, 3, 1, gens, reflect=1),
            nn.ReflectionPad2d(1),
            MemberConv2d(channels, channels, 3, 1, 0, gens, bias=False),
            MemberNorm("instance", channels, len(gens)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Zhu et al.'s ResNet generator: reflection-padded 7x7 stem, two stride-2 downsamplings,
    n_blocks residual blocks, two stride-2 transposed convolutions, 7x7 to the image, tanh."""

    def __init__(self, cfg: CycleConfig, channels: int, gens: Generators):
        super().__init__()
        self.members = len(gens)
        w = cfg.base_channels
        layers: list[nn.Module] = [
            *_conv_block(channels, w, 7, 1, gens, reflect=3),
            *_conv_block(w, 2 * w, 3, 2, gens),
            *_conv_block(2 * w, 4 * w, 3, 2, gens),
            *(_ResidualBlock(4 * w, gens) for _ in range(cfg.n_blocks)),
        ]
        for width in (2 * w, w):
            layers += [
                MemberConvTranspose2d(
                    2 * width, width, 3, 2, 1, gens, bias=False, output_padding=1
                ),
                MemberNorm("instance", width, len(gens)),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), MemberConv2d(w, channels, 7, 1, 0, gens), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return from_packed(self.body(to_packed(x)), self.members)


class CycleGenerators(nn.Module):
    """The generator side: G: A -> B (`g_ab`) and F: B -> A (`g_ba`), one optimizer."""

    def __init__(self, cfg: CycleConfig, channels: int, gens: Generators):
        super().__init__()
        self.g_ab = ResnetGenerator(cfg, channels, gens)
        self.g_ba = ResnetGenerator(cfg, channels, gens)


class CycleDiscriminators(nn.Module):
    """The discriminator side: D_A judges domain A, D_B domain B (patch Ds), one optimizer."""

    def __init__(self, cfg: DiscriminatorConfig, sample_shape: tuple[int, ...], gens: Generators):
        super().__init__()
        self.d_a = PatchDiscriminator(cfg, sample_shape, gens)
        self.d_b = PatchDiscriminator(cfg, sample_shape, gens)


class ImagePool(nn.Module):
    """Shrivastava et al.'s history of generated images, per member (the reference's ImagePool).

    Each new fake is stored while the pool fills; after that, with probability 1/2 D sees a
    stored fake instead and the new one takes its place. The draws come from each member's
    own generator, two per image whether used or not, so a pack matches solo runs.
    """

    def __init__(self, size: int, sample_shape: tuple[int, ...], members: int):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(members, size, *sample_shape))
        self.register_buffer("count", torch.zeros(members, dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: Tensor, gens: Generators) -> Tensor:
        """(M, B, ...) fakes -> the (M, B, ...) images D should see."""
        if self.size == 0:
            return fakes
        out = fakes.clone()
        rows = torch.arange(fakes.shape[0], device=fakes.device)
        for j in range(fakes.shape[1]):
            u = member_rand(gens, (2,), fakes.device)  # (M, 2): coin, slot
            filling = self.count < self.size
            swap = ~filling & (u[:, 0] > 0.5)
            slot = torch.where(
                filling, self.count, (u[:, 1] * self.size).long().clamp_(max=self.size - 1)
            )
            old = self.images[rows, slot]
            out[swap, j] = old[swap]
            store = filling | swap
            self.images[rows[store], slot[store]] = fakes[store, j]
            self.count += filling.long()
        return out


class ImagePools(nn.Module):
    """Both pools: past F(b) for D_A (`a`) and past G(a) for D_B (`b`)."""

    def __init__(self, size: int, sample_shape: tuple[int, ...], members: int):
        super().__init__()
        self.a = ImagePool(size, sample_shape, members)
        self.b = ImagePool(size, sample_shape, members)
