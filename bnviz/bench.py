"""Training throughput of bnviz's Trainer next to reference loops, on one machine, in one run.

bnviz: `Trainer(cfg, listeners).run()` with its usual epoch-end evaluation. d2l: train_ch6 as
d2l writes it (DataLoader, `.to(device)` and float() metrics per batch, test accuracy through
a DataLoader too). plain: tensors resident on the device, randperm indexing, no host syncs,
nn.AvgPool2d and the system allocator — what a careful user writes. plain_tuned: the same loop
with bnviz's allocator setting (bnviz/perf.py), to show how much of the gap that alone is.
d2l_book: the d2l loop over the data pipeline the book uses (torchvision's FashionMNIST and
ToTensor: a PIL image per example); skipped where PIL is missing.

Each timed epoch runs in a fresh child process (`python -m bnviz.bench --child LOOP`), so that
one loop's process-wide settings (allocator, torch threads, forked workers) cannot leak into
another's; rounds rotate the loop order so that drift on a shared machine hits all alike.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
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

from . import data as data_mod
from .config import Config, make_config
from .evaluation import EVAL_CHUNK  # the plain loop evaluates in the Trainer's chunks
from .model import build_lenet
from .perf import allocator, tune_allocator
from .trainer import Trainer, resolve_device

LOOPS = ("bnviz", "d2l", "d2l_book", "plain", "plain_tuned")
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

    s = Trainer(cfg.replace(epochs=1), [listener]).run()
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
    net = build_lenet(cfg, fast_pool=False).to(device)
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
    net = build_lenet(cfg, fast_pool=False).to(device)
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
    A fresh process's first run pays torch_first_optimizer_s on top of cold."""
    def once() -> float:
        stop, t = threading.Event(), {}

        def listener(e) -> None:
            if e.kind == "step" and "first" not in t:
                t["first"] = time.perf_counter()
                stop.set()  # one step is all we time; the run ends as "stopped"

        t0 = time.perf_counter()
        Trainer(cfg, [listener], stop=stop).run()
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
                warm_s=warm)


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
    workers = 0 if tiny else D2L_WORKERS
    # A host copy: the d2l loop's loaders read from host memory, as torchvision's do.
    ds = data_mod.load(cfg.dataset, cfg.train_size, "cpu", cfg.seed)
    w = WARMUP_EXAMPLES
    small = data_mod.Dataset(ds.train_x[:w], ds.train_y[:w], ds.test_x[:w], ds.test_y[:w],
                             ds.source, ds.origin)
    if loop == "bnviz":
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
                data=ds.description, data_source=ds.source, n_test=len(ds.test_y),
                # DataLoader workers are forked: Linux starts a child's peak at the parent's.
                peak_rss_mib=_maxrss_mib(resource.RUSAGE_SELF),
                peak_rss_children_mib=_maxrss_mib(resource.RUSAGE_CHILDREN))


def _spawn(what: str, tiny: bool, extra: list[str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "bnviz.bench", "--child", what] + (["--tiny"] if tiny else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p))
    r = subprocess.run(cmd + (extra or []), capture_output=True, text=True, env=env,
                       timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"bench child {what} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

APP_RENDER = """
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
t1 = time.perf_counter()
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
t2 = time.perf_counter()
errors = [e.value for e in at.exception]
at.switch_page("pages/lab.py")
at.run()
t3 = time.perf_counter()
errors += [e.value for e in at.exception]
print(json.dumps(dict(import_streamlit_s=t1 - t0, first_render_s=t2 - t1, lab_render_s=t3 - t2,
                      errors=errors)))
"""


def app_render_times() -> dict | None:
    """Seconds to import streamlit, render the app's landing page and then the live lab, in a
    fresh process through AppTest (no browser; benchmarks/lab_latency.py times a real one).
    None where streamlit or app.py is not there (the GPU machine has neither)."""
    if not os.path.isfile(os.path.join(_ROOT, "app.py")):
        return None
    try:
        import importlib.util
        if importlib.util.find_spec("streamlit") is None:
            return None
    except (ImportError, ValueError):
        return None
    env = dict(os.environ, BNVIZ_DB=os.path.join(tempfile.mkdtemp(prefix="bnviz-bench-"),
                                                 "runs.sqlite"))
    r = subprocess.run([sys.executable, "-c", APP_RENDER], cwd=_ROOT, capture_output=True,
                       text=True, env=env, timeout=300)
    if r.returncode != 0:
        return dict(error=r.stderr[-500:])
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- driver -----------------------------------------------------------------------------
def _summarise(runs: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in runs) for k in ("epoch_s", "train_s", "eval_s")}
    n = runs[0]["n_train"]
    fast, slow = min(r["epoch_s"] for r in runs), max(r["epoch_s"] for r in runs)
    # On a shared machine the fastest epoch is the least disturbed one; spread shows noise.
    out = dict(n_train=n, **med, examples_per_sec=n / med["epoch_s"],
               train_examples_per_sec=n / med["train_s"], best_examples_per_sec=n / fast,
               spread=slow / fast,
               test_acc=statistics.median(r["test_acc"] for r in runs),
               allocator=runs[0]["allocator"], threads=runs[0]["threads"],
               peak_rss_mib=max(r["peak_rss_mib"] for r in runs), runs=runs)
    if "reported_examples_per_sec" in runs[0]:
        out["reported_examples_per_sec"] = statistics.median(
            r["reported_examples_per_sec"] for r in runs)
    return out


