"""Tune at volume: a grid's packs as a Searcher, and a FIFO scheduler that scans live trials.

A grid sweep's packs reach Tune as a Searcher: one suggestion per pack, in order.

`tune.grid_search(packs)` makes Tune's BasicVariantGenerator deep-copy the whole unresolved
space, the list of every pack included, for each trial it creates: quadratic in the grid
(93 ms per trial at 10,000 packs on the reference machine, about 15 minutes of the driver's
main thread before the first trial starts; `python bench/scale.py --variants`). This
searcher hands out the same configs, `{"trial": pack}`, at a cost per trial that does not
depend on the grid's size.

Tune asks a custom searcher for one pending trial at a time unless it sits behind a
ConcurrencyLimiter, whose limit is then the number of pending trials; `limited` wraps it with
the limit Tune's grid would have had (max(200, 1.1 x the cluster's CPUs), what asks an
autoscaling cluster for nodes) or the user's `execution.max_concurrent`.

Tune's FIFOScheduler looks for the next trial to start by scanning every trial of the
experiment, finished ones included, at every step of the controller: at 7,000 finished
trials that scan was over half of the driver's main thread (py-spy). `LiveFIFOScheduler`
makes the same choice (the first PENDING trial in creation order, else the first PAUSED)
among the trials not yet finished.
"""

from __future__ import annotations

import json
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

__all__ = ["GridPacks", "LiveFIFOScheduler", "limited"]


class GridPacks(Searcher):
    """Suggests `{"trial": pack}` for each pack once, then FINISHED."""

    def __init__(self, packs: list[dict[str, Any]]):
        super().__init__()
        self._packs = packs
        self._next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._next >= len(self._packs):
            return Searcher.FINISHED
        pack = self._packs[self._next]
        self._next += 1
        return {"trial": pack}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """A grid learns nothing from results."""

    def save(self, checkpoint_path: str) -> None:
        """Only the position: `Tuner.restore` rebuilds the searcher (packs included) first."""
        with open(checkpoint_path, "w") as f:
            json.dump({"next": self._next, "packs": len(self._packs)}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            state = json.load(f)
        if state["packs"] != len(self._packs):
            raise ValueError(
                f"{checkpoint_path}: saved for a grid of {state['packs']} packs, "
                f"not {len(self._packs)}"
            )
        self._next = int(state["next"])


def limited(packs: list[dict[str, Any]], max_concurrent: int | None, cluster_cpus: float) -> Any:
    """GridPacks behind the ConcurrencyLimiter that gives it a grid's pending-trial limit."""
    limit = max_concurrent or max(200, int(cluster_cpus * 1.1))
    return ConcurrencyLimiter(GridPacks(packs), max_concurrent=limit)


class LiveFIFOScheduler(FIFOScheduler):
    """FIFO scheduling whose choice costs the number of unfinished trials, not of all trials."""

    def __init__(self) -> None:
        super().__init__()
        self._unfinished: dict[Trial, None] = {}  # creation order (Tune adds trials in order)

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._unfinished[trial] = None

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        paused = None
        for trial in list(self._unfinished):
            if trial.status in (Trial.TERMINATED, Trial.ERROR):
                del self._unfinished[trial]
            elif trial.status == Trial.PENDING:
                return trial
            elif trial.status == Trial.PAUSED and paused is None:
                paused = trial
        return paused
