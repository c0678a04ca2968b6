"""The example scripts behave like commands: ``--help`` describes them and runs nothing, and
``samplers_2d.py`` writes its PNG by default, as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(EXAMPLES / script), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "script",
    ["compose_flows.py", "noise_level_inference.py", "samplers_2d.py", "inverse_problems.py",
     "image_experiments.py"],
)
def test_help_describes_and_runs_nothing(script: str, tmp_path: Path) -> None:
    r = _run(script, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ") and "--help" in r.stdout
    # the docstring's first paragraph is the description, whole (not cut mid-sentence)
    doc_first = " ".join((EXAMPLES / script).read_text().split('"""')[1].split("\n\n")[0].split())
    assert doc_first[:60] in " ".join(r.stdout.split())
    assert not list(tmp_path.iterdir()), "--help wrote files"
    # nothing ran: no training output, no result table
    assert "wrote" not in r.stdout and "|---|" not in r.stdout


@pytest.mark.slow
def test_samplers_2d_writes_its_png_by_default(tmp_path: Path) -> None:
    r = _run("samplers_2d.py", "--steps", "5", "--num-samples", "100", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    png = tmp_path / "samplers_2d.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {png.name}" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samplers_2d.png"]  # atomic: no temp
