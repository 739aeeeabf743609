"""Normalisation layers: d2l's BatchNorm from scratch, the book's own module, ghost
(per-device) BN; one factory per norm kind (named by its entry in bnviz/norm_kinds.py) and
make_norm, which builds any registered kind."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bnviz import norm_kinds


def batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance the way d2l writes them: over N for (N, D), over N, H, W
    (one number per channel, kept as (1, C, 1, 1)) for (N, C, H, W)."""
    if x.dim() == 2:
        mean = x.mean(dim=0)
        var = ((x - mean) ** 2).mean(dim=0)
    else:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return mean, var


def update_running_stats(m: nn.Module, x: torch.Tensor, mean: torch.Tensor,
                         var: torch.Tensor) -> None:
    """Move a BN layer's running_mean/running_var buffers toward this batch's statistics in
    place (PyTorch's momentum convention; the variance stored unbiased, as nn.BatchNorm)."""
    n = x.numel() // m.num_features
    unbiased = var * (n / (n - 1)) if n > 1 else var
    with torch.no_grad():
        m.running_mean.lerp_(mean, m.momentum)
        m.running_var.lerp_(unbiased, m.momentum)


class BatchNormScratch(nn.Module):
    """d2l's `batch_norm` as a module, with PyTorch's momentum convention.

    Unlike d2l, the running variance stores the unbiased estimate (as nn.BatchNorm does), so
    the two agree in eval mode too; normalisation itself uses the biased variance in both.
    With one example per channel the normalised values are exactly 0 — that is the lesson of
    batch size 1, so this class does not refuse it the way nn.BatchNorm1d does.

    It is also the fix for the book's module on several GPUs (see BookBatchNorm): the running
    statistics are registered buffers updated in place (`lerp_`), as nn.BatchNorm does, so
    under nn.DataParallel the device-0 replica, which shares the buffers' storage with the
    original module, updates them for real instead of on a copy that is thrown away.
    """

    def __init__(self, num_features: int, num_dims: int, momentum: float = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        shape = (num_features,) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.weight = nn.Parameter(torch.ones(shape))  # gamma
        self.bias = nn.Parameter(torch.zeros(shape))  # beta
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))

    def normalize(self, x: torch.Tensor, update: bool) -> torch.Tensor:
        if not self.training:
            x_hat = (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
            return self.weight * x_hat + self.bias
        mean, var = batch_stats(x)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        if update:
            update_running_stats(self, x, mean, var)
        return self.weight * x_hat + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x, update=True)


def _alias(name: str) -> property:
    """A read-only second name for an attribute (nn.BatchNorm's name for the book's)."""
    return property(lambda self: getattr(self, name), doc=f"the book's `{name}`")


