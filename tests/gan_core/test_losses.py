import math

import pytest
import torch

from gan_core import LOSSES, ConfigError, RunConfig, get_loss

CFG = RunConfig.from_dict({}).train


def test_registry_names_and_unknown_name():
    assert set(LOSSES) == {"minimax", "non_saturating", "wasserstein", "hinge", "least_squares"}
    with pytest.raises(ConfigError, match="allowed: minimax"):
        get_loss("nope")


def test_bce_losses_by_hand():
    real, fake = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, -3.0]])
    def sp(x):  # softplus
        return math.log1p(math.exp(x))

    r, f = LOSSES["minimax"].d_terms(real, fake, CFG)
    assert r.item() == pytest.approx((sp(-2) + sp(1)) / 2, rel=1e-6)
    assert f.item() == pytest.approx((sp(0.5) + sp(-3)) / 2, rel=1e-6)
    # minimax G: E log(1 - D(G(z))) = -E softplus(logit);
    # non-saturating: -E log D = E softplus(-logit)
    assert LOSSES["minimax"].g(fake, CFG).item() == pytest.approx(
        -(sp(0.5) + sp(-3)) / 2, rel=1e-6
    )
    assert LOSSES["non_saturating"].g(fake, CFG).item() == pytest.approx(
        (sp(-0.5) + sp(3)) / 2, rel=1e-6
    )


def test_label_smoothing_is_one_sided():
    cfg = RunConfig.from_dict({"train": {"label_smoothing": 0.1}}).train
    real, fake = torch.tensor([[1.0]]), torch.tensor([[1.0]])
    r, f = LOSSES["non_saturating"].d_terms(real, fake, cfg)
    p = 1 / (1 + math.exp(-1))
    assert r.item() == pytest.approx(-(0.9 * math.log(p) + 0.1 * math.log(1 - p)), rel=1e-6)
    assert f.item() == pytest.approx(-math.log(1 - p), rel=1e-6)  # fakes keep target 0


def test_stable_for_extreme_logits():
    big = torch.tensor([[1e4, -1e4]])
    for loss in LOSSES.values():
        r, f = loss.d_terms(big, -big, CFG)
        assert (
            torch.isfinite(r).all()
            and torch.isfinite(f).all()
            and torch.isfinite(loss.g(big, CFG)).all()
        )


def test_wasserstein_hinge_least_squares_by_hand():
    real, fake = torch.tensor([[2.0, 0.0]]), torch.tensor([[-1.0, 3.0]])
    r, f = LOSSES["wasserstein"].d_terms(real, fake, CFG)
    assert (r.item(), f.item()) == (-1.0, 1.0)
    assert LOSSES["wasserstein"].g(fake, CFG).item() == -1.0
    r, f = LOSSES["hinge"].d_terms(real, fake, CFG)
    assert r.item() == pytest.approx((0 + 1) / 2) and f.item() == pytest.approx((0 + 4) / 2)
    r, f = LOSSES["least_squares"].d_terms(real, fake, CFG)  # a=0, b=1, c=1
    assert r.item() == pytest.approx(0.5 * ((1 + 1) / 2)) and f.item() == pytest.approx(
        0.5 * ((1 + 9) / 2)
    )
    assert LOSSES["least_squares"].g(fake, CFG).item() == pytest.approx(0.5 * ((4 + 4) / 2))


def test_member_axis_reduces_per_member():
    real = torch.tensor([[1.0, 1.0], [-5.0, -5.0]])
    r, _ = LOSSES["wasserstein"].d_terms(real, real, CFG)
    assert r.tolist() == [-1.0, 5.0]
