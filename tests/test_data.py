import gzip
import struct

import numpy as np
import pytest

from bnviz import data


def write_idx(path, arr):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"train_x": rng.integers(0, 256, (40, 28, 28)), "train_y": rng.integers(0, 10, 40),
              "test_x": rng.integers(0, 256, (12, 28, 28)), "test_y": rng.integers(0, 10, 12)}
    for k, name in data.FILES.items():
        write_idx(tmp_path / name, arrays[k])
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    data.clear_caches()
    yield tmp_path, arrays
    data.clear_caches()


def test_loads_idx_files_from_env_dir_and_caches(idx_dir):
    path, arrays = idx_dir
    ds = data.load("full")
    assert ds.source == "full" and str(path) in ds.origin
    assert ds.train_x.shape == (40, 1, 28, 28) and ds.test_y.shape == (12,)
    assert np.allclose(ds.train_x[3, 0].numpy() * 255, arrays["train_x"][3])
    assert ds.train_x.max() <= 1.0
    cached = list((path / "cache").rglob("*.npy"))
    assert len(cached) == 4
    data.clear_caches()
    again = data.load("full")  # from the decoded cache this time
    assert np.array_equal(again.train_y.numpy(), arrays["train_y"])


def test_train_size_takes_a_seeded_subset(idx_dir):
    a, b = data.load("full", train_size=10, seed=3), data.load("full", train_size=10, seed=3)
    assert len(a.train_y) == 10 and np.array_equal(a.train_y.numpy(), b.train_y.numpy())


def test_corrupt_file_gives_clear_error(idx_dir):
    path, _ = idx_dir
    (path / data.FILES["train_x"]).write_bytes(b"not a gzip file")
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz"):
        data.load("full")


def test_truncated_file_gives_clear_error(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((3, 2), np.uint8))
    raw = gzip.open(tmp_path / "x.gz").read()[:-2]
    (tmp_path / "y").write_bytes(raw)
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(tmp_path / "y")


def test_missing_full_set_falls_back_or_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BNVIZ_OFFLINE", "1")
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    data.clear_caches()
    ds = data.load("auto")
    assert ds.source == "subset" and "subset" in ds.description
    with pytest.raises(data.DataError, match="dataset-fashion-mnist") as e:
        data.load("full")
    assert str(tmp_path / "nowhere") in str(e.value)


def test_bundled_subset_is_real_and_balanced():
    ds = data.load("subset")
    assert ds.train_x.shape == (5000, 1, 28, 28) and len(ds.test_y) == 1000
    assert np.bincount(ds.train_y.numpy()).tolist() == [500] * 10
    assert 0.2 < float(ds.train_x.mean()) < 0.4  # real clothing images, not noise