class BookBatchNorm(nn.Module):
    """d2l's `BatchNorm` module as the book writes it (section "Batch Normalization").

    gamma/beta are Parameters of the statistics' shape, (1, C) or (1, C, 1, 1); the moving
    mean and variance are PLAIN tensor attributes, not registered buffers, and forward
    reassigns them from a functional `batch_norm` that returns new tensors. The moving
    variance averages the biased batch variance, as the book does; momentum is PyTorch's
    convention (0.1 = weight of the new batch, which is the book's 0.9 on the old value).

    One departure from the book: train/eval is chosen by `self.training`, not by
    `torch.is_grad_enabled()`, because bnviz evaluates in eval mode under no_grad and runs
    norms in train mode under no_grad for PreciseBN and batch-statistics evaluation.

    Because the statistics are reassigned attributes, nn.DataParallel on two or more GPUs
    loses every update: each step runs on replicas (`_replicate_for_data_parallel`, a shallow
    copy of `__dict__`), the reassignment lands on the replica and is discarded, and the
    moving statistics stay 0 and 1 for the whole run — training looks fine, eval-mode
    accuracy collapses. The fix is BatchNormScratch (`bn_scratch`): buffers updated in place.
    """

    def __init__(self, num_features: int, num_dims: int, momentum: float = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        # Plain attributes, as in the book: not in state_dict, not moved by .to(), not
        # shared with DataParallel's replicas.
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    @staticmethod
    def batch_norm(x, gamma, beta, moving_mean, moving_var, eps, momentum, training):
        """The book's functional `batch_norm`: returns Y and NEW moving statistics."""
        if not training:
            x_hat = (x - moving_mean) / torch.sqrt(moving_var + eps)
        else:
            assert x.dim() in (2, 4)
            if x.dim() == 2:
                mean = x.mean(dim=0)
                var = ((x - mean) ** 2).mean(dim=0)
            else:
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            x_hat = (x - mean) / torch.sqrt(var + eps)
            moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
            moving_var = (1.0 - momentum) * moving_var + momentum * var
        y = gamma * x_hat + beta
        return y, moving_mean.detach(), moving_var.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.moving_mean.device != x.device:
            self.moving_mean = self.moving_mean.to(x.device)
            self.moving_var = self.moving_var.to(x.device)
        y, self.moving_mean, self.moving_var = self.batch_norm(
            x, self.gamma, self.beta, self.moving_mean, self.moving_var, self.eps,
            self.momentum, self.training)
        return y

    # The names the rest of bnviz (snapshots, PreciseBN, freeze_affine) looks for.
    weight, bias = _alias("gamma"), _alias("beta")
    running_mean, running_var = _alias("moving_mean"), _alias("moving_var")


class LiteBatchNorm(nn.Module):
    """The "lite" BN of d2l's exercise 4 (English edition): one half of BatchNorm only.

    `part` "mean" subtracts the per-channel batch mean and divides by nothing; "variance"
    divides by the per-channel batch standard deviation sqrt(var + eps) (var taken about the
    mean, biased, as BN's) and subtracts nothing. Either way a learnable gamma and beta follow,
    and the running mean and variance are kept as BatchNormScratch keeps them (buffers updated
    in place, unbiased variance), so eval mode normalises with them and PreciseBN can recompute
    them. Both statistics are tracked whatever the part: each kind uses one of them and the
    other is there to be looked at (and so that PreciseBN sets the same two buffers as for BN).

    The mean-only kind cancels a bias before it (x + b - mean(x + b) = x - mean(x)); the
    variance-only kind does not (the output moves by b / std).
    """

    PARTS = ("mean", "variance")

    def __init__(self, num_features: int, num_dims: int, part: str, momentum: float = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        if part not in self.PARTS:
            raise ValueError(f"LiteBatchNorm part must be 'mean' or 'variance', got {part!r}")
        shape = (num_features,) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.part, self.momentum, self.eps = num_features, part, momentum, eps
        self.weight = nn.Parameter(torch.ones(shape))  # gamma
        self.bias = nn.Parameter(torch.zeros(shape))  # beta
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, var = batch_stats(x)
            update_running_stats(self, x, mean, var)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = x - mean if self.part == "mean" else x / torch.sqrt(var + self.eps)
        return self.weight * x_hat + self.bias


class BatchRenorm(nn.Module):
    """Batch Renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
    Dependence in Batch-Normalized Models"), Algorithm 1.

    Training: x_hat = (x - mu_B) / sigma_B · r + d, y = gamma · x_hat + beta, with
    sigma_B = sqrt(var_B + eps), sigma = sqrt(running_var + eps) and mu = running_mean the
    moving averages BEFORE this step's update, r = clip(sigma_B / sigma, 1/r_max, r_max) and
    d = clip((mu_B - mu) / sigma, -d_max, d_max), both detached: constants in the backward pass,
    as the paper requires. With r_max = 1 and d_max = 0 this is BatchNorm exactly.

    Warm-up as in the paper: the run starts as BN (r_max = 1, d_max = 0), and both limits are
    relaxed linearly to the knobs' values over `warmup` training steps (counted by the
    `steps` buffer, so PreciseBN's and batch-statistics evaluation's train-mode passes, which
    put buffers back, do not advance it). The paper keeps a moving sigma; this keeps the
    running (unbiased) variance as nn.BatchNorm does, sigma being sqrt(running_var + eps), so
    eval mode is BN's eval mode and PreciseBN recomputes the same two statistics.
    """

    def __init__(self, num_features: int, num_dims: int, momentum: float = 0.1,
                 eps: float = 1e-5, rmax: float = 3.0, dmax: float = 5.0, warmup: int = 0):
        super().__init__()
        if rmax < 1 or dmax < 0 or warmup < 0:
            raise ValueError(f"Batch Renorm needs r_max >= 1, d_max >= 0 and warmup >= 0, got "
                             f"{rmax}, {dmax}, {warmup}")
        shape = (num_features,) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.rmax, self.dmax, self.warmup = float(rmax), float(dmax), int(warmup)
        self.weight = nn.Parameter(torch.ones(shape))  # gamma
        self.bias = nn.Parameter(torch.zeros(shape))  # beta
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.last_r: torch.Tensor | None = None  # this step's r and d, for tests and pages
        self.last_d: torch.Tensor | None = None

    def limits(self, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_max, d_max) after `steps` training steps: 1 and 0 at step 0, linear to the
        knobs' values at step `warmup` (at once when warmup is 0). Tensors, on steps' device:
        no host sync per forward."""
        if not self.warmup:
            frac = torch.ones((), dtype=torch.float64, device=steps.device)
        else:
            frac = (steps.double() / self.warmup).clamp(max=1.0)
        return 1 + (self.rmax - 1) * frac, self.dmax * frac

    def reference(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Copies of the moving statistics and step count, as every replica sees them at the
        start of a step (GhostBatchNorm normalises each slice against these)."""
        return self.running_mean.clone(), self.running_var.clone(), self.steps.clone()

    def normalize(self, x: torch.Tensor, update: bool, ref=None) -> torch.Tensor:
        if not self.training:
            x_hat = (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
            return self.weight * x_hat + self.bias
        mu, var_run, steps = ref if ref is not None else (self.running_mean,
                                                          self.running_var, self.steps)
        mean, var = batch_stats(x)
        sigma_b = torch.sqrt(var + self.eps)
        x_hat = (x - mean) / sigma_b
        with torch.no_grad():  # r and d are constants for the gradient (the paper's stop_gradient)
            sigma = torch.sqrt(var_run + self.eps)
            rmax, dmax = (t.to(x.dtype) for t in self.limits(steps))
            r = torch.minimum(torch.maximum(sigma_b / sigma, 1 / rmax), rmax)
            d = torch.minimum(torch.maximum((mean - mu) / sigma, -dmax), dmax)
        self.last_r, self.last_d = r, d
        if update:
            update_running_stats(self, x, mean, var)
            self.steps += 1
        return self.weight * (x_hat * r + d) + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x, update=True)


def dp_replica(m: nn.Module) -> nn.Module:
    """The replica `torch.nn.parallel.replicate` makes of a leaf module for one device: a
    shallow copy of `__dict__` (own _parameters/_buffers/_modules dicts, the buffers being
    the same tensors, as on DataParallel's device 0), with the parameters set back as
    replicate() does. Attributes assigned on it are lost; in-place updates of its buffers are
    not."""
    r = m._replicate_for_data_parallel()
    for key, p in m._parameters.items():
        if p is not None:
            setattr(r, key, p)
    return r


class GhostBatchNorm(nn.Module):
    """BN whose training statistics are taken separately on `slices` parts of the batch.

    This is what plain BN does under DataParallel/DDP with one slice per device (Hoffer et
    al.'s ghost batch norm). The batch is cut by `torch.tensor_split`: always exactly `slices`
    parts whose sizes differ by at most one (the config requires slices to divide the batch
    size, so only a smaller last batch of an epoch gives unequal parts).

    How each slice maps onto nn.DataParallel's replicas:
    - buffer-based BN (nn.BatchNorm, BatchNormScratch, which update registered buffers in
      place): slice 0 runs on the module itself and updates its running statistics — the
      device-0 replica shares its buffers' storage with the original, and DDP broadcasts rank
      0's buffers; the other slices normalise with their own statistics and update nothing.
    - BookBatchNorm (moving statistics reassigned as plain attributes): every slice runs on a
      shallow replica (`dp_replica`), so every reassignment is lost and the moving statistics
      keep their initial values, exactly as under DataParallel on two or more GPUs.
    With one slice, or in eval mode, the module is called directly (DataParallel on one
    device does the same).
    """

    def __init__(self, inner: nn.Module, slices: int):
        super().__init__()
        self.inner, self.slices = inner, slices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.slices == 1:
            return self.inner(x)
        if x.shape[0] % self.slices == 0 and isinstance(self.inner, RESHAPED):
            return self._reshaped(x)
        parts = torch.tensor_split(x, self.slices)
        if isinstance(self.inner, BatchRenorm):
            # Every replica renormalises against the moving averages as they were at the
            # start of the step, before slice 0 (device 0) updates them.
            ref = self.inner.reference()
            return torch.cat([self.inner.normalize(c, i == 0, ref) for i, c in enumerate(parts)])
        return torch.cat([self._part(c, update=(i == 0)) for i, c in enumerate(parts)])

    def _reshaped(self, x: torch.Tensor) -> torch.Tensor:
        """Every slice at once: the batch viewed as (slices, N / slices, C, ...), statistics
        over each slice's examples (and H, W) in one reduction, not a loop over slices. Same
        numbers as the loop up to float rounding (tests/test_renorm.py); running statistics
        move with slice 0's, as device 0's do."""
        m, k = self.inner, self.slices
        xs = x.reshape(k, x.shape[0] // k, *x.shape[1:])
        dims = (1, *range(3, xs.dim()))
        mean = xs.mean(dim=dims, keepdim=True)
        var = ((xs - mean) ** 2).mean(dim=dims, keepdim=True)
        shape = (-1,) + (1,) * (x.dim() - 2)  # a per-channel vector against (k, n, C, ...)
        scale, shift = m.weight.reshape(shape), m.bias.reshape(shape)
        own = m.running_mean.shape  # (C,) or (1, C, 1, 1): slice 0's statistics in its shape
        if isinstance(m, LiteBatchNorm):
            x_hat = xs - mean if m.part == "mean" else xs / torch.sqrt(var + m.eps)
        else:
            x_hat = (xs - mean) / torch.sqrt(var + m.eps)
        if isinstance(m, BatchRenorm):
            with torch.no_grad():  # against the moving averages as they were before this step
                sigma = torch.sqrt(m.running_var.reshape(shape) + m.eps)
                rmax, dmax = (t.to(x.dtype) for t in m.limits(m.steps))
                r = torch.minimum(torch.maximum(torch.sqrt(var + m.eps) / sigma, 1 / rmax),
                                  rmax)
                d = torch.minimum(torch.maximum((mean - m.running_mean.reshape(shape)) / sigma,
                                                -dmax), dmax)
            m.last_r, m.last_d = r, d
            x_hat = x_hat * r + d
        y = (scale * x_hat + shift).reshape(x.shape)
        x0 = xs[0]
        update_running_stats(m, x0, mean[0].reshape(own), var[0].reshape(own))
        if isinstance(m, BatchRenorm):
            m.steps += 1
        elif getattr(m, "num_batches_tracked", None) is not None:
            m.num_batches_tracked.add_(1)
        return y

    def _part(self, x: torch.Tensor, update: bool) -> torch.Tensor:
        m = self.inner
        if isinstance(m, BookBatchNorm):
            return dp_replica(m)(x)
        if isinstance(m, BatchNormScratch):
            return m.normalize(x, update)
        if update:
            return m(x)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return F.batch_norm(x, None, None, m.weight, m.bias, True, 0.0, m.eps)
        # Any other batch-dependent kind: its statistics are updated on slice 0 only, as
        # DataParallel's other replicas update copies that are thrown away.
        saved = [b.detach().clone() for b in m.buffers()]
        y = m(x)
        with torch.no_grad():
            for b, v in zip(m.buffers(), saved):
                b.copy_(v)
        return y


# The kinds GhostBatchNorm computes in one reshape (BN's arithmetic on each slice); the book's
# module keeps its replica-by-replica loop, since losing each replica's update is its lesson.
RESHAPED = (nn.BatchNorm1d, nn.BatchNorm2d, BatchNormScratch, LiteBatchNorm, BatchRenorm)


def torch_batchnorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                    **_) -> nn.Module:
    return (nn.BatchNorm2d if num_dims == 4 else nn.BatchNorm1d)(num_features, eps, momentum)


def scratch_batchnorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                      **_) -> nn.Module:
    return BatchNormScratch(num_features, num_dims, momentum, eps)


def book_batchnorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                   **_) -> nn.Module:
    return BookBatchNorm(num_features, num_dims, momentum, eps)


