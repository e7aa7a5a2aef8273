"""Frozen, validated run configuration.

A run is described by one `RunConfig`, built from a plain dict (or YAML) that
overlays the defaults below. Unknown keys, wrong types and values outside their
allowed set raise one `ConfigError` that names the field, before anything is
built or trained.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "ConfigError",
    "GeneratorConfig",
    "CycleConfig",
    "SequenceConfig",
    "ProgressiveConfig",
    "DiscriminatorConfig",
    "MultiScaleConfig",
    "TrainingConfig",
    "DataConfig",
    "EvalConfig",
    "MonitorConfig",
    "RunConfig",
    "LOSS_TYPES",
    "DCGAN_SIZES",
    "FAMILY_NAMES",
    "flatten_config",
]


class ConfigError(ValueError):
    """A user-supplied configuration value is invalid. The message names the field."""


LOSS_TYPES = ("minimax", "non_saturating", "wasserstein", "hinge", "least_squares")
# "vanilla" is the non-saturating loss, as in Artifex's GANTrainer (seeds/002: "Vanilla GAN
# (Non-Saturating)") and the PyTorch DCGAN tutorial; gansweep 0.1 used it for the saturating
# minimax loss, now called "minimax" (Goodfellow et al. 2014, eq. 1).
_LOSS_ALIASES = {
    "vanilla": "non_saturating",
    "lsgan": "least_squares",
    "saturating": "minimax",
    "wgan": "wasserstein",
}
VANILLA_WARNING = (
    "train.loss_type 'vanilla' is the non-saturating loss (as in Artifex and the PyTorch DCGAN "
    "tutorial); gansweep 0.1 used it for the saturating minimax loss: write 'minimax' for that, "
    "or 'non_saturating' to silence this warning"
)
DCGAN_SIZES = (8, 16, 32, 64)
# GAN families (docs/families.md); each is a class in gan_core.families.FAMILIES.
FAMILY_NAMES = ("gan", "cyclegan", "sequence", "progressive")
# Defaults a family sets under the user's values (docs/families.md). CycleGAN: Zhu et al. 2017
# and its reference implementation (LSGAN, Adam 2e-4 with beta1 0.5, batch 1, patch D).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "cyclegan": {
        "train": {"loss_type": "least_squares", "g_lr": 2e-4, "d_lr": 2e-4, "batch_size": 1},
        "discriminator": {"arch": "patch"},
        "data": {"name": "digits_inverted"},
    },
    # Sequence GANs: WGAN-GP's language model (Gulrajani et al. 2017: Adam 1e-4, betas (0.5,
    # 0.9), lambda 10, batch 64) with the CodeGan seed's 5 critic steps (seeds/000).
    "sequence": {
        "train": {
            "loss_type": "wasserstein",
            "gp_weight": 10.0,
            "n_critic": 5,
            "g_lr": 1e-4,
            "d_lr": 1e-4,
            "g_betas": [0.5, 0.9],
            "d_betas": [0.5, 0.9],
            "batch_size": 64,
        },
        "data": {"name": "markov"},
    },
    # Progressive growing: Karras et al. 2018 (ProGAN), section 4 and appendix A.1: WGAN-GP
    # (lambda 10) with one critic step per G step, Adam lr 1e-3 with betas (0, 0.99). Batch 32
    # and digits grown to 16x16 are ours (CPU-sized; the paper grows CelebA-HQ to 1024).
    "progressive": {
        "train": {
            "loss_type": "wasserstein",
            "gp_weight": 10.0,
            "g_lr": 1e-3,
            "d_lr": 1e-3,
            "g_betas": (0.0, 0.99),
            "d_betas": (0.0, 0.99),
            "batch_size": 32,
        },
        "data": {"name": "digits", "image_size": 16},
    },
}

Activation = Literal["relu", "leaky_relu"]


@dataclass(frozen=True)
class GeneratorConfig:
    arch: Literal["mlp", "dcgan"] = "mlp"  # network family
    latent_dim: int = 2  # size of z; PacGAN's mixture experiments use 2
    hidden_dims: tuple[int, ...] = (128, 128)  # MLP widths, input to output
    activation: Activation = "relu"
    batch_norm: bool = False  # MLP only; DCGAN always uses it except on the output
    dropout: float = 0.0  # MLP hidden layers, in [0, 1)
    base_channels: int = 64  # DCGAN: channels of the last hidden feature map
    spectral_norm: bool = False
    label_embed_dim: int = 16  # conditional runs: size of the label embedding


@dataclass(frozen=True)
class MultiScaleConfig:
    """pix2pixHD: copies of the patch D on inputs average-pooled 2x per scale, losses summed."""

    num_scales: int = 1  # 1: a single patch D; pix2pixHD uses 3


@dataclass(frozen=True)
class DiscriminatorConfig:
    # patch: PatchGAN (Isola et al. 2017): fully convolutional, one logit per patch, instance
    # norm after the first layer (the `norm` field does not apply)
    arch: Literal["mlp", "dcgan", "patch"] = "mlp"
    hidden_dims: tuple[int, ...] = (128, 128)
    activation: Activation = "leaky_relu"  # slope 0.2
    norm: Literal["none", "batch", "layer", "instance"] = "none"  # never on D's input layer
    dropout: float = 0.0
    base_channels: int = 64  # DCGAN: channels of the first feature map
    spectral_norm: bool = False
    minibatch_std: bool = False  # append the batch's feature std before the last layer
    pac: int = 1  # PacGAN (Lin et al. 2018): D judges this many samples jointly; MLP only
    label_embed_dim: int = 16
    n_layers: int = 3  # patch: stride-2 convolutions (3: 70x70 receptive field, pix2pix)
    max_channels: int = 512  # patch: widths double from base_channels up to this cap (8 x 64)
    multi_scale: MultiScaleConfig = field(default_factory=MultiScaleConfig)  # patch only


@dataclass(frozen=True)
class CycleConfig:
    """CycleGAN (family: cyclegan): Zhu et al. 2017 and its reference implementation."""

    lambda_cycle: float = 10.0  # weight of |F(G(a)) - a|_1 + |G(F(b)) - b|_1 (paper: 10)
    lambda_identity: float = 0.5  # identity weight as a multiple of lambda_cycle (reference 0.5)
    pool_size: int = 50  # past fakes D draws from (Shrivastava et al. 2017); 0: off
    n_blocks: int = 9  # ResNet generator: residual blocks (reference: 9 at 256 px, 6 at 128)
    base_channels: int = 64  # ResNet generator: channels after the 7x7 stem (reference ngf)
    decay_start: int | None = None  # epochs at full LR before linear decay to 0; None: half


@dataclass(frozen=True)
class SequenceConfig:
    """Token-sequence GANs (family: sequence): data, conv G and D, relaxed one-hot outputs.

    Sources: Gulrajani et al. 2017 (WGAN-GP's character language model: residual 1-D conv G
    and D, softmax output fed to D); Jang et al. 2017 (Gumbel-softmax); seeds/000 (CodeGan).
    """

    length: int = 16  # L: tokens per sequence (user text: longer lines are refused)
    vocab_size: int = 16  # data markov: V, its number of tokens
    markov_successors: int = 3  # data markov: possible next tokens of each token
    tokenizer: Literal["char", "whitespace", "regex"] = "char"  # data text
    token_pattern: str | None = None  # data text, tokenizer regex: re.findall pattern
    split: Literal["lines", "windows"] = "lines"  # data text: a sequence per line, or windows
    latent_dim: int = 128  # size of z (Gulrajani et al.: 128)
    # conv: residual 1-D convs (Gulrajani et al.); gru: a GRU G fed z at every step, a GRU D
    # (widths g_channels, d_channels; n_blocks, kernel_size and spectral_norm are conv-only)
    arch: Literal["conv", "gru"] = "conv"
    g_channels: int = 64  # G's conv width (Gulrajani et al.: 512)
    d_channels: int = 64  # D's conv width, also D's embedding size (Gulrajani et al.: 512)
    n_blocks: int = 2  # residual blocks in G and in D (Gulrajani et al.: 5)
    kernel_size: int = 5  # conv kernel, odd (Gulrajani et al.: 5)
    # softmax: D sees softmax(logits / T) (Gulrajani et al.); gumbel: straight-through
    # Gumbel-softmax, one-hot forward, relaxed backward (Jang et al. 2017)
    output: Literal["softmax", "gumbel"] = "softmax"
    temperature: float = 1.0  # T at the first G step
    temperature_final: float | None = None  # anneal T geometrically to this at the last G step
    spectral_norm: bool = False  # on D's layers (CodeGan: on)
    power_iterations: int = 1  # spectral norm: power iterations per D call (CodeGan: 10)
    # WGAN-GP interpolation weight: one per sample (Gulrajani et al. 2017, Algorithm 1) or one
    # per batch (CodeGan, seeds/000)
    gp_alpha: Literal["sample", "batch"] = "sample"
    ngram: int = 4  # n of seq/mode_collapse_score's distinct n-grams


@dataclass(frozen=True)
class ProgressiveConfig:
    """Progressive growing (family: progressive): Karras et al. 2018 (ProGAN) and its code."""

    resolutions: tuple[int, ...] = (4, 8, 16)  # sides, each double the last (paper: 4 ... 1024)
    fade_epochs: int = 2  # epochs alpha rises 0 -> 1 after each growth (paper: 800k images)
    stable_epochs: int = 2  # epochs at alpha 1 per resolution (paper: 800k images)
    batch_sizes: tuple[int, ...] = ()  # one per resolution; (): train.batch_size at every one
    latent_dim: int = 64  # size of z (paper 512; ours, CPU-sized)
    fmap_base: int = 256  # channels at side r: min(fmap_base // r, fmap_max) (paper 8192)
    fmap_max: int = 32  # (paper 512)
    equalized_lr: bool = True  # weights N(0, 1) scaled by He's constant at run time (paper 4.1)
    pixel_norm: bool = True  # G: each pixel's feature vector scaled to unit length (paper 4.2)
    minibatch_std: bool = True  # D: the batch's feature std as one more channel at 4x4 (paper 3)
    drift: float = 0.001  # epsilon_drift: D's loss gains drift x E[D(real)^2] (paper A.1)

    def epochs(self) -> int:
        """Epochs the schedule takes: stable at the first resolution, fade + stable at each next."""
        return self.stable_epochs + (len(self.resolutions) - 1) * (
            self.fade_epochs + self.stable_epochs
        )


@dataclass(frozen=True)
class TrainingConfig:
    # one of LOSS_TYPES; aliases: vanilla (= non_saturating), lsgan, saturating (= minimax), wgan
    loss_type: str = "non_saturating"
    epochs: int = 10
    batch_size: int = 256
    n_critic: int = 1  # discriminator steps per generator step
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    g_betas: tuple[float, float] = (0.5, 0.999)
    d_betas: tuple[float, float] = (0.5, 0.999)
    optimizer: Literal["adam", "rmsprop"] = "adam"  # rmsprop for weight-clipped WGAN
    gp_weight: float = 0.0  # gradient penalty on interpolates (WGAN-GP uses 10)
    gp_target: float = 1.0  # target gradient norm of the penalty
    r1_weight: float = 0.0  # gamma of R1 = gamma/2 E||grad D(real)||^2
    label_smoothing: float = 0.0  # one-sided: real target 1 - s (minimax, non_saturating)
    clip_threshold: float | None = None  # WGAN weight clipping bound c
    instance_noise: float = 0.0  # initial std of noise on D's inputs, in D and G steps
    instance_noise_epochs: int = 0  # epochs over which that std decays linearly to 0
    feature_matching_weight: float = 0.0  # adds ||E f(real) - E f(fake)||^2 to G's loss
    lsgan_targets: tuple[float, float, float] = (0.0, 1.0, 1.0)  # (a fake, b real, c G)
    steps_per_epoch: int | None = None  # default: one pass over the data set
    # Step decay as torch.optim.lr_scheduler.MultiStepLR: both learning rates are multiplied
    # by lr_gamma once for every milestone epoch reached (milestone 8: epochs 9.. run decayed).
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1

    @property
    def loss(self) -> str:
        return _LOSS_ALIASES.get(self.loss_type, self.loss_type)


@dataclass(frozen=True)
class DataConfig:
    name: str = "ring"  # ring, grid, digits, mnist, fashion_mnist, cifar10, npy, parquet, images
    path: str | None = None  # file or folder for user data; data root for mnist/cifar10
    n_points: int = 100_000  # ring/grid: size of the fixed training set
    fresh: bool = False  # ring/grid: sample a fresh batch every step instead
    modes: int | None = None  # ring: number of Gaussians (8); grid: per side (5)
    std: float | None = None  # ring 0.01, grid 0.05 (PacGAN)
    radius: float = 1.0  # ring radius
    image_size: int | None = None  # resize images to this side (e.g. 32 for MNIST + DCGAN)
    download: bool = False  # fetch mnist/fashion_mnist/cifar10 when missing
    column: str | None = None  # parquet: column holding the samples
    label_column: str | None = None  # parquet: optional label column


@dataclass(frozen=True)
class EvalConfig:
    every: int = 1  # quality metrics every N epochs (0: only at the end)
    n_samples: int = 2500  # generated samples per evaluation (VEEGAN and PacGAN use 2,500)
    feature_extractor: str = "classifier"  # FID/KID/IS embedding: classifier or inception
    samples_grid: int = 64  # samples drawn in saved grids


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds of the health monitor (gan_core/monitor.py), each with its unit and source.

    Sources: "001" is ../shared/seeds/001 (GAN training guide), "004" is seeds/004 (training
    dynamics); "ours" means set by measurement here, with the margin that `bench/verdicts.py`
    checks on labelled runs.
    """

    window: int = 5  # epochs a "stuck" condition must hold, and the early-level span (ours)
    # D dominance
    d_strong_real: float = 0.95  # probability losses: D(real) above this ... (004)
    d_strong_fake: float = 0.05  # ... and D(fake) below this is D too strong (004)
    dominance_accuracy: float = 0.95  # any loss: D accuracy at or above this share ... (ours)
    dominance_margin_keep: float = 0.5  # ... with its real-fake margin >= this x early (ours)
    # D balance warnings
    d_weak_real: float = 0.6  # D too weak: D(real) below this ... (004)
    d_weak_fake: float = 0.4  # ... and D(fake) above this (004)
    converged_tol: float = 0.1  # D(real), D(fake) within this of 0.5 is converged (004)
    log2_tol: float = 0.02  # BCE D loss within this of log 2 with chance accuracy (004)
    flat_tol: float = 1e-3  # losses flat: window std below this x |mean| for D and G (004)
    clip_persistent_pct: float = 50.0  # warning: % of critic weights at the clip bound (001)
    dg_ratio_min: float = 0.01  # warning: D/G loss ratio below this (001: possible collapse)
    # gradients
    vanishing_grad: float = 1e-6  # G gradient norm below this vanishes (004)
    vanishing_grad_drop: float = 1e-3  # ... or below this x its early level (3 orders, ours)
    # mode collapse
    collapse_d_loss: tuple[float, float] = (0.72, 0.75)  # BCE D loss stuck in this band (001)
    collapse_d_accuracy_tol: float = 0.05  # "D accuracy stuck at 50%": within this (ours)
    collapse_g_accuracy: float = 0.99  # G fools D this often (001: 99%+)
    collapse_pixvar: float = 0.1  # image PixVar below this, [-1, 1] pixels (001)
    collapse_modes_fraction: float = 0.5  # mixtures: at most this share of modes (ours)
    collapse_spread_ratio: float = 0.5  # samples' mean pairwise distance / data's below (ours)
    collapse_near_fraction: float = 0.5  # ... with this share near a mode (ours)
    collapse_class_coverage: float = 0.5  # images: at most this share of classes seen (ours)
    collapse_max_fid_rel: float = 0.8  # ... by samples nearer the data than noise (ours)
    collapse_d_fake_std: float = 0.01  # D(fake) nearly constant over the window (004)
    collapse_min_distance: float = 0.01  # images: min pairwise sample distance (004)
    collapse_diversity_ratio: float = 0.01  # one point: mean pairwise distance / data's (ours)
    distance_spread: float = 0.1  # warning: pairwise-distance std below this x mean (004)
    # divergence
    weight_explode: float = 50.0  # mean |weight| above this (healthy: 1e-2..1; ours)
    loss_explode: float = 1e4  # |loss| above this (healthy GAN losses: < 1e3; ours)
    divergence_growth: float = 2.0  # growth counts from this x the early level ... (ours)
    divergence_rate: float = 1.5  # ... in epochs grown at least this-fold (geometric; ours)
    # quality
    poor_quality_hq_fraction: float = 0.5  # mixtures: fewer high-quality samples (ours)
    poor_quality_fid_rel: float = 0.5  # images: relative FID above this (ours)
    # images: FID above this (001: > 400 poor, Inception scale only, so off by default)
    poor_quality_fid: float | None = None
    poor_quality_is: float | None = 2.0  # images: IS below this (001: < 2.0 limited)
    # CycleGAN (records with cycle/g_change; thresholds ours, not yet measured on labelled runs)
    cycle_identity_change: float = 0.1  # mean |G(a) - a| below this x mean |a - a'|: G copies
    cycle_constant_ratio: float = 0.05  # G(a)'s pairwise spread below this x domain B's: constant
    cycle_stall_drop: float = 0.02  # cycle loss fell less than this share in the last window ...
    cycle_stall_accuracy: float = 0.9  # ... while D accuracy >= this (D wins)
    # sequence GANs (records with seq/*; thresholds ours, set on the runs of
    # tests/gan_core/test_sequence.py and bench/verdicts.py's sequence cases)
    seq_collapse_precision: float = 0.5  # collapse needs data-like samples: this share of
    # their bigrams seen in the data (an untrained G's near-constant output has ~0) ...
    seq_collapse_unique: float = 0.2  # ... and distinct samples below this share ...
    seq_collapse_tokens: float = 0.5  # ... or distinct tokens below this share of the data's
    seq_collapse_score: float = 0.6  # ... or seq/mode_collapse_score above this (healthy
    # code runs: 0.28-0.36; the code set's padding makes its real n-grams many)
    seq_poor_js_rel: float = 0.5  # bigram JS above this between a real subset (0), noise (1)
    seq_poor_valid: float = 0.05  # code set: share of samples that parse below this
    # phases
    early_real: float = 0.9  # early training: D(real) above this ... (004)
    early_fake: float = 0.1  # ... and D(fake) below this (004)
    w_flat: float = 0.1  # critic phase: window mean moved < this share of its peak (001)


