"""`troupe report`: a self-contained HTML page, rendered in headless Chromium — not blank, no console errors, no
network requests, and the run's agents, timeline and decisions on it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from browser import Chromium, ensure_chromium, file_url

HOSTILE = "Build a todo API <script>console.error('injected')</script><img src=http://127.0.0.1:9/x>"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    browser = Chromium(ensure_chromium())
    yield browser
    browser.close()


@pytest.mark.slow
def test_the_report_of_a_parallel_run_renders_in_chromium(
        troupe: Callable[..., CompletedProcess[str]], tmp_path: Path, chromium: Chromium) -> None:
    ran = troupe("run", "hierarchical", HOSTILE, "--thread", "rep", "--auto-approve", "--latency", "0.05",
                 "--quiet")
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "report.html"
    made = troupe("report", "rep", "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"wrote {out}"
    html = out.read_text()
    assert not re.search(r"<(script|img|link|iframe|object)\b", html), "run text is escaped; nothing is fetched"

    page = chromium.load(file_url(out))
    assert page.errors == []
    assert page.requests == []
    assert not page.blank()
    for heading in ("Graph", "Timeline", "Tokens and cost per agent", "Decision log", "Result"):
        assert heading in page.text
    for agent in ("supervisor", "architect", "db_engineer", "backend", "qa", "reviewer", "synthesizer"):
        assert agent in page.text
    assert "[why: " in page.text, "the decision log carries the reasons"
    bars = re.findall(r"<rect x='([\d.]+)' y='(\d+)' width='([\d.]+)' height='16' fill='[^']+'><title>", html)
    assert len(bars) >= 8
    spans = [(float(x), float(x) + float(w), y) for x, y, w in bars]
    assert any(a[2] != b[2] and a[0] < b[1] and b[0] < a[1] for a in spans for b in spans), \
        "two agents' bars overlap: the timeline shows the parallel work"


def test_the_browser_check_sees_errors_requests_and_blank_pages(tmp_path: Path, chromium: Chromium) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><p>broken</p><img src='http://127.0.0.1:9/pixel.png'>"
                   "<script>console.error('boom'); undefinedFunction();</script>")
    page = chromium.load(file_url(bad))
    assert any("boom" in e for e in page.errors)
    assert any("undefinedFunction" in e for e in page.errors)
    assert "http://127.0.0.1:9/pixel.png" in page.requests
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><body style='background:#fff'></body>")
    assert chromium.load(file_url(blank)).blank()


def test_report_of_an_unknown_run_or_to_a_missing_folder_is_one_clear_line(
        troupe: Callable[..., CompletedProcess[str]], tmp_path: Path) -> None:
    missing = troupe("report", "nope")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert troupe("run", "sequential", "Write a haiku", "--thread", "h", "--latency", "0", "--quiet").returncode == 0
    nowhere = troupe("report", "h", "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert nowhere.returncode == 2
    assert "cannot write" in nowhere.stderr and "Traceback" not in nowhere.stderr
