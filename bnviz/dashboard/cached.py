"""Page computations that depend only on a config (one real batch through the model, the
bias page's float64 equivalence), kept per process: every visitor and session shares them,
and the server's warm-up (nav.warm_server) fills them for each page's default settings before
the first visitor asks. Configs are frozen, so they key the caches; results are not mutated.
"""
from __future__ import annotations

from functools import lru_cache

from bnviz.bias import bias_equivalence, bias_gradients, parameter_counts
from bnviz.config import Config
from bnviz.inside import layer_io, two_example_outputs

gradients = lru_cache(maxsize=32)(bias_gradients)
counts = lru_cache(maxsize=32)(parameter_counts)
equivalence = lru_cache(maxsize=32)(bias_equivalence)


@lru_cache(maxsize=32)
def io(cfg: Config, n: int, site: str, seed: int = 0):
    return layer_io(cfg, n, site, seed)


@lru_cache(maxsize=16)
def two(cfg: Config, site: str, seed: int = 0):
    return two_example_outputs(cfg, site, seed=seed)


def warm(page_base) -> None:
    """Compute what the bias and batch-size pages show at their default settings."""
    bias = page_base("bias")
    gradients(bias)
    counts(bias)
    equivalence(bias)
    batch = page_base("batch")
    two(Config().replace(dataset=batch.dataset), "fc1", seed=batch.seed)
    for site in ("fc1", "conv1"):
        io(Config().replace(dataset=batch.dataset, norm="bn_scratch"), 1, site,
           seed=batch.seed)
