"""Fashion-MNIST from IDX files, decoded once, cached, and served as device tensors.

Search order for the full set: $BNVIZ_DATA_DIR, the user cache, Debian's
dataset-fashion-mnist package, then a checksummed download (only when online, and never on a
hosted server: BNVIZ_HOSTED=1).
A small real subset ships inside the package so everything works with none of those.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bnviz.i18n import N_, _

FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
# md5 sums published in zalandoresearch/fashion-mnist's README.
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
DOWNLOAD_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SUBSET_PATH = Path(__file__).parent / "datasets" / "fashion_mnist_subset.npz"
# The errors below are in the reader's language where a page raises them (English in the CLI
# and in training threads, which record them with the run); these two are English, shown with _().
HOW_TO_GET = N_("install Debian's package (apt-get install dataset-fashion-mnist), or put the "
                "four IDX .gz files in a folder named by BNVIZ_DATA_DIR")
HOSTED_NO_DOWNLOAD = N_("this is a hosted server (BNVIZ_HOSTED=1), which never downloads the "
                        "data set: its operator installs it")
SIZES = {"full": (60000, 10000), "subset": (5000, 1000)}  # train, test images


def sizes(which: str) -> tuple[int, int]:
    """(train, test) images of the set `which` resolves to here, without loading it."""
    return SIZES[resolve_source(which)]


def may_download() -> bool:
    """Whether a missing full set may be fetched: not offline, not on a hosted server, not
    on a server told to use the subset only."""
    return (os.environ.get("BNVIZ_OFFLINE") != "1" and os.environ.get("BNVIZ_HOSTED") != "1"
            and os.environ.get("BNVIZ_DATA") != "subset")


class DataError(RuntimeError):
    """The data could not be found or read; the message says what was looked for."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("BNVIZ_CACHE_DIR") or Path(base) / "bnviz")


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file (gzip or raw): magic, dims, then big-endian uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(_("cannot read {path}: {error}; it may be corrupt — {how}").format(
            path=path, error=e, how=_(HOW_TO_GET))) from e
    if len(data) < 4:
        raise DataError(_("{path} is too short to be an IDX file").format(path=path))
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(_("{path} is not an IDX file of unsigned bytes (magic {magic})")
                        .format(path=path, magic=data[:4].hex()))
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(_("{path} is truncated: header says {dims}, found {size} bytes")
                        .format(path=path, dims=dims, size=body.size))
    return body.reshape(dims).copy()  # writable, so torch can share it


def candidate_dirs() -> list[tuple[str, Path]]:
    dirs = []
    if os.environ.get("BNVIZ_DATA_DIR"):
        dirs.append(("$BNVIZ_DATA_DIR", Path(os.environ["BNVIZ_DATA_DIR"])))
    dirs.append((N_("user cache"), cache_dir() / "fashion-mnist"))
    dirs.append((N_("Debian package"), DEBIAN_DIR))
    return dirs


def find_full() -> Path | None:
    """Where the full Fashion-MNIST is, or None. BNVIZ_DATA=subset makes a server use only the
    bundled subset even where the full set is installed (a small demo; the tests of a fresh
    machine)."""
    if os.environ.get("BNVIZ_DATA") == "subset":
        return None
    for _, d in candidate_dirs():
        if all((d / name).is_file() for name in FILES.values()):
            return d
    return None


