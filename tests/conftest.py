"""Shared fixtures. The device comes from NCMLE_TEST_DEVICE (default ``cpu``), so the same suite
runs on a GPU with ``NCMLE_TEST_DEVICE=cuda pytest``."""

from __future__ import annotations

import os

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
