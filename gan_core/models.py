"""Generator and discriminator factories: MLP, DCGAN and PatchGAN, optionally conditional.

Models take and return the member layout (M, B, ...): z is (M, B, latent), samples
are (M, B, *sample_shape), D returns (logits (M, N), features (M, B, F)); the
features (D's penultimate activations) serve feature matching. N is B for MLP and DCGAN
(B / pac with PacGAN) and B x patches for a patch D, whose `scale_sizes` say how many
patches each scale gives per sample (losses average over patches, sum over scales).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DCGAN_SIZES, ConfigError, DiscriminatorConfig, GeneratorConfig, RunConfig
from .layers import (
    MemberConv2d,
    MemberConvTranspose2d,
    MemberDropout,
    MemberEmbedding,
    MemberLinear,
    MemberNorm,
    MinibatchStd,
    activation,
    from_packed,
    to_packed,
)

__all__ = [
    "Generator",
    "Discriminator",
    "PatchDiscriminator",
    "build_models",
    "check_architecture",
    "patch_layers",
    "patch_output_side",
    "patch_scale_sizes",
    "receptive_field",
]

Generators = Sequence[torch.Generator]


def check_architecture(cfg: RunConfig, sample_shape: Sequence[int], num_classes: int) -> None:
    """Raise ConfigError when the models cannot produce or read samples of this shape."""
    is_image = len(sample_shape) == 3
    for name, arch in (
        ("generator.arch", cfg.generator.arch),
        ("discriminator.arch", cfg.discriminator.arch),
    ):
        if arch != "dcgan":
            continue
        if not is_image:
            raise ConfigError(
                f"{name}: dcgan needs image data (C, H, W); data {cfg.data.name!r} "
                f"has samples of shape {tuple(sample_shape)}; use mlp"
            )
        _, h, w = sample_shape
        if h != w or h not in DCGAN_SIZES:
            raise ConfigError(
                f"{name}: dcgan makes square images of side {', '.join(map(str, DCGAN_SIZES))}; "
                f"data {cfg.data.name!r} is {h}x{w} (set data.image_size to one of them)"
            )
    if cfg.discriminator.arch == "patch":
        _check_patch(cfg, sample_shape)
    if cfg.conditional and num_classes < 2:
        raise ConfigError(f"conditional: data {cfg.data.name!r} has no class labels")


def _check_patch(cfg: RunConfig, sample_shape: Sequence[int]) -> None:
    if len(sample_shape) != 3:
        raise ConfigError(
            f"discriminator.arch: patch needs image data (C, H, W); data {cfg.data.name!r} "
            f"has samples of shape {tuple(sample_shape)}; use mlp"
        )
    d = cfg.discriminator
    if min(patch_scale_sizes(d, sample_shape)) < 1:
        raise ConfigError(
            f"discriminator.n_layers: {d.n_layers} layers (with {d.multi_scale.num_scales} "
            f"scales) leave no patch of {sample_shape[1]}x{sample_shape[2]} images; lower "
            "n_layers or multi_scale.num_scales, or raise data.image_size"
        )


def build_models(
    cfg: RunConfig, sample_shape: Sequence[int], num_classes: int, gens: Generators
) -> tuple[Generator, nn.Module]:
    """Build G and D for len(gens) members; member m's weights come from gens[m]."""
    check_architecture(cfg, sample_shape, num_classes)
    classes = num_classes if cfg.conditional else 0
    g = Generator(cfg.generator, tuple(sample_shape), classes, gens)
    d: nn.Module = (
        PatchDiscriminator(cfg.discriminator, tuple(sample_shape), gens)
        if cfg.discriminator.arch == "patch"
        else Discriminator(cfg.discriminator, tuple(sample_shape), classes, gens)
    )
    return g, d


class Generator(nn.Module):
    def __init__(
        self,
        cfg: GeneratorConfig,
        sample_shape: tuple[int, ...],
        num_classes: int,
        gens: Generators,
    ):
        super().__init__()
        self.members, self.latent_dim, self.sample_shape = len(gens), cfg.latent_dim, sample_shape
        self.embed = (
            MemberEmbedding(num_classes, cfg.label_embed_dim, gens) if num_classes else None
        )
        in_dim = cfg.latent_dim + (cfg.label_embed_dim if num_classes else 0)
        self.tanh = len(sample_shape) == 3  # images live in [-1, 1]; 2-D points are unbounded
        self.body = (
            _DCGANGenerator(cfg, sample_shape, in_dim, gens)
            if cfg.arch == "dcgan"
            else _mlp(
                in_dim,
                cfg.hidden_dims,
                math.prod(sample_shape),
                cfg.activation,
                "batch" if cfg.batch_norm else "none",
                cfg.dropout,
                cfg.spectral_norm,
                gens,
                norm_first=True,
            )
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=2)
        out = self.body(z)
        if self.tanh:
            out = torch.tanh(out)
        return out.reshape(z.shape[0], z.shape[1], *self.sample_shape)


