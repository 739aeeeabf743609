"""Noisy BatchNorm (Santurkar, Tsipras, Ilyas and Madry 2018, "How Does Batch Normalization
Help Optimization?", §2.1 and fig. 2): BatchNorm followed by random noise whose distribution
changes at every training step, so that the inputs of the next layer shift far more during
training than without BN, "internal covariate shift" put back on purpose. The paper finds
that such a network trains about as well as with plain BN.

bnviz's form of the noise (the paper describes it as i.i.d. noise per activation and sample,
"sampled from a non-zero mean and non-unit variance distribution" that "changes at each time
step"; this is bnviz's reading of that, not the paper's exact parameters):

    y = gamma · x_hat + beta + n,   n = mu_t + sigma_t · eps

where x_hat is BN's normalised input, and at every training step t, for every activation j
(a channel at a conv site, a feature at an FC site), mu_t[j] ~ U(-noise_mean, noise_mean) and
sigma_t[j] ~ U(0, noise_std) are drawn afresh, and eps ~ N(0, 1) independently for every
example (and position). So in one step, activation j gets noise of mean mu_t[j] (non-zero)
and variance sigma_t[j]², and both move from step to step.

The noise comes from the run's seed: step t's draws are a function of (seed, site, t) alone
(the `steps` buffer counts training forwards and is restored with the other buffers around
probes and evaluations, kept_buffers), so a probe or a second forward pass on the same step
sees the same noise as the step itself and leaves the next step's noise unchanged.

Eval mode: plain BN with the running statistics and no noise, as dropout is off in eval mode
(the paper does not say how it evaluates; the noise's mean over steps is 0). bnviz's "batch"
eval mode puts norm layers in train mode, so there the noise is added too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# A separate stream per site: the four LeNet sites differ in width (6, 16, 120, 84).
_SEED_MASK = 2**63 - 1


class NoisyBatchNorm(nn.Module):
    def __init__(self, num_features: int, num_dims: int, momentum: float = 0.1,
                 eps: float = 1e-5, noise_mean: float = 0.25, noise_std: float = 0.5,
                 seed: int = 0):
        super().__init__()
        if noise_mean < 0 or noise_std < 0:
            raise ValueError(f"noisy BN needs noise_mean >= 0 and noise_std >= 0, got "
                             f"{noise_mean}, {noise_std}")
        shape = (num_features,) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.num_dims = num_features, num_dims
        self.momentum, self.eps = momentum, eps
        self.noise_mean, self.noise_std, self.seed = float(noise_mean), float(noise_std), seed
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._shape = shape
        # This step's noise moments and the noise itself (tests and pages read them).
        self.last_mu: torch.Tensor | None = None
        self.last_sigma: torch.Tensor | None = None
        self.last_noise: torch.Tensor | None = None

    def stream_seed(self, step: int) -> int:
        """The seed of step `step`'s draws at this site (a function of seed, site and step)."""
        return (self.seed * 1_000_003 + self.num_features * 7_919 + self.num_dims) \
            * 1_000_033 + step & _SEED_MASK

    def moments(self, step: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_t, sigma_t) per activation for training step `step`."""
        g = torch.Generator().manual_seed(self.stream_seed(step))
        u = torch.rand(2, self.num_features, generator=g, dtype=torch.float64)
        mu = (2 * u[0] - 1) * self.noise_mean
        sigma = u[1] * self.noise_std
        return mu.float().to(device), sigma.float().to(device)

    def noise(self, x: torch.Tensor, step: int) -> torch.Tensor:
        mu, sigma = self.moments(step, x.device)
        g = torch.Generator(device=x.device).manual_seed(self.stream_seed(step) ^ 0x5EED)
        eps = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
        self.last_mu, self.last_sigma = mu, sigma
        return mu.view(self._shape).to(x.dtype) + sigma.view(self._shape).to(x.dtype) * eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)
        if not self.training or (self.noise_mean == 0 and self.noise_std == 0):
            return y
        step = int(self.steps)  # one host sync per layer and step (noisy BN only)
        with torch.no_grad():
            self.steps += 1
        n = self.noise(x, step)
        self.last_noise = n
        return y + n

    def extra_repr(self) -> str:
        return (f"{self.num_features}, noise mean ~ U(±{self.noise_mean:g}), "
                f"std ~ U(0, {self.noise_std:g}) per step")


def noisy_batchnorm(num_features: int, num_dims: int, *, momentum: float, eps: float,
                    noise_mean: float = 0.25, noise_std: float = 0.5, seed: int = 0,
                    **_) -> nn.Module:
    return NoisyBatchNorm(num_features, num_dims, momentum, eps, noise_mean, noise_std, seed)
