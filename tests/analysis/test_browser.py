"""The report opened in a real headless Chromium: the heatmap image and the tables render.

Needs Debian's Chromium (``apt-get install -y chromium chromium-driver``) and the ``playwright``
Python package; Playwright's own browser download does not work on these machines, so the test
drives the system browser. Skipped when Chromium is absent, unless CI is set: then it fails.

The constructed sweep directory always runs. Set GANSWEEP_DEMO_SWEEP to a real sweep directory
(e.g. the one ``gansweep run sweeps/examples/demo.yaml`` wrote) to render its report too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from analysis import load_results, triage
from analysis.cli import main
from analysis.report import prepare_report
from tests.analysis.grids import make_sweep_dir

pytestmark = pytest.mark.slow

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    for candidate in (
        os.environ.get("GANSWEEP_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "/usr/bin/chromium",
    ):
        if candidate and (path := shutil.which(candidate)):
            return path
    reason = "Chromium not found (apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser test must run")
    pytest.skip(reason)


def _sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(
                "the playwright package is missing; CI is set, so the browser test must run"
            )
        pytest.skip("the playwright package is missing (pip install playwright)")
    return sync_playwright


_PAGE_FACTS = """() => {
  const imgs = Array.from(document.images);
  const heat = imgs.filter(i => i.classList.contains('heatmap-img'));
  const box = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const table = document.querySelector('table.heatmap');
  const fail = table ? table.querySelector('td.fail') : null;
  return {
    title: document.title,
    summary: document.getElementById('summary').innerText,
    images: imgs.map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0})),
    heatmaps: heat.map(i => ({ok: i.complete && i.naturalWidth > 50 && i.naturalHeight > 50,
                             box: box(i)})),
    heatRows: table ? table.tBodies[0].rows.length : 0,
    heatFail: table ? table.querySelectorAll('td.fail').length : 0,
    heatBox: table ? box(table) : [0, 0],
    failColor: fail ? getComputedStyle(fail).backgroundColor : '',
    logRows: document.querySelector('table.log').tBodies[0].rows.length,
    causeRows: Array.from(document.querySelectorAll('table.causes tbody tr'))
      .map(r => [r.cells[0].innerText, r.cells[1].innerText]),
  };
}"""


def _open(html: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    chromium, sync_playwright = _chromium(), _sync_playwright()
    requests: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=60_000)
            facts = page.evaluate(_PAGE_FACTS)
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            context.close()
    return facts, requests


def _check(sweep: Path, tmp_path: Path) -> tuple[dict, object]:
    assert main(["triage", str(sweep), "--out", str(tmp_path / "report"), "--quiet"]) == 0
    result = triage(load_results(sweep))
    facts, requests = _open(tmp_path / "report" / "report.html", tmp_path)
    first = prepare_report(result).groups[0].panels[0]
    assert facts["summary"] == result.summary
    assert facts["heatmaps"] and all(h["ok"] and h["box"][0] > 100 for h in facts["heatmaps"])
    assert all(i["ok"] for i in facts["images"]), [i["alt"] for i in facts["images"] if not i["ok"]]
    assert facts["heatRows"] == first.share.shape[0] and facts["heatBox"][0] > 100
    assert facts["heatFail"] == int((first.share >= 1).sum().sum())
    assert facts["logRows"] == len(result.table)
    assert dict(facts["causeRows"])["init"] == str(result.cause_counts["init"])
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000
    return facts, result


def test_constructed_sweep_report_renders_in_headless_chromium(tmp_path):
    facts, result = _check(make_sweep_dir(tmp_path / "demo"), tmp_path)
    assert facts["title"] == "Triage: demo"
    assert facts["heatRows"] == 10 and facts["heatFail"] == result.n_failed  # one panel
    assert facts["failColor"] == "rgb(229, 57, 53)"
