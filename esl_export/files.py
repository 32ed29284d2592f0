"""Writing an export folder so that a crash never leaves a half-written one where
a good one was, and the checksums its manifest records."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def export_folder(out_dir: str | Path, manifest: str, what: str,
                  error: type[Exception]) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out_dir``; when the block ends without
    an exception, sync its files and swap it into place (replacing an earlier export,
    recognised by its ``manifest`` file). Any other existing folder is refused with
    ``error``, so an export never overwrites something it did not write."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise error(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / manifest).is_file():
        raise error(f"{out}: exists and is not an esl-snn {what}; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
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
