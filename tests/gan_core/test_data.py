"""Tests for gan_core.data: every loader on small files in the real formats, never the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import struct
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from gan_core import data
from gan_core.config import ConfigError, DataConfig
from gan_core.data import (
    DATASETS,
    MIXTURE_SEED,
    DataError,
    Dataset,
    grid_centers,
    load_dataset,
    ring_centers,
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def load(**values: object) -> Dataset:
    return load_dataset(DataConfig(**values))  # type: ignore[arg-type]


# --- writers for the real on-disk formats ----------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, gz: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        raw = idx_bytes(array)
        path = folder / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw) if gz else raw)
        paths.append(path)
    return paths


def mnist_like(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = 255
    images[:, 5, 7] = np.arange(n)
    return images, np.arange(n, dtype=np.uint8) % 10


def cifar_record(label: int, rgb: tuple[int, int, int]) -> bytes:
    return bytes([label]) + b"".join(bytes([value]) * 1024 for value in rgb)


def write_cifar(root: Path, per_batch: int = 2) -> Path:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        records = [cifar_record((b + i) % 10, (255, 0, b * 10)) for i in range(per_batch)]
        (folder / f"data_batch_{b}.bin").write_bytes(b"".join(records))
    return folder


def png_bytes(mode: str, size: tuple[int, int], color: int | tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, mode: str = "L", size: tuple[int, int] = (6, 6), color=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(mode, size, color))
    return path


# --- registry and options --------------------------------------------------------------------


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"data\.name.*'nope'") as err:
        load(name="nope")
    for name in DATASETS:
        assert name in str(err.value)


def test_registry_matches_config_comment() -> None:
    expected = {"ring", "grid", "digits", "mnist", "fashion_mnist", "cifar10"}
    assert expected | {"npy", "parquet", "images"} == set(DATASETS)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "digits", "n_points": 10}, "n_points"),
        ({"name": "grid", "radius": 2.0}, "radius"),
        ({"name": "ring", "image_size": 32}, "image_size"),
        ({"name": "npy", "path": "x.npy", "download": True}, "download"),
        ({"name": "mnist", "fresh": True}, "fresh"),
        ({"name": "images", "path": ".", "column": "x"}, "column"),
    ],
)
def test_option_that_does_not_apply_is_rejected(values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"data\.{field}: does not apply"):
        load(**values)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"n_points": 0}, "n_points"),
        ({"modes": 0}, "modes"),
        ({"std": -0.1}, "std"),
        ({"radius": 0.0}, "radius"),
        ({"name": "digits", "image_size": 0}, "image_size"),
    ],
)
def test_bad_values_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"data\.{field}"):
        load(**values)


# --- Gaussian mixtures -----------------------------------------------------------------------


def test_ring_centers_have_no_duplicate_angle() -> None:
    centers = ring_centers(8, 1.0).double()
    angles = torch.atan2(centers[:, 1], centers[:, 0]) % (2 * math.pi)
    expected = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    assert torch.allclose(angles, expected, atol=1e-6)
    assert torch.allclose(centers.norm(dim=1), torch.ones(8, dtype=torch.float64))
    distances = torch.cdist(centers, centers) + torch.eye(8, dtype=torch.float64)
    assert distances.min() > 0.7  # neighbours are 2 sin(pi/8) ~ 0.765 apart, none coincide


def test_grid_centers_are_minus_four_to_four_step_two() -> None:
    centers = grid_centers()
    assert centers.shape == (25, 2)
    coords = [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert {tuple(c) for c in centers.tolist()} == {(a, b) for a in coords for b in coords}


@pytest.mark.parametrize(("name", "modes", "std"), [("ring", 8, 0.01), ("grid", 25, 0.05)])
def test_mixture_defaults_match_pacgan(name: str, modes: int, std: float) -> None:
    ds = load(name=name)
    assert ds.kind == "points" and ds.sample_shape == (2,)
    assert ds.x.shape == (100_000, 2) and ds.x.dtype == torch.float32
    assert ds.y is not None and ds.y.dtype == torch.int64
    assert ds.num_classes == modes and ds.centers is not None and len(ds.centers) == modes
    assert ds.std == std and not ds.fresh
    assert set(ds.y.unique().tolist()) == set(range(modes))
    residual = ds.x - ds.centers[ds.y]  # labels are mode indices
    assert residual.std(dim=0) == pytest.approx([std, std], rel=0.03)
    assert residual.mean(dim=0).abs().max() < 0.1 * std


def test_mixture_overrides() -> None:
    ring = load(name="ring", modes=6, std=0.1, radius=2.0, n_points=500)
    assert ring.centers is not None and ring.centers.norm(dim=1) == pytest.approx([2.0] * 6)
    assert ring.std == 0.1 and ring.x.shape == (500, 2) and ring.num_classes == 6
    grid = load(name="grid", modes=3, n_points=10)
    assert grid.centers is not None and set(grid.centers[:, 0].tolist()) == {-2.0, 0.0, 2.0}


def test_mixture_points_are_fixed_and_independent_of_the_run() -> None:
    a, b = load(n_points=1000), load(n_points=1000)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.cache_key == b.cache_key
    generator = torch.Generator().manual_seed(MIXTURE_SEED)
    x, _ = a.sample(1000, generator)
    assert torch.equal(x, a.x)  # documented: the fixed set is the MIXTURE_SEED stream
    assert load(n_points=1001).cache_key != a.cache_key


def test_mixture_is_identical_in_a_fresh_process() -> None:
    code = (
        "from gan_core.config import DataConfig; from gan_core.data import load_dataset; "
        "print(load_dataset(DataConfig(name='grid', n_points=5000)).cache_key)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == load(name="grid", n_points=5000).cache_key  # hashes the tensors


def test_fresh_sampling_follows_the_given_generator() -> None:
    ds = load(name="grid", fresh=True, n_points=10)
    assert ds.fresh
    x1, y1 = ds.sample(64, torch.Generator().manual_seed(3))
    x2, y2 = ds.sample(64, torch.Generator().manual_seed(3))
    x3, _ = ds.sample(64, torch.Generator().manual_seed(4))
    assert x1.shape == (64, 2) and y1.shape == (64,) and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert ds.centers is not None and (x1 - ds.centers[y1]).abs().max() < 0.5


def test_sample_refuses_non_mixtures() -> None:
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        load(name="digits").sample(4, torch.Generator())


# --- digits ----------------------------------------------------------------------------------


def test_digits_scaled_with_labels_and_resizable() -> None:
    ds = load(name="digits")
    assert ds.x.shape == (1797, 1, 8, 8) and ds.kind == "images"
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0  # 0 -> -1, 16 -> 1
    assert ds.num_classes == 10 and ds.y is not None and set(ds.y.tolist()) == set(range(10))
    big = load(name="digits", image_size=16)
    assert big.x.shape == (1797, 1, 16, 16) and big.x.abs().max() <= 1.0
    assert big.cache_key != ds.cache_key


# --- MNIST / Fashion-MNIST (IDX) -------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_load_and_scale(tmp_path: Path, name: str, gz: bool) -> None:
    images, labels = mnist_like()
    write_idx(tmp_path / name, images, labels, gz)
    ds = load(name=name, path=str(tmp_path))
    assert ds.x.shape == (6, 1, 28, 28) and ds.num_classes == 10
    assert ds.y is not None and ds.y.tolist() == labels.tolist()
    assert ds.x[:, 0, 0, 0].tolist() == [1.0] * 6  # 255 -> 1
    assert ds.x[:, 0, 1, 1].tolist() == [-1.0] * 6  # 0 -> -1
    assert ds.x[3, 0, 5, 7].item() == pytest.approx(3 / 127.5 - 1)
    assert torch.equal(load(name=name, path=str(tmp_path)).x, ds.x)


def test_idx_torchvision_layout_and_default_root(tmp_path, monkeypatch) -> None:
    write_idx(tmp_path / "MNIST" / "raw", *mnist_like(), gz=True)
    monkeypatch.setenv("GANSWEEP_DATA", str(tmp_path))
    assert len(load(name="mnist").x) == 6


def test_idx_resize_28_to_32(tmp_path: Path) -> None:
    images = np.full((2, 28, 28), 255, np.uint8)
    write_idx(tmp_path / "mnist", images, np.array([1, 2], np.uint8), gz=False)
    ds = load(name="mnist", path=str(tmp_path), image_size=32)
    assert ds.x.shape == (2, 1, 32, 32) and ds.sample_shape == (1, 32, 32)
    assert torch.allclose(ds.x, torch.ones_like(ds.x))  # bilinear keeps a constant image


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "magic number"),
        (lambda raw: raw[:-10], "truncated or corrupt"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: b"", "magic number"),
    ],
    ids=["magic", "data", "header", "empty"],
)
def test_corrupt_idx_names_the_file(tmp_path: Path, corrupt, message: str) -> None:
    images_path, _ = write_idx(tmp_path / "mnist", *mnist_like(), gz=False)
    images_path.write_bytes(corrupt(images_path.read_bytes()))
    with pytest.raises(DataError, match=message) as err:
        load(name="mnist", path=str(tmp_path))
    assert str(images_path) in str(err.value)


def test_corrupt_gzip_and_count_mismatch(tmp_path: Path) -> None:
    images_path, labels_path = write_idx(tmp_path / "mnist", *mnist_like(), gz=True)
    images_path.write_bytes(images_path.read_bytes()[:40])
    with pytest.raises(DataError, match="corrupt gzip"):
        load(name="mnist", path=str(tmp_path))
    images, labels = mnist_like()
    write_idx(tmp_path / "mnist", images, labels[:4], gz=True)
    with pytest.raises(DataError, match="6 images but .* 4 labels"):
        load(name="mnist", path=str(tmp_path))


def test_missing_idx_without_download_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.download: true") as err:
        load(name="fashion_mnist", path=str(tmp_path))
    assert str(tmp_path / "fashion_mnist") in str(err.value)
    assert "zalandoresearch" in str(err.value) and not list(tmp_path.iterdir())


def test_download_verifies_md5_and_keeps_no_partial_file(tmp_path, monkeypatch) -> None:
    images, labels = mnist_like()
    payload = {
        "train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
        "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels)),
    }
    fetched: list[str] = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        dest.write_bytes(payload[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    with pytest.raises(DataError, match="md5") as err:  # our bytes are not the real MNIST
        load(name="mnist", path=str(tmp_path), download=True)
    assert "ossci-datasets" in str(err.value)
    assert not list((tmp_path / "mnist").iterdir())
    md5 = {name: hashlib.md5(raw).hexdigest() for name, raw in payload.items()}
    mirrors = ("https://mirror.invalid/a/", "https://mirror.invalid/b/")
    remote = data._Remote(("mnist",), mirrors, md5)
    monkeypatch.setitem(data._REMOTES, "mnist", remote)
    fetched.clear()
    ds = load(name="mnist", path=str(tmp_path), download=True)
    assert ds.y is not None and ds.y.tolist() == labels.tolist()
    assert fetched == ["https://mirror.invalid/a/" + n for n in payload]
    load(name="mnist", path=str(tmp_path), download=True)  # present now: no second fetch
    assert len(fetched) == 2


# --- CIFAR-10 (binary) -----------------------------------------------------------------------


def test_cifar_binary_records(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    ds = load(name="cifar10", path=str(tmp_path))
    assert ds.x.shape == (10, 3, 32, 32) and ds.num_classes == 10
    assert ds.y is not None and ds.y.tolist() == [(b + i) % 10 for b in range(1, 6) for i in (0, 1)]
    assert ds.x[0, 0].eq(1.0).all() and ds.x[0, 1].eq(-1.0).all()  # R plane first: NCHW
    assert ds.x[-1, 2, 0, 0].item() == pytest.approx(50 / 127.5 - 1)
    assert load(name="cifar10", path=str(tmp_path), image_size=16).x.shape == (10, 3, 16, 16)


def test_cifar_corrupt_and_missing(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    batch = folder / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-1])
    with pytest.raises(DataError, match="3073-byte records") as err:
        load(name="cifar10", path=str(tmp_path))
    assert str(batch) in str(err.value)
    batch.write_bytes(cifar_record(12, (0, 0, 0)))
    with pytest.raises(DataError, match="label byte 12"):
        load(name="cifar10", path=str(tmp_path))
    batch.unlink()
    with pytest.raises(DataError, match=r"data_batch_3\.bin not found.*data\.download"):
        load(name="cifar10", path=str(tmp_path))


def test_cifar_download_extracts_the_archive(tmp_path, monkeypatch) -> None:
    source = write_cifar(tmp_path / "src")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-bin")
    raw = archive.getvalue()
    monkeypatch.setattr(data, "_fetch", lambda url, dest: dest.write_bytes(raw))
    md5 = {"cifar-10-binary.tar.gz": hashlib.md5(raw).hexdigest()}
    remote = data._Remote(("cifar-10-batches-bin",), ("https://mirror.invalid/",), md5)
    monkeypatch.setitem(data._REMOTES, "cifar10", remote)
    root = tmp_path / "root"
    ds = load(name="cifar10", path=str(root), download=True)
    assert len(ds.x) == 10 and not (root / "cifar-10-binary.tar.gz").exists()


# --- user arrays: .npy / .npz ----------------------------------------------------------------


def test_npy_uint8_grey_images(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.array([[[0, 255], [51, 102]]] * 3, np.uint8))
    ds = load(name="npy", path=str(path))
    assert ds.x.shape == (3, 1, 2, 2) and ds.y is None and ds.num_classes == 0
    assert ds.x[0, 0].flatten().tolist() == pytest.approx([-1.0, 1.0, -0.6, -0.2])


def test_npz_x_and_y_channels_last(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    x = np.zeros((4, 5, 5, 3), np.uint8)
    x[..., 2] = 255
    np.savez(path, y=np.array([2, 0, 2, 1]), x=x)
    ds = load(name="npy", path=str(path))
    assert ds.x.shape == (4, 3, 5, 5) and ds.x[:, 2].eq(1.0).all() and ds.x[:, 0].eq(-1).all()
    assert ds.y is not None and ds.y.tolist() == [2, 0, 2, 1] and ds.num_classes == 3


def test_npz_first_array_and_points(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    points = np.array([[10.0, -3.0], [0.5, 0.25]])
    np.savez(path, pts=points)
    ds = load(name="npy", path=str(path))
    assert ds.kind == "points" and ds.x.tolist() == points.tolist()  # points are not rescaled


def test_float_images_must_be_scaled(tmp_path: Path) -> None:
    path = tmp_path / "f.npy"
    np.save(path, np.linspace(-1.0005, 1.0, 2 * 16).reshape(2, 4, 4))
    assert load(name="npy", path=str(path)).x.min() == -1.0  # within tolerance: clipped
    np.save(path, np.linspace(0, 255, 32).reshape(2, 4, 4))
    with pytest.raises(DataError, match=r"span \[0, 255\].*\[-1, 1\]") as err:
        load(name="npy", path=str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, 1])}, r"labels have shape \(2,\)"),
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, -1, 1])}, "negative label"),
        ({"x": np.zeros((3, 4, 4), np.int16) + 300}, "0..255"),
        ({"x": np.zeros((3, 4, 4, 5), np.uint8)}, "1 or 3 channels"),
        ({"x": np.zeros(3)}, "non-empty numeric array"),
        ({"y": np.zeros(3)}, "no sample array"),
    ],
    ids=["label-count", "negative", "int-range", "channels", "1-d", "only-y"],
)
def test_bad_arrays_are_data_errors(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load(name="npy", path=str(path))


def test_corrupt_npy_and_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    with pytest.raises(DataError, match="bad.npy: cannot read"):
        load(name="npy", path=str(bad))
    with pytest.raises(ConfigError, match="data.path: .*set data.path"):
        load(name="npy")
    with pytest.raises(ConfigError, match="does not exist"):
        load(name="npy", path=str(tmp_path / "absent.npy"))
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ConfigError, match=r"\.npy or \.npz"):
        load(name="npy", path=str(tmp_path / "x.txt"))
    np.save(tmp_path / "p.npy", np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="data.image_size: .*points"):
        load(name="npy", path=str(tmp_path / "p.npy"), image_size=8)


def test_cache_key_follows_content(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    array = np.zeros((3, 4, 4), np.uint8)
    np.save(path, array)
    first = load(name="npy", path=str(path)).cache_key
    assert load(name="npy", path=str(path)).cache_key == first
    array[1, 2, 3] = 1
    np.save(path, array)
    second = load(name="npy", path=str(path)).cache_key
    assert second != first and second.startswith("npy-")
    assert all(c.isalnum() or c in "._-" for c in second)


# --- Parquet ---------------------------------------------------------------------------------


def test_parquet_array_column_with_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    images = [[[[0, 255], [255, 0]]], [[[255, 255], [0, 0]]], [[[0, 0], [0, 0]]]]  # (1, 2, 2)
    table = pa.table({"id": ["a", "b", "c"], "img": images, "label": ["cat", "dog", "cat"]})
    pq.write_table(table, path)
    ds = load(name="parquet", path=str(path), column="img", label_column="label")
    assert ds.x.shape == (3, 1, 2, 2) and ds.x[0, 0].tolist() == [[-1.0, 1.0], [1.0, -1.0]]
    assert ds.y is not None and ds.y.tolist() == [0, 1, 0] and ds.num_classes == 2


def test_parquet_numeric_columns_are_points(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [3, 4], "y": [1, 0]}), path)
    ds = load(name="parquet", path=str(path), label_column="y")
    assert ds.kind == "points" and ds.x.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert ds.y is not None and ds.y.tolist() == [1, 0]


def test_parquet_encoded_images(tmp_path: Path) -> None:
    path = tmp_path / "hf.parquet"
    cells = [{"bytes": png_bytes("RGB", (4, 3), (255, 0, 0)), "path": None}] * 2
    pq.write_table(pa.table({"image": cells, "label": [3, 4]}), path)
    ds = load(name="parquet", path=str(path), label_column="label")
    assert ds.x.shape == (2, 3, 3, 4) and ds.x[:, 0].eq(1).all() and ds.x[:, 1].eq(-1).all()
    assert ds.num_classes == 5


def test_parquet_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "name": ["p", "q"]}), path)
    with pytest.raises(ConfigError, match="data.column: .*no column 'b'.*columns: a, name"):
        load(name="parquet", path=str(path), column="b")
    with pytest.raises(ConfigError, match="data.column: .*'name' is string"):
        load(name="parquet", path=str(path))
    pq.write_table(pa.table({"v": [[1.0, 2.0], [3.0]]}), path)
    with pytest.raises(DataError, match="different lengths"):
        load(name="parquet", path=str(path))
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataError, match="cannot read as Parquet"):
        load(name="parquet", path=str(path))


# --- folders of images -----------------------------------------------------------------------


def test_image_folder_classes_from_subfolders(tmp_path: Path) -> None:
    write_png(tmp_path / "b_dog" / "1.png", color=255)
    write_png(tmp_path / "a_cat" / "2.png", color=0)
    write_png(tmp_path / "a_cat" / "nested" / "3.png", color=0)
    (tmp_path / "a_cat" / "notes.txt").write_text("ignored: not an image")
    ds = load(name="images", path=str(tmp_path))
    assert ds.x.shape == (3, 1, 6, 6) and ds.num_classes == 2
    assert ds.y is not None and ds.y.tolist() == [0, 0, 1]  # sorted folder names, as ImageFolder
    assert ds.x[2].eq(1.0).all() and ds.x[0].eq(-1.0).all()


def test_image_folder_rgb_when_any_is_colour_and_resize(tmp_path: Path) -> None:
    write_png(tmp_path / "grey.png", "L", (8, 6), 255)
    write_png(tmp_path / "red.png", "RGB", (8, 6), (255, 0, 0))
    ds = load(name="images", path=str(tmp_path))
    assert ds.x.shape == (2, 3, 6, 8) and ds.y is None and ds.num_classes == 0
    assert ds.x[0].eq(1.0).all()  # white grey image -> white in all three channels
    write_png(tmp_path / "small.png", "RGB", (4, 4), (0, 0, 255))
    with pytest.raises(DataError, match=r"small\.png: image is 4x4 but .* is 8x6.*image_size"):
        load(name="images", path=str(tmp_path))
    resized = load(name="images", path=str(tmp_path), image_size=5)
    assert resized.x.shape == (3, 3, 5, 5) and resized.x.abs().max() <= 1.0


def test_image_folder_errors(tmp_path: Path) -> None:
    write_png(tmp_path / "cls" / "ok.png")
    broken = tmp_path / "cls" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load(name="images", path=str(tmp_path))
    broken.unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: class folder holds no"):
        load(name="images", path=str(tmp_path))
    (tmp_path / "empty").rmdir()
    write_png(tmp_path / "loose.png")
    with pytest.raises(DataError, match="both images"):
        load(name="images", path=str(tmp_path))
    with pytest.raises(ConfigError, match="is not a folder"):
        load(name="images", path=str(tmp_path / "loose.png"))
