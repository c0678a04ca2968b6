"""The numerical helpers of the generic checks, now shipped in :mod:`ncmle_prob.testing`.

Kept as a module of the test suite so that tests importing ``numerics`` keep working.
"""

from ncmle_prob.testing.numerics import (
    MIN_EXPECTED,
    Quadrature,
    auto_gof,
    binned_gof,
    grid_gof,
    grid_points,
    quadrature,
    reliable_chi2sf,
)

__all__ = [
    "MIN_EXPECTED",
    "Quadrature",
    "auto_gof",
    "binned_gof",
    "grid_gof",
    "grid_points",
    "quadrature",
    "reliable_chi2sf",
]
