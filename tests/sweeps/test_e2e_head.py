"""A Ray head started as cluster.yaml starts it (its `ray start` options, token authentication,
no CPUs on the head) plus one worker node: `gansweep submit` runs a sweep through the head's
job server, and `--address ray://` keeps gansweep's Tune settings."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import free_port, write_sweep

pytestmark = pytest.mark.slow

CLUSTER_YAML = Path(__file__).parents[2] / "cluster.yaml"


def _ray_start(command: str, ports: dict[str, int], head_ip: str) -> tuple[dict, list[str]]:
    """A `ray start` line of cluster.yaml as (env, argv) for this machine: free ports, this
    Python's `ray`, no cloud autoscaler config, and `--block` to own its processes."""
    words = shlex.split(command.replace("$RAY_HEAD_IP", head_ip))
    env = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=\S*", w))
    argv = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]
    assert argv[0].endswith("/ray") and argv[1] == "start"
    out = [str(Path(sys.executable).parent / "ray"), "start", "--block", "--disable-usage-stats"]
    for arg in argv[2:]:
        name = arg.split("=", 1)[0]
        if name == "--autoscaling-config":
            continue  # needs the cloud provider; the head's resources are set below instead
        if name in ("--port", "--object-manager-port"):
            arg = f"{name}={ports[name]}"
        if name == "--address":
            arg = f"--address={head_ip}:{ports['--port']}"
        out.append(arg)
    return env, out


@pytest.fixture(scope="module")
def head():
    """Head (0 CPUs, like cluster.yaml's) and a 2-CPU worker node; stopped by process group."""
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("no `ray` command beside this Python")
    from ray._private.utils import get_dashboard_dependency_error

    if get_dashboard_dependency_error():
        pytest.skip("the job server needs the [cluster] extra (ray[default])")
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    ports = {"--port": free_port(), "--object-manager-port": free_port()}
    dashboard, client = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="gsray-", dir="/tmp")  # Unix socket paths must stay short
    temps, procs = [temp], []
    try:
        (head_cmd,) = [c for c in config["head_start_ray_commands"] if " start " in c]
        env, argv = _ray_start(head_cmd, ports, "127.0.0.1")
        argv += [
            "--num-cpus=0",  # the head's `resources: {CPU: 0}`
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={client}",
            f"--temp-dir={temp}",
        ]
        procs.append(_start(argv, env))
        _wait_for_job_server(f"http://127.0.0.1:{dashboard}", procs[0])
        (worker_cmd,) = [c for c in config["worker_start_ray_commands"] if " start " in c]
        ports["--object-manager-port"] = free_port()  # a second node on this machine
        env, argv = _ray_start(worker_cmd, ports, "127.0.0.1")
        # Its own temp dir, as on a machine of its own: two nodes in one session folder would
        # extract the job's working dir over each other.
        worker_temp = tempfile.mkdtemp(prefix="gsray-", dir="/tmp")
        temps.append(worker_temp)
        procs.append(_start([*argv, "--num-cpus=2", f"--temp-dir={worker_temp}"], env))
        _wait_for_cpus(f"127.0.0.1:{ports['--port']}", 2)
        yield {"jobs": f"http://127.0.0.1:{dashboard}", "client": f"ray://127.0.0.1:{client}"}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for folder in temps:
            shutil.rmtree(folder, ignore_errors=True)


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    assert env.get("RAY_AUTH_MODE") == "token", env  # as cluster.yaml starts every node
    # Each node's agents on free ports: other Rays on this machine hold the defaults.
    agents = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
              "--metrics-export-port", "--runtime-env-agent-port"]
    return subprocess.Popen(
        [*argv, *(f"{flag}={free_port()}" for flag in agents)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # `ray start --block` stops its node's processes
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for_job_server(address: str, proc: subprocess.Popen) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the head exited"
        try:
            JobSubmissionClient(address).list_jobs()
            return
        except Exception:  # not up yet
            time.sleep(1)
    raise AssertionError(f"no job server at {address}")


def _wait_for_cpus(address: str, cpus: float) -> None:
    """The worker node joined (the head alone has no CPUs)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", f"import ray; ray.init(address={address!r}, "
             "logging_level='ERROR'); print(ray.cluster_resources().get('CPU', 0))"],
            capture_output=True, text=True, timeout=120,
        )
        if done.returncode == 0 and float(done.stdout.strip().splitlines()[-1]) >= cpus:
            return
        time.sleep(2)
    raise AssertionError(f"the worker node did not join the head at {address}")


def test_submit_runs_a_sweep_through_the_heads_job_server(head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    path = write_sweep(tmp_path)  # absolute results_dir and SQLite store (conftest)
    done = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "submit", str(path), "--address", head["jobs"]],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    job = re.search(r"submitted Ray job (\S+)", done.stdout).group(1)
    client = JobSubmissionClient(head["jobs"])
    deadline = time.monotonic() + 420
    while client.get_job_status(job) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                             JobStatus.STOPPED}:
        assert time.monotonic() < deadline, client.get_job_logs(job)[-3000:]
        time.sleep(2)
    logs = client.get_job_logs(job)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, logs[-6000:]
    trials = pd.read_parquet(tmp_path / "runs" / "tiny" / "trials.parquet")
    assert sorted(trials.trial_id) == ["t0000", "t0001"] and (trials.status == "ok").all()
    assert "Trial status" not in logs  # gansweep's Tune settings reached the job's driver


def test_ray_client_address_keeps_gansweeps_tune_settings(head, tmp_path):
    path = write_sweep(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "run", str(path), "--no-triage",
         "--address", head["client"]],
        capture_output=True, text=True, timeout=420,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    root = tmp_path / "runs" / "tiny"
    assert len(pd.read_parquet(root / "trials.parquet")) == 2
    assert "Trial status" not in out, out[-4000:]  # Tune's table stays off
    # TUNE_DISABLE_AUTO_CALLBACK_LOGGERS reached the remote driver: no CSV/TensorBoard copies.
    assert not list(root.glob("tune/grid/*/progress.csv")), out[-4000:]
