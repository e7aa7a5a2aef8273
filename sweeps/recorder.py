"""Driver-side bookkeeping of a sweep: every trial event goes to the sinks from here.

`Recorder` turns Tune's trial events into the sweep's outputs: per-epoch records go
to each trial's MLflow sink as they arrive; when a trial ends, its final checkpoint
(history, verdict, figures, trainer state) is copied into `SWEEP_DIR/trials/<id>/`,
its rows are appended to the Parquet tables as a new part (so a killed sweep keeps what
finished) and its MLflow child run is completed. It runs only in the driver.

Its memory does not grow with the sweep's epochs: epoch records are kept only for trials
still running, and of each finished trial only what the progress line needs (status,
verdict, objective value, MLflow run id).
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .console import eta_seconds, running_text, show_progress
from .parent import best_row
from .results import SweepTables, TrialOutcome, epoch_rows, trial_row
from .spec import SweepSpec, load_spec
from .sweepdir import SweepDir
from .tracking import MlflowSink, Tracker
from .trial import (
    CKPT_MEMBERS,
    CKPT_STATE,
    CKPT_TRAINER,
    member_ids,
    pack_configs,
    result_records,
)

__all__ = [
    "Recorder",
    "say",
    "now_iso",
    "sync_outcomes",
    "default_objective",
    "describe_os_error",
]

_PROGRESS_EVERY_S = 15.0
_SYNC_CHUNK = 256  # trials whose epochs `sync` reads at a time
_TAKE_LOGGED_EVERY_S = 2.0  # run ids of completed MLflow runs reach the tables this late


def say(message: str) -> None:
    """The sweep's console voice (stdout, flushed; Ray's own logs go to stderr)."""
    print(f"[gansweep] {message}", file=sys.stdout, flush=True)


@contextlib.contextmanager
def on_sigterm(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` answers SIGTERM while in this block, then the previous handler again.

    Only the main thread can set signal handlers; elsewhere the block runs without it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: a scheduler's stop ends what the block is doing at once."""
    raise KeyboardInterrupt