def download(dest: Path, timeout: float = 10.0) -> Path:
    """Fetch the official files into `dest`, verifying each md5; DataError when offline."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        target = dest / name
        if target.is_file():
            continue
        try:
            with urllib.request.urlopen(DOWNLOAD_URL + name, timeout=timeout) as r:
                blob = r.read()
        except OSError as e:
            raise DataError(_("could not download {name} ({error}); {how}").format(
                name=name, error=e, how=_(HOW_TO_GET))) from e
        if hashlib.md5(blob).hexdigest() != MD5[name]:
            raise DataError(_("downloaded {name} fails its checksum; not used").format(
                name=name))
        tmp = target.with_suffix(".part")
        tmp.write_bytes(blob)
        tmp.replace(target)
    return dest


def _decoded_cache(src: Path) -> Path:
    key = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:10]
    return cache_dir() / f"fashion-mnist-{key}.npy.d"


def load_arrays(src: Path) -> dict[str, np.ndarray]:
    """Decode the four IDX files, caching the raw uint8 arrays as .npy for fast warm loads."""
    cdir = _decoded_cache(src)
    if all((cdir / f"{k}.npy").is_file() for k in FILES):
        try:
            return {k: np.load(cdir / f"{k}.npy") for k in FILES}
        except (OSError, ValueError):
            pass  # a broken cache is rebuilt below
    arrays = {k: read_idx(src / name) for k, name in FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise DataError(_("{src}: {split} images and labels differ in count").format(
                src=src, split=split))
    try:
        cdir.mkdir(parents=True, exist_ok=True)
        for k, a in arrays.items():
            tmp = cdir / f"{k}.tmp.npy"
            np.save(tmp, a)
            tmp.replace(cdir / f"{k}.npy")
    except OSError:
        pass  # read-only cache: still works, just slower next time
    return arrays


@dataclass
class Dataset:
    train_x: torch.Tensor  # float32 (N, 1, 28, 28) in [0, 1], on the training device
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # "full" or "subset"
    origin: str  # where the files came from, for people

    @property
    def description(self) -> str:
        n, m = len(self.train_y), len(self.test_y)
        what = "full Fashion-MNIST" if self.source == "full" else "bundled Fashion-MNIST subset"
        return f"{what}: {n:,} train / {m:,} test images ({self.origin})"


_lock = threading.Lock()
_memo: dict[tuple, dict[str, np.ndarray]] = {}


def _arrays(which: str) -> tuple[dict[str, np.ndarray], str, str]:
    if which in ("auto", "full"):
        src = find_full()
        if src is None and which == "full" and may_download():
            src = download(cache_dir() / "fashion-mnist")
        if src is not None:
            with _lock:
                if ("full", src) not in _memo:
                    _memo[("full", src)] = load_arrays(src)
                return _memo[("full", src)], "full", str(src)
        if which == "full":
            looked = ", ".join(f"{_(label)} ({p})" for label, p in candidate_dirs())
            if os.environ.get("BNVIZ_HOSTED") == "1":
                text = _("full Fashion-MNIST not found; looked in {looked}; {hosted}; {how}")
            else:
                text = _("full Fashion-MNIST not found; looked in {looked}; {how}")
            raise DataError(text.format(looked=looked, hosted=_(HOSTED_NO_DOWNLOAD),
                                        how=_(HOW_TO_GET)))
    if not SUBSET_PATH.is_file():
        raise DataError(_("the bundled subset {path} is missing; reinstall bnviz").format(
            path=SUBSET_PATH))
    with _lock:
        if ("subset",) not in _memo:
            with np.load(SUBSET_PATH) as z:
                _memo[("subset",)] = {k: z[k] for k in FILES}
        return _memo[("subset",)], "subset", "bundled with bnviz"


_tensors: dict[tuple, Dataset] = {}  # the last few float datasets, so a rerun starts at once


def load(which: str = "auto", train_size: int = 0, device: str | torch.device = "cpu",
         seed: int = 0) -> Dataset:
    """Load Fashion-MNIST as float tensors on `device`.

    train_size > 0 keeps a random (seeded) class-mixed subset of the training images.
    Datasets are read-only by contract: the trainer only indexes them, so they are shared.
    """
    key = (which, train_size, seed if train_size else 0, str(device), find_full())
    with _lock:
        if key in _tensors:
            return _tensors[key]
    ds = _load(which, train_size, device, seed)
    with _lock:
        _tensors[key] = ds
        while len(_tensors) > 3:
            _tensors.pop(next(iter(_tensors)))
    return ds


def _load(which: str, train_size: int, device, seed: int) -> Dataset:
    arrays, source, origin = _arrays(which)
    tx, ty = arrays["train_x"], arrays["train_y"]
    if train_size and train_size < len(ty):
        idx = np.random.default_rng(seed).permutation(len(ty))[:train_size]
        tx, ty = tx[idx], ty[idx]

    def images(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
        return t.to(torch.float32).div_(255.0).unsqueeze(1)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64)).to(device)

    return Dataset(images(tx), labels(ty), images(arrays["test_x"]),
                   labels(arrays["test_y"]), source, origin)


def resolve_source(which: str) -> str:
    """What `which` ("auto", "full", "subset") will load on this machine, without loading."""
    if which == "auto":
        return "full" if find_full() else "subset"
    return which


def clear_caches() -> None:
    """Forget every decoded array and tensor held in memory (the .npy cache stays)."""
    with _lock:
        _memo.clear()
        _tensors.clear()
