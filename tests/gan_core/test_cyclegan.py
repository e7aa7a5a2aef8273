"""The cyclegan family: it learns a known map, packs like solo runs, resumes exactly, refuses
what does not apply, and its verdict signals fire on their failures."""

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core import ConfigError, Member, RunConfig, Trainer
from gan_core.config import FAMILY_NAMES
from gan_core.data import DataError
from gan_core.families import FAMILIES
from gan_core.monitor import verdict

SMALL = {
    "family": "cyclegan",
    "data": {"name": "digits_inverted"},
    "cycle": {"n_blocks": 2, "base_channels": 8, "lambda_identity": 0.0},
    "discriminator": {"base_channels": 16, "n_layers": 1},
    "train": {"epochs": 2, "batch_size": 8, "steps_per_epoch": 30, "g_lr": 2e-3, "d_lr": 2e-3},
    "eval": {"every": 0, "n_samples": 300},
}


def _cfg(**sections):
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in SMALL.items()}
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return RunConfig.from_dict(values)


def _plain(history):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in history]


def test_registry_and_config_names_agree():
    assert tuple(FAMILIES) == FAMILY_NAMES


@pytest.mark.slow
def test_generator_learns_the_true_map_over_seeds():
    # Identity baseline: mean |a - T(a)| (translation_error_rel = 1). Measured after 60 steps:
    # 0.25 and 0.26 for seeds 0 and 1.
    trainer = Trainer(_cfg(), members=[Member(s, s) for s in range(3)])
    for _ in trainer.epochs():
        pass
    rel = [h[-1]["quality/translation_error_rel"] for h in trainer.history]
    assert max(rel) < 0.5, rel
    b = trainer.dataset.b[:300]
    baseline_ba = float((b - trainer.dataset.true_inverse(b)).abs().mean())
    for h in trainer.history:
        assert h[-1]["quality/translation_error_ba"] < 0.5 * baseline_ba
        assert h[-1]["loss/cycle_a"] < h[0]["loss/cycle_a"]
    assert {v.status for v in trainer.verdicts()} == {"stable"}


def test_a_pack_equals_solo_runs():
    # Tolerance: grouped convolutions sum in another order than a run alone; Adam's first
    # steps (about lr x sign(grad)) then amplify the rounding, most in instance norms over few
    # pixels. Measured at 16x16 after 3 steps: D's losses agree to 3e-5 relative, every key but
    # the minimum pairwise distance (diversity/min, 1e-2) and G's gradient norms (2e-2) to
    # 1e-3; G's weights to 4e-4 absolute (lr 1e-3: the stem conv's near-zero gradients along
    # what instance norm cancels get lr-sized Adam steps of either sign). At 8x8 (IN over 2x2
    # maps) the same rounding grows to 1e-1 in 3 steps, so this test runs at 16x16.
    cfg = _cfg(train={"epochs": 1, "steps_per_epoch": 3, "batch_size": 4},
               cycle={"pool_size": 5, "lambda_identity": 0.5}, data={"image_size": 16},
               eval={"n_samples": 100})
    pack = Trainer(cfg, members=[Member(0, 0), Member(1, 3, g_lr=1e-3)])
    solo = Trainer(cfg, members=[Member(1, 3, g_lr=1e-3)])
    for _ in zip(pack.epochs(), solo.epochs(), strict=True):
        pass
    ours, theirs = _plain(pack.history[1])[0], _plain(solo.history[0])[0]
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if isinstance(value, float) and key != "diversity/min":
            # grad/g/*: norms of layers feeding instance norm, measured up to 2e-2 apart
            rel = 5e-2 if key.startswith("grad/") else 1e-3
            assert ours[key] == pytest.approx(value, rel=rel, abs=1e-5), key
    assert ours["loss/d_fake"] == pytest.approx(theirs["loss/d_fake"], rel=1e-4)
    for p, q in zip(pack.G.parameters(), solo.G.parameters(), strict=True):
        torch.testing.assert_close(p[1], q[0], rtol=1e-3, atol=1e-3)
    # the same fakes in the same slots (a pool drawing from another stream differs by ~1)
    torch.testing.assert_close(pack.family.pools.b.images[1], solo.family.pools.b.images[0],
                               rtol=1e-2, atol=5e-3)


def test_checkpoint_resume_is_exact(tmp_path):
    cfg = _cfg(train={"epochs": 2, "steps_per_epoch": 4, "batch_size": 4},
               cycle={"pool_size": 3, "lambda_identity": 0.5}, eval={"every": 1, "n_samples": 50})
    straight = Trainer(cfg)
    for _ in straight.epochs():
        pass
    first = Trainer(cfg)
    next(iter(first.epochs()))
    first.save_checkpoint(tmp_path / "c.pt")
    resumed = Trainer(cfg)
    resumed.load_checkpoint(tmp_path / "c.pt")
    for _ in resumed.epochs():
        pass
    assert _plain(resumed.history[0]) == _plain(straight.history[0])
    assert torch.equal(resumed.generate(16), straight.generate(16))
    paths = resumed.save_artifacts(tmp_path / "art")
    assert paths["translations"].exists() and paths["dynamics"].exists()


