"""Pyro inference with noise-conditional priors: the ``noise_level`` handler, Langevin MCMC
kernels, inverse problems and noise-level inference."""

from .handlers import noise_level, rebind_sigma
from .kernels import MALA, AnnealedLangevin, LangevinKernel

__all__ = ["MALA", "AnnealedLangevin", "LangevinKernel", "noise_level", "rebind_sigma"]
