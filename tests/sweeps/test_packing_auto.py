"""`execution.pack_seeds: auto`: the choice from measured step times, and what --dry-run says."""

from __future__ import annotations

import json

import pytest

from sweeps.packing import (
    MIN_GAIN,
    GroupCost,
    cache_path,
    choose_pack_size,
    estimate_wall_s,
    resolve_pack_size,
)
from sweeps.runner import format_plan, plan_run
from sweeps.spec import expand_grid, parse_spec

from .conftest import sweep_dict, write_sweep

TWO_CORES = [{"CPU": 2.0, "GPU": 0.0}]


def _linear(runs: int, fixed_ms: float, per_member_ms: float, largest: int) -> GroupCost:
    """A group whose measured step costs `fixed + m * per_member` (at 1 and `largest` members)."""
    step = {m: (fixed_ms + m * per_member_ms) / 1e3 for m in (1, largest)}
    return GroupCost(runs=runs, steps=1000, step_s=step)


def test_launch_bound_model_packs_so_every_slot_stays_busy():
    # Issue 6's measured ring step at batch 32: 1.94 ms per step plus 0.52 ms per member.
    choice = choose_pack_size([_linear(16, 1.94, 0.52, 16)], slots=2)
    # 2 trials of 8 (both cores busy) beat 1 of 16 (a core idle) and 16 of 1.
    assert choice.size == 8
    assert choice.estimates[8] < choice.estimates[16] < choice.estimates[1]


def test_per_member_cost_dominating_means_no_packing():
    # A large model: the fixed per-op cost is noise beside each member's arithmetic.
    choice = choose_pack_size([_linear(16, 0.05, 40.0, 16)], slots=2)
    assert choice.size == 1
    assert "not faster" in choice.reason
    # Within MIN_GAIN of unpacked, as measured: not worth the risk of being slower.
    assert min(choice.estimates.values()) > choice.estimates[1] * (1 - MIN_GAIN)


def test_packing_that_measures_slower_than_separate_runs_is_never_chosen():
    # Per-member cost that grows with the pack (e.g. a pack that no longer fits the cache):
    # a pack of 16 costs more than 16 separate steps.
    group = GroupCost(runs=16, steps=1000, step_s={1: 0.010, 16: 0.200})
    choice = choose_pack_size([group], slots=2)
    assert choice.size == 1
    assert all(estimate >= choice.estimates[1] for estimate in choice.estimates.values())


def test_a_pack_that_would_idle_a_core_is_not_chosen():
    # 2 runs on 2 cores: a pack of 2 is cheaper per run yet takes longer than both in parallel.
    group = _linear(2, 1.94, 0.52, 2)
    assert estimate_wall_s([group], 2, slots=2, per_trial_s=0.3) > estimate_wall_s(
        [group], 1, slots=2, per_trial_s=0.3
    )
    assert choose_pack_size([group], slots=2).size == 1


def test_explicit_setting_overrides_auto(tmp_path):
    spec = parse_spec(
        sweep_dict(tmp_path, grid={"seed": list(range(6))}, execution={"pack_seeds": 4})
    )
    choice = resolve_pack_size(spec, expand_grid(spec), TWO_CORES)
    assert (choice.size, choice.reason) == (4, "execution.pack_seeds 4")
    spec = parse_spec(
        sweep_dict(tmp_path, grid={"seed": list(range(6))}, execution={"pack_seeds": 1})
    )
    assert resolve_pack_size(spec, expand_grid(spec), TWO_CORES).size == 1


def test_auto_is_the_default_and_nothing_is_measured_when_every_run_has_a_slot(tmp_path):
    spec = parse_spec(sweep_dict(tmp_path, grid={"seed": [0, 1]}, execution=None))
    assert spec.execution.pack_seeds == "auto"
    choice = resolve_pack_size(spec, expand_grid(spec), TWO_CORES)
    assert choice.size == 1 and "every run has a slot of its own" in choice.reason


def test_bad_pack_setting_is_a_user_error(tmp_path, capsys):
    from sweeps.cli import main

    path = write_sweep(tmp_path, execution={"pack_seeds": "sometimes"})
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "execution.pack_seeds" in capsys.readouterr().err


def test_dry_run_packs_a_launch_bound_model_by_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    path = write_sweep(tmp_path, grid={"seed": list(range(8))}, execution=None)
    out = format_plan(plan_run(path, nodes=TWO_CORES))
    # A 32-unit MLP at batch 64: a step is per-op overhead, and 4 members cost little more
    # than 1, so 2 trials of 4 (one per core) win.
    assert "packed: 8 runs in 2 Tune trials of 4 members (auto on 2 slots" in out, out
    assert "measured step: 1 member" in out
    cached = json.loads(cache_path().read_text())
    assert sum(key.startswith("step_s-") for key in cached) == 2  # 1 and 8 members

    # The second plan reads the cache: the same choice, nothing measured again.
    monkeypatch.setattr("sweeps.packing.measure_step_s", _must_not_measure)
    assert format_plan(plan_run(path, nodes=TWO_CORES)) == out


def _must_not_measure(*args, **kwargs):
    raise AssertionError("measured again despite the cache")


def test_dry_run_says_when_measured_packing_is_slower(tmp_path, monkeypatch):
    """Measured step times (as the cache holds them) where a pack of 8 costs 9 single steps."""
    from sweeps import packing

    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    # 200 epochs of 10 steps: training, not Tune's per-trial cost, decides.
    path = write_sweep(tmp_path, grid={"seed": list(range(8))}, execution=None, epochs=200)
    measured = {1: 0.010, 8: 0.090}
    monkeypatch.setattr(packing, "measure_step_s", lambda cfg, m, device, threads: measured[m])
    out = format_plan(plan_run(path, nodes=TWO_CORES))
    assert "packing: none (auto on 2 slots: packing not faster here" in out, out
    assert "measured step: 1 member 10.00 ms, 8 members 90.00 ms" in out
    plan = plan_run(path, nodes=TWO_CORES)
    assert len(plan.packs) == 8  # one Tune trial per run


@pytest.mark.parametrize("size", [1, 3])
def test_explicit_sizes_in_dry_run(tmp_path, size):
    path = write_sweep(tmp_path, grid={"seed": list(range(6))}, execution={"pack_seeds": size})
    plan = plan_run(path, nodes=TWO_CORES)
    assert len(plan.packs) == 6 // size
    out = format_plan(plan)
    assert ("packed:" in out) == (size > 1) and "packing: none" not in out
