r"""Closed-form oracles: Gaussians and Gaussian mixtures observed through Gaussian noise.

If :math:`x_0 \sim \mathcal N(\mu, \Sigma)` then :math:`x = x_0 + \sigma\varepsilon \sim
\mathcal N(\mu, \Sigma + \sigma^2 I)`, so every quantity of the noise-conditional contract
(``log_prob``, ``score``, ``denoise``, ``sample``) is exact. These are the ground truth of the
test suite and a way to see what NCMLE aims at.

References:
    Autoregressive Generative Modeling with Noise Conditional Maximum Likelihood Estimation
    (the seed paper: the model's target is exactly this noisy law :math:`q_\sigma` for every
    σ).

    B. Efron. Tweedie's Formula and Selection Bias. JASA 106(496), 2011 (the exact
    :meth:`~NoisyGaussian.denoise` of a Gaussian is Tweedie's posterior mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .base import NoiseConditionalDistribution
from .families.base import pick_component
from .validation import check_finite, describe_shape

__all__ = ["NoisyGaussian", "NoisyGaussianMixture"]


def _check_covariance(name: str, cov: Tensor) -> None:
    if cov.dim() < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{name} must have shape (..., D, D), got {describe_shape(cov.shape)}")
    check_finite(name, cov)
    if not torch.allclose(cov, cov.mT, atol=1e-6, rtol=1e-5):
        raise ValueError(f"{name} must be symmetric")
    _, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(f"{name} must be positive definite (its Cholesky factorisation failed)")


def _check_same(name: str, value: Tensor, ref_name: str, ref: Tensor) -> None:
    """Parameters must share dtype and device: a silent cast would hide a precision mix-up."""
    if value.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but {ref_name} has {ref.dtype}; pass both in one dtype"
        )
    if value.device != ref.device:
        raise ValueError(f"{name} is on {value.device} but {ref_name} is on {ref.device}")


def _noisy_cholesky(cov: Tensor, sigma: Tensor) -> Tensor:
    """Cholesky factor of ``cov + sigma**2 I``; ``sigma`` broadcasts against ``cov``'s batch.

    One factorisation per σ entry, with no shortcut that depends on σ's values (a Python
    branch on tensor values would be baked into a ``torch.jit.trace``). Used to sample at the
    bound σ (one factor per batch element) and for the log density when the covariance
    requires grad (see :class:`_Spectrum`).
    """
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return torch.linalg.cholesky(cov + (sigma * sigma)[..., None, None] * eye)


def _matvec(matrix: Tensor, vector: Tensor) -> Tensor:
    """``matrix @ vector`` over broadcast batch dims, without copying ``matrix`` per vector.

    ``torch.matmul`` (and ``solve_triangular``) broadcast by *materialising* the matrix once
    per batch element (``N * D * D`` numbers for N vectors); an ``einsum`` contracts the
    vector batch into the rows of one matrix product instead.
    """
    if matrix.dim() == 2:
        return vector @ matrix.mT
    # einsum may return a permuted layout; callers (and users' .view) expect a plain one.
    return torch.einsum("...ij,...j->...i", matrix, vector).contiguous()


def _gaussian_log_prob_chol(diff: Tensor, chol: Tensor, log_norm: float) -> Tensor:
    z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
    half_log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (z * z).sum(-1) - half_log_det - log_norm


def _conditional_terms(diff: Tensor, cov: Tensor, sigma: Tensor) -> Tensor:
    r"""Per-dimension terms :math:`\log \mathcal N(x_i;\, m_i(x_{<i}),\, L_{ii}^2)` of
    :math:`\mathcal N(\mu, \Sigma + \sigma^2 I)` in the order ``0..D-1``, shape of ``diff``.

    With :math:`\Sigma + \sigma^2 I = L L^T` and :math:`z = L^{-1}(x - \mu)`, :math:`z_i`
    depends on :math:`x_{\le i}` only and term ``i`` is
    :math:`-\tfrac12 z_i^2 - \log L_{ii} - \tfrac12 \log 2\pi`, the conditional log density
    of :math:`x_i` given :math:`x_{<i}`; the leading terms' cumulative sums are the log
    densities of the leading marginals (a leading block of :math:`L` is the Cholesky factor of
    the leading block of the covariance).
    """
    chol = _noisy_cholesky(cov, sigma)
    batch = torch.broadcast_shapes(diff.shape[:-1], chol.shape[:-2])
    chol = chol.expand(batch + chol.shape[-2:])
    z = torch.linalg.solve_triangular(
        chol, diff.expand(batch + diff.shape[-1:]).unsqueeze(-1), upper=False
    ).squeeze(-1)
    log_diag = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1))
    return -0.5 * z * z - log_diag - 0.5 * math.log(2 * math.pi)


def _gaussian_score_chol(diff: Tensor, chol: Tensor) -> Tensor:
    return -torch.cholesky_solve(diff.unsqueeze(-1), chol).squeeze(-1)


class _Spectrum:
    r"""Log density and score of :math:`\mathcal N(\mu, \Sigma + \sigma^2 I)` at *any* σ
    from one eigendecomposition :math:`\Sigma = Q \Lambda Q^T` of the clean covariance.

    Adding :math:`\sigma^2 I` shifts the eigenvalues and keeps the eigenvectors, so with
    :math:`z = Q^T (x - \mu)` and :math:`v = \lambda + \sigma^2`,

    .. math::

        \log p = -\tfrac12 \sum_j z_j^2 / v_j - \tfrac12 \sum_j \log v_j
        - \tfrac D2 \log 2\pi, \qquad \nabla_x \log p = -Q\,(z / v).

    A batch of per-example σ costs two matrix products, shared :math:`Q` across the batch: no
    factorisation per σ, no copy of a factor per example, and no branch on σ's values (so a
    ``torch.jit.trace`` generalises to every σ). When the covariance requires grad, the
    Cholesky path is used instead (``eigh``'s backward is undefined for repeated eigenvalues,
    e.g. :math:`\Sigma = I`).
    """

    def __init__(self, cov: Tensor) -> None:
        self.cov = cov
        self.differentiable = cov.requires_grad
        # A Python float fixed here: ``0.5 * x.shape[-1] * log(2 pi)`` computed per call would
        # be traced as an integer tensor times a constant, i.e. in float32.
        self.log_norm = 0.5 * cov.shape[-1] * math.log(2 * math.pi)
        if not self.differentiable:
            self.eigenvalues, self.eigenvectors = torch.linalg.eigh(cov)

    def log_prob(self, diff: Tensor, sigma: Tensor) -> Tensor:
        if self.differentiable:
            return _gaussian_log_prob_chol(diff, _noisy_cholesky(self.cov, sigma), self.log_norm)
        z = _matvec(self.eigenvectors.mT, diff)
        v = self.eigenvalues + (sigma * sigma).unsqueeze(-1)
        return -0.5 * ((z * z / v).sum(-1) + torch.log(v).sum(-1)) - self.log_norm

    def score(self, diff: Tensor, sigma: Tensor) -> Tensor:
        if self.differentiable:
            return _gaussian_score_chol(diff, _noisy_cholesky(self.cov, sigma))
        z = _matvec(self.eigenvectors.mT, diff)
        v = self.eigenvalues + (sigma * sigma).unsqueeze(-1)
        return -_matvec(self.eigenvectors, z / v)


class NoisyGaussian(NoiseConditionalDistribution):
    r"""The exact noisy Gaussian :math:`p(x \mid \sigma) = \mathcal N(x;\, \mu,\,
    \Sigma + \sigma^2 I)`.

    .. math::

        \nabla_x \log p(x \mid \sigma) = -(\Sigma + \sigma^2 I)^{-1}(x - \mu), \qquad
        E[x_0 \mid x] = x - \sigma^2 (\Sigma + \sigma^2 I)^{-1}(x - \mu).

    Args:
        loc: mean :math:`\mu`, shape ``(..., D)``.
        covariance_matrix: clean covariance :math:`\Sigma`, shape ``(..., D, D)``.
        sigma: bound noise level(s).
        validate_args: per-instance validation.

    Example:
        >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2), sigma=1.0)
        >>> d.log_prob(torch.zeros(2))  # N(0, 2 I) at the origin: -log(4 pi)
        tensor(-2.5310)
        >>> d.denoise(torch.ones(2))  # shrinks halfway to the mean
        tensor([0.5000, 0.5000])
    """

    def __init__(
        self,
        loc: Tensor,
        covariance_matrix: Tensor,
        sigma: float | Tensor = 0.0,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(loc, Tensor) or not isinstance(covariance_matrix, Tensor):
            raise TypeError("loc and covariance_matrix must be torch.Tensors")
        if loc.dim() < 1:
            raise ValueError(f"loc must have shape (..., D), got {describe_shape(loc.shape)}")
        _check_covariance("covariance_matrix", covariance_matrix)
        if covariance_matrix.shape[-1] != loc.shape[-1]:
            raise ValueError(
                f"covariance_matrix has shape {describe_shape(covariance_matrix.shape)} but loc "
                f"has D = {loc.shape[-1]}"
            )
        check_finite("loc", loc)
        self.loc = loc
        _check_same("covariance_matrix", covariance_matrix, "loc", loc)
        self.clean_covariance = covariance_matrix
        self._spectrum = _Spectrum(covariance_matrix)
        super().__init__(
            sigma,
            event_shape=loc.shape[-1:],
            param_batch_shape=torch.broadcast_shapes(loc.shape[:-1], covariance_matrix.shape[:-2]),
            dtype=loc.dtype,
            device=loc.device,
            validate_args=validate_args,
        )

    @classmethod
    def infer_shapes(  # type: ignore[override]
        cls,
        loc: Sequence[int],
        covariance_matrix: Sequence[int],
        sigma: Sequence[int] = (),
    ) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` of ``NoisyGaussian(loc, covariance_matrix, sigma)``
        from the shapes of its arguments (Pyro's ``infer_shapes``).

        Example:
            >>> NoisyGaussian.infer_shapes(loc=(3, 2), covariance_matrix=(2, 2), sigma=(4, 1))
            (torch.Size([4, 3]), torch.Size([2]))
        """
        batch = torch.broadcast_shapes(tuple(loc[:-1]), tuple(covariance_matrix[:-2]),
                                       tuple(sigma))
        return batch, torch.Size(loc[-1:])

    @property
    def mean(self) -> Tensor:
        return self.loc.expand(self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> Tensor:
        r""":math:`\Sigma + \sigma^2 I` at the bound σ."""
        eye = torch.eye(self.event_shape[0], dtype=self.dtype, device=self.device)
        cov = self.clean_covariance + (self.sigma**2)[..., None, None] * eye
        return cov.expand(self.batch_shape + self.event_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        return torch.diagonal(self.covariance_matrix, dim1=-2, dim2=-1)

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self._spectrum.log_prob(x - self.loc, sigma)

    def _score(self, x: Tensor, sigma: Tensor, *, create_graph: bool) -> Tensor:
        return self._spectrum.score(x - self.loc, sigma)

    def _conditional_log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        return _conditional_terms(x - self.loc, self.clean_covariance, sigma)

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        shape = sample_shape + self.batch_shape + self.event_shape
        chol = _noisy_cholesky(self.clean_covariance, self.sigma)
        z = torch.randn(shape, dtype=self.dtype, device=self.device, generator=generator)
        return self.loc + _matvec(chol, z)


class NoisyGaussianMixture(NoiseConditionalDistribution):
    r"""The exact noisy Gaussian mixture :math:`p(x \mid \sigma) = \sum_k w_k\,
    \mathcal N(x;\, \mu_k,\, \Sigma_k + \sigma^2 I)`.

    The score is the responsibility-weighted sum of the component scores,

    .. math::

        \nabla_x \log p(x \mid \sigma) = -\sum_k r_k(x)\, (\Sigma_k + \sigma^2 I)^{-1}
        (x - \mu_k), \qquad r_k(x) \propto w_k \mathcal N(x; \mu_k, \Sigma_k + \sigma^2 I).

    Args:
        weights: non-negative mixture weights, shape ``(..., K)`` (normalised here).
        locs: component means, shape ``(..., K, D)``.
        covariance_matrices: clean component covariances, shape ``(..., K, D, D)``.
        sigma: bound noise level(s).
        validate_args: per-instance validation.

    Example:
        >>> d = NoisyGaussianMixture(torch.tensor([0.5, 0.5]),
        ...                          torch.tensor([[-2.0], [2.0]]),
        ...                          0.1 * torch.eye(1).expand(2, 1, 1), sigma=0.5)
        >>> d.score(torch.tensor([0.0]))  # symmetric: no pull at the midpoint
        tensor([0.])
    """

    def __init__(
        self,
        weights: Tensor,
        locs: Tensor,
        covariance_matrices: Tensor,
        sigma: float | Tensor = 0.0,
        validate_args: bool | None = None,
    ) -> None:
        for name, t in (("weights", weights), ("locs", locs), ("covariance_matrices",
                                                                 covariance_matrices)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if locs.dim() < 2:
            raise ValueError(f"locs must have shape (..., K, D), got {describe_shape(locs.shape)}")
        k, d = locs.shape[-2:]
        if weights.dim() < 1 or weights.shape[-1] != k:
            raise ValueError(
                f"weights must have shape (..., K) with K = {k} (from locs), got "
                f"{describe_shape(weights.shape)}"
            )
        if covariance_matrices.dim() < 3 or tuple(covariance_matrices.shape[-3:]) != (k, d, d):
            raise ValueError(
                f"covariance_matrices must have shape (..., {k}, {d}, {d}), got "
                f"{describe_shape(covariance_matrices.shape)}"
            )
        _check_covariance("covariance_matrices", covariance_matrices)
        check_finite("locs", locs)
        check_finite("weights", weights)
        if bool((weights < 0).any()) or bool((weights.sum(-1) <= 0).any()):
            raise ValueError("weights must be non-negative with a positive sum")
        self.weights = weights / weights.sum(-1, keepdim=True)
        self.locs = locs
        _check_same("covariance_matrices", covariance_matrices, "locs", locs)
        _check_same("weights", weights, "locs", locs)
        self.clean_covariances = covariance_matrices
        self._spectrum = _Spectrum(covariance_matrices)
        batch = torch.broadcast_shapes(
            weights.shape[:-1], locs.shape[:-2], covariance_matrices.shape[:-3]
        )
        super().__init__(
            sigma,
            event_shape=locs.shape[-1:],
            param_batch_shape=batch,
            dtype=locs.dtype,
            device=locs.device,
            validate_args=validate_args,
        )

    @classmethod
    def infer_shapes(  # type: ignore[override]
        cls,
        weights: Sequence[int],
        locs: Sequence[int],
        covariance_matrices: Sequence[int],
        sigma: Sequence[int] = (),
    ) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` from the shapes of the arguments (Pyro's
        ``infer_shapes``).

        Example:
            >>> NoisyGaussianMixture.infer_shapes((3,), (3, 2), (3, 2, 2), sigma=(5,))
            (torch.Size([5]), torch.Size([2]))
        """
        batch = torch.broadcast_shapes(tuple(weights[:-1]), tuple(locs[:-2]),
                                       tuple(covariance_matrices[:-3]), tuple(sigma))
        return batch, torch.Size(locs[-1:])

    @property
    def num_components(self) -> int:
        return self.locs.shape[-2]

    def component(self, k: int) -> NoisyGaussian:
        """Component ``k`` as a :class:`NoisyGaussian` bound to the same σ."""
        return NoisyGaussian(self.locs[..., k, :], self.clean_covariances[..., k, :, :], self.sigma)

    @property
    def mean(self) -> Tensor:
        m = (self.weights.unsqueeze(-1) * self.locs).sum(-2)
        return m.expand(self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> Tensor:
        r"""Total covariance
        :math:`\sum_k w_k(\Sigma_k + \sigma^2 I + \mu_k\mu_k^T) - m m^T`."""
        eye = torch.eye(self.event_shape[0], dtype=self.dtype, device=self.device)
        outer = self.locs.unsqueeze(-1) * self.locs.unsqueeze(-2)
        second = (self.weights[..., None, None] * (self.clean_covariances + outer)).sum(-3)
        m = self.mean
        cov = second + (self.sigma**2)[..., None, None] * eye - m.unsqueeze(-1) * m.unsqueeze(-2)
        return cov.expand(self.batch_shape + self.event_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        return torch.diagonal(self.covariance_matrix, dim1=-2, dim2=-1)

    def _components(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        diff = x.unsqueeze(-2) - self.locs
        joint = torch.log(self.weights) + self._spectrum.log_prob(diff, sigma.unsqueeze(-1))
        return joint, diff

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        joint, _ = self._components(x, sigma)
        return torch.logsumexp(joint, dim=-1)

    def _conditional_log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        # log p(x_{<=i}) per component is a cumulative sum of its conditional terms; the
        # mixture's prefix marginals are mixtures of those, and their differences are the
        # conditionals of the mixture.
        terms = _conditional_terms(
            x.unsqueeze(-2) - self.locs, self.clean_covariances, sigma.unsqueeze(-1)
        )
        prefix = torch.logsumexp(torch.log(self.weights).unsqueeze(-1) + terms.cumsum(-1), -2)
        return torch.cat([prefix[..., :1], prefix[..., 1:] - prefix[..., :-1]], dim=-1)

    def _score(self, x: Tensor, sigma: Tensor, *, create_graph: bool) -> Tensor:
        joint, diff = self._components(x, sigma)
        resp = torch.softmax(joint, dim=-1)
        return (resp.unsqueeze(-1) * self._spectrum.score(diff, sigma.unsqueeze(-1))).sum(-2)

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        shape = sample_shape + self.batch_shape
        k, d = self.locs.shape[-2:]
        logits = torch.log(self.weights).expand(shape + (k,))
        idx = pick_component(logits, generator)
        chol = _noisy_cholesky(self.clean_covariances, self.sigma.unsqueeze(-1))
        z = torch.randn(shape + (d,), dtype=self.dtype, device=self.device, generator=generator)
        # Every component's draw from the same z (K * D numbers per sample; the factors are
        # not copied per sample), then the picked one.
        draws = self.locs + _matvec(chol, z.unsqueeze(-2))
        return draws.gather(-2, idx[..., None, None].expand(shape + (1, d))).squeeze(-2)
