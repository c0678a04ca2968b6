r"""Paired comparisons and their power, written down before the numbers are seen.

**Decision rule** (fixed before any test run): a paired comparison of NCMLE against MLE over
:math:`n` units (training seeds, or sample sets) with differences :math:`d_i` is

* *shown* when the two-sided 95 % confidence interval
  :math:`\bar d \pm t_{0.975,\,n-1}\, s_d/\sqrt n` excludes 0 in NCMLE's favour,
* *contradicted* when it excludes 0 in MLE's favour,
* *not shown at this power* otherwise; the smallest detectable effect (80 % power, two-sided
  5 % level) :math:`\text{MDE} = (t_{0.975,\,n-1} + t_{0.8,\,n-1})\, s_d / \sqrt n` is printed
  beside it, so that a null result says how large an effect it rules out.

A comparison of one score against a floor uses the floor's run-to-run spread in the same way:
scores within :math:`2\,\text{sd}` of each other are not told apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy import stats

__all__ = ["Paired", "paired"]


@dataclass(frozen=True)
class Paired:
    """A paired comparison: ``mean`` of the differences (better − worse is negative for a
    lower-is-better score), its 95 % interval, the smallest detectable effect and the verdict."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    mde: float
    verdict: str

    def to_json(self) -> dict[str, float | int | str]:
        return asdict(self)


def paired(differences: Sequence[float], *, lower_is_better: bool = True) -> Paired:
    """The decision rule of the module docstring for ``differences`` = NCMLE − MLE.

    Example:
        >>> p = paired([-0.05, -0.04, -0.06])
        >>> p.verdict, round(p.mean, 3), round(p.mde, 3)
        ('shown', -0.05, 0.039)
        >>> paired([-0.05, 0.04, -0.01]).verdict
        'not shown at this power'
    """
    d = [float(x) for x in differences]
    n = len(d)
    if n < 2:
        raise ValueError(f"a paired comparison needs >= 2 differences, got {n}")
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    t95, t80 = float(stats.t.ppf(0.975, n - 1)), float(stats.t.ppf(0.8, n - 1))
    low, high = mean - t95 * se, mean + t95 * se
    better_low = high < 0 if lower_is_better else low > 0
    better_high = low > 0 if lower_is_better else high < 0
    verdict = ("shown" if better_low else "contradicted" if better_high
               else "not shown at this power")
    return Paired(n, mean, sd, low, high, (t95 + t80) * se, verdict)
