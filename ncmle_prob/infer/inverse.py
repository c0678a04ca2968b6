"""Linear inverse problems with a noise-conditional prior: denoising, inpainting, deblurring.

The observation model is linear-Gaussian, :math:`y = A x + n`, :math:`n \\sim \\mathcal N(0,
\\tau^2 I)`, and the prior is a noise-conditional distribution bound to a small
:math:`\\sigma_p` (a density even for grid data). Posterior draws come from the Langevin kernels
of :mod:`ncmle_prob.infer.kernels` (or NUTS) over the Pyro model

.. math::

    x \\sim p_\\theta(\\cdot \\mid \\sigma_p), \\qquad y \\mid x \\sim \\mathcal N(A x, \\tau^2 I).

Because :math:`x_0 \\to x_{\\sigma_p} \\to y` is a Markov chain, the clean posterior mean is
:math:`E[x_0 \\mid y] = E\\big[x + \\sigma_p^2 \\nabla \\log p_\\theta(x \\mid \\sigma_p)
\\,\\big|\\, y\\big]`: :func:`restore` averages the prior's Tweedie denoiser over the draws.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..distributions.base import NoiseConditionalDistribution
from ..distributions.validation import check_finite, describe_shape
from ..samplers.batching import ELEMENTS_PER_BATCH, check_batch_size
from .restore_chains import (
    RESTORE_KERNELS,
    Operator,
    RestoreResult,
    linear_gaussian_model,
    register_restore_kernel,
)

__all__ = [
    "KERNELS",
    "RESTORE_KERNELS",
    "RestoreResult",
    "blur_operator",
    "deblur",
    "inpaint",
    "linear_gaussian_model",
    "psnr",
    "register_restore_kernel",
    "remove_noise",
    "restore",
]


def __getattr__(name: str) -> Any:
    from .._deprecated import deprecated_attribute

    return deprecated_attribute(__name__, name)

#: The built-in restore kernels' names (the registry :data:`RESTORE_KERNELS` has them all).
KERNELS = tuple(RESTORE_KERNELS.names())


def restore(
    prior: NoiseConditionalDistribution,
    y: Tensor,
    operator: Operator | None,
    noise_std: float,
    *,
    kernel: str = "batched_mala",
    num_samples: int = 200,
    warmup_steps: int = 300,
    init: Tensor | None = None,
    seed: int | None = None,
    clean: Tensor | None = None,
    progress: bool = False,
    batch_size: int | None = None,
    **kernel_options: Any,
) -> RestoreResult:
    r"""Posterior sampling for ``y = A x + n`` with the prior, one chain per image.

    With ``kernel="batched_mala"`` (the default) the chains of all ``B`` images run **batched**
    (:func:`~ncmle_prob.infer.batched_mala.batched_mala`): one tensor ``(B, *event)`` holds
    every chain's state, the prior's ``log_prob_and_score`` and the likelihood are evaluated
    for all images in one call, and each chain keeps its own acceptance test, step size,
    preconditioner and random stream (chain ``b`` is seeded with ``seed + b``, so image ``b``
    gets the same draws alone or in a batch). The Pyro kernels (``"mcmc_mala"``,
    ``"mcmc_annealed_langevin"``, ``"mcmc_nuts"``: :class:`~ncmle_prob.infer.MALA`,
    :class:`~ncmle_prob.infer.AnnealedLangevinKernel`, :class:`pyro.infer.NUTS`) run one
    :class:`pyro.infer.MCMC` per image, one after another. Kernels are chosen by name from
    :data:`RESTORE_KERNELS` (add one with :func:`register_restore_kernel`); the names of
    before 0.2 (``"mala"``, ``"pyro_mala"``, ``"annealed_langevin"``, ``"nuts"``, which
    collided with sampler names) still work, with a deprecation warning.

    Args:
        prior: noise-conditional prior bound to a small scalar σ_p > 0.
        y: observations ``(B, M)`` (or ``(M,)`` for one).
        operator: ``A`` (matrix ``(M, D)``, a callable mapping flat ``(..., D)`` to
            ``(..., M)``) or ``None`` (identity).
        noise_std: observation noise τ.
        kernel: a name of :data:`RESTORE_KERNELS`.
        num_samples, warmup_steps: per chain.
        init: optional starting images ``(B, *event)`` (default: ``y`` if ``M = D``, else 0).
        seed: seed of chain 0 (a batched kernel); default: drawn from torch's global
            generator.
        clean: the clean images ``(B, *event)`` when known: fills :attr:`RestoreResult.psnr`.
        progress: show a tqdm bar of the images (images/s and an ETA) and one of the steps
            of the current batch (``"batched_mala"``) or Pyro's (Pyro kernels).
        batch_size: images whose chains run together (a batched kernel); larger requests run in
            batches, so the peak memory is that of one batch and does not grow with the
            steps. ``None``: :data:`ncmle_prob.samplers.batching.ELEMENTS_PER_BATCH` values
            per batch (167 images of 14×14). The draws do not depend on it (chain ``b`` is
            seeded with ``seed + b`` in any batch).
        **kernel_options: passed to the kernel (``"batched_mala"``: ``step_size``,
            ``target_accept``, ``precondition``).

    Returns:
        :class:`RestoreResult` with the Tweedie-corrected posterior mean of the clean image.

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> prior = NoisyGaussian(torch.zeros(4), torch.eye(4), sigma=0.1)
        >>> y = torch.ones(3, 4)  # three images observed with tau = 1
        >>> out = restore(prior, y, None, 1.0, num_samples=1000, warmup_steps=200, seed=0)
        >>> out.mean.shape, bool((out.mean - 0.5).abs().max() < 0.1)  # E[x0|y] = y / 2
        (torch.Size([3, 4]), True)
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    check_finite("y", y)
    single = y.dim() == 1
    ys = y[None] if single else y
    if ys.dim() != 2:
        raise ValueError(f"y must have shape (B, M) or (M,), got {describe_shape(y.shape)}")
    from .._deprecated import restore_kernel

    entry = RESTORE_KERNELS.get(restore_kernel(kernel))  # unknown: lists the valid names
    if not isinstance(prior, NoiseConditionalDistribution):
        raise TypeError(f"prior must be a NoiseConditionalDistribution, got {type(prior).__name__}")
    if bool(prior.is_mass().any()):
        raise ValueError(
            "the prior is a discretized family at sigma = 0 (a log mass on a grid); bind it to a "
            "small sigma > 0, e.g. prior.at(0.05), to use it as a density"
        )
    if len(prior.batch_shape) != 0:
        raise ValueError(f"prior must be bound to one scalar sigma (batch_shape ()), got "
                         f"batch_shape {describe_shape(prior.batch_shape)}")
    event = prior.event_shape
    d = math.prod(event)
    ys = ys.to(dtype=prior.dtype, device=prior.device)
    if init is not None:
        if not isinstance(init, Tensor) or init.numel() != ys.shape[0] * d:
            got = describe_shape(init.shape) if isinstance(init, Tensor) else type(init).__name__
            raise ValueError(
                f"init must hold {ys.shape[0]} images of {describe_shape(event)}, got {got}"
            )
        x_init = init.reshape(ys.shape[0], d).to(ys)
    elif ys.shape[1] == d:
        x_init = ys.clone()
    else:
        x_init = torch.zeros(ys.shape[0], d, dtype=ys.dtype, device=ys.device)
    size = check_batch_size(batch_size) or max(1, ELEMENTS_PER_BATCH // d)
    if entry.batched:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()))
    else:
        size = 1  # one chain (one Pyro MCMC) per image
    parts: list[RestoreResult] = []
    from tqdm.auto import tqdm

    with tqdm(total=ys.shape[0], unit="image", desc=f"restore ({kernel})", disable=not progress,
              dynamic_ncols=True) as bar:
        for start in range(0, ys.shape[0], size):
            rows = slice(start, start + size)
            parts.append(entry.run(
                prior, ys[rows], operator, noise_std, x_init[rows], num_samples, warmup_steps,
                None if seed is None else seed + start, progress, kernel_options))
            bar.update(ys[rows].shape[0])
    out = parts[0] if len(parts) == 1 else RestoreResult(
        mean=torch.cat([p.mean for p in parts]), samples=torch.cat([p.samples for p in parts]),
        diagnostics=[dg for p in parts for dg in p.diagnostics])
    if clean is not None:
        out.psnr = psnr(clean.reshape(out.mean.shape).to(out.mean), out.mean)
    if single:
        out.mean, out.samples = out.mean[0], out.samples[0]
    return out


