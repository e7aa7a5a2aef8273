"""MLflow tracking, done from the driver only (layout in docs/CONTRACTS.md).

Trials never talk to MLflow: they report records to Tune, and the driver's Tune
callback feeds `MlflowSink`s. So a sweep on a multi-node cluster works with any
tracking URI (the default SQLite file included), only one process ever writes a
SQLite store, and every MLflow call is in one place that can survive an
unreachable server. Each child run is found by its `gansweep.trial_id` tag before
one is created, which makes resume and `gansweep sync` idempotent.

Nothing a trial's progress waits for goes through MLflow's queue. Metrics, params, tags,
artifacts and the closing of a run are posted to one writer thread, in order, without
waiting: a slow tracking server slows logging, not the sweep. Only finding or creating a
trial's run waits for an answer, on a second thread that nothing queues behind. The writer's
backlog is bounded (`MAX_BACKLOG` metric values): past it, a finished trial's run is left
out of the queue (its row says so) and logged from the tables once the sweep's trials are
done (`Recorder.log_left_behind`, or `gansweep sync`), so a server that cannot keep up costs
no memory.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

__all__ = ["Tracker", "MlflowSink", "resolve_tracking_uri", "is_local_uri", "DEFAULT_URI_HELP"]

DEFAULT_URI_HELP = (
    "MLflow tracking URI. Default: --tracking-uri, else the sweep file's tracking.uri, else "
    "$MLFLOW_TRACKING_URI, else MLflow 3's own default, a SQLite file ./mlflow.db in the "
    "current directory (sqlite:///<cwd>/mlflow.db). Browse it with `mlflow ui` from there."
)

T = TypeVar("T")

_FLUSH_EVERY_S = 2.0  # a running trial's metrics reach MLflow at most this late
MAX_BACKLOG = 400_000  # metric values queued for the writer (about 100 trials of 4,000)


def resolve_tracking_uri(cli_uri: str | None, file_uri: str | None) -> str:
    """--tracking-uri, then the sweep file, then $MLFLOW_TRACKING_URI, then MLflow's default."""
    uri = cli_uri or file_uri or os.environ.get("MLFLOW_TRACKING_URI")
    # MLflow 3's own default (its ./mlruns file store now errors unless allowed). Spelled out
    # rather than asked of mlflow, so that it stays this if a later MLflow changes its mind.
    return _absolute(uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}")


def _absolute(uri: str) -> str:
    """Pin relative local stores to the current directory, so resume works from anywhere."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    if "://" not in uri and not uri.startswith(("databricks", "sqlite:")):
        return Path(uri).resolve().as_uri()
    return uri


def is_local_uri(uri: str) -> bool:
    """A store that only processes on this machine can reach (SQLite or a folder)."""
    return urlparse(uri).scheme in ("", "file", "sqlite")


_CONTEXT_TAGS: dict[str, str] = {}


def context_tags() -> dict[str, str]:
    """MLflow's own run context (user, source, git commit where there is one), resolved once."""
    if not _CONTEXT_TAGS:
        from mlflow.tracking.context.registry import resolve_tags

        _CONTEXT_TAGS.update({k: str(v) for k, v in resolve_tags().items()})
    return dict(_CONTEXT_TAGS)


def run_name(trial_id: str, config: dict[str, Any]) -> str:
    """A child run's readable name: `t0003 seed=1 bs=64 lr=0.005` (both LRs when they differ)."""
    train = config.get("train", {})
    g_lr, d_lr = train.get("g_lr"), train.get("d_lr")
    lrs = f"lr={g_lr:g}" if g_lr == d_lr else f"g_lr={g_lr:g} d_lr={d_lr:g}"
    seeds = f"seed={config.get('seed')}"
    for key in ("init_seed", "data_seed"):
        if config.get(key) is not None:
            seeds += f" {key}={config[key]}"
    return f"{trial_id} {seeds} bs={train.get('batch_size')} {lrs}"


