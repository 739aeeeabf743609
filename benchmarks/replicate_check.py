"""What torch.nn.parallel.replicate — DataParallel's own replication — does to the book's
hand-written BN and to a buffer-based one, on a real CUDA device (replicas on one GPU twice,
which is all one lent GPU allows; the replication code path is the same)."""
import torch

from bnviz.norms import BatchNormScratch, BookBatchNorm


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return
    torch.manual_seed(0)
    x = torch.randn(64, 16, device="cuda") * 3 + 5
    for name, m in (("book BN (moving stats as attributes)", BookBatchNorm(16, 2)),
                    ("BN with registered buffers updated in place", BatchNormScratch(16, 2))):
        m = m.cuda().train()
        try:
            replicas = torch.nn.parallel.replicate(m, [0, 0])
        except Exception as e:  # noqa: BLE001
            print(f"{name}: replicate to [0, 0] failed: {type(e).__name__}: {e}")
            continue
        outs = torch.nn.parallel.parallel_apply(replicas, list(x.chunk(2)))
        del outs
        print(f"{name}: after one DataParallel-style step, original running mean "
              f"{float(m.running_mean.abs().max()):.4f} (max |.|; 0 = lost), "
              f"var {float(m.running_var.mean()):.4f} (1 = never updated)")


if __name__ == "__main__":
    main()
