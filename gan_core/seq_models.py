"""Sequence GAN networks on the member axis: residual 1-D conv G and D (Gulrajani et al. 2017)
or GRUs (`sequence.arch: gru`).

Layouts: sequences (M, B, L, V) outside (one-hot or relaxed one-hot over V tokens); packed
(B, M*C, L) inside the convolutions, convolved with `groups=M` so that members never mix;
(M, B, H) inside the GRUs, multiplied per member with `torch.bmm`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SequenceConfig
from .layers import MemberLinear

__all__ = [
    "MemberConv1d",
    "MemberGRUCell",
    "SeqGenerator",
    "SeqDiscriminator",
    "GruGenerator",
    "GruDiscriminator",
    "build_sequence_models",
]

Generators = Sequence[torch.Generator]


class _PowerSpectralNorm(nn.Module):
    """Per-member spectral normalisation with `iterations` power iterations per training call.

    As gan_core.layers' one-iteration version; CodeGan (seeds/000) runs 10.
    """

    def __init__(self, weight_shape: Sequence[int], gens: Generators, iterations: int):
        super().__init__()
        u = torch.stack([torch.randn(weight_shape[1], generator=g) for g in gens])
        self.register_buffer("u", F.normalize(u, dim=1))
        self.iterations = iterations

    def forward(self, weight: Tensor) -> Tensor:
        w = weight.flatten(2)  # (M, out, in * k)
        with torch.no_grad():
            u = self.u
            v = F.normalize(torch.bmm(w.transpose(1, 2), u.unsqueeze(2)).squeeze(2), dim=1)
            for i in range(self.iterations if self.training else 0):
                u = F.normalize(torch.bmm(w, v.unsqueeze(2)).squeeze(2), dim=1)
                if i + 1 < self.iterations:
                    v = F.normalize(torch.bmm(w.transpose(1, 2), u.unsqueeze(2)).squeeze(2), dim=1)
            if self.training:
                self.u.copy_(u)
            u, v = u.clone(), v.clone()
        sigma = torch.einsum("mo,moi,mi->m", u, w, v)
        return weight / sigma.view(-1, 1, 1, 1)


class MemberConv1d(nn.Module):
    """1-D convolution on the packed layout (B, M*in, L); PyTorch's Conv1d initialisation."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        gens: Generators,
        padding: int | None = None,
        bias: bool = True,
        spectral_norm: int = 0,
    ):
        super().__init__()
        self.members = len(gens)
        self.padding = kernel // 2 if padding is None else padding
        bound = 1.0 / math.sqrt(in_ch * kernel)
        self.weight = nn.Parameter(
            torch.stack(
                [
                    torch.empty(out_ch, in_ch, kernel).uniform_(-bound, bound, generator=g)
                    for g in gens
                ]
            )
        )
        self.bias = None
        if bias:
            self.bias = nn.Parameter(
                torch.stack(
                    [torch.empty(out_ch).uniform_(-bound, bound, generator=g) for g in gens]
                )
            )
        self.sn = (
            _PowerSpectralNorm(self.weight.shape, gens, spectral_norm) if spectral_norm else None
        )

    def forward(self, x: Tensor) -> Tensor:
        weight = self.sn(self.weight) if self.sn is not None else self.weight
        bias = None if self.bias is None else self.bias.reshape(-1)
        return F.conv1d(x, weight.flatten(0, 1), bias, 1, self.padding, groups=self.members)


class _ResBlock(nn.Module):
    """x + 0.3 conv(relu(conv(relu(x)))), Gulrajani et al.'s language-model block."""

    def __init__(self, channels: int, kernel: int, gens: Generators, sn: int = 0):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            MemberConv1d(channels, channels, kernel, gens, spectral_norm=sn),
            nn.ReLU(),
            MemberConv1d(channels, channels, kernel, gens, spectral_norm=sn),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.3 * self.body(x)


class SeqGenerator(nn.Module):
    """z (M, B, latent) -> logits (M, B, L, V): a linear layer to C x L, residual convs, 1x1 to V.

    Its buffer `steps` counts G steps per member (the temperature schedule's clock), so the
    schedule resumes exactly from a checkpoint.
    """

    def __init__(self, cfg: SequenceConfig, length: int, vocab: int, gens: Generators):
        super().__init__()
        self.members, self.length, self.channels = len(gens), length, cfg.g_channels
        self.fc = MemberLinear(cfg.latent_dim, cfg.g_channels * length, gens)
        self.blocks = nn.Sequential(
            *(_ResBlock(cfg.g_channels, cfg.kernel_size, gens) for _ in range(cfg.n_blocks))
        )
        self.out = MemberConv1d(cfg.g_channels, vocab, 1, gens)
        self.register_buffer("steps", torch.zeros(len(gens)))

    def forward(self, z: Tensor) -> Tensor:
        m, b, _ = z.shape
        h = self.fc(z).view(m, b, self.channels, self.length)
        h = h.transpose(0, 1).reshape(b, m * self.channels, self.length)
        logits = self.out(self.blocks(h))  # (B, M*V, L)
        return logits.view(b, m, -1, self.length).permute(1, 0, 3, 2)


