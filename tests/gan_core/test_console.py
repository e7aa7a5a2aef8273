"""Console blocks in the training guide's format (../shared/seeds/001, "Training Log Output")."""

from __future__ import annotations

import io
import math

from gan_core.console import ConsoleSink, format_epoch, format_verdict
from gan_core.monitor import Verdict

# The guide's example epoch, as a record.
RECORD = {
    "epoch": 11999,
    "time/epoch_s": 1.46,
    "loss/d": 5.4859,
    "loss/d_real": 5.4853,
    "loss/d_fake": 5.4865,
    "loss/g": -115.549,
    "loss/w_dist": 115.55,
    "weights/d_mean": 0.0024,
    "weights/d_std": 0.0096,
    "weights/g_mean": 0.0028,
    "weights/g_std": 0.0810,
    "weights/clip_pct": 0.0,
    "stability/dg_ratio": 0.0475,
    "stability/loss_var": 0.000002,
    "d/real": 3.1,  # not shown in the block
}
QUALITY = {"quality/fid": 333.1, "quality/is": 2.12, "quality/is_std": 0.19,
           "quality/pixvar": 0.2960}
HEAVY = "═" * 75
LIGHT = "─" * 75


def test_block_follows_the_guide_with_its_bands():
    # The guide's block, with the bands of its tables: D/G 0.0475 is in none, Clip% 0.0% is
    # "ideal", IS 2.12 "moderate", PixVar 0.296 "healthy", and FID 333.1 on Inception "fair".
    expected = "\n".join(
        [
            HEAVY,
            "Epoch 11999/12000 [1.46s]",
            LIGHT,
            "  Losses     │ D: 5.4859 (R:5.4853 F:5.4865)  G: -115.549  W-dist: 115.55",
            "  Weights    │ Critic μ:0.0024 σ:0.0096  Gen μ:0.0028 σ:0.0810",
            "  Stability  │ D/G Ratio: 0.0475  Clip%: 0.0% (ideal)  Var: 0.000002",
            HEAVY,
            "",
            "  Computing quality metrics...",
            "  Quality    │ FID: 333.1 (fair)  IS: 2.12±0.19 (moderate)  PixVar: 0.2960 (healthy)",
        ]
    )
    assert format_epoch({**RECORD, **QUALITY}, 12000, "inception") == expected


def test_classifier_fid_is_named_and_has_no_band():
    row = format_epoch({**RECORD, **QUALITY}, 12000).splitlines()[-1]
    assert row.startswith("  Quality    │ FID (classifier): 333.1  IS:")
    assert "(fair)" not in row


def test_bands_of_the_guide():
    from gan_core.console import band

    assert band("stability/dg_ratio", 1.5) == "critic strong"
    assert band("stability/dg_ratio", 0.07) == "balanced"
    assert band("stability/dg_ratio", 0.005) == "possible collapse"
    assert band("stability/dg_ratio", 0.5) is None  # between the guide's bands
    assert band("weights/clip_pct", 60) == "high: raise the bound if it persists"
    assert band("weights/clip_pct", 25) == "normal early"
    assert band("quality/is", 4.5) == "good" and band("quality/is", 1.5) == "limited"
    assert band("quality/pixvar", 0.05) == "mode collapse"
    assert band("quality/fid", 40) == "excellent" and band("quality/fid", 450) == "poor"
    assert band("quality/is", float("nan")) is None and band("loss/d", 0.7) is None


def test_health_row_and_summary():
    from gan_core.console import format_summary
    from gan_core.monitor import RunSummary

    rec = {**RECORD, "monitor/phase": "competitive", "monitor/health": "Issues: D too strong"}
    assert "  Health     │ competitive · Issues: D too strong" in format_epoch(rec, 12000)
    summary = RunSummary(12000, 5, {"loss/g": -115.5, "d/real": 3.1}, {"loss/g": 0.2},
                         "converged", "Healthy", ("D too strong",),
                         Verdict("stable", None, {}, ()))
    text = format_summary(summary)
    assert "G loss: -115.5000 ± 0.2000" in text and "D(real): 3.1000" in text
    assert "Health status: Healthy" in text and "seen during the run: D too strong" in text


def test_quality_row_only_on_evaluation_epochs():
    lines = format_epoch(RECORD, 12000).splitlines()
    assert len(lines) == 7 and not any("Quality" in line or "Computing" in line for line in lines)


def test_mixture_quality_row_shows_modes_hq_and_kl():
    mixture = {"quality/modes": 24.0, "quality/hq_fraction": 0.936, "quality/kl": 0.04}
    row = format_epoch({**RECORD, **mixture}, 12000).splitlines()[-1]
    assert row == "  Quality    │ Modes: 24  HQ%: 93.6%  KL: 0.040"


def test_missing_keys_and_nan_are_tolerated():
    block = format_epoch({"epoch": 3, "loss/d": math.nan, "loss/g": None}, None)
    lines = block.splitlines()
    assert lines[1] == "Epoch 3"
    assert lines[3] == "  Losses     │ D: nan (R:n/a F:n/a)  G: n/a  W-dist: n/a"
    assert lines[5] == "  Stability  │ D/G Ratio: n/a  Clip%: n/a  Var: n/a"


def test_sink_prints_blocks_unless_quiet(capsys):
    stream = io.StringIO()
    sink = ConsoleSink(12000, stream=stream)
    sink.start({"train.g_lr": 1e-4})
    sink.log_params({"train.g_lr": 1e-4})
    sink.log(RECORD, step=11999)
    sink.finish("stable")
    assert stream.getvalue() == format_epoch(RECORD, 12000) + "\n"

    quiet = ConsoleSink(12000, quiet=True)
    quiet.log(RECORD, step=11999)
    assert capsys.readouterr().out == ""


def test_sink_uses_step_when_the_record_has_no_epoch(capsys):
    ConsoleSink(10).log({"loss/d": 0.7}, step=4)
    assert capsys.readouterr().out.splitlines()[1] == "Epoch 4/10"


def test_format_verdict_is_one_line():
    stable = Verdict("stable", None, {"loss/d": 0.69}, ("low_dg_ratio",))
    assert format_verdict(stable) == "Verdict: stable │ problems: low_dg_ratio"
    collapsed = Verdict(
        "mode_collapse", 12, {"quality/modes": 2.0, "g/accuracy": 0.995}, ("mode_collapse",)
    )
    assert format_verdict(collapsed) == (
        "Verdict: mode_collapse from epoch 12 │ quality/modes=2, g/accuracy=0.995"
        " │ problems: mode_collapse"
    )
    assert "\n" not in format_verdict(collapsed)
