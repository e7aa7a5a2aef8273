"""The Ray Tune trainable: one Tune trial trains a pack of one or more members.

A trial's config is `{"trial": {"members": [{"trial_id", "point"}, ...]}}`; each
member's RunConfig is the sweep's base with its grid point (or search suggestion)
applied by `spec.resolve_point`, exactly as the driver resolves it. Grid points that
differ only in seeds and learning rates share a pack when `execution.pack_seeds` (by default
`auto`, sweeps/packing.py) makes packs:
gan_core's Trainer trains them side by side on its member axis, and each member is
still its own row and MLflow run.

A member stops before the others when it diverges, or, with `early_stop.enabled`, once
gan_core's monitor calls its failure confident (`confident_failure`); its outputs are
written in that epoch (its weights leave the pack at the next one) and carried in every
later checkpoint. A pack of one that stops ends its trial, freeing its resources.

Every epoch the trial reports `{"epoch", "objective", "records"}`, the records
`{trial_id: record}` as one JSON string (`result_records` reads them back): Tune keeps
running statistics of every numeric leaf of a result, which for nested records cost about
120 KB of driver memory per trial, and a string costs none.
It saves a Tune checkpoint every `checkpoint_every` epochs and at the end; the final
checkpoint also carries each member's history, verdict, config and figures, which
the driver copies into the sweep directory. A training failure (NaN, collapse) is a
verdict, not an exception. A Python exception in training is caught and reported as
the member's error, so Tune does not retry it: retries (FailureConfig) are for
infrastructure faults only (a lost node or worker), which never reach this code.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from .spec import PACK_FIELDS, SweepSpec, resolve_point

__all__ = [
    "train_trial",
    "pack_configs",
    "member_ids",
    "objective_value",
    "result_records",
    "CKPT_TRAINER",
]

CKPT_TRAINER = "trainer.pt"  # the gan_core checkpoint inside a Tune checkpoint
CKPT_STATE = "state.json"
CKPT_MEMBERS = "members"  # members/<trial_id>/{history,verdict,config}.json + figures


def member_ids(config: dict[str, Any]) -> list[str]:
    """The gansweep trial ids of the members a Tune trial trains, in member order."""
    return [m["trial_id"] for m in config["trial"]["members"]]


def result_records(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A result's `{trial_id: record}` (a JSON string since issue 20; a dict before)."""
    records = result.get("records") or {}
    return json.loads(records) if isinstance(records, str) else records


def pack_configs(
    spec: SweepSpec, config: dict[str, Any]
) -> tuple[Any, list[Any] | None, list[Any]]:
    """The shared RunConfig, the Member list (None for a pack of one) and each member's config."""
    from gan_core import Member

    base = spec.base_config()
    cfgs = [resolve_point(spec, base, m["point"], "trial") for m in config["trial"]["members"]]
    if len(cfgs) == 1:
        return cfgs[0], None, cfgs
    shared = [_shared(c) for c in cfgs]
    if any(s != shared[0] for s in shared[1:]):
        raise ValueError("pack members must differ only in seeds and learning rates")
    members = [Member(*c.seeds, g_lr=c.train.g_lr, d_lr=c.train.d_lr) for c in cfgs]
    return cfgs[0], members, cfgs


def _shared(cfg: Any) -> dict[str, Any]:
    from gan_core import flatten_config

    flat = flatten_config(cfg.to_dict())
    return {k: v for k, v in flat.items() if k not in PACK_FIELDS}


def objective_value(history: list[dict[str, float]], metric: str | None) -> float:
    """The latest value of the objective, NaN once the run diverged or before it is measured."""
    if not metric or not history:
        return math.nan
    last = history[-1]
    if any(
        isinstance(v, float) and math.isnan(v) for k, v in last.items() if k.startswith("loss/")
    ):
        return math.nan
    for record in reversed(history):
        if metric in record:
            return float(record[metric])
    return math.nan


