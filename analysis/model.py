"""The grid model: why did a cell fail, as a posterior probability over causes.

Within one *group* (one combination of the other varied parameters) a trial's cell is (seed s,
learning rate l, batch size b), with n runs and k failures (repeats and duplicates add runs).
The model says how failures arise, and the triage reports its posterior:

- every seed s has a latent threshold ``U_s``: the smallest batch size from which it is bad.
  ``U_s`` = its smallest batch means the seed is bad everywhere (an unlucky initialisation,
  ``init``); a larger ``U_s`` is a seed that copes with small batches only (``both``); ``U_s`` =
  never is a healthy seed. A seed's ``U_s`` is the same at every LR: a seed failing at every LR
  is several replications of one fact (pooled).
- every LR l has a latent batch threshold ``T_l``: batches from ``T_l`` up fail for every seed
  (``batch``); ``T_l`` = its smallest batch means everything at that LR fails (``lr``, when
  another LR of the group does not). The thresholds of the LRs are tied by a Chinese-restaurant
  prior (concentration `ALPHA`): equal thresholds are a priori likely (pooled across LRs), a
  threshold that moves with the LR is allowed (stratified).
- a cell outside every bad region fails at the chance rate ``p0``; a bad seed's cells at rate
  ``qS``, a bad batch's at ``qB``, a cell in both at ``1 - (1 - qS)(1 - qB)``. The rates, and
  the share of bad seeds, are integrated over grids of values (`RATE_GRID`), never estimated.

The posterior over (``U``, ``T``, rates) is computed by exact enumeration when the LRs'
threshold combinations are few (at most `MAX_CONFIGS`); otherwise by a sum over the
combinations around the most probable one (coordinate ascent, then every single-LR change and
every shared threshold), which holds the mass when that many runs make the posterior sharp.
Given ``T`` and the rates the seeds are independent, so each seed's states are summed in
closed form. A failed trial's cause is its cell's category (`CATEGORIES`) under the posterior;
the confidence of a cause is its posterior probability. `bench/triage_calibration.py` checks on
grids drawn from known mechanisms that these probabilities are what they say.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORIES",
    "CAUSE_OF_CATEGORY",
    "GroupPosterior",
    "Priors",
    "PRIORS",
    "failure_probabilities",
    "fit_group",
    "fit_layout",
]

# Cell categories: what explains a failure in that cell.
CATEGORIES = ("chance", "init", "fragile", "batch", "both", "lr", "shared")
CHANCE, INIT, FRAGILE, BATCH, BOTH, LR, SHARED = range(len(CATEGORIES))
# The cause a category is reported as; chance and shared (a whole single LR) are undecided.
CAUSE_OF_CATEGORY = {
    "chance": None,
    "init": "init",
    "fragile": "both",
    "batch": "batch",
    "both": "both",
    "lr": "lr",
    "shared": None,
}

_P_COLS = [f"p_{c}" for c in CATEGORIES]
MAX_CONFIGS = 64  # threshold combinations enumerated exactly; beyond: around the mode
_PRUNE = 30.0  # rate combinations this far (log) below the best are dropped in large groups
_PRUNE_RUNS = 60  # a group with more runs than this is large


@dataclass(frozen=True)
class Priors:
    """Prior of the grid model (see the module docstring); stated with the calibration.

    Attributes:
        bad_seed_shares: Values of the share of seeds bad everywhere, integrated over.
        bad_seed_weights: Their prior weights.
        fragile_seed: Prior probability that a seed is bad from some batch size up (``both``).
        lr_bad: Prior probability that everything at an LR fails.
        batch_bad: Prior probability that an LR has a batch threshold above its smallest batch.
        alpha: Concentration tying the LRs' thresholds (small: shared thresholds likelier).
        p0: Chance failure rates integrated over (uniform weights).
        q_seed: Failure rates of a bad seed integrated over.
        q_batch: Failure rates of a bad batch size or LR integrated over.
    """

    bad_seed_shares: tuple = (0.01, 0.08, 0.25)
    bad_seed_weights: tuple = (0.4, 0.35, 0.25)
    fragile_seed: float = 0.04
    lr_bad: float = 0.12
    batch_bad: float = 0.3
    alpha: float = 1.0
    p0: tuple = (0.003, 0.015, 0.04, 0.08, 0.14, 0.22)
    q_seed: tuple = (0.5, 0.72, 0.88, 0.97)
    q_batch: tuple = (0.5, 0.72, 0.88, 0.97)


PRIORS = Priors()


@dataclass
class GroupPosterior:
    """The model's posterior for one group.

    Attributes:
        units: Seed values, in row order.
        panels: Panel ids (one per LR), in column order.
        batches: Batch sizes (sorted), the third axis.
        cells: Posterior category probabilities, shape (seeds, LRs, batches, categories); rows
            of cells never run are meaningless.
        seed_state: Per seed: P(bad everywhere), P(bad from some batch up), P(healthy).
        bad_from: Per LR and batch: P(this batch is in the LR's failure region).
        log_evidence: log P(data) under the model (compares layouts by init or data seed).
        n: Runs per cell, shape (seeds, LRs, batches).
        k: Failures per cell.
        mode: The most probable batch threshold per LR (batch index; len(batches): none).
    """

    units: list
    panels: list
    batches: list
    cells: np.ndarray
    seed_state: np.ndarray
    bad_from: np.ndarray
    log_evidence: float
    n: np.ndarray
    k: np.ndarray
    mode: np.ndarray


@dataclass(frozen=True)
class _Grid:
    n: np.ndarray  # (S, L, m) runs
    k: np.ndarray  # (S, L, m) failures
    seed_valid: np.ndarray  # (S, m + 1) states a seed can take (batches it ran, plus never)
    seed_first: np.ndarray  # (S,) index of each seed's smallest batch
    lr_valid: list  # per LR: valid threshold indices (batches run there, plus never = m)
    lr_first: np.ndarray  # (L,) index of each LR's smallest batch


def logsumexp(x: np.ndarray, axis=None) -> np.ndarray:
    """log(sum(exp(x))) along an axis, stable; -inf where every term is -inf."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _rates(priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """Rate combinations (R, 4: p0, qS, qB, both) and the (H, R) log prior with the shares."""
    combos = list(itertools.product(priors.p0, priors.q_seed, priors.q_batch))
    p0, qs, qb = (np.array(c, dtype=float) for c in zip(*combos, strict=True))
    rates = np.stack([p0, qs, qb, 1 - (1 - qs) * (1 - qb)], axis=1)
    share = np.asarray(priors.bad_seed_weights, dtype=float)
    log_prior = np.log(share / share.sum())[:, None] - np.log(len(combos))
    return rates, np.repeat(log_prior, len(combos), axis=1)


_RATES = {}


def _rate_grid(priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    if priors not in _RATES:
        _RATES[priors] = _rates(priors)
    return _RATES[priors]


def _class_masks(m: int) -> np.ndarray:
    """(u, t, j, class): class of batch j under seed threshold u and LR threshold t."""
    j = np.arange(m)
    states = np.arange(m + 1)
    seed_on = j[None, None, :] >= states[:, None, None]
    batch_on = j[None, None, :] >= states[None, :, None]
    code = 2 * seed_on.astype(int) + batch_on.astype(int)  # 0 none, 1 batch, 2 seed, 3 both
    order = np.array([0, 2, 1, 3])  # -> 0 none, 1 seed, 2 batch, 3 both (rates' column order)
    return np.eye(4, dtype=float)[order[code]]


def _seed_log_prior(grid: _Grid, priors: Priors) -> np.ndarray:
    """(shares, S, m + 1) log prior of every seed's threshold, per bad-seed share."""
    S, m1 = grid.seed_valid.shape
    later = grid.seed_valid.copy()
    later[np.arange(S), grid.seed_first] = False
    later[:, -1] = False
    n_later = later.sum(axis=1)
    out = np.full((len(priors.bad_seed_shares), S, m1), -np.inf)
    for i, share in enumerate(priors.bad_seed_shares):
        frag = np.where(n_later > 0, priors.fragile_seed, 0.0)
        p = np.zeros((S, m1))
        p[np.arange(S), grid.seed_first] = share
        p[later] = np.repeat(frag / np.maximum(n_later, 1), n_later)
        p[:, -1] = 1 - share - frag
        with np.errstate(divide="ignore"):
            out[i] = np.log(p)
    return out


def _lr_base(grid: _Grid, priors: Priors) -> list[np.ndarray]:
    """Per LR: the base prior over its valid thresholds (first, later ones, never)."""
    out = []
    for valid, first in zip(grid.lr_valid, grid.lr_first, strict=True):
        later = [t for t in valid if t not in (first, len(grid.seed_valid[0]) - 1)]
        base = {first: priors.lr_bad, valid[-1]: 1 - priors.lr_bad}
        if later:
            base[valid[-1]] -= priors.batch_bad
            base.update({t: priors.batch_bad / len(later) for t in later})
        out.append(base)
    return out


def _config_log_prior(configs: np.ndarray, base: list[dict], alpha: float) -> np.ndarray:
    """Chinese-restaurant log prior of threshold combinations (K, L): shared values likelier."""
    out = np.zeros(len(configs))
    for i, cfg in enumerate(configs):
        seen: dict[int, int] = {}
        total = 0.0
        for t, b in zip(cfg, base, strict=True):
            seen_here = sum(c for v, c in seen.items() if v in b)
            total += np.log((alpha * b[int(t)] + seen.get(int(t), 0)) / (alpha + seen_here))
            seen[int(t)] = seen.get(int(t), 0) + 1
        out[i] = total
    return out


def _tables(grid: _Grid) -> np.ndarray:
    """(S, L, m + 1, m + 1, 8): failures and successes per rate class for every (u, t)."""
    masks = _class_masks(grid.n.shape[2])
    k = np.einsum("slj,utjc->slutc", grid.k, masks)
    f = np.einsum("slj,utjc->slutc", grid.n - grid.k, masks)
    return np.concatenate([k, f], axis=-1)


def _evidence(tab, configs, rates, seed_lp, posterior: bool = True):
    """Per share, rate combination and configuration: the log evidence (H, R, K) and, when
    asked, each seed's log posterior over its thresholds (H, R, K, S, U)."""
    L = configs.shape[1]
    counts = tab[:, 0][:, :, configs[:, 0], :]  # (S, U, K, 8)
    for li in range(1, L):
        counts = counts + tab[:, li][:, :, configs[:, li], :]
    with np.errstate(divide="ignore"):
        weights = np.concatenate([np.log(rates), np.log1p(-rates)], axis=1)  # (R, 8)
    loglik = (counts @ weights.T).transpose(3, 2, 0, 1)  # (R, K, S, U)
    # Sum over each seed's states in probability space: one exp for every share H.
    top = loglik.max(axis=3, keepdims=True)
    scaled = np.exp(loglik - top)
    prior = np.exp(seed_lp)  # (H, S, U)
    per_seed = np.stack([np.log((scaled * p).sum(axis=3)) for p in prior]) + top[None, ..., 0]
    if not posterior:
        return per_seed.sum(axis=3), None
    joint = loglik[None] + seed_lp[:, None, None, :, :]  # (H, R, K, S, U)
    return per_seed.sum(axis=3), joint - per_seed[..., None]


def _score(tab, configs, rates, seed_lp, rate_lp, cfg_lp) -> np.ndarray:
    ev, _ = _evidence(tab, configs, rates, seed_lp, posterior=False)
    return logsumexp((ev + rate_lp[:, :, None]).reshape(-1, len(configs)), axis=0) + cfg_lp


def _start_config(grid: _Grid) -> np.ndarray:
    """Each LR's threshold from its column totals alone (two binomial rates, best split)."""
    m = grid.n.shape[2]
    cfg = []
    for li, valid in enumerate(grid.lr_valid):
        n, k = grid.n[:, li].sum(axis=0), grid.k[:, li].sum(axis=0)
        best, best_ll = valid[-1], -np.inf
        for t in valid:
            ll = 0.0
            for sel in (np.arange(m) < t, np.arange(m) >= t):
                nn, kk = n[sel].sum(), k[sel].sum()
                if nn:
                    p = np.clip(kk / nn, 1e-3, 1 - 1e-3)
                    ll += kk * np.log(p) + (nn - kk) * np.log(1 - p)
            if ll > best_ll + 1e-9:
                best, best_ll = t, ll
        cfg.append(best)
    return np.array(cfg)


def _first_config(grid: _Grid, start) -> np.ndarray:
    """Where the search starts: ``start`` (a previous fit's mode) where it is valid, else each
    LR's threshold from its column totals."""
    cfg = _start_config(grid)
    if start is not None:
        for li, t in enumerate(start[: len(cfg)]):
            if t in grid.lr_valid[li]:
                cfg[li] = t
    return cfg


def _configs(grid: _Grid, score, start=None) -> np.ndarray:
    """Threshold combinations to sum over: all of them, or those around the most probable."""
    sizes = [len(v) for v in grid.lr_valid]
    if int(np.prod(sizes)) <= MAX_CONFIGS:
        return np.array(list(itertools.product(*grid.lr_valid)), dtype=int)
    cfg = _first_config(grid, start)
    for _ in range(4):  # coordinate ascent on the log evidence
        changed = False
        for li, valid in enumerate(grid.lr_valid):
            trial = np.repeat(cfg[None], len(valid), axis=0)
            trial[:, li] = valid
            best = valid[int(np.argmax(score(trial)))]
            changed |= best != cfg[li]
            cfg[li] = best
        if not changed:
            break
    near = [cfg]
    for li, valid in enumerate(grid.lr_valid):
        for t in valid:
            alt = cfg.copy()
            alt[li] = t
            near.append(alt)
    for t in set.intersection(*(set(v) for v in grid.lr_valid)):
        near.append(np.full(len(cfg), t))
    return np.unique(np.array(near, dtype=int), axis=0)


def _categories(configs, grid: _Grid) -> np.ndarray:
    """(L, K, U, m) category of a cell at LR l and batch j, given config and seed threshold."""
    L, m = configs.shape[1], grid.n.shape[2]
    j = np.arange(m)
    u = np.arange(m + 1)
    whole = configs == grid.lr_first[None, :]  # (K, L)
    out = np.empty((L, len(configs), m + 1, m), dtype=np.int8)
    for li in range(L):
        others = np.delete(whole, li, axis=1)
        other_ok = (~others).any(axis=1) if others.shape[1] else np.zeros(len(configs), bool)
        t = configs[:, li][:, None, None]
        seed_on = j[None, None, :] >= u[None, :, None]
        batch_on = j[None, None, :] >= t
        is_whole = whole[:, li][:, None, None]
        lr_cat = np.where(other_ok[:, None, None], LR, SHARED)
        # A seed implicates itself only below the LR's threshold, where the other seeds
        # succeed: a seed whose own threshold lies inside the batch region adds nothing there.
        seed_shows = seed_on & (u[None, :, None] < t)
        cat = np.where(seed_on, FRAGILE, CHANCE)  # fragile vs init is split per seed later
        cat = np.where(batch_on, np.where(seed_shows, BOTH, BATCH), cat)
        out[li] = np.where(batch_on & is_whole, lr_cat, cat)
    return out


def fit_group(n: np.ndarray, k: np.ndarray, priors: Priors = PRIORS, start=None) -> dict:
    """Posterior of the grid model for one group's counts.

    Args:
        n: Runs per (seed, LR, batch), shape (S, L, m); 0 where a cell was not run.
        k: Failures per cell, same shape.
        priors: The model's prior.
        start: A previous fit's ``mode`` to start the search from (refits with a few more
            runs converge at once); None: each LR's own column totals.

    Returns:
        ``cells`` (S, L, m, categories), ``seed_state`` (S, 3), ``bad_from`` (L, m),
        ``log_evidence`` and ``mode`` (the most probable threshold per LR, as batch indices,
        m for none): see `GroupPosterior`.
    """
    grid = _make_grid(n, k)
    S, L, m = n.shape
    rates, rate_lp = _rate_grid(priors)
    seed_lp = _seed_log_prior(grid, priors)
    tab = _tables(grid)
    base = _lr_base(grid, priors)
    if n.sum() > _PRUNE_RUNS:  # drop rate combinations the data rule out before searching
        first = _first_config(grid, start)[None]
        ev, _ = _evidence(tab, first, rates, seed_lp, posterior=False)
        fit = logsumexp(ev[:, :, 0] + rate_lp, axis=0)
        keep = fit >= fit.max() - _PRUNE
        rates, rate_lp = rates[keep], rate_lp[:, keep]

    def score(cfgs):
        return _score(
            tab, cfgs, rates, seed_lp, rate_lp, _config_log_prior(cfgs, base, priors.alpha)
        )

    configs = _configs(grid, score, start)
    cfg_lp = _config_log_prior(configs, base, priors.alpha)
    ev, seed_post = _evidence(tab, configs, rates, seed_lp)
    joint = ev + rate_lp[:, :, None] + cfg_lp[None, None, :]  # (H, R, K)
    log_z = float(logsumexp(joint))
    w = np.exp(joint - log_z)
    mix = np.einsum("hrk,hrksu->ksu", w, np.exp(seed_post))  # P(K, U_s = u), per seed
    cats = _categories(configs, grid)
    cells = np.zeros((S, L, m, len(CATEGORIES)))
    first = np.zeros((S, m + 1), bool)
    first[np.arange(S), grid.seed_first] = True
    for li in range(L):
        onehot = (cats[li][..., None] == np.arange(len(CATEGORIES))).astype(float)  # (K,U,m,C)
        per_u = np.stack(  # sum over K, one matrix product per seed state
            [mix[:, :, u].T @ onehot[:, u].reshape(len(configs), -1) for u in range(m + 1)],
            axis=1,
        ).reshape(S, m + 1, m, len(CATEGORIES))
        cells[:, li] = per_u.sum(axis=1)
        init = (per_u[:, :, :, FRAGILE] * first[:, :, None]).sum(axis=1)
        cells[:, li, :, INIT] = init
        cells[:, li, :, FRAGILE] -= init
    seed_u = mix.sum(axis=0)  # (S, U)
    seed_state = np.stack(
        [
            (seed_u * first).sum(axis=1),
            (seed_u[:, :-1] * ~first[:, :-1]).sum(axis=1),
            seed_u[:, -1],
        ],
        axis=1,
    )
    cfg_w = w.sum(axis=(0, 1))  # (K,)
    j = np.arange(m)
    bad_from = np.stack(
        [(cfg_w[:, None] * (j[None, :] >= configs[:, li][:, None])).sum(axis=0) for li in range(L)]
    )
    return {
        "cells": np.clip(cells, 0.0, 1.0),
        "seed_state": np.clip(seed_state, 0.0, 1.0),
        "bad_from": np.clip(bad_from, 0.0, 1.0),
        "log_evidence": log_z,
        "mode": configs[int(np.argmax(cfg_w))],
    }


def _make_grid(n: np.ndarray, k: np.ndarray) -> _Grid:
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    S, L, m = n.shape
    ran = n > 0
    seed_ran = ran.any(axis=1)  # (S, m)
    seed_valid = np.concatenate([seed_ran, np.ones((S, 1), bool)], axis=1)
    seed_first = np.where(seed_ran.any(axis=1), seed_ran.argmax(axis=1), m)
    lr_ran = ran.any(axis=0)  # (L, m)
    lr_valid = [list(np.flatnonzero(r)) + [m] for r in lr_ran]
    lr_first = np.array([v[0] for v in lr_valid])
    return _Grid(n, k, seed_valid, seed_first, lr_valid, lr_first)


def fit_layout(live: pd.DataFrame, unit: str, priors: Priors = PRIORS) -> tuple[pd.DataFrame, dict]:
    """Fit the model to every group of a table laid out by one seed column.

    Args:
        live: Analysable trials with ``group_key``, ``panel``, ``batch_size``, ``failed`` and
            the ``unit`` column.
        unit: The seed column (``seed``, ``init_seed`` or ``data_seed``).
        priors: The model's prior.

    Returns:
        ``(cells, groups)``: one row per (panel, unit, batch) cell with ``n``, ``k`` and a
        ``p_<category>`` column per category; and per group key its `GroupPosterior`.
    """
    counts = (
        live.groupby(["group_key", "panel", unit, "batch_size"], sort=True)["failed"]
        .agg(n="size", k="sum")
        .reset_index()
    )
    probs = np.zeros((len(counts), len(CATEGORIES)))
    groups = {}
    for key, rows in counts.groupby("group_key", sort=True).indices.items():
        sub = counts.iloc[rows]
        units = list(pd.unique(sub[unit]))
        panels = sorted(pd.unique(sub["panel"]))
        batches = sorted(pd.unique(sub["batch_size"]))
        si = pd.Index(units).get_indexer(sub[unit])
        li = pd.Index(panels).get_indexer(sub["panel"])
        bi = pd.Index(batches).get_indexer(sub["batch_size"])
        n = np.zeros((len(units), len(panels), len(batches)))
        k = np.zeros_like(n)
        n[si, li, bi] = sub["n"].to_numpy()
        k[si, li, bi] = sub["k"].to_numpy()
        fit = fit_group(n, k, priors)
        probs[rows] = fit["cells"][si, li, bi]
        groups[key] = GroupPosterior(
            units,
            [int(p) for p in panels],
            [int(b) for b in batches],
            fit["cells"],
            fit["seed_state"],
            fit["bad_from"],
            fit["log_evidence"],
            n,
            k,
            fit["mode"],
        )
    cells = pd.concat([counts, pd.DataFrame(probs, columns=_P_COLS, index=counts.index)], axis=1)
    return cells, groups


def _cell_probs(failed: pd.DataFrame, cells: pd.DataFrame, unit: str) -> pd.DataFrame:
    keys = ["group_key", "panel", unit, "batch_size"]
    merged = failed[keys].merge(cells[keys + _P_COLS], on=keys, how="left")
    merged.index = failed.index
    return merged[_P_COLS]


def failure_probabilities(live: pd.DataFrame, fits: dict, units: list[str]) -> pd.DataFrame:
    """Per failed trial: its cell's category probabilities, mixed over the seed layouts.

    With init and data seeds varied independently the grid is laid out by each; the layouts
    are weighted by their evidence (Bayesian model averaging), per group.

    Args:
        live: Analysable trials.
        fits: Per seed column, `fit_layout`'s ``(cells, groups)``.
        units: The seed columns laid out (one, or init and data seed).

    Returns:
        Indexed like the failed rows of ``live``: ``p_<category>``, ``ctx_unit`` (the layout
        that explains it better) and ``stream_weight`` (that layout's posterior weight).
    """
    failed = live.loc[live["failed"]]
    probs = {u: _cell_probs(failed, fits[u][0], u) for u in units}
    if len(units) == 1:
        out = probs[units[0]].copy()
        out["ctx_unit"], out["stream_weight"] = units[0], 1.0
        return out
    a, b = units
    gap = failed["group_key"].map(
        {k: fits[b][1][k].log_evidence - p.log_evidence for k, p in fits[a][1].items()}
    )
    w = 1.0 / (1.0 + np.exp(np.clip(gap.to_numpy(float), -700, 700)))
    out = probs[a].mul(w, axis=0) + probs[b].mul(1 - w, axis=0)
    out["ctx_unit"] = np.where(w >= 0.5, a, b)
    out["stream_weight"] = np.maximum(w, 1 - w)
    return out