class SeqDiscriminator(nn.Module):
    """(M, B, L, V) one-hot or relaxed sequences -> (logits (M, B), features (M, B, C*L)).

    A linear token embedding (a 1x1 convolution without bias), residual convs, a linear head.
    """

    def __init__(self, cfg: SequenceConfig, length: int, vocab: int, gens: Generators):
        super().__init__()
        sn = cfg.power_iterations if cfg.spectral_norm else 0
        self.members = len(gens)
        self.embed = MemberConv1d(vocab, cfg.d_channels, 1, gens, bias=False, spectral_norm=sn)
        self.blocks = nn.Sequential(
            *(_ResBlock(cfg.d_channels, cfg.kernel_size, gens, sn) for _ in range(cfg.n_blocks))
        )
        self.head = MemberConv1d(cfg.d_channels, 1, length, gens, padding=0, spectral_norm=sn)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m, b, length, vocab = x.shape
        h = self.blocks(self.embed(x.permute(1, 0, 3, 2).reshape(b, m * vocab, length)))
        logits = self.head(h).view(b, m).transpose(0, 1)
        return logits, h.view(b, m, -1).transpose(0, 1)


class MemberGRUCell(nn.Module):
    """A GRU cell per member, (M, B, in) and (M, B, H) -> (M, B, H) (torch.nn.GRUCell's gates)."""

    def __init__(self, in_features: int, hidden: int, gens: Generators):
        super().__init__()
        self.ih = MemberLinear(in_features, 3 * hidden, gens)
        self.hh = MemberLinear(hidden, 3 * hidden, gens)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        i_r, i_z, i_n = self.ih(x).chunk(3, dim=-1)
        h_r, h_z, h_n = self.hh(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h


class GruGenerator(nn.Module):
    """z -> logits (M, B, L, V): h0 = tanh(W z), then a GRU fed z at every step, a linear to V.

    z at every step rather than the previous token: the output stays one differentiable map of
    z, with no sampling inside G. Buffer `steps` as SeqGenerator's.
    """

    def __init__(self, cfg: SequenceConfig, length: int, vocab: int, gens: Generators):
        super().__init__()
        self.length = length
        self.init = MemberLinear(cfg.latent_dim, cfg.g_channels, gens)
        self.cell = MemberGRUCell(cfg.latent_dim, cfg.g_channels, gens)
        self.out = MemberLinear(cfg.g_channels, vocab, gens)
        self.register_buffer("steps", torch.zeros(len(gens)))

    def forward(self, z: Tensor) -> Tensor:
        h = torch.tanh(self.init(z))
        states = []
        for _ in range(self.length):
            h = self.cell(z, h)
            states.append(h)
        return self.out(torch.stack(states, dim=2).flatten(1, 2)).unflatten(1, (z.shape[1], -1))


class GruDiscriminator(nn.Module):
    """(M, B, L, V) -> (logits (M, B), last state (M, B, H)): token embedding, GRU, linear."""

    def __init__(self, cfg: SequenceConfig, length: int, vocab: int, gens: Generators):
        super().__init__()
        self.hidden = cfg.d_channels
        self.embed = MemberLinear(vocab, cfg.d_channels, gens, bias=False)
        self.cell = MemberGRUCell(cfg.d_channels, cfg.d_channels, gens)
        self.head = MemberLinear(cfg.d_channels, 1, gens)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m, b, length, _ = x.shape
        e = self.embed(x.flatten(1, 2)).view(m, b, length, -1)
        h = x.new_zeros(m, b, self.hidden)
        for t in range(length):
            h = self.cell(e[:, :, t], h)
        return self.head(h).squeeze(-1), h


def build_sequence_models(
    cfg: SequenceConfig, length: int, vocab: int, gens: Generators
) -> tuple[nn.Module, nn.Module]:
    """G and D of `cfg.arch` (conv or gru)."""
    if cfg.arch == "gru":
        return GruGenerator(cfg, length, vocab, gens), GruDiscriminator(cfg, length, vocab, gens)
    return SeqGenerator(cfg, length, vocab, gens), SeqDiscriminator(cfg, length, vocab, gens)
