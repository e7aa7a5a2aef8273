"""Report files, the CLI and the terminal summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis import (
    experiment_log,
    format_summary,
    load_results,
    triage,
    triage_to_report,
    write_report,
)
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
    assert result.followups
    for plan in result.followups:
        text = paths[f"followup_{plan.index}"].read_text()
        assert yaml.safe_load(text)["grid"] == plan.grid
        assert "# base: FILL IN" in text  # no sweep.yaml in this folder: the base is marked


def test_html_is_self_contained_with_summary_and_actions_first_and_figures(sweep):
    _, result, _, paths = sweep
    html = paths["html"].read_text()
    body = html[html.index("<body>") :]
    assert body.index('id="summary"') < body.index('id="actions"') < body.index('id="causes"')
    assert body.index('id="causes"') < body.index('id="heatmaps"') < body.index('id="failures"')
    assert body.index("Known-good settings") < body.index('id="causes"')
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', html)
    # One heatmap, then loss curves and samples of one trial per failure group.
    assert len(images) == 1 + 2 * len(result.groups)
    assert html.count('class="failure"') == len(result.groups) < result.n_failed
    assert 'class="heatmap"' in html and 'class="log"' in html and 'class="causes"' in html
    assert "Master experiment log" in html and "Mode-collapse symptoms" in html
    assert "http://127.0.0.1:5000/#/experiments/" not in html  # no experiment id: runs:/ form


def test_markdown_has_the_same_sections(sweep):
    _, result, _, paths = sweep
    md = paths["markdown"].read_text()
    escaped = result.summary.replace("<", "&lt;")  # values are escaped: "p<0.001" too
    assert md.startswith("# Triage: demo\n\n**" + escaped + "**")
    headings = [
        "## Recommended actions",
        "### Known-good settings",
        "## Cause counts",
        "## Outcomes over seed x batch size",
        "## Failures, grouped",
        "## Master experiment log",
        "## How causes and confidences are decided",
    ]
    assert [md.index(h) for h in headings] == sorted(md.index(h) for h in headings)
    assert "### Mode-collapse symptoms" in md
    assert md.count("\nTrials: ") == len(result.groups)
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
    assert row["Notes"].startswith("init (") and "group " in row["Notes"]
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
    assert re.search(r"^init\s+\d+\s+0\.\d\d\s+\d+$", text, re.M)
    assert re.search(r"^errored\s+1\s", text, re.M)
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


def test_report_md_escapes_html_and_math_text_in_values_renders(tmp_path):
    """Values are data, never markup: HTML in report.md is escaped, '$x^$' is no math text."""
    table = grid(lambda s, b, lr: s == 7).astype({"seed": object})
    table.loc[table["seed"] == 7, "seed"] = "<img src=x onerror=alert(1)>"
    table.loc[table["seed"] == 3, "seed"] = "$x^$"
    table["train.opt"] = "<b>adam</b> $\\alpha$"
    table.loc[table["seed"] == 5, "train.opt"] = "sgd"
    table["trial_id"] = table["trial_id"] + "<i>"
    table.to_csv(tmp_path / "r.csv", index=False)
    assert main(["triage", str(tmp_path / "r.csv"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "<img" not in md and "<b>" not in md and "<i>" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "&lt;b&gt;adam&lt;/b&gt;" in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "$x^$" in md  # shown as written; the heatmap drew it as text


def test_out_naming_an_existing_file_exits_2_with_one_line(tmp_path, capsys):
    grid(lambda s, b, lr: s == 7).to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "taken").write_text("keep me")
    assert main(["triage", str(tmp_path / "r.csv"), "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gansweep triage: error: --out {tmp_path / 'taken'}: exists and is not a directory; "
        "give a directory"
    ]
    assert (tmp_path / "taken").read_text() == "keep me"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.assign(batch_size=t["batch_size"].astype(float).where(t.index > 0, 1e30)),
            "batch_size must be a positive whole number up to 2147483647; got 1e+30",
        ),
        (
            lambda t: t.assign(lr=t["lr"].where(t.index > 0, float("inf"))),
            "lr must be a finite positive number; got inf",
        ),
    ],
    ids=["batch-1e30", "lr-inf"],
)
def test_impossible_values_exit_2_with_one_line(tmp_path, capsys, change, message):
    change(grid(lambda s, b, lr: s == 7)).to_csv(tmp_path / "r.csv", index=False)
    assert main(["triage", str(tmp_path / "r.csv"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_seed_beyond_int64_is_triaged_like_any_other(tmp_path, capsys):
    table = grid(lambda s, b, lr: s == 7).astype({"seed": object})
    table.loc[table["seed"] == 7, "seed"] = 2**63 + 1
    table.to_csv(tmp_path / "r.csv", index=False)
    assert main(["triage", str(tmp_path / "r.csv"), "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "triage.json").read_text())
    (group,) = [g for g in doc["groups"] if g["cause"] == "init"]
    assert group["title"] == f"seed {2**63 + 1}"
    assert f"seed {2**63 + 1}" in capsys.readouterr().out


def test_pruned_trials_show_as_censored_in_the_cli_log_and_json(tmp_path, capsys):
    table = grid(lambda s, b, lr: s == 7).assign(status="ok", epochs_run=20)
    table.loc[table["seed"] == 2, ["status", "verdict", "epochs_run"]] = ["pruned", "pruned", 4]
    table.to_parquet(tmp_path / "r.parquet")
    assert main(["triage", str(tmp_path / "r.parquet"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 of 27 trials failed (11%); 3 pruned (censored), not triaged: init 3.")
    assert re.search(r"^pruned\s+3\s+\(censored", out, re.M)
    doc = json.loads((tmp_path / "out" / "triage.json").read_text())
    assert doc["counts"]["pruned"] == 3
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.count("✂️ pruned") == 3 and "stopped by the scheduler or pruner" in md


def test_several_sources_are_triaged_together(tmp_path):
    """A sweep and its follow-up: trial ids that repeat get their source's name."""
    first = grid(lambda s, b, lr: s == 2, seeds=(1, 2))
    more = grid(lambda s, b, lr: False, seeds=(3, 4, 5, 6, 7, 8))
    more["trial_id"] = first["trial_id"].iloc[0]  # ids clash with the first table's
    more["trial_id"] = [f"t{i}" for i in range(len(more))]
    first["trial_id"] = [f"t{i}" for i in range(len(first))]
    first.to_csv(tmp_path / "a.csv", index=False)
    more.to_csv(tmp_path / "b.csv", index=False)
    code = main(
        ["triage", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "o")]
    )
    assert code == 0
    doc = json.loads((tmp_path / "o" / "triage.json").read_text())
    assert doc["counts"]["trials"] == 24 and doc["counts"]["by_cause"]["init"] == 3
    assert {f["trial_id"] for f in doc["failures"]} == {"a#0:t3", "a#0:t4", "a#0:t5"}


