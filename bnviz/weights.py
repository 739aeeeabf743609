"""What a finished run's weights say, from its record alone (no torch): each layer's weight
norm ‖w‖ and effective step η/‖w‖² over training (the weight-decay page), and the fraction of
channels whose gamma ended near 0 (the train-only page). Runs with `track_weights` record the
norms (bnviz.metrics' wnorm_* probes); every run records gamma (its BN snapshots)."""
from __future__ import annotations

import math

import numpy as np

# The conv/linear layers, in network order; fc3 is the output layer (no norm after it).
LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")
# A channel counts as switched off when |gamma| ends below this: a tenth of its initial 1, so
# its normalised feature reaches the activation at under a tenth of the scale it started with
# (with a sigmoid the channel is then nearly the constant sigmoid(beta): no information).
GAMMA_OFF = 0.1
OFF_THRESHOLDS = (0.01, 0.05, GAMMA_OFF, 0.2)  # the page's table: the count at other cuts


def gamma_off(gammas, threshold: float = GAMMA_OFF) -> float:
    """Fraction of channels with |gamma| < threshold over all the arrays given (NaN: none)."""
    parts = [np.abs(np.ravel(np.asarray(v, dtype=float))) for v in gammas]
    g = np.concatenate(parts) if parts else np.array([])
    return float((g < threshold).mean()) if g.size else math.nan


def final_gammas(view) -> dict[str, np.ndarray]:
    """gamma per norm site at the run's last snapshot ({} when it has none)."""
    if not view.snapshots:
        return {}
    layers = view.snapshots[-1][2]
    return {site: np.asarray(d["gamma"]) for site, d in layers.items() if "gamma" in d}


def norm_rows(view) -> list[dict]:
    """‖w‖ and η/‖w‖² per layer at each evaluation: dicts of iteration, epoch, layer, norm,
    step (η/‖w‖²). None when the run did not track its weights."""
    rows = []
    for e in view.evals:
        m = e.get("metrics") or {}
        for layer in LAYERS:
            v = m.get(f"wnorm_{layer}")
            if v is not None and v == v:
                rows.append(dict(iteration=e["iteration"], epoch=e["epoch"], layer=layer,
                                 norm=v, step=view.config.lr / v ** 2 if v else math.nan))
    return rows


def final_columns(view) -> dict[str, float]:
    """A grid row's extra columns for a run that tracked its weights: the final ‖w‖ per layer
    (final_wnorm_<layer>) and the fraction of channels switched off (final_gamma_off)."""
    out: dict[str, float] = {}
    last = (view.evals[-1].get("metrics") or {}) if view.evals else {}
    for layer in LAYERS:
        out[f"final_wnorm_{layer}"] = float(last.get(f"wnorm_{layer}", math.nan))
    out["final_gamma_off"] = gamma_off(list(final_gammas(view).values()))
    return out
