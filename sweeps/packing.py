"""`execution.pack_seeds: auto`: the pack size that finishes the grid soonest on this machine.

A pack of m members costs about `fixed + m * per_member` per step: one process pays the
per-op cost once for all members, but each member adds its own arithmetic, and a pack holds
one slot (core, or GPU share) where m separate trials could use m. Which wins depends on the
model, the batch and the machine, so the choice is measured: one step of the grid's model with
1 member and with the largest pack the grid allows, timed here with the threads a trial gets
(cached per model, machine and torch version, so a sweep pays it once). From those two
figures `choose_pack_size` estimates the grid's wall time for every candidate size, trials
placed longest first on the sweep's parallel slots, and packs only when that is clearly faster
than one trial per run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .recorder import say
from .spec import PACK_FIELDS, SweepSpec, TrialPlan, pack_plans

__all__ = ["GroupCost", "PackChoice", "choose_pack_size", "resolve_pack_size", "cache_path"]

# A Tune trial's own cost beyond training with reused actors (docs: ENVIRONMENT.md, 0.3 s).
PER_TRIAL_S = 0.3
# Pack only when the estimate beats one trial per run by this much: step times measured on a
# shared machine move by about 10% between runs.
MIN_GAIN = 0.10
MAX_PACK = 64  # the largest pack measured or chosen
_MEASURE_STEPS = 5  # steps per timed epoch of a measurement
_MEASURE_S = 0.3  # timed seconds per measurement (after one warm-up epoch)
_MEASURED_GROUPS = 4  # distinct models measured per sweep; the others borrow the nearest batch's


@dataclass(frozen=True)
class GroupCost:
    """Grid points that may share a pack (they differ only in seeds and learning rates).

    `step_s` maps a pack size to its measured seconds per training step; the cost of other
    sizes is the line through the smallest and largest measured sizes.
    """

    runs: int
    steps: int  # training steps of one run
    step_s: dict[int, float]

    def pack_step_s(self, members: int) -> float:
        """Seconds per step of a pack of `members` (interpolated, never below the smallest)."""
        if members in self.step_s:
            return self.step_s[members]
        lo, hi = min(self.step_s), max(self.step_s)
        if lo == hi:
            return self.step_s[lo] * members / lo
        per_member = (self.step_s[hi] - self.step_s[lo]) / (hi - lo)
        return max(self.step_s[lo], self.step_s[lo] + per_member * (members - lo))


@dataclass(frozen=True)
class PackChoice:
    """The pack size used, and why (what --dry-run says)."""

    size: int
    reason: str
    estimates: dict[int, float] = field(default_factory=dict)  # size -> estimated grid seconds


def _makespan(durations: list[float], slots: int) -> float:
    """Wall time of independent trials on `slots` slots, longest first to the least loaded."""
    loads = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)


def estimate_wall_s(groups: list[GroupCost], size: int, slots: int, per_trial_s: float) -> float:
    """The grid's estimated wall time when every group is cut into packs of at most `size`."""
    durations = []
    for g in groups:
        full, rest = divmod(g.runs, size)
        for m in [size] * full + ([rest] if rest else []):
            durations.append(g.steps * g.pack_step_s(m) + per_trial_s)
    return _makespan(durations, slots)


def _candidates(groups: list[GroupCost], slots: int) -> list[int]:
    """Powers of two, and the sizes that split each group evenly over the slots."""
    largest = min(MAX_PACK, max(g.runs for g in groups))
    sizes = {1} | {2**k for k in range(1, 7)}
    sizes |= {math.ceil(g.runs / k) for g in groups for k in range(1, slots + 1)}
    return sorted(s for s in sizes if 1 <= s <= largest)


