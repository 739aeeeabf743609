"""Fused CPU kernels for the block LeNet-BN repeats after each convolution: BatchNorm in
training mode → sigmoid → 2×2 mean pooling, forward and backward (the C is in fused.c).

PyTorch runs that block as separate passes (batch_norm, sigmoid, pooling, and three more
backward), each streaming a tensor bigger than the core's cache through memory; the fused
kernel reads each channel once and does the rest from cache. Same maths within float
rounding: tests/test_fused.py compares it with nn.BatchNorm2d → nn.Sigmoid → nn.AvgPool2d.

The library is compiled on first use with the machine's C compiler (a fraction of a second;
plain C and OpenMP, no PyTorch headers) into bnviz's cache folder, then checked against
PyTorch on a small batch. Without a compiler, off Linux, with BNVIZ_FUSED=0, or if that check
fails, `status()` says why and LeNet runs PyTorch's own ops: slower, never wrong.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules import module as _module

SOURCE = Path(__file__).with_name("fused.c")
ABI_VERSION = 1
# -march=native: the library is built where it runs (the cache key includes the CPU's flags).
# -fno-math-errno lets expf vectorise through glibc's libmvec without -ffast-math.
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-fPIC", "-shared"]
OFF_VALUES = ("0", "off", "no", "false")
DOUBLE_BACKWARD = ("bnviz's fused BatchNorm → sigmoid → pool kernel has no double backward "
                   "(create_graph=True): set BNVIZ_FUSED=0, or build the model with "
                   "build_lenet(cfg)")

_lock = threading.Lock()
_loaded: tuple[ctypes.CDLL | None, str] | None = None  # (library or None, "on" / "off (why)")


def _get() -> tuple[ctypes.CDLL | None, str]:
    # Read on every training forward: no lock once loaded (one reference, read atomically).
    global _loaded
    loaded = _loaded
    if loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
            loaded = _loaded
    return loaded


def status() -> str:
    """'on' or 'off (why)', loading the library if that has not happened yet."""
    return _get()[1]


def library() -> ctypes.CDLL | None:
    return _get()[0]


def reset() -> None:
    """Forget the loaded state (tests switch BNVIZ_FUSED and reload)."""
    global _loaded
    with _lock:
        _loaded = None


def compiler() -> str | None:
    """The C compiler the kernels are built with: $CC, else cc or gcc on PATH."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cache_dir() -> Path:
    from bnviz.data import cache_dir
    return cache_dir() / "fused"


# The /proc/cpuinfo lines that say which instructions a -march=native build may use: x86 names
# the model and its flags, ARM its implementer, part and features.
CPU_LINES = ("model name", "flags", "Features", "CPU implementer", "CPU architecture",
             "CPU part", "CPU variant")


def _cpu_id() -> str:
    """What identifies this CPU's instruction set; '' if nothing does (then the build is
    portable instead of -march=native, so that a shared cache can never hold a library
    that another CPU cannot run)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(sorted({ln for ln in text.splitlines() if ln.startswith(CPU_LINES)}))


def _flags(cpu: str) -> list[str]:
    return FLAGS if cpu else [f for f in FLAGS if f != "-march=native"]


def _compile(cc: str, flags: list[str], out: Path) -> str | None:
    """Build the library at `out`; returns None or the compiler's complaint."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run([cc, *flags, str(SOURCE), "-o", tmp, "-lm"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            lines = (r.stderr or r.stdout).strip().splitlines()
            errors = [ln for ln in lines if "error" in ln.lower()]
            return (errors or lines or [f"exit status {r.returncode}"])[0].strip()
        os.chmod(tmp, 0o755)  # mkstemp made it 0600: others sharing the cache must load it
        os.replace(tmp, out)  # atomic: another process may be building the same file
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load() -> tuple[ctypes.CDLL | None, str]:
    try:
        return _try_load()
    except Exception as e:  # noqa: BLE001 - whatever goes wrong, training goes on unfused
        return None, f"off ({type(e).__name__}: {e})"


def _try_load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("BNVIZ_FUSED", "").strip().lower() in OFF_VALUES:
        return None, "off (BNVIZ_FUSED=0)"
    if not sys.platform.startswith("linux"):
        return None, "off (the fused kernels are built on Linux only)"
    cc = compiler()
    if not cc:
        return None, "off (no C compiler: install gcc for faster CPU training)"
    cpu = _cpu_id()
    flags = _flags(cpu)
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), " ".join([cc, *flags]).encode(),
                                     cpu.encode()])).hexdigest()[:16]
    path = _cache_dir() / f"bnviz_fused-{key}.so"
    try:
        if not path.exists():
            err = _compile(cc, flags, path)
            if err:
                return None, f"off (compiling bnviz/speed/fused.c failed: {err})"
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        return None, f"off (cannot load the fused kernels: {e})"
    ptr, i64, f64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_double, ctypes.c_int
    lib.bsp_abi_version.restype = i32
    if lib.bsp_abi_version() != ABI_VERSION:
        return None, "off (a stale fused library: delete bnviz's cache folder)"
    lib.bsp_forward.argtypes = [ptr] * 9 + [i64] * 4 + [f64, f64, i32]
    lib.bsp_forward.restype = None
    lib.bsp_backward.argtypes = [ptr] * 9 + [i64] * 4 + [i32]
    lib.bsp_backward.restype = None
    why = _self_check(lib)
    return (None, f"off ({why})") if why else (lib, "on")


