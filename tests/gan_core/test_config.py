import pytest

from gan_core import ConfigError, RunConfig, flatten_config


def test_defaults_build_and_are_frozen():
    cfg = RunConfig.from_dict({})
    assert cfg.train.loss == "non_saturating" and cfg.seeds == (0, 0)
    with pytest.raises(AttributeError):
        cfg.train.batch_size = 3  # frozen


def test_yaml_like_overlay_and_aliases():
    cfg = RunConfig.from_dict({"train": {"loss_type": "lsgan", "g_betas": [0.0, 0.9], "g_lr": 1},
                               "seed": 7, "data_seed": 3})
    assert cfg.train.loss == "least_squares"
    assert cfg.train.g_betas == (0.0, 0.9) and isinstance(cfg.train.g_lr, float)
    assert cfg.seeds == (7, 3)


def test_vanilla_is_the_non_saturating_loss_and_says_so_once():
    import warnings

    from gan_core.losses import get_loss

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: once per place it is raised
        for _ in range(3):
            cfg = RunConfig.from_dict({"train": {"loss_type": "vanilla"}})
    assert cfg.train.loss == "non_saturating"
    assert len(caught) == 1
    assert "'vanilla' is the non-saturating loss" in str(caught[0].message)
    assert "write 'minimax'" in str(caught[0].message)
    assert RunConfig.from_dict({"train": {"loss_type": "saturating"}}).train.loss == "minimax"
    assert get_loss("minimax").g is not get_loss("non_saturating").g


@pytest.mark.parametrize("values, field, hint", [
    ({"train": {"loss_type": "wgan-gp"}}, "train.loss_type", "allowed: minimax, non_saturating"),
    ({"train": {"batch_size": -4}}, "train.batch_size", "must be > 0"),
    ({"train": {"batch_size": 2.5}}, "train.batch_size", "expected an integer"),
    ({"train": {"g_lr": 0}}, "train.g_lr", "must be > 0"),
    ({"train": {"d_lr": -1e-4}}, "train.d_lr", "must be > 0"),
    ({"train": {"optimizer": "sgd"}}, "train.optimizer", "allowed: adam, rmsprop"),
    ({"train": {"bogus": 1}}, "train.bogus", "unknown key"),
    ({"generator": {"arch": "resnet"}}, "generator.arch", "allowed: mlp, dcgan"),
    ({"train": {"label_smoothing": 0.1, "loss_type": "hinge"}}, "train.label_smoothing",
     "only applies"),
    ({"train": {"gp_weight": 10.0}, "discriminator": {"norm": "batch"}}, "discriminator.norm",
     "per-sample"),
    ({"train": {"g_betas": [0.5]}}, "train.g_betas", "expected 2 values"),
    ({"device": "tpu"}, "device", "auto, cpu, cuda"),
    ({"discriminator": {"pac": 3}}, "discriminator.pac", "not a multiple of pac 3"),
    ({"discriminator": {"pac": 2, "arch": "dcgan"}}, "discriminator.pac", "unconditional MLP"),
    ({"train": "fast"}, "train", "expected a mapping"),
])
def test_bad_values_name_the_field(values, field, hint):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(values)
    assert str(err.value).startswith(field) and hint in str(err.value)


def test_architecture_shape_errors_before_training():
    from gan_core import Trainer
    cfg = RunConfig.from_dict(
        {"generator": {"arch": "dcgan"}, "data": {"name": "ring", "n_points": 100}}
    )
    with pytest.raises(ConfigError, match="generator.arch: dcgan needs image data"):
        Trainer(cfg)
    cfg = RunConfig.from_dict(
        {"discriminator": {"arch": "dcgan"}, "data": {"name": "digits", "image_size": 12}}
    )
    with pytest.raises(
        ConfigError, match="discriminator.arch: dcgan makes square images of side 8, 16, 32, 64"
    ):
        Trainer(cfg)
    cfg = RunConfig.from_dict({"train": {"batch_size": 5000}, "data": {"name": "digits"}})
    with pytest.raises(ConfigError, match="train.batch_size"):
        Trainer(cfg)


def test_replace_dotted_and_flatten():
    cfg = RunConfig.from_dict({}).replace(**{"train.g_lr": 1e-4, "seed": 3})
    assert cfg.train.g_lr == 1e-4 and cfg.seed == 3
    with pytest.raises(ConfigError, match="train.nope"):
        cfg.replace(**{"train.nope": 1})
    flat = flatten_config(cfg.to_dict())
    assert flat["train.g_lr"] == 1e-4 and flat["generator.hidden_dims"] == (128, 128)


@pytest.mark.parametrize("side", [8, 16, 32, 64])
def test_dcgan_pair_builds_for_every_supported_size(side):
    import torch

    from gan_core.models import build_models

    cfg = RunConfig.from_dict({"generator": {"arch": "dcgan", "base_channels": 8, "latent_dim": 4},
                               "discriminator": {"arch": "dcgan", "base_channels": 8,
                                                 "norm": "layer"},
                               "conditional": True})
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    g, d = build_models(cfg, (3, side, side), 10, gens)
    labels = torch.randint(0, 10, (2, 5))
    images = g(torch.randn(2, 5, 4), labels)
    assert images.shape == (2, 5, 3, side, side) and images.abs().max() <= 1
    logits, features = d(images, labels)
    assert logits.shape == (2, 5) and features.shape[:2] == (2, 5)
