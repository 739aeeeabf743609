"""How a run walks through its data: the batches of an epoch and the fixed probe batch.

The trainer follows these rules and the cost model (bnviz/cost.py) counts with them, so the
estimate before a run and the run itself cannot disagree about how many steps there are.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpochPlan:
    batch_size: int  # examples per step (the config's, capped at the train-set size)
    steps: int  # steps per epoch
    drop_last: bool  # whether the last, short batch is left out


def epoch_plan(n: int, batch_size: int, devices: int = 1) -> EpochPlan:
    """Batches of an epoch over `n` training examples. A last batch with at most one example
    per device is dropped: nn.BatchNorm1d would refuse the whole run for an accident of
    arithmetic (d2l's DataLoader keeps it)."""
    if n <= 0:
        return EpochPlan(batch_size, 0, False)
    bs = min(batch_size, n)
    rem = n % bs
    drop_last = bs > 1 and 0 < rem < 2 * devices
    return EpochPlan(bs, n // bs if drop_last or rem == 0 else n // bs + 1, drop_last)


def probe_size(batch_size: int, n_train: int, n_test: int) -> int:
    """The fixed test batch evaluated in eval and in train mode at every evaluation (the lab's
    third chart): one training batch's worth, at least 2 (a batch of one cannot be normalised
    in train mode), at most the test set."""
    return min(max(min(batch_size, n_train), 2), n_test)
