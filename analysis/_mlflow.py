"""Read a sweep's trials back from MLflow: one child run per trial under a parent run."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlparse

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
_CONNECT_S = 5.0  # a tracking server that does not accept a connection in this long is down
_QUIET = ("mlflow", "alembic")  # their INFO lines are not the triage's output
# One retry after 1 s, 4 s per request: a server that accepts but never answers fails in
# about 9 s (MLflow's defaults retry 7 times with backoff: minutes).
_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "4",
}


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The tracking URI to read from; never one that reading would create.

    MLflow's own default (``sqlite:///mlflow.db`` in the working directory) is used only when
    that file exists: reading an unknown run must not leave a new database behind.

    Raises:
        AnalysisInputError: No store is given and the default one does not exist, a SQLite
            store does not exist, or a tracking server does not accept connections.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        if not Path("mlflow.db").is_file():
            raise AnalysisInputError(
                "no MLflow tracking store: give --tracking-uri or set MLFLOW_TRACKING_URI "
                "(MLflow's default ./mlflow.db does not exist here)"
            )
        uri = f"sqlite:///{Path('mlflow.db').resolve()}"
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = unquote(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else ""
        if path and path != ":memory:" and not Path(path).is_file():
            raise AnalysisInputError(f"MLflow tracking store {uri}: no such database file")
    elif parsed.scheme in ("http", "https"):
        _check_server(uri, parsed)
    return uri


def _check_server(uri: str, parsed) -> None:
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=_CONNECT_S):
            pass
    except OSError as exc:
        raise AnalysisInputError(
            f"MLflow tracking server {uri} is not reachable ({exc.strerror or exc})"
        ) from exc


@contextlib.contextmanager
def _quiet_and_quick():
    """MLflow without its INFO lines and with few, short retries (a dead server fails fast)."""
    saved_env = {k: os.environ.get(k) for k in _HTTP_ENV}
    saved_levels = {name: logging.getLogger(name).level for name in _QUIET}
    os.environ.update(_HTTP_ENV)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


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
    uri = resolve_tracking_uri(tracking_uri)
    with _quiet_and_quick():
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=uri)
        try:
            parent = client.get_run(parent_run_id)
            children = _children(client, parent.info.experiment_id, parent_run_id)
        except MlflowException as exc:
            message = str(exc.message).splitlines()[0]
            raise AnalysisInputError(f"MLflow run {parent_run_id} at {uri}: {message}") from exc
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
        base_params=_shared_params(children),
    )
    return df


def _shared_params(children: list) -> dict:
    """The run config every child shares (flattened dotted keys), for follow-up sweep files.

    The seeds, batch size and LRs are the grid's; a param some child lacks or sets otherwise
    is not shared.
    """
    first = dict(children[0].data.params)
    for run in children[1:]:
        params = run.data.params
        first = {k: v for k, v in first.items() if params.get(k) == v}
    grid_keys = set(_PARAM_ROLES) | {"init_seed", "data_seed"}
    return {k: _config_value(v) for k, v in sorted(first.items()) if k not in grid_keys}


def _config_value(text: str):
    """A logged param back as the config value (sweeps logs lists as JSON, None as 'None')."""
    import yaml

    from analysis._sweepfile import yaml_loader

    if text == "None":
        return None
    try:
        return yaml.load(text, Loader=yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text


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
    uri = resolve_tracking_uri(tracking_uri)
    frames = []
    with _quiet_and_quick():
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        histories = {
            trial_id: {key: client.get_metric_history(run_id, key) for key in keys}
            for trial_id, run_id in run_ids.items()
        }
    for trial_id, by_key in histories.items():
        per_key = {
            key: pd.Series({m.step: m.value for m in history}, dtype=float)
            for key, history in by_key.items()
        }
        frame = pd.DataFrame(per_key)
        if len(frame):
            frame.index.name = "epoch"
            frame = frame.reset_index()
            frame["trial_id"] = trial_id
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
