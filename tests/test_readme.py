"""The README's quick-start test command is exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln for ln in readme.splitlines() if ln.startswith("pip install") and "&&" in ln]
    test_cmd = [c for c in commands if c.rstrip().endswith("pytest")]
    assert len(test_cmd) == 1, "README must hold exactly one install-and-test command"
    assert test_cmd[0] in ci.splitlines(), ".ci/run must run the README's test command verbatim"