def _quiet_stop_in_ignored_context(unraisable: Any) -> None:
    """Drop the traceback of a stop that landed where Python cannot raise, print the rest.

    When a sweep stops, Ray ends the trial's worker with SIGTERM and its handler raises
    SystemExit; if that lands inside a weakref callback or `__del__`, Python prints
    "Exception ignored in ..." with a traceback, which Ray forwards to the user's console
    next to gansweep's one-line reason for stopping. Only that exit is silenced (Ray still
    ends the worker); every other unraisable exception is printed as Python would.
    """
    if not issubclass(unraisable.exc_type, (SystemExit, KeyboardInterrupt)):
        sys.__unraisablehook__(unraisable)


def train_trial(config: dict[str, Any], spec: dict[str, Any]) -> None:
    """Tune function trainable. `spec` (the sweep file, via tune.with_parameters)."""
    from ray import tune

    # Ray logs every persisted and restored checkpoint at INFO; the driver prints progress.
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.unraisablehook = _quiet_stop_in_ignored_context
    sweep = SweepSpec.model_validate(spec)
    ids = member_ids(config)
    metric = sweep.search.objective.metric if sweep.search else None
    trainer = None
    # Outputs of members that stopped before the trial ends (their weights leave the pack).
    stash = Path(tempfile.mkdtemp(prefix="gansweep-members-"))
    try:
        import torch

        # Ray sets OMP_NUM_THREADS to the trial's CPUs; torch must not use more.
        torch.set_num_threads(max(1, int(sweep.resources.cpus)))
        cfg, members, cfgs = pack_configs(sweep, config)
        from gan_core import Trainer

        trainer = Trainer(cfg, members=members)
        run = _restore(trainer, stash)
        _train(trainer, sweep, ids, cfgs, metric, stash, run)
    except Exception as err:  # a bug or bad input in training: a result, never retried
        from ray.exceptions import RayError

        if isinstance(err, RayError):
            raise
        message = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"
        records = trainer.history if trainer is not None else [[] for _ in ids]
        tune.report(
            {
                "epoch": trainer.epoch if trainer is not None else 0,
                "objective": math.nan,
                "records": "{}",
                "final": True,
                "errors": {tid: message for tid in ids},
                "histories": {tid: h for tid, h in zip(ids, records, strict=True)},
            }
        )
    finally:
        shutil.rmtree(stash, ignore_errors=True)


def _restore(trainer: Any, stash: Path) -> dict[str, Any]:
    """Load Tune's checkpoint of this trial, if any (a retry or a resumed sweep).

    Members that had already stopped come back with their saved outputs into `stash`.
    Returns what every result carries about this run of the trial: the epoch it resumed
    from, when the trial first started (kept across retries and resumes) and which
    attempt this is (1: the first start; each retry or resume from a checkpoint adds one).
    """
    from datetime import datetime, timezone

    from ray import tune

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")  # as recorder.now_iso
    run: dict[str, Any] = {"resumed_from": 0, "started_at": now, "attempt": 1}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.load_checkpoint(Path(directory) / CKPT_TRAINER)
            saved = Path(directory) / CKPT_MEMBERS
            if saved.is_dir():
                shutil.copytree(saved, stash, dirs_exist_ok=True)
            state = json.loads((Path(directory) / CKPT_STATE).read_text())
        run.update(
            resumed_from=trainer.epoch,
            started_at=state.get("started_at") or run["started_at"],
            attempt=int(state.get("attempt", 1)) + 1,
        )
    return run


def _stop_confident_failures(trainer: Any, sweep: SweepSpec, records: dict[int, Any]) -> set[int]:
    """Failure-aware early stopping (spec.early_stop): mask members whose failure is confident."""
    from gan_core import confident_failure

    rule = sweep.early_stop
    if not rule.enabled:
        return set()
    modes = trainer.dataset.centers
    stopped = set()
    for i in records:
        if not trainer.active[i]:
            continue
        found = confident_failure(
            trainer.history[i],
            trainer.cfg.monitor,
            trainer.cfg.train.loss,
            n_modes=None if modes is None else len(modes),
            patience=rule.patience,
            statuses=rule.on,
        )
        if found is not None:
            trainer.stop_member(i)
            stopped.add(i)
    return stopped


