"""Means over seeds with 95% Student-t confidence intervals, and what they allow us to say.

No scipy: the two-sided 95% t quantiles for small n are tabulated, larger ones follow the
Cornish-Fisher expansion (error < 1e-4 from 30 degrees of freedom on).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

# t_{0.975, df} for df = 1..30
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959964


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (a 95% two-sided CI)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


@dataclass(frozen=True)
class Estimate:
    mean: float
    half: float  # 95% CI half-width; nan with fewer than 2 values
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half

    def text(self, digits: int = 3) -> str:
        if self.n == 0:
            return "–"
        if self.n == 1 or math.isnan(self.half):
            return f"{self.mean:.{digits}f} (n = 1, no interval)"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f} (95% CI, n = {self.n})"


def mean_ci(values: Iterable[float]) -> Estimate:
    """Mean and 95% Student-t CI half-width of the finite values (NaNs are left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    m = sum(xs) / n
    if n == 1:
        return Estimate(m, math.nan, 1)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return Estimate(m, t975(n - 1) * sd / math.sqrt(n), n)


def separated(a: Estimate, b: Estimate) -> bool:
    """True when the two 95% intervals do not overlap: only then do we call it a difference."""
    if a.n < 2 or b.n < 2 or math.isnan(a.half) or math.isnan(b.half):
        return False
    return a.hi < b.lo or b.hi < a.lo


def compare_text(name_a: str, a: Estimate, name_b: str, b: Estimate, what: str = "test accuracy",
                 digits: int = 3) -> str:
    """One sentence that claims a difference only when the intervals separate."""
    if a.n == 0 or b.n == 0:
        return f"Not enough finished runs to compare {name_a} with {name_b}."
    if separated(a, b):
        (hi, e_hi), (lo, e_lo) = sorted(((name_a, a), (name_b, b)), key=lambda p: -p[1].mean)
        return (f"{hi} has the higher {what}: {e_hi.mean:.{digits}f} ± {e_hi.half:.{digits}f} "
                f"({hi}) vs {e_lo.mean:.{digits}f} ± {e_lo.half:.{digits}f} ({lo}), "
                f"95% CIs over n = {e_hi.n} and {e_lo.n} seeds do not overlap.")
    n = min(a.n, b.n)
    return (f"No difference in {what} detectable with {n} seed{'s' if n != 1 else ''}: "
            f"{a.text(digits)} for {name_a}, {b.text(digits)} for {name_b}.")


def fluctuation(test_accs: list[float], last: int = 5) -> float:
    """Standard deviation of the last few test accuracies (nan with fewer than 2)."""
    xs = [a for a in test_accs[-last:] if not math.isnan(a)]
    if len(xs) < 2:
        return math.nan
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
