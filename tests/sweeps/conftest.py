"""Helpers for the sweeps tests: tiny sweep files and a shared Ray session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

# A ring GAN small enough that a trial takes a couple of seconds, figures included.
TINY_BASE: dict[str, Any] = {
    "data": {"name": "ring", "n_points": 1000},
    "generator": {"hidden_dims": [32, 32]},
    "discriminator": {"hidden_dims": [32, 32]},
    "train": {"steps_per_epoch": 10, "batch_size": 64},
    "eval": {"every": 3, "n_samples": 200},
}


def sweep_dict(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "tiny",
        "base": TINY_BASE,
        "epochs": 3,
        "checkpoint_every": 2,
        "grid": {"seed": [0, 1]},
        # One Tune trial per grid point, as the fault and resume tests expect; packing (and
        # `auto`, the default) has its own tests.
        "execution": {"pack_seeds": 1},
        "results_dir": str(tmp_path / "runs"),
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def write_sweep(tmp_path: Path, filename: str = "sweep.yaml", **overrides: Any) -> Path:
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(sweep_dict(tmp_path, **overrides), sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_local():
    """One embedded Ray (2 CPUs) shared by a module's sweeps; gansweep reuses it."""
    import ray

    from sweeps.rayauth import enable_token_auth

    enable_token_auth()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def start_mlflow_server(
    tmp_path: Path, port: int, backend_uri: str | None = None
) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1 (one worker, no job runner), ready to use.

    Its store is SQLite in `tmp_path` unless `backend_uri` names another (bench/scale.py).
    """
    import requests

    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend_uri or f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise RuntimeError("mlflow server exited")
        time.sleep(0.5)
    stop_process(proc)
    raise RuntimeError("mlflow server did not start")


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process we started (and its process group), by its id."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
