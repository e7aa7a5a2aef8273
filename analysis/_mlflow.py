"""Read a sweep's trials back from MLflow: one child run per trial under a parent run."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from analysis.errors import AnalysisInputError

# Run-config params (docs/CONTRACTS.md: flattened dotted keys) -> canonical columns.
_PARAM_ROLES = {
    "seed": "seed",
    "init_seed": "init_seed",
    "data_seed": "data_seed",
    "train.batch_size": "batch_size",
    "batch_size": "batch_size",
    "train.g_lr": "g_lr",
    "train.d_lr": "d_lr",
    "g_lr": "g_lr",
    "d_lr": "d_lr",
    "lr": "lr",
}
_PAGE = 1000


def read_mlflow_sweep(parent_run_id: str, tracking_uri: str | None) -> pd.DataFrame:
    """Child runs of an MLflow parent run as a trials table (trials.parquet's columns).

    Args:
        parent_run_id: The sweep's parent run.
        tracking_uri: Where the runs are tracked (None: MLflow's default).

    Returns:
        One row per child run; ``attrs['group_columns']`` lists the other params that vary.

    Raises:
        AnalysisInputError: The run does not exist or has no child runs.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    uri = client.tracking_uri
    try:
        parent = client.get_run(parent_run_id)
        children = _children(client, parent.info.experiment_id, parent_run_id)
    except MlflowException as exc:
        raise AnalysisInputError(f"MLflow run {parent_run_id} at {uri}: {exc.message}") from exc
    if not children:
        raise AnalysisInputError(
            f"MLflow run {parent_run_id} at {uri} has no child runs (no trials to triage)"
        )
    rows = [_row(run, uri) for run in children]
    df = pd.DataFrame(rows)
    params = sorted({k for run in children for k in run.data.params})
    df.attrs.update(
        source=f"mlflow:{parent_run_id}",
        sweep_name=parent.info.run_name or parent_run_id,
        tracking_uri=uri,
        parent_run_id=parent_run_id,
        group_columns=[p for p in params if p not in _PARAM_ROLES],
    )
    return df


def _children(client, experiment_id: str, parent_run_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=_PAGE,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _param_value(text: str):
    if text in ("None", "null", ""):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return (
        int(number)
        if number.is_integer() and "." not in text and "e" not in text.lower()
        else number
    )


def _row(run, uri: str) -> dict:
    tags, info = run.data.tags, run.info
    row: dict = {}
    for key, text in run.data.params.items():
        row[_PARAM_ROLES.get(key, key)] = _param_value(text)
    for key, value in run.data.metrics.items():
        row[f"final/{key}"] = value
    verdict = tags.get("gansweep.verdict")
    if verdict is None and info.status == "FAILED":
        verdict = "error"
    onset = tags.get("gansweep.onset_epoch")
    row.update(
        trial_id=tags.get("gansweep.trial_id") or info.run_name or info.run_id,
        verdict=verdict,
        onset_epoch=float(onset) if onset not in (None, "", "None") else float("nan"),
        epochs_run=run.data.metrics.get("epoch"),
        mlflow_run_id=info.run_id,
        mlflow_experiment_id=info.experiment_id,
        tracking_uri=uri,
        started_at=_iso(info.start_time),
        finished_at=_iso(info.end_time),
    )
    return row


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc).isoformat(
        timespec="seconds"
    )


def metric_histories(
    run_ids: dict[str, str], tracking_uri: str | None, keys=("loss/d", "loss/g")
) -> pd.DataFrame:
    """Per-epoch history of a few metrics for some trials, as a long epochs table.

    Args:
        run_ids: trial_id -> MLflow run id.
        tracking_uri: Where the runs are tracked.
        keys: Metric keys to fetch (step = epoch).

    Returns:
        Columns ``trial_id``, ``epoch`` and one column per key found.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    frames = []
    for trial_id, run_id in run_ids.items():
        per_key = {}
        for key in keys:
            history = client.get_metric_history(run_id, key)
            per_key[key] = pd.Series({m.step: m.value for m in history}, dtype=float)
        frame = pd.DataFrame(per_key)
        if len(frame):
            frame.index.name = "epoch"
            frame = frame.reset_index()
            frame["trial_id"] = trial_id
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