@dataclass(frozen=True)
class RunConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    train: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    cycle: CycleConfig = field(default_factory=CycleConfig)  # family cyclegan only
    sequence: SequenceConfig = field(default_factory=SequenceConfig)  # family sequence only
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)  # progressive only
    family: str = "gan"  # one of FAMILY_NAMES (docs/families.md)
    seed: int = 0  # default for both streams below
    init_seed: int | None = None  # weights and latents; None: seed
    data_seed: int | None = None  # data order and fresh samples; None: seed
    conditional: bool = False  # cGAN: G and D both see the class label
    device: str = "auto"  # auto (cuda when present), cpu, cuda, cuda:N

    @property
    def seeds(self) -> tuple[int, int]:
        """(init_seed, data_seed) with the defaults resolved."""
        init = self.seed if self.init_seed is None else self.init_seed
        data = self.seed if self.data_seed is None else self.data_seed
        return init, data

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None) -> RunConfig:
        """Overlay `values` (nested dicts, as from YAML) onto the defaults and validate.

        The family's own defaults (FAMILY_DEFAULTS) sit between the two.
        """
        values = values or {}
        family = values.get("family") if isinstance(values, dict) else None
        if isinstance(family, str) and family in FAMILY_DEFAULTS:
            values = _merged(FAMILY_DEFAULTS[family], values)
        cfg = _build(cls, values, "")
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **dotted: Any) -> RunConfig:
        """A copy with dotted-path overrides, e.g. replace(**{"train.g_lr": 1e-4})."""
        values = self.to_dict()
        for path, value in dotted.items():
            _set_dotted(values, path, value)
        return RunConfig.from_dict(values)

    def validate(self) -> None:
        """Cross-field rules; raises ConfigError naming the offending value."""
        t, g, d = self.train, self.generator, self.discriminator
        if self.family not in FAMILY_NAMES:
            raise ConfigError(
                f"family: unknown family {self.family!r}; allowed: {', '.join(FAMILY_NAMES)}"
            )
        if t.loss not in LOSS_TYPES:
            raise ConfigError(
                f"train.loss_type: unknown loss {t.loss_type!r}; "
                f"allowed: {', '.join(LOSS_TYPES)} (aliases: {', '.join(_LOSS_ALIASES)})"
            )
        _positive("train.epochs", t.epochs)
        _positive("train.batch_size", t.batch_size)
        _positive("train.n_critic", t.n_critic)
        _positive("train.g_lr", t.g_lr)
        _positive("train.d_lr", t.d_lr)
        if t.steps_per_epoch is not None:
            _positive("train.steps_per_epoch", t.steps_per_epoch)
        if any(m < 1 for m in t.lr_milestones) or list(t.lr_milestones) != sorted(
            set(t.lr_milestones)
        ):
            raise ConfigError(
                f"train.lr_milestones: must be increasing epochs >= 1, got {list(t.lr_milestones)}"
            )
        _positive("train.lr_gamma", t.lr_gamma)
        for name, betas in (("train.g_betas", t.g_betas), ("train.d_betas", t.d_betas)):
            if not all(0.0 <= b < 1.0 for b in betas):
                raise ConfigError(f"{name}: each beta must be in [0, 1), got {betas}")
        for name in ("gp_weight", "r1_weight", "instance_noise", "feature_matching_weight"):
            if getattr(t, name) < 0:
                raise ConfigError(f"train.{name}: must be >= 0, got {getattr(t, name)}")
        if t.gp_target <= 0:
            raise ConfigError(f"train.gp_target: must be > 0, got {t.gp_target}")
        if t.instance_noise_epochs < 0:
            raise ConfigError("train.instance_noise_epochs: must be >= 0")
        if not 0.0 <= t.label_smoothing < 0.5:
            raise ConfigError(
                f"train.label_smoothing: must be in [0, 0.5), got {t.label_smoothing}"
            )
        if t.loss_type == "vanilla":
            warnings.warn(VANILLA_WARNING, UserWarning, stacklevel=2)  # once per process
        if t.label_smoothing and t.loss not in ("minimax", "non_saturating"):
            raise ConfigError(
                f"train.label_smoothing: only applies to minimax and non_saturating losses, "
                f"not {t.loss!r}"
            )
        if t.clip_threshold is not None and t.clip_threshold <= 0:
            raise ConfigError(f"train.clip_threshold: must be > 0 or null, got {t.clip_threshold}")
        if t.gp_weight > 0 and d.norm == "batch":
            raise ConfigError(
                "discriminator.norm: 'batch' couples samples, which breaks the per-sample "
                "gradient penalty (train.gp_weight > 0); use layer, instance or none"
            )
        for name, cfg in (("generator", g), ("discriminator", d)):
            _positive(f"{name}.base_channels", cfg.base_channels)
            _positive(f"{name}.label_embed_dim", cfg.label_embed_dim)
            if not 0.0 <= cfg.dropout < 1.0:
                raise ConfigError(f"{name}.dropout: must be in [0, 1), got {cfg.dropout}")
            if cfg.arch == "mlp" and not cfg.hidden_dims:
                raise ConfigError(f"{name}.hidden_dims: an MLP needs at least one hidden layer")
            if any(h <= 0 for h in cfg.hidden_dims):
                raise ConfigError(f"{name}.hidden_dims: widths must be > 0, got {cfg.hidden_dims}")
        _positive("discriminator.pac", d.pac)
        _positive("discriminator.n_layers", d.n_layers)
        _positive("discriminator.max_channels", d.max_channels)
        _positive("discriminator.multi_scale.num_scales", d.multi_scale.num_scales)
        if d.arch != "patch" and d.multi_scale.num_scales > 1:
            raise ConfigError("discriminator.multi_scale: only for discriminator.arch patch")
        if d.arch == "patch" and (d.minibatch_std or self.conditional):
            raise ConfigError(
                "discriminator.arch: patch is unconditional and has no minibatch_std layer"
            )
        if d.pac > 1:
            if d.arch != "mlp" or self.conditional:
                raise ConfigError(
                    "discriminator.pac: packing is for unconditional MLP discriminators"
                )
            if t.batch_size % d.pac:
                raise ConfigError(
                    f"discriminator.pac: train.batch_size {t.batch_size} is not a "
                    f"multiple of pac {d.pac}"
                )
        _positive("generator.latent_dim", g.latent_dim)
        _positive("data.n_points", self.data.n_points)
        if self.data.image_size is not None:
            _positive("data.image_size", self.data.image_size)
        if self.eval.every < 0:
            raise ConfigError(f"eval.every: must be >= 0, got {self.eval.every}")
        _positive("eval.n_samples", self.eval.n_samples)
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        _validate_cycle(self)
        _validate_sequence(self)
        _validate_progressive(self)
        if self.monitor.window < 1:
            raise ConfigError("monitor.window: must be >= 1")


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, section by section."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _validate_cycle(cfg: RunConfig) -> None:
    """CycleGAN's own rules: its G is set in `cycle`, its D is a patch D, no GAN-only options."""
    c, t = cfg.cycle, cfg.train
    for name in ("lambda_cycle", "lambda_identity"):
        if getattr(c, name) < 0:
            raise ConfigError(f"cycle.{name}: must be >= 0, got {getattr(c, name)}")
    if c.pool_size < 0:
        raise ConfigError(f"cycle.pool_size: must be >= 0 (0: off), got {c.pool_size}")
    _positive("cycle.n_blocks", c.n_blocks)
    _positive("cycle.base_channels", c.base_channels)
    if c.decay_start is not None and not 0 <= c.decay_start <= t.epochs:
        raise ConfigError(
            f"cycle.decay_start: must be in [0, train.epochs = {t.epochs}], got {c.decay_start}"
        )
    if cfg.family != "cyclegan":
        if c != CycleConfig():
            raise ConfigError(f"cycle: only for family cyclegan, not {cfg.family!r}")
        return
    if cfg.generator != GeneratorConfig():
        raise ConfigError(
            "generator: does not apply to family cyclegan (its ResNet generators are set "
            "in cycle.n_blocks and cycle.base_channels)"
        )
    if cfg.discriminator.arch != "patch":
        raise ConfigError(
            f"discriminator.arch: family cyclegan uses patch discriminators, "
            f"got {cfg.discriminator.arch!r}"
        )
    if cfg.conditional:
        raise ConfigError("conditional: family cyclegan translates images; it has no labels")
    for name in ("gp_weight", "r1_weight", "instance_noise", "feature_matching_weight"):
        if getattr(t, name) != 0:
            raise ConfigError(f"train.{name}: does not apply to family cyclegan; set it to 0")
    if t.clip_threshold is not None or t.n_critic != 1:
        raise ConfigError(
            "train.clip_threshold, train.n_critic: family cyclegan takes one D step per G step "
            "and no weight clipping"
        )


