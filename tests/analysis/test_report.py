"""Report files, the CLI and the terminal summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis import experiment_log, format_summary, load_results, triage, write_report
from analysis.cli import main
from tests.analysis.grids import grid, make_sweep_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    path = make_sweep_dir(tmp_path_factory.mktemp("sweep") / "demo")
    result = triage(load_results(path))
    out = tmp_path_factory.mktemp("report")
    return path, result, out, write_report(result, out)


def test_sweep_dir_triage_gets_both_causes(sweep):
    _, result, _, _ = sweep
    causes = {d.trial_id: d.cause for d in result.diagnoses}
    assert causes["s7-b64-lr0.001"] == causes["s7-b256-lr0.001"] == "init"
    assert causes["s3-b1024-lr0.001"] == "batch"
    assert result.n_errored == 1  # s1-b64 raised: reported, not triaged


def test_report_files_are_written(sweep):
    _, result, out, paths = sweep
    assert {"json", "markdown", "html"} <= set(paths)
    doc = json.loads(paths["json"].read_text())
    assert doc["sweep"] == "demo" and doc["counts"]["errored"] == 1
    assert doc["counts"]["by_cause"]["init"] >= 2 and doc["counts"]["by_cause"]["batch"] >= 9
    for plan in result.followups:
        assert yaml.safe_load(paths[f"followup_{plan.index}"].read_text())["grid"] == plan.grid


def test_html_is_self_contained_with_summary_first_heatmap_tables_and_figures(sweep):
    _, result, _, paths = sweep
    html = paths["html"].read_text()
    body = html[html.index("<body>") :]
    assert body.index('id="summary"') < body.index('id="heatmaps"') < body.index('id="causes"')
    assert body.index('id="causes"') < body.index('id="actions"') < body.index('id="failures"')
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', html)
    failed_shown = min(40, result.n_failed)
    assert len(images) == 1 + 2 * failed_shown  # heatmap + loss curves and samples per failure
    assert 'class="heatmap"' in html and 'class="log"' in html and 'class="causes"' in html
    assert "Master experiment log" in html and "Mode-collapse symptoms" in html
    assert "http://127.0.0.1:5000/#/experiments/" not in html  # no experiment id: runs:/ form


def test_markdown_has_the_same_sections(sweep):
    _, result, _, paths = sweep
    md = paths["markdown"].read_text()
    assert md.startswith("# Triage: demo\n\n**" + result.summary + "**")
    for heading in (
        "## Cause counts",
        "## Recommended actions",
        "## Outcomes over seed x batch size",
        "## Failures",
        "## Master experiment log",
        "### Mode-collapse symptoms",
    ):
        assert heading in md
    assert (
        "| Run | Date | Tracking URL | Batch | Epochs | Stability | D Loss | G Loss | Notes |" in md
    )


def test_experiment_log_rows(sweep):
    _, result, _, _ = sweep
    log = experiment_log(result).set_index("Run")
    assert list(log.columns) == [
        "Date",
        "Tracking URL",
        "Batch",
        "Epochs",
        "Stability",
        "D Loss",
        "G Loss",
        "Notes",
    ]
    row = log.loc["s7-b256-lr0.001"]
    assert row["Stability"] == "❌ mode_collapse" and row["D Loss"] == "0.735"
    assert row["Date"] == "2026-11-22" and row["Tracking URL"].startswith("runs:/")
    assert row["Notes"].startswith("init (")
    assert log.loc["s1-b64-lr0.001", "Notes"] == "not triaged: RuntimeError: boom"
    assert log.loc["s2-b64-lr0.001", "Stability"] == "✅ Stable"


def test_tracking_url_links_to_the_run_when_the_experiment_is_known():
    table = grid(lambda s, b, lr: b == 1024).assign(
        mlflow_run_id="abc", mlflow_experiment_id="7", tracking_uri="http://mlflow:5000/"
    )
    log = experiment_log(triage(table))
    assert set(log["Tracking URL"]) == {"http://mlflow:5000/#/experiments/7/runs/abc"}


def test_terminal_summary(sweep):
    _, result, _, _ = sweep
    text = format_summary(result)
    lines = text.splitlines()
    assert lines[0] == result.summary
    assert re.search(r"^init\s+\d+\s+0\.\d\d$", text, re.M)
    assert "batch size" in text and "Recommended actions:" in text
    assert len(lines) < 40 and max(map(len, lines)) <= 220


def test_cli_writes_the_report_and_prints_the_summary(tmp_path, capsys):
    table = grid(lambda s, b, lr: b == 1024).rename(columns={"seed": "rs", "batch_size": "bs"})
    table.to_csv(tmp_path / "results.csv", index=False)
    code = main(
        [
            "triage",
            str(tmp_path / "results.csv"),
            "--out",
            str(tmp_path / "out"),
            "--col",
            "seed=rs",
            "--col",
            "batch_size=bs",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("10 of 30 trials failed (33%): batch 10.")
    assert (tmp_path / "out" / "report.html").is_file() and (
        tmp_path / "out" / "triage.json"
    ).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.parquet"], "missing.parquet: no such file or directory"),
        (["{csv}", "--col", "seed"], "--col takes ROLE=COLUMN"),
        (["{csv}", "--col", "sed=rs"], "unknown column role 'sed'"),
        (["{csv}"], "missing required column 'seed'"),
        (["{csv}", "--col", "seed=rs", "--target-confidence", "1.5"], "--target-confidence"),
    ],
)
def test_cli_bad_input_exits_2_with_one_message(tmp_path, capsys, args, message):
    grid(lambda s, b, lr: False).rename(columns={"seed": "rs"}).to_csv(
        tmp_path / "r.csv", index=False
    )
    argv = [
        "triage",
        *[a.replace("{csv}", str(tmp_path / "r.csv")) for a in args],
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gansweep triage: error: ") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_register_adds_triage_to_another_parser():
    import argparse

    from analysis.cli import register, run_triage

    parser = argparse.ArgumentParser(prog="gansweep")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["triage", "x.parquet", "--out", "o", "--group-by", "train.n_critic"])
    assert args.func is run_triage and args.group_by == ["train.n_critic"]


def test_python_dash_m_analysis(tmp_path):
    grid(lambda s, b, lr: s == 7).to_parquet(tmp_path / "r.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "triage",
            str(tmp_path / "r.parquet"),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads((tmp_path / "out" / "triage.json").read_text())["counts"]["by_cause"]["init"]
        == 3
    )
