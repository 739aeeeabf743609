"""Experiment grids (ablation, sweeps) as lists of labelled configs, and their result tables."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

from bnviz import norm_kinds
from bnviz.config import KNOB, PRESETS, SITES, Config, differing_knobs
from bnviz.i18n import N_, _
from bnviz.metrics import EVAL_MODES, grid_metrics, metric
from bnviz.stats import fluctuation

DEFAULT_SEEDS = 5  # per configuration, on pages, in the CLI and in the results library


@dataclass(frozen=True)
class GridPoint:
    """One configuration of a grid. `arm` is its id (stable: readings, findings and tests
    look arms up by it); `label` is what people read and may change freely: the grids below
    write it in the reader's language when they are built (`_()`: English in the CLI, the
    library build and the README; the visitor's language on a page), so tables, legends and
    readings that show it need no second translation."""
    label: str
    config: Config
    arm: str = ""


def seed_list(base: Config, seeds: int) -> list[int]:
    """The paired seeds of a grid: every configuration runs with the same ones, so arm A's
    seed s and arm B's seed s start from the same weights wherever their layers agree."""
    return [base.seed + i for i in range(max(1, int(seeds)))]


def with_seeds(points: list[GridPoint], seeds: int) -> list[GridPoint]:
    """Each configuration once per seed (seed = its config's seed, +1, +2, ...); labels stay the
    configuration's, so results group by label."""
    return [GridPoint(p.label, p.config.replace(seed=s), p.arm)
            for p in points for s in seed_list(p.config, seeds)]


def varying_knobs(points: list[GridPoint]) -> list[str]:
    """The knobs whose value differs between points (seed included when several are run)."""
    return differing_knobs(p.config for p in points)


def ablation_grid(base: Config) -> list[GridPoint]:
    """d2l's 'is BN needed in every layer?' exercise, on one seed and one data set."""
    bn = base.replace(norm=base.norm if base.norm != "none" else "bn", dropout_fc=False,
                      **{f"norm_{s}": True for s in SITES})

    def only(*keep: str) -> Config:
        return bn.replace(**{f"norm_{s}": s in keep for s in SITES})
    points = [GridPoint(_("all four BN layers"), bn, "all"),
              GridPoint(_("no BN"), bn.replace(norm="none"), "none")]
    for s in SITES:
        points.append(GridPoint(_("without {site} BN").format(site=s),
                                only(*(x for x in SITES if x != s)), f"without_{s}"))
    points += [GridPoint(_("only conv1 + fc1 BN"), only("conv1", "fc1"), "only_conv1_fc1"),
               GridPoint(_("only conv2 + fc2 BN"), only("conv2", "fc2"), "only_conv2_fc2"),
               GridPoint(_("only the conv BNs"), only("conv1", "conv2"), "only_conv"),
               GridPoint(_("FC BNs → dropout 0.5"), bn.replace(dropout_fc=True, dropout_p=0.5),
                         "dropout_fc")]
    return points


def batch_size_grid(base: Config, sizes: Iterable[int] = (2, 4, 8, 16, 32, 64, 128, 256),
                    norms: Iterable[str] = ("bn", "group", "layer", "none"),
                    scale_lr: bool = True) -> list[GridPoint]:
    """Test accuracy vs the SGD batch size (examples per step) at a fixed number of examples
    seen (epochs × train-set size): small batches take more, noisier steps. BN's normalisation
    batch is the SGD batch here, so it changes too (norm_batch_grid separates the two). With
    scale_lr the lr follows the batch size linearly from the base's lr at 256. Every norm uses
    the same lr; GroupNorm has base.groups groups."""
    points = []
    for norm in norms:
        for bs in sizes:
            lr = base.lr * bs / 256 if scale_lr else base.lr
            cfg = base.replace(norm=norm, batch_size=bs, devices=1,
                               lr=max(min(lr, 100.0), 1e-4))
            points.append(GridPoint(_("{norm}, batch {batch_size}").format(norm=norm,
                                                                             batch_size=bs),
                                    cfg, sgd_batch_arm(norm, bs)))
    return points


