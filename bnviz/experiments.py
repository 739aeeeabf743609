"""Experiment grids (ablation, sweeps) as lists of labelled configs, and their result tables."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

from .config import SITES, Config
from .reading import fluctuation


@dataclass(frozen=True)
class GridPoint:
    label: str
    config: Config


def ablation_grid(base: Config) -> list[GridPoint]:
    """d2l's 'is BN needed in every layer?' exercise, on one seed and one data set."""
    bn = base.replace(norm=base.norm if base.norm != "none" else "bn", dropout_fc=False,
                      **{f"norm_{s}": True for s in SITES})

    def only(*keep: str) -> Config:
        return bn.replace(**{f"norm_{s}": s in keep for s in SITES})
    points = [GridPoint("all four BN layers", bn),
              GridPoint("no BN", bn.replace(norm="none"))]
    for s in SITES:
        points.append(GridPoint(f"without {s} BN", only(*(x for x in SITES if x != s))))
    points += [GridPoint("only conv1 + fc1 BN", only("conv1", "fc1")),
               GridPoint("only conv2 + fc2 BN", only("conv2", "fc2")),
               GridPoint("only the conv BNs", only("conv1", "conv2")),
               GridPoint("FC BNs → dropout 0.5", bn.replace(dropout_fc=True, dropout_p=0.5))]
    return points


def batch_size_grid(base: Config, sizes: Iterable[int] = (2, 4, 8, 16, 32, 64, 128, 256),
                    norms: Iterable[str] = ("bn", "group", "layer", "none"),
                    scale_lr: bool = True, examples: int = 0) -> list[GridPoint]:
    """Test accuracy vs batch size at a fixed number of examples seen (the GN paper's figure).
    With scale_lr the lr follows the batch size linearly from the base's lr at 256."""
    points = []
    for norm in norms:
        for bs in sizes:
            lr = base.lr * bs / 256 if scale_lr else base.lr
            cfg = base.replace(norm=norm, batch_size=bs, lr=max(min(lr, 100.0), 1e-4))
            points.append(GridPoint(f"{norm}, batch {bs}", cfg))
    return points


def lr_grid(base: Config, lrs: Iterable[float] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
            norms: Iterable[str] = ("bn", "none")) -> list[GridPoint]:
    return [GridPoint(f"{n}, lr {lr:g}", base.replace(norm=n, lr=lr)) for n in norms
            for lr in lrs]


def devices_grid(base: Config, ks: Iterable[int] = (1, 2, 4, 8)) -> list[GridPoint]:
    return [GridPoint(f"{k} device(s), {base.batch_size // k} per device",
                      base.replace(devices=k)) for k in ks if base.batch_size // k >= 1]


def bias_grid(base: Config, seeds: Iterable[int] = (0, 1, 2)) -> list[GridPoint]:
    return [GridPoint(f"bias {'on' if b else 'off'}, seed {s}", base.replace(bias=b, seed=s))
            for b in (True, False) for s in seeds]


GRIDS: dict[str, Callable[[Config], list[GridPoint]]] = {
    "ablation": ablation_grid, "batch_size": batch_size_grid, "lr": lr_grid,
    "devices": devices_grid, "bias": bias_grid,
}


def result_row(label: str, view) -> dict:
    """One row of a grid's table from a RunView (or None when not run yet)."""
    if view is None:
        return dict(run=label, status="not run", train_loss=math.nan, train_acc=math.nan,
                    test_acc=math.nan, gap=math.nan, fluctuation=math.nan, run_id="")
    s = view.summary or {}
    tr, te = s.get("train_acc", math.nan), s.get("test_acc", math.nan)
    return dict(run=label, status=view.status, train_loss=s.get("train_loss", math.nan),
                train_acc=tr, test_acc=te, gap=tr - te,
                fluctuation=fluctuation([e["test_acc"] for e in view.evals]),
                run_id=view.run_id)
