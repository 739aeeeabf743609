"""The one registry of experiment knobs.

Every knob is a field of `Config` with its help, range or choices in the field's metadata.
The CLI flags, the dashboard widgets, the share-link URL parameters and the run store all
derive from `KNOBS`, so a knob added here appears everywhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from bnviz import norm_kinds
from bnviz.i18n import N_, _
from bnviz.metrics import EVAL_MODES

# The norm kinds, read live from their registry (bnviz/norm_kinds.py): a kind registered there
# is at once a choice of the `norm` knob, so of every flag, widget, link and stored run.
NORM_KINDS = norm_kinds.IDS
SITES = ("conv1", "conv2", "fc1", "fc2")
SITE_WIDTH = {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}  # channels / features per site


def knob(default, help, *, choices=None, lo=None, hi=None, log=False, group="training",
         label=None):
    return field(default=default, metadata=dict(help=help, choices=choices, lo=lo, hi=hi,
                                                log=log, group=group, label=label))


@dataclass(frozen=True)
class Config:
    # data
    dataset: str = knob("auto", N_("Fashion-MNIST source: full (60k/10k), the bundled subset, or "
                        "auto (full when installed, else the subset)"),
                        choices=("auto", "full", "subset"), group="data")
    train_size: int = knob(0, N_("use only the first N shuffled training images (0 = all)"),
                           lo=0, hi=60000, group="data")
    # optimisation
    batch_size: int = knob(256, N_("minibatch size: the examples per SGD step, and the N that BN "
                           "averages over"), lo=1, hi=4096, log=True)
    lr: float = knob(1.0, N_("SGD learning rate"), lo=1e-4, hi=100.0, log=True)
    epochs: int = knob(10, N_("passes over the training set"), lo=1, hi=200)
    seed: int = knob(0, N_("random seed (weights and batch order)"), lo=0, hi=2**31 - 1)
    device: str = knob("auto", N_("where to train: auto picks cuda, then mps, then cpu"),
                       choices=("auto", "cpu", "cuda", "mps"))
    # model
    norm: str = knob("bn", norm_kinds.knob_help(), choices=NORM_KINDS, group="model")
    norm_conv1: bool = knob(True, N_("normalise after conv1"), group="model")
    norm_conv2: bool = knob(True, N_("normalise after conv2"), group="model")
    norm_fc1: bool = knob(True, N_("normalise after fc1 (Linear 256→120)"), group="model")
    norm_fc2: bool = knob(True, N_("normalise after fc2 (Linear 120→84)"), group="model")
    norm_position: str = knob("before_act", N_("put the norm before the activation (d2l) or after"),
                              choices=("before_act", "after_act"), group="model")
    dropout_fc: bool = knob(False, N_("replace the FC-layer norms by dropout"), group="model")
    dropout_p: float = knob(0.5, N_("dropout probability when dropout_fc is on"), lo=0.0, hi=0.95,
                            group="model")
    bias: bool = knob(True, N_("keep every bias; off: drop the bias of a conv/linear layer that a "
                      "BatchNorm (or its mean-only lite form, or InstanceNorm at conv sites) "
                      "directly follows before the "
                      "activation: its mean subtraction cancels it; elsewhere the bias stays"),
                      group="model")
    freeze_affine: bool = knob(False, N_("freeze gamma=1 and beta=0 (d2l exercise)"), group="model")
    activation: str = knob("sigmoid", N_("activation function"), choices=("sigmoid", "relu"),
                           group="model")
    conv1_padding: int = knob(0, N_("conv1 padding: 0 in d2l's LeNet-BN, 2 in d2l's LeNet"),
                              choices=(0, 2), group="model")
    momentum: float = knob(0.1, N_("BN running-stat momentum (PyTorch convention: weight of the "
                           "new batch)"), lo=0.0, hi=1.0, group="bn")
    eps: float = knob(1e-5, N_("BN epsilon added to the variance"), lo=1e-8, hi=1.0, log=True,
                      group="bn")
    groups: int = knob(2, N_("groups for GroupNorm (must divide 6, 16, 120 and 84)"),
                       choices=(1, 2), group="bn")
    devices: int = knob(1, N_("simulated devices: BN statistics taken separately on this many "
                        "equal slices of each batch (per-GPU BN, ghost batch norm; the "
                        "book's BN runs each slice on a DataParallel-style replica); must "
                        "divide batch_size"),
                        lo=1, hi=128, group="bn")
    # Batch Renormalization's limits (norm "renorm" only; Ioffe 2017 ends at 3 and 5).
    renorm_rmax: float = knob(3.0, N_("Batch Renorm: r = sigma_B/sigma is clipped to "
                              "[1/r_max, r_max] once the warm-up is over (1 = plain BN)"),
                              lo=1.0, hi=100.0, group="bn")
    renorm_dmax: float = knob(5.0, N_("Batch Renorm: d = (mu_B - mu)/sigma is clipped to "
                              "[-d_max, d_max] once the warm-up is over (0 = plain BN)"),
                              lo=0.0, hi=100.0, group="bn")
    renorm_warmup: int = knob(500, N_("Batch Renorm: training steps over which r_max and d_max "
                              "grow linearly from 1 and 0 (BN) to their values (0 = at once)"),
                              lo=0, hi=1_000_000, group="bn")
    # Noisy BN's noise (norm "noisy_bn" only; bnviz/noisy_bn.py, Santurkar et al. 2018 fig. 2).
    noise_mean: float = knob(0.25, N_("noisy BN: every step, each activation's noise mean is "
                             "drawn from U(-noise_mean, noise_mean)"), lo=0.0, hi=10.0,
                             group="bn")
    noise_std: float = knob(0.5, N_("noisy BN: every step, each activation's noise std is drawn "
                            "from U(0, noise_std)"), lo=0.0, hi=10.0, group="bn")
    # What SGD updates (bnviz/optim.py): weight decay, and which parameters train at all.
    weight_decay: float = knob(0.0, N_("SGD weight decay (L2 penalty wd/2·‖w‖² on every "
                                       "trained parameter; 0 = none, as d2l)"), lo=0.0, hi=1.0)
    train_only: str = knob("all", N_("which parameters SGD trains: all; only the norms' gamma "
                           "and beta (every other weight stays at its initialisation, the "
                           "output layer too); or as many randomly chosen weights outside "
                           "the norms (seeded)"), choices=("all", "bn", "random"))
    track_weights: bool = knob(False, N_("record each conv/linear layer's weight norm ‖w‖ at "
                               "every evaluation (the weight-decay page)"), group="eval")
    record_activations: bool = knob(False, N_("at every evaluation, record the distribution at "
                                    "each activation's input and output (percentiles, "
                                    "per-channel mean and variance, saturation) on the step's "
                                    "training batch; the run itself unchanged"), group="eval")
    # evaluation
    eval_mode: str = knob("running", N_("test accuracy from running statistics (PyTorch default), "
                          "PreciseBN statistics recomputed for the current weights, or batch "
                          "statistics"), choices=EVAL_MODES, group="eval")
    precise_samples: int = knob(4096, N_("training samples PreciseBN averages over"),
                                lo=64, hi=60000, group="eval")
    compare_eval: bool = knob(False, N_("also evaluate every point with all three eval modes"),
                              group="eval")
    eval_every: int = knob(0, N_("evaluate every N iterations (0 = at each epoch end)"),
                           lo=0, hi=100000, group="eval")
    snapshot_every: int = knob(0, N_("gamma/beta snapshot every N iterations (0 = at each "
                               "evaluation)"), lo=0, hi=100000, group="eval")
    # fine-tuning on a shifted part of the data (bnviz/finetune.py); 0 epochs = off
    finetune_epochs: int = knob(0, N_("fine-tuning: after `epochs` on part A of the training "
                                "set, train this many epochs on the shifted part B "
                                "(finetune_shift) with BN as finetune_bn says; 0 = off, "
                                "train on the whole set"), lo=0, hi=200, group="bn")
    finetune_bn: str = knob("update", N_("BN while fine-tuning: update (train mode: batch "
                            "statistics, running statistics follow part B, gamma/beta learn), "
                            "frozen_stats (eval mode: the running statistics of part A "
                            "normalise and stay fixed; gamma/beta learn) or frozen_all (eval "
                            "mode, gamma/beta fixed too)"),
                            choices=("update", "frozen_stats", "frozen_all"), group="bn")
    finetune_shift: str = knob("rotated", N_("the two parts: rotated (half the training images "
                               "upright, then the other half turned 90°) or classes (classes "
                               "0–4, then 5–9)"), choices=("rotated", "classes"), group="bn")
    finetune_lr: float = knob(0.0, N_("SGD learning rate while fine-tuning (0 = the run's lr)"),
                              lo=0.0, hi=100.0, group="bn")
    landscape: bool = knob(False, N_("at every evaluation, probe the loss landscape along the "
                           "current gradient on the step's training batch (Santurkar et al. "
                           "2018): loss band, gradient predictiveness, beta-smoothness at steps "
                           "lr x 0.25..4; 6 extra forward+backward passes per evaluation, the "
                           "run itself unchanged"), group="eval")
    ics_probe: bool = knob(False, N_("at every evaluation, measure internal covariate shift on "
                           "the step's training batch (Santurkar et al. 2018, §2.2): each "
                           "layer's weight gradient before and after the earlier layers take "
                           "their SGD step; 5 extra forward+backward passes per evaluation, "
                           "the run itself unchanged"), group="eval")

    # -- derived -----------------------------------------------------------------------
    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_defaults(self) -> dict[str, Any]:
        return {k.name: getattr(self, k.name) for k in KNOBS
                if getattr(self, k.name) != k.default}

    def config_id(self) -> str:
        """Stable id of what is trained: the knobs set away from their defaults, but never
        the seed or the device.

        Only non-default settings are hashed, so adding a knob with a default leaves every
        existing id unchanged. The id is the first 12 hex digits of the SHA-1 of the compact,
        key-sorted JSON of those settings; the default config hashes "{}", so its id is
        'bf21a9e8fbc5' (tests/test_config.py pins it). Changing this scheme, or a knob's
        default, changes stored runs' ids: the run store then needs a migration that re-keys
        them from their stored configs (bnviz.runs.store.rekey_config_ids).
        """
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name not in ("seed", "device") and getattr(self, f.name) != f.default}
        canon = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canon.encode()).hexdigest()[:12]


def shown(v: Any, width: int = 40) -> str:
    """repr cut short: a link can carry a 5000-digit number that no warning should echo."""
    try:
        r = repr(v)
    except ValueError:  # an int past Python's 4300-digit str limit
        return _("a number too long to show")
    return r if len(r) <= width else r[:width - 3] + "..."


@dataclass(frozen=True)
class Knob:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None
    lo: float | None
    hi: float | None
    log: bool
    group: str

    @property
    def help_text(self) -> str:
        """The help in the reader's language (`help` stays English: the CLI's --help). The
        `norm` knob's help is rebuilt from its registry, one translated clause per kind."""
        if self.name == "norm":
            return norm_kinds.knob_help(translated=True)
        return _(self.help)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: Any) -> Any:
        """Turn a string (URL, CLI) or a value into this knob's type; ValueError if it can't."""
        try:
            text = str(raw)
        except ValueError:  # an int past Python's 4300-digit str limit
            raise ValueError(_("{name} got {value}").format(name=self.name,
                                                             value=shown(raw))) from None
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            s = text.strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(_("{name} must be true or false, got {value}").format(
                name=self.name, value=shown(raw)))
        if self.type in (int, float):
            whole = self.type is int
            bad = (_("{name} must be a whole number, got {value}") if whole else
                   _("{name} must be a number, got {value}")).format(name=self.name,
                                                                      value=shown(raw))
            if whole and isinstance(raw, bool):
                raise ValueError(bad)
            try:
                f = float(raw)
            except (TypeError, ValueError, OverflowError):  # Overflow: an int past 1e308
                raise ValueError(bad) from None
            if not math.isfinite(f) and not whole:
                raise ValueError(_("{name} must be a finite number, got {value}").format(
                    name=self.name, value=shown(raw)))
            if not math.isfinite(f) or whole and f != int(f):
                raise ValueError(bad)
            return int(f) if whole else f
        return text

    def read(self, raw: Any) -> tuple[Any, str | None]:
        """(value, None), or (None, why the raw value cannot be used)."""
        try:
            v = self.parse(raw)
        except ValueError as e:
            return None, str(e)
        why = self.check(v)
        return (None, why) if why else (v, None)

    def check(self, value: Any) -> str | None:
        """One clear message if `value` is out of range, else None."""
        if self.choices is not None and value not in self.choices:
            opts = ", ".join(str(c) for c in self.choices)
            return _("{name} must be one of {options}, got {value}").format(
                name=self.name, options=opts, value=shown(value))
        if self.lo is not None and value < self.lo or self.hi is not None and value > self.hi:
            return _("{name} must be between {lo:g} and {hi:g}, got {value}").format(
                name=self.name, lo=self.lo, hi=self.hi, value=shown(value))
        return None


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
KNOBS: tuple[Knob, ...] = tuple(
    Knob(f.name, _TYPES[f.type] if isinstance(f.type, str) else f.type, f.default,
         f.metadata["help"], f.metadata["choices"], f.metadata["lo"], f.metadata["hi"],
         f.metadata["log"], f.metadata["group"])
    for f in fields(Config))
