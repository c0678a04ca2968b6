"""The ``ncmle`` parser: fast (no torch at parse time), honest ``--help``, listings that agree."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "evaluate", "sample", "restore", "demo")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)


def test_help_and_argument_errors_do_not_import_torch() -> None:
    # the cause of an 8 s `ncmle --help`: building the parser imported torch and Pyro
    code = (
        "import sys, contextlib, io\n"
        "from ncmle_prob.cli import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    for argv in (['--help'], ['train', '--help'], ['restore', '--help'],\n"
        "                 ['train', '--steps', '0'], ['restore', '--task', 'x'],\n"
        "                 ['train', '--out', '/dev/null/x'],\n"
        "                 ['evaluate', 'a.pt', '--sigmas', '-1']):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(sorted(m for m in ('torch', 'pyro', 'numpy', 'matplotlib') if m in sys.modules))\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_help_is_fast() -> None:
    # well under a second on an idle machine; the bound leaves room for a loaded CI machine
    # (importing torch alone takes 2-8 s here, so any torch import fails this)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ncmle_prob.cli", "--help"], capture_output=True,
                       text=True, env=env, timeout=60)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0 and "restore" in r.stdout
    assert elapsed < 2.0, f"ncmle --help took {elapsed:.2f} s"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from ncmle_prob.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_defaults_show_once(command: str) -> None:
    p = _subparsers()[command]
    for action in p._actions:
        assert action.help, f"ncmle {command} {action.option_strings or action.dest}: no help"
    text = p.format_help()
    assert "(default: None)" not in text
    # one entry per option: its help text names a default at most once
    entries = re.split(r"\n  (?=-)", text)
    for entry in entries:
        assert entry.count("default") <= 1, entry
    for action in p._actions:
        if action.required and action.option_strings:
            start = text.index(action.option_strings[-1] + " ")
            entry = text[start:].split("\n  -", 1)[0]
            assert "(default:" not in entry, entry
    assert "(default: False)" not in text  # flags say what they do, not False


def test_help_shows_useful_defaults() -> None:
    text = " ".join(_subparsers()["train"].format_help().split())
    assert "(default: 2000)" in text and "(default: digits)" in text


def test_sample_help_lists_the_sampler_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from ncmle_prob import samplers
    from ncmle_prob.cli import main
    from ncmle_prob.cli.common import sampler_names

    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    names = sampler_names()
    assert {"ancestral", "annealed_langevin", "score_corrected_ancestral", "pyro_mala",
            "pyro_langevin"} <= set(names)
    assert names == samplers.available()  # the CLI lists exactly the registry
    for name in names:
        assert name in text


def test_dataset_names_agree_with_the_data_package() -> None:
    from ncmle_prob.cli.common import DATASETS
    from ncmle_prob.data import DATASETS as DATA_DATASETS

    assert tuple(DATASETS) == tuple(DATA_DATASETS)


def test_readme_names_every_sampler() -> None:
    from ncmle_prob.cli.common import sampler_names

    readme = (ROOT / "README.md").read_text()
    for name in sampler_names():
        assert f"`{name}`" in readme, name


def test_cli_docstring_examples_run_as_printed() -> None:
    # pytest's doctests see the module's globals; a reader of the API page does not. Run every
    # example of ncmle_prob.cli in an empty namespace: a missing import fails here.
    import doctest
    import importlib
    import pkgutil

    import ncmle_prob.cli

    finder = doctest.DocTestFinder()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    ran = 0
    for info in pkgutil.iter_modules(ncmle_prob.cli.__path__, "ncmle_prob.cli."):
        module = importlib.import_module(info.name)
        for test in finder.find(module, globs={}):
            if not test.examples:
                continue
            result = doctest.DocTestRunner(optionflags=flags).run(test)
            assert result.failed == 0, test.name
            ran += 1
    assert ran >= 5
