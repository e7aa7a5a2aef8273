"""Adversarial losses, from logits, as pure functions in a registry.

Every function takes D's raw outputs of shape (M, B) (members x batch) and returns
per-member means of shape (M,), so one call serves a pack of runs. Log-sigmoid
terms use softplus, which is stable for any logit.

Conventions (the training guide's metric reference, ../shared/seeds/001):
R = D's loss on real data, F = D's loss on fakes, G = the generator's loss.
D minimises R + F; the reported D loss is 0.5 * (R + F).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import ConfigError, TrainingConfig

__all__ = ["Loss", "LOSSES", "get_loss", "over_scales"]


@dataclass(frozen=True)
class Loss:
    """One loss family.

    d_terms(real, fake, cfg) -> (R, F); g(fake, cfg) -> G; `probabilities` says whether
    sigmoid(D) is a probability of "real" (then D outputs are reported as probabilities);
    threshold(real, fake, cfg) is the decision boundary used for D and G accuracy.
    """

    name: str
    d_terms: Callable[[Tensor, Tensor, TrainingConfig], tuple[Tensor, Tensor]]
    g: Callable[[Tensor, TrainingConfig], Tensor]
    probabilities: bool
    threshold: Callable[[Tensor, Tensor, TrainingConfig], Tensor]

    def outputs(self, logits: Tensor) -> Tensor:
        """D outputs as reported: probabilities where the loss has them, raw scores otherwise."""
        return torch.sigmoid(logits) if self.probabilities else logits


def _bce_d(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> tuple[Tensor, Tensor]:
    # One-sided label smoothing: the real target is 1 - s, fakes stay at 0 (Salimans et al. 2016).
    s = cfg.label_smoothing
    r = (1.0 - s) * F.softplus(-real) + s * F.softplus(real)
    return r.mean(-1), F.softplus(fake).mean(-1)


def _minimax_g(fake: Tensor, cfg: TrainingConfig) -> Tensor:
    # min log(1 - D(G(z))) = min -softplus(logit): saturates when D rejects fakes.
    return (-F.softplus(fake)).mean(-1)


def _non_saturating_g(fake: Tensor, cfg: TrainingConfig) -> Tensor:
    # min -log D(G(z)) = min softplus(-logit).
    return F.softplus(-fake).mean(-1)


def _wasserstein_d(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> tuple[Tensor, Tensor]:
    return -real.mean(-1), fake.mean(-1)


def _wasserstein_g(fake: Tensor, cfg: TrainingConfig) -> Tensor:
    return -fake.mean(-1)


def _hinge_d(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> tuple[Tensor, Tensor]:
    return F.relu(1.0 - real).mean(-1), F.relu(1.0 + fake).mean(-1)


def _least_squares_d(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> tuple[Tensor, Tensor]:
    a, b, _ = cfg.lsgan_targets  # Mao et al. 2017: fakes -> a, reals -> b
    return 0.5 * ((real - b) ** 2).mean(-1), 0.5 * ((fake - a) ** 2).mean(-1)


def _least_squares_g(fake: Tensor, cfg: TrainingConfig) -> Tensor:
    c = cfg.lsgan_targets[2]
    return 0.5 * ((fake - c) ** 2).mean(-1)


def _half(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> Tensor:
    return torch.full(real.shape[:-1], 0.5, device=real.device)


def _zero(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> Tensor:
    return torch.zeros(real.shape[:-1], device=real.device)


def _ls_midpoint(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> Tensor:
    a, b, _ = cfg.lsgan_targets
    return torch.full(real.shape[:-1], 0.5 * (a + b), device=real.device)


def _score_midpoint(real: Tensor, fake: Tensor, cfg: TrainingConfig) -> Tensor:
    # A Wasserstein critic's scores have no fixed origin: split halfway between the batch means.
    return 0.5 * (real.mean(-1) + fake.mean(-1))


LOSSES: dict[str, Loss] = {
    "minimax": Loss("minimax", _bce_d, _minimax_g, True, _half),
    "non_saturating": Loss("non_saturating", _bce_d, _non_saturating_g, True, _half),
    "wasserstein": Loss("wasserstein", _wasserstein_d, _wasserstein_g, False, _score_midpoint),
    "hinge": Loss("hinge", _hinge_d, _wasserstein_g, False, _zero),
    "least_squares": Loss("least_squares", _least_squares_d, _least_squares_g, False, _ls_midpoint),
}


def over_scales(fn: Callable[..., Any], sizes: tuple[int, ...], *logits: Tensor) -> Any:
    """`fn` (a loss term) on each scale's logits, summed over scales (pix2pixHD).

    Each logits tensor is (M, B x sum(sizes)), sample by sample (models.PatchDiscriminator);
    one scale, or none (one logit per sample), is a plain call: the mean runs over patches.
    """
    if len(sizes) < 2:
        return fn(*logits)
    parts = [t.reshape(t.shape[0], -1, sum(sizes)).split(sizes, dim=2) for t in logits]
    results = [fn(*(p[s].flatten(1) for p in parts)) for s in range(len(sizes))]
    if isinstance(results[0], tuple):
        return tuple(sum(terms[1:], terms[0]) for terms in zip(*results, strict=True))
    return sum(results[1:], results[0])


def get_loss(name: str) -> Loss:
    """The registered loss `name`; ConfigError listing the valid names otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(
            f"train.loss_type: unknown loss {name!r}; allowed: {', '.join(LOSSES)}"
        ) from None