KNOB = {k.name: k for k in KNOBS}

# Each edition of d2l trains its own LeNet-BN (both initialise conv and linear weights with
# xavier_uniform_: the Chinese edition's train_ch6 applies init_weights, the English edition's
# model.apply_init(..., d2l.init_cnn); biases keep PyTorch's default). The Chinese edition
# (zh.d2l.ai §7.5, train_ch6): lr 1.0, batch 256, 10 epochs, LeNet lr 0.9. The English edition
# (d2l.ai §8.5, d2l.Trainer(max_epochs=10), d2l.FashionMNIST(batch_size=128)): lr 0.1 for
# BNLeNetScratch and BNLeNet alike. Config's defaults are the Chinese edition's LeNet-BN.
PRESETS: dict[str, dict[str, Any]] = {
    "d2l-lenet-bn": {},  # the defaults are d2l's concise LeNet-BN (Chinese edition)
    "d2l-lenet-bn-scratch": {"norm": "bn_d2l"},
    "d2l-lenet": {"norm": "none", "lr": 0.9, "conv1_padding": 2},
    "d2l-en-lenet-bn": {"lr": 0.1, "batch_size": 128},
    "d2l-en-lenet-bn-scratch": {"norm": "bn_d2l", "lr": 0.1, "batch_size": 128},
}
PRESET_EDITION = {"d2l-lenet-bn": "zh", "d2l-lenet-bn-scratch": "zh", "d2l-lenet": "zh",
                  "d2l-en-lenet-bn": "en", "d2l-en-lenet-bn-scratch": "en"}