def now_iso() -> str:
    """The current UTC time as an ISO timestamp (seconds), as stored in trials.parquet."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_objective(spec: SweepSpec) -> tuple[str, str]:
    """The metric shown as `best so far`: the search objective, else modes or FID."""
    if spec.search is not None:
        return spec.search.objective.metric, spec.search.objective.mode
    if spec.base_config().data.name in ("ring", "grid"):
        return "quality/modes", "max"
    return "quality/fid", "min"


class Recorder:
    """Everything the driver does with trial events for one sweep directory."""

    def __init__(self, root: Path):
        self.dir = SweepDir(root)
        self.spec = load_spec(self.dir.spec_path)
        self.meta = self.dir.read_meta()
        self.tables = SweepTables(self.dir)
        self.metric, self.mode = default_objective(self.spec)
        self.done = self._done_on_disk()  # finished trials: what the progress line needs
        self.epochs_done = 0  # epochs of finished trials this driver saw (for time left)
        self.tracker = Tracker(
            self.meta["tracking_uri"], self.meta["experiment"], self.meta["sweep_id"], say
        )
        self.tracker.model_verdicts = tuple(self.spec.tracking.log_model)
        self.sinks: dict[str, MlflowSink] = {}
        self.observed: dict[str, dict[int, dict[str, float]]] = {}
        self.errors: dict[str, str] = {}
        self.started: dict[str, str] = {}
        self.starts: dict[str, int] = {}  # trial starts this driver saw (retries included)
        self.write_error: OSError | None = None  # the first failed write to the sweep directory
        # Rows whose MLflow run is being completed by the writer thread, and its answers.
        self.awaiting: dict[str, dict[str, Any]] = {}
        self.left_behind: list[str] = []  # finished, unlogged while MLflow could not keep up
        self._logged: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()
        self._took_at = time.monotonic()
        self._last_progress = time.monotonic()
        self._t0 = time.monotonic()

    def _done_on_disk(self) -> dict[str, dict[str, Any]]:
        columns = ["status", "verdict", "mlflow_run_id", f"final/{self.metric}"]
        return {str(r["trial_id"]): r for r in self.tables.read("trials", columns).to_pylist()}

    def _summary(self, row: dict[str, Any]) -> dict[str, Any]:
        keys = ("trial_id", "status", "verdict", "mlflow_run_id", f"final/{self.metric}")
        return {k: row.get(k) for k in keys}

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Create the store (once, here in the driver) and the sweep's parent run.

        A resumed sweep's parts (its driver was killed) are compacted first.
        """
        try:
            self.tables.flush()
        except OSError as err:
            self._write_failed(err)
        if self.tracker.connect():
            parent = self.tracker.ensure_parent(self.meta.get("parent_run_id"), self.meta["name"])
            if parent != self.meta.get("parent_run_id"):
                self.meta = self.dir.update_meta(parent_run_id=parent)

    def trial_started(self, config: dict[str, Any], ray_trial_id: str) -> None:
        _, _, cfgs = pack_configs(self.spec, config)
        for tid, cfg in zip(member_ids(config), cfgs, strict=True):
            self.started.setdefault(tid, now_iso())  # the first start; retries count below
            self.starts[tid] = self.starts.get(tid, 0) + 1
            self.observed.setdefault(tid, {})
            sink = self.sinks.get(tid) or self.tracker.sink(tid, ray_trial_id)
            self.sinks[tid] = sink
            sink.start()
            sink.log_params(cfg.to_dict())

    def trial_result(
        self, config: dict[str, Any], result: dict[str, Any], ray_trial_id: str
    ) -> None:
        for tid, record in result_records(result).items():
            epoch = int(record.get("epoch", result.get("epoch", 0)))
            self.observed.setdefault(tid, {})[epoch] = record
            sink = self.sinks.get(tid)
            if sink is None:  # a resumed driver meets a trial already running
                self.trial_started(config, ray_trial_id)
                sink = self.sinks[tid]
            sink.log(record, epoch)
        self.errors.update(result.get("errors") or {})

    def trial_finished(
        self,
        config: dict[str, Any],
        last_result: dict[str, Any],
        checkpoint: Any,
        ray_trial_id: str,
        error: str | None = None,
    ) -> list[TrialOutcome]:
        """Record every member of a trial that ended (completed, stopped early or failed).

        A write error (read-only, full or immutable folder) is not the trial's fault: it is
        reported once and the sweep stops; the trial's checkpoint keeps its results, from
        which `gansweep resume` writes the rows later.
        """
        stored: list[tuple[TrialOutcome, dict[str, Any]]] = []
        _, _, cfgs = pack_configs(self.spec, config)
        try:
            with _checkpoint_dir(checkpoint) as ckpt:
                for tid, cfg in zip(member_ids(config), cfgs, strict=True):
                    old = self.done.get(tid)
                    if old is not None and old.get("status") != "error":
                        # Already recorded: a restored experiment whose last snapshot predates
                        # the end of this trial resumes it from its final checkpoint, reports again.
                        self.observed.pop(tid, None)
                        self._complete_recorded_run(tid, old)
                        continue
                    outcome = self._outcome(tid, cfg, last_result, ckpt, ray_trial_id, error)
                    if old is not None and outcome.status == "error":
                        continue  # an error row is replaced only by the rerun's result
                    stored.append((outcome, self._store(outcome)))
            self.tables.append()  # one part for the trial (all members of a pack)
            self.tables.compact_trials_if_due()
        except OSError as err:
            self._write_failed(err)
            return []
        for outcome, summary in stored:
            self._recorded(outcome, summary)
        return [outcome for outcome, _ in stored]

    def _complete_recorded_run(self, tid: str, summary: dict[str, Any]) -> None:
        """A trial whose rows a killed driver wrote before its MLflow run id reached the table:
        complete that run from the rows on disk, as `sync` would (a no-op if it is complete)."""
        sink = self.sinks.pop(tid, None)
        if sink is None:
            return
        self.tracker.sinks.discard(sink)
        if summary.get("mlflow_run_id") or sink.run_id is None or self.tracker.behind:
            return
        rows = self.tables.read("trials", trial_ids=[tid]).to_pylist()
        if not rows:
            return
        outcome = _outcome_from_row(self.dir, rows[0], self.tables.epochs_of([tid]).get(tid, []))
        self._complete_async(sink, outcome, {**rows[0], "tracking_uri": self.tracker.uri})

    def _write_failed(self, err: OSError) -> None:
        self.tables.discard()  # rows not on disk are rebuilt by resume
        if self.write_error is None:
            self.write_error = err
            say(
                f"write error: {describe_os_error(err)}; stopping the sweep (nothing is lost: "
                f"finished trials keep their results in their checkpoints)"
            )

    def _outcome(
        self,
        tid: str,
        cfg: Any,
        last: dict[str, Any],
        ckpt: Path | None,
        ray_trial_id: str,
        error: str | None,
    ) -> TrialOutcome:
        target = self.dir.trial_dir(tid)
        target.mkdir(parents=True, exist_ok=True)
        (target / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        outcome = TrialOutcome(
            trial_id=tid,
            config=cfg.to_dict(),
            ray_trial_id=ray_trial_id,
            # The trial's own record of its first start survives a resumed driver.
            started_at=last.get("started_at") or self.started.get(tid),
            finished_at=now_iso(),
            resumed_from=int(last.get("resumed_from") or 0),
            attempts=max(int(last.get("attempt") or 1), self.starts.get(tid, 1)),
        )
        member = ckpt / CKPT_MEMBERS / tid if ckpt is not None else None
        if ckpt is not None and (ckpt / CKPT_TRAINER).is_file():
            shutil.copy2(ckpt / CKPT_TRAINER, target / "checkpoint.pt")
        message = error or self.errors.get(tid) or (last.get("errors") or {}).get(tid)
        if member is not None and member.is_dir() and message is None:
            for path in member.iterdir():
                if path.name not in ("history.json", "verdict.json"):
                    shutil.copy2(path, target / path.name)
            outcome.records = json.loads((member / "history.json").read_text())
            outcome.verdict = json.loads((member / "verdict.json").read_text())
            return outcome
        outcome.records = self._partial_history(tid, ckpt, last)
        if message is not None:
            outcome.status, outcome.error = "error", message.strip()
            return outcome
        # Stopped early by the search scheduler: judge the epochs it ran.
        from gan_core import verdict

        outcome.pruned, outcome.status = True, "pruned"
        outcome.verdict = verdict(outcome.records, cfg.monitor, cfg.train.loss).to_dict()
        return outcome

    def _partial_history(
        self, tid: str, ckpt: Path | None, last: dict[str, Any]
    ) -> list[dict[str, float]]:
        by_epoch: dict[int, dict[str, float]] = {}
        for record in _checkpoint_history(ckpt, tid):
            by_epoch[int(record["epoch"])] = record
        for record in (last.get("histories") or {}).get(tid, []):
            by_epoch[int(record["epoch"])] = record
        by_epoch.update(self.observed.get(tid, {}))
        return [by_epoch[e] for e in sorted(by_epoch)]

    def _store(self, outcome: TrialOutcome) -> dict[str, Any]:
        """Complete the trial's MLflow run and stage its rows (`trial_finished` writes them).

        Returns what the progress line keeps of the trial."""
        tid = outcome.trial_id
        sink = self.sinks.get(tid) or self.tracker.sink(tid, outcome.ray_trial_id)
        self.sinks[tid] = sink
        sink.start()
        sink.log_params(outcome.config)
        outcome.tracking_uri = self.tracker.uri
        row = trial_row(outcome, self.meta.get("varied", []))  # mlflow_run_id: once complete
        if sink.run_id is not None and not self.tracker.behind:  # else left for `sync`
            self._complete_async(sink, outcome, row)
        self.tables.upsert(row, epoch_rows(tid, outcome.records))
        return self._summary(row)

    def _complete_async(self, sink: MlflowSink, outcome: TrialOutcome, row: dict[str, Any]) -> None:
        """Complete the trial's run on the writer; `row` gets its run id when that is done."""
        tid = outcome.trial_id
        self.awaiting[tid] = row
        sink.finish_async(
            outcome.records,
            outcome_tags(outcome),
            self.dir.trial_dir(tid),
            "FAILED" if outcome.status == "error" else "FINISHED",
            on_done=self._when_logged(tid, sink.run_id),
        )

    def _when_logged(self, tid: str, run_id: str) -> Callable[[bool], None]:
        """What the writer thread calls when the trial's run is complete (or failed)."""
        return lambda complete: self._logged.put((tid, run_id if complete else None))

    def take_logged(self, force: bool = False) -> None:
        """Write the run ids of trials whose MLflow run is now complete (every 2 s at most)."""
        if not force and time.monotonic() - self._took_at < _TAKE_LOGGED_EVERY_S:
            return
        self._took_at = time.monotonic()
        while not self._logged.empty():
            tid, run_id = self._logged.get()
            row = self.awaiting.pop(tid, None)
            if row is not None and run_id is not None and self.write_error is None:
                self.tables.upsert({**row, "mlflow_run_id": run_id}, None)
                if tid in self.done:
                    self.done[tid]["mlflow_run_id"] = run_id
        if self.write_error is None:
            try:
                self.tables.append()
            except OSError as err:
                self._write_failed(err)

    def _recorded(self, outcome: TrialOutcome, summary: dict[str, Any]) -> None:
        """Its rows are on disk: keep its summary, let go of its records and its sink."""
        tid = outcome.trial_id
        self.done[tid] = summary
        self.epochs_done += len(self.observed.pop(tid, {}))
        self.started.pop(tid, None)
        self.starts.pop(tid, None)
        sink = self.sinks.pop(tid, None)
        if sink is not None:
            self.tracker.sinks.discard(sink)
        if show_progress() or outcome.status == "error":
            say(_finished_line(outcome, len(self.done), self.meta.get("n_trials")))

    # ------------------------------------------------------------------ progress
    def progress(self, running: int | Callable[[], int], force: bool = False) -> None:
        """Every 15 s: finished/running/failed, verdicts, best so far and time left.

        `running` may be a function, called only when the line is printed."""
        self.take_logged(force)
        if not force and time.monotonic() - self._last_progress < _PROGRESS_EVERY_S:
            return
        if not force and not show_progress():
            return
        self._last_progress = time.monotonic()
        say(self.status_line(running() if callable(running) else running))

    def status_line(self, running: int, elapsed: bool = True) -> str:
        rows = list(self.done.values())
        total = self.meta.get("n_trials")
        errors = sum(r["status"] == "error" for r in rows)
        pruned = sum(r["status"] == "pruned" for r in rows)
        verdicts = Counter(r["verdict"] for r in rows if r["status"] == "ok")
        parts = [
            f"{len(rows)}{f'/{total}' if total else ''} finished ({errors} error"
            + (f", {pruned} pruned)" if pruned else ")"),
            f"{running} running",
            ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) or "no verdicts yet",
        ]
        best = self._best(rows)
        if best:
            parts.append(best)
        finished = self.done
        live = {t: max(e, default=0) for t, e in self.observed.items() if t not in finished}
        lives = running_text(live, self.spec.base_config().train.epochs)
        if lives and running:
            parts.append(lives)
        eta = self._eta(total, len(rows), live) if elapsed else None
        if eta is not None:
            parts.append(f"~{_minutes(eta)} left")
        if elapsed:
            parts.append(f"elapsed {_minutes(time.monotonic() - self._t0)}")
        return " | ".join(parts)

    def _eta(self, total: int | None, finished: int, live: dict[str, int]) -> float | None:
        """Time left from the epoch rate of this driver (moves between completions)."""
        if not total or finished >= total:
            return None
        epochs = self.spec.base_config().train.epochs
        done = self.epochs_done + sum(len(e) for e in self.observed.values())
        waiting = max(0, total - finished - len(live))
        left = sum(epochs - e for e in live.values()) + waiting * epochs
        return eta_seconds(done, left, time.monotonic() - self._t0)

    def _best(self, rows: list[dict[str, Any]]) -> str | None:
        best = best_row(rows, self.metric, self.mode)  # the study's: final values of complete runs
        return None if best is None else f"best {best[0]} {self.metric}={best[1]:.4g}"

    def unlogged(self) -> list[str]:
        return sorted(t for t, r in self.done.items() if not r.get("mlflow_run_id"))

    def finish(self, complete: bool, log_left_behind_later: bool = False) -> None:
        """End of this driver's part: compact the tables, close the parent run, tell what was
        not logged (or, with `log_left_behind_later`, keep it for `log_left_behind`)."""
        for sink in self.sinks.values():  # unfinished trials (an interrupted sweep) keep theirs
            sink.flush()
        if self.awaiting:
            say(f"waiting for MLflow to complete {len(self.awaiting)} run(s)")
        self.tracker.wait()
        self.take_logged(force=True)
        if self.write_error is None:
            try:
                self.tables.flush()
            except OSError as err:
                self._write_failed(err)
        self.tracker.finish_parent("FINISHED" if complete else "KILLED")
        # Trials left behind while MLflow could not keep up are logged once the sweep's
        # processes are gone (`log_left_behind`); with tracking down, `sync` logs them later.
        if log_left_behind_later and self.tracker.available:
            self.left_behind = self.unlogged()
        else:
            self._say_unlogged(self.unlogged())

    def log_left_behind(self, now: bool = True) -> None:
        """Log the trials MLflow fell behind on, as `gansweep sync` would (Ctrl-C or SIGTERM
        leaves the rest to it); called by the runner after the sweep's processes stopped.
        A sweep that was stopped (`now` false) only names them for `sync`."""
        if not self.left_behind or not now:
            self._say_unlogged(self.left_behind)
            return
        say(
            f"MLflow fell {len(self.left_behind)} run(s) behind the sweep; logging them now "
            f"(Ctrl-C leaves the rest for `gansweep sync {self.dir.root}`)"
        )
        total, t0 = len(self.left_behind), time.monotonic()
        shown = [t0]

        def progress(logged: int) -> None:
            if time.monotonic() - shown[0] >= _PROGRESS_EVERY_S and show_progress():
                shown[0] = time.monotonic()
                left = eta_seconds(logged, total - logged, shown[0] - t0) or 0.0
                say(f"MLflow: {logged}/{total} run(s) logged | ~{_minutes(left)} left")

        try:
            with on_sigterm(_interrupt):
                sync_outcomes(self.dir.root, self.tracker, set(self.left_behind), progress)
        except KeyboardInterrupt:
            say("stopped logging to MLflow")
        done = self.tables.read("trials", ["mlflow_run_id"]).to_pylist()
        logged = {r["trial_id"] for r in done if r.get("mlflow_run_id")}
        self.left_behind = [t for t in self.left_behind if t not in logged]
        self._say_unlogged(self.left_behind)

    def _say_unlogged(self, missing: list[str]) -> None:
        if missing:
            shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            say(
                f"{len(missing)} trial(s) not logged to MLflow ({self.tracker.uri}): {shown}. "
                f"Log them later with: gansweep sync {self.dir.root}"
            )


