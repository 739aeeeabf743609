"""Frames and figures of the weight-decay and train-only pages, from finished runs' views:
‖w‖ and η/‖w‖² per layer over training (mean and 95% CI over seeds), the final gammas."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from bnviz import i18n
from bnviz.config import Config
from bnviz.i18n import N_, _
from bnviz.metrics import format_estimate
from bnviz.stats import mean_ci
from bnviz.weights import OFF_THRESHOLDS, final_gammas, gamma_off, norm_rows


@lru_cache(maxsize=64)
def initial_norms(cfg: Config) -> dict[str, float]:
    """‖w‖ per layer before the first step (the model is built from the seed alone)."""
    from bnviz.model import build_lenet
    from bnviz.optim import weight_norms
    return weight_norms(build_lenet(cfg))


def invariance_table(cfg: Config, c: float = 10.0) -> pd.DataFrame:
    """The scale test of bnviz.optim.invariance on one batch, as the page shows it (in the
    session's language: the cache is keyed by it)."""
    return _invariance_table(cfg, c, i18n.language())


@lru_cache(maxsize=16)
def _invariance_rows(cfg: Config, c: float):
    from bnviz.optim import invariance
    return tuple(invariance(cfg, c))


@lru_cache(maxsize=16)
def _invariance_table(cfg: Config, c: float, lang: str) -> pd.DataFrame:
    rows = _invariance_rows(cfg, c)  # the computation, once for every language
    return pd.DataFrame({
        _("layer"): [r.layer for r in rows],
        _("a norm follows it (before the activation)"): [_("yes") if r.invariant else _("no")
                                                         for r in rows],
        _("loss"): [f"{r.loss:.6f}" for r in rows],
        _("loss with w, b × {c:g}").format(c=c): [f"{r.loss_scaled:.6f}" for r in rows],
        _("relative change"): [f"{r.relative_change:.1e}" for r in rows],
        "cos(∇L, (w, b))": [f"{r.cos:+.1e}" for r in rows]})


def invariance_tables(base: Config) -> dict[str, pd.DataFrame]:
    """The weight-decay page's two scale tests at `base`'s seed: LeNet with BN (base's kind,
    BN when it has none) and without."""
    # Keyed on what the model at initialisation depends on, not on the training knobs.
    bn = Config().replace(**{k: getattr(base, k) for k in (
        "seed", "eps", "activation", "norm_position", "conv1_padding", "bias", "norm_conv1",
        "norm_conv2", "norm_fc1", "norm_fc2", "groups")},
        norm="bn" if base.norm == "none" else base.norm)
    # keys: English, marked with N_ (the page shows them with _())
    return {N_("with BN"): invariance_table(bn),
            N_("without BN"): invariance_table(bn.replace(norm="none"))}


def warm(page_base) -> None:
    """What the weight-decay page computes at its default settings (the server's warm-up)."""
    invariance_tables(page_base("weight-decay"))


def norm_curves(groups: dict[str, list], layer: str, value: str = "norm") -> pd.DataFrame:
    """Long frame (group, epoch, mean, lo, hi, n) of one layer's ‖w‖ (value "norm") or
    η/‖w‖² ("step") for each group of runs (label → views), epoch 0 from the initial
    weights."""
    parts = []
    for group, views in groups.items():
        for v in views:
            if v is None:
                continue
            rows = [r for r in norm_rows(v) if r["layer"] == layer]
            if not rows:
                continue
            w0 = initial_norms(v.config).get(layer, math.nan)
            rows = [dict(epoch=0.0, norm=w0, step=v.config.lr / w0 ** 2)] + rows
            parts.append(pd.DataFrame({"group": group,
                                       "epoch": [round(r["epoch"], 4) for r in rows],
                                       "value": [r[value] for r in rows]}))
    if not parts:
        return pd.DataFrame(columns=["group", "epoch", "mean", "lo", "hi", "n"])
    out = []
    for (group, epoch), d in pd.concat(parts).groupby(["group", "epoch"], sort=False)["value"]:
        e = mean_ci(d)
        half = 0.0 if e.half != e.half else e.half
        out.append(dict(group=group, epoch=epoch, mean=e.mean, lo=e.mean - half,
                        hi=e.mean + half, n=e.n))
    return pd.DataFrame(out)


def final_norms_table(groups: dict[str, list], layers) -> pd.DataFrame:
    """Per group: ‖w‖ at the start and at the end of training, and η/‖w‖² at the end, for
    each layer (mean over seeds; the start is the same weights for every group)."""
    rows = []
    for group, views in groups.items():
        views = [v for v in views if v is not None and norm_rows(v)]
        if not views:
            continue
        for layer in layers:
            start = [initial_norms(v.config)[layer] for v in views]
            end = [[r for r in norm_rows(v) if r["layer"] == layer][-1]["norm"] for v in views]
            lr = views[0].config.lr
            e = mean_ci(pd.Series(end))
            rows.append({_("configuration"): _(str(group)), _("layer"): layer,
                         _("‖w‖ at the start"): f"{np.mean(start):.2f}",
                         _("‖w‖ at the end"): format_estimate(e.mean, e.half, 2),
                         _("η/‖w‖² at the end"): f"{lr / e.mean ** 2:.4f}",
                         _("‖w‖ end / start"): f"{e.mean / np.mean(start):.2f}"})
    return pd.DataFrame(rows)


def pooled_gammas(views) -> np.ndarray:
    """Every channel's final gamma over these runs (all norm layers, all seeds)."""
    parts = [g for v in views if v is not None for g in final_gammas(v).values()]
    return np.concatenate(parts) if parts else np.array([])


def gamma_off_table(groups: dict[str, list]) -> pd.DataFrame:
    """Per group, the fraction of channels with |gamma| below each threshold (mean over seeds,
    each seed's fraction over all its norm layers' channels)."""
    rows = []
    for group, views in groups.items():
        views = [v for v in views if v is not None and final_gammas(v)]
        if not views:
            continue
        row = {_("configuration"): _(str(group)), _("runs"): len(views)}
        for t in OFF_THRESHOLDS:
            fr = [gamma_off(list(final_gammas(v).values()), t) for v in views]
            row[f"|γ| < {t:g}"] = f"{np.mean(fr):.1%}"
        rows.append(row)
    return pd.DataFrame(rows)


def gamma_off_by_layer(views, threshold: float) -> pd.DataFrame:
    """Per norm layer: channels, and the fraction with |gamma| < threshold (pooled seeds)."""
    per: dict[str, list] = {}
    for v in views:
        if v is None:
            continue
        for site, g in final_gammas(v).items():
            per.setdefault(site, []).append(g)
    return pd.DataFrame([{_("layer"): site, _("channels"): int(np.mean([len(x) for x in gs])),
                          _("switched off (|γ| < {threshold:g})").format(threshold=threshold):
                              f"{gamma_off(gs, threshold):.1%}"}
                         for site, gs in per.items()])
