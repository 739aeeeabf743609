"""Pretrain on one part of the data, then fine-tune on a shifted part, with BN updating or frozen.

The practitioner's question: "my backbone is frozen, but the BN statistics still move". With
`finetune_epochs` > 0 a run trains `epochs` on part A of the training set, then
`finetune_epochs` on part B (`finetune_shift`), treating its BN layers as `finetune_bn` says:

- "update": BN layers in training mode, as usual: they normalise with each batch's statistics,
  their running statistics follow part B, and gamma/beta learn.
- "frozen_stats": BN layers in eval mode (`module.eval()`), as practitioners freeze BN: in
  eval mode nn.BatchNorm normalises with its running statistics in the forward pass too, and
  never updates them, so the statistics of part A stay bit for bit; gamma/beta still learn.
- "frozen_all": the same, and gamma/beta fixed too (left out of the gradient).

Every other weight is fine-tuned in all three. The split (`split`) is data, not knobs of the
model: "rotated" keeps half the training images upright for part A and turns the other half
by 90° for part B (the test set likewise, whole, both ways); "classes" takes classes 0–4 for
part A and 5–9 for part B. `Plan` is what the trainer consults in its epoch loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bnviz.data import DataError, Dataset
from bnviz.model import norm_layers, scale_shift

SHIFTS = ("rotated", "classes")
TREATMENTS = ("update", "frozen_stats", "frozen_all")
CLASSES_A = 5  # classes below this are part A in the "classes" shift


@dataclass(frozen=True)
class Part:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def rotate(x: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, H, W) turned 90° counter-clockwise: a permutation of the pixels, exact."""
    return torch.rot90(x, 1, dims=(2, 3)).contiguous()


def _train_indices(y: torch.Tensor, shift: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of part A's and part B's training images, as many in each."""
    if shift == "rotated":
        n = len(y) // 2
        return torch.arange(0, 2 * n, 2), torch.arange(1, 2 * n, 2)
    ia = torch.nonzero(y < CLASSES_A).flatten()
    ib = torch.nonzero(y >= CLASSES_A).flatten()
    k = min(len(ia), len(ib))
    return ia[:k], ib[:k]


def test_sets(ds: Dataset, shift: str) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """((x, y) of part A's test images, (x, y) of part B's)."""
    if shift == "rotated":
        return (ds.test_x, ds.test_y), (rotate(ds.test_x), ds.test_y)
    a = torch.nonzero(ds.test_y < CLASSES_A).flatten().to(ds.test_y.device)
    b = torch.nonzero(ds.test_y >= CLASSES_A).flatten().to(ds.test_y.device)
    return (ds.test_x[a], ds.test_y[a]), (ds.test_x[b], ds.test_y[b])


def split(ds: Dataset, shift: str) -> tuple[Part, Part]:
    """(part A, part B) of a data set, with the same number of training images in each."""
    if shift not in SHIFTS:
        raise ValueError(f"finetune_shift must be one of {', '.join(SHIFTS)}, got {shift!r}")
    ia, ib = (i.to(ds.train_y.device) for i in _train_indices(ds.train_y.cpu(), shift))
    for name, i in zip("AB", (ia, ib)):
        if len(i) < 2:
            raise DataError(f"fine-tuning splits the training set into two parts ({shift}): "
                            f"part {name} would have {len(i)} image(s); use a larger "
                            "train_size")
    turn = rotate if shift == "rotated" else (lambda x: x)
    (xa, ya), (xb, yb) = test_sets(ds, shift)
    return (Part(ds.train_x[ia], ds.train_y[ia], xa, ya),
            Part(turn(ds.train_x[ib]), ds.train_y[ib], xb, yb))


def norm_modules(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's norm layers as the model holds them (a ghost-BN wrapper, not its inner BN:
    train/eval mode is read by the wrapper)."""
    return [m for name, m in net.named_children() if name.endswith("_norm")]


class Plan:
    """The epochs of a run and what each trains on. Without fine-tuning: `cfg.epochs` over the
    whole training set, nothing else. With it: the first `cfg.epochs` over part A, then
    `cfg.finetune_epochs` over part B with the BN treatment applied (`start`, `hold`)."""

    def __init__(self, cfg, ds: Dataset):
        self.cfg = cfg
        self.on = cfg.finetune_epochs > 0
        self.epochs = cfg.epochs + (cfg.finetune_epochs if self.on else 0)
        self.parts = split(ds, cfg.finetune_shift) if self.on else None
        self._whole = (ds.train_x, ds.train_y)
        self.n = len(self.parts[0].train_y) if self.on else len(ds.train_y)
        self._frozen: list[torch.nn.Module] = []

    def fine_tuning(self, epoch: int) -> bool:
        return self.on and epoch >= self.cfg.epochs

    def start(self, epoch: int, net: torch.nn.Module, opt: torch.optim.Optimizer | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's training images and labels. At the first fine-tuning epoch, sets the
        learning rate to finetune_lr (when given) and freezes what `finetune_bn` says:
        gamma/beta leave the gradient (requires_grad off, so no optimiser touches them: their
        .grad stays None), and `hold` keeps the BN layers in eval mode from then on."""
        if not self.on:
            return self._whole
        if epoch == self.cfg.epochs and opt is not None and self.cfg.finetune_lr > 0:
            for group in opt.param_groups:
                group["lr"] = self.cfg.finetune_lr
        if epoch == self.cfg.epochs and self.cfg.finetune_bn != "update":
            self._frozen = norm_modules(net)
            if self.cfg.finetune_bn == "frozen_all":
                for _, m in norm_layers(net):
                    for p in scale_shift(m):
                        if p is not None:
                            p.requires_grad_(False)
                            p.grad = None  # nothing left for any optimiser to apply
        part = self.parts[1] if self.fine_tuning(epoch) else self.parts[0]
        return part.train_x, part.train_y

    def hold(self) -> None:
        """Before a training step: the frozen BN layers back in eval mode (the trainer puts the
        whole model in train mode at each epoch and after each evaluation)."""
        for m in self._frozen:
            m.eval()


# -- accuracy on each part (the probe metrics acc_part_a / acc_part_b, bnviz.metrics) ---------

_memo: dict[tuple, tuple] = {}


def _test_sets(ds: Dataset, shift: str):
    """test_sets(), remembered for the last data set (each evaluation asks again). The entry
    holds the test tensor itself, so its id cannot be reused while it is remembered."""
    key = (id(ds.test_x), shift)
    hit = _memo.get(key)
    if hit is None:
        _memo.clear()
        hit = _memo[key] = (test_sets(ds, shift), ds.test_x)
    return hit[0]


@torch.no_grad()
def part_accuracy(net: torch.nn.Module, ds: Dataset, shift: str, part: int) -> float:
    """Test accuracy on part 0 (A) or 1 (B) with the running statistics (eval mode): the
    model as it would be deployed."""
    from bnviz.evaluation import loss_acc, mode
    x, y = _test_sets(ds, shift)[part]
    with mode(net, norms_train=False):
        return loss_acc(net, x, y)[1]
