"""Contract checks: what generic torch and Pyro code expects of a distribution.

Class-level ``support``, ``infer_shapes``, ``expand`` with a subclass, ``torch.jit.trace``,
serialisation round trips, Pyro's ``Predictive`` shapes, the σ contract (a per-call σ means
exactly ``at(σ)``) and the support of a composition with a positive transform. Each check is a
function ``check(example, device)`` that raises :class:`AssertionError` on a violation.
"""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.transforms import ExpTransform

from ..distributions import NoiseConditionalDistribution, TransformedNoiseConditional
from .properties import _check, continuous_points, positive
from .spec import Example

__all__ = [
    "check_expand_subclass",
    "check_infer_shapes",
    "check_jit_trace",
    "check_positive_transform",
    "check_predictive_shapes",
    "check_serialization",
    "check_sigma_binding",
    "check_support_constraint",
]


def check_support_constraint(ex: Example, device: torch.device) -> None:
    """``support`` is a :class:`~torch.distributions.constraints.Constraint` on the class
    (torch's ``dependent_property``) and on the instance, with the event's dims."""
    d = ex.make(torch.float32, device)
    cls_support = type(d).support
    _check(isinstance(cls_support, constraints.Constraint),
           f"{ex.id}: {type(d).__name__}.support is a {type(cls_support).__name__}, not a "
           "Constraint")
    support = d.support
    _check(isinstance(support, constraints.Constraint),
           f"{ex.id}: support is a {type(support).__name__}")
    _check(support.event_dim == len(d.event_shape),
           f"{ex.id}: support.event_dim {support.event_dim} != {len(d.event_shape)} event dims")
    x = d.sample((4,))
    _check(bool(support.check(x).all()), f"{ex.id}: samples outside the support {support!r}")


def check_infer_shapes(ex: Example, device: torch.device) -> None:
    """``infer_shapes`` either returns the shapes of an instance or raises
    :class:`NotImplementedError` (never another error); for the closed-form oracles it
    returns ``(batch_shape, event_shape)`` of the instance built from the same shapes."""
    d = ex.make(torch.float32, device)
    cls = type(d)
    names = {
        "NoisyGaussian": ("loc", "clean_covariance"),
        "NoisyGaussianMixture": ("weights", "locs", "clean_covariances"),
    }.get(cls.__name__)
    if names is None:
        try:
            cls.infer_shapes(sigma=tuple(d.sigma.shape))
        except NotImplementedError:
            return
        return
    shapes = [tuple(getattr(d, n).shape) for n in names]
    batch, event = cls.infer_shapes(*shapes, sigma=tuple(d.sigma.shape))
    _check((batch, event) == (d.batch_shape, d.event_shape),
           f"{ex.id}: infer_shapes gave {(batch, event)}, the instance has "
           f"{(d.batch_shape, d.event_shape)}")


def check_expand_subclass(ex: Example, device: torch.device) -> None:
    """A subclass written the torch way (``_get_checked_instance``, its own fields set on the
    new instance, ``super().expand(..., _instance=new)``) keeps its fields through
    ``expand``, and the instance it passed in is the one returned."""
    d = ex.make(torch.float32, device)
    base_cls = type(d)

    class Tagged(base_cls):  # type: ignore[valid-type, misc]
        def expand(self, batch_shape, _instance=None):  # type: ignore[no-untyped-def]
            new = self._get_checked_instance(Tagged, _instance)
            new.tag = self.tag.expand(batch_shape)
            new.note = self.note
            return super().expand(batch_shape, _instance=new)

    tagged = copy.copy(d)
    tagged.__class__ = Tagged
    tagged.tag = torch.arange(max(1, d.batch_shape.numel()), dtype=torch.float32,
                              device=device).reshape(d.batch_shape)
    tagged.note = "kept"
    new_batch = torch.Size((3,)) + d.batch_shape
    e = tagged.expand(new_batch)
    _check(type(e) is Tagged, f"{ex.id}: expand returned a {type(e).__name__}")
    _check(e.tag.shape == new_batch,
           f"{ex.id}: the subclass's field has shape {tuple(e.tag.shape)} after expand, "
           f"expected {tuple(new_batch)} (the instance passed as _instance was dropped)")
    _check(e.note == "kept" and e.batch_shape == new_batch, f"{ex.id}: fields lost")
    # torch keeps the per-instance switch private: the check reads it on purpose
    _check(e._validate_args == d._validate_args,  # noqa: SLF001
           f"{ex.id}: validate_args not carried over")
    x = e.sample((2,))
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x), rtol=0, atol=0)


