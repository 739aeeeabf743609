"""How far BN's running statistics move over a fine-tuning (bnviz/finetune.py), read from a
run's snapshots. numpy only, so results tables need no torch (the page's frames:
bnviz/dashboard/finetune.py).

The drift of a layer at a snapshot is the mean over its channels of |μ − μ₀| / √(σ₀² + eps):
μ the running mean then, μ₀ and σ₀² the running mean and variance when the fine-tuning began
(the last snapshot of pretraining), so 1.0 means the running means moved by one running
standard deviation. Frozen statistics give exactly 0.
"""
from __future__ import annotations

import math

import numpy as np


def start_snapshot(view):
    """The snapshot at the end of pretraining (epoch == cfg.epochs), or None."""
    cfg = view.config
    if cfg.finetune_epochs <= 0:
        return None
    before = [s for s in view.snapshots if s[1] <= cfg.epochs + 1e-9]
    return before[-1] if before else None


def drift_rows(view) -> list[tuple[int, float, str, float]]:
    """(iteration, epoch, layer, drift) for every snapshot and layer with running statistics;
    empty for a run without fine-tuning or without running statistics."""
    ref = start_snapshot(view)
    if ref is None:
        return []
    eps = view.config.eps
    rows = []
    for it, ep, layers in view.snapshots:
        for site, d in layers.items():
            r = ref[2].get(site, {})
            if "running_mean" not in d or "running_mean" not in r:
                continue
            scale = np.sqrt(np.asarray(r["running_var"], dtype=np.float64) + eps)
            moved = np.abs(np.asarray(d["running_mean"], np.float64) - r["running_mean"]) / scale
            rows.append((int(it), float(ep), site, float(moved.mean())))
    return rows


def final_drift(view) -> float:
    """The drift at the run's last snapshot, averaged over its layers (NaN when none)."""
    rows = drift_rows(view)
    if not rows:
        return math.nan
    last = max(r[0] for r in rows)
    return float(np.mean([r[3] for r in rows if r[0] == last]))


# -- the CLI's CSVs (`bnviz sweep finetune --out DIR`) ----------------------------------------

DRIFT_COLUMNS = ("arm", "run", "seed", "iteration", "epoch", "layer", "drift")
ACCURACY_COLUMNS = ("arm", "run", "seed", "iteration", "epoch", "acc_part_a", "acc_part_b")


def drift_csv_rows(runs) -> list[dict]:
    """finetune_drift.csv: (arm, label, RunView) triples → one row per snapshot and layer."""
    return [dict(zip(DRIFT_COLUMNS, (arm, label, v.config.seed, *row)))
            for arm, label, v in runs for row in drift_rows(v)]


def accuracy_csv_rows(runs) -> list[dict]:
    """finetune_accuracy.csv: one row per run and evaluation, accuracy on each part."""
    out = []
    for arm, label, v in runs:
        for e in v.evals:
            m = e.get("metrics") or {}
            out.append(dict(arm=arm, run=label, seed=v.config.seed, iteration=e["iteration"],
                            epoch=e["epoch"], acc_part_a=m.get("acc_part_a", math.nan),
                            acc_part_b=m.get("acc_part_b", math.nan)))
    return out