def _set_client_defaults() -> None:
    # MLflow retries a dead server 7 times with exponential backoff (minutes per call);
    # a sweep must notice quickly and go on without it. Users can still override these.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # With a server MLflow prints two "View run/experiment at" lines per closed run: 20,000
    # lines for a 10,000-trial sweep. The sweep prints where its runs are once, at the end.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class Tracker:
    """One sweep's MLflow experiment and parent run, and the factory of its child sinks.

    Every MLflow call goes through `_call`: the first failure marks tracking down for the
    rest of this process (with one message), and later calls become no-ops.
    """

    def __init__(
        self, uri: str, experiment: str, sweep_id: str, say: Callable[[str], None] = print
    ):
        self.uri = uri
        self.experiment = experiment
        self.sweep_id = sweep_id
        self.say = say
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.down_reason: str | None = None
        self.model_verdicts: tuple[str, ...] = ("stable",)  # runs whose generator is logged
        self.sinks: set[MlflowSink] = set()  # open child runs (a finished trial's is dropped)
        self.backlog = 0  # metric values posted to the writer and not written yet
        self._backlog_lock = threading.Lock()
        self._children: dict[str, str] | None = None  # trial id -> child run, once looked up
        self._client: Any = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gansweep-mlflow")
        # Finding or creating a run: waited for, so never queued behind the writer's backlog.
        self._control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gansweep-mlflow-c")

    @property
    def available(self) -> bool:
        return self.down_reason is None and self.experiment_id is not None

    def connect(self) -> bool:
        """Reach the store, create it (SQLite) and the experiment once. False when unreachable."""
        _set_client_defaults()
        from mlflow import MlflowClient

        if urlparse(self.uri).scheme in ("http", "https") and not _http_alive(self.uri):
            self._down(f"no answer from {self.uri}/health")
            return False
        self._client = MlflowClient(tracking_uri=self.uri)
        exp = self._call(lambda c: c.get_experiment_by_name(self.experiment), connecting=True)
        if self.down_reason is None:
            location = _artifact_location(self.uri, self.experiment)
            self.experiment_id = (
                exp.experiment_id
                if exp is not None
                else self._call(
                    lambda c: c.create_experiment(self.experiment, artifact_location=location),
                    connecting=True,
                )
            )
        return self.available

    def _call(self, fn: Callable[[Any], T], connecting: bool = False) -> T | None:
        """Run `fn(client)` on the writer thread, after everything posted before, and wait."""
        return self._writer.submit(self._run, fn, connecting).result()

    def _post(self, fn: Callable[[Any], Any]) -> None:
        """Run `fn(client)` on the writer thread without waiting (errors mark tracking down)."""
        self._writer.submit(self._run, fn, False)

    def _post_counted(self, fn: Callable[[], T], values: int) -> Future[T]:
        """Run `fn()` on the writer thread; its `values` metric values count as backlog."""
        with self._backlog_lock:
            self.backlog += values

        def run() -> T:
            try:
                return fn()
            finally:
                with self._backlog_lock:
                    self.backlog -= values

        return self._writer.submit(run)

    @property
    def behind(self) -> bool:
        """The writer has more than MAX_BACKLOG metric values to write."""
        return self.backlog > MAX_BACKLOG

    def wait(self) -> None:
        """Wait until everything posted so far is written."""
        self._writer.submit(lambda: None).result()

    def _run(self, fn: Callable[[Any], T], connecting: bool) -> T | None:
        if self.down_reason is not None or (self.experiment_id is None and not connecting):
            return None
        try:
            return fn(self._client)
        except Exception as err:  # any failure of the store: go on without it
            self._down(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            return None

    def _down(self, reason: str) -> None:
        if self.down_reason is None:
            self.down_reason = reason
            self.say(
                f"MLflow tracking at {self.uri} is unreachable ({reason}); the sweep goes on "
                "without it and the Parquet results stay complete. Log the runs later with "
                "`gansweep sync SWEEP_DIR`."
            )

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set tags on a run (posted: in order with the rest, without waiting)."""
        from mlflow.entities import RunTag

        entries = [RunTag(k, v) for k, v in tags.items()]
        self._post(lambda c: c.log_batch(run_id, tags=entries))

    def log_parent(
        self,
        run_id: str,
        params: dict[str, str],
        metrics: dict[str, float],
        tags: dict[str, str],
        spec_path: Path,
    ) -> bool:
        """The sweep as a whole on its parent run: params (new ones only: MLflow keeps the
        first value), metrics (step: the number of trials), tags and `sweep.yaml`."""
        from mlflow.entities import Metric, Param
        from mlflow.utils.validation import (
            MAX_METRICS_PER_BATCH,
            MAX_PARAM_VAL_LENGTH,
            MAX_PARAMS_TAGS_PER_BATCH,
        )

        run = self._call(lambda c: c.get_run(run_id))
        if run is None:
            return False
        have = run.data.params
        new = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in params.items() if k not in have]
        for i in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = new[i : i + MAX_PARAMS_TAGS_PER_BATCH]
            self._call(lambda c, chunk=chunk: c.log_batch(run_id, params=chunk))
        now, step = int(time.time() * 1000), int(metrics.get("trials", 0))
        entries = [Metric(k, _number(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(entries), MAX_METRICS_PER_BATCH):
            chunk = entries[i : i + MAX_METRICS_PER_BATCH]
            self._call(lambda c, chunk=chunk: c.log_batch(run_id, metrics=chunk))
        self.set_tags(run_id, tags)
        self._call(lambda c: c.log_artifact(run_id, str(spec_path)))
        return self.available

    def log_report(self, parent_run_id: str, directory: Path) -> bool:
        """Attach a folder (the triage report) to the sweep's parent run under `triage/`."""
        logged = self._call(lambda c: c.log_artifacts(parent_run_id, str(directory), "triage") or 1)
        return bool(logged)

    def ensure_parent(self, run_id: str | None, sweep_name: str) -> str | None:
        """Find (by id, then by tag) or create the sweep's parent run; mark it RUNNING."""
        if not self.available:
            return None
        if run_id is not None and not self._exists(run_id):
            run_id = None  # deleted, or recorded against another store
        run_id = run_id or self._find("tags.`gansweep.kind` = 'sweep'")
        if run_id is None:
            tags = {**context_tags(), "gansweep.sweep_id": self.sweep_id, "gansweep.kind": "sweep"}
            run = self._call(
                lambda c: c.create_run(self.experiment_id, tags=tags, run_name=sweep_name)
            )
            run_id = run.info.run_id if run is not None else None
        else:
            self._call(lambda c: c.update_run(run_id, status="RUNNING"))
        self.parent_run_id = run_id if self.available else None
        return self.parent_run_id

    def _exists(self, run_id: str) -> bool:
        return self._writer.submit(self._exists_here, run_id).result()

    def _exists_here(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_run(run_id)
            return True
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                self._down(f"{type(err).__name__}: {str(err).splitlines()[0]}")
            return False
        except Exception as err:  # an unreachable store
            self._down(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            return False

    def finish_parent(self, status: str = "FINISHED") -> None:
        """Close the parent run; an interrupted sweep's unfinished child runs become KILLED."""
        if status != "FINISHED":
            for sink in list(self.sinks):
                sink.interrupt()
        if self.parent_run_id is not None:
            self._call(lambda c: c.set_terminated(self.parent_run_id, status=status))

    def _find(self, extra_filter: str) -> str | None:
        query = f"tags.`gansweep.sweep_id` = '{self.sweep_id}' and {extra_filter}"
        runs = self._call(
            lambda c: c.search_runs(
                [self.experiment_id], query, max_results=5, order_by=["attributes.start_time ASC"]
            )
        )
        return runs[0].info.run_id if runs else None

    def find_child(self, trial_id: str) -> str | None:
        """The trial's child run, from one look-up of all the sweep's runs (not one per trial:
        a search among thousands of runs per trial start would grow with the sweep)."""
        if self._children is None:
            self._children = self._run(self._all_children, False)
            if self._children is None:
                return None
        return self._children.get(trial_id)

    def _all_children(self, client: Any) -> dict[str, str]:
        query = f"tags.`gansweep.sweep_id` = '{self.sweep_id}' and tags.`gansweep.kind` = 'trial'"
        children: dict[str, str] = {}
        token = None
        while True:
            page = client.search_runs(
                [self.experiment_id],
                query,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            for run in page:  # the first run of a trial is its run
                children.setdefault(run.data.tags.get("gansweep.trial_id", ""), run.info.run_id)
            token = page.token
            if not token:
                return children

    def sink(self, trial_id: str, ray_trial_id: str | None = None) -> MlflowSink:
        sink = MlflowSink(self, trial_id, ray_trial_id)
        self.sinks.add(sink)
        return sink


def _artifact_location(uri: str, experiment: str) -> str | None:
    """SQLite store: artifacts in mlruns/ beside the database file, wherever the driver runs.

    (MLflow would put them in ./mlruns of the current directory, which for the default
    ./mlflow.db is the same place.) Servers and other stores keep their own default.
    """
    if not uri.startswith("sqlite:///"):
        return None
    from urllib.parse import quote

    db = Path(uri[len("sqlite:///") :])
    return f"{(db.parent / 'mlruns').as_uri()}/{quote(experiment, safe='')}"


def _http_alive(uri: str) -> bool:
    import requests

    try:
        return requests.get(uri.rstrip("/") + "/health", timeout=5).ok
    except requests.RequestException:
        return False


class MlflowSink:
    """One trial's child run: start / log_params / log(metrics, step) / finish.

    Hides MLflow's quirks: params are flattened and truncated to MLflow's limits,
    metrics are buffered and posted in one `log_batch` every few seconds, and an epoch
    already in the run (a retried trial, a resumed driver, a second sync) is never logged
    twice. Only `start` waits for MLflow; `finish_async` closes the run on the writer.
    """

    def __init__(self, tracker: Tracker, trial_id: str, ray_trial_id: str | None = None):
        self.tracker = tracker
        self.trial_id = trial_id
        self.ray_trial_id = ray_trial_id
        self.run_id: str | None = None
        self.finished = False
        self._had: set[int] = set()  # steps the run held when this sink found it
        self._logged: set[int] = set()  # steps this sink has posted
        self._params: set[str] = set()
        self._pending: list[Any] = []  # mlflow Metric entries not posted yet
        self._posted_at = time.monotonic()

    def start(self) -> str | None:
        """Find this trial's child run or create it. Returns its id (None when offline)."""
        t = self.tracker
        if self.run_id is not None or not t.available:
            return self.run_id
        return t._control.submit(self._start_here).result()

    def _start_here(self) -> str | None:
        t = self.tracker
        run_id = t.find_child(self.trial_id)
        if run_id is not None:
            run = t._run(lambda c: c.get_run(run_id), False)
            if run is not None:
                self._params = set(run.data.params)
                self.finished = run.info.status in ("FINISHED", "FAILED")
                history = t._run(lambda c: c.get_metric_history(run_id, "epoch"), False) or []
                self._had = {m.step for m in history}
                if not self.finished:
                    t._run(lambda c: c.update_run(run_id, status="RUNNING"), False)
        else:
            tags = {
                **context_tags(),
                "gansweep.sweep_id": t.sweep_id,
                "gansweep.trial_id": self.trial_id,
                "gansweep.kind": "trial",
            }
            if t.parent_run_id:
                tags["mlflow.parentRunId"] = t.parent_run_id
            if self.ray_trial_id:
                tags["gansweep.ray_trial_id"] = self.ray_trial_id
            run = t._run(
                lambda c: c.create_run(t.experiment_id, tags=tags, run_name=self.trial_id), False
            )
            run_id = run.info.run_id if run is not None else None
            if run_id is not None and t._children is not None:
                t._children[self.trial_id] = run_id
        self.run_id = run_id if t.available else None
        return self.run_id

    def log_params(self, config: dict[str, Any]) -> None:
        """The flattened run config, each value truncated to MLflow's limit (posted)."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        from gan_core.config import flatten_config

        if self.run_id is None:
            return
        flat = flatten_config(config)
        for key in ("init_seed", "data_seed"):  # None means "the seed": log the seed in use
            if key in flat and flat[key] is None:
                flat[key] = flat.get("seed")
        params = [
            Param(key, _text(value)[:MAX_PARAM_VAL_LENGTH])
            for key, value in flat.items()
            if key not in self._params
        ]
        if params and not self._params:  # a new run: give it a name a person can read
            self.tracker.set_tags(self.run_id, {"mlflow.runName": run_name(self.trial_id, config)})
        run_id = self.run_id
        for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = params[i : i + MAX_PARAMS_TAGS_PER_BATCH]
            self.tracker._post(lambda c, chunk=chunk: c.log_batch(run_id, params=chunk))
        self._params.update(p.key for p in params)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """One epoch's record: buffered, posted with the others every few seconds.

        With the writer MAX_BACKLOG behind, the record is not queued: `finish` (or `sync`)
        logs it from the trial's history later.
        """
        from mlflow.entities import Metric

        if self.run_id is None or step in self._logged or step in self._had:
            return
        if self.tracker.behind:
            return
        now = int(time.time() * 1000)
        self._pending += [
            Metric(k, _number(v), now, step) for k, v in metrics.items() if _is_number(v)
        ]
        self._logged.add(step)
        if time.monotonic() - self._posted_at >= _FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Post the buffered metrics now (in order, after everything posted before)."""
        entries, self._pending = self._pending, []
        self._posted_at = time.monotonic()
        if entries:
            run_id = self.run_id
            self.tracker._post_counted(lambda: self._write_metrics(run_id, entries), len(entries))

    def _write_metrics(self, run_id: str | None, entries: list[Any]) -> None:
        """On the writer thread: `log_batch` within MLflow's limit per call."""
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        for i in range(0, len(entries), MAX_METRICS_PER_BATCH):
            chunk = entries[i : i + MAX_METRICS_PER_BATCH]
            self.tracker._run(lambda c, chunk=chunk: c.log_batch(run_id, metrics=chunk), False)

    def finish(
        self,
        records: list[dict[str, float]],
        tags: dict[str, str],
        artifacts: Path | None,
        status: str = "FINISHED",
    ) -> bool:
        """Fill in missing epochs, set the outcome tags, upload artifacts, close the run.

        Waits; returns True when the run is complete in MLflow.
        """
        return self.finish_async(records, tags, artifacts, status).result()

    def finish_async(
        self,
        records: list[dict[str, float]],
        tags: dict[str, str],
        artifacts: Path | None,
        status: str = "FINISHED",
        on_done: Callable[[bool], None] | None = None,
    ) -> Future[bool]:
        """`finish` on the writer thread, after everything posted before; `on_done(complete)`
        is called there when it is done."""
        if self.start() is None or self.finished:
            done: Future[bool] = Future()
            done.set_result(self.finished)
            if on_done is not None:
                on_done(self.finished)
            return done
        self.flush()
        values = sum(len(r) for r in records)
        return self.tracker._post_counted(
            lambda: self._finish_here(records, tags, artifacts, status, on_done), values
        )

    def _finish_here(
        self,
        records: list[dict[str, float]],
        tags: dict[str, str],
        artifacts: Path | None,
        status: str,
        on_done: Callable[[bool], None] | None,
    ) -> bool:
        from mlflow.entities import Metric, RunTag

        t = self.tracker
        state = _load_checkpoint(artifacts)
        now = int(time.time() * 1000)
        entries = []
        for record in _with_nans(records, state, artifacts):
            step = int(record.get("epoch", 0))
            if step not in self._had and step not in self._logged:
                entries += [Metric(k, _number(v), now, step) for k, v in record.items()
                            if _is_number(v)]  # fmt: skip
                self._logged.add(step)
        self._write_metrics(self.run_id, entries)
        tags = dict(tags)
        if tags.get("gansweep.pruned") == "true":  # stopped by the scheduler: censored, no failure
            last = max((int(r.get("epoch", 0)) for r in records), default=0)
            tags["gansweep.verdict_at_stop"] = tags.get("gansweep.verdict", "")
            tags.update({"gansweep.status": "pruned", "gansweep.verdict": "pruned"})
            tags["gansweep.pruned_at_epoch"] = str(last)
            status = "FINISHED"
        run_tags = [RunTag(k, v) for k, v in tags.items()]
        t._run(lambda c: c.log_batch(self.run_id, tags=run_tags), False)
        if artifacts is not None and artifacts.is_dir():
            # Every file of the trial's directory: its figures (a family's own among them, e.g.
            # translations.png, samples.txt), config, checkpoint and a sequence run's vocab.json.
            for path in sorted(str(f) for f in artifacts.iterdir() if f.is_file()):
                t._run(lambda c, p=path: c.log_artifact(self.run_id, p), False)
        if tags.get("gansweep.verdict") in t.model_verdicts and state is not None:
            self._log_model(state, artifacts)
        t._run(lambda c: c.set_terminated(self.run_id, status=status), False)
        self.finished = t.available
        if on_done is not None:
            on_done(self.finished)
        return self.finished

    def _log_model(self, state: dict[str, Any], artifacts: Path | None) -> None:
        """The generator as an MLflow model; a failure here costs the model, not the tracking."""
        if not self.tracker.available or self.run_id is None:
            return
        try:
            _log_generator(self.tracker.uri, self.run_id, state, artifacts)
        except Exception as err:  # e.g. a model the PyTorch flavour cannot save
            first = str(err).splitlines()[0] if str(err) else ""
            self.tracker.say(f"{self.trial_id}: generator not logged as a model ({first})")

    def interrupt(self) -> None:
        """Mark a run that was still going when the sweep stopped as KILLED (resume reopens it).

        Decided on the writer thread: a run whose `finish` is queued before is not killed."""
        if self.run_id is None:
            return
        self.flush()

        def kill(client: Any) -> None:
            if not self.finished:
                client.set_terminated(self.run_id, status="KILLED")

        self.tracker._post(kill)


def _load_checkpoint(artifacts: Path | None) -> dict[str, Any] | None:
    """The trial's gan_core checkpoint (weights and every member's history), if it has one."""
    path = artifacts / "checkpoint.pt" if artifacts is not None else None
    if path is None or not path.is_file():
        return None
    try:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable: the metrics from the tables are all there is
        return None
    return state if isinstance(state, dict) and "history" in state else None


def _member_index(state: dict[str, Any], config: dict[str, Any]) -> int | None:
    """Which member of a (packed) checkpoint a run's config is: by seeds and learning rates."""
    members = state.get("members") or []
    if len(members) == 1:
        return 0
    seed = config.get("seed")
    init = seed if config.get("init_seed") is None else config["init_seed"]
    data = seed if config.get("data_seed") is None else config["data_seed"]
    train = config.get("train", {})
    found = [
        i
        for i, m in enumerate(members)
        if (m.get("init_seed"), m.get("data_seed")) == (init, data)
        and m.get("g_lr") in (None, train.get("g_lr"))
        and m.get("d_lr") in (None, train.get("d_lr"))
    ]
    return found[0] if len(found) == 1 else None


def _with_nans(
    records: list[dict[str, float]], state: dict[str, Any] | None, artifacts: Path | None
) -> list[dict[str, float]]:
    """Records with the NaN values the Parquet tables cannot tell from missing ones restored.

    NaN is a result (a diverged run's losses); the checkpoint's history holds it exactly.
    """
    config_path = artifacts / "config.json" if artifacts is not None else None
    if state is None or config_path is None or not config_path.is_file():
        return records
    index = _member_index(state, json.loads(config_path.read_text()))
    if index is None:
        return records
    exact = {int(r.get("epoch", 0)): r for r in state["history"][index]}
    out = []
    for record in records:
        saved = exact.get(int(record.get("epoch", 0)), {})
        nans = {
            k: v for k, v in saved.items() if k not in record and isinstance(v, float) and v != v
        }
        out.append({**record, **nans})
    return out


def _log_generator(uri: str, run_id: str, state: dict[str, Any], artifacts: Path | None) -> bool:
    """Log the run's member model (its family's, sweeps/sampler.py) as an MLflow PyTorch model."""
    from gan_core import RunConfig

    assert artifacts is not None
    config = json.loads((artifacts / "config.json").read_text())
    index = _member_index(state, config)
    cfg = RunConfig.from_dict(state["config"])
    if index is None or index not in state["slots"] or cfg.conditional:
        return False  # left the pack before the end, or needs labels: no sampler to give
    from .sampler import log_member_model, member_model

    model, example = member_model(cfg, state, state["slots"].index(index))
    log_member_model(uri, run_id, model, example)
    return True


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> float:
    value = float(value)
    return value if not math.isinf(value) else math.copysign(1.7976931348623157e308, value)
