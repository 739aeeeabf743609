"""Typed events a training run emits. Listeners (dashboard, CLI, tests, run store) get them
in order: RunStarted, then Step/Evaluation/BNSnapshot/EpochEnd, then exactly one RunEnded."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RunStarted:
    config: dict[str, Any]
    data_source: str  # "full" or "subset"
    data: str  # a sentence for people: which data, how many images, from where
    device: str
    n_params: int
    n_train: int
    n_test: int
    steps_per_epoch: int
    total_steps: int
    kind: str = "started"


@dataclass
class Step:
    iteration: int  # 1-based, counted over the whole run
    epoch: float  # fractional epoch at the end of this step
    loss: float
    acc: float  # accuracy on this training batch, in train mode
    kind: str = "step"


@dataclass
class Evaluation:
    iteration: int
    epoch: float
    test_loss: float
    test_acc: float  # with the config's eval_mode
    train_loss: float  # running mean over the current epoch, train mode (as d2l reports)
    train_acc: float
    eval_batch_acc: float  # one fixed test batch in eval mode ...
    train_mode_batch_acc: float  # ... and the same batch normalised with its own statistics
    by_mode: dict[str, float] = field(default_factory=dict)  # test acc per eval mode
    metrics: dict[str, float] = field(default_factory=dict)  # the registry's probe metrics
    kind: str = "eval"


@dataclass
class BNSnapshot:
    iteration: int
    epoch: float
    # site -> {"gamma", "beta", and for BN "running_mean", "running_var"} as float32 arrays
    layers: dict[str, dict[str, np.ndarray]]
    kind: str = "snapshot"


@dataclass
class EpochEnd:
    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    examples_per_sec: float
    elapsed: float
    kind: str = "epoch"


@dataclass
class RunEnded:
    status: str  # finished | stopped | diverged | failed
    reason: str  # plain words; empty when finished
    summary: dict[str, Any]
    kind: str = "ended"
