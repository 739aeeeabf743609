"""The machinery every reading shares: a Comparison of two arms' metric (a difference is
claimed only where the two 95% intervals do not overlap, bnviz.stats.separated), a Reading (a
question's comparisons and verdict), and the lookups of an arm's row and estimate in a grid's
summary (bnviz.runs.results.summarize), by arm id.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bnviz.i18n import _
from bnviz.metrics import CHANCE
from bnviz.stats import Estimate, compare_text, separated


@dataclass(frozen=True)
class Comparison:
    """Arm a's metric against arm b's (the same metric, unless `metric_b` says otherwise:
    one run evaluated two ways is one arm and two metrics)."""
    a: str  # arm ids
    b: str
    name_a: str  # how the sentence names them
    name_b: str
    metric: str
    what: str  # the metric as the sentence says it
    ea: Estimate
    eb: Estimate
    digits: int = 3
    larger: bool = False  # "has the larger" rather than "has the higher" (a spread, a swing)
    metric_b: str = ""

    @property
    def verdict(self) -> str:
        """'a' or 'b' (the one with the higher mean, intervals apart), 'same' (intervals
        overlap) or 'too few' (an arm has no finished run, or fewer than two seeds)."""
        if self.ea.n < 2 or self.eb.n < 2:
            return "too few"
        if not separated(self.ea, self.eb):
            return "same"
        return "a" if self.ea.mean > self.eb.mean else "b"

    @property
    def difference(self) -> float:
        return self.ea.mean - self.eb.mean

    def text(self) -> str:
        return compare_text(self.name_a, self.ea, self.name_b, self.eb, self.what, self.digits,
                            larger=self.larger)


@dataclass(frozen=True)
class Reading:
    """A question's answer: its comparisons, in the order they are read, plus any verdict that
    combines them (`verdict`, with its numbers in `facts`) and the arms at chance level."""
    question: str
    comparisons: tuple[Comparison, ...] = ()
    verdict: str = ""
    facts: dict = field(default_factory=dict)
    at_chance: tuple[str, ...] = ()

    def comparison(self, a: str, b: str, metric: str | None = None) -> Comparison:
        for c in self.comparisons:
            if c.a == a and c.b == b and (metric is None or c.metric == metric):
                return c
        raise KeyError(f"{self.question}: no comparison of {a!r} with {b!r}")


class UnknownArm(KeyError):
    """A reading asked for an arm the grid does not have: a renamed or removed arm must fail
    loudly, never read as 'not enough runs'."""


def row_of(summary, arm: str):
    """The summary row of the arm with this id (KeyError-like UnknownArm when there is none)."""
    r = summary[summary.arm == arm] if "arm" in summary else summary.iloc[0:0]
    if r.empty:
        known = ", ".join(map(str, summary.arm)) if "arm" in summary else "none"
        raise UnknownArm(f"no arm {arm!r} in this grid (its arms: {known})")
    return r.iloc[0]


def estimate(summary, arm: str, metric_id: str = "test_acc") -> Estimate:
    """Mean, 95% CI half-width and n of one arm's metric over its finished seeds."""
    r = row_of(summary, arm)
    if metric_id not in r:
        raise KeyError(f"the summary has no column {metric_id!r}")
    return Estimate(float(r[metric_id]), float(r[f"{metric_id}_ci"]), int(r["n"]))


_est = estimate


def _name(summary, arm: str) -> str:
    return str(row_of(summary, arm)["run"])


def compare(summary, a: str, b: str, metric: str, what: str, name_a: str | None = None,
            name_b: str | None = None, digits: int = 3, larger: bool = False) -> Comparison:
    return Comparison(a, b, name_a or _name(summary, a), name_b or _name(summary, b), metric,
                      what, _est(summary, a, metric), _est(summary, b, metric), digits, larger)


def at_chance(summary, metric: str) -> tuple[str, ...]:
    """Arms whose mean `metric` is below chance level: a comparison with them says little."""
    out = []
    for arm in summary.arm:
        e = _est(summary, arm, metric)
        if e.n and e.mean < CHANCE:
            out.append(arm)
    return tuple(out)


def _than(c: Comparison, b: str) -> str:
    """'higher than b' / 'lower than b' (intervals apart), or why no difference is claimed."""
    return {"a": _("higher than {b}"), "b": _("lower than {b}"),
            "same": _("not distinguishable from {b} (the 95% intervals overlap)"),
            "too few": _("not yet comparable with {b} (too few finished seeds)")
            }[c.verdict].format(b=b)
