"""Floors at the same set sizes, precision/recall, class-histogram metrics: known answers."""

from __future__ import annotations

import math

import pytest
import torch

from ncmle_prob.metrics import (
    class_tv,
    confident_fraction,
    downsample_images,
    fcd,
    image_scores,
    knn_radii,
    precision,
    precision_recall,
    recall,
    score_with_floor,
)


def _mixture(n: int, centres: torch.Tensor, g: torch.Generator, scale: float = 0.3):
    idx = torch.randint(0, centres.shape[0], (n,), generator=g)
    return centres[idx] + scale * torch.randn(n, centres.shape[1], generator=g)


def test_precision_recall_identical_sets_are_one_disjoint_are_zero() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 5, generator=g)
    # every point lies in its own ball (distance 0 <= its radius): exactly 1
    assert precision_recall(a, a) == (1.0, 1.0)
    # sets 100 apart in one coordinate: no ball (radii ~ 1) reaches the other set: exactly 0
    assert precision_recall(a, a + torch.tensor([100.0, 0, 0, 0, 0])) == (0.0, 0.0)


def test_mode_collapse_has_high_precision_and_low_recall() -> None:
    # Real: 5 well separated modes in 2-D; fake: all draws from mode 0 only. Precision must be
    # as high as that of a fake set of the real law (the k-NN manifold of finite data misses
    # a little of the tails, so neither is exactly 1; measured ~0.97), while recall is at most
    # the collapsed mode's share, 1/5, plus k-NN ball slack: bounded by 0.3.
    g = torch.Generator().manual_seed(1)
    angles = torch.arange(5) * 2 * math.pi / 5
    centres = 10.0 * torch.stack([angles.cos(), angles.sin()], 1)
    real = _mixture(2000, centres, g)
    fake = _mixture(1000, centres[:1], g)
    matched = _mixture(1000, centres, g)
    p, r = precision(real, fake, k=3), recall(real, fake, k=3)
    assert p > 0.9 and p > precision(real, matched) - 0.03, p
    assert r < 0.3, r
    # the matched fake set covers every mode: recall high
    assert recall(real, matched) > 0.9


def test_knn_radii_brute_force() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    d = torch.cdist(x, x)
    ref = d.sort(1).values[:, 3]  # column 0 is the point itself
    assert torch.allclose(knn_radii(x, 3), ref)
    with pytest.raises(ValueError, match="k=3"):
        knn_radii(x[:3], 3)


def test_class_tv_and_confident_fraction_known_answers() -> None:
    eye = torch.eye(10, dtype=torch.float64)
    uniform = eye.repeat(10, 1)  # 100 points, 10 per class
    assert class_tv(uniform, uniform) == 0.0  # identical histograms
    assert class_tv(uniform, eye[[0] * 50]) == pytest.approx(0.9)  # all mass on one class
    probs = torch.tensor([[0.9, 0.1], [0.89, 0.11], [0.2, 0.8], [0.05, 0.95]])
    assert confident_fraction(probs, 0.9) == 0.5  # >= counts
    with pytest.raises(ValueError, match="probabilities"):
        class_tv(uniform, 2 * uniform)
    with pytest.raises(ValueError, match="threshold"):
        confident_fraction(probs, 0.0)


def test_fcd_with_floor_recovers_known_mean_shift() -> None:
    # real ~ N(0, I_6), fake ~ N(delta, I_6): the population FCD is |delta|^2 = 1.5. Both the
    # score and the floor carry the same finite-size bias at sizes (M, N_ref) = (600, 3400),
    # so score - floor estimates 1.5; its MC error (mean-shift term ~ 2 |delta| / sqrt(M) ~
    # 0.1, plus the spread of the floor) is < 0.25 at these sizes.
    g = torch.Generator().manual_seed(3)
    delta = torch.full((6,), 0.5)
    real = torch.randn(4000, 6, generator=g, dtype=torch.float64)
    fake = torch.randn(600, 6, generator=g, dtype=torch.float64) + delta
    s = score_with_floor("fcd", real, fake, repeats=4, generator=g)
    assert (s.num_samples, s.num_reference, s.repeats) == (600, 3400, 4)
    assert abs(s.score - s.floor - 1.5) < 0.25
    assert s.floor_std > 0 and s.score_std > 0


def test_floor_is_at_the_same_set_sizes_as_the_score() -> None:
    # Same law for fake and real: score and floor must agree (within 4 spreads), because they
    # are computed at the same sizes. An FCD of M fakes against *all* N real images (the old
    # score) is biased differently from the floor: the mean term alone is D (1/M + 1/N).
    g = torch.Generator().manual_seed(4)
    d, m = 10, 100
    real = torch.randn(2000, d, generator=g, dtype=torch.float64)
    scores, floors = [], []
    for _ in range(10):
        fake = torch.randn(m, d, generator=g, dtype=torch.float64)
        s = score_with_floor("fcd", real, fake, num_reference=m, repeats=3, generator=g)
        scores.append(s.score)
        floors.append(s.floor)
    sc, fl = torch.tensor(scores), torch.tensor(floors)
    se = math.sqrt(sc.var() / len(sc) + fl.var() / len(fl))
    assert abs(float(sc.mean() - fl.mean())) < 4 * se
    # the mismatched floor (M vs M) against a score at (M, N): the gap is visible
    mismatched = fcd(real, torch.randn(m, d, generator=g, dtype=torch.float64))
    assert mismatched < float(fl.mean()) - 4 * float(fl.std()) / math.sqrt(len(fl))


