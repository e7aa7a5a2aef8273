"""Family.member_model: every family's member of a pack as a plain one-input module, equal to
the trainer's own samples of that member, holding only its weights; a progressive run stopped
before it grew; a conditional G refused."""

import io

import pytest
import torch

from gan_core import Member, RunConfig, Trainer
from gan_core.families import FAMILIES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUNS = {
    "gan": {
        "data": {"name": "ring", "n_points": 1000},
        "generator": {"hidden_dims": [32, 32]},
        "discriminator": {"hidden_dims": [32, 32]},
        "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 64},
    },
    "cyclegan": {
        "family": "cyclegan",
        "data": {"name": "digits_inverted"},
        "cycle": {"n_blocks": 1, "base_channels": 4, "lambda_identity": 0.0},
        "discriminator": {"base_channels": 8, "n_layers": 1},
        "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4},
    },
    "sequence": {
        "family": "sequence",
        "sequence": {"length": 12, "vocab_size": 8, "markov_successors": 2, "g_channels": 16,
                     "d_channels": 16, "n_blocks": 1, "latent_dim": 16},
        "data": {"n_points": 500},
        "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 16},
    },
    "progressive": {
        "family": "progressive",
        "progressive": {"resolutions": [4, 8], "fade_epochs": 1, "stable_epochs": 1,
                        "latent_dim": 32},
        "data": {"image_size": 8},
        "train": {"epochs": 3, "steps_per_epoch": 2, "batch_size": 8},
    },
}


def _trained(family: str, stop_after: int | None = None) -> Trainer:
    """A pack of two trained to the end, or stopped (as early stopping does) after some epochs."""
    values = {**RUNS[family], "eval": {"every": 0, "n_samples": 100}}
    trainer = Trainer(RunConfig.from_dict(values), members=[Member(0, 0), Member(1, 1)])
    for _ in trainer.epochs():
        if trainer.epoch == stop_after:
            break
    return trainer


def _check_member(trainer: Trainer, member: int, n: int = 5) -> torch.Tensor:
    """The member model on the family's inputs equals trainer.generate; returns its output."""
    model = trainer.family.member_model(member)
    x = trainer.family.model_inputs(n, torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(x)
    expected = trainer.generate(n, member, generator=torch.Generator().manual_seed(3))
    assert out.dtype == expected.dtype and out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=5e-6)
    return out


def test_every_family_has_a_member_model():
    assert set(RUNS) == set(FAMILIES)


@pytest.mark.parametrize("family", list(RUNS))
def test_member_model_is_the_member_alone(family):
    trainer = _trained(family)
    outputs = [_check_member(trainer, m) for m in (0, 1)]
    assert not torch.equal(outputs[0], outputs[1])  # two members, two models
    model = trainer.family.member_model(1)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for tensor in [*model.parameters(), *model.buffers()]:
        assert tensor.shape[0] == 1  # one member on the member axis
    # A copy: training the pack on does not change the model.
    x = trainer.family.model_inputs(5, torch.Generator().manual_seed(3))
    before = model(x)
    # Plain pickling works too (torch.save of the whole module, not only MLflow's cloudpickle).
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), before)
    with torch.no_grad():
        for p in trainer.G.parameters():
            p.add_(1.0)
    assert torch.equal(model(x), before)


def test_sequence_model_gives_token_ids():
    trainer = _trained("sequence")
    ids = _check_member(trainer, 1)
    assert ids.dtype == torch.int64 and ids.shape == (5, 12)
    assert 0 <= int(ids.min()) and int(ids.max()) < trainer.family.vocab


def test_progressive_model_before_growth_enlarges_the_current_resolution():
    """Stopped after the 4 px stage: 8 px images made of 2 x 2 blocks, as `generate` gives."""
    trainer = _trained("progressive", stop_after=1)
    assert trainer.family.resolution() == 4
    out = _check_member(trainer, 0)
    assert out.shape == (5, 1, 8, 8)
    assert torch.equal(out, out[..., ::2, ::2].repeat_interleave(2, -1).repeat_interleave(2, -2))
    assert float(out.abs().max()) <= 1.0


def test_progressive_model_when_grown_is_the_last_resolution():
    trainer = _trained("progressive")
    assert trainer.family.resolution() == 8 and float(trainer.family.G.alpha.min()) == 1.0
    _check_member(trainer, 1)


def test_conditional_gan_has_no_one_input_model():
    values = {**RUNS["gan"], "conditional": True}
    trainer = Trainer(RunConfig.from_dict(values))
    with pytest.raises(ValueError, match="labels"):
        trainer.family.member_model(0)
