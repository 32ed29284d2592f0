"""The TrueNorth-style core IR: plain data, validated at construction and on load.

Format (``FORMAT`` / ``VERSION``), a folder with two files:

``manifest.json``
    ``format``, ``version``, ``geometry`` (``axons``, ``neurons``, ``axon_types``,
    ``weight_bits``, ``max_delay``, ``platform``), ``n_cores``, ``inputs``
    (``n_data``: data input lines; ``bias_lines``: ``[{"index", "start", "ticks"}]``,
    host-driven lines that spike at every tick of ``[start, start + ticks)``),
    ``outputs`` (``n``, ``decode``), ``timing`` (``T`` steps per sample,
    ``ticks_per_sample``, ``layer_offsets``: tick of a layer's step 0), ``report``
    (what the lowering measured), ``neuron_map`` (per layer, per neuron: [core,
    neuron] of its first copy, [-1, -1] if not placed), ``source`` (the model.pt and its
    sha256) and ``files`` (sha256 of the array file, checked on load after the rules,
    so a hand-edited file reports the broken rule first).
``cores.npz``
    ``crossbar``  uint8 [C, A, ceil(N/8)]: the binary crossbar, bit-packed along
    neurons (``np.packbits(..., axis=2)``, big-endian bit order);
    ``axon_type`` int8 [C, A]; ``weight`` int16 [C, N, axon_types]: signed weight per
    neuron per axon type; ``threshold`` int32 [C, N] (spike when V >= threshold);
    ``leak`` int32 [C, N] (added every tick); ``leak_reversal`` bool [C, N]
    (TrueNorth's leak-reversal flag: the leak is multiplied by sign(V), so a negative
    leak pulls V toward 0 from either side); ``reset`` int8 [C, N] (0: V <- 0,
    1: V <- V - threshold, 2: no reset); ``floor`` int32 [C, N] (V <- max(V, floor)
    after integration; ``NO_FLOOR`` for none);
    ``edges`` int32 [E, 5] rows (src core, src neuron, dst core, dst axon, delay);
    ``outputs`` int32 [O, 3] rows (core, neuron, output index);
    ``inputs`` int32 [I, 3] rows (input index, core, axon).

A neuron has exactly one destination: one ``edges`` row or one ``outputs`` row (or
none: an unused neuron). Tick semantics are in ``simulate.py``.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esl_export.files import export_folder, sha256_file

FORMAT = "esl-snn-truenorth-ir"
VERSION = 4  # 2: leak_reversal; 3: thresholds and leaks within TrueNorth's bit widths; 4: reset_value
READABLE = (3, 4)  # a version 3 folder reads with reset_value 0
MANIFEST = "manifest.json"
ARRAYS = "cores.npz"
NO_FLOOR = -(1 << 30)
#: TrueNorth's neuron threshold is 18 bits (Merolla et al. 2014; Cassidy et al. 2013)
THRESHOLD_MAX = (1 << 18) - 1
RESET_ZERO, RESET_LINEAR, RESET_NONE = 0, 1, 2


class IRError(ValueError):
    """An IR that breaks a rule; the message names the core (or file) and the rule."""


@dataclass(frozen=True)
class Geometry:
    axons: int = 256
    neurons: int = 256
    axon_types: int = 4
    weight_bits: int = 9
    max_delay: int = 15
    platform: str = "truenorth-merolla2014"

    def __post_init__(self) -> None:
        bounds = {"axons": (1, 4096), "neurons": (1, 4096), "axon_types": (1, 16), "weight_bits": (2, 16),
                  "max_delay": (1, 64)}
        for name, (lo, hi) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise IRError(f"core geometry: {name} = {value!r}, expected an integer in {lo}..{hi}")

    @property
    def weight_range(self) -> tuple[int, int]:
        half = 1 << (self.weight_bits - 1)
        return -half, half - 1

    @classmethod
    def from_platform(cls, name: str = "truenorth-merolla2014") -> Geometry:
        from hw_targets import load_platform

        plat = load_platform(name)
        if plat.core is None:
            raise IRError(f"platform {name!r} has no core geometry")
        c = plat.core
        return cls(c.axons, c.neurons, c.axon_types, c.weight_bits, c.max_delay, plat.name)


@dataclass(frozen=True)
class CoreIR:
    """A network placed on cores. Arrays as in the module docstring, crossbar unpacked
    (bool [C, A, N]). Construction runs the validator."""

    geometry: Geometry
    crossbar: np.ndarray
    axon_type: np.ndarray
    weight: np.ndarray
    threshold: np.ndarray
    leak: np.ndarray
    leak_reversal: np.ndarray
    reset: np.ndarray
    floor: np.ndarray
    edges: np.ndarray
    outputs: np.ndarray
    inputs: np.ndarray
    n_inputs: int
    n_outputs: int
    meta: dict[str, Any] = field(default_factory=dict)
    reset_value: np.ndarray | None = None  # None: 0 everywhere (V <- 0 on reset mode 0)

    def __post_init__(self) -> None:
        from esl_export.truenorth.validate import validate

        if self.reset_value is None:
            object.__setattr__(self, "reset_value", np.zeros(self.threshold.shape, np.int32))

        validate(self)

    @property
    def n_cores(self) -> int:
        return int(self.crossbar.shape[0])

    def used_neurons(self) -> np.ndarray:
        """bool [C, N]: neurons with a destination."""
        used = np.zeros(self.threshold.shape, bool)
        used[self.edges[:, 0], self.edges[:, 1]] = True
        used[self.outputs[:, 0], self.outputs[:, 1]] = True
        return used

    def used_axons(self) -> np.ndarray:
        """bool [C, A]: axons with at least one synapse."""
        return self.crossbar.any(axis=2)

    def stats(self) -> dict[str, Any]:
        """Cores, synapses and crossbar utilisation (synapses / (cores·A·N))."""
        syn = int(self.crossbar.sum())
        g = self.geometry
        return {"cores": self.n_cores, "synapses": syn,
                "utilisation": syn / max(1, self.n_cores * g.axons * g.neurons),
                "axons_used": int(self.used_axons().sum()), "neurons_used": int(self.used_neurons().sum())}


def write(ir: CoreIR, out_dir: str | Path) -> Path:
    """Write into a temporary folder beside ``out_dir``, read it back through the validating
    reader, and only then rename it into place: an IR the reader would refuse never lands."""
    with export_folder(out_dir, MANIFEST, FORMAT, "TrueNorth export", IRError) as tmp:
        with open(tmp / ARRAYS, "wb") as f:
            np.savez_compressed(
                f, crossbar=np.packbits(ir.crossbar, axis=2), axon_type=ir.axon_type.astype(np.int8),
                weight=ir.weight.astype(np.int16), threshold=ir.threshold.astype(np.int32),
                leak=ir.leak.astype(np.int32), leak_reversal=ir.leak_reversal.astype(bool),
                reset=ir.reset.astype(np.int8), reset_value=np.asarray(ir.reset_value).astype(np.int32),
                floor=ir.floor.astype(np.int32), edges=ir.edges.astype(np.int32),
                outputs=ir.outputs.astype(np.int32), inputs=ir.inputs.astype(np.int32))
        g = ir.geometry
        manifest = {
            "format": FORMAT, "version": VERSION,
            "geometry": {"axons": g.axons, "neurons": g.neurons, "axon_types": g.axon_types,
                         "weight_bits": g.weight_bits, "max_delay": g.max_delay, "platform": g.platform},
            "n_cores": ir.n_cores, "n_inputs": ir.n_inputs, "n_outputs": ir.n_outputs,
            **ir.meta, "files": {ARRAYS: sha256_file(tmp / ARRAYS)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        read(tmp)
    return Path(out_dir)


def _count(value: object, hi: int = 1 << 24) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise IRError(f"count {value!r} is not an integer in 0..{hi}")
    return value


def _check_meta(path: Path, manifest: dict[str, Any], n_inputs: int) -> None:
    """The manifest fields the runner and simulator use: types, ranges, consistency."""
    try:
        inputs, timing = manifest["inputs"], manifest["timing"]
        n_data = _count(inputs["n_data"])
        T, ticks = _count(timing["T"], 100_000), _count(timing["ticks_per_sample"], 1_000_000)
        lines = inputs["bias_lines"]
        if not isinstance(lines, list) or not 1 <= n_data <= n_inputs or not 1 <= T <= ticks:
            raise IRError(f"inputs n_data {n_data} of {n_inputs} input lines, T {T}, {ticks} ticks per "
                          f"sample do not fit together")
        if inputs.get("encoding") == "latency":
            from esl_export.truenorth.single_spike import check_meta

            check_meta(inputs, int(manifest["geometry"]["max_delay"]))
        rule = manifest.get("outputs", {}).get("rule", "counts")
        if rule not in ("counts", "first-spike"):
            raise IRError(f"outputs rule {rule!r}: counts or first-spike expected")
        for line in lines:
            index, start, length = (_count(line[k]) for k in ("index", "start", "ticks"))
            if not n_data <= index < n_inputs or start + length > ticks:
                raise IRError(f"bias line {index} ({start}+{length} ticks) outside the input lines or the "
                              f"sample's {ticks} ticks")
    except IRError as exc:
        raise IRError(f"{path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise IRError(f"{path}: malformed manifest (field {exc})") from None


_ARRAY_KEYS = ("crossbar", "axon_type", "weight", "threshold", "leak", "leak_reversal", "reset", "floor",
               "edges", "outputs", "inputs")


def read(path: str | Path) -> CoreIR:
    """Read and validate an IR folder; every problem is one IRError line."""
    p = Path(path)
    try:
        manifest = json.loads((p / MANIFEST).read_text())
    except FileNotFoundError:
        raise IRError(f"{p}: no {MANIFEST}; not a TrueNorth IR export") from None
    except (OSError, ValueError) as exc:
        raise IRError(f"{p / MANIFEST}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IRError(f"{p / MANIFEST}: not a {FORMAT} manifest")
    version = manifest.get("version")
    if version not in READABLE:
        known = ", ".join(map(str, READABLE))
        raise IRError(f"{p / MANIFEST}: version {version!r}, this reader knows {known}")
    try:
        geom = Geometry(**manifest["geometry"])
        n_in, n_out = _count(manifest["n_inputs"]), _count(manifest["n_outputs"])
        n_cores = _count(manifest["n_cores"])
    except IRError as exc:
        raise IRError(f"{p / MANIFEST}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise IRError(f"{p / MANIFEST}: bad geometry or sizes ({exc})") from None
    _check_meta(p / MANIFEST, manifest, n_in)
    try:
        with zipfile.ZipFile(p / ARRAYS) as archive:
            size = sum(info.file_size for info in archive.infolist())
        # the most a valid IR of this size holds: per axon its crossbar row, type and one input
        # row; per neuron its weights, threshold, leak, floor, flags and one edge or output row
        per_core = geom.axons * (-(-geom.neurons // 8) + 1 + 12) + geom.neurons * (2 * geom.axon_types + 40)
        if size > n_cores * per_core + (1 << 20):
            raise IRError(f"{p / ARRAYS}: {size:,} bytes of arrays for {n_cores} cores; refusing to load "
                          f"them")
        with np.load(p / ARRAYS, allow_pickle=False) as z:
            arr = {k: np.asarray(z[k]) for k in _ARRAY_KEYS}
            if version >= 4:  # older folders: reset to 0, as their simulator did
                arr["reset_value"] = np.asarray(z["reset_value"])
    except IRError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        msg = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise IRError(f"{p / ARRAYS}: unreadable or incomplete ({msg})") from None
    packed = arr.pop("crossbar")
    if packed.ndim != 3 or packed.dtype != np.uint8:
        raise IRError(f"{p / ARRAYS}: crossbar must be uint8 [cores, axons, neurons/8]")
    crossbar = np.unpackbits(packed, axis=2)[:, :, :geom.neurons].astype(bool)
    if packed.shape[2] * 8 < geom.neurons or packed.shape[2] * 8 - geom.neurons >= 8:
        raise IRError(f"{p / ARRAYS}: crossbar holds {packed.shape[2] * 8} neuron bits per core, "
                      f"geometry has {geom.neurons} neurons")
    meta = {k: v for k, v in manifest.items()
            if k not in ("format", "version", "geometry", "n_cores", "n_inputs", "n_outputs", "files")}
    ir = CoreIR(geom, crossbar, n_inputs=n_in, n_outputs=n_out, meta=meta, **arr)  # the rules first
    want = (manifest.get("files") or {}).get(ARRAYS)
    if want is not None and sha256_file(p / ARRAYS) != want:
        raise IRError(f"{p / ARRAYS}: valid, but changed since export (sha256 differs from the manifest)")
    return ir
