"""Training steps per second of one run: the ring MLP GAN and the digits DCGAN at a few batch sizes.

A "step" is one generator update with its n_critic (here 1) discriminator updates, metrics
included, as the trainer runs them. Prints one line per case and writes bench/steps.json.

    python bench/steps.py [--threads N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from gan_core import RunConfig, Trainer

CASES = {
    "ring_mlp": {"data": {"name": "ring", "n_points": 20000},
                 "generator": {"hidden_dims": [128, 128]},
                 "discriminator": {"hidden_dims": [128, 128]}},
    "digits_dcgan": {"data": {"name": "digits"},
                     "generator": {"arch": "dcgan", "latent_dim": 32, "base_channels": 32},
                     "discriminator": {"arch": "dcgan", "base_channels": 32, "norm": "batch"}},
}
BATCHES = (32, 128, 256)


def steps_per_second(values: dict, batch: int, seconds: float) -> float:
    cfg = RunConfig.from_dict({**values,
                               "train": {"batch_size": batch, "epochs": 1000,
                                         "steps_per_epoch": 20},
                               "eval": {"every": 0}})
    trainer = Trainer(cfg)
    epochs = trainer.epochs()
    next(epochs)  # warm-up: allocations, first-call overheads
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        next(epochs)
        steps += trainer.steps_per_epoch
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: one trial per core)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"date": date.today().isoformat(),
               "machine": platform.processor() or platform.machine(),
               "threads": args.threads, "torch": torch.__version__, "cases": {}}
    for name, values in CASES.items():
        for batch in BATCHES:
            rate = steps_per_second(values, batch, args.seconds)
            results["cases"][f"{name}_b{batch}"] = rate
            print(f"steps_per_s_{name}_b{batch}={rate:.1f}", flush=True)
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