PRESET_HELP = {  # English (the CLI, the README); the dashboard shows _(PRESET_HELP[name])
    "d2l-lenet-bn": N_("the Chinese edition's concise LeNet-BN (train_ch6): nn.BatchNorm at all "
                       "four sites, lr 1.0, batch 256"),
    "d2l-lenet-bn-scratch": N_("the same with the BatchNorm module the book writes from "
                               "scratch"),
    "d2l-lenet": N_("the Chinese edition's LeNet without BN: lr 0.9, conv1 padding 2"),
    "d2l-en-lenet-bn": N_("the English edition's concise BNLeNet (d2l.Trainer): nn.BatchNorm "
                          "at all four sites, lr 0.1, batch 128"),
    "d2l-en-lenet-bn-scratch": N_("the English edition's BNLeNetScratch: the book's BatchNorm "
                                  "from scratch, lr 0.1, batch 128"),
}
# What the dashboard's preset buttons say: short enough to show whole in the sidebar.
PRESET_LABELS = {  # shown with _()
    "d2l-lenet-bn": "LeNet-BN",
    "d2l-lenet-bn-scratch": N_("BN from scratch"),
    "d2l-lenet": N_("LeNet (no BN)"),
    "d2l-en-lenet-bn": "LeNet-BN",
    "d2l-en-lenet-bn-scratch": N_("BN from scratch"),
}
# The buttons are grouped under their edition's name.
EDITION_NAMES = {  # shown with _()
    "zh": N_("Chinese edition (zh.d2l.ai, 《动手学深度学习》)"),
    "en": N_("English edition (d2l.ai)"),
}


