"""The registry of norm kinds: one entry per normalisation layer bnviz can put after a site.

Like timm's `_NORM_MAP` (timm/layers/create_norm.py): everything that names a norm kind reads
it here — the `norm` knob's choices and help (so the CLI flags, the widgets, share links and
the run store), `norms.make_norm`, which sites carry a norm and which biases it cancels
(model.py, cost.py), the evaluation and cost code, the pages' option lists and labels.
Adding a kind is one module with its factory plus one `register(NormKind(...))`.

This module imports neither torch nor the rest of bnviz at import time (config.py and light
pages import it); a factory is a "module:function" string imported when a layer is built.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Union

from bnviz.i18n import N_, _, is_zh

SITE_TYPES = ("conv", "fc")  # (N, C, H, W) after conv1/conv2, (N, D) after fc1/fc2
# Whether a kind's mean subtraction cancels the bias before it: a constant, or a rule of the
# config and the site (GroupNorm: only with one channel per group).
BiasRule = Union[bool, Callable[[Any, str], bool]]


@dataclass(frozen=True)
class NormKind:
    id: str  # the `norm` knob's value: CLI, links, the run store (never rename one)
    # label, help and option are English (marked with N_); label(), option() and
    # knob_help(translated=True) give them in the reader's language.
    label: str  # short display name: grid labels, filters, tables ("BN", "LayerNorm")
    help: str  # one clause of the `norm` knob's help ("nn.BatchNorm")
    # "module:function" (or a callable) building the layer:
    # factory(num_features, num_dims, *, momentum, eps, groups) -> nn.Module. None: no layer.
    factory: str | Callable | None
    option: str = ""  # what the lab's selectbox shows; the label when empty
    sites: tuple[str, ...] = SITE_TYPES  # the site types its own module handles
    fallback: str | None = None  # the kind built at the other site types
    batch_dependent: bool = False  # statistics over the batch: per-device slicing applies
    running_stats: bool = False  # keeps running statistics that eval mode normalises with
    stats: tuple[str, str] = ("running_mean", "running_var")  # their attribute names
    scale: str | None = "weight"  # gamma's attribute (None: no learned scale)
    shift: str | None = "bias"  # beta's attribute
    cancels_bias: BiasRule = False  # at a site where it directly follows the conv/linear
    cost: float = 1.0  # time per example relative to nn.BatchNorm's LeNet (bnviz/cost.py)
    # BatchNorm's own computation, (x - batch mean) / batch std in training: what the pages'
    # BN formulas (inside.two_example_outputs) assume. Not the lite kinds, not Batch Renorm.
    full_bn: bool = False
    knobs: tuple[str, ...] = ()  # config knobs its factory takes as keyword arguments
    # How each eval mode treats it, in words; derived from the flags above when left empty.
    eval_modes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.option:
            object.__setattr__(self, "option", self.label)
        if not self.eval_modes:
            object.__setattr__(self, "eval_modes", _eval_modes(self))

    def cancels_bias_at(self, cfg, site: str) -> bool:
        rule = self.cancels_bias
        return bool(rule(cfg, site) if callable(rule) else rule)

    def build(self, num_features: int, num_dims: int, **kw):
        if self.factory is None:
            raise ValueError(f"norm kind {self.id!r} has no layer to build")
        f = self.factory
        if isinstance(f, str):
            module, _, name = f.partition(":")
            f = getattr(importlib.import_module(module), name)
        return f(num_features, num_dims, **kw)


def _eval_modes(k: NormKind) -> dict[str, str]:
    """What bnviz.evaluation does with a layer of this kind in each eval mode."""
    if k.factory is None:
        return dict.fromkeys(("running", "precise", "batch"), "no norm layer")
    if not k.batch_dependent:
        same = "each example's own statistics: the three modes are the same computation"
        return dict.fromkeys(("running", "precise", "batch"), same)
    batch = "the statistics of each test batch (the layer in train mode, buffers kept)"
    if not k.running_stats:
        own = "whatever the layer does in eval mode (it keeps no statistics to recompute)"
        return {"running": own, "precise": own, "batch": batch}
    return {"running": "its running statistics (exponential moving averages from training)",
            "precise": "population statistics recomputed over precise_samples training "
                       "images for the current weights (PreciseBN)",
            "batch": batch}


_KINDS: dict[str, NormKind] = {}


def register(kind: NormKind) -> NormKind:
    """Add a kind (ValueError if its id is taken or its sites are not all covered)."""
    if kind.id in _KINDS:
        raise ValueError(f"norm kind {kind.id!r} is already registered")
    missing = [s for s in SITE_TYPES if s not in kind.sites]
    if missing and kind.factory is not None and kind.fallback not in _KINDS:
        raise ValueError(f"norm kind {kind.id!r} does not handle {', '.join(missing)} sites: "
                         "name a registered fallback kind for them")
    _KINDS[kind.id] = kind
    return kind


def unregister(kind_id: str) -> None:
    del _KINDS[kind_id]


def get(kind_id: str) -> NormKind:
    try:
        return _KINDS[kind_id]
    except (KeyError, TypeError):
        raise ValueError(f"unknown norm kind {kind_id!r}; choose from "
                         f"{', '.join(_KINDS)}") from None


def find(kind_id) -> NormKind | None:
    """The entry, or None (an id no longer registered, a layer built outside make_norm)."""
    try:
        return _KINDS.get(kind_id)
    except TypeError:
        return None


def kinds() -> tuple[NormKind, ...]:
    return tuple(_KINDS.values())


class _Ids(Sequence):
    """The registered ids, read live: the `norm` knob's choices, so `Knob.check`, the CLI's
    --help and the widgets see a kind registered after config.py was imported."""

    def __getitem__(self, i):
        return tuple(_KINDS)[i]

    def __len__(self) -> int:
        return len(_KINDS)

    def __contains__(self, value) -> bool:
        try:
            return value in _KINDS
        except TypeError:  # an unhashable value is no kind
            return False

    def __repr__(self) -> str:
        return repr(tuple(_KINDS))


class _Labels(Mapping):
    """id → label, read live, in the reader's language."""

    def __getitem__(self, kind_id: str) -> str:
        return _(_KINDS[kind_id].label)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_KINDS))

    def __len__(self) -> int:
        return len(_KINDS)