def describe_os_error(err: OSError) -> str:
    """`cannot write PATH (reason)` for an OSError, in one line."""
    where = f" {err.filename}" if err.filename else ""
    return f"cannot write{where} ({err.strerror or err})"


def outcome_tags(outcome: TrialOutcome) -> dict[str, str]:
    verdict = outcome.verdict or {}
    onset = verdict.get("onset_epoch")
    tags = {
        "gansweep.verdict": (
            "error" if outcome.status == "error" else verdict.get("status", "error")
        ),
        "gansweep.onset_epoch": "" if onset is None else str(onset),
        "gansweep.status": outcome.status,
    }
    if outcome.ray_trial_id:
        tags["gansweep.ray_trial_id"] = outcome.ray_trial_id
    if outcome.pruned:
        tags["gansweep.pruned"] = "true"
    if verdict.get("stopped_early"):
        tags["gansweep.stopped_early"] = "true"
    if outcome.error:
        tags["gansweep.error"] = outcome.error[:5000]
    return tags


def _finished_line(outcome: TrialOutcome, done: int, total: int | None) -> str:
    what = outcome.error.splitlines()[0] if outcome.error else (outcome.verdict or {}).get("status")
    if outcome.status == "error":
        what = f"ERROR {what}"
    elif outcome.pruned:
        what = f"pruned at epoch {len(outcome.records)} by the scheduler (so far: {what})"
    elif (outcome.verdict or {}).get("stopped_early"):
        what = f"stopped early (confident failure), {what}"
    count = f"{done}/{total}" if total else str(done)
    resumed = f" (resumed at epoch {outcome.resumed_from})" if outcome.resumed_from else ""
    return (
        f"{outcome.trial_id} done after {len(outcome.records)} epochs{resumed}: {what}  [{count}]"
    )


