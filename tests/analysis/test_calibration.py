"""A small run of bench/triage_calibration.py, on seeds the full run does not use, meets the
issue's targets: the confidence is the probability that the stated cause is right.

The margins are measured, not guessed (2026-12-02, the code of this commit): six 210-sweep
runs with follow-ups (seeds 100-105) gave accuracy 0.9936-0.9992 where decided (target
0.97), calibration error 0.0096-0.0154 (target 0.05) and follow-up promises kept in
0.879-0.961 of the checked failures (sizing aims at about 4 in 5). Pure noise varies with the
few sweeps that happen to look structured: 0.19% of 2,627 failures at confidence >= 0.9 over
300 noise-only sweeps (seed 7), 0.74% of 538 over 60 (seed 11); target 1%.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "triage_calibration.py"

pytestmark = pytest.mark.slow


def _bench():
    name = "bench_triage_calibration"
    if name not in sys.modules:  # its dataclasses look their module up there
        spec = importlib.util.spec_from_file_location(name, BENCH)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_a_small_calibration_run_meets_the_targets():
    bench = _bench()
    rows, checks = bench.simulate(140, seed=100, workers=1, followups=True)
    figures = bench.figures(rows, checks)
    assert figures["failures"] > 3000 and figures["followup_checked"] > 300
    assert figures["triage_accuracy"] >= 0.97
    assert figures["calibration_error"] <= 0.05
    assert figures["triage_decided"] >= 0.8
    assert figures["followup_reached"] >= 0.8
    # Every bin of the reliability table with enough failures to say so is near its diagonal.
    for row in figures["reliability"]:
        if row["failures"] >= 200:
            assert abs(row["accuracy"] - row["confidence"]) <= 0.1, row


def test_pure_noise_rarely_gets_a_confident_cause():
    bench = _bench()
    rows, _ = bench.simulate(120, seed=7, workers=1, followups=False, mechanisms=("noise",))
    assert len(rows) > 500
    assert (rows["confidence"] >= 0.9).mean() <= 0.01


def test_a_clean_init_failure_is_as_confident_as_a_clean_batch_failure():
    init, batch = _bench().symmetry()
    assert min(init, batch) >= 0.97 and abs(init - batch) < 0.02
