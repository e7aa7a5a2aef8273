"""sweeps: the one package that wires gan_core, Ray Tune, MLflow, Optuna and analysis together.

A sweep file (YAML) describes a grid or a search over gan_core RunConfigs; `gansweep run`
trains every point as a Ray Tune trial, writes the sweep directory (Parquet tables, figures,
checkpoints; layout in docs/CONTRACTS.md), tracks every trial in MLflow and triages the result.
The Python API mirrors the CLI:

    from sweeps import plan_run, run_sweep
    plan = plan_run("sweeps/examples/demo.yaml")      # validates; raises SpecError
    exit_code = run_sweep(plan)

Names are imported on first use, so that `gansweep --help` does not load torch or Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SpecError",
    "SweepPlan",
    "SweepSpec",
    "TrialPlan",
    "expand_grid",
    "format_plan",
    "load_spec",
    "parse_spec",
    "plan_run",
    "plan_search",
    "resume_sweep",
    "run_sweep",
    "search_sweep",
    "sync_sweep",
]

_HOME = {
    "SpecError": "spec",
    "SweepSpec": "spec",
    "TrialPlan": "spec",
    "expand_grid": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "SweepPlan": "runner",
    "format_plan": "runner",
    "plan_run": "runner",
    "plan_search": "runner",
    "resume_sweep": "runner",
    "run_sweep": "runner",
    "search_sweep": "runner",
    "sync_sweep": "runner",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
