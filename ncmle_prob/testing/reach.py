r"""Does σ reach every conditional? :func:`check_sigma_reach`.

A noise-conditional model promises :math:`p(x \mid \sigma)` for every σ. Under noisy data
:math:`q_\sigma = q * \mathcal N(0, \sigma^2 I)` *every* conditional law moves with σ (the first
marginal's variance alone grows by :math:`\sigma^2`), so a model in which some dimension's
conditional :math:`p(x_i \mid x_{<i}, \sigma)` is the same law at every σ cannot fit the family,
however it is trained. That is a wiring defect (e.g. a masked network whose first outputs see no
unit that sees σ), invisible to every check of a model's *own* consistency.

The check compares the conditional of every dimension at two noise levels on the same points:

* exactly, from :meth:`~ncmle_prob.distributions.NoiseConditionalDistribution.conditional_log_prob`
  (autoregressive models and the oracles), in float64;
* for a distribution without per-dimension conditionals (a flow, a transformed distribution) of
  one or two dimensions, by quadrature: the first marginal :math:`\log\int p(x_1, x_2 \mid
  \sigma)\,dx_2` and the conditional :math:`\log p(x_2 \mid x_1, \sigma)` on a grid;
* in more dimensions without conditionals, only the joint can be compared, which is stated in
  the error message when it fails and cannot name a dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .numerics import quadrature
from .spec import Example

__all__ = ["REACH_SIGMAS", "check_sigma_reach", "sigma_reach"]

#: The two noise levels compared (both > 0: densities everywhere, also on grid data).
REACH_SIGMAS = (0.2, 1.0)

#: Smallest change (nats) that counts as "moves": exact conditionals are compared in float64,
#: where a conditional that ignores σ changes by exactly 0; quadrature reaches ~1e-6.
EXACT_TOL = 1e-7
QUADRATURE_TOL = 1e-4


def _points(d: NoiseConditionalDistribution, n: int) -> Tensor:
    gen = torch.Generator(d.device).manual_seed(3)
    return d.at(REACH_SIGMAS[1]).sample((n,), generator=gen)


def _exact(d: NoiseConditionalDistribution) -> Tensor | None:
    x = _points(d, 64)
    a, b = REACH_SIGMAS
    with torch.no_grad():
        try:
            ta = d.conditional_log_prob(x, a)
        except NotImplementedError:
            return None
        tb = d.conditional_log_prob(x, b)
    return (ta - tb).abs().reshape(-1, ta.shape[-1]).amax(0)


def _by_quadrature(d: NoiseConditionalDistribution, dim: int) -> Tensor:
    a, b = REACH_SIGMAS
    samples = _points(d, 2000).reshape(-1, dim)
    if dim == 1:
        x = samples[:256].reshape((-1,) + (1,) * len(d.batch_shape) + d.event_shape)
        with torch.no_grad():
            delta = (d.log_prob(x, a) - d.log_prob(x, b)).abs()
        return delta.amax().reshape(1)
    logs = []
    for s in (a, b):
        q = quadrature(d, torch.as_tensor(s, dtype=d.dtype, device=d.device), samples, 161)
        f = q.values.clamp_min(1e-300)  # (n, n, *batch): p(x1, x2) * jacobians
        marg = torch.trapezoid(f, dx=q.du[1], dim=1)  # p(x1) * jac1
        logs.append((f.log(), marg.log()))
    (fa, ma), (fb, mb) = logs
    # Compare where both laws put mass (within e^-15 of the peak): the conditional of x2 given
    # x1 is exp(joint) / marginal, and the jacobian factors cancel between the two σ.
    keep1 = (ma > ma.max() - 15) & (mb > mb.max() - 15)
    d1 = (ma - mb).abs()[keep1].max()
    ca, cb = fa - ma.unsqueeze(1), fb - mb.unsqueeze(1)
    keep2 = (fa > fa.max() - 15) & (fb > fb.max() - 15) & keep1.unsqueeze(1)
    d2 = (ca - cb).abs()[keep2].max()
    return torch.stack([d1, d2])


def sigma_reach(d: NoiseConditionalDistribution, dim: int | None = None) -> tuple[Tensor, str]:
    """How much moving σ from ``REACH_SIGMAS[0]`` to ``REACH_SIGMAS[1]`` moves each
    dimension's conditional law: the largest change of its log density over probe points, one
    number per flat dimension, and the method (``"exact"``, ``"quadrature"`` or ``"joint"``,
    one number then).

    Example:
        >>> import torch
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2, dtype=torch.float64),
        ...                   torch.eye(2, dtype=torch.float64))
        >>> change, how = sigma_reach(d)
        >>> how, bool((change > 0.1).all())
        ('exact', True)
    """
    dim = d.event_shape.numel() if dim is None else dim
    exact = _exact(d)
    if exact is not None:
        return exact, "exact"
    if dim <= 2:
        return _by_quadrature(d, dim), "quadrature"
    x = _points(d, 64)
    with torch.no_grad():
        delta = (d.log_prob(x, REACH_SIGMAS[0]) - d.log_prob(x, REACH_SIGMAS[1])).abs()
    return delta.amax().reshape(1), "joint"


def check_sigma_reach(ex: Example, device: torch.device) -> None:
    """σ moves the conditional law of every dimension (float64, σ = 0.2 against σ = 1).

    Fails with a message that names each dimension (1-based, with its flat event index) whose
    conditional does not move by more
    than the tolerance (1e-7 nats exactly, 1e-4 by quadrature; a model that ignores σ in a
    dimension changes it by exactly 0, or by the quadrature's ~1e-6).
    """
    d = ex.make(torch.float64, device)
    change, how = sigma_reach(d, ex.dim)
    tol = EXACT_TOL if how == "exact" else QUADRATURE_TOL
    frozen = [i for i, c in enumerate(change.tolist()) if not c > tol]
    if not frozen:
        return
    if how == "joint":
        raise AssertionError(
            f"log p(x | sigma) does not change between sigma={REACH_SIGMAS[0]} and "
            f"{REACH_SIGMAS[1]} (largest change {float(change[0]):.2e} nats); define "
            "conditional_log_prob to have every dimension checked"
        )
    # 1-based like x_1 in the math, with the flat event index the tensors use
    names = ", ".join(f"dimension {i + 1} (index {i}; change {float(change[i]):.1e} nats)"
                      for i in frozen)
    raise AssertionError(
        f"sigma does not reach the conditional law of {names}: p(x_i | x_<i, sigma) is the "
        f"same at sigma={REACH_SIGMAS[0]} and sigma={REACH_SIGMAS[1]} ({how}; tolerance "
        f"{tol:g} nats), so the model cannot fit noisy data in that dimension"
    )