def _validate_sequence(cfg: RunConfig) -> None:
    """Sequence GANs: their networks are set in `sequence`; no image-only options."""
    s, t = cfg.sequence, cfg.train
    for name in (
        "length",
        "vocab_size",
        "markov_successors",
        "latent_dim",
        "g_channels",
        "d_channels",
        "n_blocks",
        "kernel_size",
        "power_iterations",
        "ngram",
        "temperature",
    ):
        _positive(f"sequence.{name}", getattr(s, name))
    if s.temperature_final is not None:
        _positive("sequence.temperature_final", s.temperature_final)
    if s.kernel_size % 2 == 0:
        raise ConfigError(f"sequence.kernel_size: must be odd, got {s.kernel_size}")
    if s.markov_successors > s.vocab_size:
        raise ConfigError(
            f"sequence.markov_successors: {s.markov_successors} exceeds vocab_size {s.vocab_size}"
        )
    if s.arch == "gru" and s.spectral_norm:
        raise ConfigError("sequence.spectral_norm: for sequence.arch conv only")
    if s.tokenizer == "regex" and not s.token_pattern:
        raise ConfigError("sequence.token_pattern: tokenizer regex needs a pattern")
    if s.token_pattern:
        try:
            re.compile(s.token_pattern)
        except re.error as err:
            raise ConfigError(f"sequence.token_pattern: not a regex: {err}") from None
    if cfg.family != "sequence":
        if s != SequenceConfig():
            raise ConfigError(f"sequence: only for family sequence, not {cfg.family!r}")
        return
    for name in ("generator", "discriminator"):
        if getattr(cfg, name) != type(getattr(cfg, name))():
            raise ConfigError(
                f"{name}: does not apply to family sequence (its conv networks are set in "
                "sequence.g_channels, d_channels, n_blocks, kernel_size, spectral_norm)"
            )
    if cfg.conditional:
        raise ConfigError("conditional: family sequence has no labels")
    for name in ("instance_noise", "feature_matching_weight"):
        if getattr(t, name) != 0:
            raise ConfigError(f"train.{name}: does not apply to family sequence; set it to 0")