IDS: Sequence[str] = _Ids()
LABELS: Mapping[str, str] = _Labels()


def label(kind_id: str) -> str:
    """The display name in the reader's language, or the id itself for a kind no longer
    registered (old stored runs)."""
    k = _KINDS.get(kind_id)
    return _(k.label) if k else str(kind_id)


def option(kind_id: str) -> str:
    """What the lab's selectbox shows, in the reader's language."""
    k = _KINDS.get(kind_id)
    return _(k.option) if k else str(kind_id)


def knob_values(cfg) -> dict:
    """The values of the config knobs `cfg.norm`'s factory takes (its entry's `knobs`)."""
    return {n: getattr(cfg, n) for n in get(cfg.norm).knobs}


def knob_help(translated: bool = False) -> str:
    """The `norm` knob's help: English (config.py stores it at import: the CLI's --help), or
    with `translated` in the reader's language (the dashboard's widget, Knob.help_text)."""
    if not translated:
        return "normalisation layer: " + ", ".join(k.help for k in _KINDS.values())
    sep = "；" if is_zh() else ", "
    return _("normalisation layer: {kinds}").format(
        kinds=sep.join(_(k.help) for k in _KINDS.values()))


def batchnorms() -> tuple[str, ...]:
    """BatchNorm in its forms: batch statistics in training, running statistics at test."""
    return tuple(k.id for k in _KINDS.values() if k.full_bn)


def batch_dependent() -> tuple[str, ...]:
    return tuple(k.id for k in _KINDS.values() if k.batch_dependent)


# -- which sites carry which layer (the one place that decides it) ----------------------------

def site_type(site: str) -> str:
    return "fc" if site.startswith("fc") else "conv"


def kind_at(cfg, site: str) -> NormKind | None:
    """The kind whose layer follows `site` (a fallback applied), or None when no norm does:
    norm "none", the site switched off, or an FC site whose norm gave way to dropout."""
    k = get(cfg.norm)
    if k.factory is None or not getattr(cfg, f"norm_{site}"):
        return None
    if site_type(site) == "fc" and cfg.dropout_fc:
        return None
    return k if site_type(site) in k.sites else get(k.fallback)


def norm_sites(cfg) -> tuple[str, ...]:
    from bnviz.config import SITES
    return tuple(s for s in SITES if kind_at(cfg, s) is not None)


def cancels_bias(cfg, site: str) -> bool:
    """Whether the norm at `site` cancels the bias of the conv/linear layer before it exactly:
    it must follow the layer directly, before the activation, and subtract a mean per channel
    (so a per-channel constant drops out) — the kind's own rule says whether it does."""
    k = kind_at(cfg, site)
    return k is not None and cfg.norm_position == "before_act" and k.cancels_bias_at(cfg, site)


def _one_channel_per_group(cfg, site: str) -> bool:
    from bnviz.config import SITE_WIDTH
    return cfg.groups == SITE_WIDTH[site]  # never with the knob's 1 or 2 groups


# -- the kinds bnviz ships --------------------------------------------------------------------
# (BN and its variants first, then the per-example norms: the order of every option list.)

