"""Model structure that training results depend on: PacGAN grouping, and no bias before BN."""

import pytest
import torch

from gan_core import RunConfig
from gan_core.layers import MemberConv2d, MemberConvTranspose2d, MemberLinear, MemberNorm
from gan_core.models import build_models


def _models(values, sample_shape=(2,), num_classes=0, members=2):
    gens = [torch.Generator().manual_seed(s) for s in range(members)]
    return build_models(RunConfig.from_dict(values), sample_shape, num_classes, gens)


def test_pac_discriminator_judges_consecutive_samples_jointly():
    _, d = _models({"discriminator": {"pac": 2}, "train": {"batch_size": 64}})
    x = torch.randn(2, 6, 2)
    logits, _ = d(x)
    assert logits.shape == (2, 3)  # one logit per pair
    # Logit j reads samples 2j and 2j+1 only, in order: a change of sample 2 moves logit 1 alone.
    moved = x.clone()
    moved[:, 2] += 1.0
    changed = (d(moved)[0] != logits).any(dim=0)
    assert changed.tolist() == [False, True, False]
    swapped = x.clone()
    swapped[:, [2, 3]] = x[:, [3, 2]]  # the same pair in the other order: not a set function
    assert not torch.equal(d(swapped)[0][:, 1], logits[:, 1])
    # Member 1's logits are those of its own weights: its input never reaches member 0.
    other = x.clone()
    other[1] += 1.0
    assert torch.equal(d(other)[0][0], logits[0])


def _biases_before_norms(module):
    """(has bias, norm kind) of every layer directly followed by a MemberNorm."""
    layers = [m for m in module.modules()
              if isinstance(m, (MemberLinear, MemberConv2d, MemberConvTranspose2d, MemberNorm))]
    return [(layer.bias is not None, nxt.kind)
            for layer, nxt in zip(layers, layers[1:], strict=False)
            if isinstance(nxt, MemberNorm) and not isinstance(layer, MemberNorm)]


@pytest.mark.parametrize("values, sample_shape, expected", [
    ({"generator": {"batch_norm": True}, "discriminator": {"norm": "batch"}}, (2,),
     {"g": [(False, "batch")] * 2, "d": [(False, "batch")]}),
    ({"discriminator": {"norm": "layer"}}, (2,), {"g": [], "d": [(True, "layer")]}),
    ({"generator": {"arch": "dcgan", "base_channels": 8},
      "discriminator": {"arch": "dcgan", "base_channels": 8, "norm": "instance"},
      "data": {"name": "digits"}},
     (1, 16, 16), {"g": [(False, "batch")] * 2, "d": [(False, "instance")]}),
])
def test_layers_feeding_batch_norm_have_no_bias(values, sample_shape, expected):
    # The norm subtracts the per-channel mean, so such a bias gets only rounding noise as its
    # gradient, which Adam would turn into lr-sized random steps (and eval-mode BN, whose
    # running mean lags, into noise in the samples). Layer norm keeps its input bias.
    g, d = _models(values, sample_shape)
    assert _biases_before_norms(g) == expected["g"]
    assert _biases_before_norms(d) == expected["d"]
    assert d.head.bias is not None  # layers that feed no norm keep theirs
