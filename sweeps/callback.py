"""The Tune callback that connects a running sweep to its `Recorder` (driver side)."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Any

from ray.tune import Callback

from .recorder import Recorder, say

__all__ = ["SweepCallback", "failure_summary"]


class SweepCallback(Callback):
    """Forwards Tune's trial events to the sweep's Recorder.

    Tune pickles its callbacks with the experiment (to restore them after a killed
    driver), so this object keeps only the sweep directory; the Recorder, with its
    MLflow client and tables, is built in `setup`, in the driver, before any trial.
    """

    def __init__(self, root: str | Path):
        self.root = str(root)
        self._recorder: Recorder | None = None
        self._reconciled = False
        self._stopping = False
        # Set by the runner that will call `log_left_behind` in this process after the fit;
        # a copy elsewhere (Ray Client runs the callbacks on the cluster) names them instead.
        self.log_left_behind_later = False

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]
        self._recorder = None
        self._reconciled = False
        self._stopping = False
        self.log_left_behind_later = False

    @property
    def write_error(self) -> OSError | None:
        """The first write to the sweep directory that failed in this driver, if any."""
        return self._recorder.write_error if self._recorder is not None else None

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = Recorder(Path(self.root))
            self._recorder.connect()
        return self._recorder

    def log_left_behind(self, now: bool) -> None:
        """After the sweep: log the runs MLflow fell behind on (Recorder.log_left_behind)."""
        if self._recorder is not None:
            self._recorder.log_left_behind(now)

    def setup(self, **info: Any) -> None:
        self.recorder  # noqa: B018 - connect to MLflow now, before trials start

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._reconciled:
            self._reconciled = True
            self._reconcile(trials)

    def _reconcile(self, trials: list) -> None:
        """After a restore: record trials Tune finished whose rows a killed driver never wrote."""
        for trial in trials:
            if trial.status not in ("TERMINATED", "ERROR"):
                continue
            ids = [m["trial_id"] for m in trial.config["trial"]["members"]]
            if any(tid not in self.recorder.done for tid in ids):
                error = _error_text(trial) if trial.status == "ERROR" else None
                self.recorder.trial_finished(
                    trial.config,
                    trial.last_result or {},
                    trial.checkpoint,
                    trial.trial_id,
                    error=error,
                )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_started(trial.config, trial.trial_id)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.recorder.trial_result(trial.config, result, trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_finished(
            trial.config, trial.last_result or {}, trial.checkpoint, trial.trial_id
        )
        self._let_go_of_results(trial)
        self._stop_on_write_error()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        ids = ", ".join(m["trial_id"] for m in trial.config["trial"]["members"])
        say(f"{ids}: worker lost ({_first_line(trial)}); retrying from its last checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_finished(
            trial.config,
            trial.last_result or {},
            trial.checkpoint,
            trial.trial_id,
            error=_error_text(trial),
        )
        self._let_go_of_results(trial)
        self._stop_on_write_error()

    def _let_go_of_results(self, trial: Any) -> None:
        """Once a trial's rows are on disk, shrink what Tune keeps of it to the end of the sweep.

        Tune holds every trial's last result (each member's last record and verdict), the
        results of its kept checkpoints, and running statistics of every numeric leaf of its
        results (two deques each), with a cached JSON copy for the experiment snapshot: about
        50 KB of a 20-epoch trial that nothing reads once the tables have it (traced growth
        131 -> 81 KB per trial: `python bench/scale.py --memory`, docs/benchmarks.md). A
        trial not recorded keeps them all: after a restore, the reconciliation writes its
        rows from them.
        """
        ids = [m["trial_id"] for m in trial.config["trial"]["members"]]
        if any(tid not in self.recorder.done for tid in ids):
            return
        meta = trial.run_metadata
        meta.last_result = _slim(meta.last_result)
        meta.metric_analysis, meta.metric_n_steps = {}, {}
        manager = meta.checkpoint_manager
        for kept in getattr(manager, "best_checkpoint_results", None) or []:
            kept.metrics = _slim(kept.metrics)

    def _stop_on_write_error(self) -> None:
        """Results that cannot be written: stop the sweep as Ctrl-C does (trials stay resumable).

        Tune's stop handler (installed for SIGUSR1 while `fit` runs, in the driver's main
        thread) ends the run and saves its state; unfinished trials are left for resume.
        """
        if self.write_error is None or self._stopping:
            return
        self._stopping = True
        stop = signal.getsignal(signal.SIGUSR1)
        if callable(stop) and threading.current_thread() is threading.main_thread():
            stop(signal.SIGUSR1, None)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Counted only when the line is printed: Tune calls this every few milliseconds, and
        # a count over all trials each time would grow with the sweep.
        self.recorder.progress(lambda: sum(t.status == "RUNNING" for t in trials))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if not self._reconciled:  # a restore with nothing left to run has no step
            self._reconciled = True
            self._reconcile(trials)
        complete = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        self.recorder.progress(0, force=True)
        self.recorder.finish(complete, self.log_left_behind_later)


def _error_text(trial: Any) -> str:
    path = trial.error_file
    if path and Path(path).is_file():
        return Path(path).read_text()[-4000:]
    return str(trial.get_error() or "the trial failed")


def _first_line(trial: Any) -> str:
    return failure_summary(_error_text(trial))


_HEAVY_RESULT_KEYS = ("records", "verdicts", "histories", "errors", "config")


def _slim(result: dict[str, Any] | None) -> dict[str, Any]:
    """A Tune result without the members' records, verdicts and config (kept in the tables)."""
    return {k: v for k, v in (result or {}).items() if k not in _HEAVY_RESULT_KEYS}


def failure_summary(text: str) -> str:
    """What failed, in one line, from a Tune error file (Ray's text spans many lines).

    E.g. `its worker process has died (pid 241 on 10.0.0.5): Worker unexpectedly exits
    with a connection error code 2. End of file.`, prefixed with the exception's type when
    the text names one.
    """
    kinds = re.findall(r"(\w+(?:Error|Exception))(?::|$)", text, flags=re.M)
    because = re.search(r"The actor is dead because ([^.]*)", text)
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|\n|$)", text)
    pid, ip = re.search(r"\bpid: (\d+)", text), re.search(r"\bip: (\S+)", text)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not kinds and not because:
        return lines[-1][:300] if lines else "unknown error"
    parts = [f"{kinds[-1]}:" if kinds else "", because.group(1) if because else ""]
    if pid or ip:
        where = " on ".join(m.group(1) for m in (pid, ip) if m)
        parts.append(f"({'pid ' if pid else ''}{where})")
    summary = " ".join(p for p in parts if p)
    if detail:
        summary += f": {detail.group(1).strip()}"
    elif not because:
        summary = next((line for line in reversed(lines) if kinds[-1] in line), summary)
    return summary[:300]
