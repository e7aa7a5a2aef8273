"""Member-batched layers must equal the same operation applied to each member alone."""

import pytest
import torch
import torch.nn.functional as F

from gan_core.layers import (
    MemberConv2d,
    MemberConvTranspose2d,
    MemberLinear,
    MemberNorm,
    MinibatchStd,
    from_packed,
    to_packed,
)


def gens():
    return [torch.Generator().manual_seed(s) for s in (1, 2, 3)]


def test_linear_equals_per_member_linear():
    layer = MemberLinear(5, 4, gens())
    x = torch.randn(3, 7, 5)
    for m in range(3):
        expected = F.linear(x[m], layer.weight[m], layer.bias[m])
        assert torch.allclose(layer(x)[m], expected, atol=1e-6)


def test_member_init_depends_only_on_its_generator():
    a = MemberLinear(5, 4, [torch.Generator().manual_seed(2)])
    b = MemberLinear(5, 4, gens())
    assert torch.equal(a.weight[0], b.weight[1])


@pytest.mark.parametrize(
    "cls, fn", [(MemberConv2d, F.conv2d), (MemberConvTranspose2d, F.conv_transpose2d)]
)
def test_grouped_convolutions_equal_per_member(cls, fn):
    layer = cls(2, 3, 4, 2, 1, gens())
    x = torch.randn(3, 5, 2, 8, 8)
    out = from_packed(layer(to_packed(x)), 3)
    for m in range(3):
        w = layer.weight[m] if cls is MemberConv2d else layer.weight[m].transpose(0, 1)
        assert torch.allclose(out[m], fn(x[m], w, layer.bias[m], 2, 1), atol=1e-5)


def test_batch_norm_matches_torch_in_train_and_eval():
    norm = MemberNorm("batch", 4, 3)
    refs = [torch.nn.BatchNorm2d(4) for _ in range(3)]
    for _ in range(3):
        x = torch.randn(3, 6, 4, 5, 5) * 3 + 1
        out = from_packed(norm(to_packed(x)), 3)
        for m in range(3):
            assert torch.allclose(out[m], refs[m](x[m]), atol=1e-5)
    norm.eval()
    x = torch.randn(3, 6, 4, 5, 5)
    out = from_packed(norm(to_packed(x)), 3)
    for m in range(3):
        refs[m].eval()
        assert torch.allclose(out[m], refs[m](x[m]), atol=1e-5)


def test_dense_batch_and_layer_norm_match_torch():
    x = torch.randn(3, 8, 4)
    bn, ln = MemberNorm("batch", 4, 3), MemberNorm("layer", 4, 3)
    for m in range(3):
        assert torch.allclose(bn(x)[m], torch.nn.BatchNorm1d(4)(x[m]), atol=1e-5)
        assert torch.allclose(ln(x)[m], torch.nn.LayerNorm(4)(x[m]), atol=1e-5)


def test_spectral_norm_divides_by_each_members_top_singular_value():
    layer = MemberLinear(6, 5, gens(), spectral_norm=True)
    with torch.no_grad():
        layer.weight[1] *= 10  # members with very different norms
    for _ in range(50):  # power iterations converge in training mode
        layer(torch.randn(3, 2, 6))
    normalized = layer.sn(layer.weight)
    for m in range(3):
        assert torch.linalg.matrix_norm(normalized[m], ord=2).item() == pytest.approx(1.0, rel=1e-3)


def test_minibatch_std_is_per_member():
    x = torch.zeros(2, 4, 3)
    x[1] = torch.tensor([0.0, 2.0, 0.0, 2.0]).view(4, 1)
    out = MinibatchStd(2)(x)
    assert out.shape == (2, 4, 4)
    assert out[0, :, 3].tolist() == [0.0] * 4 and out[1, :, 3].tolist() == pytest.approx([1.0] * 4)
