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


@lru_cache(maxsize=16)
def batch_one(dataset: str, seed: int):
    """The batch-size page's views of one real batch through an untrained LeNet-BN: fc1's
    x̂ at N = 2 (nn.BatchNorm), and fc1's and conv1's from-scratch BN at N = 1."""
    base = Config().replace(dataset=dataset)
    scratch = base.replace(norm="bn_scratch")
    return (two_example_outputs(base, "fc1", seed=seed), layer_io(scratch, 1, "fc1", seed),
            layer_io(scratch, 1, "conv1", seed))


def warm(page_base) -> None:
    """Compute what the bias and batch-size pages show at their default settings."""
    bias = page_base("bias")
    gradients(bias)
    counts(bias)
    equivalence(bias)
    batch = page_base("batch-size")
    batch_one(batch.dataset, batch.seed)
    from bnviz.dashboard import weights
    weights.warm(page_base)  # the weight-decay page's scale test
