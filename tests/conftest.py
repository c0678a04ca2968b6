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
