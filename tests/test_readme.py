"""The README keeps its promises: CI runs its test command, and every Python snippet runs on its
own, as shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln for ln in README.splitlines() if ln.startswith("pip install") and "&&" in ln]
    test_cmd = [c for c in commands if c.rstrip().endswith("pytest")]
    assert len(test_cmd) == 1, "README must hold exactly one install-and-test command"
    assert test_cmd[0] in ci.splitlines(), ".ci/run must run the README's test command verbatim"


def test_readme_gives_the_cpu_wheel_index() -> None:
    # a plain `pip install torch==2.13.0` takes PyPI's CUDA build on a normal Linux machine
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in README


def test_readme_has_its_snippets() -> None:
    assert len(SNIPPETS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs_on_its_own(index: int, tmp_path: Path) -> None:
    # a fresh interpreter per snippet: a snippet that leans on a name from an earlier one
    # (NameError) fails here, as it would for a reader who pastes it alone
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert r.returncode == 0, f"README snippet {index + 1} failed:\n{SNIPPETS[index]}\n{r.stderr}"
    assert r.stdout.strip(), f"README snippet {index + 1} printed nothing"
    print(f"README snippet {index + 1}: {elapsed:.1f} s")
