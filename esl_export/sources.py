"""What an export or an energy count starts from: a model.pt of ours or a NIR file from
any framework, read into the one lowered graph.

``load_source(path)`` tells the two apart by their first bytes (a zip archive is a
model.pt, an HDF5 file a NIR graph); a NIR export folder stands for the NIR file in it.
A ``Source`` keeps what the tools need later: the graph, the file's sha256 (an export
records it, so a run can check it compares with the same network), and, for a model.pt,
the PyTorch model itself. A NIR source has no PyTorch model: comparisons and
measured-mode counts run the graph's own reference executor instead.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esl_export.files import sha256_file
from esl_export.graph import Graph, GraphError
from esl_export.nir_graph import DEFAULT_DT, ENCODINGS, NIRError, ReadOptions, read_nir

#: the manifest format of a NIR export folder (``esl-export --target nir``)
NIR_FOLDER_FORMAT = "esl-snn/nir-export"
NIR_FILE = "network.nir"
_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK"


class SourceError(ValueError):
    """A source that cannot be read; one line naming the file."""


@dataclass
class Source:
    """A network to export, run or price."""

    path: Path
    kind: str  # "model" (model.pt) | "nir"
    graph: Graph
    sha256: str
    info: dict[str, Any]  # model name, dataset, accuracy, density, ... (what the file says)
    notes: list[str] = field(default_factory=list)  # what the NIR reader filled in or corrected
    options: ReadOptions | None = None  # how a NIR file was read
    model: Any = None  # the PyTorch model of a model.pt

    @property
    def label(self) -> str:
        return str(self.info.get("model") or self.kind)

    def manifest_entry(self) -> dict[str, Any]:
        """What an export records of its source (and ``reopen`` reads back)."""
        entry: dict[str, Any] = {"kind": self.kind, "path": str(self.path), "sha256": self.sha256,
                                 **self.info}
        if self.kind == "nir" and self.options is not None:
            entry["nir"] = {"dt": self.options.dt, "steps": self.options.steps,
                            "encoding": self.options.encoding, "notes": list(self.notes)}
        return entry


def kind_of(path: Path) -> str:
    """``model``, ``nir`` or ``folder`` by the file's first bytes (SourceError if none)."""
    if path.is_dir():
        return "folder"
    named_nir = path.suffix.lower() == ".nir"
    if not path.exists():
        raise SourceError(f"{path}: no such {'NIR' if named_nir else 'model'} file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror})") from None
    if head.startswith(_HDF5):
        return "nir"
    if named_nir:
        raise SourceError(f"{path}: not a readable NIR file (not an HDF5 file)")
    return "model"  # model.pt or anything else: the checkpoint loader names what is wrong


def load_source(path: str | os.PathLike[str], options: ReadOptions | None = None) -> Source:
    """Read a model.pt, a NIR file or a NIR export folder into a Source (SourceError)."""
    from esl_train.checkpoint import CheckpointError

    p = Path(path)
    kind = kind_of(p)
    if kind == "folder":
        return load_source(_nir_in_folder(p), options)
    if kind == "nir":
        try:
            graph, notes = read_nir(p, options)
        except NIRError as exc:
            raise SourceError(str(exc)) from None
        info = {"model": graph.meta.get("model", "nir"), "dataset": graph.meta.get("dataset"),
                "framework": "esl-snn" if graph.meta.get("nir", {}).get("ours") else "other"}
        if graph.meta.get("arch"):
            info["arch"] = graph.meta["arch"]
        return Source(p, "nir", graph, sha256_file(p), info, notes, options or ReadOptions())
    from esl_export.lower import lower
    from esl_train.checkpoint import load_model

    try:
        model, ckpt = load_model(p)
        graph = lower(model, ckpt.masks, source=str(p))  # type: ignore[arg-type]
    except CheckpointError as exc:
        raise SourceError(str(exc)) from None
    except GraphError as exc:
        raise SourceError(f"{p}: {exc}") from None
    meta = ckpt.meta
    info = {"model": ckpt.arch.get("name"), "arch": ckpt.arch, "dataset": meta.get("dataset"),
            "test_accuracy": meta.get("test_acc"), "density": meta.get("density"),
            "package_version": meta.get("package_version")}
    graph.meta["dataset"] = meta.get("dataset")
    return Source(p, "model", graph, sha256_file(p), info, model=model)


def _nir_in_folder(folder: Path) -> Path:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != NIR_FOLDER_FORMAT:
        what = manifest.get("format") if isinstance(manifest, dict) else None
        raise SourceError(f"{folder}: a folder is read as a source only when it is a NIR export "
                          f"({'format ' + repr(what) if what else 'no readable manifest.json'}); give the "
                          f"model.pt or .nir file it came from")
    return folder / NIR_FILE


def reopen(entry: dict[str, Any], override: str | Path | None = None) -> Source | None:
    """The source an export recorded, checked by its sha256; ``override`` names another
    path to it. None when the recorded path is gone and no override is given."""
    if not isinstance(entry, dict):
        raise SourceError("the export's manifest has no source entry")
    path = Path(override) if override is not None else Path(str(entry.get("path", "")))
    if override is None and not path.is_file():
        return None
    if not path.is_file():
        raise SourceError(f"{path}: no such model file")
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise SourceError(f"{path}: not the source this export was made from (sha256 differs)")
    recorded = entry.get("nir")
    nir: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    try:
        options = ReadOptions(dt=nir.get("dt"), steps=nir.get("steps"), encoding=nir.get("encoding"))
    except (NIRError, TypeError) as exc:
        raise SourceError(f"the export's manifest records bad NIR read options ({exc})") from None
    return load_source(path, options)


# ----------------------------------------------------------------------------- flags


def add_nir_options(p: argparse.ArgumentParser) -> None:
    """The flags that say what a NIR file from another framework does not."""
    g = p.add_argument_group("NIR input from other frameworks (files written by esl-snn say this "
                             "themselves)")
    g.add_argument("--steps", type=int, default=None, metavar="T", help="time steps per sample")
    g.add_argument("--encoding", choices=ENCODINGS, default=None,
                   help="input code: the sample itself at every step (direct, default) or Bernoulli "
                        "spikes with the pixel as probability (rate)")
    g.add_argument("--nir-dt", type=float, default=None, metavar="SECONDS",
                   help=f"seconds per step the file's time constants assume (default: the file's, "
                        f"else {DEFAULT_DT:g}, snntorch's)")


def nir_options(args: argparse.Namespace) -> ReadOptions:
    try:
        return ReadOptions(dt=args.nir_dt, steps=args.steps, encoding=args.encoding)
    except NIRError as exc:
        raise SourceError(str(exc)) from None
