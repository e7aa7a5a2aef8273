"""A multi-node Ray cluster on this machine (head + 2 workers): a worker node removed mid-sweep.
Its trial is retried from its last checkpoint and the sweep ends with every trial once."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest

from .conftest import write_sweep

pytestmark = pytest.mark.slow

BASE = {
    "data": {"name": "ring", "n_points": 2000},
    "generator": {"hidden_dims": [32, 32]},
    "discriminator": {"hidden_dims": [32, 32]},
    "train": {"steps_per_epoch": 60, "batch_size": 64},
    "eval": {"every": 4, "n_samples": 200},
}


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    from sweeps.rayauth import enable_token_auth

    enable_token_auth()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="WARNING")
    yield c, workers
    ray.shutdown()
    c.shutdown()


def _registered_checkpoint(trial_dir) -> bool:
    """Whether the driver holds a checkpoint of this trial.

    A checkpoint folder on disk is not enough: Tune registers it only when its save task comes
    back, and a node lost before that retries from scratch. The trial's next result is fetched
    only after that save, so a result logged by the driver (result.json) after the first
    result that carried a checkpoint proves the registration.
    """
    path = trial_dir / "result.json"
    if not path.is_file():
        return False
    complete = path.read_text().split("\n")[:-1]  # the last piece may be half written
    lines = [json.loads(line) for line in complete if line.strip()]
    first = next((i for i, r in enumerate(lines) if r.get("checkpoint_dir_name")), None)
    return first is not None and len(lines) > first + 1


def _remove_a_busy_worker(root, cluster, workers, removed: list) -> None:
    """Once both running trials hold a registered checkpoint (and none has finished), take a
    worker away."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        trial_dirs = [d for d in (root / "tune" / "grid").glob("*") if d.is_dir()]
        registered = [d for d in trial_dirs if _registered_checkpoint(d)]
        if len(registered) >= 2 and not (root / "trials.parquet").exists():
            cluster.remove_node(workers[0])
            removed.append(time.monotonic())
            return
        time.sleep(0.1)


def _sweep_losing_a_worker(plan, cluster, workers, capsys) -> str:
    """Run the sweep while a worker is taken away mid-run; the driver's output."""
    from sweeps.runner import run_sweep

    removed: list = []
    args = (plan.root, cluster, workers, removed)
    killer = threading.Thread(target=_remove_a_busy_worker, args=args)
    killer.start()
    code = run_sweep(plan, address=cluster.address, triage=False)
    killer.join()
    out = capsys.readouterr().out
    assert removed, "no worker was removed mid-sweep\n" + out
    assert code == 0, out
    return out


def test_node_loss_retries_from_checkpoint(cluster, tmp_path, capsys):
    from sweeps.runner import plan_run

    c, workers = cluster
    path = write_sweep(
        tmp_path, base=BASE, epochs=12, grid={"seed": [0, 1, 2]}, failure={"max_failures": 2}
    )
    plan = plan_run(path)  # Ray is connected: resources are checked against the cluster
    assert len(plan.nodes) == 3
    out = _sweep_losing_a_worker(plan, c, workers, capsys)
    assert "worker lost" in out and "retrying from its last checkpoint" in out, out
    assert "(resumed at epoch " in out, out  # the retry started from a checkpoint
    trials = pd.read_parquet(plan.root / "trials.parquet")
    assert sorted(trials.trial_id) == ["t0000", "t0001", "t0002"]
    assert (trials.status == "ok").all() and (trials.epochs_run == 12).all()
    epochs = pd.read_parquet(plan.root / "epochs.parquet")
    assert len(epochs) == 36 and not epochs.duplicated(["trial_id", "epoch"]).any()

    from mlflow import MlflowClient

    client = MlflowClient(trials.tracking_uri[0])
    for run_id in trials.mlflow_run_id:
        steps = [m.step for m in client.get_metric_history(run_id, "loss/d")]
        assert steps == list(range(1, 13))


def test_node_loss_retries_a_pack_with_its_stopped_member(cluster, tmp_path, capsys):
    """Two packs of 4 (seeds x LRs), each with two members that diverge in epoch 1 and leave
    the pack; a worker is removed mid-sweep. The retried pack resumes from its checkpoint, the
    stopped members' outputs come back with it, and every member is recorded once."""
    from sweeps.runner import plan_run

    c, workers = cluster
    base = {**BASE, "train": {**BASE["train"], "loss_type": "least_squares"}}
    grid = {"batch_size": [32, 64], "seed": [0, 1], "lr": [1e-3, 1e3]}
    path = write_sweep(tmp_path, base=base, epochs=12, grid=grid,
                       failure={"max_failures": 2}, execution={"pack_seeds": 4})
    plan = plan_run(path)
    out = _sweep_losing_a_worker(plan, c, workers, capsys)
    assert "(resumed at epoch " in out, out
    trials = pd.read_parquet(plan.root / "trials.parquet").set_index("trial_id")
    assert len(trials) == 8 and (trials.status == "ok").all()
    diverged = trials[trials.lr == 1e3]
    healthy = trials[trials.lr == 1e-3]
    assert (diverged.verdict == "diverged").all() and (diverged.epochs_run == 1).all()
    assert (healthy.epochs_run == 12).all() and (healthy.verdict != "diverged").all()
    for tid in trials.index:
        assert (plan.root / "trials" / tid / "samples.png").is_file(), tid
    epochs = pd.read_parquet(plan.root / "epochs.parquet")
    assert len(epochs) == 4 * 12 + 4 and not epochs.duplicated(["trial_id", "epoch"]).any()
