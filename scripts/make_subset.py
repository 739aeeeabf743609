"""Build bnviz/datasets/fashion_mnist_subset.npz from the official Fashion-MNIST IDX files.

A class-balanced, seeded sample: 500 training and 100 test images per class (about 3 MB).
Usage: python scripts/make_subset.py [DIR_WITH_IDX_GZ_FILES]
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnviz import data  # noqa: E402


def balanced(x, y, per_class, rng):
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                          for c in range(10)])
    rng.shuffle(idx)
    return x[idx], y[idx]


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else data.find_full()
    if src is None:
        sys.exit("no Fashion-MNIST IDX files found; " + data.HOW_TO_GET)
    a = {k: data.read_idx(src / name) for k, name in data.FILES.items()}
    rng = np.random.default_rng(20170825)  # Fashion-MNIST's release date
    trx, try_ = balanced(a["train_x"], a["train_y"], 500, rng)
    tex, tey = balanced(a["test_x"], a["test_y"], 100, rng)
    data.SUBSET_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(data.SUBSET_PATH, train_x=trx, train_y=try_, test_x=tex, test_y=tey)
    print(f"wrote {data.SUBSET_PATH} ({data.SUBSET_PATH.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
