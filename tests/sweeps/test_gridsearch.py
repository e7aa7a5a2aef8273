"""The grid's packs reach Tune through sweeps.gridsearch: each once, in order, resumable."""

from __future__ import annotations

import pytest
from ray.tune.search import Searcher

from sweeps.gridsearch import GridPacks, limited


def _packs(n: int) -> list[dict]:
    return [{"members": [{"trial_id": f"t{i:04d}", "point": {"seed": i}}]} for i in range(n)]


def test_each_pack_is_suggested_once_in_order_then_finished():
    searcher = GridPacks(_packs(3))
    got = [searcher.suggest(f"ray{i}") for i in range(3)]
    assert [g["trial"]["members"][0]["trial_id"] for g in got] == ["t0000", "t0001", "t0002"]
    assert searcher.suggest("ray3") == Searcher.FINISHED


def test_a_restored_searcher_continues_where_the_saved_one_was(tmp_path):
    saved = GridPacks(_packs(5))
    for i in range(2):
        saved.suggest(f"ray{i}")
    saved.save(str(tmp_path / "state.json"))
    restored = GridPacks(_packs(5))
    restored.restore(str(tmp_path / "state.json"))
    assert restored.suggest("ray2")["trial"]["members"][0]["trial_id"] == "t0002"
    with pytest.raises(ValueError, match="grid of 5 packs, not 4"):
        GridPacks(_packs(4)).restore(str(tmp_path / "state.json"))


def test_pending_trials_are_limited_as_tune_limits_a_grid():
    searcher = limited(_packs(300), None, cluster_cpus=16)
    live = [searcher.suggest(f"ray{i}") for i in range(201)]
    assert all(s is not None for s in live[:200]) and live[200] is None  # max(200, 1.1 x 16)
    searcher.on_trial_complete("ray0")
    assert searcher.suggest("ray201")["trial"]["members"][0]["trial_id"] == "t0200"
    assert limited(_packs(3), 2, cluster_cpus=1000).max_concurrent == 2  # execution.max_concurrent
    assert limited(_packs(3), None, cluster_cpus=1000).max_concurrent == 1100


class _Controller:
    """What FIFOScheduler reads of Tune's controller: the trials in creation order."""

    def __init__(self, trials):
        self.trials = trials

    def get_trials(self):
        return self.trials


def test_live_fifo_chooses_what_tune_fifo_chooses():
    """Same choice as Tune's FIFOScheduler over random status changes (terminal stays)."""
    import random

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler

    from sweeps.gridsearch import LiveFIFOScheduler

    rng = random.Random(0)
    trials = [Trial("standin", stub=True) for _ in range(60)]
    controller, ours, tune_fifo = _Controller([]), LiveFIFOScheduler(), FIFOScheduler()
    statuses = [Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR]
    chosen = set()
    for step in range(600):
        if step % 10 == 0 and len(controller.trials) < len(trials):
            trial = trials[len(controller.trials)]
            controller.trials.append(trial)
            ours.on_trial_add(controller, trial)
        live = [t for t in controller.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]
        if live:
            rng.choice(live).status = rng.choice(statuses)
        expected = tune_fifo.choose_trial_to_run(controller)
        assert ours.choose_trial_to_run(controller) is expected
        chosen.add(expected.status if expected else None)
    assert {Trial.PENDING, Trial.PAUSED} <= chosen  # both branches were exercised
    for trial in controller.trials:
        trial.status = Trial.TERMINATED
    assert ours.choose_trial_to_run(controller) is None
    assert not ours._unfinished  # finished trials are let go