def remove_noise(
    prior: NoiseConditionalDistribution, y: Tensor, noise_std: float, **options: Any
) -> RestoreResult:
    """Gaussian noise removal by posterior sampling, ``y = x_0 + noise_std · ε``.

    (Called ``denoise`` before 0.2; in this library *denoise* names Tweedie's formula only,
    :meth:`~ncmle_prob.distributions.NoiseConditionalDistribution.denoise`, one step with the
    score. This function samples the posterior and averages the prior's Tweedie map over it.)

    The prior models :math:`x_{\\sigma_p} = x_0 + \\sigma_p \\varepsilon'`, so the likelihood
    of :math:`x_{\\sigma_p}` has the remaining noise :math:`\\sqrt{\\tau^2 - \\sigma_p^2}`
    (this needs :math:`\\sigma_p < \\tau`).
    """
    s_p = float(prior.sigma.max())
    if not noise_std > s_p:
        raise ValueError(
            f"noise_std ({noise_std}) must exceed the prior's sigma ({s_p}) for denoising"
        )
    flat = y.reshape((-1, math.prod(prior.event_shape)))
    out = restore(prior, flat, None, math.sqrt(noise_std**2 - s_p**2), **options)
    out.mean = out.mean.reshape(y.shape)
    return out


def inpaint(
    prior: NoiseConditionalDistribution,
    y: Tensor,
    mask: Tensor,
    noise_std: float = 0.05,
    **options: Any,
) -> RestoreResult:
    """Inpainting: only the entries where ``mask`` is true are observed (with ``noise_std``).

    Args:
        prior: the prior.
        y: images ``(B, *event)`` (values where ``mask`` is false are ignored).
        mask: boolean ``event``-shaped tensor, true where observed.
        noise_std: observation noise of the observed entries (> 0; the prior's σ_p is added
            in quadrature, as for :func:`remove_noise`).
    """
    event = prior.event_shape
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != event:
        raise ValueError(
            f"mask must be a boolean tensor of the prior's event shape {describe_shape(event)}, "
            f"got {mask.dtype if isinstance(mask, Tensor) else type(mask).__name__} "
            f"{describe_shape(mask.shape) if isinstance(mask, Tensor) else ''}"
        )
    idx = mask.reshape(-1).nonzero().squeeze(-1)
    flat = y.reshape((-1, math.prod(event)))
    obs = flat[:, idx]
    s_p = float(prior.sigma.max())
    tau = math.sqrt(noise_std**2 + s_p**2)
    init = torch.where(mask.reshape(-1), flat, torch.zeros_like(flat))
    out = restore(prior, obs, lambda x: x[..., idx], tau, init=init, **options)
    out.mean = out.mean.reshape(flat.shape[:1] + event).reshape(y.shape)
    return out


