"""Pyro inference with noise-conditional priors.

* :class:`noise_level`: effect handler rebinding σ of every noise-conditional site;
* :class:`MALA`, :class:`AnnealedLangevinKernel`: Langevin kernels for :class:`pyro.infer.MCMC`
  (also in the sampler registry as ``pyro_mala`` and ``pyro_langevin``, registered by name in
  :mod:`ncmle_prob.samplers`; importing this package changes no registry).
  ``AnnealedLangevin`` is a deprecated alias of :class:`AnnealedLangevinKernel`;
* :func:`remove_noise`, :func:`inpaint`, :func:`deblur`, :func:`restore`: linear inverse problems;
* :func:`infer_noise_level`: posterior of an unknown noise level from the exact
  :math:`p(y \\mid \\sigma_y)`.
"""

from .handlers import noise_level, rebind_sigma
from .inverse import (
    RESTORE_KERNELS,
    RestoreResult,
    blur_operator,
    deblur,
    inpaint,
    linear_gaussian_model,
    psnr,
    register_restore_kernel,
    remove_noise,
    restore,
)
from .kernels import MALA, AnnealedLangevin, AnnealedLangevinKernel, LangevinKernel
from .noise_inference import NoiseLevelPosterior, infer_noise_level, noise_level_model

__all__ = [
    "MALA",
    "RESTORE_KERNELS",
    "AnnealedLangevin",
    "AnnealedLangevinKernel",
    "LangevinKernel",
    "NoiseLevelPosterior",
    "RestoreResult",
    "blur_operator",
    "deblur",
    "infer_noise_level",
    "inpaint",
    "linear_gaussian_model",
    "noise_level",
    "noise_level_model",
    "psnr",
    "rebind_sigma",
    "register_restore_kernel",
    "remove_noise",
    "restore",
]


def __getattr__(name: str) -> object:
    """The ``mcmc_samplers`` module, imported on first access, and the deprecated names
    (:mod:`ncmle_prob._deprecated`)."""
    if name == "mcmc_samplers":
        import importlib

        return importlib.import_module(".mcmc_samplers", __name__)
    from .._deprecated import deprecated_attribute

    return deprecated_attribute(__name__, name)
