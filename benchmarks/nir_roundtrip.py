"""NIR export and re-import time of trained models, beside snntorch's NIR import of the
same file (one run, after a warm-up, median of --repeats).

    python benchmarks/nir_roundtrip.py runs/lif/dense.pt runs/lif/esl.pt runs/ss/dense.pt --repeats 5

Per model: lowering model.pt to the graph (for scale), writing the NIR file (to_nir +
nir.write), reading it back (nir.read + our reader, which rebuilds the exact graph: the
script checks that it does), and, for LIF models, snntorch's ``import_from_nir`` of the
same file (a torch module; snntorch cannot import the single-spike network's CubaLIF
with its metadata, so that column is empty there).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from esl_export.graph import Graph
from esl_export.lower import lower
from esl_export.nir_graph import read_nir, write_nir
from esl_train.checkpoint import CheckpointError, load_model


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _same(a: Graph, b: Graph) -> bool:
    if list(a.nodes) != list(b.nodes) or sorted(a.edges) != sorted(b.edges):
        return False
    for name, node in a.nodes.items():
        other = b.nodes[name]
        for f in node.__dataclass_fields__:
            va, vb = getattr(node, f), getattr(other, f)
            if isinstance(va, np.ndarray):
                if va.dtype != vb.dtype or not np.array_equal(va, vb):
                    return False
            elif va != vb:
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="model.pt files (trained)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    import nir

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.models:
            try:
                model, ckpt = load_model(path)
            except CheckpointError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            graph = lower(model, ckpt.masks)
            file = Path(tmp) / "m.nir"
            lower_ms = _median_ms(lambda: lower(model, ckpt.masks), args.repeats)  # noqa: B023
            write_ms = _median_ms(lambda: write_nir(graph, file), args.repeats)  # noqa: B023
            read_ms = _median_ms(lambda: read_nir(file), args.repeats)  # noqa: B023
            exact = _same(graph, read_nir(file)[0])
            snn_ms = None
            if ckpt.arch.get("name") != "mlp-single-spike":
                from snntorch.import_nir import import_from_nir

                def snntorch_import() -> object:
                    with contextlib.redirect_stdout(io.StringIO()):  # it prints as it goes
                        return import_from_nir(nir.read(file))  # noqa: B023

                snn_ms = _median_ms(snntorch_import, args.repeats)
            synapses = sum(int(v.mask.sum()) for v in graph.connections().values())
            rows.append((path, ckpt.arch.get("name"), synapses, file.stat().st_size, lower_ms, write_ms,
                         read_ms, snn_ms, exact))
    print(f"NIR round trip, median of {args.repeats} after a warm-up (ms)")
    w = max(len(r[0]) for r in rows)
    head = (f"{'model':<{w}} {'arch':<17} {'synapses':>9} {'file KiB':>9} {'lower':>7} {'export':>7} "
            f"{'reimport':>8} {'snntorch':>8} {'ours/snn':>8}  exact")
    print(head)
    for path, arch, syn, size, low, wr, rd, sn, exact in rows:
        ratio = f"{rd / sn:8.2f}" if sn else f"{'-':>8}"
        snt = f"{sn:8.1f}" if sn else f"{'-':>8}"
        print(f"{path:<{w}} {arch:<17} {syn:>9,} {size / 1024:>9.0f} {low:>7.1f} {wr:>7.1f} {rd:>8.1f} "
              f"{snt} {ratio}  {'yes' if exact else 'NO'}")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
