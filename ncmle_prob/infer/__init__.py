"""Pyro inference with noise-conditional priors.

* :class:`noise_level`: effect handler rebinding σ of every noise-conditional site;
* :class:`MALA`, :class:`AnnealedLangevin`: Langevin kernels for :class:`pyro.infer.MCMC`
  (also in the sampler registry as ``pyro_mala`` and ``pyro_langevin``);
* :func:`denoise`, :func:`inpaint`, :func:`deblur`, :func:`restore`: linear inverse problems;
* :func:`infer_noise_level`: posterior of an unknown noise level from the exact
  :math:`p(y \\mid \\sigma_y)`.
"""

from . import mcmc_samplers
from .handlers import noise_level, rebind_sigma
from .inverse import (
    RestoreResult,
    blur_operator,
    deblur,
    denoise,
    inpaint,
    linear_gaussian_model,
    psnr,
    restore,
)
from .kernels import MALA, AnnealedLangevin, LangevinKernel
from .noise_inference import NoiseLevelPosterior, infer_noise_level, noise_level_model

__all__ = [
    "MALA",
    "AnnealedLangevin",
    "LangevinKernel",
    "NoiseLevelPosterior",
    "RestoreResult",
    "blur_operator",
    "deblur",
    "denoise",
    "infer_noise_level",
    "inpaint",
    "linear_gaussian_model",
    "mcmc_samplers",
    "noise_level",
    "noise_level_model",
    "psnr",
    "rebind_sigma",
    "restore",
]
