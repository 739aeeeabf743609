"""One-line readings of a run's numbers, for people."""
from __future__ import annotations

import math

import numpy as np


def fluctuation(test_accs: list[float], last: int = 5) -> float:
    """Standard deviation of the last few test accuracies (nan with fewer than 2)."""
    xs = [a for a in test_accs[-last:] if not math.isnan(a)]
    return float(np.std(xs, ddof=1)) if len(xs) >= 2 else math.nan


def describe(v) -> str:
    s = v.summary
    if not s or math.isnan(s.get("test_acc", math.nan)):
        return "No evaluation yet." if v.status != "finished" else ""
    train, test = s["train_acc"], s["test_acc"]
    gap = train - test
    parts = [f"Test accuracy {test:.3f}, train accuracy {train:.3f} (gap {gap:+.3f}), "
             f"{s.get('examples_per_sec', 0):,.0f} examples/s."]
    if gap > 0.05:
        parts.append("The model fits the training set clearly better than unseen data.")
    accs = [e["test_acc"] for e in v.evals]
    fl = fluctuation(accs)
    if not math.isnan(fl) and fl > 0.015:
        parts.append(f"Test accuracy swung by ±{fl:.3f} over the last evaluations: the running "
                     "statistics lag the weights — try PreciseBN in the fluctuation chart.")
    if test < 0.15:
        parts.append("That is chance level: the network did not learn.")
    return " ".join(parts)