def blur_operator(image_shape: tuple[int, int], kernel: Tensor) -> Tensor:
    """The ``(H·W, H·W)`` matrix of a 2-D convolution with ``kernel`` (zero padding, 'same').

    Example:
        >>> A = blur_operator((4, 4), torch.full((3, 3), 1 / 9))
        >>> A.shape, float(A[5].sum())  # an interior pixel averages 9 neighbours
        (torch.Size([16, 16]), 1.0)
    """
    h, w = image_shape
    if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be 2-D with odd sides, got {describe_shape(kernel.shape)}")
    eye = torch.eye(h * w, dtype=kernel.dtype, device=kernel.device).reshape(h * w, 1, h, w)
    pad = (kernel.shape[0] // 2, kernel.shape[1] // 2)
    cols = torch.nn.functional.conv2d(eye, kernel.flip(0, 1)[None, None], padding=pad)
    return cols.reshape(h * w, h * w).T.contiguous()


def deblur(
    prior: NoiseConditionalDistribution,
    y: Tensor,
    operator: Tensor,
    noise_std: float,
    **options: Any,
) -> RestoreResult:
    """Deblurring ``y = A x_0 + n`` with a blur matrix ``A`` (see :func:`blur_operator`).

    The prior's σ_p is treated as part of the observation noise (:math:`A x_{\\sigma_p}` has
    extra noise :math:`\\sigma_p A \\varepsilon`; ignoring its correlation is an approximation
    of order :math:`\\sigma_p^2`).
    """
    s_p = float(prior.sigma.max())
    flat = y.reshape((-1, operator.shape[0]))
    out = restore(prior, flat, operator, math.sqrt(noise_std**2 + s_p**2), **options)
    out.mean = out.mean.reshape(y.shape)
    return out


def psnr(clean: Tensor, estimate: Tensor, data_range: float = 2.0) -> Tensor:
    r"""Peak signal-to-noise ratio in dB, one value per image (data in [-1, 1]: range 2).

    .. math::

        \mathrm{PSNR} = 10 \log_{10} \frac{\text{range}^2}{\mathrm{MSE}}, \qquad
        \mathrm{MSE} = \frac1D \sum_{i=1}^D (x_i - \hat x_i)^2,

    over the ``D`` entries of each image (``+inf`` for a perfect estimate). Symmetric in its
    two image arguments.

    Args:
        clean: ``(B, ...)`` clean images (a 1-D tensor is one image).
        estimate: the estimates, same shape.
        data_range: the data's range (max - min).

    Example:
        >>> float(psnr(torch.zeros(1, 4), torch.full((1, 4), 0.2)))
        20.0
    """
    if not isinstance(clean, Tensor) or not isinstance(estimate, Tensor):
        raise TypeError("clean and estimate must be tensors")
    if clean.shape != estimate.shape:
        raise ValueError(
            f"clean {describe_shape(clean.shape)} and estimate {describe_shape(estimate.shape)} "
            "must have the same shape"
        )
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite float, got {data_range!r}")
    c, e = (clean[None], estimate[None]) if clean.dim() == 1 else (clean, estimate)
    mse = (c - e).pow(2).reshape(c.shape[0], -1).mean(-1)
    out = 10 * torch.log10(data_range**2 / mse)
    return out[0] if clean.dim() == 1 else out