def _validate_progressive(cfg: RunConfig) -> None:
    """Progressive growing: a doubling schedule that fits train.epochs; G and D set in its block."""
    p, t = cfg.progressive, cfg.train
    if cfg.family != "progressive":
        if p != ProgressiveConfig():
            raise ConfigError(f"progressive: only for family progressive, not {cfg.family!r}")
        return
    res = p.resolutions
    if not res or res[0] < 4 or res[0] & (res[0] - 1):
        raise ConfigError(
            f"progressive.resolutions: must start at a power of 2 >= 4, got {list(res)}"
        )
    if any(b != 2 * a for a, b in zip(res, res[1:], strict=False)):
        raise ConfigError(
            f"progressive.resolutions: each side must double the one before, got {list(res)}"
        )
    if p.fade_epochs < 0:
        raise ConfigError(f"progressive.fade_epochs: must be >= 0, got {p.fade_epochs}")
    for name in ("stable_epochs", "latent_dim", "fmap_base", "fmap_max"):
        _positive(f"progressive.{name}", getattr(p, name))
    if p.fmap_base < res[-1]:
        raise ConfigError(
            f"progressive.fmap_base: {p.fmap_base} leaves no channel at {res[-1]}x{res[-1]} "
            f"(channels = fmap_base // side); raise it to at least {res[-1]}"
        )
    if p.batch_sizes and (len(p.batch_sizes) != len(res) or min(p.batch_sizes) < 1):
        raise ConfigError(
            f"progressive.batch_sizes: one batch size > 0 per resolution ({len(res)}), "
            f"got {list(p.batch_sizes)}"
        )
    if p.drift < 0:
        raise ConfigError(f"progressive.drift: must be >= 0, got {p.drift}")
    if t.epochs < p.epochs():
        raise ConfigError(
            f"train.epochs: {t.epochs} is shorter than the progressive schedule, which takes "
            f"{p.epochs()} epochs (stable_epochs + fade_epochs + stable_epochs per growth)"
        )
    if cfg.generator != GeneratorConfig() or cfg.discriminator != DiscriminatorConfig():
        raise ConfigError(
            "generator, discriminator: do not apply to family progressive (its networks are "
            "set in the progressive block)"
        )
    if cfg.conditional:
        raise ConfigError("conditional: family progressive is unconditional")


def _positive(name: str, value: float) -> None:
    if not value > 0 or (isinstance(value, float) and math.isinf(value)):
        raise ConfigError(f"{name}: must be > 0, got {value}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{prefix + unknown[0]}: unknown key; allowed keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        path = prefix + name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, path + ".")
        else:
            kwargs[name] = _coerce(value, hint, path)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Check `value` against a type hint, converting only lossless cases.

    The lossless cases: int -> float, list -> tuple.
    """
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{path}: got {value!r}; allowed: {', '.join(map(str, allowed))}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(f"{path}: must not be NaN")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")  # a bug, not user input


def _set_dotted(values: dict[str, Any], path: str, value: Any) -> None:
    node = values
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"{path}: {part!r} is not a config section")
        node = child
    if parts[-1] not in node:
        raise ConfigError(f"{path}: unknown key {parts[-1]!r}; allowed: {', '.join(sorted(node))}")
    node[parts[-1]] = value


def flatten_config(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted.path: leaf}, tuples kept as values."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, path + "."))
        else:
            flat[path] = value
    return flat