def check_jit_trace(ex: Example, device: torch.device) -> None:
    """A ``torch.jit.trace`` of ``log_prob`` traced at one σ (all equal) and one batch of data
    gives the eager values at other, unequal σ and other data (nothing data-dependent baked
    in)."""
    d = ex.make(torch.float64, device)
    x1, _ = continuous_points(d, 4)
    batch = x1.shape[: x1.dim() - len(d.event_shape)]
    s1 = torch.full(batch, 0.5, dtype=torch.float64, device=device)
    s2 = torch.linspace(0.1, 2.0, batch.numel(), dtype=torch.float64,
                        device=device).reshape(batch)
    x2 = d.at(1.5 * positive(d.sigma)).sample((4,),
                                              generator=torch.Generator(device).manual_seed(3))
    with warnings.catch_warnings():
        # The validation's Python checks (finite data, σ >= 0) are not part of the trace, as
        # the tracer warns; the values must not depend on them.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_LogProb(d), (x1, s1), check_trace=False)
    # float64: the same operations in the same order; 1e-10 catches any baked-in branch
    # (the equal-σ shortcut of a factorisation is off by O(1) nats).
    torch.testing.assert_close(traced(x2, s2), d.log_prob(x2, s2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(traced(x1, s2), d.log_prob(x1, s2), rtol=1e-10, atol=1e-10)


class _LogProb(torch.nn.Module):
    """``d.log_prob`` as a module whose submodules are the distribution's networks, so that
    ``torch.jit.trace`` sees their weights as parameters (not as constants that require
    grad, which it refuses)."""

    def __init__(self, d: NoiseConditionalDistribution) -> None:
        super().__init__()
        self.d = d
        self.nets = torch.nn.ModuleList(_modules(d))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.d.log_prob(x, sigma)


def _modules(obj: object, seen: set[int] | None = None) -> list[torch.nn.Module]:
    """The ``nn.Module`` fields of a distribution, of its base and of its transforms."""
    seen = set() if seen is None else seen
    found: list[torch.nn.Module] = []
    values = obj if isinstance(obj, (list, tuple)) else list(vars(obj).values())
    for value in values:
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            found.append(value)
        elif isinstance(value, (NoiseConditionalDistribution, list, tuple)):
            found += _modules(value, seen)
    return found


def _same(a: NoiseConditionalDistribution, b: NoiseConditionalDistribution, x: Tensor,
          what: str) -> None:
    _check(type(a) is type(b) and a.batch_shape == b.batch_shape
           and a.event_shape == b.event_shape, f"{what}: type or shapes changed")
    torch.testing.assert_close(a.sigma, b.sigma, rtol=0, atol=0)
    torch.testing.assert_close(a.log_prob(x), b.log_prob(x), rtol=0, atol=0)
    gen = torch.Generator(x.device)
    torch.testing.assert_close(a.sample((3,), generator=gen.manual_seed(5)),
                               b.sample((3,), generator=gen.manual_seed(5)), rtol=0, atol=0)


def check_serialization(ex: Example, device: torch.device) -> None:
    """``torch.save``/``torch.load``, ``pickle`` and ``copy.deepcopy`` give a distribution with
    the same σ, shapes, ``log_prob`` and seeded samples (exact equality)."""
    d = ex.make(torch.float32, device)
    x = d.sample((5,))
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    # A whole Python object (not a state dict) needs weights_only=False: load only files you
    # wrote yourself. Checkpoints of models load with weights_only=True (ncmle_prob.training).
    _same(d, torch.load(buf, weights_only=False), x, f"{ex.id}: torch.save/load")
    _same(d, pickle.loads(pickle.dumps(d)), x, f"{ex.id}: pickle")
    _same(d, copy.deepcopy(d), x, f"{ex.id}: deepcopy")


def check_predictive_shapes(ex: Example, device: torch.device) -> None:
    """Pyro's ``Predictive`` (sequential and vectorised) gives the same shapes with this prior
    as with a ``MultivariateNormal`` prior of the same batch and event shapes."""
    import pyro
    import pyro.distributions as pdist
    from pyro.infer import Predictive

    d = ex.make(torch.float32, device)
    k, n_batch = len(d.event_shape), len(d.batch_shape)
    numel = d.event_shape.numel()
    mvn = pdist.MultivariateNormal(torch.zeros(d.batch_shape + (numel,), device=device),
                                   torch.eye(numel, device=device))

    def model(prior: pdist.Distribution) -> None:
        z = pyro.sample("z", prior.to_event(n_batch) if n_batch else prior)
        v = z.reshape(z.shape[: z.dim() - k] + (numel,))
        pyro.sample("y", pdist.Normal(v, 1.0).to_event(n_batch + 1))

    for parallel in (False, True):
        ours = Predictive(model, num_samples=6, parallel=parallel)(d)
        ref = Predictive(model, num_samples=6, parallel=parallel)(mvn)
        what = f"{ex.id}, parallel={parallel}"
        _check(ours["z"].shape == (6,) + d.batch_shape + d.event_shape,
               f"{what}: Predictive z shape {tuple(ours['z'].shape)}")
        _check(ours["z"].shape[: 1 + n_batch] == ref["z"].shape[: 1 + n_batch],
               f"{what}: z shape {tuple(ours['z'].shape)} vs MVN {tuple(ref['z'].shape)}")
        _check(ours["y"].shape == ref["y"].shape,
               f"{what}: y shape {tuple(ours['y'].shape)} vs MVN {tuple(ref['y'].shape)}")
        _check(bool(torch.isfinite(ours["y"]).all()), f"{what}: non-finite predictive draws")


def check_sigma_binding(ex: Example, device: torch.device) -> None:
    """The σ contract: a per-call ``sigma`` means exactly ``at(sigma)``, for every method and
    every kind of σ (scalar, batch-shaped, per example, with a new leading dim)."""
    d = ex.make(torch.float64, device)
    x, _ = continuous_points(d, 3)
    x_batch = x.shape[: x.dim() - len(d.event_shape)]
    cases: list[float | Tensor] = [
        0.3,
        torch.tensor(0.7, dtype=torch.float64, device=device),
        0.2 + torch.rand(x_batch, dtype=torch.float64, device=device),
        torch.tensor([0.4, 1.1], dtype=torch.float64, device=device).reshape(
            (2,) + (1,) * len(x_batch)),
    ]
    for s in cases:
        bound = d.at(s)
        what = f"{ex.id}: sigma of shape {tuple(torch.as_tensor(s).shape)}"
        lp = d.log_prob(x, s)
        ref = bound.log_prob(x)
        _check(lp.shape == ref.shape, f"{what}: log_prob shape {tuple(lp.shape)} per call, "
               f"{tuple(ref.shape)} bound")
        torch.testing.assert_close(lp, ref, rtol=0, atol=0)
        torch.testing.assert_close(d.score(x, s), bound.score(x), rtol=0, atol=0)
        torch.testing.assert_close(d.denoise(x, s), bound.denoise(x), rtol=0, atol=0)
        pair, pair_ref = d.log_prob_and_score(x, s), bound.log_prob_and_score(x)
        torch.testing.assert_close(pair[0], pair_ref[0], rtol=0, atol=0)
        torch.testing.assert_close(pair[1], pair_ref[1], rtol=0, atol=0)
        torch.testing.assert_close(d.is_mass(s), bound.is_mass(), rtol=0, atol=0)
    # The fast path uses the bound σ and agrees with the validated call.
    sb = positive(d.sigma)
    bound = d.at(sb)
    xb = bound.sample((3,))
    fast = bound.log_prob_and_score(xb, validate=False)
    slow = bound.log_prob_and_score(xb)
    torch.testing.assert_close(fast[0], slow[0], rtol=0, atol=0)
    torch.testing.assert_close(fast[1], slow[1], rtol=0, atol=0)


def check_positive_transform(ex: Example, device: torch.device) -> None:
    """Pushed through ``ExpTransform``, a continuous distribution has a positive support (the
    codomain of the last transform, with the event's dims), its samples lie in it, and its
    ``log_prob`` is the change of variables."""
    d = ex.make(torch.float64, device)
    if d.discrete_at_zero:  # a log mass on a grid cannot be pushed through a flow
        return
    t = TransformedNoiseConditional(d, ExpTransform())
    support = t.support
    _check(support.event_dim == len(d.event_shape),
           f"{ex.id}: support event_dim {support.event_dim}")
    inner = support
    while isinstance(inner, constraints.independent):
        inner = inner.base_constraint
    _check(isinstance(inner, constraints.greater_than) and float(inner.lower_bound) == 0.0,
           f"{ex.id}: the support through ExpTransform is {support!r}, not the positive reals")
    y = t.sample((4,))
    _check(bool(support.check(y).all()), f"{ex.id}: samples outside {support!r}")
    z = torch.log(y)
    expected = d.log_prob(z) - z.flatten(z.dim() - len(d.event_shape)).sum(-1)
    # float64, the same numbers through one log and one sum: equal to rounding.
    torch.testing.assert_close(t.log_prob(y), expected, rtol=1e-12, atol=1e-12)
