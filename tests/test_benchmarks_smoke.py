"""Smoke test of ``benchmarks/bench_core.py --quick``: the script runs and prints its tables.

This checks the benchmark *script* (it imports, builds every model, times, samples, measures
memory in subprocesses and prints paired ratios); it does not time anything itself, since
speed is measured by running the benchmark, never in a timed test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_core.py"
#: A ratio cell as printed by benchmarks/_timing.py: "1.23x [1.10-1.40]".
RATIO = r"\d+\.\d\dx \[\d+\.\d\d-\d+\.\d\d\]"


@pytest.fixture(scope="module")
def quick_output() -> str:
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _rows(output: str, title: str) -> list[list[str]]:
    """Cells of the data rows of the table whose heading contains ``title``."""
    block = output.split(title, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    assert len(lines) >= 3, f"table {title!r} has no data rows:\n{block}"
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_logprob_table_has_paired_ratios(quick_output: str) -> None:
    rows = _rows(quick_output, "log_prob: wrapper overhead")
    assert len(rows) == 1  # --quick times one size
    d, h, b, ms, lp_net, bound_net, net_raw, zuko, nflows, thr_zuko, thr_nflows = rows[0]
    assert (d, h, b) == ("8", "16", "32")
    assert float(ms) > 0
    for cell in (lp_net, bound_net, net_raw, nflows, thr_nflows):
        assert re.fullmatch(RATIO, cell), cell
    # zuko is an optional extra: a ratio when installed, "n/a" otherwise.
    for cell in (zuko, thr_zuko):
        assert cell == "n/a" or re.fullmatch(RATIO, cell), cell
    # Each ratio is a median inside its own interquartile range.
    med, lo, hi = map(float, re.findall(r"\d+\.\d\d", lp_net))
    assert lo <= med <= hi


def test_score_sampling_memory_and_goals_are_reported(quick_output: str) -> None:
    score = _rows(quick_output, "score / log_prob")
    assert re.fullmatch(RATIO, score[0][3]), score
    sampling = _rows(quick_output, "ancestral sampling")
    assert [r[0] for r in sampling] == ["ours", "zuko", "nflows"]
    assert re.fullmatch(RATIO, sampling[0][-1]), sampling
    memory = {r[0]: r for r in _rows(quick_output, "peak memory")}
    # Ours samples under no_grad (no graph kept); nflows keeps autograd on while sampling.
    assert memory["ours"][4] == "no"
    assert memory["nflows"][4] == "yes"
    goals = quick_output.split("## goals", 1)[1]
    assert re.search(r"(met   |MISSED) D=8 H=16 B=32 model\(s\)\.log_prob / net", goals), goals


def test_matched_depth_table_counts_equal_layers(quick_output: str) -> None:
    rows = _rows(quick_output, "log_prob throughput at matched depth")
    assert [r[0] for r in rows] == ["3", "6"]
    # The layer counts are counted from the built modules, so a mismatched config would show.
    layers = {r[0]: r[4] for r in rows}
    assert layers["3"] in ("3/3/-/3", "3/-/-/3"), layers  # "-": zuko not installed
    assert layers["6"] in ("6/6/6/6", "6/-/-/6"), layers
    for row in rows:
        assert re.fullmatch(RATIO, row[6]), row  # skip cost
        assert re.fullmatch(RATIO, row[-1]), row  # nflows / ours
    goals = quick_output.split("## goals", 1)[1]
    assert re.search(r"(met   |MISSED) depth 3, ours vs nflows: throughput >= 1\.0", goals)
