"""Means over seeds with 95% Student-t confidence intervals, and what they allow us to say.

No scipy: the two-sided 95% t quantiles for small n are tabulated, larger ones follow the
Cornish-Fisher expansion (error < 1e-4 from 30 degrees of freedom on).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from bnviz.i18n import _, is_zh

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
            return _("{mean} (n = 1, no interval)").format(mean=f"{self.mean:.{digits}f}")
        return _("{mean} ± {half} (95% CI, n = {n})").format(
            mean=f"{self.mean:.{digits}f}", half=f"{self.half:.{digits}f}", n=self.n)


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


class Phrase(str):
    """English text made from a template and its fields (an arm's name such as "BN at m = 4"):
    equal to the English, and kept so that `say` can render it in the reader's language.
    Mark the template with N_ where it is written: `Phrase(N_("BN at m = {m}"), m=4)`."""

    def __new__(cls, template: str, **fields):
        self = super().__new__(cls, template.format(**fields))
        self.template, self.fields = template, fields
        return self

    def __reduce__(self):
        return _phrase, (self.template, self.fields)


def _phrase(template: str, fields: dict) -> Phrase:
    return Phrase(template, **fields)


def say(text: str) -> str:
    """A name or metric phrase of a reading (English data, marked with N_ where it is written)
    in the current language: a Phrase's template is translated and refilled (a field that is
    itself a Phrase is said too; numbers and code names stay as they are)."""
    if isinstance(text, Phrase):
        return _(text.template).format(**{k: say(v) if isinstance(v, Phrase) else v
                                         for k, v in text.fields.items()})
    return _(text) if text else text


_CJK_THEN_LATIN = re.compile(r"([\u4e00-\u9fff])([A-Za-z0-9(‖|])")
_LATIN_THEN_CJK = re.compile(r"([A-Za-z0-9%)‖²])([\u4e00-\u9fff])")


def spaced(text: str) -> str:
    """In Chinese, a space between a Chinese character and a Latin word or number that a
    filled-in template put side by side ("BN的" → "BN 的", as the Chinese edition writes);
    English is returned as it is."""
    if not is_zh():
        return text
    return _LATIN_THEN_CJK.sub(r"\1 \2", _CJK_THEN_LATIN.sub(r"\1 \2", text))


def sentences(parts: Iterable[str]) -> str:
    """Sentences one after another: a space between them in English, none after a Chinese 。."""
    return spaced(("" if is_zh() else " ").join(parts))


def listing(items: Iterable[str]) -> str:
    """Names in a list: "a, b" in English, "a、b" in Chinese."""
    return ("、" if is_zh() else ", ").join(items)


def compare_text(name_a: str, a: Estimate, name_b: str, b: Estimate, what: str = "test accuracy",
                 digits: int = 3, larger: bool = False) -> str:
    """One sentence that claims a difference only when the intervals separate. The names and
    `what` are English data (`say` renders them); larger=True says "has the larger" (a spread,
    a swing) rather than "has the higher"."""
    name_a, name_b, what = say(name_a), say(name_b), say(what)
    if a.n == 0 or b.n == 0:
        return spaced(_("Not enough finished runs to compare {a} with {b}.").format(a=name_a,
                                                                                   b=name_b))
    if separated(a, b):
        (hi, e_hi), (lo, e_lo) = sorted(((name_a, a), (name_b, b)), key=lambda p: -p[1].mean)
        template = (_("{hi} has the larger {what}: {hi_mean} ± {hi_half} ({hi}) vs {lo_mean} ± "
                      "{lo_half} ({lo}), 95% CIs over n = {hi_n} and {lo_n} seeds do not "
                      "overlap.") if larger else
                    _("{hi} has the higher {what}: {hi_mean} ± {hi_half} ({hi}) vs {lo_mean} ± "
                      "{lo_half} ({lo}), 95% CIs over n = {hi_n} and {lo_n} seeds do not "
                      "overlap."))
        return spaced(template.format(
            hi=hi, lo=lo, what=what, hi_mean=f"{e_hi.mean:.{digits}f}",
            hi_half=f"{e_hi.half:.{digits}f}", lo_mean=f"{e_lo.mean:.{digits}f}",
            lo_half=f"{e_lo.half:.{digits}f}", hi_n=e_hi.n, lo_n=e_lo.n))
    n = min(a.n, b.n)
    template = (_("No difference in {what} detectable with {n} seed: {est_a} for {a}, {est_b} "
                  "for {b}.") if n == 1 else
                _("No difference in {what} detectable with {n} seeds: {est_a} for {a}, {est_b} "
                  "for {b}."))
    return spaced(template.format(what=what, n=n, est_a=a.text(digits), a=name_a,
                                  est_b=b.text(digits), b=name_b))


def fluctuation(test_accs: list[float], last: int = 5) -> float:
    """Standard deviation of the last few test accuracies (nan with fewer than 2)."""
    xs = [a for a in test_accs[-last:] if not math.isnan(a)]
    if len(xs) < 2:
        return math.nan
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
