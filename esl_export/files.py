"""Writing an export folder so that a crash never leaves a half-written one where
a good one was, the checksums its manifest records, and the JSON it holds."""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def refuse_input(out: Path, source: Path, error: type[Exception]) -> None:
    """``error`` if writing ``out`` would replace the input ``source`` or a folder holding it."""
    if source.exists() and (out.resolve() == source.resolve() or out.resolve() in source.resolve().parents):
        raise error(f"{out}: would overwrite the input {source}; choose another output")


def _not_ours(out: Path, manifest: str, fmt: str, what: str) -> str | None:
    """Why the existing folder ``out`` is not an earlier export of this kind (None if it is):
    its manifest must carry ``fmt`` and the folder hold nothing the manifest does not list."""
    if not any(out.iterdir()):
        return None
    try:
        data = json.loads((out / manifest).read_text())
    except (OSError, ValueError):
        return f"exists and is not an esl-snn {what}"
    found = data.get("format") if isinstance(data, dict) else None
    if found != fmt:
        return f"holds {'a ' + repr(found) + ' export' if found else 'something else'}, not an esl-snn {what}"
    files = data.get("files")
    listed = {manifest, *(files if isinstance(files, dict) else {})}
    extra = sorted(p.name for p in out.iterdir() if p.name not in listed)
    if extra:
        return f"holds files the earlier export did not write ({', '.join(extra[:3])})"
    return None


def _clean_leftovers(out: Path) -> None:
    """Remove the temporary folders an interrupted export of ``out`` left beside it (the
    names ``export_folder`` gives them, nothing else)."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[A-Za-z0-9_]{{8}}\.(tmp|old)")
    for leftover in out.parent.glob(f".{glob.escape(out.name)}.*"):
        if leftover.is_dir() and not leftover.is_symlink() and pattern.fullmatch(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)


def check_replaceable(out: Path, manifest: str, fmt: str, what: str, error: type[Exception]) -> None:
    """``error`` unless ``out`` is absent, empty, or an earlier export of this kind."""
    if out.exists() and not out.is_dir():
        raise error(f"{out}: exists and is not a directory")
    reason = _not_ours(out, manifest, fmt, what) if out.is_dir() else None
    if reason:
        raise error(f"{out}: {reason}; refusing to overwrite it")


@contextmanager
def export_folder(out_dir: str | Path, manifest: str, fmt: str, what: str,
                  error: type[Exception]) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out_dir``; when the block ends without
    an exception, sync its files and swap it into place, replacing an earlier export of
    the same kind (its ``manifest`` says ``format: fmt`` and lists every file in it).
    Any other existing folder is refused with ``error``, so an export never deletes
    something it did not write."""
    out = Path(out_dir)
    check_replaceable(out, manifest, fmt, what, error)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary folder
        yield tmp
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if out.exists():  # replace an earlier export: move it aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            old.rmdir()
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_file(out: Path, write: Callable[[Path], None], ours: Callable[[Path], bool], what: str,
               error: type[Exception]) -> None:
    """Write one file atomically: ``write(tmp)`` fills a temporary file beside ``out``,
    which then replaces ``out``. An existing ``out`` is replaced only when ``ours(out)``
    says this tool wrote it."""
    if out.is_dir():
        raise error(f"{out}: is a directory")
    if out.exists() and not ours(out):
        raise error(f"{out}: exists and is not an esl-snn {what}; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the export is an ordinary file
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Plain JSON data (numpy scalars and tuples converted, non-finite numbers as strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
