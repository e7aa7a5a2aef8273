"""A finished run's member model as an MLflow PyTorch model, for every GAN family.

`mlflow.pyfunc.load_model("runs:/<run id>/generator").predict(x)` runs the member model of
the run's family (`Family.member_model`, docs/families.md): `gan` and `progressive` take
latents `(n, latent_dim)` float32 and return samples in data space, `sequence` takes latents
and returns token ids `(n, L)` int64, `cyclegan` takes domain-A images `(n, C, H, W)` in
[-1, 1] and returns G's translations to domain B.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from gan_core import RunConfig

__all__ = ["GeneratorSampler", "log_member_model", "member_model"]

_EXAMPLES = 4  # inputs in the model's signature example


def member_model(cfg: RunConfig, state: dict[str, Any], position: int) -> tuple[nn.Module, Tensor]:
    """The member at `position` of a gan_core checkpoint dict, and example inputs, on the CPU.

    Rebuilds the family's networks for the checkpoint's pack from `cfg` (and its data, whose
    shapes size them), loads the saved generator side and asks the family for its model:
    no training runs again.

    Raises:
        ValueError: the family has no one-input model for this run (e.g. a conditional G).
    """
    from gan_core.families import Streams, get_family

    family_cls = get_family(cfg.family)
    members = len(state["slots"])

    def fresh() -> list[torch.Generator]:
        return [torch.Generator() for _ in range(members)]

    family = family_cls(
        cfg, family_cls.load_data(cfg), fresh(), Streams(fresh(), fresh()), torch.device("cpu")
    )
    family.networks["generator"].load_state_dict(state["generator"])
    model = family.member_model(position)
    return model, family.model_inputs(_EXAMPLES, torch.Generator().manual_seed(0))


def log_member_model(uri: str, run_id: str, model: nn.Module, example: Tensor) -> None:
    """Log `model` at `generator` of run `run_id`, its signature from `example` and its output."""
    import mlflow
    from mlflow.models import infer_signature

    with torch.no_grad():
        out = model(example).numpy()
    x = example.numpy()
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    # Its warning about pickles is for models from strangers; this one is the sweep's own.
    quiet = logging.getLogger("mlflow.pytorch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with mlflow.start_run(run_id=run_id):
            mlflow.pytorch.log_model(
                model,
                name="generator",
                signature=infer_signature(x, out),
                # The module as a pickle (gan_core's classes): the default 'pt2' graph export
                # needs an example and traceable member layers.
                serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
        quiet.setLevel(level)


class GeneratorSampler(nn.Module):
    """The `gan` family's model as logged before `Family.member_model`: kept so they still load.

    Those pickles name this class; it selects member `slot` of the whole pack's generator.
    """

    def __init__(self, generator: nn.Module, slot: int):
        super().__init__()
        self.generator = generator
        self.slot = slot

    def forward(self, z: Tensor) -> Tensor:
        members = int(getattr(self.generator, "members", 1))
        zs = z.unsqueeze(0).expand(members, -1, -1).contiguous()
        return self.generator(zs)[self.slot]
