"""PatchGAN discriminators: shapes, receptive fields, losses over scales, and learning digits."""

import pytest
import torch

from gan_core import ConfigError, Member, RunConfig, Trainer
from gan_core.losses import LOSSES, over_scales
from gan_core.models import PatchDiscriminator, patch_scale_sizes, receptive_field
from gan_core.seeding import WEIGHTS, make_generator


def _patch_cfg(**d):
    return RunConfig.from_dict({"discriminator": {"arch": "patch", "base_channels": 8, **d}})


@pytest.mark.parametrize(("n_layers", "field"), [(1, 16), (2, 34), (3, 70)])
def test_receptive_field_matches_pix2pix(n_layers, field):
    # pix2pix's default n_layers = 3 is the "70x70 PatchGAN".
    assert receptive_field(n_layers) == field


def test_patch_d_gives_one_logit_per_patch_with_widths_capped():
    cfg = _patch_cfg(n_layers=3, max_channels=16).discriminator
    gens = [make_generator(s, WEIGHTS) for s in (0, 1)]
    d = PatchDiscriminator(cfg, (3, 64, 64), gens)
    logits, features = d(torch.randn(2, 5, 3, 64, 64))
    # 64 -> 32 -> 16 -> 8 (stride 2) -> 7 -> 6 (stride 1): 36 patches per image
    assert d.scale_sizes == (36,) and logits.shape == (2, 5 * 36)
    widths = [m.weight.shape[1] for m in d.modules() if hasattr(m, "stride")]
    assert widths == [8, 16, 16, 16, 1]  # base 8 doubling, capped at 16; one logit channel
    norms = [type(m).__name__ for m in d.nets[0].body]
    assert norms[:2] == ["MemberConv2d", "LeakyReLU"]  # no norm on the first layer
    assert norms.count("MemberNorm") == 3 and features.shape[:2] == (2, 5)


def test_multi_scale_pools_the_input_and_sums_losses_over_scales():
    cfg = _patch_cfg(n_layers=1, multi_scale={"num_scales": 3}).discriminator
    # 32, 16, 8 pixels a side -> 14, 6, 2 patches a side
    assert patch_scale_sizes(cfg, (1, 32, 32)) == (196, 36, 4)
    d = PatchDiscriminator(cfg, (1, 32, 32), [make_generator(0, WEIGHTS)])
    x = torch.randn(1, 4, 1, 32, 32)
    logits, _ = d(x)
    assert logits.shape == (1, 4 * 236)
    per_sample = logits.view(1, 4, 236)
    ls = LOSSES["least_squares"]
    t = RunConfig().train
    summed = over_scales(lambda a: ls.g(a, t), d.scale_sizes, logits)
    by_hand = sum(
        ls.g(part.flatten(1), t) for part in per_sample.split(d.scale_sizes, dim=2)
    )
    torch.testing.assert_close(summed, by_hand)
    # the second scale sees the pooled image: its logits equal net 1 on a pooled input
    pooled = torch.nn.functional.avg_pool2d(x[0], 3, 2, 1, count_include_pad=False)
    direct, _ = d.nets[1](pooled)
    torch.testing.assert_close(per_sample[:, :, 196:232], direct)


def test_patch_d_refuses_shapes_it_cannot_score():
    with pytest.raises(ConfigError, match="discriminator.n_layers: 3 layers"):
        Trainer(RunConfig.from_dict({"data": {"name": "digits"}, "discriminator": {
            "arch": "patch", "n_layers": 3}, "generator": {"arch": "dcgan"}}))
    with pytest.raises(ConfigError, match="patch needs image data"):
        Trainer(_patch_cfg().replace(**{"data.n_points": 256}))
    with pytest.raises(ConfigError, match="multi_scale: only for"):
        RunConfig.from_dict({"discriminator": {"multi_scale": {"num_scales": 2}}})


@pytest.mark.slow
def test_dcgan_g_with_patch_d_learns_digits_over_seeds():
    # Relative FID: 0 = held-out real digits, 1 = uniform noise. Measured: 0.03-0.13 after 4
    # epochs for seeds 0-2 (least squares, lr 2e-3).
    cfg = RunConfig.from_dict({
        "data": {"name": "digits", "image_size": 16},
        "generator": {"arch": "dcgan", "latent_dim": 16, "base_channels": 32},
        "discriminator": {"arch": "patch", "base_channels": 32, "n_layers": 2},
        "train": {"epochs": 4, "batch_size": 64, "g_lr": 2e-3, "d_lr": 2e-3,
                  "loss_type": "least_squares"},
        "eval": {"every": 0, "n_samples": 500},
    })
    trainer = Trainer(cfg, members=[Member(s, s) for s in range(3)])
    for _ in trainer.epochs():
        pass
    fid_rel = [h[-1]["quality/fid_rel"] for h in trainer.history]
    assert max(fid_rel) < 0.4, fid_rel


def test_patch_d_packs_like_solo_runs():
    # The tolerance of test_trainer's pack test (grouped convolutions sum in another order).
    cfg = RunConfig.from_dict({
        "data": {"name": "digits", "image_size": 16},
        "generator": {"arch": "dcgan", "latent_dim": 8, "base_channels": 8},
        "discriminator": {"arch": "patch", "base_channels": 8, "n_layers": 1,
                          "multi_scale": {"num_scales": 2}},
        "train": {"epochs": 1, "batch_size": 16, "steps_per_epoch": 5,
                  "loss_type": "least_squares", "feature_matching_weight": 0.1},
        "eval": {"n_samples": 100},
    })
    pack = Trainer(cfg, members=[Member(1, 11), Member(2, 12, g_lr=5e-4)])
    solo = Trainer(cfg, members=[Member(2, 12, g_lr=5e-4)])
    for _ in zip(pack.epochs(), solo.epochs(), strict=True):
        pass
    for key, value in solo.history[0][-1].items():
        if isinstance(value, float) and not key.startswith("time/"):
            assert pack.history[1][-1][key] == pytest.approx(
                value, rel=1e-4, abs=1e-6, nan_ok=True
            ), key
