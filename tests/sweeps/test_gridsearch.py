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