def run_bench(tiny: bool = False, epochs: int = 1, log=print) -> dict:
    cfg = bench_config(tiny)
    device = resolve_device(cfg.device)
    workers = 0 if tiny else D2L_WORKERS
    log(f"bench: {'tiny' if tiny else 'full'} mode on {device}; every epoch in a fresh process")
    # First, before anything else has warmed the data path.
    first_step = _spawn("first_step", tiny)
    loops_here = tuple(k for k in LOOPS if k != "d2l_book" or has_pil())
    runs: dict[str, list[dict]] = {k: [] for k in loops_here}
    for r in range(epochs):
        order = loops_here[r % len(loops_here):] + loops_here[:r % len(loops_here)]
        for name in order:
            runs[name].append({**_spawn(name, tiny), "loadavg_1m": os.getloadavg()[0]})
            log(f"bench: round {r + 1}/{epochs} {name:11s} {runs[name][-1]['epoch_s']:.2f} s")
    loops = {k: _summarise(v) for k, v in runs.items()}
    app = app_render_times()
    ratio = lambda key, a, b: loops[a][key] / loops[b][key]  # noqa: E731
    ratios = {}
    for ref in (k for k in loops if k != "bnviz"):
        ratios[f"bnviz_over_{ref}"] = ratio("examples_per_sec", "bnviz", ref)
        ratios[f"train_bnviz_over_{ref}"] = ratio("train_examples_per_sec", "bnviz", ref)
        ratios[f"best_bnviz_over_{ref}"] = ratio("best_examples_per_sec", "bnviz", ref)
    one = runs["bnviz"][0]
    return dict(
        mode="tiny" if tiny else "full", epochs=epochs, device=str(device),
        torch=torch.__version__, threads=one["threads"], cpus=os.cpu_count(),
        machine=f"{platform.system()} {platform.release()} {platform.machine()}",
        data=one["data"], data_source=one["data_source"],
        n_train=one["n_train"], n_test=one["n_test"], batch_size=cfg.batch_size,
        d2l_workers=workers, loops=loops, ratios=ratios, first_step=first_step, app=app,
        ten_epochs_estimate_s=10 * loops["bnviz"]["epoch_s"],
        peak_rss_mib=loops["bnviz"]["peak_rss_mib"],
        peak_rss_children_mib=max(r["peak_rss_children_mib"] for r in runs["d2l"]))


def format_report(res: dict) -> str:
    lines = [f"{res['mode']} benchmark on {res['device']} ({res['threads']} torch threads, "
             f"{res['cpus']} CPUs), {res['data']}, batch {res['batch_size']}, "
             f"median of {res['epochs']} epoch(s) per loop, each in a fresh process",
             f"{'loop':11s} {'epoch s':>8s} {'train s':>8s} {'eval s':>7s} {'examples/s':>11s} "
             f"{'train ex/s':>11s} {'best ex/s':>10s} {'spread':>6s} {'test acc':>8s}  allocator"]
    for name, s in res["loops"].items():
        lines.append(f"{name:11s} {s['epoch_s']:8.2f} {s['train_s']:8.2f} {s['eval_s']:7.2f} "
                     f"{s['examples_per_sec']:11,.0f} {s['train_examples_per_sec']:11,.0f} "
                     f"{s['best_examples_per_sec']:10,.0f} {s['spread']:6.2f} "
                     f"{s['test_acc']:8.3f}  {s['allocator']}")
    r, f = res["ratios"], res["first_step"]
    lines += [f"bnviz's own examples_per_sec: "
              f"{res['loops']['bnviz']['reported_examples_per_sec']:,.0f} (steps only)"]
    for label, pre in (("examples/s, epoch incl. eval", ""), ("training steps only", "train_"),
                       ("fastest epoch of each loop", "best_")):
        lines.append(f"ratios ({label}):".ljust(40) + ", ".join(
            f"bnviz/{ref} {r[f'{pre}bnviz_over_{ref}']:.2f}"
            for ref in res["loops"] if ref != "bnviz"))
    lines += [f"10 epochs of this config, from the median epoch: "
              f"{res['ten_epochs_estimate_s']:.0f} s",
              f"first Step after Trainer start: cold {f['cold_s']:.2f} s, .npy cache "
              f"{f['npy_cache_s']:.2f} s, warm {f['warm_s']:.2f} s (+ "
              f"{f['torch_first_optimizer_s']:.2f} s once per process: torch's first "
              f"optimizer imports torch._dynamo)"]
    app = res.get("app")
    if app and "error" not in app:
        lines.append(f"app: import streamlit {app['import_streamlit_s']:.2f} s, first render "
                     f"{app['first_render_s']:.2f} s, live lab render {app['lab_render_s']:.2f} s"
                     f" (AppTest, fresh process)")
    elif app:
        lines.append(f"app: render failed: {app['error'].strip().splitlines()[-1]}")
    lines.append(f"peak RSS: {res['peak_rss_mib']:.0f} MiB (bnviz loop's process); largest "
                 f"d2l DataLoader worker {res['peak_rss_children_mib']:.0f} MiB (counts pages "
                 f"shared at fork)")
    if max(s["spread"] for s in res["loops"].values()) > 1.3:
        lines.append("warning: epochs of one loop differ by over 30%: the machine was busy; "
                     "trust the fastest-epoch ratios more than the medians")
    return "\n".join(lines)


def main(tiny: bool = False, out: str | None = None, epochs: int = 1) -> int:
    res = run_bench(tiny=tiny, epochs=epochs, log=lambda m: print(m, file=sys.stderr))
    print(format_report(res))
    if out:
        with open(out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


def _child_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bnviz.bench",
                                 description="one timed loop of `python -m bnviz bench`")
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
