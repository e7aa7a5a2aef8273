"""The monitor on constructed histories whose answer is known by construction."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import FrozenInstanceError

import pytest

from gan_core.config import LOSS_TYPES, MonitorConfig
from gan_core.monitor import PHASES, PROBLEMS, STATUSES, assess, confident_failure, verdict

CFG = MonitorConfig()
NAN = math.nan


def _healthy(epoch: int) -> dict[str, float]:
    """A competitive-phase record: D ahead but not dominant, G learning."""
    wiggle = 0.03 * (-1) ** epoch  # healthy losses fluctuate (001 Symptoms table)
    return {
        "epoch": epoch,
        "step": 100 * epoch,
        "loss/d": 0.62 + wiggle,
        "loss/d_real": 0.55,
        "loss/d_fake": 0.69,
        "loss/d_total": 1.24,
        "loss/g": 1.1,
        "loss/w_dist": 0.4,
        "d/real": 0.75 + wiggle,
        "d/fake": 0.3 - wiggle,
        "d/fake_batch_std": 0.08,
        "d/accuracy": 0.68,
        "g/accuracy": 0.3,
        "weights/d_mean": 0.001,
        "weights/d_std": 0.08,
        "weights/g_mean": 0.002,
        "weights/g_std": 0.09,
        "weights/d_abs_mean": 0.06,
        "weights/g_abs_mean": 0.07,
        "stability/dg_ratio": 0.56,
        "stability/loss_var": 0.002,
        "grad/g_norm": 0.8,
        "grad/d_norm": 1.2,
        "time/epoch_s": 1.0,
    }


def _history(n: int = 20, kind: str = "mixture", every: int = 5) -> list[dict[str, float]]:
    """`n` healthy epochs with quality metrics every `every` epochs."""
    history = [_healthy(e) for e in range(1, n + 1)]
    for rec in history:
        if rec["epoch"] % every:
            continue
        if kind == "mixture":
            # Tight modes: a tiny min pairwise distance is healthy here.
            rec.update({"quality/modes": 8, "quality/hq_fraction": 0.92, "quality/kl": 0.02,
                        "quality/modes_reached": 8, "quality/near_fraction": 0.99})
            rec.update({"diversity/mean": 1.1, "diversity/min": 1e-4, "diversity/std": 0.6,
                        "diversity/ratio": 0.42})
        else:
            rec.update({"quality/fid": 35.0, "quality/kid": 0.01, "quality/is": 8.5,
                        "quality/fid_rel": 0.08, "quality/classes": 10,
                        "quality/class_coverage": 1.0, "quality/class_kl": 0.02})
            rec.update({"quality/pixvar": 0.3, "diversity/mean": 9.0, "diversity/min": 3.0,
                        "diversity/std": 2.5, "diversity/ratio": 0.9})
        rec["quality/nonfinite"] = 0.0
    return history


def _set(history, values, since=1, until=None):
    """Overwrite `values` in epochs since..until (inclusive); quality keys only where evaluated."""
    for rec in history:
        if since <= rec["epoch"] <= (until or math.inf):
            rec.update({k: v for k, v in values.items() if not _is_eval_key(k) or k in rec})
    return history


def _is_eval_key(key: str) -> bool:
    return key.startswith(("quality/", "diversity/"))


D_STRONG = {"d/real": 0.99, "d/fake": 0.01}
COLLAPSE = {"loss/d": 0.73, "d/accuracy": 0.5, "g/accuracy": 0.995, "d/real": 0.53, "d/fake": 0.52}


# ---------------------------------------------------------------- stable and diverged
def test_healthy_history_is_stable():
    v = verdict(_history(), CFG, "non_saturating", n_modes=8)
    assert (v.status, v.onset_epoch, v.problems) == ("stable", None, ())
    assert v.evidence["quality/modes"] == 8
    assert assess(_history(), CFG, "non_saturating", n_modes=8).phase == "competitive"


@pytest.mark.parametrize("loss", LOSS_TYPES)
def test_nan_loss_at_epoch_7_is_diverged_from_7(loss):
    history = _set(_history(7), {"loss/d": NAN, "loss/g": NAN, "loss/d_real": NAN}, since=7)
    v = verdict(history, CFG, loss)
    assert (v.status, v.onset_epoch) == ("diverged", 7)
    assert math.isnan(v.evidence["loss/d"])


def test_nan_from_epoch_7_onwards_has_onset_7():
    history = _set(_history(12), {"loss/g": NAN}, since=7)
    assert verdict(history, CFG, "minimax").onset_epoch == 7


@pytest.mark.parametrize("value", [5e3, math.inf, NAN])
def test_exploding_weights_are_diverged(value):
    history = _set(_history(), {"weights/g_abs_mean": value}, since=12)
    v = verdict(history, CFG, "wasserstein")
    assert (v.status, v.onset_epoch) == ("diverged", 12)
    assert "weights/g_abs_mean" in v.evidence


def test_divergence_takes_precedence_over_everything():
    history = _set(_set(_history(), {**D_STRONG, "grad/g_norm": 1e-9}), {"loss/d": NAN}, since=20)
    v = verdict(history, CFG, "non_saturating")
    assert v.status == "diverged"
    assert v.problems[0] == "diverged" and "d_too_strong" in v.problems


# ---------------------------------------------------------------- D balance
def test_d_too_strong_to_the_end_is_d_dominance():
    v = verdict(_set(_history(), D_STRONG, since=9), CFG, "non_saturating")
    assert (v.status, v.onset_epoch) == ("d_dominance", 9)
    assert v.evidence["d/real"] == pytest.approx(0.99)
    assert "d_too_strong" in v.problems


def test_d_too_strong_from_the_start_is_d_dominance_from_epoch_1():
    v = verdict(_set(_history(), D_STRONG), CFG, "minimax")
    assert (v.status, v.onset_epoch) == ("d_dominance", 1)


def test_d_too_strong_only_in_early_epochs_is_stable():
    history = _set(_history(), D_STRONG, until=8)
    assert verdict(history, CFG, "non_saturating").status == "stable"
    assert assess(history, CFG, "non_saturating").problems == []


def test_d_too_weak_is_a_warning_and_equilibrium_is_not_weak():
    weak = _set(_history(), {"d/real": 0.3, "d/fake": 0.7}, since=10)
    v = verdict(weak, CFG, "non_saturating")
    assert (v.status, v.problems) == ("stable", ("d_too_weak",))
    converged = _set(_history(), {"d/real": 0.52, "d/fake": 0.48}, since=10)
    health = assess(converged, CFG, "non_saturating")
    assert (health.phase, health.problems) == ("converged", [])


# ---------------------------------------------------------------- mode collapse
def test_collapse_symptom_pattern_is_mode_collapse_with_its_onset():
    v = verdict(_set(_history(), COLLAPSE, since=9), CFG, "non_saturating")
    assert (v.status, v.onset_epoch) == ("mode_collapse", 9)
    assert v.evidence["g/accuracy"] == pytest.approx(0.995)


def test_collapse_pattern_shorter_than_the_window_is_not_collapse():
    history = _set(_history(), COLLAPSE, since=17)  # 4 epochs < window 5
    assert verdict(history, CFG, "non_saturating").status == "stable"


def test_mixture_with_2_of_8_modes_is_mode_collapse():
    history = _set(_history(), {"quality/modes": 2, "quality/kl": 1.4}, since=15)
    v = verdict(history, CFG, "non_saturating", n_modes=8)
    assert (v.status, v.onset_epoch) == ("mode_collapse", 15)
    assert v.evidence["quality/modes"] == 2


def test_exactly_half_the_modes_is_mode_collapse():
    history = _set(_history(), {"quality/modes": 4, "quality/kl": 0.69}, since=15)
    v = verdict(history, CFG, "non_saturating", n_modes=8)
    assert v.status == "mode_collapse" and v.evidence["quality/modes"] == 4
    assert verdict(_set(_history(), {"quality/modes": 5}, since=15), CFG, "non_saturating",
                   n_modes=8).status == "stable"


def test_huge_finite_losses_are_divergence():
    history = _set(_history(), {"loss/g": 3.9e9}, since=12)
    v = verdict(history, CFG, "wasserstein")
    assert v.status == "diverged" and v.onset_epoch == 12 and v.evidence == {"loss/g": 3.9e9}
    assert (
        verdict(_set(_history(), {"loss/g": 900.0}, since=12), CFG, "wasserstein").status
        != "diverged"
    )


def test_few_modes_with_off_mode_samples_is_poor_quality_not_collapse():
    history = _set(_history(), {"quality/modes": 0, "quality/hq_fraction": 0.0}, since=15)
    v = verdict(history, CFG, "non_saturating", n_modes=8)
    assert (v.status, v.onset_epoch, v.problems) == ("poor_quality", 15, ("poor_quality",))
    spread = _set(_history(), {"quality/modes": 0, "quality/hq_fraction": 0.0,
                               "diversity/ratio": 0.3}, since=15)
    assert verdict(spread, CFG, "non_saturating", n_modes=8).status == "poor_quality"


def test_samples_on_one_point_off_every_mode_are_mode_collapse():
    # Measured on a real ring run (a 2-unit G, seed 3): every sample at one point between the
    # modes, mean pairwise distance 1e-4 against the data's ~2.6.
    one_point = {"quality/modes": 0, "quality/hq_fraction": 0.0, "diversity/ratio": 4e-5}
    v = verdict(_set(_history(), one_point, since=15), CFG, "non_saturating", n_modes=8)
    assert (v.status, v.onset_epoch) == ("mode_collapse", 15)
    assert v.evidence["diversity/ratio"] == 4e-5
    assert v.problems[:1] == ("mode_collapse",)


def test_modes_rule_needs_the_number_of_modes():
    history = _set(_history(), {"quality/modes": 2}, since=15)
    assert verdict(history, CFG, "non_saturating").status == "stable"


def test_low_pixvar_is_mode_collapse():
    history = _set(_history(kind="images"), {"quality/pixvar": 0.05}, since=20)
    v = verdict(history, CFG, "non_saturating")
    assert (v.status, v.onset_epoch) == ("mode_collapse", 20)


def test_near_duplicate_images_are_mode_collapse_but_tight_mixtures_are_not():
    images = _set(_history(kind="images"), {"diversity/min": 1e-3}, since=10)
    assert verdict(images, CFG, "hinge").status == "mode_collapse"
    assert verdict(_history(kind="mixture"), CFG, "hinge", n_modes=8).status == "stable"


def test_constant_d_fake_alone_is_not_collapse_but_is_evidence():
    assert verdict(_set(_history(), {"d/fake_batch_std": 1e-4}), CFG, "minimax").status == "stable"
    history = _set(_history(), {**COLLAPSE, "d/fake_batch_std": 1e-4}, since=9)
    assert verdict(history, CFG, "minimax").evidence["d/fake_batch_std"] == pytest.approx(1e-4)


def test_collapse_takes_precedence_over_d_dominance():
    history = _set(_set(_history(kind="images"), D_STRONG), {"quality/pixvar": 0.01})
    v = verdict(history, CFG, "non_saturating")
    assert v.status == "mode_collapse" and "d_too_strong" in v.problems


# ---------------------------------------------------------------- gradients, quality, warnings
def test_vanishing_gradients():
    v = verdict(_set(_history(), {"grad/g_norm": 1e-8}, since=11), CFG, "minimax")
    assert (v.status, v.onset_epoch) == ("vanishing_gradients", 11)
    assert v.evidence["grad/g_norm"] == pytest.approx(1e-8)


def test_vanishing_gradients_take_precedence_over_d_dominance():
    history = _set(_history(), {**D_STRONG, "grad/g_norm": 1e-9}, since=5)
    v = verdict(history, CFG, "minimax")
    assert v.status == "vanishing_gradients"
    assert v.problems == ("vanishing_gradients", "d_too_strong")


def test_low_hq_fraction_is_poor_quality():
    history = _set(_history(), {"quality/hq_fraction": 0.3}, since=15)
    v = verdict(history, CFG, "wasserstein", n_modes=8)
    assert (v.status, v.onset_epoch) == ("poor_quality", 15)
    assert v.evidence == {"quality/hq_fraction": 0.3}


def test_high_fid_is_poor_quality_and_a_recovered_one_is_not():
    # FID's scale depends on the feature extractor, so the FID rule is off unless configured.
    cfg = dataclasses.replace(CFG, poor_quality_fid=400.0)
    bad = _set(_history(kind="images"), {"quality/fid": 450.0}, since=20)
    assert verdict(bad, CFG, "hinge").status == "stable"
    assert verdict(bad, cfg, "hinge").status == "poor_quality"
    recovered = _set(_history(kind="images"), {"quality/fid": 450.0}, until=15)
    assert verdict(recovered, cfg, "hinge").status == "stable"


def test_warnings_are_listed_but_decide_nothing():
    history = _set(_history(), {"weights/clip_pct": 80.0, "stability/dg_ratio": 0.005}, since=3)
    v = verdict(history, CFG, "wasserstein")
    assert (v.status, v.problems) == ("stable", ("persistent_clipping", "low_dg_ratio"))


# ---------------------------------------------------------------- configuration and losses
@pytest.mark.parametrize(
    ("values", "since", "cfg", "status"),
    [
        ({"d/real": 0.93, "d/fake": 0.03}, 1, MonitorConfig(d_strong_real=0.9), "d_dominance"),
        (D_STRONG, 17, MonitorConfig(window=3), "d_dominance"),
        ({"grad/g_norm": 1e-5}, 1, MonitorConfig(vanishing_grad=1e-4), "vanishing_gradients"),
        (
            {"quality/hq_fraction": 0.7},
            1,
            MonitorConfig(poor_quality_hq_fraction=0.8),
            "poor_quality",
        ),
        ({"quality/modes": 5}, 1, MonitorConfig(collapse_modes_fraction=0.75), "mode_collapse"),
        (
            {**COLLAPSE, "loss/d": 0.8},
            1,
            MonitorConfig(collapse_d_loss=(0.7, 0.85)),
            "mode_collapse",
        ),
    ],
)
def test_thresholds_are_configurable(values, since, cfg, status):
    history = _set(_history(), values, since=since)
    assert verdict(history, CFG, "non_saturating", n_modes=8).status == "stable"
    assert verdict(history, cfg, "non_saturating", n_modes=8).status == status


@pytest.mark.parametrize("loss", ["wasserstein", "hinge"])
def test_critic_losses_are_not_judged_by_probability_thresholds(loss):
    for values in (D_STRONG, COLLAPSE, {"d/real": 0.3, "d/fake": 0.7}):
        v = verdict(_set(_history(), values), CFG, loss)
        # COLLAPSE pins both losses to constants: only the loss-agnostic flat-loss warning.
        assert v.status == "stable" and set(v.problems) <= {"losses_flat"}


def test_least_squares_uses_the_bands_but_not_the_bce_loss_band():
    assert verdict(_set(_history(), D_STRONG), CFG, "least_squares").status == "d_dominance"
    assert verdict(_set(_history(), COLLAPSE), CFG, "least_squares").status == "stable"


# ---------------------------------------------------------------- phases
@pytest.mark.parametrize(
    ("d_real", "d_fake", "phase"),
    [(0.99, 0.02, "early"), (0.8, 0.25, "competitive"), (0.52, 0.47, "converged")],
)
def test_probability_phases_follow_the_004_bands(d_real, d_fake, phase):
    history = _set(_history(), {"d/real": d_real, "d/fake": d_fake}, since=15)
    assert assess(history, CFG, "minimax").phase == phase


def _w_history(values):
    return [
        {"epoch": i + 1, "loss/w_dist": w, "loss/d": -w, "loss/g": 1.0}
        for i, w in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("w", "phase"),
    [
        ([0.1 * i for i in range(20)], "early"),  # rising
        ([0.2 * i for i in range(10)] + [1.8 - 0.15 * i for i in range(10)], "competitive"),
        ([0.3 * i for i in range(6)] + [1.0] * 14, "converged"),  # rose, fell, flat
        ([0.5, 1.0], "early"),  # too short to tell
    ],
)
def test_critic_phases_follow_the_w_distance_trend(w, phase):
    health = assess(_w_history(w), CFG, "wasserstein")
    assert health.phase == phase
    assert health.phase in PHASES


# ---------------------------------------------------------------- shape of the answer
def test_empty_history_and_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="empty history"):
        verdict([], CFG, "minimax")
    with pytest.raises(ValueError, match="non_saturating"):
        verdict(_history(), CFG, "wgan")
    with pytest.raises(ValueError, match="n_modes"):
        assess(_history(), CFG, "minimax", n_modes=0)


def test_verdict_is_frozen_and_round_trips_through_json():
    v = verdict(_set(_history(), {"loss/d": NAN}, since=20), CFG, "minimax")
    with pytest.raises(FrozenInstanceError):
        v.status = "stable"  # type: ignore[misc]
    d = json.loads(json.dumps(v.to_dict()))
    assert d["status"] == "diverged" and d["onset_epoch"] == 20 and d["problems"] == ["diverged"]
    assert v.status in STATUSES and set(v.problems) <= set(PROBLEMS)


def test_sparse_and_null_records_are_tolerated():
    history = [{"epoch": e, "loss/d": 0.7, "loss/g": 0.7, "d/real": None} for e in range(1, 8)]
    v = verdict(history, CFG, "non_saturating")
    assert (v.status, v.evidence["loss/d"]) == ("stable", 0.7)
    assert assess(history, CFG, "non_saturating").phase == "early"


def test_verdict_is_cheap_on_a_long_failing_history():
    history = _set(
        _history(3000), {**D_STRONG, "grad/g_norm": 1e-9}
    )  # worst case: whole-run streaks
    start = time.perf_counter()
    v = verdict(history, CFG, "non_saturating")
    assert v.status == "vanishing_gradients"
    assert time.perf_counter() - start < 0.5


def test_confident_failure_needs_the_same_failure_at_patience_evaluations():
    # Collapse seen from the evaluation at epoch 10 on (evaluations every 5 epochs).
    collapsed = _set(_history(20), {"quality/modes": 2}, since=10)

    def stop_at(history, patience):
        for n in range(1, len(history) + 1):
            v = confident_failure(history[:n], CFG, "non_saturating", n_modes=8, patience=patience)
            if v is not None:
                return n, v
        return None, None

    assert stop_at(collapsed, 1)[0] == 10
    epoch, v = stop_at(collapsed, 2)
    assert epoch == 15 and v.status == "mode_collapse" and v.onset_epoch == 10
    assert stop_at(collapsed, 3)[0] == 20
    # A collapse the next evaluation no longer shows is never stopped on.
    recovered = _set(_history(20), {"quality/modes": 2}, since=10, until=14)
    assert stop_at(recovered, 2) == (None, None)
    assert stop_at(_history(20), 1) == (None, None)


def test_confident_failure_stops_divergence_at_once_and_ignores_other_statuses():
    history = _set(_history(20), {"loss/d": math.nan}, since=7)
    v = confident_failure(history[:7], CFG, "non_saturating", patience=5)
    assert v is not None and v.status == "diverged" and v.onset_epoch == 7
    poor = _set(_history(20), {"quality/hq_fraction": 0.1}, since=5)
    assert confident_failure(poor, CFG, "non_saturating", n_modes=8, patience=1) is None
    with pytest.raises(ValueError, match="patience"):
        confident_failure(poor, CFG, "non_saturating", patience=0)


# ---------------------------------------------------------------- issue 12 rules
def _mixture_eval(values):
    """Override the mixture evaluations from epoch 15 on (evaluations every 5 epochs)."""
    return _set(_history(), values, since=15)


PARTIAL = {"quality/modes": 1, "quality/hq_fraction": 0.05, "quality/modes_reached": 2,
           "quality/near_fraction": 0.9, "diversity/ratio": 0.25}


def test_blurry_blob_over_few_modes_is_mode_collapse_not_poor_quality():
    v = verdict(_mixture_eval(PARTIAL), CFG, "non_saturating", n_modes=8)
    assert (v.status, v.onset_epoch) == ("mode_collapse", 15)
    assert v.evidence["quality/modes_reached"] == 2 and "poor_quality" in v.problems


def test_spread_or_unfound_samples_with_few_hq_are_poor_quality():
    blurry_ring = {**PARTIAL, "quality/modes_reached": 8, "diversity/ratio": 0.95}
    assert verdict(_mixture_eval(blurry_ring), CFG, "hinge", n_modes=8).status == "poor_quality"
    # A blob between the modes, where an untrained G starts: bunched, but near no mode.
    centre = {**PARTIAL, "quality/modes_reached": 0, "quality/near_fraction": 0.0}
    assert verdict(_mixture_eval(centre), CFG, "hinge", n_modes=8).status == "poor_quality"
    # Few modes reached but spread like the data: not bunched.
    offset = {**PARTIAL, "diversity/ratio": 0.8}
    assert verdict(_mixture_eval(offset), CFG, "hinge", n_modes=8).status == "poor_quality"


IMAGES_FEW_CLASSES = {"quality/class_coverage": 0.2, "quality/classes": 2, "quality/fid_rel": 0.4}


def test_few_classes_of_data_like_images_is_mode_collapse_and_noise_is_poor_quality():
    history = _set(_history(kind="images"), IMAGES_FEW_CLASSES, since=10)
    v = verdict(history, CFG, "non_saturating")
    assert (v.status, v.onset_epoch) == ("mode_collapse", 10)
    assert v.evidence["quality/class_coverage"] == 0.2
    noise = {**IMAGES_FEW_CLASSES, "quality/fid_rel": 1.3, "quality/pixvar": 0.02}
    v = verdict(_set(_history(kind="images"), noise, since=10), CFG, "non_saturating")
    assert (v.status, v.evidence) == ("poor_quality", {"quality/fid_rel": 1.3})


def test_relative_fid_decides_poor_quality_on_images():
    history = _set(_history(kind="images"), {"quality/fid_rel": 0.7}, since=15)
    assert verdict(history, CFG, "hinge").status == "poor_quality"
    history = _set(_history(kind="images"), {"quality/fid_rel": 0.3}, since=15)
    assert verdict(history, CFG, "hinge").status == "stable"


def _separating(loss, since, margin_of):
    """D classifies every sample right from `since` on, with a margin of margin_of(epoch)."""
    history = _history()
    for rec in history:
        if rec["epoch"] >= since:
            m = margin_of(rec["epoch"])
            rec.update({"d/accuracy": 1.0, "loss/w_dist": m})
            if loss in ("non_saturating", "minimax", "least_squares"):
                rec.update({"d/real": 0.5 + m / 2, "d/fake": 0.5 - m / 2})
            else:
                rec.update({"d/real": m / 2, "d/fake": -m / 2, "loss/d": 0.0})
    return history


@pytest.mark.parametrize("loss", ["hinge", "wasserstein", "non_saturating", "least_squares"])
def test_d_separating_every_sample_and_keeping_its_margin_is_d_dominance(loss):
    # Early margin: 0.4 (w_dist) or 0.45 (probabilities); now 0.86: NS 0.93 / 0.07.
    v = verdict(_separating(loss, 11, lambda e: 0.86), CFG, loss)
    assert (v.status, v.onset_epoch) == ("d_dominance", 11)
    assert v.evidence["d/accuracy"] == 1.0 and "d/early_margin" in v.evidence


@pytest.mark.parametrize("loss", ["hinge", "wasserstein"])
def test_a_perfect_d_whose_margin_shrank_is_not_dominance(loss):
    early = 0.4  # the healthy records' w_dist
    v = verdict(_separating(loss, 11, lambda e: 0.3 * early), CFG, loss)
    assert v.status == "stable"


def test_accuracy_just_under_the_threshold_is_not_dominance():
    history = _separating("hinge", 11, lambda e: 2.0)
    for rec in history[10:]:
        rec["d/accuracy"] = 0.94
    assert verdict(history, CFG, "hinge").status == "stable"


def _grad_trace(early=1.0, drop_from=11, factor=1e-4, n=20):
    history = _history(n)
    for rec in history:
        rec["grad/g_norm"] = early * (factor if rec["epoch"] >= drop_from else 1.0)
    return history


def test_g_gradient_down_three_orders_from_its_own_level_is_vanishing():
    history = _grad_trace(early=5.0)  # 5e-4 at the end: far above the absolute 1e-6
    v = verdict(history, CFG, "non_saturating")
    assert (v.status, v.onset_epoch) == ("vanishing_gradients", 11)
    assert v.evidence["grad/g_norm_early"] == 5.0
    # One spike inside the window does not hide it (the window median decides) ...
    history[-2]["grad/g_norm"] = 3.0
    assert verdict(history, CFG, "non_saturating").status == "vanishing_gradients"
    # ... and a drop of two orders is not vanishing.
    assert verdict(_grad_trace(factor=1e-2), CFG, "non_saturating").status == "stable"


def test_divergence_onset_is_the_start_of_sustained_growth():
    history = _history(14)
    for rec in history:  # losses x10 per epoch from epoch 9: 6, 60, ..., 6e5 at epoch 13
        if rec["epoch"] >= 9:
            rec["loss/g"] = 0.6 * 10.0 ** (rec["epoch"] - 8)
    v = verdict(history[:13], CFG, "non_saturating")
    assert (v.status, v.onset_epoch) == ("diverged", 9)
    assert "growing from epoch 9" in assess(history[:13], CFG, "non_saturating").problems[0].message
    # A sudden NaN has its own epoch as onset, whatever noise came before.
    sudden = _set(_history(14), {"loss/g": NAN}, since=12)
    assert verdict(sudden, CFG, "non_saturating").onset_epoch == 12


@pytest.mark.parametrize(("key", "value"), [("loss/g", 2e4), ("weights/d_abs_mean", 120.0)])
def test_finite_but_absurd_losses_and_weights_are_divergence(key, value):
    v = verdict(_set(_history(), {key: value}, since=18), CFG, "hinge")
    assert (v.status, v.evidence) == ("diverged", {key: value})


def test_non_finite_samples_with_finite_losses_are_divergence():
    history = _set(_history(), {"quality/nonfinite": 0.1}, since=15)
    v = verdict(history, CFG, "non_saturating", n_modes=8)
    assert (v.status, v.onset_epoch, v.evidence) == ("diverged", 15, {"quality/nonfinite": 0.1})


def test_new_warnings_decide_nothing():
    at_chance = _set(_history(), {"loss/d": 0.695, "d/accuracy": 0.5}, since=10)
    v = verdict(at_chance, CFG, "non_saturating")
    assert v.status == "stable" and "d_at_chance" in v.problems
    flat = _set(_history(), {"loss/d": 0.62, "loss/g": 1.1}, since=10)
    assert verdict(flat, CFG, "hinge").problems == ("losses_flat",)
    uniform = _set(_history(kind="images"), {"diversity/std": 0.5, "diversity/mean": 9.0},
                   since=10)
    v = verdict(uniform, CFG, "hinge")
    assert (v.status, v.problems) == ("stable", ("low_distance_spread",))


def test_health_line_and_summary():
    from gan_core.monitor import health_line, summarize

    assert health_line(assess(_history(), CFG, "non_saturating")) == "Healthy"
    history = _set(_history(), D_STRONG, since=9)
    assert health_line(assess(history, CFG, "non_saturating")) == "Issues: D too strong"
    for rec, line in zip(history, ["Healthy"] * 12 + ["Issues: D too strong"] * 8, strict=True):
        rec["monitor/health"] = line
    s = summarize(history, CFG, "non_saturating")
    assert s.epochs == 20 and s.issues_seen == ("D too strong",) and s.phase == "early"
    assert s.means["d/real"] == pytest.approx(0.99) and s.stds["d/real"] == pytest.approx(0.0)
    assert s.verdict.status == "d_dominance" and json.dumps(s.to_dict())
