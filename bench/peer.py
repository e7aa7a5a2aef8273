"""Sweep throughput against what a practitioner writes by hand: a plain Ray Tune script.

The peer is the script one writes with the same libraries and no gansweep: a function
trainable with the gan_core Trainer inside, one Tune trial per grid point
(`tune.grid_search` over the seeds), Ray's own `MLflowLoggerCallback`, and Tune's defaults
(1 CPU per trial, no actor reuse, no checkpoints). Each trial reports every epoch's record and,
in its last result, gan_core's verdict. The peer does strictly less per run than gansweep (no
figures, checkpoints, Parquet tables or triage), so the comparison errs in the peer's favour.

gansweep runs the same grid as `gansweep run` (packed as `execution.pack_seeds: auto`
chooses, with an empty measurement cache so its timing is included; triage included). Both
sides run in the same invocation, one after the other, each in a fresh Python process whose
wall time is measured from outside (interpreter start, Ray start and stop included).

Prints, per batch size, both wall times, both verdict counts (every run must have one on both
sides) and ``throughput_vs_plain_tune_b<B>=<x>``: seed-runs per hour of gansweep over the peer.
Writes bench/peer.json.

    python bench/peer.py                      # 16 seeds at batch 32 and 256, about 10 minutes
    python bench/peer.py --batches 32 --seeds 16 --epochs 30
    python bench/peer.py --batches 256 --peer-first    # the other order, against load drift

Target (issue 19): >= 2x on the 16-seed grids on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The demo's model (ring of 8 Gaussians, narrow G, wider D) at a fixed number of steps per
# epoch, so that batch 32 and 256 runs make the same number of G steps.
BASE: dict[str, Any] = {
    "data": {"name": "ring", "n_points": 8192},
    "generator": {"hidden_dims": [16, 16]},
    "discriminator": {"hidden_dims": [128, 128]},
    "train": {"loss_type": "non_saturating", "d_lr": 5.0e-3, "g_lr": 2.0e-3,
              "steps_per_epoch": 100},
    "eval": {"n_samples": 2000, "every": 10},
}


def peer_trainable(config: dict[str, Any]) -> None:
    """What a practitioner writes: the base config with this trial's seed, trained and reported."""
    from ray import tune

    from gan_core import RunConfig, Trainer

    cfg = RunConfig.from_dict(config["base"]).replace(seed=config["seed"])
    trainer = Trainer(cfg)
    for records in trainer.epochs():
        metrics = {k: v for k, v in records[0].items() if isinstance(v, (int, float))}
        if trainer.epoch >= cfg.train.epochs or not trainer.active[0]:
            metrics["verdict"] = trainer.verdicts()[0].status
        tune.report(metrics)


def run_peer(base: dict[str, Any], seeds: int, workdir: Path) -> dict[str, Any]:
    """The plain Tune script: one trial per seed, MLflowLoggerCallback, Tune's defaults."""
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    ray.init(num_cpus=os.cpu_count())
    try:
        tuner = tune.Tuner(
            peer_trainable,
            param_space={"base": base, "seed": tune.grid_search(list(range(seeds)))},
            run_config=tune.RunConfig(
                name="peer",
                storage_path=str(workdir / "tune"),
                callbacks=[
                    MLflowLoggerCallback(
                        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", experiment_name="peer"
                    )
                ],
            ),
        )
        grid = tuner.fit()
        verdicts = [
            (r.metrics or {}).get("verdict", "error" if r.error else "none") for r in grid
        ]
    finally:
        ray.shutdown()
    return {"verdicts": dict(Counter(verdicts)), "runs": len(verdicts)}


def run_gansweep(base: dict[str, Any], seeds: int, epochs: int, workdir: Path) -> dict[str, Any]:
    """`gansweep run` on the same grid, as a user runs it (auto packing, tracking, triage)."""
    import pandas as pd
    import yaml

    sweep = {
        "name": "peer-gansweep",
        "base": base,
        "epochs": epochs,
        "grid": {"seed": list(range(seeds))},
        "results_dir": str(workdir / "runs"),
        "tracking": {"uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        "checkpoint_every": 10,
    }
    path = workdir / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    from sweeps.cli import main
    from sweeps.runner import format_plan, plan_run

    plan = format_plan(plan_run(path, out=str(workdir / "sweep")))  # measures the packing
    print(*[line for line in plan.splitlines() if line.startswith(("packed:", "packing:"))])
    code = main(["run", str(path), "--out", str(workdir / "sweep")])
    if code != 0:
        raise SystemExit(f"gansweep run failed with exit code {code}")
    trials = pd.read_parquet(workdir / "sweep" / "trials.parquet")
    return {"verdicts": trials.verdict.value_counts().to_dict(), "runs": int(len(trials))}


def _child(args: argparse.Namespace) -> int:
    """One side, in this process: writes its result as JSON to --result."""
    base = json.loads(args.base)
    workdir = Path(args.workdir)
    if args.side == "peer":
        result = run_peer(base, args.seeds, workdir)
    else:
        result = run_gansweep(base, args.seeds, args.epochs, workdir)
    Path(args.result).write_text(json.dumps(result))
    return 0


def _side(side: str, base: dict[str, Any], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run one side in a fresh process; its wall time from outside, its output to a log file."""
    workdir = tmp / side
    workdir.mkdir()
    result = workdir / "result.json"
    env = {**os.environ, "GANSWEEP_CACHE": str(workdir / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, __file__, "--side", side, "--base", json.dumps(base),
           "--seeds", str(args.seeds), "--epochs", str(args.epochs),
           "--workdir", str(workdir), "--result", str(result)]
    log = workdir / "log.txt"
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{side} failed with exit code {code}:\n{log.read_text()[-4000:]}")
    found = json.loads(result.read_text())
    packing = [line for line in log.read_text().splitlines() if line.startswith("pack")]
    return {**found, "wall_s": round(wall, 2), "notes": packing}


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of 100 G steps per run")
    parser.add_argument("--peer-first", action="store_true", help="run the peer side first")
    parser.add_argument("--side", choices=["peer", "gansweep"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return _child(args)
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seeds": args.seeds, "epochs": args.epochs, "peer_first": args.peer_first, "cases": {},
    }
    for batch in args.batches:
        base = json.loads(json.dumps(BASE))
        base["train"] |= {"batch_size": batch, "epochs": args.epochs}
        with tempfile.TemporaryDirectory(prefix="gansweep-peer-") as tmp:
            load_before = _load()
            order = ["peer", "gansweep"] if args.peer_first else ["gansweep", "peer"]
            sides = {side: _side(side, base, args, Path(tmp)) for side in order}
            ours, peer = sides["gansweep"], sides["peer"]
        ratio = peer["wall_s"] / ours["wall_s"]
        results["cases"][f"b{batch}"] = {
            "gansweep": ours, "peer": peer, "throughput_vs_plain_tune": round(ratio, 3),
            "load_before": load_before, "load_after": _load(),
        }
        for name, side in (("gansweep", ours), ("plain Tune", peer)):
            rate = side["runs"] / side["wall_s"] * 3600
            print(f"b{batch} {name:10s}: {side['runs']} runs in {side['wall_s']:.1f} s "
                  f"({rate:.0f} seed-runs/h); verdicts {side['verdicts']}", flush=True)
        for note in ours["notes"]:
            print(f"b{batch} gansweep: {note}")
        print(f"load average before/after: {load_before} / {_load()}")
        print(f"throughput_vs_plain_tune_b{batch}={ratio:.2f}", flush=True)
    (HERE / "peer.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