def presets_in_order(lang: str = "en") -> list[str]:
    """The presets, the edition of the reader's language first (stable within an edition)."""
    first = "zh" if lang == "zh" else "en"
    return sorted(PRESETS, key=lambda n: PRESET_EDITION[n] != first)


class ConfigError(ValueError):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def cross_field_errors(c: Config) -> list[str]:
    errs = []
    if c.devices > c.batch_size:
        errs.append(_("devices ({devices}) cannot exceed batch_size ({batch_size}): "
                      "each simulated device needs at least one example").format(
                          devices=c.devices, batch_size=c.batch_size))
    elif c.devices > 1 and c.batch_size % c.devices:
        errs.append(_("devices ({devices}) must divide batch_size ({batch_size}): each "
                      "simulated device gets an equal slice, as DataParallel/DDP give each GPU "
                      "batch/devices examples").format(devices=c.devices,
                                                       batch_size=c.batch_size))
    if c.train_size and c.train_size < c.batch_size:
        errs.append(_("train_size ({train_size}) must be at least batch_size "
                      "({batch_size}) or 0 for all").format(train_size=c.train_size,
                                                            batch_size=c.batch_size))
    return errs


def parse_config(values: Mapping[str, Any], base: Config | None = None,
                 ) -> tuple[Config, list[str]]:
    """Lenient parse: returns a valid config and a message per value that was ignored.

    Unknown keys, unparsable or out-of-range values are dropped (their default stays), so a
    mangled share link still opens. Repeated keys (lists) take the last value.
    """
    base = base or Config()
    good: dict[str, Any] = {}
    warnings: list[str] = []
    for key, raw in values.items():
        k = KNOB.get(key)
        if k is None:
            warnings.append(_("unknown setting {name} ignored").format(name=shown(key)))
            continue
        if isinstance(raw, (list, tuple)):
            if not raw:
                continue
            raw = raw[-1]
        v, why = k.read(raw)
        if why:
            warnings.append(_("{why}; using {value}").format(why=why,
                                                             value=repr(getattr(base, key))))
        else:
            good[key] = v
    cfg = base.replace(**good)
    for msg in cross_field_errors(cfg):
        warnings.append(_("{why}; using the defaults for batch_size, devices and train_size")
                        .format(why=msg))
        cfg = cfg.replace(batch_size=base.batch_size, devices=base.devices,
                          train_size=base.train_size)
        if cross_field_errors(cfg):
            cfg = cfg.replace(batch_size=Config.batch_size, devices=Config.devices,
                              train_size=Config.train_size)
        break
    return cfg, warnings


