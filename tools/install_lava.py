"""Install lava-nc 0.10.0 on Python 3.11, reproducibly.

Lava 0.10.0 declares ``Requires-Python <3.11`` and, on 3.11, fails at import:
``lava/magma/compiler/var_model.py`` gives dataclass fields the mutable default
``ByteEncoder()``, which Python 3.11 refuses. Nothing else needs changing for
the processes this project uses (Dense, Sparse, LIF, RingBuffer, monitors).

This script downloads the published wheel from the package index, rewrites
those two things inside it (``field(default_factory=ByteEncoder)`` and the
Python bound), records new hashes in RECORD, and installs the rebuilt wheel
with pip. Lava's dependencies come from requirements/constraints.txt. Running
it again when the patched Lava already imports is a no-op.

Usage: python tools/install_lava.py [--cache DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "0.10.0"
TARGET = "lava/magma/compiler/var_model.py"
OLD_IMPORT = "from dataclasses import dataclass, InitVar"
NEW_IMPORT = "from dataclasses import dataclass, InitVar, field"
OLD_DEFAULT = "ByteEncoder = ByteEncoder()"
NEW_DEFAULT = "ByteEncoder = field(default_factory=ByteEncoder)"


def lava_works() -> bool:
    """True when a patched lava-nc imports in this interpreter."""
    if importlib.util.find_spec("lava") is None:
        return False
    code = "import lava.magma.compiler.var_model, lava.proc.lif.process, lava.proc.dense.process"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def patch_wheel(src: Path, dst_dir: Path) -> Path:
    """Write a copy of the lava-nc wheel that runs on Python 3.11 into dst_dir."""
    dst = dst_dir / src.name
    with zipfile.ZipFile(src) as zin:
        files = {name: zin.read(name) for name in zin.namelist()}
    text = files[TARGET].decode()
    if OLD_IMPORT not in text or OLD_DEFAULT not in text:
        raise SystemExit(f"install_lava: {TARGET} in {src.name} is not the expected 0.10.0 text")
    files[TARGET] = text.replace(OLD_IMPORT, NEW_IMPORT).replace(OLD_DEFAULT, NEW_DEFAULT).encode()
    meta = next(n for n in files if n.endswith(".dist-info/METADATA"))
    files[meta] = files[meta].replace(b"Requires-Python: >=3.10,<3.11", b"Requires-Python: >=3.10")
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    rows = [f"{n},{_record_hash(d)},{len(d)}" for n, d in files.items() if n != record]
    files[record] = ("\n".join([*rows, f"{record},,"]) + "\n").encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in files.items():
            zout.writestr(name, data)
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if Lava imports")
    args = parser.parse_args()
    if lava_works() and not args.force:
        print(f"lava-nc {VERSION}: already installed and importable")
        return 0
    pip = [sys.executable, "-m", "pip"]
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        raw, fixed = Path(tmp, "raw"), Path(tmp, "fixed")
        raw.mkdir()
        fixed.mkdir()
        subprocess.run(
            [*pip, "download", "--no-deps", "--ignore-requires-python",
             f"lava-nc=={VERSION}", "-d", str(raw), "-q"],
            check=True,
        )
        wheel = patch_wheel(next(raw.glob("lava_nc-*.whl")), fixed)
        subprocess.run(
            [*pip, "install", "-q", str(wheel),
             "-c", str(root / "requirements" / "constraints.txt")],
            check=True,
        )
    if not lava_works():
        print("install_lava: lava-nc installed but does not import", file=sys.stderr)
        return 1
    print(f"lava-nc {VERSION}: installed (patched for Python 3.11)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