def _dry_run(path: Path, monkeypatch, tmp_path) -> int:
    from sweeps.cli import main as gansweep

    monkeypatch.chdir(tmp_path)  # a dry run writes nothing, but resolves paths here
    return gansweep(["run", str(path), "--dry-run"])


def test_followups_of_a_sweep_folder_are_its_own_sweep_file_with_a_new_grid(tmp_path, monkeypatch):
    root = make_sweep_dir(tmp_path / "demo")
    own = {
        "name": "demo",
        "base": {"data": {"name": "ring"}, "train": {"steps_per_epoch": 10}},
        "epochs": 3,
        "grid": {"seed": list(range(1, 11)), "batch_size": [64, 256, 1024], "lr": [1e-3]},
        "max_trials": 40,
    }
    (root / "sweep.yaml").write_text(yaml.safe_dump(own))
    result = triage(load_results(root))
    paths = write_report(result, tmp_path / "report", sweep_dir=root)
    files = [p for k, p in paths.items() if k.startswith("followup_")]
    assert files
    for path in files:
        doc = yaml.safe_load(path.read_text())
        assert doc["base"] == own["base"] and doc["epochs"] == 3
        assert doc["name"].startswith("demo-followup-")
        assert _dry_run(path, monkeypatch, tmp_path) == 0
    assert not (tmp_path / "runs").exists()


def test_followups_of_a_csv_table_are_complete_files_with_the_base_marked(tmp_path, monkeypatch):
    table = grid(lambda s, b, lr: s == 2, seeds=(1, 2), extra={"train.n_critic": 2})
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "trial_id": "x", "train.n_critic": 5}
    table.to_csv(tmp_path / "my results.csv", index=False)
    paths = triage_to_report(tmp_path / "my results.csv", tmp_path / "report")[1]
    files = [p for k, p in paths.items() if k.startswith("followup_")]
    assert files
    for path in files:
        text = path.read_text()
        assert "# base: FILL IN" in text and "NOT the original sweep" in text
        doc = yaml.safe_load(text)
        assert doc["name"] == f"my-results-followup-{path.stem.split('_')[1]}"
        assert doc["grid"]["train.n_critic"] == [2] and doc["max_trials"] >= 1
        assert _dry_run(path, monkeypatch, tmp_path) == 0
    assert "fill in the original run config" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_followups_of_an_mlflow_sweep_rebuild_its_base_from_the_logged_config(
    tmp_path, monkeypatch
):
    """Child runs log the flattened run config (as sweeps does): the follow-up's base is the
    config every trial shared, and the file runs as it stands."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    from analysis._sweepfile import yaml_loader
    from gan_core.config import RunConfig, flatten_config

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("demo")
    pid = client.create_run(exp, run_name="demo").info.run_id
    base = RunConfig.from_dict({"data": {"name": "grid"}, "train": {"n_critic": 2, "epochs": 7}})
    for s in (1, 2):
        for b in (64, 256, 1024):
            run = client.create_run(
                exp,
                tags={
                    "mlflow.parentRunId": pid,
                    "gansweep.trial_id": f"s{s}b{b}",
                    "gansweep.verdict": "mode_collapse" if s == 2 else "stable",
                },
            )
            config = base.replace(**{"seed": s, "train.batch_size": b}).to_dict()
            params = [
                Param(k, json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v))
                for k, v in flatten_config(config).items()
            ]
            client.log_batch(run.info.run_id, params=params)
            client.set_terminated(run.info.run_id)
    result, paths = triage_to_report(f"mlflow:{pid}", tmp_path / "report", tracking_uri=uri)
    files = [p for k, p in paths.items() if k.startswith("followup_")]
    assert files and result.groups[0].best_guess == "init"
    for path in files:
        text = path.read_text()
        assert "# base: the run config every trial of the original sweep shared" in text
        doc = yaml.load(text, Loader=yaml_loader())
        assert doc["base"]["data"]["name"] == "grid" and doc["base"]["train"]["n_critic"] == 2
        assert doc["base"]["train"]["epochs"] == 7 and "batch_size" not in doc["base"]["train"]
        assert doc["base"]["generator"]["hidden_dims"] == [128, 128]
        assert _dry_run(path, monkeypatch, tmp_path) == 0
