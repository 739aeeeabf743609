"""The loops `benchmarks/bench.py` times, one per fresh process:
`python3 benchmarks/bench_loops.py --child LOOP [--tiny]` prints one JSON line.

bnviz: `Trainer(cfg, listeners).run()` with its usual epoch-end evaluation. bnviz_unfused:
the same with BNVIZ_FUSED=0 (PyTorch's ops for BatchNorm → sigmoid → pool). d2l: train_ch6 as
d2l writes it (DataLoader, `.to(device)` and float() metrics per batch, test accuracy through
a DataLoader too). d2l_book: the same over the book's data path (torchvision's FashionMNIST
and ToTensor: a PIL image per example); skipped where PIL is missing. plain: tensors resident
on the device, randperm indexing, no host syncs, nn.AvgPool2d and the system allocator — what
a careful user writes. plain_tuned: the same loop with bnviz's allocator setting (perf.py).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bnviz import data as data_mod  # noqa: E402
from bnviz.config import Config, make_config
from bnviz.evaluation import EVAL_CHUNK  # the plain loop evaluates in the Trainer's chunks
from bnviz.model import build_lenet
from bnviz.speed import fused
from bnviz.speed.perf import allocator, tune_allocator
from bnviz.speed.lenet import training_kwargs
from bnviz.trainer import Trainer, resolve_device

LOOPS = ("bnviz", "bnviz_unfused", "d2l", "d2l_book", "plain", "plain_tuned")
WARMUP_EXAMPLES = 1024  # four batches: first-use kernel setup stays out of the timed rounds
D2L_WORKERS = 4  # d2l.get_dataloader_workers()


def bench_config(tiny: bool) -> Config:
    if tiny:
        return make_config("d2l-lenet-bn", dataset="subset", train_size=1024, epochs=1)
    return make_config("d2l-lenet-bn", epochs=1)


def _sync(device: torch.device) -> None:
    # CUDA runs asynchronously: without this a timer would stop before the work has.
    if device.type == "cuda":
        torch.cuda.synchronize()


def _one_thread(_worker_id: int) -> None:
    # Four workers × N OpenMP threads on a small machine fight the training threads.
    # (DataLoader's worker loop already does this since PyTorch 1.x; kept to be explicit.)
    torch.set_num_threads(1)


# -- bnviz ------------------------------------------------------------------------------
def run_bnviz(cfg: Config) -> dict:
    """One Trainer run of one epoch, timed from its events (data loading is excluded)."""
    marks: dict[str, float] = {}

    def listener(e) -> None:
        marks[e.kind] = time.perf_counter()
        if e.kind == "started":
            marks["n_train"] = e.n_train

    s = Trainer(cfg.replace(epochs=1), [listener], **training_kwargs(cfg)).run()
    if s["status"] != "finished":
        raise RuntimeError(f"bnviz trainer {s['status']}: {s['reason']}")
    # The last Step is flushed just before the epoch-end evaluation, the Evaluation right after.
    return dict(n_train=int(marks["n_train"]), epoch_s=marks["epoch"] - marks["started"],
                train_s=marks["step"] - marks["started"], eval_s=marks["eval"] - marks["step"],
                test_acc=s["test_acc"], reported_examples_per_sec=s["examples_per_sec"],
                run_wall_s=s["wall_time"])


# -- d2l --------------------------------------------------------------------------------
class BookFashionMNIST(torch.utils.data.Dataset):
    """Per item, what d2l's `load_data_fashion_mnist` gets from torchvision's FashionMNIST with
    `transforms.ToTensor()`: a PIL image made from the uint8 array, then converted back to a
    float (1, 28, 28) tensor in [0, 1]. (torchvision itself cannot be installed beside this
    CPU build of torch here, so its two steps are written out.)"""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        from PIL import Image  # streamlit's dependency; the loop is skipped without it
        self._image = Image.fromarray
        self.data = (x[:, 0] * 255).round().to(torch.uint8)  # torchvision keeps uint8 (N, 28, 28)
        self.targets = y

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        img = self._image(self.data[i].numpy(), mode="L")  # FashionMNIST.__getitem__
        t = torch.from_numpy(np.array(img, np.uint8, copy=True))  # ToTensor from here on
        t = t.view(img.size[1], img.size[0], 1).permute(2, 0, 1).contiguous()
        return t.to(torch.float32).div(255), int(self.targets[i])


def has_pil() -> bool:
    import importlib.util
    return importlib.util.find_spec("PIL") is not None


def d2l_loaders(ds: data_mod.Dataset, batch_size: int, workers: int, book: bool = False):
    kw = dict(batch_size=batch_size, num_workers=workers,
              worker_init_fn=_one_thread if workers else None)
    wrap = BookFashionMNIST if book else TensorDataset
    return (DataLoader(wrap(ds.train_x, ds.train_y), shuffle=True, **kw),
            DataLoader(wrap(ds.test_x, ds.test_y), shuffle=False, **kw))


def d2l_accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    cmp = y_hat.argmax(axis=1).type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())  # a host sync per batch, as in d2l


def run_d2l(cfg: Config, ds: data_mod.Dataset, device: torch.device, workers: int,
            book: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    net = build_lenet(cfg).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    loss = nn.CrossEntropyLoss()
    train_iter, test_iter = d2l_loaders(ds, cfg.batch_size, workers, book)
    t0 = time.perf_counter()
    metric = [0.0, 0.0, 0.0]  # d2l.Accumulator(3): loss sum, correct, examples
    net.train()
    for X, y in train_iter:  # workers start here, every epoch (no persistent_workers in d2l)
        opt.zero_grad()
        X, y = X.to(device), y.to(device)
        y_hat = net(X)
        l = loss(y_hat, y)
        l.backward()
        opt.step()
        with torch.no_grad():
            metric = [a + float(b) for a, b in
                      zip(metric, (l * X.shape[0], d2l_accuracy(y_hat, y), X.shape[0]))]
    t1 = time.perf_counter()
    net.eval()
    acc = [0.0, 0.0]
    with torch.no_grad():
        for X, y in test_iter:
            X, y = X.to(device), y.to(device)
            acc = [a + float(b) for a, b in zip(acc, (d2l_accuracy(net(X), y), y.numel()))]
    t2 = time.perf_counter()
    return dict(n_train=int(metric[2]), epoch_s=t2 - t0, train_s=t1 - t0, eval_s=t2 - t1,
                test_acc=acc[0] / acc[1], train_loss=metric[0] / metric[2])


# -- plain ------------------------------------------------------------------------------
def run_plain(cfg: Config, ds: data_mod.Dataset, device: torch.device) -> dict:
    x, y = ds.train_x.to(device), ds.train_y.to(device)
    tx, ty = ds.test_x.to(device), ds.test_y.to(device)
    torch.manual_seed(cfg.seed)
    net = build_lenet(cfg).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    n, bs = len(y), cfg.batch_size
    _sync(device)
    t0 = time.perf_counter()
    net.train()
    perm = torch.randperm(n, device=device)
    for i in range(0, n, bs):
        idx = perm[i:i + bs]
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    t1 = time.perf_counter()
    net.eval()
    with torch.no_grad():
        correct = sum((net(tx[i:i + EVAL_CHUNK]).argmax(1) == ty[i:i + EVAL_CHUNK]).sum()
                      for i in range(0, len(ty), EVAL_CHUNK))
        test_acc = float(correct) / len(ty)
    t2 = time.perf_counter()
    return dict(n_train=n, epoch_s=t2 - t0, train_s=t1 - t0, eval_s=t2 - t1, test_acc=test_acc)


# -- start-up ---------------------------------------------------------------------------
def time_to_first_step(cfg: Config) -> dict:
    """Seconds from Trainer.run() to its first Step event: cold (no in-process memo, no .npy
    decode cache on disk), npy (decode cache on disk, memo cleared), warm (both present).
    A fresh process's first run pays torch_first_optimizer_s on top of cold, and a fresh
    machine's first run fused_build_s (compiling the fused kernels)."""
    def once() -> float:
        stop, t = threading.Event(), {}

        def listener(e) -> None:
            if e.kind == "step" and "first" not in t:
                t["first"] = time.perf_counter()
                stop.set()  # one step is all we time; the run ends as "stopped"

        t0 = time.perf_counter()
        Trainer(cfg, [listener], stop=stop, **training_kwargs(cfg)).run()
        if "first" not in t:
            raise RuntimeError("the trainer emitted no Step event")
        return t["first"] - t0

    # The first optimizer built in a process imports torch._dynamo (~1-2 s on a slow CPU);
    # timed apart so that "cold" below is about bnviz's data path, not torch's lazy imports.
    t0 = time.perf_counter()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    torch_first = time.perf_counter() - t0
    old = os.environ.get("BNVIZ_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bnviz-bench-") as tmp:
        os.environ["BNVIZ_CACHE_DIR"] = tmp
        try:
            # Building the fused kernels happens once per machine (then they are cached):
            # timed apart too, before the runs, which then find them loaded.
            fused.reset()
            t0 = time.perf_counter()
            fused_status = fused.status()
            fused_build = time.perf_counter() - t0
            data_mod.clear_caches()
            cold = once()
            data_mod.clear_caches()
            npy = once()
            warm = once()
        finally:
            os.environ.pop("BNVIZ_CACHE_DIR")
            if old is not None:
                os.environ["BNVIZ_CACHE_DIR"] = old
    return dict(torch_first_optimizer_s=torch_first, cold_s=cold, npy_cache_s=npy,
                warm_s=warm, fused_build_s=fused_build, fused=fused_status)