def mean_only_batchnorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                        **_) -> nn.Module:
    return LiteBatchNorm(num_features, num_dims, "mean", momentum, eps)


def variance_only_batchnorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                            **_) -> nn.Module:
    return LiteBatchNorm(num_features, num_dims, "variance", momentum, eps)


def batch_renorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                 renorm_rmax: float = 3.0, renorm_dmax: float = 5.0, renorm_warmup: int = 0,
                 **_) -> nn.Module:
    return BatchRenorm(num_features, num_dims, momentum, eps, renorm_rmax, renorm_dmax,
                       renorm_warmup)


def layer_norm(num_features: int, num_dims: int, *, eps: float, **_) -> nn.Module:
    # At conv sites one group of all channels: LayerNorm's statistics (over C, H, W per
    # example) with one gamma per channel, not nn.LayerNorm's one per position.
    if num_dims == 4:
        return nn.GroupNorm(1, num_features, eps)
    return nn.LayerNorm(num_features, eps)


def group_norm(num_features: int, num_dims: int, *, eps: float, groups: int, **_) -> nn.Module:
    return nn.GroupNorm(groups, num_features, eps)


def instance_norm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                  **_) -> nn.Module:
    # Conv sites only: the registry builds LayerNorm at FC sites (its `fallback`).
    return nn.InstanceNorm2d(num_features, eps, momentum, affine=True)


def make_norm(kind: str, num_features: int, num_dims: int, *, momentum: float = 0.1,
              eps: float = 1e-5, groups: int = 2, slices: int = 1, **knobs) -> nn.Module:
    """One normalisation layer of the registered `kind` (bnviz.norm_kinds) for `num_features`
    channels (num_dims 4) or features (2). The layer carries its kind's id as `norm_kind`
    (the fallback's at sites its kind does not handle), so code holding only the model can ask
    the registry about it; a batch-dependent kind on `slices` > 1 devices is wrapped in
    GhostBatchNorm. `knobs`: the config knobs the kind's entry names (`NormKind.knobs`,
    e.g. Batch Renorm's r_max), passed on to its factory."""
    k = norm_kinds.get(kind)
    if ("conv" if num_dims == 4 else "fc") not in k.sites:
        k = norm_kinds.get(k.fallback)
    layer = k.build(num_features, num_dims, momentum=momentum, eps=eps, groups=groups, **knobs)
    layer.norm_kind = k.id
    if slices > 1 and k.batch_dependent:
        layer = GhostBatchNorm(layer, slices)
    return layer
