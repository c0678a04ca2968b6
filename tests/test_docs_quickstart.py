"""The quick start's ``>>>`` blocks each run on their own, as the README's snippets do.

A reader pastes one block into a fresh interpreter: a block that leans on a name defined in an
earlier one fails with a ``NameError``. Each block runs here as a doctest with empty globals
(and Sphinx's doctest flags), so it must import and build everything it uses.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "guides" / "quickstart.rst"


def doctest_blocks(text: str) -> list[str]:
    """The bodies of the ``.. doctest::`` directives of an rst text, dedented."""
    blocks = []
    for m in re.finditer(r"^\.\. doctest::\n((?:\n|   .*\n)+)", text, flags=re.MULTILINE):
        body = "\n".join(line[3:] for line in m.group(1).splitlines())
        blocks.append(body.strip("\n") + "\n")
    return blocks


BLOCKS = doctest_blocks(QUICKSTART.read_text(encoding="utf-8"))


def test_quickstart_has_its_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_quickstart_block_runs_on_its_own(index: int) -> None:
    flags = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1
    test = doctest.DocTestParser().get_doctest(BLOCKS[index], {}, f"quickstart block {index + 1}",
                                               str(QUICKSTART), 0)
    runner = doctest.DocTestRunner(optionflags=flags)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, f"quickstart block {index + 1} fails on its own:\n" + "".join(out)
