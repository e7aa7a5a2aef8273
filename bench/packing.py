"""Packing: seed-steps per second of a pack of seeds in one Trainer versus one process per seed.

The model is the ring MLP GAN (2-128-128 G and D, latent 2, Adam, non-saturating loss) at
batch 32 and 256, for 1, 4, 16 and 64 seeds. A seed-step is one generator update of one seed
with its discriminator update, metrics included, as the trainer runs them.

- packed: one Trainer whose M members are the seeds, all cores busy, tried two ways:
  1 process x all threads, and (CPU) one single-thread process per core, each holding its
  share of the seeds. The better is the packed figure.
- unpacked: one process per seed. On CPU, one single-thread worker process per core, running
  concurrently, each training its seeds one at a time as solo Trainers (no oversubscription).
  On a GPU, the seeds one at a time on the one device.

Only steady-state steps count: every Trainer runs one warm-up epoch (allocation, first-call
overheads) before its timed epochs, and Trainer construction is not timed. The machine's peak
float32 FLOP/s is measured in the same run with a 1024x1024 matmul on all cores (or the GPU);
the FLOPs per seed-step are measured with torch.utils.flop_counter.FlopCounterMode on a real
training epoch (matmuls only: G fwd, D fwd on real + fake, D bwd, then the G step), and
cross-checked against the count from the layer shapes. Prints one line per case, then
``packing_speedup_b<B>_<M>=<x>`` and ``packing_peak_fraction_b<B>_<M>=<fraction>`` for every
case, and writes packing.json beside this file.

    python bench/packing.py                      # about 2-3 minutes on 2 cores
    python bench/packing.py --seeds 16 --batches 256 --seconds 5

Targets (issue 6), at 16 seeds: on this 2-core CPU, packed >= 5x unpacked at batch 32
(packing_speedup_b32_16) and >= 70% of peak at batch 256 (packing_peak_fraction_b256_16);
on a GPU, packed >= 15x unpacked.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import time
from datetime import date
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from gan_core import Member, RunConfig, Trainer

RING = {"data": {"name": "ring", "n_points": 20000},
        "generator": {"hidden_dims": [128, 128]}, "discriminator": {"hidden_dims": [128, 128]},
        "eval": {"every": 0}}
STEPS_PER_EPOCH = 20


def ring_cfg(batch: int, device: str) -> RunConfig:
    return RunConfig.from_dict({**RING, "device": device, "train": {
        "batch_size": batch, "epochs": 100_000, "steps_per_epoch": STEPS_PER_EPOCH}})


class Rate(NamedTuple):
    """Steady-state seed-steps, and the wall-clock and CPU seconds they took."""

    steps: int
    wall: float
    cpu: float


def timed_epochs(trainer: Trainer, seconds: float, device: str) -> Rate:
    """One warm-up epoch, then whole epochs for at least `seconds`; seed-steps of all members."""
    epochs = trainer.epochs()
    next(epochs)  # warm-up, not counted
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start, cpu, steps = time.perf_counter(), time.process_time(), 0
    while steps == 0 or time.perf_counter() - start < seconds:
        next(epochs)  # ends with the epoch's one host sync, so the clock sees finished work
        steps += trainer.steps_per_epoch
    sync()
    members = len(trainer.members)
    return Rate(steps * members, time.perf_counter() - start, time.process_time() - cpu)


def packed_rate(batch: int, seeds: list[int], seconds: float, device: str) -> Rate:
    """One Trainer holding `seeds` as its members."""
    if not seeds:
        return Rate(0, 0.0, 0.0)
    trainer = Trainer(ring_cfg(batch, device), [Member(s, s) for s in seeds])
    return timed_epochs(trainer, seconds, device)


def solo_rate(batch: int, seeds: list[int], seconds: float, device: str) -> Rate:
    """Each seed a solo Trainer in turn, `seconds` shared among them; the sums over the seeds."""
    total = Rate(0, 0.0, 0.0)
    for s in seeds:  # none: an idle worker (fewer seeds than cores)
        trainer = Trainer(ring_cfg(batch, device), [Member(s, s)])
        r = timed_epochs(trainer, seconds / len(seeds), device)
        total = Rate(total.steps + r.steps, total.wall + r.wall, total.cpu + r.cpu)
    return total


def _worker(conn, barrier) -> None:
    """A single-thread process that runs jobs ("packed" | "solo", batch, seeds, seconds)."""
    torch.set_num_threads(1)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            conn.send(time.process_time())
            return
        kind, batch, seeds, seconds = job
        barrier.wait()  # both workers start together, so their timed windows overlap
        fn = packed_rate if kind == "packed" else solo_rate
        conn.send(fn(batch, seeds, seconds, "cpu"))


class Workers:
    """One single-thread worker process per core, kept alive across cases."""

    def __init__(self, n: int):
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(n)  # held here: spawned children unpickle it after we return
        self.conns, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, self.barrier), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:  # imports done: nothing of ours competes for the cores from here on
            assert conn.recv() == "ready"

    def run(self, kind: str, batch: int, seeds: list[int], seconds: float) -> tuple[float, float]:
        """(wall, cpu) seed-steps per second of all workers together, seeds dealt round-robin.

        A worker's rate is its steady-state seed-steps over its timed seconds; the workers run
        concurrently, so the aggregate is the sum of their rates. The cpu rate divides by CPU
        seconds instead: what the workers would do with a core each to themselves.
        """
        shares = [seeds[i:: len(self.conns)] for i in range(len(self.conns))]
        for conn, share in zip(self.conns, shares, strict=True):
            conn.send((kind, batch, share, seconds))
        results = [conn.recv() for conn in self.conns]
        return (sum(r.steps / r.wall for r in results if r.steps),
                sum(r.steps / r.cpu for r in results if r.steps))

    def close(self) -> float:
        """Stop the workers; returns the CPU seconds they used."""
        for conn in self.conns:
            conn.send(None)
        cpu = sum(conn.recv() for conn in self.conns)
        for proc in self.procs:
            proc.join(timeout=10)
        return cpu


def peak_flops(device: str, threads: int, seconds: float = 1.0) -> tuple[float, float]:
    """(wall, cpu) float32 FLOP/s of a 1024 x 1024 matmul on `threads` threads, best of 3 windows.

    The cpu figure divides by CPU seconds per thread: the peak had each thread a core to itself.
    """
    n = 1024
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    wall = cpu = 0.0
    for _ in range(3):
        sync()
        start, cpu_start, reps = time.perf_counter(), time.process_time(), 0
        while time.perf_counter() - start < seconds / 3:
            a @ b
            reps += 1
        sync()
        flops = 2 * n**3 * reps
        wall = max(wall, flops / (time.perf_counter() - start))
        if device == "cpu":
            cpu = max(cpu, flops * threads / (time.process_time() - cpu_start))
    return wall, cpu or wall


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def measured_flops_per_step(batch: int, device: str) -> float:
    """Matmul FLOPs of one seed-step, counted by FlopCounterMode over one real epoch."""
    trainer = Trainer(ring_cfg(batch, device), [Member(0, 0)])
    with FlopCounterMode(display=False) as counter:
        next(trainer.epochs())
    return counter.get_total_flops() / trainer.steps_per_epoch


def layer_flops_per_step(batch: int) -> float:
    """The same figure from the layer shapes (2 FLOPs a multiply-add; bias, activations ignored).

    D step: G fwd on B, D fwd on real + fake (2B), D bwd (weight grads everywhere, input
    grads except D's first layer). G step: G fwd, D fwd, D bwd (input grads only), G bwd
    (weight grads everywhere, input grads except G's first layer).
    """
    cfg = ring_cfg(batch, "cpu")
    g_dims = [cfg.generator.latent_dim, *cfg.generator.hidden_dims, 2]
    d_dims = [2, *cfg.discriminator.hidden_dims, 1]
    g = [2 * i * o for i, o in zip(g_dims, g_dims[1:], strict=False)]
    d = [2 * i * o for i, o in zip(d_dims, d_dims[1:], strict=False)]
    d_step = sum(g) + 2 * sum(d) + 2 * (sum(d) + sum(d[1:]))
    g_step = sum(g) + sum(d) + sum(d) + sum(g) + sum(g[1:])
    return float(batch * (d_step + g_step))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16, 64], help="pack sizes")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256], help="batch sizes")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores to use")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = platform.processor() or platform.machine()
    results: dict = {"date": date.today().isoformat(), "machine": machine,
                     "device": device, "cores": args.cores, "torch": torch.__version__,
                     "steps_per_epoch": STEPS_PER_EPOCH, "timed_seconds": args.seconds, "cases": {}}
    busy, own = _busy_seconds(), time.process_time()
    wall_start = time.perf_counter()
    workers = Workers(args.cores) if device == "cpu" else None
    try:
        if device == "cpu":
            torch.set_num_threads(1)
            results["peak_flops_1_thread"] = peak_flops(device, 1)[0]
        torch.set_num_threads(args.cores)
        peak = results["peak_flops"] = dict(
            zip(("wall", "cpu"), peak_flops(device, args.cores), strict=True)
        )
        print(f"peak float32 1024x1024 matmul on {device} ({args.cores} threads): "
              f"{peak['wall'] / 1e9:.1f} GFLOP/s (per CPU second: {peak['cpu'] / 1e9:.1f})",
              flush=True)
        for batch in args.batches:
            flops = measured_flops_per_step(batch, device)
            shapes = layer_flops_per_step(batch)
            results[f"flops_per_seed_step_b{batch}"] = flops
            print(f"b{batch}: {flops / 1e6:.1f} MFLOP per seed-step (FlopCounterMode, real epoch: "
                  f"the figure used); {shapes / 1e6:.1f} MFLOP from the layer shapes", flush=True)
            for m in args.seeds:
                case = run_case(batch, m, args, device, workers)
                results["cases"][f"b{batch}_{m}"] = case
                for basis, c in case.items():
                    c["gflops"] = c["packed"] * flops / 1e9
                    c["peak_fraction"] = c["packed"] * flops / peak[basis]
                    print(f"b{batch:<3d} seeds={m:<3d} {basis:4s}: "
                          f"packed {c['packed']:6.0f} seed-steps/s "
                          f"(1x{args.cores} {c['packed_1proc']:.0f}, {args.cores}x1 "
                          f"{c['packed_nproc'] or float('nan'):.0f}), "
                          f"unpacked {c['unpacked']:5.0f}: "
                          f"{c['speedup']:5.2f}x; {c['gflops']:5.1f} GFLOP/s = "
                          f"{c['peak_fraction']:.0%} of peak", flush=True)
    finally:
        own_cpu = time.process_time() - own + (workers.close() if workers is not None else 0.0)
    wall = time.perf_counter() - wall_start
    other = max(0.0, _busy_seconds() - busy - own_cpu) / (wall * (os.cpu_count() or 1))
    results["other_processes_cpu_share"] = other
    print(f"other processes used {other:.0%} of the machine's CPU during this run"
          + (": wall-clock rates are contended; the cpu lines (per CPU second) are fairer"
             if other > 0.1 else ""))
    for basis, suffix in (("wall", ""), ("cpu", "_cpu")):
        for key, case in results["cases"].items():
            print(f"packing_speedup{suffix}_{key}={case[basis]['speedup']:.2f}")
            print(f"packing_peak_fraction{suffix}_{key}={case[basis]['peak_fraction']:.3f}")
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return results


def run_case(
    batch: int, m: int, args: argparse.Namespace, device: str, workers: Workers | None
) -> dict:
    """{"wall": ..., "cpu": ...}: packed (both layouts) and unpacked seed-steps per second."""
    seeds = list(range(m))
    r = packed_rate(batch, seeds, args.seconds, device)
    threads = args.cores if device == "cpu" else 1
    wall_rate = r.steps / r.wall
    one = {"wall": wall_rate, "cpu": r.steps * threads / r.cpu if r.cpu else wall_rate}
    per_proc: dict = {"wall": None, "cpu": None}
    if workers is not None:
        # With one seed: one single-thread process, the other cores idle.
        per_proc = dict(
            zip(("wall", "cpu"), workers.run("packed", batch, seeds, args.seconds), strict=True)
        )
        # Enough time that every seed gets a timed epoch or more.
        solo = dict(zip(("wall", "cpu"), workers.run(
            "solo", batch, seeds, max(args.seconds, 0.2 * math.ceil(m / args.cores))), strict=True))
    else:
        r = solo_rate(batch, seeds, max(args.seconds, 0.2 * m), device)
        solo = {"wall": r.steps / r.wall, "cpu": r.steps / r.wall}
    case = {}
    for basis in ("wall", "cpu"):
        packed = max(one[basis], per_proc[basis] or 0.0)
        case[basis] = {"packed_1proc": one[basis], "packed_nproc": per_proc[basis],
                       "unpacked": solo[basis], "packed": packed, "speedup": packed / solo[basis]}
    return case


if __name__ == "__main__":
    main()
