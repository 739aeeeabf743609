"""What torch.nn.parallel.replicate — DataParallel's own replication — does to the book's
hand-written BN and to a buffer-based one, on a real CUDA device (replicas on one GPU twice,
which is all one lent GPU allows; the replication code path is the same).

It checks what the devices page says and exits 1 when the GPU says otherwise: the book's BN
loses its moving statistics (still exactly 0 and 1 after a step), the buffer-based BN keeps
them (updated in place through the first replica). Without CUDA it exits 1 saying so: it
checks nothing on a CPU, and a check that could not run must not look like one that passed.
"""
import sys

import torch

from bnviz.norms import BatchNormScratch, BookBatchNorm


def replicated_step(m: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max |running mean|, mean running var) of `m` after one training step run the way
    DataParallel runs it: on replicas, one chunk of the batch each."""
    m = m.cuda().train()
    replicas = torch.nn.parallel.replicate(m, [0, 0])
    torch.nn.parallel.parallel_apply(replicas, list(x.chunk(2)))
    torch.cuda.synchronize()
    return float(m.running_mean.abs().max()), float(m.running_var.mean())


def problems(book: tuple[float, float], buffers: tuple[float, float]) -> list[str]:
    """What disagrees with the devices page: the book's BN must end at exactly (0, 1), the
    buffer-based BN must have moved (the batch has mean 5, variance 9: one step at momentum
    0.1 moves the mean by about 0.5 and the variance by about 0.8)."""
    out = []
    if book != (0.0, 1.0):
        out.append(f"book BN kept something: running mean {book[0]:.4f}, var {book[1]:.4f} "
                   "(expected exactly 0 and 1, the statistics lost on the replicas)")
    if not (buffers[0] > 0.1 and abs(buffers[1] - 1.0) > 0.1):
        out.append(f"buffer BN did not update in place: running mean {buffers[0]:.4f}, var "
                   f"{buffers[1]:.4f} (expected a mean above 0.1 and a var away from 1)")
    return out


def main() -> int:
    if not torch.cuda.is_available():
        print("replicate_check: FAILED: no CUDA device is visible (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}); this check needs one",
              file=sys.stderr)
        return 1
    torch.manual_seed(0)
    x = torch.randn(64, 16, device="cuda") * 3 + 5
    book = replicated_step(BookBatchNorm(16, 2), x)
    buffers = replicated_step(BatchNormScratch(16, 2), x)
    for name, (mean, var) in (("book BN (moving stats as attributes)", book),
                              ("BN with registered buffers updated in place", buffers)):
        print(f"{name}: after one DataParallel-style step, original running mean "
              f"{mean:.4f} (max |.|; 0 = lost), var {var:.4f} (1 = never updated)")
    found = problems(book, buffers)
    for p in found:
        print(f"replicate_check: FAILED: {p}", file=sys.stderr)
    if not found:
        print("replicate_check: OK: the book's BN loses its moving statistics under "
              "replicate, the buffer-based BN keeps them")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
