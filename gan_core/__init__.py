"""gan_core: a PyTorch GAN engine that trains one run, or a pack of runs, and judges each.

It knows nothing of Ray, MLflow or Optuna: train a GAN in a notebook with

    from gan_core import RunConfig, Trainer
    trainer = Trainer(RunConfig.from_dict({"data": {"name": "ring"}}))
    for records in trainer.epochs():
        print(records[0]["loss/d"])
    print(trainer.verdicts()[0])
"""

from .config import (
    ConfigError,
    CycleConfig,
    DataConfig,
    DiscriminatorConfig,
    EvalConfig,
    GeneratorConfig,
    MonitorConfig,
    MultiScaleConfig,
    RunConfig,
    TrainingConfig,
    flatten_config,
)
from .data import Dataset, load_dataset
from .domains import DomainPair, load_domains
from .families import FAMILIES
from .losses import LOSSES, get_loss
from .monitor import Verdict, confident_failure, verdict
from .trainer import CheckpointError, Member, Trainer

__all__ = [
    "ConfigError",
    "CheckpointError",
    "CycleConfig",
    "DataConfig",
    "Dataset",
    "DiscriminatorConfig",
    "DomainPair",
    "EvalConfig",
    "FAMILIES",
    "GeneratorConfig",
    "LOSSES",
    "Member",
    "MonitorConfig",
    "MultiScaleConfig",
    "RunConfig",
    "Trainer",
    "TrainingConfig",
    "Verdict",
    "confident_failure",
    "flatten_config",
    "get_loss",
    "load_dataset",
    "load_domains",
    "verdict",
]