class Discriminator(nn.Module):
    scale_sizes: tuple[int, ...] = ()  # one logit per sample (see PatchDiscriminator)

    def __init__(
        self,
        cfg: DiscriminatorConfig,
        sample_shape: tuple[int, ...],
        num_classes: int,
        gens: Generators,
    ):
        super().__init__()
        self.members, self.arch, self.pac = len(gens), cfg.arch, cfg.pac
        if cfg.arch == "dcgan":
            side = sample_shape[1]
            self.embed = MemberEmbedding(num_classes, side * side, gens) if num_classes else None
            self.body = _DCGANFeatures(cfg, sample_shape[0] + (1 if num_classes else 0), side, gens)
            feat_dim = self.body.out_features
        else:
            self.embed = (
                MemberEmbedding(num_classes, cfg.label_embed_dim, gens) if num_classes else None
            )
            in_dim = math.prod(sample_shape) * cfg.pac + (cfg.label_embed_dim if num_classes else 0)
            self.body = _mlp(
                in_dim,
                cfg.hidden_dims,
                None,
                cfg.activation,
                cfg.norm,
                cfg.dropout,
                cfg.spectral_norm,
                gens,
                norm_first=False,
            )
            feat_dim = cfg.hidden_dims[-1]
        self.mbstd = MinibatchStd(len(gens)) if cfg.minibatch_std else None
        self.head = MemberLinear(
            feat_dim + (1 if cfg.minibatch_std else 0), 1, gens, cfg.spectral_norm
        )

    def forward(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        m, b = x.shape[:2]
        if self.arch == "dcgan":
            if self.embed is not None:
                side = x.shape[-1]
                x = torch.cat([x, self.embed(labels).view(m, b, 1, side, side)], dim=2)
            features = self.body(to_packed(x))  # (M, B, F)
        else:
            # PacGAN: `pac` consecutive samples form one input, so D outputs B / pac logits.
            flat = x.reshape(m, b // self.pac, -1)
            if self.embed is not None:
                flat = torch.cat([flat, self.embed(labels)], dim=2)
            features = self.body(flat)
        head_in = self.mbstd(features) if self.mbstd is not None else features
        return self.head(head_in).squeeze(2), features


def _needs_bias(norm: str, conv: bool) -> bool:
    """Whether a layer that feeds `norm` ("none" when nothing) needs a bias.

    Batch norm, and on feature maps instance norm, subtracts a per-channel mean that cancels
    the bias: its gradient is zero up to rounding, which Adam scales up to lr-sized random
    steps, and eval-mode batch norm (a running mean that lags) passes them to the samples.
    """
    return norm not in (("batch", "instance") if conv else ("batch",))


def _mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None,
    act: str,
    norm: str,
    dropout: float,
    spectral_norm: bool,
    gens: Generators,
    norm_first: bool,
) -> nn.Sequential:
    """Linear -> [norm] -> act -> [dropout] per hidden layer, then a linear output layer
    (if out_dim).

    D never normalises its input layer (norm_first=False), as DCGAN and WGAN-GP advise.
    """
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for i in range(len(hidden)):
        normed = norm != "none" and (norm_first or i > 0)
        bias = _needs_bias(norm if normed else "none", conv=False)
        layers.append(MemberLinear(dims[i], dims[i + 1], gens, spectral_norm, bias=bias))
        if normed:
            layers.append(MemberNorm(norm, dims[i + 1], len(gens)))
        layers.append(activation(act))
        if dropout:
            layers.append(MemberDropout(dropout, gens))
    if out_dim is not None:
        layers.append(MemberLinear(dims[-1], out_dim, gens, spectral_norm))
    return nn.Sequential(*layers)


class _DCGANGenerator(nn.Module):
    """z -> 4x4 map -> transposed convolutions doubling the side -> C x S x S (Radford et al.)."""

    def __init__(
        self, cfg: GeneratorConfig, sample_shape: tuple[int, ...], in_dim: int, gens: Generators
    ):
        super().__init__()
        channels, side = sample_shape[0], sample_shape[1]
        ups = int(math.log2(side // 4))
        widths = [cfg.base_channels * 2 ** (ups - 1 - i) for i in range(ups)]  # 4x4 ... last hidden
        self.members, self.c0 = len(gens), widths[0]
        self.project = MemberLinear(
            in_dim, widths[0] * 16, gens, cfg.spectral_norm, init_std=0.02, bias=False
        )
        self.norm0 = MemberNorm("batch", widths[0], len(gens))
        act = activation(cfg.activation)
        layers: list[nn.Module] = [self.norm0, act]
        for i in range(ups - 1):
            layers += [
                MemberConvTranspose2d(
                    widths[i], widths[i + 1], 4, 2, 1, gens, cfg.spectral_norm, bias=False
                ),
                MemberNorm("batch", widths[i + 1], len(gens)),
                activation(cfg.activation),
            ]
        layers.append(MemberConvTranspose2d(widths[-1], channels, 4, 2, 1, gens, cfg.spectral_norm))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        m, b = z.shape[:2]
        x = self.project(z).view(m, b, self.c0, 4, 4)
        return from_packed(self.convs(to_packed(x)), self.members)


class _DCGANFeatures(nn.Module):
    """C x S x S -> strided convolutions halving the side down to 4x4 -> flattened features."""

    def __init__(self, cfg: DiscriminatorConfig, in_channels: int, side: int, gens: Generators):
        super().__init__()
        downs = int(math.log2(side // 4))
        widths = [cfg.base_channels * 2**i for i in range(downs)]
        self.members = len(gens)
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(widths):
            normed = cfg.norm != "none" and i > 0  # never on D's input layer
            bias = _needs_bias(cfg.norm if normed else "none", conv=True)
            layers.append(MemberConv2d(prev, width, 4, 2, 1, gens, cfg.spectral_norm, bias=bias))
            if normed:
                layers.append(MemberNorm(cfg.norm, width, len(gens)))
            layers.append(activation(cfg.activation))
            if cfg.dropout:
                layers.append(_PackedDropout(cfg.dropout, gens))
            prev = width
        self.convs = nn.Sequential(*layers)
        self.out_features = prev * 16

    def forward(self, packed: Tensor) -> Tensor:
        y = from_packed(self.convs(packed), self.members)  # (M, B, C, 4, 4)
        return y.flatten(2)


class _PackedDropout(MemberDropout):
    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        m = len(self.gens)
        return to_packed(super().forward(from_packed(x, m)))


def patch_layers(n_layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of each convolution of a patch D: n_layers of stride 2, two of 1."""
    return [(4, 2)] * n_layers + [(4, 1), (4, 1)]


def patch_output_side(side: int, n_layers: int) -> int:
    """Patches per side of a patch D on side x side inputs (padding 1 everywhere)."""
    for kernel, stride in patch_layers(n_layers):
        side = max((side + 2 - kernel) // stride + 1, 0)
    return side


def patch_scale_sizes(cfg: DiscriminatorConfig, sample_shape: Sequence[int]) -> tuple[int, ...]:
    """Patches per sample at each scale of a (multi-scale) patch D."""
    h, w = sample_shape[1:]
    sizes = []
    for _ in range(cfg.multi_scale.num_scales):
        sizes.append(patch_output_side(h, cfg.n_layers) * patch_output_side(w, cfg.n_layers))
        h, w = -(-h // 2), -(-w // 2)  # avg_pool2d(3, stride 2, padding 1)
    return tuple(sizes)


def receptive_field(n_layers: int) -> int:
    """Input pixels per side that one patch logit sees (70 for pix2pix's n_layers = 3)."""
    field = 1
    for kernel, stride in reversed(patch_layers(n_layers)):
        field = field * stride + (kernel - stride)
    return field


class _PatchNet(nn.Module):
    """pix2pix's NLayerDiscriminator on the packed layout: (B, M*C, H, W) -> logits, features.

    4x4 convolutions, stride 2 then 1, LeakyReLU 0.2, instance norm on every layer but the first
    (Isola et al. 2017); widths double from base_channels up to max_channels.
    """

    def __init__(self, cfg: DiscriminatorConfig, in_channels: int, gens: Generators):
        super().__init__()
        self.members = len(gens)
        layers: list[nn.Module] = []
        prev = in_channels
        for i, (kernel, stride) in enumerate(patch_layers(cfg.n_layers)[:-1]):
            width = min(cfg.base_channels * 2**i, cfg.max_channels)
            normed = i > 0
            layers.append(
                MemberConv2d(
                    prev, width, kernel, stride, 1, gens, cfg.spectral_norm, bias=not normed
                )
            )
            if normed:
                layers.append(MemberNorm("instance", width, len(gens)))
            layers.append(nn.LeakyReLU(0.2))
            prev = width
        self.body = nn.Sequential(*layers)
        self.head = MemberConv2d(prev, 1, 4, 1, 1, gens, cfg.spectral_norm)

    def forward(self, packed: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(packed)
        logits = from_packed(self.head(h), self.members)  # (M, B, 1, h, w)
        return logits.flatten(2), from_packed(h, self.members).flatten(2)


class PatchDiscriminator(nn.Module):
    """One patch D, or pix2pixHD's multi-scale set of them, on (M, B, C, H, W) images.

    Scale s sees the input average-pooled s times by 2 (3x3 window, as pix2pixHD).

    Returns:
        logits (M, B * P) ordered sample by sample (each sample's patches of scale 0, then
        scale 1, ...), features (M, B, F): every scale's penultimate activations.
    """

    def __init__(self, cfg: DiscriminatorConfig, sample_shape: tuple[int, ...], gens: Generators):
        super().__init__()
        self.members = len(gens)
        self.nets = nn.ModuleList(
            _PatchNet(cfg, sample_shape[0], gens) for _ in range(cfg.multi_scale.num_scales)
        )
        self.scale_sizes = patch_scale_sizes(cfg, sample_shape)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        m, b = x.shape[:2]
        packed = to_packed(x)
        logits, features = [], []
        for i, net in enumerate(self.nets):
            if i > 0:
                packed = F.avg_pool2d(packed, 3, stride=2, padding=1, count_include_pad=False)
            out, feat = net(packed)
            logits.append(out)
            features.append(feat)
        return torch.cat(logits, dim=2).reshape(m, -1), torch.cat(features, dim=2)
