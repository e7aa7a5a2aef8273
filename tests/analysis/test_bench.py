"""bench/triage.py runs and agrees with the causes it built in (small size; no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "triage.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_triage", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_small_run_writes_json_and_mostly_recovers_the_built_in_causes(tmp_path, capsys):
    bench = _bench()
    assert (
        bench.main(
            [
                "--trials",
                "800",
                "--repeats",
                "1",
                "--max-panels",
                "4",
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "triage_seconds_800=" in out and "report_seconds_800=" in out
    assert "triage_json_mb_800=" in out
    figures = json.loads((tmp_path / "b.json").read_text())["800"]
    assert figures["trials"] == 800 and figures["failed"] > 150
    assert figures["cause_agreement_by_true_cause"]["lr"] > 0.95