def test_kid_floor_is_unbiased_zero_for_same_law() -> None:
    # KID is unbiased: the floor (real vs real) and the score of a same-law fake set are
    # centred at 0; with 6 resplits, within 4 standard errors of 0 (+ 1e-4 for float noise).
    g = torch.Generator().manual_seed(5)
    real = torch.randn(3000, 8, generator=g)
    fake = torch.randn(500, 8, generator=g)
    s = score_with_floor("kid", real, fake, repeats=6, generator=g, kid_subset_size=500)
    assert abs(s.floor) < 4 * s.floor_std / math.sqrt(6) + 1e-4
    assert abs(s.score) < 4 * s.score_std / math.sqrt(6) + 2e-3
    shifted = score_with_floor("kid", real, fake + 0.5, repeats=3, generator=g)
    assert shifted.score > 20 * abs(shifted.floor) + 1e-3


def test_score_with_floor_bad_input() -> None:
    real, fake = torch.randn(50, 2), torch.randn(30, 2)
    assert score_with_floor("fcd", real, fake).num_reference == 20  # 50 - 30
    with pytest.raises(ValueError, match="num_reference"):  # 30 + 30 > 50: not disjoint
        score_with_floor("fcd", real, fake, num_reference=30)
    with pytest.raises(ValueError, match="metric"):
        score_with_floor("fid", real, fake[:10])
    with pytest.raises(ValueError, match="feature sizes"):
        score_with_floor("fcd", real, torch.randn(10, 3))
    with pytest.raises(TypeError, match="options"):
        score_with_floor(fcd, real, fake[:10], k=3)
    with pytest.raises(ValueError, match="repeats"):
        score_with_floor("fcd", real, fake[:10], repeats=0)


def test_image_scores_keys_and_digits_ranking() -> None:
    # Held-out real digits score at their floor (within 4 floor spreads); uniform noise far
    # above; precision of noise ~ 0; confident fraction of real digits near the floor.
    from ncmle_prob.data import load_digits

    data = load_digits()
    t = data.test[torch.randperm(data.test.shape[0], generator=torch.Generator().manual_seed(0))]
    real = t[100:]  # held-out images only: the classifier was trained on the train split
    good = image_scores(t[:100], real, "digits", repeats=4)
    g = torch.Generator().manual_seed(0)
    bad = image_scores(torch.rand(100, 1, 8, 8, generator=g) * 2 - 1, real, "digits",
                       repeats=4)
    assert good["num_samples"] == 100 and good["num_reference"] == real.shape[0] - 100
    for m, gap in (("fcd", 10), ("kid", 10), ("class_tv", 5)):
        assert good[m] < good[f"{m}_floor"] + 4 * good[f"{m}_floor_std"] + 1e-3, m
        # noise is far above: by `gap` floor spreads (class_tv is bounded by 1, so 5)
        assert bad[m] > good[m] + gap * good[f"{m}_floor_std"], m
    # (k-NN balls of 259 points in 128-D are loose: noise still lands in ~25% of them)
    assert bad["precision"] < 0.5 < 0.8 < good["precision"]
    assert abs(good["confident"] - good["confident_floor"]) < 0.1
    with pytest.raises(ValueError, match="metrics"):
        image_scores(data.test[:10], real, "digits", metrics=("fid",))


def test_downsample_images_averages_and_requantises() -> None:
    x = torch.tensor([0, 1, 2, 4], dtype=torch.float64).reshape(1, 1, 2, 2) / 255 * 2 - 1
    y = downsample_images(x, 2, bins=256)  # mean level 1.75 -> rounds to level 2
    assert torch.allclose(y, torch.tensor(2 / 255 * 2 - 1, dtype=torch.float64).reshape(1, 1,
                                                                                       1, 1))
    with pytest.raises(ValueError, match="factor"):
        downsample_images(torch.zeros(1, 1, 3, 3), 2)


def test_downsample_images_matches_the_mnist14_loader() -> None:
    """The 14x14 classifier's pooling and the ``mnist14`` loader's must agree pixel for pixel
    (both round block means half up); a half-to-even rounding differs on ~1/8 of pixels."""
    from ncmle_prob.data.mnist import downsample_levels
    from ncmle_prob.metrics import downsample_images

    levels = torch.randint(0, 256, (200, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    pooled = downsample_images(levels.float() * 2 / 255 - 1, 2, bins=256)
    expected = downsample_levels(levels).float() * 2 / 255 - 1
    # Same levels; float32 rounding of the level-to-value map differs by ~6e-8, while one
    # level apart is 2/255 ~ 8e-3.
    torch.testing.assert_close(pooled, expected, rtol=0, atol=1e-6)
