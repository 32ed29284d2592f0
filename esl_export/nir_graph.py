"""The lowered graph as NIR (nir 1.0.8), and a NIR graph from any framework back into it.

Writing (``to_nir`` / ``write_nir``) maps node for node:

============  ==========================================================================
ours          NIR
============  ==========================================================================
Input         ``Input`` (shape per sample, no batch)
Affine        ``Affine`` (``Linear`` without a bias); masked synapses are exact zeros
Conv2d        ``Conv2d`` (``input_shape`` (H, W), dilation 1, groups 1; zero bias if none)
AvgPool2d     ``AvgPool2d`` (kernel = stride, padding 0, all as 2-element arrays)
Flatten       ``Flatten`` (``start_dim = 0``: NIR shapes exclude the batch)
LIF           ``LIF`` (τ < 1) or ``IF`` (τ = 1), parameters per neuron (below)
SingleSpike   ``CubaLIF`` with a membrane that practically does not leak (below)
Add           no node: NIR sums the edges that meet at a node, so both branches feed
              the Add's consumer directly
Readout       ``Output`` fed by a non-spiking node (a graph ending in a spiking layer
              gets an ``Output`` behind that layer instead)
============  ==========================================================================

Time and the LIF neuron. Our neuron is discrete: ``u(t) = τ·u(t−1) + I(t)``, spike when
``u > v_th`` (strict), then ``u ← 0``. NIR's LIF is an ODE, ``τ_m·dv/dt = (v_leak − v) + R·I``,
spike when ``v > v_threshold``, then ``v ← v_reset``. One of our steps is ``dt`` seconds
(``DEFAULT_DT`` = 1e-4 s, the step snntorch's NIR import and export assume; the file's
metadata records it). Forward Euler over one step gives
``v ← (1 − dt/τ_m)·v + (dt/τ_m)·R·I``, which is ours exactly for ``τ_m = dt/(1 − τ)``,
``R = τ_m/dt = 1/(1 − τ)``, ``v_leak = 0``, ``v_threshold = v_th``, ``v_reset = 0``
(reset to zero, in the step of the spike). τ = 1 (no leak) is ``IF`` with ``R = 1/dt``.

The single-spike neuron (non-leaky IF, exponentially decaying synaptic current, fires
at most once) has no NIR counterpart. It is written as ``CubaLIF`` with ``τ_syn`` in the
model's time unit, ``τ_mem = R = 1e12`` (``dv/dt ≈ I``) and ``w_in = 1``, and the node's
metadata says what it really is.

What NIR cannot say goes into metadata, so that ``read_nir`` gets our graph back exactly:
every node carries ``esl_snn`` (JSON: our node name and kind, and its exact parameters:
τ, v_th, the reset mode, fire-once, whether a bias exists, the Add it sums for) and, for
synaptic layers, ``mask`` (bool, like the weight); the graph carries ``esl_snn`` (JSON:
format tag, dt, the input encoding, the model's architecture and training metadata).

Reading (``from_nir`` / ``read_nir``) takes NIR from any framework and is tolerant where
the writers in the wild are sloppy, saying what it did in ``notes``: node types left
empty (snntorch's scalar ``beta``) are filled from the neighbours; ``Conv2d`` without an
input shape, pooling sizes given as scalars, ``SumPool2d`` (read as a channel-diagonal
convolution of ones), an input scale ``R·dt/τ ≠ 1`` (folded into the threshold, which
gives the same spikes with a reset to zero), several edges into one node (an Add). A
file without our metadata has no input encoding: the caller names it (``steps``,
``encoding``). Anything our back ends cannot run is one ``NIRError`` line naming the node.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esl_export.files import jsonable
from esl_export.graph import (
    LIF,
    Add,
    Affine,
    AvgPool2d,
    Conv2d,
    Flatten,
    Graph,
    GraphError,
    Input,
    Node,
    Readout,
    SingleSpikeIF,
)

#: seconds per step of our discrete-time neurons, unless a file or the caller says otherwise
DEFAULT_DT = 1e-4
FORMAT = "esl-snn/nir"
VERSION = 1
#: the membrane time constant and resistance that stand for "no leak" in CubaLIF
NO_LEAK = 1e12
#: a NIR file whose arrays would take more memory than this is refused before reading
MAX_ARRAY_BYTES = 4 << 30
ENCODINGS = ("direct", "rate")
SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "AvgPool2d", "SumPool2d", "Flatten",
             "LIF", "IF", "CubaLIF (esl-snn single-spike only)")


class NIRError(ValueError):
    """A NIR file or graph that cannot be read into (or written from) our graph; one line."""

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class ReadOptions:
    """What a NIR file from elsewhere does not say.

    ``dt``: seconds per step (default: the file's, else ``DEFAULT_DT``); ``steps`` and
    ``encoding``: the input code of a file without our metadata (``direct``: the sample
    itself at every step, ``rate``: Bernoulli spikes with the pixel as probability)."""

    dt: float | None = None
    steps: int | None = None
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.dt is not None and not (math.isfinite(self.dt) and 0 < self.dt <= 1.0):
            raise NIRError(f"dt must be in (0, 1] seconds, got {self.dt}")
        if self.steps is not None and not 1 <= self.steps <= 100_000:
            raise NIRError(f"steps must be in 1..100000, got {self.steps}")
        if self.encoding is not None and self.encoding not in ENCODINGS:
            raise NIRError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")


# =============================================================================== writing


def _nir_key(name: str) -> str:
    # torch-based readers (nirtorch) turn node names into module names, which refuse dots
    return name.replace(".", "_")


def _full(shape: tuple[int, ...], value: float) -> np.ndarray:
    return np.full(shape, value, np.float64)


def _meta(name: str, index: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"esl_snn": json.dumps(jsonable({"name": name, "index": index, "node": kind, **fields}))}


def to_nir(graph: Graph, dt: float = DEFAULT_DT) -> Any:
    """The NIR graph (``nir.NIRGraph``) of our graph, one step = ``dt`` seconds."""
    import nir

    if not (math.isfinite(dt) and 0 < dt <= 1.0):
        raise NIRError(f"dt must be in (0, 1] seconds, got {dt}")
    keys = {name: _nir_key(name) for name in graph.nodes}
    if len(set(keys.values())) != len(keys):
        raise NIRError("two node names differ only in '.' vs '_'; NIR keys would collide")
    nodes: dict[str, Any] = {}
    # an Add is not a NIR node: its inputs feed its consumers directly (NIR sums them there)
    feeds: dict[str, list[str]] = {}
    for i, (name, node) in enumerate(graph.nodes.items()):
        preds = [q for p in graph.predecessors(name) for q in feeds.get(p, [p])]
        if isinstance(node, Add):
            feeds[name] = preds
            continue
        sums = [p for p in graph.predecessors(name) if isinstance(graph.nodes[p], Add)]
        extra = {"sums": sums[0]} if sums else {}
        nodes[keys[name]] = _node_to_nir(nir, name, i, node, dt, extra)
    edges: list[tuple[str, str]] = []
    for name in graph.nodes:
        if isinstance(graph.nodes[name], Add):
            continue
        for p in graph.predecessors(name):
            edges.extend((keys[q], keys[name]) for q in feeds.get(p, [p]))
    out = graph.output
    if not isinstance(graph.nodes[out], Readout):  # ends in a spiking layer: NIR wants an Output
        key = "output" if "output" not in nodes else f"{keys[out]}_output"
        nodes[key] = nir.Output(output_type={"output": np.array(graph.nodes[out].output_shape)},
                                metadata=_meta(key, len(graph.nodes), "Output"))
        edges.append((keys[out], key))
    inp = graph.nodes[graph.input]
    assert isinstance(inp, Input)
    meta = {"format": FORMAT, "version": VERSION, "dt": dt, "encoding": inp.encoding,
            "meta": graph.meta}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"esl_snn": json.dumps(jsonable(meta))})
    except (ValueError, AssertionError, TypeError, IndexError) as exc:
        raise NIRError(f"NIR refused the graph: {exc}") from None


def _node_to_nir(nir: Any, name: str, i: int, node: Node, dt: float, extra: dict[str, Any]) -> Any:
    shape = tuple(int(s) for s in node.output_shape)
    kind = type(node).__name__
    if isinstance(node, Input):
        return nir.Input(input_type={"input": np.array(node.shape)},
                         metadata=_meta(name, i, kind, encoding=node.encoding))
    if isinstance(node, Affine):
        meta = {**_meta(name, i, kind, bias=node.bias is not None, **extra), "mask": np.asarray(node.mask)}
        weight = np.asarray(node.weight * node.mask, np.float32)
        if node.bias is None:
            return nir.Linear(weight=weight, metadata=meta)
        return nir.Affine(weight=weight, bias=np.asarray(node.bias, np.float32), metadata=meta)
    if isinstance(node, Conv2d):
        meta = {**_meta(name, i, kind, bias=node.bias is not None, **extra), "mask": np.asarray(node.mask)}
        bias = np.zeros(node.weight.shape[0], np.float32) if node.bias is None else node.bias
        return nir.Conv2d(input_shape=tuple(node.input_shape[1:]),
                          weight=np.asarray(node.weight * node.mask, np.float32),
                          stride=tuple(node.stride), padding=tuple(node.padding), dilation=(1, 1), groups=1,
                          bias=np.asarray(bias, np.float32), metadata=meta)
    if isinstance(node, AvgPool2d):
        k = np.array([node.kernel, node.kernel])
        return nir.AvgPool2d(kernel_size=k, stride=k.copy(), padding=np.array([0, 0]),
                             metadata=_meta(name, i, kind, **extra))
    if isinstance(node, Flatten):
        return nir.Flatten(input_type={"input": np.array(node.input_shape)}, start_dim=0, end_dim=-1,
                           metadata=_meta(name, i, kind, **extra))
    if isinstance(node, LIF):
        meta = _meta(name, i, kind, tau=node.tau, v_th=node.v_th, reset=node.reset, **extra)
        if node.tau >= 1.0:
            return nir.IF(r=_full(shape, 1.0 / dt), v_threshold=_full(shape, node.v_th),
                          v_reset=_full(shape, 0.0), metadata=meta)
        tau_m = dt / (1.0 - node.tau)
        return nir.LIF(tau=_full(shape, tau_m), r=_full(shape, 1.0 / (1.0 - node.tau)),
                       v_leak=_full(shape, 0.0), v_threshold=_full(shape, node.v_th),
                       v_reset=_full(shape, 0.0), metadata=meta)
    if isinstance(node, SingleSpikeIF):
        meta = _meta(name, i, kind, threshold=node.threshold, tau_syn=node.tau_syn, fire_once=True, **extra)
        return nir.CubaLIF(tau_syn=_full(shape, node.tau_syn), tau_mem=_full(shape, NO_LEAK),
                           r=_full(shape, NO_LEAK), v_leak=_full(shape, 0.0),
                           v_threshold=_full(shape, node.threshold), v_reset=_full(shape, 0.0),
                           w_in=_full(shape, 1.0), metadata=meta)
    if isinstance(node, Readout):
        return nir.Output(output_type={"output": np.array(shape)}, metadata=_meta(name, i, kind, **extra))
    raise NIRError(f"node {name}: no NIR form for {kind}")


def write_nir(graph: Graph, path: str | os.PathLike[str], dt: float = DEFAULT_DT) -> None:
    """Write the graph as a NIR (HDF5) file at ``path``."""
    import nir

    nir.write(Path(path), to_nir(graph, dt))


# =============================================================================== reading


def _check_size(path: Path) -> None:
    """Refuse a file whose arrays would not fit in memory, before anything is read."""
    import h5py

    total = 0

    def visit(_: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(np.prod(obj.shape, dtype=np.float64)) * int(obj.dtype.itemsize)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    if total > MAX_ARRAY_BYTES:
        raise NIRError(f"{path}: its arrays would take {total / 2**30:.1f} GiB; refusing to read it")


def read_nir(path: str | os.PathLike[str], options: ReadOptions | None = None) -> tuple[Graph, list[str]]:
    """Our graph from a NIR file, and the notes of what the reader filled in or corrected."""
    import nir

    p = Path(path)
    if not p.is_file():
        raise NIRError(f"{p}: no such NIR file")
    try:
        _check_size(p)
        ngraph = nir.read(p, type_check=False)
    except NIRError:
        raise
    except Exception as exc:  # h5py and nir raise many kinds on a damaged or foreign file
        msg = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise NIRError(f"{p}: not a readable NIR file ({msg})") from None
    if not isinstance(ngraph, nir.NIRGraph):
        raise NIRError(f"{p}: holds a single {type(ngraph).__name__} node, not a NIR graph")
    graph, notes = from_nir(ngraph, options, source=str(p))
    return graph, notes


def _json_meta(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, bytes):
        value = value.decode("utf8", "replace")
    try:
        data = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise NIRError(f"{what}: esl_snn metadata is not a JSON object")
    return data


def _array(node: Any, field: str, key: str) -> np.ndarray:
    value = getattr(node, field, None)
    if value is None:
        raise NIRError(f"node {key}: no {field}")
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise NIRError(f"node {key}: {field} is not numeric") from None
    if not np.isfinite(arr).all() and field not in ("tau", "tau_mem", "r"):
        raise NIRError(f"node {key}: {field} has NaN or infinite values")
    if np.isnan(arr).any():
        raise NIRError(f"node {key}: {field} has NaN values")
    return arr


def _raw_dtype(node: Any, field: str) -> np.dtype[Any]:
    """The float type a parameter came in (float64 unless the file says float16/32)."""
    dtype = np.asarray(getattr(node, field, 0.0)).dtype
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _uniform(arr: np.ndarray, field: str, key: str) -> float:
    flat = arr.ravel()
    if flat.size == 0:
        raise NIRError(f"node {key}: {field} is empty")
    if not (flat == flat[0]).all():
        raise NIRError(f"node {key}: {field} differs between neurons; esl-snn's neurons share one value "
                       f"per layer")
    return float(flat[0])


def _pair(value: Any, key: str, field: str) -> tuple[int, int]:
    arr = np.asarray(value).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.equal(np.mod(arr, 1), 0)) or (arr < 0).any() or (arr > 1 << 20).any():
        raise NIRError(f"node {key}: {field} {value!r} is not one or two non-negative integers")
    return int(arr[0]), int(arr[1])


def _toposort(keys: list[str], edges: list[tuple[str, str]], rank: dict[str, float]) -> list[str]:
    indeg = dict.fromkeys(keys, 0)
    for _, d in edges:
        indeg[d] += 1
    ready = sorted((k for k in keys if indeg[k] == 0), key=lambda k: (rank[k], k))
    order = []
    while ready:
        k = ready.pop(0)
        order.append(k)
        for s, d in edges:
            if s == k:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
                    ready.sort(key=lambda n: (rank[n], n))
    if len(order) != len(keys):
        stuck = sorted(k for k in keys if k not in order)
        raise NIRError(f"recurrent connection through {', '.join(stuck[:4])}: esl-snn runs feed-forward "
                       f"networks only")
    return order


class _Reader:
    """Converts one NIR graph, node by node in topological order."""

    def __init__(self, ngraph: Any, options: ReadOptions, source: str) -> None:
        self.ng, self.options, self.source = ngraph, options, source
        self.notes: list[str] = []
        self.gmeta = _json_meta(getattr(ngraph, "metadata", {}).get("esl_snn")
                                if isinstance(getattr(ngraph, "metadata", None), dict) else None, "graph")
        self.ours = self.gmeta.get("format") == FORMAT
        if self.gmeta and not self.ours:
            raise NIRError(f"graph metadata has format {self.gmeta.get('format')!r}, not {FORMAT!r}")
        version = self.gmeta.get("version")
        if self.ours and not (isinstance(version, int) and 1 <= version <= VERSION):
            raise NIRError(f"esl-snn NIR metadata version {self.gmeta.get('version')!r}; this reader knows "
                           f"1..{VERSION}")
        file_dt = self.gmeta.get("dt") if self.ours else None
        if file_dt is not None and (not isinstance(file_dt, int | float) or not 0 < file_dt <= 1):
            raise NIRError(f"graph metadata dt {file_dt!r} is not a step in (0, 1] seconds")
        self.dt = float(options.dt or file_dt or DEFAULT_DT)
        if options.dt and file_dt and not math.isclose(options.dt, file_dt):
            self.notes.append(f"dt {options.dt:g} s given; the file was written for {file_dt:g} s")
        self.nodes: dict[str, Node] = {}
        self.edges: list[tuple[str, str]] = []
        self.alias: dict[str, str] = {}  # NIR key -> our node whose output it is
        self.shape: dict[str, tuple[int, ...]] = {}  # our node -> output shape
        self.output: str | None = None

    # -- helpers ---------------------------------------------------------------------

    def node_meta(self, key: str, node: Any) -> dict[str, Any]:
        meta = getattr(node, "metadata", None)
        if not isinstance(meta, dict) or "esl_snn" not in meta:
            return {}
        data = _json_meta(meta["esl_snn"], f"node {key}")
        return data if self.ours else {}

    def name_for(self, key: str, meta: dict[str, Any]) -> str:
        name = meta.get("name")
        name = name if isinstance(name, str) and name else key
        if name in self.nodes:
            raise NIRError(f"node {key}: name {name!r} is used twice")
        return name

    def add(self, name: str, node: Node, preds: list[str]) -> str:
        self.nodes[name] = node
        self.edges.extend((p, name) for p in preds)
        self.shape[name] = tuple(int(s) for s in node.output_shape)
        return name

    def mask(self, key: str, node: Any, weight: np.ndarray) -> np.ndarray:
        meta = getattr(node, "metadata", None)
        raw = meta.get("mask") if isinstance(meta, dict) and self.ours else None
        if raw is None:
            return weight != 0  # a zero weight is no synapse
        mask = np.asarray(raw)
        if mask.shape != weight.shape or mask.dtype != np.bool_:
            raise NIRError(f"node {key}: mask {mask.shape} {mask.dtype} does not fit weight {weight.shape}")
        if (weight[~mask] != 0).any():
            raise NIRError(f"node {key}: non-zero weights outside the mask")
        return mask

    # -- conversion ------------------------------------------------------------------

    def run(self) -> Graph:
        nodes = getattr(self.ng, "nodes", None)
        edges = getattr(self.ng, "edges", None)
        if not isinstance(nodes, dict) or not nodes or not isinstance(edges, list | tuple):
            raise NIRError("the NIR graph has no nodes or no edge list")
        edges = [(str(a), str(b)) for a, b in edges]
        for a, b in edges:
            if a not in nodes or b not in nodes:
                raise NIRError(f"edge {a} -> {b} names a missing node")
        rank = {}
        for k, n in nodes.items():
            idx = self.node_meta(k, n).get("index")
            rank[k] = float(idx) if isinstance(idx, int | float) else float(len(nodes) + list(nodes).index(k))
        order = _toposort(list(nodes), edges, rank)
        kinds = {k: type(n).__name__ for k, n in nodes.items()}
        inputs = [k for k in order if kinds[k] == "Input"]
        outputs = [k for k in order if kinds[k] == "Output"]
        if len(inputs) != 1:
            raise NIRError(f"the graph has {len(inputs)} Input nodes; esl-snn runs graphs with one")
        if len(outputs) > 1:
            raise NIRError(f"the graph has {len(outputs)} Output nodes; esl-snn runs graphs with one")
        for key in order:
            preds = [self.alias[a] for a, b in edges if b == key]
            if key != inputs[0] and not preds:
                raise NIRError(f"node {key} ({kinds[key]}) has no input")
            self.convert(key, nodes[key], preds)
        sinks = [n for n in self.nodes if n not in {a for a, _ in self.edges}]
        if self.output is None:
            if len(sinks) != 1:
                raise NIRError(f"the graph ends in {len(sinks)} nodes and has no Output node")
            self.output = sinks[0]
        meta = dict(self.gmeta.get("meta", {})) if self.ours and isinstance(self.gmeta.get("meta"), dict) \
            else {"model": "nir"}
        meta.update(source=self.source, nir={"dt": self.dt, "notes": list(self.notes), "ours": self.ours})
        inp = self.nodes[next(iter(self.nodes))]
        assert isinstance(inp, Input)
        meta["encoding"] = dict(inp.encoding)
        try:
            return Graph(self.nodes, self.edges, meta)
        except GraphError as exc:
            raise NIRError(f"the NIR graph does not form a network esl-snn can run: {exc}") from None

    def summed(self, key: str, meta: dict[str, Any], preds: list[str]) -> list[str]:
        """Several edges into one node: NIR sums them, we make that an Add node."""
        if len(preds) <= 1:
            return preds
        shapes = {self.shape[p] for p in preds}
        if len(shapes) != 1:
            raise NIRError(f"node {key}: its inputs have different shapes {sorted(shapes)}; cannot sum them")
        given = meta.get("sums")
        name = given if isinstance(given, str) else f"{key}.sum"
        if name in self.nodes:
            raise NIRError(f"node {key}: name {name!r} is used twice")
        self.add(name, Add(shapes.pop()), preds)
        return [name]

    def convert(self, key: str, node: Any, preds: list[str]) -> None:
        kind = type(node).__name__
        meta = self.node_meta(key, node)
        if kind == "Input":
            self.alias[key] = self.add(self.name_for(key, meta), self.input(key, node, meta), [])
            return
        preds = self.summed(key, meta, preds)
        (pred,) = preds
        in_shape = self.shape[pred]
        if kind == "Output":
            self.output_node(key, node, meta, pred)
            return
        handler = getattr(self, f"_{kind.lower()}", None)
        if handler is None:
            raise NIRError(f"node {key} is a NIR {kind}: esl-snn cannot run it (it runs "
                           f"{', '.join(SUPPORTED)})")
        built = handler(key, node, meta, in_shape)
        self.alias[key] = self.add(self.name_for(key, meta), built, preds)

    def input(self, key: str, node: Any, meta: dict[str, Any]) -> Input:
        raw = node.input_type.get("input") if isinstance(node.input_type, dict) else None
        shape = tuple(int(s) for s in np.asarray(raw).ravel()) if raw is not None else ()
        if not shape or min(shape) < 1 or math.prod(shape) > 1 << 28:
            raise NIRError(f"input node {key}: shape {list(shape)} is not a sample shape")
        enc = meta.get("encoding")
        if isinstance(enc, dict):
            if self.options.steps or self.options.encoding:
                self.notes.append(f"the file's own input encoding ({enc.get('kind')}, T = {enc.get('T')}) "
                                  f"is used; --steps/--encoding are for files from other frameworks")
            kind, T = enc.get("kind"), enc.get("T")
            if kind not in ("direct", "rate", "frames", "latency"):
                raise NIRError(f"input node {key}: unknown encoding {kind!r}")
            if kind != "latency" and not (isinstance(T, int) and 1 <= T <= 100_000):
                raise NIRError(f"input node {key}: encoding T {T!r} is not a step count")
            return Input(shape, dict(enc))
        if self.options.steps is None:
            raise NIRError("the file does not say how its input is encoded (it was not written by "
                           "esl-snn): give the number of time steps (--steps T) and the encoding "
                           "(--encoding direct|rate)")
        kind = self.options.encoding or "direct"
        self.notes.append(f"input read as {kind} coding over T = {self.options.steps} steps (as given)")
        return Input(shape, {"kind": kind, "T": int(self.options.steps)})

    def output_node(self, key: str, node: Any, meta: dict[str, Any], pred: str) -> None:
        if isinstance(self.nodes[pred], LIF | SingleSpikeIF):
            self.output = pred  # the graph's output is that layer's spikes
            return
        name = self.name_for(key, meta)
        self.output = self.add(name, Readout(self.shape[pred]), [pred])

    def _weights(self, key: str, node: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        weight = _array(node, "weight", key)
        if weight.ndim != ndim or min(weight.shape) < 1:
            raise NIRError(f"node {key}: weight of shape {list(weight.shape)} is not {ndim}-D")
        weight = weight.astype(np.float32)
        return weight, self.mask(key, node, weight)

    def _bias(self, key: str, node: Any, n: int, meta: dict[str, Any]) -> np.ndarray | None:
        if getattr(node, "bias", None) is None:
            return None
        bias = _array(node, "bias", key).astype(np.float32).ravel()
        if bias.shape != (n,):
            raise NIRError(f"node {key}: bias of {bias.size} values for {n} outputs")
        if meta.get("bias") is False:
            if bias.any():
                raise NIRError(f"node {key}: metadata says no bias, but the bias is not zero")
            return None
        return bias

    def _affine(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> Affine:
        weight, mask = self._weights(key, node, 2)
        if weight.shape[1] != math.prod(in_shape):
            raise NIRError(f"node {key}: weight {list(weight.shape)} does not take its input "
                           f"{list(in_shape)}")
        return Affine(weight, self._bias(key, node, weight.shape[0], meta), mask)

    _linear = _affine

    def _conv2d(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> Conv2d:
        weight, mask = self._weights(key, node, 4)
        if len(in_shape) != 3 or in_shape[0] != weight.shape[1]:
            raise NIRError(f"node {key}: Conv2d weight {list(weight.shape)} does not take its input "
                           f"{list(in_shape)}")
        if int(np.asarray(getattr(node, "groups", 1))) != 1 or _pair(getattr(node, "dilation", 1), key,
                                                                     "dilation") != (1, 1):
            raise NIRError(f"node {key}: grouped or dilated convolutions are not supported")
        stride = _pair(getattr(node, "stride", 1), key, "stride")
        if min(stride) < 1:
            raise NIRError(f"node {key}: stride {stride} must be positive")
        padding: Any = getattr(node, "padding", 0)
        if isinstance(padding, bytes | str):
            padding = padding.decode() if isinstance(padding, bytes) else padding
            kh, kw = weight.shape[2:]
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same" and stride == (1, 1) and kh % 2 and kw % 2:
                padding = ((kh - 1) // 2, (kw - 1) // 2)
            else:
                raise NIRError(f"node {key}: padding {padding!r} with stride {stride} and kernel "
                               f"{kh}x{kw} is not supported")
        pad = _pair(padding, key, "padding")
        declared = getattr(node, "input_shape", None)
        if declared is None:
            self.notes.append(f"node {key}: Conv2d without input_shape; took {list(in_shape[1:])} from its "
                              f"input")
        elif tuple(int(s) for s in np.asarray(declared).ravel()) != tuple(in_shape[1:]):
            raise NIRError(f"node {key}: input_shape {np.asarray(declared).tolist()} but its input is "
                           f"{list(in_shape)}")
        try:
            return Conv2d(weight, self._bias(key, node, weight.shape[0], meta), mask,
                          (int(in_shape[0]), int(in_shape[1]), int(in_shape[2])), stride, pad)
        except GraphError as exc:
            raise NIRError(f"node {key}: {exc}") from None

    def _pool(self, key: str, node: Any, in_shape: tuple[int, ...], kind: str) -> int:
        k = _pair(getattr(node, "kernel_size", None), key, "kernel_size")
        s = _pair(getattr(node, "stride", None) if getattr(node, "stride", None) is not None else k, key,
                  "stride")
        p = _pair(getattr(node, "padding", 0), key, "padding")
        if k[0] != k[1] or s != k or p != (0, 0) or k[0] < 1:
            raise NIRError(f"node {key}: {kind} with kernel {k}, stride {s}, padding {p}; esl-snn pools "
                           f"square windows with stride = kernel and no padding")
        if len(in_shape) != 3 or min(in_shape[1:]) < k[0]:
            raise NIRError(f"node {key}: {kind} of {k[0]}x{k[0]} on input {list(in_shape)}")
        if np.ndim(np.asarray(getattr(node, "kernel_size", 0))) == 0:
            self.notes.append(f"node {key}: {kind} sizes given as scalars, read as {k[0]}x{k[0]}")
        return k[0]

    def _avgpool2d(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> AvgPool2d:
        k = self._pool(key, node, in_shape, "AvgPool2d")
        return AvgPool2d(k, (in_shape[0], in_shape[1], in_shape[2]))

    def _sumpool2d(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> Conv2d:
        k = self._pool(key, node, in_shape, "SumPool2d")
        c = in_shape[0]
        mask = np.zeros((c, c, k, k), bool)
        mask[np.arange(c), np.arange(c)] = True
        self.notes.append(f"node {key}: SumPool2d read as a {k}x{k} convolution of ones per channel")
        return Conv2d(mask.astype(np.float32), None, mask, (c, in_shape[1], in_shape[2]), (k, k), (0, 0))

    def _flatten(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> Flatten:
        start = int(np.asarray(getattr(node, "start_dim", 0)))
        if start not in (0, -len(in_shape)) and len(in_shape) > 1:
            self.notes.append(f"node {key}: Flatten from dim {start} of {list(in_shape)} read as a full "
                              f"flatten (NIR shapes exclude the batch)")
        return Flatten(in_shape)

    def _neuron_shape(self, key: str, params: list[np.ndarray],
                      in_shape: tuple[int, ...]) -> tuple[int, ...]:
        sizes = {p.size for p in params if p.ndim > 0 and p.size > 1}
        if not sizes:
            if any(p.ndim == 0 or p.size == 1 for p in params):
                self.notes.append(f"node {key}: scalar neuron parameters; took the shape {list(in_shape)} "
                                  f"from its input")
            return in_shape
        if sizes != {math.prod(in_shape)}:
            raise NIRError(f"node {key}: {sorted(sizes)} neurons, but its input has {math.prod(in_shape)} "
                           f"values")
        return in_shape

    def _lif_params(self, key: str, tau: float, v_th: float, w: float,
                    meta: dict[str, Any]) -> tuple[float, float]:
        """Our (τ, v_th) from the NIR decay per step and input scale ``w``."""
        if not v_th > 0 or not w > 0:
            raise NIRError(f"node {key}: threshold {v_th} and input scale {w} must be positive")
        if not -1e-12 <= tau <= 1.0:
            raise NIRError(f"node {key}: time constant shorter than one step (dt = {self.dt:g} s); pass the "
                           f"writer's dt (--nir-dt)")
        tau = min(1.0, max(0.0, tau))
        folded = abs(w - 1.0) > 1e-6  # below that it is the rounding of the file's floats
        th = v_th / w if folded else v_th
        if "tau" in meta or "v_th" in meta:
            mt, mv = meta.get("tau"), meta.get("v_th")
            if not isinstance(mt, int | float) or not isinstance(mv, int | float) or \
                    not math.isclose(mt, tau, rel_tol=1e-6, abs_tol=1e-9) or \
                    not math.isclose(mv, th, rel_tol=1e-6, abs_tol=1e-9):
                raise NIRError(f"node {key}: esl-snn metadata (tau {mt}, v_th {mv}) disagrees with the NIR "
                               f"parameters (tau {tau:.6g}, v_th {th:.6g}); the file was edited")
            return float(mt), float(mv)
        if folded:
            self.notes.append(f"node {key}: input scale R*dt/tau = {w:.6g} folded into the threshold "
                              f"({v_th:g} -> {th:.6g})")
        return tau, th

    def _reset_zero(self, key: str, node: Any) -> None:
        v_reset = getattr(node, "v_reset", None)
        if v_reset is not None and np.any(_array(node, "v_reset", key) != 0):
            raise NIRError(f"node {key}: resets to v_reset != 0; esl-snn's neurons reset to zero")
        if not self.ours and not any("v_reset = 0" in n for n in self.notes):
            self.notes.append("v_reset = 0 read as reset to zero; snntorch's exporter writes 0 for every "
                              "Leaky, also for its default reset_mechanism='subtract', so a network that "
                              "subtracts will not agree: build it with reset_mechanism='zero'")

    def _lif(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> LIF:
        tau_m, r = _array(node, "tau", key), _array(node, "r", key)
        leak, vth = _array(node, "v_leak", key), _array(node, "v_threshold", key)
        shape = self._neuron_shape(key, [tau_m, r, leak, vth], in_shape)
        if np.any(leak != 0):
            raise NIRError(f"node {key}: v_leak != 0; esl-snn's LIF leaks toward zero")
        self._reset_zero(key, node)
        # in the file's own precision: a float32 snntorch file then gives back its float32 beta
        ft = np.result_type(_raw_dtype(node, "tau"), _raw_dtype(node, "r"), np.float32).type
        t, rr = ft(_uniform(tau_m, "tau", key)), ft(_uniform(r, "r", key))
        if not t > 0 or not math.isfinite(rr) or rr <= 0:
            raise NIRError(f"node {key}: tau {t} and r {rr} must be positive and finite")
        dt = ft(self.dt)
        if math.isfinite(t):
            tau, w = float(ft(1) - dt / t), float(rr * dt / t)
        else:  # no leak
            tau, w = 1.0, float(rr * dt)
        tau, th = self._lif_params(key, tau, _uniform(vth, "v_threshold", key), w, meta)
        return LIF(shape, tau, th)

    def _if(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> LIF:
        r, vth = _array(node, "r", key), _array(node, "v_threshold", key)
        shape = self._neuron_shape(key, [r, vth], in_shape)
        self._reset_zero(key, node)
        ft = np.result_type(_raw_dtype(node, "r"), np.float32).type
        rr = ft(_uniform(r, "r", key))
        if not math.isfinite(rr):
            raise NIRError(f"node {key}: r must be finite")
        tau, th = self._lif_params(key, 1.0, _uniform(vth, "v_threshold", key), float(rr * ft(self.dt)), meta)
        return LIF(shape, tau, th)

    def _cubalif(self, key: str, node: Any, meta: dict[str, Any], in_shape: tuple[int, ...]) -> SingleSpikeIF:
        if meta.get("node") != "SingleSpikeIF":
            raise NIRError(f"node {key} is a NIR CubaLIF (current-based LIF, e.g. snntorch's Synaptic): "
                           f"esl-snn's LIF has no synaptic current")
        th, ts = meta.get("threshold"), meta.get("tau_syn")
        if not isinstance(th, int | float) or not isinstance(ts, int | float) or not th > 0 or not ts > 0:
            raise NIRError(f"node {key}: single-spike metadata without a positive threshold and tau_syn")
        if _uniform(_array(node, "v_threshold", key), "v_threshold", key) != th or \
                _uniform(_array(node, "tau_syn", key), "tau_syn", key) != ts:
            raise NIRError(f"node {key}: esl-snn metadata disagrees with the CubaLIF parameters")
        shape = self._neuron_shape(key, [_array(node, "v_threshold", key)], in_shape)
        return SingleSpikeIF(shape, float(th), float(ts))


def from_nir(ngraph: Any, options: ReadOptions | None = None, source: str = "") -> tuple[Graph, list[str]]:
    """Our graph from a ``nir.NIRGraph`` (read or built in memory), and the reader's notes."""
    reader = _Reader(ngraph, options or ReadOptions(), source)
    graph = reader.run()
    return graph, reader.notes