# -- children ---------------------------------------------------------------------------
def _maxrss_mib(who: int) -> float:
    rss = resource.getrusage(who).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def run_child(loop: str, tiny: bool) -> dict:
    """One timed epoch of one loop, after four warm-up batches; called in a fresh process."""
    cfg = bench_config(tiny)
    device = resolve_device(cfg.device)
    if loop == "first_step":
        return time_to_first_step(cfg)
    if loop == "plain_tuned":
        tune_allocator()  # the bnviz loop's Trainer does this itself
    if loop == "bnviz_unfused":
        os.environ["BNVIZ_FUSED"] = "0"  # read when the library is first asked for
    workers = 0 if tiny else D2L_WORKERS
    # A host copy: the d2l loop's loaders read from host memory, as torchvision's do.
    ds = data_mod.load(cfg.dataset, cfg.train_size, "cpu", cfg.seed)
    w = WARMUP_EXAMPLES
    small = data_mod.Dataset(ds.train_x[:w], ds.train_y[:w], ds.test_x[:w], ds.test_y[:w],
                             ds.source, ds.origin)
    if loop in ("bnviz", "bnviz_unfused"):
        run_bnviz(cfg.replace(train_size=min(w, len(ds.train_y))))
        res = run_bnviz(cfg)
    elif loop in ("d2l", "d2l_book"):
        book = loop == "d2l_book"
        run_d2l(cfg, small, device, workers, book)
        res = run_d2l(cfg, ds, device, workers, book)
    elif loop in ("plain", "plain_tuned"):
        run_plain(cfg, small, device)
        res = run_plain(cfg, ds, device)
    else:
        raise ValueError(f"unknown loop {loop!r}")
    return dict(res, allocator=allocator(), threads=torch.get_num_threads(),
                fused=fused.status() if loop.startswith("bnviz") else "off (PyTorch's ops)",
                data=ds.description, data_source=ds.source, n_test=len(ds.test_y),
                # DataLoader workers are forked: Linux starts a child's peak at the parent's.
                peak_rss_mib=_maxrss_mib(resource.RUSAGE_SELF),
                peak_rss_children_mib=_maxrss_mib(resource.RUSAGE_CHILDREN))


def _child_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/bench_loops.py",
                                 description="one timed loop of benchmarks/bench.py")
    ap.add_argument("--child", required=True, choices=LOOPS + ("first_step",))
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args(argv)
    threads = os.environ.get("BNVIZ_TORCH_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    with warnings.catch_warnings():
        # d2l's 4 workers exceed this machine's cores on purpose: that is what is measured.
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        res = run_child(a.child, a.tiny)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