def make_config(preset: str | None = None, **values) -> Config:
    """Strict constructor: raises ConfigError listing every bad field."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError([f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}"])
    merged = {**PRESETS.get(preset or "d2l-lenet-bn", {}), **values}
    errors = []
    good = {}
    for key, raw in merged.items():
        k = KNOB.get(key)
        if k is None:
            errors.append(f"unknown setting {shown(key)}")
            continue
        v, why = k.read(raw)
        if why:
            errors.append(why)
        else:
            good[key] = v
    if errors:
        raise ConfigError(errors)
    cfg = Config(**good)
    errors = cross_field_errors(cfg)
    if errors:
        raise ConfigError(errors)
    return cfg


def validate(c: Config) -> list[str]:
    errs = [m for k in KNOBS if (m := k.check(getattr(c, k.name)))]
    return errs + cross_field_errors(c) if not errs else errs


def to_query(c: Config, base: Config | None = None) -> dict[str, str]:
    """Share-link parameters: only the knobs that differ from `base` (a page's defaults;
    Config's when None). from_query with the same base reads them back."""
    base = base or Config()
    out = {}
    for k in KNOBS:
        v = getattr(c, k.name)
        if v != getattr(base, k.name):
            out[k.name] = ("true" if v else "false") if isinstance(v, bool) else repr(v) \
                if isinstance(v, float) else str(v)
    return out


def from_query(params: Mapping[str, Any], ignore: Iterable[str] = (),
               base: Config | None = None) -> tuple[Config, list[str]]:
    params = {k: v for k, v in params.items() if k not in set(ignore)}
    return parse_config(params, base)


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Rebuild a stored config, tolerating knobs added or removed since it was stored."""
    cfg, _ = parse_config({k: v for k, v in d.items() if k in KNOB})
    return cfg


def differing_knobs(configs: Iterable[Config]) -> list[str]:
    """The knobs whose value differs between these configs, in registry order."""
    configs = list(configs)
    return [k.name for k in KNOBS if len({getattr(c, k.name) for c in configs}) > 1]
