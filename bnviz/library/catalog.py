"""The questions the question pages open with: each page's default grid, in one list.

The library build trains (or reuses) exactly these runs, `library check` verifies them, the
pages take their default controls from here, and the README's Findings are rendered from
them, so the four can never disagree. A page's control values other than these defaults make
a different question, which the library does not answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from bnviz.config import Config, validate
from bnviz.experiments import (GridPoint, NORM_BATCH_SGD, ablation_grid, batch_size_grid,
                               bias_grid, dataparallel_grid, fluctuation_grid, lr_grid,
                               norm_batch_grid, presets_grid, with_seeds)

LIBRARY_SEEDS = 5  # paired seeds 0..4 per configuration

# Control defaults of the pages whose grids take more than the base config.
LRS = (0.1, 1.0, 3.0, 10.0, 30.0)
PER_BN = (4, 16, 64, 256)
SGD_SIZES = (4, 16, 64, 256)
SGD_NORMS = ("bn", "group", "layer", "none")


def norm_batch_points(base: Config, per_bn=PER_BN) -> list[GridPoint]:
    """The batch-size page's first chart: GroupNorm with 2 groups and one device whatever
    the link says, as every statement on that page assumes."""
    return norm_batch_grid(base.replace(groups=2, devices=1), sorted(per_bn))


def sgd_batch_points(base: Config, sizes=SGD_SIZES, norms=SGD_NORMS,
                     scale_lr: bool = True) -> list[GridPoint]:
    """The batch-size page's second chart, minus the batch sizes the train set cannot fill."""
    points = batch_size_grid(base.replace(groups=2, devices=1), sorted(sizes), norms,
                             scale_lr=scale_lr)
    return [p for p in points if not validate(p.config)]


def batch1_config(base: Config) -> Config:
    """Batch size 1, kept small (the bundled subset, 2,000 images, one epoch, ReLU)."""
    return Config().replace(dataset="subset", train_size=2000, epochs=1, batch_size=1,
                            lr=0.02, activation="relu", seed=base.seed)


def batch1_points(base: Config) -> list[GridPoint]:
    one = batch1_config(base)
    return [GridPoint("nn.BatchNorm1d at batch 1", one),
            GridPoint("BN from scratch at batch 1", one.replace(norm="bn_scratch")),
            GridPoint("BN on the conv layers only, batch 1",
                      one.replace(norm_fc1=False, norm_fc2=False, compare_eval=True))]


def gamma_points(base: Config) -> list[GridPoint]:
    return [GridPoint("gamma/beta learned", base.replace(freeze_affine=False)),
            GridPoint("gamma/beta frozen", base.replace(freeze_affine=True))]


@dataclass(frozen=True)
class Question:
    """One page's default question. `settings` are the knob values the page opens with where
    they differ from Config's defaults; the library's runs use the full Fashion-MNIST."""
    key: str
    page: str  # the page's key (its seeds control, its URL state)
    title: str
    make: Callable[[Config], list[GridPoint]]
    settings: dict = field(default_factory=dict)
    seeds: int = LIBRARY_SEEDS

    def base(self) -> Config:
        return Config().replace(**{"dataset": "full", **self.settings})

    def points(self, base: Config | None = None) -> list[GridPoint]:
        return with_seeds(self.make(base or self.base()), self.seeds)


QUESTIONS: tuple[Question, ...] = (
    Question("presets", "lab", "d2l's three runs (the lab's presets)", presets_grid),
    Question("ablation", "ablation", "Which BN layers matter?", ablation_grid),
    Question("fluctuation", "fluct", "Fluctuating test accuracy", fluctuation_grid),
    Question("gamma", "gamma", "gamma and beta: learned or frozen", gamma_points),
    Question("lr", "lr", "Learning rate with and without BN", lambda b: lr_grid(b, LRS),
             {"epochs": 2}),
    Question("norm_batch", "batch", f"Examples per BN at SGD batch {NORM_BATCH_SGD}",
             norm_batch_points, {"epochs": 2}),
    Question("sgd_batch", "batch", "SGD batch size at a fixed number of examples seen",
             sgd_batch_points, {"epochs": 2}),
    Question("batch1", "batch", "Batch size 1", batch1_points),
    Question("bias", "bias", "Bias before BN", bias_grid, {"epochs": 3}),
    Question("devices", "devices", "The book's BN on several devices", dataparallel_grid,
             {"epochs": 3}),
)
QUESTION = {q.key: q for q in QUESTIONS}


def page_settings(page: str) -> dict:
    """The knob values a page opens with (beyond Config's defaults)."""
    out: dict = {}
    for q in QUESTIONS:
        if q.page == page:
            out.update(q.settings)
    return out
