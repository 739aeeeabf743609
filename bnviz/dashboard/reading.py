"""One-line readings of a run's numbers, for people."""
from __future__ import annotations

import math

from bnviz.metrics import CHANCE
from bnviz.stats import fluctuation


def describe(v, speed: bool = True) -> str:
    """What one run's final numbers say, and no more: one run has no error bar, so this never
    compares it with another run. The train–test gap is split into the part the running
    statistics cause (PreciseBN recomputes them for the final weights) and the rest.
    speed=False leaves out the examples/s (a library run's was measured on another machine)."""
    s = v.summary
    if not s or math.isnan(s.get("test_acc", math.nan)):
        return "No evaluation yet." if v.status != "finished" else ""
    train, test = s["train_acc"], s["test_acc"]
    gap = train - test
    parts = [f"Test accuracy {test:.3f}, train accuracy {train:.3f} (gap {gap:+.3f})"
             + (f", {s.get('examples_per_sec', 0):,.0f} examples/s." if speed else ".")]
    if test < CHANCE and train < CHANCE:
        parts.append("That is chance level on both: the network did not learn.")
        return " ".join(parts)
    if test < CHANCE:
        parts.append("Test accuracy is at chance level while training learned: the model "
                     "fails in eval mode.")
    running = s.get("test_acc_running", math.nan)
    precise = s.get("test_acc_precise", math.nan)
    if v.config.eval_mode == "running" and not math.isnan(precise) and precise != running:
        lag = precise - running
        rest = train - precise
        parts.append(f"With PreciseBN (statistics recomputed for the final weights) the test "
                     f"accuracy is {precise:.3f}: {lag:+.3f} of the gap comes from the running "
                     f"statistics lagging the weights, not from the weights. The remaining "
                     f"{rest:+.3f} compares the final model on unseen images with its average "
                     f"on the last epoch's training batches in train mode, so it is at most "
                     f"overfitting.")
    elif gap > 0.05:
        parts.append("Train accuracy (the last epoch's batches, in train mode) is above test "
                     "accuracy (the final model, eval mode).")
    accs = [e["test_acc"] for e in v.evals]
    fl = fluctuation(accs)
    if not math.isnan(fl) and fl > 0.015:
        parts.append(f"Test accuracy swung by ±{fl:.3f} (std) over the last evaluations: see "
                     "the fluctuation chart.")
    return " ".join(parts)