NORM_BATCH_SGD = 256  # the SGD batch of norm_batch_grid: d2l's, and Wu & He's per-step batch
NORM_NAMES = norm_kinds.LABELS  # id → display name (reader's language), read live from the
# norm-kind registry


def per_bn_choices(sgd_batch: int = NORM_BATCH_SGD) -> tuple[int, ...]:
    """Normalisation batches m that norm_batch_grid can simulate at this SGD batch: m divides
    it, is a power of two from 2 up (BatchNorm1d needs 2), and sgd_batch / m devices is within
    the `devices` knob's range."""
    hi = int(KNOB["devices"].hi)
    return tuple(m for m in range(2, sgd_batch + 1)
                 if sgd_batch % m == 0 and m & (m - 1) == 0 and sgd_batch // m <= hi)


def norm_batch_arm(norm: str, per_bn: int | None) -> str:
    """The arm id of one point of norm_batch_grid: 'bn@m4', or 'group@ref' for a reference."""
    return f"{norm}@ref" if per_bn is None else f"{norm}@m{per_bn}"


def sgd_batch_arm(norm: str, batch_size: int) -> str:
    return f"{norm}@b{batch_size}"


def norm_batch_label(norm: str, per_bn: int | None, groups: int = 2) -> str:
    name = NORM_NAMES.get(norm, norm)
    if norm == "group":
        name = (_("GroupNorm ({groups} groups)") if groups != 1 else
                _("GroupNorm ({groups} group)")).format(groups=groups)
    elif norm == "layer":
        name = _("LayerNorm (1 group)")
    return _("{name}, reference").format(name=name) if per_bn is None else \
        _("{name}, {per_bn} per BN").format(name=name, per_bn=per_bn)


def norm_batch_grid(base: Config, per_bn: Iterable[int] | None = None,
                    norms: Iterable[str] = ("bn",), refs: Iterable[str] = ("group", "layer"),
                    sgd_batch: int = NORM_BATCH_SGD) -> list[GridPoint]:
    """Wu & He's question on LeNet: what the NORMALISATION batch (examples per BN, per GPU)
    does at a fixed SGD batch. Every point steps with `sgd_batch` examples at the base's lr;
    the batch-dependent norms (`norms`) take their statistics over m examples, simulated as
    sgd_batch / m devices (ghost BN), for each m in `per_bn`. The `refs` (GroupNorm with the
    base's groups, LayerNorm) do not look across the batch at all, so each is trained once,
    at devices = 1, as a reference. per_bn defaults to every m that can be simulated
    (per_bn_choices); an m that cannot raises ValueError."""
    allowed = per_bn_choices(sgd_batch)
    per_bn = list(dict.fromkeys(allowed if per_bn is None else per_bn))
    bad = [m for m in per_bn if m not in allowed]
    if bad:
        raise ValueError(f"examples per BN must be one of {', '.join(map(str, allowed))} at "
                         f"SGD batch {sgd_batch}, got {', '.join(map(str, bad))}")
    fixed = base.replace(batch_size=sgd_batch, devices=1)
    points = [GridPoint(norm_batch_label(n, m), fixed.replace(norm=n, devices=sgd_batch // m),
                        norm_batch_arm(n, m)) for n in norms for m in per_bn]
    points += [GridPoint(norm_batch_label(r, None, fixed.groups), fixed.replace(norm=r),
                         norm_batch_arm(r, None)) for r in refs]
    return points


def lr_grid(base: Config, lrs: Iterable[float] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
            norms: Iterable[str] = ("bn", "none")) -> list[GridPoint]:
    return [GridPoint(_("{norm}, lr {lr:g}").format(norm=n, lr=lr), base.replace(norm=n, lr=lr),
                      f"{n}@lr{lr:g}") for n in norms for lr in lrs]


def devices_grid(base: Config, ks: Iterable[int] = (1, 2, 4, 8)) -> list[GridPoint]:
    return [GridPoint(_("{k} device(s), {per_device} per device").format(
                          k=k, per_device=base.batch_size // k),
                      base.replace(devices=k), f"devices{k}")
            for k in ks if base.batch_size % k == 0]


def bias_grid(base: Config) -> list[GridPoint]:
    """The same LeNet-BN with and without the biases that BN cancels (seeds: with_seeds)."""
    return [GridPoint(_("bias on") if b else _("bias off"), base.replace(bias=b),
                      f"bias_{'on' if b else 'off'}") for b in (True, False)]


def fluctuation_grid(base: Config) -> list[GridPoint]:
    """One run evaluated with running, PreciseBN and batch statistics at every evaluation."""
    return [GridPoint(_("LeNet-BN, evaluated three ways"), base.replace(compare_eval=True),
                      "three_ways")]




def result_row(label: str, view, arm: str = "") -> dict:
    """One row of a grid's table from a RunView (or None when not run yet): every grid metric
    of the registry (bnviz.metrics), and with compare_eval each eval mode's swing and final
    accuracy."""
    if view is None:
        return dict(run=label, arm=arm, status="not run",
                    **{m: math.nan for m in grid_metrics()}, run_id="")
    row = dict(run=label, arm=arm, status=view.status,
               **{m: metric(m).value(view) for m in grid_metrics()}, run_id=view.run_id)
    if view.config.compare_eval:  # the same evaluations three ways: each one's swing
        for how in EVAL_MODES:
            accs = [(e.get("by_mode") or {}).get(how, math.nan) for e in view.evals]
            row[f"fluct_{how}"] = fluctuation(accs)
            row[f"final_acc_{how}"] = accs[-1] if accs else math.nan
    if getattr(view.config, "track_weights", False):  # final ‖w‖ per layer, gamma near 0
        from bnviz.weights import final_columns
        row.update(final_columns(view))
    return row


def dataparallel_grid(base: Config) -> list[GridPoint]:
    """Question 6's real cause: d2l's hand-written BN keeps its moving statistics as plain
    attributes, so under DataParallel (simulated: devices > 1) every update lands on a
    replica and is lost; eval-mode accuracy collapses while training looks fine. Buffers
    updated in place (bn_scratch, nn.BatchNorm) survive. Batch size, lr, epochs and seed are
    the base's."""
    arms = [("book_1", _("book BN, 1 device"), "bn_d2l", 1),
            ("book_2", _("book BN, 2 devices (DataParallel)"), "bn_d2l", 2),
            ("scratch_2", _("fixed: buffers updated in place, 2 devices"), "bn_scratch", 2),
            ("bn_8", _("nn.BatchNorm, 8 devices ({per_device} per device)").format(
                per_device=base.batch_size // 8), "bn", 8),
            ("bn_1", _("nn.BatchNorm, 1 device"), "bn", 1)]
    return [GridPoint(label, base.replace(norm=norm, devices=k), arm)
            for arm, label, norm, k in arms]


def presets_grid(base: Config) -> list[GridPoint]:
    """d2l's runs of the chapter, both editions (the presets), with the base's data, epochs, seed."""
    touched = {k for values in PRESETS.values() for k in values}
    neutral = base.replace(**{k: getattr(Config(), k) for k in touched})
    return [GridPoint(name, neutral.replace(**values), name) for name, values in PRESETS.items()]


GRIDS: dict[str, Callable[[Config], list[GridPoint]]] = {
    "ablation": ablation_grid, "batch_size": batch_size_grid, "norm_batch": norm_batch_grid,
    "lr": lr_grid, "devices": devices_grid, "dataparallel": dataparallel_grid,
    "bias": bias_grid, "fluctuation": fluctuation_grid, "presets": presets_grid,
}


# The loss landscape (Santurkar et al. 2018, bnviz.landscape): ReLU LeNet without BN dies at
# lr 0.3 and above (every unit dead, chance accuracy), so its arms train at this lr.
LANDSCAPE_RELU_LR = 0.1


def landscape_grid(base: Config, relu_lr: float = LANDSCAPE_RELU_LR) -> list[GridPoint]:
    """BN against no norm, with the book's sigmoid (at the base's lr) and with ReLU (at
    `relu_lr`), every run probing the loss landscape along its gradient at every evaluation
    (the `landscape` knob; `eval_every` sets how often). Each pair shares its lr, as in the
    paper: the probe's step sizes are lr × 0.25…4."""
    probe = base.replace(landscape=True, dropout_fc=False)
    bn = base.norm if base.norm != "none" else "bn"
    points = []
    for act, lr in (("sigmoid", base.lr), ("relu", relu_lr)):
        for norm in (bn, "none"):
            name = "BN" if norm == "bn" else NORM_NAMES.get(norm, norm)
            points.append(GridPoint(_("{name}, {activation}, lr {lr:g}").format(
                name=name if norm != "none" else _("no BN"), activation=act, lr=lr),
                probe.replace(norm=norm, activation=act, lr=lr),
                f"{'none' if norm == 'none' else 'bn'}_{act}"))
    return points


GRIDS["landscape"] = landscape_grid


# Scale invariance and weight decay (van Laarhoven 2017; Li & Arora 2019; bnviz/optim.py).
WEIGHT_DECAY = 5e-4  # the weight-decay page's default: lr × wd = 5e-4 per step at lr 1.0


def weight_decay_grid(base: Config) -> list[GridPoint]:
    """LeNet with BN (the base's kind, BN if it has none) and without, each with no weight
    decay and with the base's (WEIGHT_DECAY when it is 0), every run recording its layers'
    weight norms (`track_weights`). Everything else, lr included, is the base's."""
    wd = base.weight_decay or WEIGHT_DECAY
    on = base.replace(track_weights=True, train_only="all", dropout_fc=False)
    bn = on.replace(norm=base.norm if base.norm != "none" else "bn")
    none = on.replace(norm="none")
    return [GridPoint(_("BN, no weight decay"), bn.replace(weight_decay=0.0), "bn_wd0"),
            GridPoint(_("BN, weight decay {wd:g}").format(wd=wd), bn.replace(weight_decay=wd),
                      "bn_wd"),
            GridPoint(_("no BN, no weight decay"), none.replace(weight_decay=0.0), "none_wd0"),
            GridPoint(_("no BN, weight decay {wd:g}").format(wd=wd),
                      none.replace(weight_decay=wd), "none_wd")]


def train_only_grid(base: Config) -> list[GridPoint]:
    """Frankle, Schwab & Morcos 2021 on LeNet: train everything, only the norms' gamma and beta
    (all else frozen at its initialisation), or as many randomly chosen weights outside the
    norms. The base's norm kind if it has gamma and beta, else BN; gamma/beta not frozen."""
    kind = norm_kinds.get(base.norm)
    norm = base.norm if kind.factory is not None and kind.scale else "bn"
    on = base.replace(norm=norm, freeze_affine=False, track_weights=True, dropout_fc=False)
    return [GridPoint(_("train everything"), on.replace(train_only="all"), "all"),
            GridPoint(_("train only gamma and beta"), on.replace(train_only="bn"), "bn_only"),
            GridPoint(_("train as many random weights"), on.replace(train_only="random"),
                      "random")]


GRIDS["weight_decay"] = weight_decay_grid
GRIDS["train_only"] = train_only_grid


# Internal covariate shift (Santurkar et al. 2018, §2.2 and fig. 2; bnviz/ics.py, noisy_bn.py).
ICS_EVERY = 47  # the page's and the library's eval_every: 5 measurements per full-data epoch
# The page's and the library's activation and lr: ReLU, as the paper's networks, at an lr where
# LeNet trains without BN too (ReLU without BN dies from lr 0.3 up, see LANDSCAPE_RELU_LR).
ICS_ACTIVATION, ICS_LR = "relu", 0.1


def ics_grid(base: Config) -> list[GridPoint]:
    """BN, noisy BN (the base's noise_mean and noise_std) and no norm, with the base's lr and
    activation, every run measuring internal covariate shift at every evaluation (the
    `ics_probe` knob: ICS per layer and one unit's input distribution per layer)."""
    on = base.replace(ics_probe=True, dropout_fc=False)
    return [GridPoint("BN", on.replace(norm="bn"), "bn"),
            GridPoint(_("noisy BN (noise mean within ±{noise_mean:g}, std up to "
                        "{noise_std:g})").format(noise_mean=base.noise_mean,
                                                 noise_std=base.noise_std),
                      on.replace(norm="noisy_bn"), "noisy_bn"),
            GridPoint(_("no BN"), on.replace(norm="none"), "none")]


GRIDS["ics"] = ics_grid


# Fine-tuning on a shifted part of the data, BN updating or frozen (bnviz/finetune.py).
FINETUNE_LABELS = {  # English; finetune_grid's labels are their _()
    "update": N_("BN updating (train mode)"),
    "frozen_stats": N_("BN frozen: eval mode, gamma/beta learn"),
    "frozen_all": N_("BN frozen: eval mode, gamma/beta fixed"),
}


def finetune_grid(base: Config) -> list[GridPoint]:
    """Pretrain `epochs` on part A, then fine-tune on part B (the base's finetune_shift and
    finetune_lr; finetune_epochs, or 1 when the base has none) once per BN treatment: BN
    updating, BN in eval mode (running statistics frozen), and eval mode with gamma and beta
    frozen too. The pretraining is the same run in all three (paired seeds)."""
    on = base.replace(finetune_epochs=base.finetune_epochs or 1)
    return [GridPoint(_(label), on.replace(finetune_bn=arm), arm)
            for arm, label in FINETUNE_LABELS.items()]


GRIDS["finetune"] = finetune_grid


# Lite BN, d2l's exercise 4 (English edition): only the mean, or only the variance.
def lite_grid(base: Config) -> list[GridPoint]:
    """Full BN, mean-only BN, variance-only BN and no norm at the base's sites, every run
    recording the distribution at each activation (`record_activations`), on paired seeds."""
    on = base.replace(record_activations=True, dropout_fc=False)
    return [GridPoint(_("full BN"), on.replace(norm="bn"), "bn"),
            GridPoint(_("mean only"), on.replace(norm="bn_mean"), "bn_mean"),
            GridPoint(_("variance only"), on.replace(norm="bn_var"), "bn_var"),
            GridPoint(_("no norm"), on.replace(norm="none"), "none")]


# BN before or after the activation, with the book's sigmoid and with ReLU.
def placement_grid(base: Config, relu_lr: float | None = None) -> list[GridPoint]:
    """BN (the base's kind, BN if it has none) before and after the activation, with sigmoid
    and with ReLU, every run recording the distribution at each activation. Every arm trains
    at the base's lr unless `relu_lr` gives the ReLU arms their own."""
    on = base.replace(record_activations=True, dropout_fc=False,
                      norm=base.norm if base.norm != "none" else "bn")
    points = []
    for act in ("sigmoid", "relu"):
        lr = relu_lr if act == "relu" and relu_lr else base.lr
        for pos, name in (("before_act", "before"), ("after_act", "after")):
            label = (_("BN before the {activation}") if name == "before" else
                     _("BN after the {activation}")).format(activation=act)
            points.append(GridPoint(label, on.replace(activation=act, norm_position=pos, lr=lr),
                                    f"{name}_{act}"))
    return points


GRIDS["lite"] = lite_grid
GRIDS["placement"] = placement_grid
