"""What each activation sees: the distribution at every site's activation input and output,
measured over training.

With the `record_activations` knob on, every evaluation forwards that step's training batch
(train mode, as the step itself saw it; every buffer and random stream put back afterwards)
and records, per site (conv1, conv2, fc1, fc2) and per side of the activation (`act_in`, what
the sigmoid or ReLU is given; `act_out`, what it gives on):
- percentiles p5, p25, p50, p75, p95 of all values (every example, channel and position);
- `chmean`: the mean over channels of each channel's mean (over examples and positions), and
  `chmean_sd`: the spread (standard deviation) of those per-channel means across channels;
- `chvar`: the mean over channels of each channel's variance;
- at `act_out` only, `sat`: the fraction of outputs that are saturated — for the sigmoid within
  0.01 of 0 or 1 (|input| > 4.6, where its slope is below 0.01), for ReLU exactly 0.
These are probe metrics of the registry (bnviz/metrics.py), so they travel in each Evaluation,
the run store, RunView.evals_frame and the CSVs like any metric. With BN before the activation,
`act_in` is BN's output, so its per-channel mean is β and its variance about γ²; after the
activation, it is the conv/linear layer's raw output. This module needs no torch at import.
"""
from __future__ import annotations

from bnviz.metrics import Metric, register

SITES = ("conv1", "conv2", "fc1", "fc2")  # config.SITES (config imports the metrics registry)

SIDES = ("act_in", "act_out")
PERCENTILES = (5, 25, 50, 75, 95)
STATS = tuple(f"p{q}" for q in PERCENTILES) + ("chmean", "chmean_sd", "chvar")
SIDE_LABEL = {"act_in": "activation input", "act_out": "activation output"}
STAT_LABEL = {"chmean": "mean of channel means", "chmean_sd": "sd of channel means",
              "chvar": "mean channel variance", "sat": "fraction saturated",
              **{f"p{q}": f"{q}th percentile" for q in PERCENTILES}}
SATURATED = 0.01  # sigmoid output within this of 0 or 1


def metric_id(site: str, side: str, stat: str) -> str:
    return f"act_{site}_{side}_{stat}"


def stats_of(side: str) -> tuple[str, ...]:
    return STATS + (("sat",) if side == "act_out" else ())


def _applies(cfg) -> bool:
    return bool(getattr(cfg, "record_activations", False))


def distribution(x, activation: str | None = None) -> dict[str, float]:
    """The statistics above of one tensor, (N, C, H, W) or (N, D); `activation` given for an
    activation's output (saturation)."""
    import torch
    x = x.detach().float()
    flat = x.flatten()
    qs = torch.quantile(flat, torch.tensor([q / 100 for q in PERCENTILES]))
    per_ch = x.transpose(0, 1).reshape(x.shape[1], -1)  # channel × (examples·positions)
    ch_mean = per_ch.mean(1)
    ch_var = per_ch.var(1, unbiased=False)
    out = {f"p{q}": float(v) for q, v in zip(PERCENTILES, qs)}
    out.update(chmean=float(ch_mean.mean()),
               chmean_sd=float(ch_mean.std(unbiased=False)) if len(ch_mean) > 1 else 0.0,
               chvar=float(ch_var.mean()))
    if activation == "sigmoid":
        out["sat"] = float(((flat < SATURATED) | (flat > 1 - SATURATED)).float().mean())
    elif activation == "relu":
        out["sat"] = float((flat == 0).float().mean())
    return out


def measure(net, batch, activation: str) -> dict[str, dict[str, dict[str, float]]]:
    """{site: {"act_in": stats, "act_out": stats}} for one forward of `batch` through `net`
    as it is (its mode is the caller's: the trainer's probe runs in train mode)."""
    import torch
    seen: dict[str, dict] = {}
    hooks = []
    for name, m in net.named_children():
        if name.endswith("_act"):
            site = name[: -len("_act")]

            def hook(_m, inputs, output, site=site):
                seen[site] = {"act_in": distribution(inputs[0]),
                              "act_out": distribution(output, activation)}
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(batch[0])
    finally:
        for h in hooks:
            h.remove()
    return seen


def _probe(site: str, side: str, stat: str):
    def probe(ctx) -> float:
        # One forward measures every site; the other metrics of this evaluation reuse it.
        cache = getattr(ctx.net, "_bnviz_act_cache", None)
        if cache is None or cache[0] != ctx.iteration:
            cache = (ctx.iteration, measure(ctx.net, ctx.batch, ctx.cfg.activation))
            ctx.net._bnviz_act_cache = cache
        return cache[1].get(site, {}).get(side, {}).get(stat, float("nan"))
    return probe


METRIC_IDS: tuple[str, ...] = ()
for _site in SITES:
    for _side in SIDES:
        for _stat in stats_of(_side):
            _m = register(Metric(metric_id(_site, _side, _stat),
                                 f"{_site} {SIDE_LABEL[_side]}: {STAT_LABEL[_stat]}", "probe",
                                 higher_is_better=None, grid=False,
                                 probe=_probe(_site, _side, _stat), applies=_applies,
                                 # one forward of the training batch, on the first metric only
                                 work=(lambda c: 0.4 * c.batch_size) if not METRIC_IDS
                                 else None,
                                 help="the distribution at this activation, on the step's "
                                      "training batch (bnviz/activations.py)"))
            METRIC_IDS += (_m.id,)
