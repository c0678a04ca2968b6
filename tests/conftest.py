"""Shared fixtures and helpers. The device comes from NCMLE_TEST_DEVICE (default ``cpu``), so the
same suite runs on a GPU with ``NCMLE_TEST_DEVICE=cuda pytest``.

* ``device``; every test starts from ``torch.manual_seed(0)`` and the session runs one
  intra-op thread (tiny models; threads fighting over shared cores are ~30x slower);
* ``fresh_pyro``: a clear param store and a fixed Pyro seed (a module opts in with
  ``pytestmark = pytest.mark.usefixtures("fresh_pyro")``);
* ``write_idx`` and ``fake_mnist``: IDX files as MNIST ships them, for the data tests.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch


def test_device() -> torch.device:
    return torch.device(os.environ.get("NCMLE_TEST_DEVICE", "cpu"))


test_device.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def device() -> torch.device:
    return test_device()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """The suite's models are tiny: one intra-op thread is faster than several fighting over
    shared cores (measured 30x on a loaded 2-core machine). Restored after the session."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _fresh_deprecations() -> None:
    """Each test sees every deprecation warning afresh (the library warns once per process)."""
    from ncmle_prob import _deprecated

    _deprecated._WARNED.clear()


@pytest.fixture
def fresh_pyro() -> Iterator[None]:
    """Clears Pyro's param store and fixes its seed, before and after the test."""
    import pyro

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


def _write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.fixture
def write_idx() -> Callable[..., None]:
    """``write_idx(path, array, compress=True)``: an IDX file of uint8 ``array``."""
    return _write_idx


@pytest.fixture
def fake_mnist() -> Callable[..., np.ndarray]:
    """``fake_mnist(directory, n_train=6, n_test=4, compress_test=False, extremes=True)``:
    the four MNIST IDX files of random images (train files gzipped); with ``extremes`` the
    first training image's first two pixels are 0 and 255. Returns the training images."""

    def make(directory: Path, n_train: int = 6, n_test: int = 4, compress_test: bool = False,
             extremes: bool = True) -> np.ndarray:
        rng = np.random.default_rng(0)
        train = rng.integers(0, 256, size=(n_train, 28, 28))
        if extremes:
            train[0, 0, 0], train[0, 0, 1] = 0, 255
        suffix = ".gz" if compress_test else ""
        _write_idx(directory / "train-images-idx3-ubyte.gz", train)
        _write_idx(directory / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
        _write_idx(directory / f"t10k-images-idx3-ubyte{suffix}",
                   rng.integers(0, 256, (n_test, 28, 28)), compress_test)
        _write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test),
                   compress_test)
        return train

    return make
