"""The Sphinx documentation builds warning-free and its guide examples run.

Both builds run ``python -m sphinx`` in a subprocess, exactly as a user or CI would, with ``-W``
so that any warning (a broken docstring, a page missing from every toctree, an autodoc import
failure) fails the build, and ``--keep-going`` so that the failure message lists all of them.
The doctest build reuses the HTML build's doctrees, so the sources are read only once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra (sphinx) is not installed")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _sphinx(builder: str, out: Path, doctrees: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # The guides train tiny models in their examples. On a shared 2-core machine torch's default
    # intra-op thread pool oversubscribes the cores and made them ~30x slower; one thread is
    # the fastest setting for models this small.
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
        "-d", str(doctrees), str(DOCS), str(out),
    ]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def html_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("docs")
    doctrees, html = base / "doctrees", base / "html"
    proc = _sphinx("html", html, doctrees)
    assert proc.returncode == 0, (
        "sphinx-build -W -b html failed (warnings are errors):\n" + proc.stdout + proc.stderr
    )
    return html, doctrees


def test_html_builds_without_warnings(html_build: tuple[Path, Path]) -> None:
    html, _ = html_build
    # The index globs guides/* and api/*: every page found there must have been written.
    for rst in sorted(DOCS.glob("guides/*.rst")) + sorted(DOCS.glob("api/*.rst")):
        page = html / rst.relative_to(DOCS).with_suffix(".html")
        assert page.is_file(), f"{rst.relative_to(ROOT)} was not built"
    index = (html / "index.html").read_text(encoding="utf-8")
    for name in ("guides/quickstart.html", "guides/concepts.html", "api/distributions.html"):
        assert name in index, f"index.html does not link {name}"


def test_autodoc_renders_the_public_api(html_build: tuple[Path, Path]) -> None:
    # autodoc imports the installed package; a silently empty page would mean it did not.
    html, _ = html_build
    expected = {
        "api/distributions.html": (
            "distributions.NoiseConditionalDistribution",
            "distributions.NoiseConditionalDistribution.score",
            "distributions.NoiseConditionalAutoregressive",
            "distributions.NoisyGaussian",
            "distributions.NoisyGaussianMixture",
            "distributions.DiscretizedLogisticMixture",
            "distributions.get_family",
            "distributions.Grid",
        ),
        "api/models.html": (
            "models.MADE", "models.MADE.conditional_params", "models.NoiseEmbedding",
        ),
        "api/objectives.html": (
            "objectives.NoiseLevelPrior", "objectives.ncmle_loss", "objectives.bits_per_dim",
        ),
    }
    for page, names in expected.items():
        text = (html / page).read_text(encoding="utf-8")
        for name in names:
            assert f'id="ncmle_prob.{name}"' in text, f"ncmle_prob.{name} missing from {page}"
    # Google-style sections went through napoleon (an "Args:" line left raw would mean not).
    made = (html / "api/models.html").read_text(encoding="utf-8")
    assert "Parameters" in made and "Args:" not in made


def test_guide_examples_run(html_build: tuple[Path, Path], tmp_path: Path) -> None:
    _, doctrees = html_build
    proc = _sphinx("doctest", tmp_path / "doctest", doctrees)
    report = (tmp_path / "doctest" / "output.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, "guide examples failed:\n" + report + proc.stdout + proc.stderr
    assert "0 failures in tests" in report and "0 failures in setup code" in report
    # The guides of this package do contain runnable examples; a doctest builder that found
    # none (e.g. after a change to conf.py) must not pass silently.
    for guide in ("quickstart", "concepts", "oracles", "pyro"):
        assert f"Document: guides/{guide}" in report, f"no example of guides/{guide} ran"


# Resources a page *loads* (scripts, style sheets, fonts, images, frames, iframes): none may come
# from the network, so an offline reader gets the same page (rendered math included). Plain
# hyperlinks in the text (<a href="https://...">, e.g. to a paper or PyTorch's wheel index)
# are deliberately allowed: following one is the reader's choice and loads nothing by itself.
_LOADED = re.compile(
    r"<(?:script|img|iframe|frame|source|embed|audio|video)\b[^>]*\bsrc\s*=\s*[\"']?(https?:)?//"
    r"|<link\b[^>]*\bhref\s*=\s*[\"']?(https?:)?//"
    r"|@import\s+(?:url\()?[\"']?(https?:)?//"
    r"|url\(\s*[\"']?(https?:)?//",
    re.IGNORECASE,
)


def test_built_html_loads_nothing_from_the_network(html_build: tuple[Path, Path]) -> None:
    html, _ = html_build
    pages = sorted(html.rglob("*.html"))
    styles = sorted(p for p in (html / "_static").rglob("*.css"))
    assert len(pages) > 10 and styles
    offenders = []
    for path in pages + styles:
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in _LOADED.finditer(text):
            offenders.append(f"{path.relative_to(html)}: {text[m.start() : m.start() + 120]!r}")
    assert not offenders, "external resources:\n" + "\n".join(offenders[:20])
    # the math is rendered by the local MathJax copy, which the pages actually reference
    guide = (html / "guides" / "concepts.html").read_text(encoding="utf-8")
    src = re.search(r"<script[^>]*src=\"([^\"]*tex-chtml\.js)\"", guide)
    assert src is not None, "concepts.html does not load MathJax"
    assert (html / "guides" / src.group(1)).resolve().is_file(), src.group(1)
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