def _p(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _BNSigmoidPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, gamma, beta, run_mean, run_var, eps, factor, lib):
        n, c, h, w = z.shape
        s = torch.empty_like(z)  # sigmoid output, kept for backward (as nn.Sigmoid keeps it)
        out = z.new_empty(n, c, h // 2, w // 2)
        mean, invstd = z.new_empty(c), z.new_empty(c)
        lib.bsp_forward(_p(z), _p(s), _p(out), _p(gamma), _p(beta), _p(run_mean), _p(run_var),
                        _p(mean), _p(invstd), n, c, h, w, eps, factor, torch.get_num_threads())
        ctx.save_for_backward(z, s, gamma, mean, invstd)
        ctx.lib = lib
        return out

    @staticmethod
    def backward(ctx, g):
        if torch.is_grad_enabled():  # create_graph=True: the C code cannot be differentiated
            raise RuntimeError(DOUBLE_BACKWARD)
        z, s, gamma, mean, invstd = ctx.saved_tensors
        g = g.contiguous()
        n, c, h, w = z.shape
        gz = torch.empty_like(z)
        dgamma, dbeta = gamma.new_empty(c), gamma.new_empty(c)
        ctx.lib.bsp_backward(_p(g), _p(s), _p(z), _p(gamma), _p(mean), _p(invstd), _p(gz),
                             _p(dgamma), _p(dbeta), n, c, h, w, torch.get_num_threads())
        need = ctx.needs_input_grad
        return (gz if need[0] else None, dgamma if need[1] else None,
                dbeta if need[2] else None, None, None, None, None, None)


_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                 "_global_backward_hooks", "_global_backward_pre_hooks")
_OWN_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hooked(*mods: nn.Module) -> bool:
    if any(getattr(_module, g, None) for g in _GLOBAL_HOOKS):
        return True
    return any(getattr(mod, a, None) for mod in mods for a in _OWN_HOOKS)


def _plain_f32(t: torch.Tensor | None, n: int) -> bool:
    """A contiguous float32 CPU tensor of n elements: what the C code may read and write."""
    return (t is None or (t.device.type == "cpu" and t.dtype == torch.float32
                          and t.is_contiguous() and t.numel() == n))


def fusable(bn: nn.Module, act: nn.Module, pool_size: int | None, x: torch.Tensor,
            pool: nn.Module | None = None) -> bool:
    """True where bn → act → 2×2 pool can run as one fused kernel on x: nn.BatchNorm2d in
    training mode with gamma/beta, a sigmoid, float32 on the CPU, even-sized maps, no hooks
    on bn, act or the pool module (bnviz's probes hook modules to see their outputs; they get
    the unfused path)."""
    if not (type(bn) is nn.BatchNorm2d and bn.training and bn.affine
            and type(act) is nn.Sigmoid and pool_size is not None and pool_size % 2 == 0
            and x.dim() == 4 and x.shape[-2:] == (pool_size, pool_size) and x.shape[0] > 0
            and x.device.type == "cpu" and x.dtype == torch.float32
            and x.shape[1] == bn.num_features
            and not _hooked(bn, act, *([pool] if pool is not None else []))):
        return False
    c = bn.num_features
    tensors = (bn.weight, bn.bias, bn.running_mean, bn.running_var)
    return all(_plain_f32(t, c) for t in tensors) and library() is not None


def bn_sigmoid_pool(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """avg_pool2d(sigmoid(bn(x)), 2) with bn in training mode, fused. Updates bn's running
    statistics and num_batches_tracked as nn.BatchNorm2d.forward does."""
    factor = 0.0
    track = bn.track_running_stats and bn.running_mean is not None
    if track:
        bn.num_batches_tracked.add_(1)
        factor = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                  else float(bn.momentum))
    return _BNSigmoidPool.apply(x.contiguous(), bn.weight, bn.bias,
                                bn.running_mean if track else None,
                                bn.running_var if track else None,
                                float(bn.eps), factor, library())


def reference(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The same block with PyTorch's own ops."""
    return nn.functional.avg_pool2d(torch.sigmoid(bn(x)), 2, 2)


def _self_check(lib: ctypes.CDLL) -> str | None:
    """Run the kernels once against PyTorch on a small batch; a reason if they disagree.
    Whatever mode the first caller is in (no_grad, inference_mode), the check needs autograd."""
    with torch.inference_mode(False), torch.enable_grad():
        return _compare(lib)


def _compare(lib: ctypes.CDLL) -> str | None:
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 3, 6, 6, generator=gen) * 2 + 0.5).requires_grad_()
    g = torch.randn(5, 3, 3, 3, generator=gen)
    got, want = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    with torch.no_grad():
        for bn in (got, want):
            bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
            bn.bias.copy_(torch.tensor([-0.3, 0.0, 0.7]))
    y = _BNSigmoidPool.apply(x, got.weight, got.bias, got.running_mean, got.running_var,
                             got.eps, got.momentum, lib)
    y.backward(g)
    gx, x.grad = x.grad, None
    y_ref = reference(want, x)
    y_ref.backward(g)
    pairs = {"output": (y, y_ref), "input gradient": (gx, x.grad),
             "gamma gradient": (got.weight.grad, want.weight.grad),
             "beta gradient": (got.bias.grad, want.bias.grad),
             "running mean": (got.running_mean, want.running_mean),
             "running variance": (got.running_var, want.running_var)}
    for what, (a, b) in pairs.items():
        if a is None or not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            return f"self-check failed: the fused {what} differs from PyTorch's"
    return None
