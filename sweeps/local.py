"""`gansweep train`: one run on this machine, without Ray, with the same outputs as a trial."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from gan_core.config import RunConfig

from .results import epoch_rows
from .spec import SpecError, load_yaml
from .sweepdir import json_safe, write_parquet_atomic

__all__ = ["train_one"]


def train_one(config_path: str | Path, out: str | Path, quiet: bool = False) -> int:
    """Train one RunConfig (a YAML file) into `out`. Returns the exit code.

    Writes config.json, metrics.parquet, metrics.json, verdict.json, summary.json (the
    monitor's run summary), checkpoint.pt and the figures (samples.png, dynamics.png,
    grad_norms.png). Ctrl-C stops after the
    current epoch is lost, keeping everything finished so far.

    Raises:
        SpecError / ConfigError: a bad file or config (exit code 2 in the CLI).
    """
    from gan_core import Trainer
    from gan_core.console import ConsoleSink, format_summary, format_verdict

    cfg = RunConfig.from_dict(_mapping(load_yaml(config_path), config_path))
    out = Path(out)
    if (out / "config.json").exists():
        raise SpecError(f"--out: {out} already holds a run; choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    trainer = Trainer(cfg)
    sink = ConsoleSink(cfg.train.epochs, quiet=quiet,
                       feature_extractor=cfg.eval.feature_extractor)
    sink.start()
    sink.log_params(cfg.to_dict())
    code = 0
    try:
        for records in trainer.epochs():
            sink.log(records[0], trainer.epoch)
    except KeyboardInterrupt:
        print(f"interrupted after epoch {trainer.epoch}; writing what finished to {out}")
        code = 130
    verdict = trainer.verdicts()[0]
    sink.finish(verdict.status)
    _write_outputs(trainer, out)
    if trainer.history[0]:
        print(format_summary(trainer.summaries()[0]))
    print(format_verdict(verdict))
    print(f"results: {out}")
    return code


def _mapping(values: object, path: str | Path) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SpecError(f"{path}: expected a mapping of config sections")
    return values


def _write_outputs(trainer: object, out: Path) -> None:
    history = trainer.history[0]  # type: ignore[attr-defined]
    verdict = trainer.verdicts()[0]  # type: ignore[attr-defined]
    metrics = pd.DataFrame(epoch_rows("run", history)).drop(columns="trial_id", errors="ignore")
    write_parquet_atomic(metrics, out / "metrics.parquet")
    (out / "metrics.json").write_text(json.dumps(json_safe(history), indent=1))
    (out / "verdict.json").write_text(json.dumps(json_safe(verdict.to_dict()), indent=2))
    if history:
        summary = trainer.summaries()[0]  # type: ignore[attr-defined]
        (out / "summary.json").write_text(json.dumps(json_safe(summary.to_dict()), indent=2))
    trainer.save_checkpoint(out / "checkpoint.pt")  # type: ignore[attr-defined]
    trainer.save_artifacts(out)  # type: ignore[attr-defined]
