"""The deployment back ends, one module each, registered here by one line each.

A back end module defines ``BACKEND = Backend(...)`` and imports nothing heavy at module
level (Lava, onnxruntime and torch load inside its functions), so listing the targets for
``--help`` stays fast. Each back end

- exports a source's lowered graph to a folder (``export``), whose ``manifest.json``
  carries a ``format`` tag that belongs to this back end alone, and
- runs such a folder on test digits (``run``), returning a ``RunReport`` (predictions
  beside the reference's, plus its own figures).

``esl-export`` picks a back end by ``--target``; ``esl-run`` and ``esl-energy`` pick it by
the ``format`` in a folder's manifest (``for_folder``), never by guessing.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esl_export.runs import RunReport, RunRequest
from esl_export.sources import Source

#: one line per back end: adding one is a new module and a line here
REGISTERED = (
    "esl_export.backends.lava",
    "esl_export.backends.truenorth",
    "esl_export.backends.nir",
    "esl_export.backends.onnx",
)
MANIFEST = "manifest.json"


class BackendError(ValueError):
    """An unknown target or a folder no back end reads; one line."""


@dataclass(frozen=True)
class Backend:
    """One deployment target.

    ``export(source, out, args)`` writes the folder (or, for a ``file_suffix`` target, the
    single file ``out``) and returns the lines to print; ``run(folder, request)`` runs it.
    ``options``/``run_options`` add the target's own flags to esl-export/esl-run; ``energy``
    says how esl-energy prices one of its folders."""

    name: str
    help: str
    formats: tuple[str, ...]
    export: Callable[[Source, Path, argparse.Namespace], list[str]]
    run: Callable[[Path, RunRequest], RunReport]
    options: Callable[[argparse._ArgumentGroup], None] | None = None
    run_options: Callable[[argparse._ArgumentGroup], None] | None = None
    file_suffix: str | None = None  # "-o NAME<suffix>" writes a bare file instead of a folder
    #: how esl-energy prices a folder of this back end: "placed" (run it and price what the
    #: hardware did), "graph" (the folder holds the graph) or "source" (its recorded source)
    energy: str = "source"


_BACKENDS: dict[str, Backend] = {}


def register(module: str) -> Backend:
    backend: Backend = importlib.import_module(module).BACKEND
    if backend.name in _BACKENDS and _BACKENDS[backend.name] is not backend:
        raise ValueError(f"target {backend.name!r} is registered twice")
    _BACKENDS[backend.name] = backend
    return backend


def backends() -> dict[str, Backend]:
    """Every registered back end by target name."""
    if not _BACKENDS:
        for module in REGISTERED:
            register(module)
    return _BACKENDS


def get(name: str) -> Backend:
    found = backends().get(name)
    if found is None:
        raise BackendError(f"unknown target {name!r}; known: {', '.join(backends())}")
    return found


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The parsed manifest of an export folder (BackendError naming what is wrong)."""
    p = Path(folder)
    if not p.exists():
        raise BackendError(f"{p}: no such export directory")
    if not p.is_dir():
        raise BackendError(f"{p}: not a directory (a folder written by esl-export was expected)")
    path = p / MANIFEST
    if not path.is_file():
        raise BackendError(f"{p}: no {MANIFEST}; not a folder written by esl-export")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendError(f"{path}: unreadable manifest ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(manifest, dict):
        raise BackendError(f"{path}: unreadable manifest (not a JSON object)")
    return manifest


def verified_file(folder: Path, manifest: dict[str, Any], name: str) -> Path:
    """``folder/name``, checked against the sha256 the manifest records for it."""
    from esl_export.files import sha256_file

    path = folder / name
    files = manifest.get("files")
    want = files.get(name) if isinstance(files, dict) else None
    if not path.is_file() or want is None or sha256_file(path) != want:
        raise BackendError(f"{path}: missing, or changed since export (sha256 differs from the manifest)")
    return path


def for_folder(folder: str | Path) -> Backend:
    """The back end whose format the folder's manifest names."""
    manifest = read_manifest(folder)
    fmt = manifest.get("format")
    for backend in backends().values():
        if fmt in backend.formats:
            return backend
    known = ", ".join(f for b in backends().values() for f in b.formats)
    raise BackendError(f"{Path(folder) / MANIFEST}: not an esl-snn export (format {fmt!r}; known: {known})")



def input_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input (a file, a flag, data): one line, exit status 2."""
    from esl_export.graph import GraphError
    from esl_export.lava.artifact import ArtifactError
    from esl_export.nir_graph import NIRError
    from esl_export.runs import RunError
    from esl_export.sources import SourceError
    from esl_export.truenorth.ir import IRError
    from esl_train.checkpoint import CheckpointError
    from esl_train.data import DataError
    from hw_targets import TargetError

    return (BackendError, SourceError, RunError, GraphError, NIRError, ArtifactError, IRError,
            CheckpointError, DataError, TargetError, OSError, ValueError)
