"""Sphinx configuration of the ncmle_prob documentation.

Built offline: autodoc imports the installed package (nothing is mocked), the math is rendered by
MathJax in the reader's browser, and no intersphinx inventories are fetched. ``sphinx-build -W``
must pass (tests/test_docs.py checks it), and the ``.. doctest::`` blocks of the guides run with
``sphinx-build -b doctest``.
"""

from __future__ import annotations

import importlib.util

import ncmle_prob

project = "ncmle_prob"
author = "ncmle_prob developers"
copyright = "ncmle_prob developers"
version = ncmle_prob.__version__
release = ncmle_prob.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False
root_doc = "index"

# -- autodoc / napoleon (Google-style docstrings) -------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- doctest: only explicit ``.. doctest::`` / ``.. testcode::`` blocks of the guides run under
# the doctest builder; docstring examples pulled in by autodoc are already run by
# ``pytest --doctest-modules`` and are not run twice.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import torch
torch.manual_seed(0)
"""

# -- HTML ----------------------------------------------------------------------------------
# furo when it is installed, otherwise Sphinx's default alabaster (no extra dependency).
html_theme = "furo" if importlib.util.find_spec("furo") is not None else "alabaster"
html_title = f"ncmle_prob {release}"