def test_family_defaults_and_refusals():
    cfg = RunConfig.from_dict({"family": "cyclegan"})
    assert (cfg.train.loss, cfg.train.g_lr, cfg.train.batch_size) == ("least_squares", 2e-4, 1)
    assert cfg.discriminator.arch == "patch" and cfg.data.name == "digits_inverted"
    assert RunConfig.from_dict({"family": "cyclegan", "train": {"loss_type": "hinge"}}).train.loss \
        == "hinge"
    cases = [
        ({"family": "pix2pix"}, "family: unknown family 'pix2pix'; allowed: gan, cyclegan"),
        ({"family": "cyclegan", "generator": {"arch": "dcgan"}}, "generator: does not apply"),
        ({"family": "cyclegan", "discriminator": {"arch": "dcgan"}}, "uses patch"),
        ({"family": "cyclegan", "train": {"gp_weight": 1.0}}, "train.gp_weight: does not apply"),
        ({"cycle": {"pool_size": 10}}, "cycle: only for family cyclegan"),
        ({"family": "cyclegan", "cycle": {"pool_size": -1}}, "cycle.pool_size: must be >= 0"),
    ]
    for values, message in cases:
        with pytest.raises(ConfigError, match=message):
            RunConfig.from_dict(values)
    with pytest.raises(ConfigError, match="'digits_inverted' is a pair of image domains"):
        Trainer(RunConfig.from_dict({"data": {"name": "digits_inverted"}}))
    with pytest.raises(ConfigError, match="family cyclegan needs a pair of image domains"):
        Trainer(_cfg(data={"name": "digits"}))
    with pytest.raises(ConfigError, match="set a multiple of 4"):
        Trainer(_cfg(data={"image_size": 10}))
    with pytest.raises(ValueError, match="no latent space"):
        Trainer(_cfg()).interpolate(torch.zeros(2), torch.ones(2), 3)


def test_learning_rate_is_constant_then_decays_linearly():
    trainer = Trainer(_cfg(train={"epochs": 4}, cycle={"decay_start": 2}))
    factors = [trainer.family.lr_factor(e) for e in range(4)]
    assert factors == [1.0, 1.0, pytest.approx(2 / 3), pytest.approx(1 / 3)]


def _write_images(folder, n, mode, size=8):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size, size) if mode == "L" else (size, size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")


def test_user_domains_from_train_a_and_train_b_folders(tmp_path):
    _write_images(tmp_path / "ok" / "trainA", 6, "L")
    _write_images(tmp_path / "ok" / "trainB", 5, "L")
    cfg = _cfg(data={"name": "unpaired_images", "path": str(tmp_path / "ok")},
               train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2},
               eval={"every": 1, "n_samples": 5})
    trainer = Trainer(cfg)
    assert trainer.dataset.a.shape == (6, 1, 8, 8) and trainer.dataset.b.shape == (5, 1, 8, 8)
    record = next(iter(trainer.epochs()))[0]
    assert "cycle/g_change" in record and "quality/translation_error" not in record
    _write_images(tmp_path / "mixed" / "trainA", 2, "L")
    _write_images(tmp_path / "mixed" / "trainB", 2, "RGB")
    with pytest.raises(DataError, match="trainA images are"):
        Trainer(cfg.replace(**{"data.path": str(tmp_path / "mixed")}))
    _write_images(tmp_path / "half" / "trainA", 2, "L")
    with pytest.raises(DataError, match="trainB: missing"):
        Trainer(cfg.replace(**{"data.path": str(tmp_path / "half")}))


def _history(n, cycle, accuracy, g_change=1.0, ratio=0.8):
    rec = {"loss/d": 0.1, "loss/d_real": 0.05, "loss/d_fake": 0.05, "loss/g": 0.3,
           "d/real": 0.8, "d/fake": 0.2, "grad/g_norm": 1.0, "weights/d_abs_mean": 0.05,
           "weights/g_abs_mean": 0.05}
    out = []
    for i in range(n):
        r = {**rec, "epoch": float(i + 1), "loss/cycle_a": cycle(i), "loss/cycle_b": cycle(i),
             "d/accuracy": accuracy}
        if (i + 1) % 2 == 0:
            r.update({"cycle/g_change": g_change, "diversity/ratio": ratio,
                      "quality/nonfinite": 0.0})
        out.append(r)
    return out


def test_cycle_verdict_signals():
    cfg = RunConfig().monitor
    loss = "least_squares"
    healthy = _history(12, lambda i: 1.0 / (i + 1), 0.7)
    assert verdict(healthy, cfg, loss).status == "stable"
    stalled = verdict(_history(12, lambda i: 0.4, 0.97), cfg, loss)
    assert stalled.status == "d_dominance" and "cycle_stalled" in stalled.problems
    # the same plateau with D not winning is no failure
    assert verdict(_history(12, lambda i: 0.4, 0.7), cfg, loss).status == "stable"
    copied = verdict(_history(12, lambda i: 1.0 / (i + 1), 0.7, g_change=0.02), cfg, loss)
    assert copied.status == "poor_quality" and "g_identity" in copied.problems
    constant = verdict(_history(12, lambda i: 1.0 / (i + 1), 0.7, ratio=0.01), cfg, loss)
    assert constant.status == "mode_collapse" and constant.evidence["diversity/ratio"] == 0.01