_BN = dict(batch_dependent=True, running_stats=True, cancels_bias=True, full_bn=True)
_BATCH = dict(batch_dependent=True, running_stats=True)  # BN's variants below
# Time per training example against nn.BatchNorm's, measured on a 2-core x86 CPU with one torch
# thread, each kind interleaved with nn.BatchNorm in one process (about 11,500 examples/s for
# nn.BatchNorm, 7,300 mean-only, 5,000 Batch Renorm): the module-by-module kinds pay for their
# Python ops. The variance-only kind does the same work as the mean-only one.
LITE_COST = 1.6
RENORM_COST = 2.3
for _k in (
    NormKind("none", N_("no norm"), N_("none"), None, option=N_("none")),
    NormKind("bn", "BN", "nn.BatchNorm", "bnviz.norms:torch_batchnorm",
             option="BatchNorm (nn.BatchNorm)", **_BN),
    NormKind("bn_scratch", N_("BN from scratch"), N_("BatchNorm from scratch (d2l's maths, "
             "statistics kept as buffers updated in place)"), "bnviz.norms:scratch_batchnorm",
             option=N_("BatchNorm from scratch (d2l's maths, buffers)"), **_BN),
    NormKind("bn_d2l", N_("BN (book)"), N_("d2l's BatchNorm module as the book writes it "
             "(moving statistics as plain attributes: lost under DataParallel)"),
             "bnviz.norms:book_batchnorm",
             option=N_("BatchNorm as the book writes it (moving stats as attributes)"),
             stats=("moving_mean", "moving_var"), scale="gamma", shift="beta", **_BN),
    # d2l's exercise 4: a "lite" BN that removes only the mean, or only the variance. The mean
    # subtraction cancels the bias before it; dividing by the std does not (the output moves
    # by b / std).
    NormKind("bn_mean", N_("BN mean only"), N_("BN that only subtracts the per-channel batch "
             "mean (no division; own gamma, beta, running statistics)"),
             "bnviz.norms:mean_only_batchnorm", option=N_("Lite BN: mean only (no division)"),
             cancels_bias=True, cost=LITE_COST, **_BATCH),
    NormKind("bn_var", N_("BN variance only"), N_("BN that only divides by the per-channel "
             "batch std (no mean subtraction; own gamma, beta, running statistics)"),
             "bnviz.norms:variance_only_batchnorm",
             option=N_("Lite BN: variance only (no mean subtraction)"), cost=LITE_COST,
             **_BATCH),
    # Ioffe 2017. Its bias gets no gradient (r, d are constants and x - mu_B drops it), but
    # d = (mu_B - mu)/sigma and the moving mean still see it until the moving mean has caught
    # up: not an exact cancellation, so `bias` off keeps it.
    NormKind("renorm", "Batch Renorm", N_("Batch Renormalization (Ioffe 2017: BN corrected by "
             "r and d, clipped to renorm_rmax and renorm_dmax after renorm_warmup steps)"),
             "bnviz.norms:batch_renorm",
             option=N_("Batch Renormalization (Ioffe 2017)"),
             knobs=("renorm_rmax", "renorm_dmax", "renorm_warmup"), cost=RENORM_COST, **_BATCH),
    # Santurkar et al. 2018, fig. 2: BN, then noise whose mean and variance per activation
    # are redrawn every step (bnviz/noisy_bn.py); no noise in eval mode.
    NormKind("noisy_bn", N_("noisy BN"), N_("noisy BN (Santurkar et al. 2018: BN followed by "
             "noise of mean ~ U(-noise_mean, noise_mean) and std ~ U(0, noise_std) per "
             "activation, redrawn every step)"), "bnviz.noisy_bn:noisy_batchnorm",
             option=N_("Noisy BN (BN + shifting noise, Santurkar et al. 2018)"),
             knobs=("noise_mean", "noise_std", "seed"), cost=1.3, cancels_bias=True,
             eval_modes={"running": "BN's running statistics, no noise",
                         "precise": "PreciseBN statistics, no noise",
                         "batch": "the statistics of each test batch, noise added (train "
                                  "mode)"}, **_BATCH),
    NormKind("layer", "LayerNorm", "LayerNorm", "bnviz.norms:layer_norm"),
    NormKind("group", "GroupNorm", "GroupNorm", "bnviz.norms:group_norm",
             cancels_bias=_one_channel_per_group),
    # Per-sample, per-channel statistics over H×W; a fully-connected feature has one value
    # per sample, so FC sites get LayerNorm.
    NormKind("instance", "InstanceNorm", N_("InstanceNorm (conv sites; FC sites use "
             "LayerNorm)"),
             "bnviz.norms:instance_norm", sites=("conv",), fallback="layer",
             cancels_bias=True),
):
    register(_k)
del _k
