"""The sweep's parent MLflow run, filled in as MLflow users expect when a sweep ends.

The parent run holds the sweep as a whole: its name says grid or search; its params
are the grid (or search space) and the resolved base config; its metrics are the
trial counts per verdict, status and (after triage) cause, the failure rate and the
best value; `sweep.yaml` is an artifact; its description (`mlflow.note.content`)
says what the quality metrics mean, since MLflow has no per-metric description.

"Best" has one meaning everywhere (console, this run, the Optuna study): the final
value of the objective metric among trials that finished with a value (not errored,
not pruned, not diverged), as the study's COMPLETE trials hold it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from .spec import SweepSpec, load_spec
from .sweepdir import SweepDir

__all__ = ["best_row", "log_sweep_run", "sweep_metrics", "FID_NOTE"]

FID_NOTE = (
    "quality/fid is in the units of the feature extractor the run used (eval."
    "feature_extractor: a small classifier by default, comparable between runs on one data "
    "set only; Inception for the usual FID scale). quality/fid_rel rescales it: 0 is the FID "
    "of held-out real images, 1 the FID of uniform noise."
)
SUCCESS = ("stable",)  # analysis.normalize.DEFAULT_SUCCESS: the verdicts that are no failure


def _excluded(row: dict[str, Any]) -> bool:
    """Errored or pruned: censored, neither success nor failure."""
    return row.get("status") in ("error", "pruned") or row.get("verdict") in ("error", "pruned")


def best_row(rows: list[dict[str, Any]], metric: str, mode: str) -> tuple[str, float] | None:
    """(trial id, value) of the best trial by the final value of `metric`; None if none has one."""
    scored = []
    for row in rows:
        value = row.get(f"final/{metric}")
        if _excluded(row) or row.get("verdict") == "diverged":
            continue
        if isinstance(value, (int, float)) and not math.isnan(value):  # +-inf as in the study
            scored.append((float(value), str(row["trial_id"])))
    if not scored:
        return None
    # Ties go to the earliest trial, as Optuna's best_trial does.
    value, tid = min(scored, key=lambda s: (-s[0] if mode == "max" else s[0], s[1]))
    return tid, value


def sweep_metrics(rows: list[dict[str, Any]], spec: SweepSpec) -> dict[str, float]:
    """Counts per verdict and status, the failure rate and the best value."""
    from .recorder import default_objective

    verdicts = Counter(str(r.get("verdict")) for r in rows if not _excluded(r))
    judged = sum(verdicts.values())
    failed = sum(n for v, n in verdicts.items() if v not in SUCCESS)
    metrics: dict[str, float] = {
        "trials": float(len(rows)),
        "trials/errored": float(sum(r.get("status") == "error" for r in rows)),
        "trials/pruned": float(sum(_excluded(r) and r.get("status") != "error" for r in rows)),
        "trials/failed": float(failed),
        "failure_rate": failed / judged if judged else math.nan,
    }
    metrics.update({f"verdict/{v}": float(n) for v, n in sorted(verdicts.items())})
    metric, mode = default_objective(spec)
    best = best_row(rows, metric, mode)
    if best is not None:
        metrics[f"best/{metric}"] = best[1]
    return metrics


def _params(spec: SweepSpec, mode: str) -> dict[str, str]:
    from gan_core.config import flatten_config

    params = {
        f"base.{k}": _text(v) for k, v in flatten_config(spec.base_config().to_dict()).items()
    }
    if mode == "grid" and spec.grid is not None:
        params.update({f"grid.{k}": _text(v) for k, v in spec.grid.items()})
    if mode == "search" and spec.search is not None:
        params.update(
            {f"search.space.{k}": _text(v.model_dump()) for k, v in spec.search.space.items()}
        )
        params["search.objective"] = _text([o.model_dump() for o in spec.search.objectives])
        params["search.sampler"] = spec.search.sampler
        params["search.scheduler"] = _text(spec.search.scheduler.model_dump())
    return params


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _description(meta: dict[str, Any], metrics: dict[str, float]) -> str:
    counts = ", ".join(
        f"{k[len('verdict/') :]} {v:g}" for k, v in metrics.items() if "verdict/" in k
    )
    return (
        f"gansweep {meta.get('mode', 'grid')} sweep `{meta['name']}` ({meta['sweep_id']}): "
        f"{metrics['trials']:g} trials ({counts or 'no verdicts'}; "
        f"{metrics['trials/errored']:g} errored, {metrics['trials/pruned']:g} pruned). "
        f"Each child run is one trial; the triage report is under triage/.\n\n{FID_NOTE}"
    )


def log_sweep_run(root: Path, cause_counts: dict[str, int] | None = None) -> bool:
    """Fill in the sweep's parent run; False when there is none or tracking is down."""
    from .recorder import say
    from .results import SweepTables
    from .tracking import Tracker

    sweep_dir = SweepDir(root)
    meta = sweep_dir.read_meta()
    if not meta.get("parent_run_id"):
        return False
    tracker = Tracker(meta["tracking_uri"], meta["experiment"], meta["sweep_id"], say=say)
    if not tracker.connect():
        return False
    spec = load_spec(sweep_dir.spec_path)
    mode = meta.get("mode", "grid")
    metrics = sweep_metrics(list(SweepTables(sweep_dir).trials.values()), spec)
    if cause_counts is not None:
        metrics.update({f"cause/{k}": float(v) for k, v in cause_counts.items()})
    tags = {"mlflow.runName": f"{mode}: {meta['name']}", "gansweep.mode": mode}
    tags["mlflow.note.content"] = _description(meta, metrics)
    return tracker.log_parent(
        meta["parent_run_id"], _params(spec, mode), metrics, tags, sweep_dir.spec_path
    )