def _minutes(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


class _checkpoint_dir:
    """Context manager: a Tune checkpoint as a local folder (None when there is none)."""

    def __init__(self, checkpoint: Any):
        self.checkpoint = checkpoint
        self._ctx: Any = None

    def __enter__(self) -> Path | None:
        if self.checkpoint is None:
            return None
        self._ctx = self.checkpoint.as_directory()
        return Path(self._ctx.__enter__())

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def _checkpoint_history(ckpt: Path | None, tid: str) -> list[dict[str, float]]:
    """A member's history from a periodic checkpoint (gan_core's checkpoint keeps it)."""
    if ckpt is None or not (ckpt / CKPT_TRAINER).is_file():
        return []
    try:
        import torch

        state = json.loads((ckpt / CKPT_STATE).read_text())
        index = state["trial_ids"].index(tid)
        data = torch.load(ckpt / CKPT_TRAINER, map_location="cpu", weights_only=True)
        return list(data["history"][index])
    except Exception:  # an unreadable checkpoint only loses epochs the driver may still have
        return []


def sync_outcomes(
    root: Path,
    tracker: Tracker,
    only: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Log every trial of the tables (or those in `only`) that MLflow lacks; (newly logged,
    already there). `progress(newly logged)` is called after each trial.

    Epoch rows are read for `_SYNC_CHUNK` trials at a time, so memory stays bounded; the run
    ids found or made reach the tables even when an interrupt ends the loop.
    """
    sweep_dir = SweepDir(root)
    tables = SweepTables(sweep_dir)
    rows = [(t, r) for t, r in tables.trials.items() if only is None or t in only]
    try:
        return _sync_rows(sweep_dir, tables, rows, tracker, progress)
    finally:
        tables.flush()


def _sync_rows(
    sweep_dir: SweepDir,
    tables: SweepTables,
    rows: list[tuple[str, dict[str, Any]]],
    tracker: Tracker,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    new = old = 0
    for i in range(0, len(rows), _SYNC_CHUNK):
        chunk = rows[i : i + _SYNC_CHUNK]
        sinks = {tid: tracker.sink(tid, None) for tid, _ in chunk}
        if any(sink.start() is None for sink in sinks.values()):
            break
        missing = [tid for tid, sink in sinks.items() if not sink.finished]
        epochs = tables.epochs_of(missing) if missing else {}
        for tid, row in chunk:
            sink = sinks[tid]
            if sink.finished:
                old += 1
            else:
                outcome = _outcome_from_row(sweep_dir, row, epochs.get(tid, []))
                sink.log_params(outcome.config)
                if not sink.finish(
                    outcome.records,
                    outcome_tags(outcome),
                    sweep_dir.trial_dir(tid),
                    "FAILED" if outcome.status == "error" else "FINISHED",
                ):
                    break
                new += 1
                if progress is not None:
                    progress(new)
            tables.set_run_id(tid, sink.run_id, tracker.uri)
            tracker.sinks.discard(sink)
        if tracker.down_reason:
            break
    return new, old


def _outcome_from_row(
    sweep_dir: SweepDir, row: dict[str, Any], epochs: list[dict[str, Any]]
) -> TrialOutcome:
    tid = row["trial_id"]
    config_path = sweep_dir.trial_dir(tid) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    records = [{k: v for k, v in r.items() if k != "trial_id"} for r in epochs]
    onset = row.get("onset_epoch")
    verdict = {
        "status": row.get("verdict"),
        "onset_epoch": None
        if onset is None or (isinstance(onset, float) and math.isnan(onset))
        else int(onset),
        "evidence": json.loads(row.get("evidence") or "{}"),
    }
    return TrialOutcome(
        trial_id=tid,
        config=config,
        records=records,
        verdict=verdict,
        status=row.get("status", "ok"),
        pruned=row.get("status") == "pruned",
        error=row.get("error"),
        started_at=row.get("started_at"),
        finished_at=row.get("finished_at"),
    )