def choose_pack_size(
    groups: list[GroupCost], slots: int, per_trial_s: float = PER_TRIAL_S
) -> PackChoice:
    """The candidate size with the shortest estimated grid time; 1 unless >= MIN_GAIN faster.

    Pure: the measurements come in `groups`. Ties go to the smaller pack.
    """
    estimates = {
        s: estimate_wall_s(groups, s, slots, per_trial_s) for s in _candidates(groups, slots)
    }
    best = min(estimates, key=lambda s: (estimates[s], s))
    solo = estimates[1]
    if best == 1 or estimates[best] > solo * (1 - MIN_GAIN):
        return PackChoice(
            1,
            f"packing not faster here (best, {best} per trial: est. {_minutes(estimates[best])} "
            f"vs {_minutes(solo)} unpacked)",
            estimates,
        )
    return PackChoice(
        best,
        f"est. {_minutes(estimates[best])} vs {_minutes(solo)} unpacked "
        f"({solo / estimates[best]:.1f}x)",
        estimates,
    )


def _minutes(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _slots(spec: SweepSpec, nodes: list[dict[str, float]]) -> int:
    """Trials that run at once: what every node's CPUs (and GPUs) allow, capped by the sweep."""
    res = spec.resources
    total = 0
    for node in nodes:
        n = math.floor(node.get("CPU", 0.0) / res.cpus)
        if res.gpus > 0:
            n = min(n, math.floor(node.get("GPU", 0.0) / res.gpus))
        total += n
    if spec.execution.max_concurrent is not None:
        total = min(total, spec.execution.max_concurrent)
    return max(1, total)


def resolve_pack_size(
    spec: SweepSpec, plans: list[TrialPlan], nodes: list[dict[str, float]]
) -> PackChoice:
    """The pack size for this grid: the explicit setting, or the measured choice of `auto`."""
    setting = spec.execution.pack_seeds
    if setting != "auto":
        return PackChoice(int(setting), f"execution.pack_seeds {setting}")
    groups = pack_plans(plans, len(plans))
    slots = _slots(spec, nodes)
    if max(len(g) for g in groups) == 1:
        return PackChoice(1, "auto: no grid points differ only in seeds and learning rates")
    if len(plans) <= slots:
        return PackChoice(
            1, f"auto: every run has a slot of its own ({len(plans)} runs, {slots} at once)"
        )
    device = "cuda" if spec.resources.gpus > 0 else "cpu"
    if device == "cuda" and not _has_cuda():
        return PackChoice(
            1,
            "auto: trials use a GPU this machine lacks, so nothing was measured; "
            "set execution.pack_seeds to pack",
        )
    threads = max(1, int(spec.resources.cpus))
    costs = _group_costs(groups, device, threads)
    choice = choose_pack_size(costs, slots)
    measured = _measured_line(costs)
    return PackChoice(
        choice.size, f"auto on {slots} slots: {choice.reason}; {measured}", choice.estimates
    )


def _measured_line(costs: list[GroupCost]) -> str:
    g = max(costs, key=lambda c: c.runs)
    shown = ", ".join(
        f"{m} member{'s' if m > 1 else ''} {s * 1e3:.2f} ms" for m, s in sorted(g.step_s.items())
    )
    return f"measured step: {shown}"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _group_costs(groups: list[list[TrialPlan]], device: str, threads: int) -> list[GroupCost]:
    """Measure up to _MEASURED_GROUPS distinct models; the rest borrow the nearest batch size's."""
    from gan_core.config import RunConfig

    largest = min(MAX_PACK, max(len(g) for g in groups))
    measured: dict[int, tuple[int, dict[int, float]]] = {}  # group index -> (batch, step_s)
    picks = _spread(len(groups), _MEASURED_GROUPS)
    for i in picks:
        cfg = RunConfig.from_dict(groups[i][0].config)
        sizes = sorted({1, min(largest, len(groups[i]))})
        measured[i] = (cfg.train.batch_size, {m: _step_s(cfg, m, device, threads) for m in sizes})
    costs = []
    for i, g in enumerate(groups):
        cfg = RunConfig.from_dict(g[0].config)
        if i in measured:
            step_s = measured[i][1]
        else:
            near = min(measured, key=lambda j: abs(measured[j][0] - cfg.train.batch_size))
            step_s = measured[near][1]
        costs.append(GroupCost(len(g), _run_steps(cfg), step_s))
    return costs


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _run_steps(cfg: Any) -> int:
    """Training steps of one run: G steps per epoch (as the family counts them) x epochs."""
    if cfg.train.steps_per_epoch is not None:
        return int(cfg.train.steps_per_epoch * cfg.train.epochs)
    key = _cache_key(cfg, "steps_per_epoch", 0, "", 0)
    per_epoch = _read_cache().get(key)
    if not isinstance(per_epoch, int):
        from gan_core import Trainer

        per_epoch = int(Trainer(cfg.replace(device="cpu")).steps_per_epoch)
        _write_cache(key, per_epoch)
    return int(per_epoch * cfg.train.epochs)


def cache_path() -> Path:
    """Measured step times: $GANSWEEP_CACHE/step_times.json (default ~/.cache/gansweep)."""
    root = os.environ.get("GANSWEEP_CACHE") or os.path.join("~", ".cache", "gansweep")
    return Path(root).expanduser() / "step_times.json"


def _cache_key(cfg: Any, kind: str, members: int, device: str, threads: int) -> str:
    """A digest of what a measurement depends on: the model, pack, device, threads, machine."""
    from gan_core.config import flatten_config

    ignored = ("train.epochs", "train.lr_milestones", "train.lr_gamma", "device")
    model = {
        k: v
        for k, v in flatten_config(cfg.to_dict()).items()
        if k not in PACK_FIELDS and k not in ignored and not k.startswith(("eval.", "monitor."))
    }
    what = {
        "kind": kind,
        "model": model,
        "members": members,
        "device": device,
        "threads": threads,
        "torch": metadata.version("torch"),
        "machine": _machine(),
    }
    text = json.dumps(what, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _machine() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    return f"{platform.machine()} {platform.processor()} x{os.cpu_count()}"


def _read_cache() -> dict[str, float]:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, value: float) -> None:
    """Add one measurement (atomically; a cache that cannot be written is only not kept)."""
    path = cache_path()
    data = _read_cache()
    data[key] = value
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".step_times-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)


def _step_s(cfg: Any, members: int, device: str, threads: int) -> float:
    """Seconds per training step of a pack of `members` of this model (cached)."""
    key = _cache_key(cfg, "step_s", members, device, threads)
    cached = _read_cache().get(key)
    if isinstance(cached, (int, float)) and cached > 0:
        return float(cached)
    say(
        f"pack_seeds auto: timing a step of {members} member(s) at batch {cfg.train.batch_size} "
        f"(once; cached in {cache_path()})"
    )
    seconds = measure_step_s(cfg, members, device, threads)
    _write_cache(key, seconds)
    return seconds


def measure_step_s(cfg: Any, members: int, device: str, threads: int) -> float:
    """Time steady-state steps of a Trainer with `members` members: one warm-up epoch, then
    whole epochs of _MEASURE_STEPS steps for at least _MEASURE_S seconds."""
    import torch

    from gan_core import Member, Trainer

    cfg = cfg.replace(
        **{
            "device": device,
            "train.epochs": 1_000_000,
            "train.steps_per_epoch": _MEASURE_STEPS,
            "eval.every": 0,
        }
    )
    base = cfg.seeds
    pack = [Member(base[0] + i, base[1] + i) for i in range(members)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer = Trainer(cfg, members=pack)
        epochs = trainer.epochs()
        start = time.perf_counter()
        next(epochs)  # warm-up: allocations and first-call costs
        warm_up = time.perf_counter() - start
        start, steps = time.perf_counter(), 0
        # A member that diverges leaves the pack and the rest go on; once none is left, the
        # warm-up epoch (an overestimate) is all there is.
        for _ in epochs:
            steps += trainer.steps_per_epoch
            if time.perf_counter() - start >= _MEASURE_S or not all(trainer.active):
                break
        if steps == 0 or not all(trainer.active):
            return warm_up / trainer.steps_per_epoch
        return (time.perf_counter() - start) / steps
    finally:
        torch.set_num_threads(previous)
