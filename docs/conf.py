"""Sphinx configuration of the ncmle_prob documentation.

Built and read offline: autodoc imports the installed package (nothing is mocked), no
intersphinx inventories are fetched, and the math is rendered in the reader's browser by a
MathJax 3 copy that ships with the ``sphinx-mathjax-offline`` package (the ``docs`` extra) and is
copied into ``_static/mathjax`` of the build, so a reader without network sees rendered math,
not raw TeX. No page loads a script, style sheet, font or image from the network
(tests/test_docs.py checks the built HTML). ``sphinx-build -W``
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
    # MathJax 3 bundled in a wheel, copied into _static/mathjax: no CDN (see the docstring)
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# the local copy set by sphinx-mathjax-offline, stated here too so that the offline choice is
# visible in this file (a path relative to _static)
mathjax_path = "mathjax/tex-chtml.js"
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
