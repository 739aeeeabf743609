"""Frames for the fine-tuning page (pages/finetune.py): drift and accuracy on each part over
training, mean and 95% CI over seeds, in charts.band_figure's long format (bnviz.drift reads
the runs)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bnviz.drift import drift_rows
from bnviz.i18n import N_, _
from bnviz.stats import mean_ci


def _band(parts: list[tuple[str, float, float]]):
    """(group, epoch, value) triples → band_figure's frame: mean and 95% CI per group, epoch."""
    cols = ["group", "epoch", "mean", "lo", "hi", "n"]
    if not parts:
        return pd.DataFrame(columns=cols)
    long = pd.DataFrame(parts, columns=["group", "epoch", "value"])
    rows = []
    for (group, epoch), d in long.groupby(["group", "epoch"], sort=False)["value"]:
        e = mean_ci(d)
        half = 0.0 if e.half != e.half else e.half
        rows.append((group, epoch, e.mean, e.mean - half, e.mean + half, e.n))
    return pd.DataFrame(rows, columns=cols).sort_values(["epoch"], kind="stable")


def drift_curves(groups: dict[str, list]):
    """{label: [RunView, ...]} → the drift averaged over layers per snapshot, mean and 95% CI
    over each label's runs (seeds), in band_figure's long format."""
    parts = []
    for label, views in groups.items():
        for v in views:
            by_it: dict[tuple[int, float], list[float]] = {}
            for it, ep, _, d in drift_rows(v):
                by_it.setdefault((it, round(ep, 4)), []).append(d)
            parts += [(label, ep, float(np.mean(ds))) for (_, ep), ds in by_it.items()]
    return _band(parts)


def part_curves(groups: dict[str, list], names=(N_("part A"), N_("part B"))):
    """{label: [RunView, ...]} → test accuracy on part A and part B at each evaluation, mean
    and 95% CI over each label's runs, one group per label and part ("label · part A")."""
    parts = []
    for label, views in groups.items():
        for v in views:
            for e in v.evals:
                m = e.get("metrics") or {}
                for key, name in zip(("acc_part_a", "acc_part_b"), names):
                    if key in m:
                        parts.append((f"{_(str(label))} · {_(name)}",
                                      round(float(e["epoch"]), 4), float(m[key])))
    return _band(parts)


def layer_table(groups: dict[str, list]) -> pd.DataFrame:
    """The drift per layer at the last snapshot of each label's first run (one seed): rows
    labels, columns layers (empty when no run has running statistics to drift)."""
    rows = []
    for label, views in groups.items():
        r = drift_rows(views[0]) if views else []
        if r:
            last = max(x[0] for x in r)
            rows += [(label, site, d) for it, _, site, d in r if it == last]
    if not rows:
        return pd.DataFrame()
    t = pd.DataFrame(rows, columns=["arm", "layer", "drift"])
    t = t.pivot(index="arm", columns="layer", values="drift").reindex(
        [g for g in groups if g in set(t.arm)])
    t.index = pd.Index([_(str(g)) for g in t.index], name=_("arm"))  # as the page shows it
    t.columns.name = _("layer")
    return t