def _train(
    trainer: Any,
    sweep: SweepSpec,
    ids: list[str],
    cfgs: list[Any],
    metric: str | None,
    stash: Path,
    run: dict[str, Any],
) -> None:
    from ray import tune

    total = trainer.cfg.train.epochs
    every = sweep.checkpoint_every
    reported_final = False
    for records in trainer.epochs():
        early = _stop_confident_failures(trainer, sweep, records)
        # Members that stopped this epoch (diverged, or a confident failure) leave the pack when
        # the next epoch starts: write their outputs now, while their weights are still there.
        ended = [i for i in records if not trainer.active[i] and not (stash / ids[i]).exists()]
        for i in ended:
            verdict = _member_verdict(trainer, i, i in early)
            _write_member(trainer, stash / ids[i], i, cfgs[i], verdict)
        final = trainer.epoch >= total or not any(trainer.active)
        result = {
            "epoch": trainer.epoch,
            "objective": objective_value(trainer.history[0], metric),
            "records": json.dumps({ids[i]: rec for i, rec in records.items()}),
            "final": final,
            **run,
        }
        if final:
            result.update(_final_fields(trainer, ids, stash))
        if final or ended or trainer.epoch % every == 0:
            _report_with_checkpoint(trainer, result, ids, cfgs, stash, final)
        else:
            tune.report(result)
        reported_final = final
    if not reported_final:  # restored at (or past) the end: report the outcome again
        result = {
            "epoch": trainer.epoch,
            "objective": objective_value(trainer.history[0], metric),
            "records": "{}",
            "final": True,
            **run,
            **_final_fields(trainer, ids, stash),
        }
        _report_with_checkpoint(trainer, result, ids, cfgs, stash, True)


def _member_verdict(trainer: Any, index: int, stopped_early: bool) -> dict[str, Any]:
    return {**trainer.verdicts()[index].to_dict(), "stopped_early": stopped_early}


def _final_fields(trainer: Any, ids: list[str], stash: Path) -> dict[str, Any]:
    verdicts = {}
    for i, tid in enumerate(ids):
        saved = stash / tid / "verdict.json"
        verdicts[tid] = (
            json.loads(saved.read_text()) if saved.is_file() else _member_verdict(trainer, i, False)
        )
    return {"verdict": verdicts[ids[0]]["status"], "verdicts": verdicts}


def _report_with_checkpoint(
    trainer: Any,
    result: dict[str, Any],
    ids: list[str],
    cfgs: list[Any],
    stash: Path,
    final: bool,
) -> None:
    """Report with a Tune checkpoint: trainer state plus every finished member's outputs."""
    from ray import tune

    directory = Path(tempfile.mkdtemp(prefix="gansweep-ckpt-"))
    try:
        trainer.save_checkpoint(directory / CKPT_TRAINER)
        state = {
            "epoch": trainer.epoch,
            "trial_ids": ids,
            "final": final,
            "started_at": result.get("started_at"),
            "attempt": result.get("attempt", 1),
        }
        (directory / CKPT_STATE).write_text(json.dumps(state))
        if stash.is_dir():
            shutil.copytree(stash, directory / CKPT_MEMBERS)
        if final:
            for i, (tid, cfg) in enumerate(zip(ids, cfgs, strict=True)):
                if not (directory / CKPT_MEMBERS / tid).exists():
                    _write_member(
                        trainer, directory / CKPT_MEMBERS / tid, i, cfg, result["verdicts"][tid]
                    )
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(directory)))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write_member(
    trainer: Any, directory: Path, index: int, cfg: Any, verdict: dict[str, Any]
) -> None:
    directory.mkdir(parents=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        trainer.save_artifacts(directory, member=index)
    except Exception as err:  # a figure must not turn a finished run into an error
        (directory / "artifacts_error.txt").write_text(f"{type(err).__name__}: {err}")
    (directory / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    (directory / "history.json").write_text(json.dumps(trainer.history[index]))
    (directory / "verdict.json").write_text(json.dumps(verdict))
