"""The exported network as files: framework-neutral, read back without torch or Lava.

A directory::

    manifest.json      format tag and version, the source checkpoint's sha256, the
                       input code, the time/delay conventions, one entry per stage
    stage_00.npz ...   one file per stage: the synaptic matrix (CSR arrays ``data``,
                       ``indices``, ``indptr``, ``shape``, zeros dropped; or ``dense``)
                       and ``bias`` if any; float64, plain arrays (no pickles)

A *stage* is one neuron population and the matrix that feeds it: the chain of linear
nodes between two neuron layers of the lowered graph (Conv2d, AvgPool2d, Flatten,
Affine) composed into one matrix in torch's flatten order. One matrix per stage keeps
the delay at one step per neuron layer, whatever pooling sits between.

A stage reads the spikes of its ``sources`` (earlier stages, −1 for the input; by
default the stage before it), concatenated in that order: a residual block's output
neurons read the block's second convolution and its shortcut (an identity, or a 1×1
convolution, from the block's input neurons) through one matrix, and the Lava network
gets one connection process per source, all into the same neurons. Paths of different
lengths are aligned in time by *relay* stages (identity weights into LIF neurons with
du = dv = 1 and vth = 0.5, which copy their input spikes one step later): a stage at
depth d (its longest path from the input, in connection processes) reads every source
through d − 1 − depth(source) relays, so all its inputs carry the same reference step.

Neurons (``stage.neuron["type"]``):

- ``lif``: u = (1 − du)·u + a_in; v = (1 − dv)·v + u + bias; spike when v > vth,
  v ← 0 (du = 1, dv = 1 − τ; the paper's u(t) = τ·u(t−1) + I(t) with the bias in I);
- ``fire-once``: the single-spike neuron in discrete time, see single_spike_dt.py;
- ``readout``: no neuron, the per-step output is a_in + bias (the logits). A graph that
  ends in a spiking layer (an snntorch network read from NIR, say) gets one more stage,
  an identity matrix into a readout (``neuron["counts"]`` names the layer): its sums are
  that layer's spike counts, the class scores.

Time (``manifest["time"]``):

- ``clock = "pipelined"`` (LIF networks): each connection process delays by one
  step, so a stage at depth d works on the reference's step t − 1 − d at simulator
  step t (1-based), and its neurons are reset at the first step of each sample,
  ``t % T == (1 + d) % T`` (d = k for the k-th stage of a chain, 1-based; the manifest
  records each stage's ``delay``). Warm-up steps (t ≤ d) see no input but the bias;
  that reset wipes whatever they did, so no bias gating is needed.
- ``clock = "shared"`` (single-spike): the one-step delay of each connection is the
  model's own synaptic delay (a spike at step n charges the next layer from n + 1),
  so all layers run on one clock: sample s step n is simulator step s·P + n + 1,
  every layer resets at n = 0 and drops that step's input.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from esl_export import single_spike_dt as sdt
from esl_export.files import export_folder, jsonable, sha256_file
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
    Readout,
    SingleSpikeIF,
)

FORMAT = "esl-snn/lava-network"
FORMAT_VERSION = 2  # 2: stages name their sources (residual networks); 1 is read as a chain
MANIFEST = "manifest.json"


class ArtifactError(Exception):
    """An artifact that cannot be written or read; the message is one line."""


@dataclass
class Stage:
    """One connection process and the neurons it feeds."""

    name: str
    weight: sparse.csr_matrix | np.ndarray  # [out, in] float64; ndarray for a dense layer
    bias: np.ndarray | None  # [out] float64
    neuron: dict[str, Any]  # type and parameters, see the module docstring
    graded_input: bool  # analog input (needs num_message_bits > 0), else binary spikes
    shape: tuple[int, ...]  # the neurons' shape
    layer: str = ""  # the neuron node of the lowered graph (PyTorch's module name); "" for a relay
    sources: tuple[int, ...] | None = None  # stages whose spikes it reads (-1: input); None: the one before

    @property
    def connection(self) -> str:
        return "dense" if isinstance(self.weight, np.ndarray) else "sparse"

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    def nnz(self) -> int:
        return int(np.count_nonzero(self.weight)) if isinstance(self.weight, np.ndarray) \
            else int(self.weight.nnz)

    def csr(self) -> sparse.csr_matrix:
        return sparse.csr_matrix(self.weight) if isinstance(self.weight, np.ndarray) else self.weight


@dataclass
class Artifact:
    """What an export holds; ``manifest`` is the parsed manifest.json."""

    kind: str  # "lif" | "single-spike"
    stages: list[Stage]
    input: dict[str, Any]  # shape, encoding, analog
    time: dict[str, Any]
    source: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_per_sample(self) -> int:
        return int(self.time["steps_per_sample"])

    def sources(self, k: int) -> tuple[int, ...]:
        """The stages stage k reads, in the order of its matrix's column blocks (−1: input)."""
        src = self.stages[k].sources
        return (k - 1,) if src is None else src

    def source_size(self, j: int) -> int:
        return self.n_in if j < 0 else self.stages[j].n_out

    def depths(self) -> list[int]:
        """Each stage's depth: connection processes on its longest path from the input."""
        out: list[int] = []
        for k in range(len(self.stages)):
            out.append(1 + max((out[j] if j >= 0 else 0) for j in self.sources(k)))
        return out

    def column_blocks(self, k: int) -> list[tuple[int, int, int]]:
        """(source, first column, end column) of stage k's matrix per source."""
        blocks, start = [], 0
        for j in self.sources(k):
            blocks.append((j, start, start + self.source_size(j)))
            start += self.source_size(j)
        return blocks

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input["shape"]))

    def dt_network(self) -> sdt.DTNetwork:
        """The discrete-time reference network of a single-spike artifact (same numbers)."""
        if self.kind != "single-spike":
            raise ArtifactError("only single-spike artifacts have a discrete-time mapping")
        layers = [sdt.DTLayer(s.name, np.asarray(s.csr().todense()), float(s.neuron["du"]),
                              float(s.neuron["vth"])) for s in self.stages]
        return sdt.DTNetwork(layers, float(self.time["dt"]), self.steps_per_sample,
                             float(self.time["tau_syn"]), dict(self.input["encoding"]))


# ----------------------------------------------------------------- from the lowered graph


def _node_matrix(node: Affine | Conv2d | AvgPool2d) -> tuple[sparse.csr_matrix, np.ndarray | None]:
    """Matrix in torch's flatten order (masked entries dropped) and per-output bias."""
    if isinstance(node, Affine):
        mat = sparse.csr_matrix(np.asarray(node.weight, np.float64) * node.mask)
        bias = None if node.bias is None else np.asarray(node.bias, np.float64)
        return mat, bias
    mat = node.unrolled().astype(np.float64).tocsr()
    mat.eliminate_zeros()
    bias = getattr(node, "bias", None)
    if bias is not None:  # one bias per output channel, repeated over the map
        per_map = int(np.prod(node.output_shape[1:]))
        bias = np.repeat(np.asarray(bias, np.float64), per_map)
    return mat, bias


RELAY = {"type": "lif", "du": 1.0, "dv": 1.0, "vth": 0.5, "reset": "zero", "compare": ">", "tau": 0.0,
         "relay": True}


def _chain(graph: Graph, name: str) -> tuple[str, sparse.csr_matrix | None, np.ndarray | None, bool,
                                             list[str]]:
    """Walk back from ``name`` through linear nodes to the neuron layer (or input) they read:
    (that node, the composed matrix or None for an empty chain, the carried bias, whether the
    chain is one fully connected Affine, the linear nodes' names from the source on)."""
    chain = []
    while not isinstance(graph.nodes[name], LIF | Readout | Input):
        node = graph.nodes[name]
        if not isinstance(node, Affine | Conv2d | AvgPool2d | Flatten) or len(graph.predecessors(name)) != 1:
            raise GraphError(f"{name}: the LIF export cannot place a {type(node).__name__} node here")
        chain.append(name)
        name = graph.predecessors(name)[0]
    mat: sparse.csr_matrix | None = None
    bias: np.ndarray | None = None
    linear = [c for c in reversed(chain) if not isinstance(graph.nodes[c], Flatten)]
    dense = len(linear) == 1
    for c in linear:  # from the source forward
        node = graph.nodes[c]
        assert isinstance(node, Affine | Conv2d | AvgPool2d)
        m, b = _node_matrix(node)
        dense = dense and isinstance(node, Affine) and bool(node.mask.all())
        if mat is None:
            mat, bias = m, b
        else:  # y = m·(mat·x + bias) + b
            carried = None if bias is None else m @ bias
            bias = carried if b is None else (b if carried is None else carried + b)
            mat = (m @ mat).tocsr()
            mat.eliminate_zeros()
    return name, mat, bias, dense, linear


def stages_of_lif_graph(graph: Graph) -> list[Stage]:
    """One stage per neuron layer (see the module docstring), with relays where a residual
    path is shorter than the other."""
    inp = graph.nodes[graph.input]
    assert isinstance(inp, Input)
    analog = inp.encoding.get("kind") in ("direct", "frames")
    n_input = int(np.prod(inp.shape))
    stages: list[Stage] = []
    index: dict[str, int] = {graph.input: -1}
    depth: dict[int, int] = {-1: 0}
    relays: dict[tuple[int, int], int] = {}  # (source, steps of delay) -> relay stage

    def size(j: int) -> int:
        return n_input if j < 0 else stages[j].n_out

    def delayed(j: int, steps: int) -> int:
        """The stage carrying source j's spikes ``steps`` steps later (a chain of relays)."""
        if steps == 0:
            return j
        if (j, steps) not in relays:
            if j < 0 and analog:
                raise GraphError("a residual path reads the analog input directly; it cannot be delayed")
            prev = delayed(j, steps - 1)
            shape = tuple(inp.shape) if prev < 0 else stages[prev].shape
            label = stages[j].layer if j >= 0 else "input"
            eye = sparse.identity(size(prev), np.float64, format="csr")
            stages.append(Stage(f"relay:{label}:{steps}", eye, None, dict(RELAY), False, shape, "", (prev,)))
            depth[len(stages) - 1] = depth[prev] + 1
            relays[(j, steps)] = len(stages) - 1
        return relays[(j, steps)]

    for name, node in list(graph.nodes.items())[1:]:
        if not isinstance(node, LIF | Readout):
            continue
        preds = graph.predecessors(name)
        if len(preds) != 1:
            raise GraphError(f"{name}: a neuron layer with {len(preds)} inputs")
        residual = isinstance(graph.nodes[preds[0]], Add)
        parts = [_chain(graph, p) for p in (graph.predecessors(preds[0]) if residual else preds)]
        if not residual and parts[0][1] is None:
            raise GraphError(f"{name}: a neuron layer without a connection before it")
        d = 1 + max(depth[index[src]] for src, *_ in parts)
        srcs = [delayed(index[src], d - 1 - depth[index[src]]) for src, *_ in parts]
        blocks, bias = [], None
        for j, (_, mat, b, _, _) in zip(srcs, parts, strict=True):
            blocks.append(sparse.identity(size(j), np.float64, format="csr") if mat is None else mat)
            if b is not None:
                bias = b if bias is None else bias + b
        weight_csr = sparse.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0].tocsr()
        weight_csr.sort_indices()
        if isinstance(node, LIF):
            if node.reset != "zero":
                raise GraphError(f"{name}: Lava's LIF resets to zero, not {node.reset!r}")
            neuron = {"type": "lif", "du": 1.0, "dv": 1.0 - node.tau, "vth": node.v_th, "reset": "zero",
                      "compare": ">", "tau": node.tau}
        else:
            neuron = {"type": "readout"}
        dense_affine = len(parts) == 1 and parts[0][3]
        weight: sparse.csr_matrix | np.ndarray = (np.asarray(weight_csr.todense()) if dense_affine
                                                  else weight_csr)
        label = "+".join(n for part in parts for n in part[4]) or name
        chain_sources = None if srcs == [len(stages) - 1] else tuple(srcs)
        stages.append(Stage(label, weight, bias, neuron, analog and srcs == [-1], tuple(node.output_shape),
                            name, chain_sources))
        index[name] = len(stages) - 1
        depth[len(stages) - 1] = d
    if not stages:
        raise GraphError("the LIF export expects the graph to end with a Readout or a LIF layer")
    if stages[-1].neuron["type"] != "readout":  # ends in spiking neurons: a readout counts their spikes
        last = stages[-1]
        count = sparse.identity(last.n_out, np.float64, format="csr")
        stages.append(Stage(f"count:{last.layer}", count, None, {"type": "readout", "counts": last.layer},
                            False, last.shape, "output"))
    return stages


def from_graph(graph: Graph, source: dict[str, Any], dt: float = sdt.DEFAULT_DT,
               window: float = sdt.DEFAULT_WINDOW) -> Artifact:
    """The artifact of a lowered graph; ``source`` describes the checkpoint."""
    inp = graph.nodes[graph.input]
    assert isinstance(inp, Input)
    kinds = {type(n) for n in graph.nodes.values()}
    if SingleSpikeIF in kinds:
        net = sdt.network(graph, dt, window)
        stages = []
        neurons = [n for n, v in graph.nodes.items() if isinstance(v, SingleSpikeIF)]
        affines = [n for n, v in graph.nodes.items() if isinstance(v, Affine)]
        for layer, name, neuron_name in zip(net.layers, affines, neurons, strict=True):
            node = graph.nodes[name]
            assert isinstance(node, Affine)
            weight: sparse.csr_matrix | np.ndarray = layer.weight if node.mask.all() else \
                sparse.csr_matrix(layer.weight)
            stages.append(Stage(name, weight, None, {"type": "fire-once", "du": layer.du, "dv": 0.0,
                                                     "vth": layer.threshold, "compare": ">",
                                                     "max_spikes": 1, "weights_scaled_by": "du"},
                                False, (layer.weight.shape[0],), neuron_name))
        time = {"clock": "shared", "steps_per_sample": net.steps, "dt": net.dt, "tau_syn": net.tau_syn,
                "window": window, "delay_per_stage": 1,
                "note": "sample s, step n = simulator step s*P + n + 1 (P = steps_per_sample) in every "
                        "layer; a spike at step n stands for time n*dt and charges the next layer from "
                        "step n+1; every layer resets at n = 0 and drops that step's input"}
        return Artifact("single-spike", stages, {"shape": list(inp.shape), "encoding": dict(inp.encoding),
                                                 "analog": False}, time, source)
    if inp.encoding.get("kind") not in ("direct", "rate", "frames"):
        raise GraphError(f"the LIF export cannot stream {inp.encoding.get('kind')!r} input")
    stages = stages_of_lif_graph(graph)
    T = int(inp.encoding["T"])
    time = {"clock": "pipelined", "steps_per_sample": T, "delay_per_stage": 1,
            "note": "stage k (1-based) at simulator step t (1-based) computes the reference's step "
                    "t-1-k; its neurons reset when t % T == (1 + k) % T; the readout of sample s is "
                    "the sum over its T steps"}
    return Artifact("lif", stages, {"shape": list(inp.shape), "encoding": dict(inp.encoding),
                                    "analog": stages[0].graded_input}, time, source)


# ----------------------------------------------------------------- files


def _stage_entry(art: Artifact, k: int, file: str, depth: int) -> dict[str, Any]:
    stage = art.stages[k]
    return {"name": stage.name, "layer": stage.layer, "file": file, "connection": stage.connection,
            "sources": list(art.sources(k)),
            "weight_shape": [stage.n_out, stage.n_in], "nnz": stage.nnz(),
            "density": stage.nnz() / max(1, stage.n_out * stage.n_in),
            "bias": stage.bias is not None, "graded_input": stage.graded_input,
            "shape": list(stage.shape), "neuron": stage.neuron,
            # steps this stage's sample windows lag the source (see "time")
            "delay": depth}


def write(art: Artifact, out_dir: str | Path) -> Path:
    """Write the artifact into a temporary folder beside ``out_dir`` and rename it into
    place, so a crash never leaves a half-written export where a good one was."""
    with export_folder(out_dir, MANIFEST, FORMAT, "Lava export", ArtifactError) as tmp:
        entries, files = [], {}
        pipelined = art.time.get("clock") == "pipelined"
        depths = art.depths()
        for k, stage in enumerate(art.stages):
            fname = f"stage_{k:02d}.npz"
            arrays: dict[str, np.ndarray] = {}
            if isinstance(stage.weight, np.ndarray):
                arrays["dense"] = np.asarray(stage.weight, np.float64)
            else:
                csr = stage.weight.tocsr()
                arrays.update(data=csr.data.astype(np.float64), indices=csr.indices.astype(np.int64),
                              indptr=csr.indptr.astype(np.int64), shape=np.asarray(csr.shape, np.int64))
            if stage.bias is not None:
                arrays["bias"] = np.asarray(stage.bias, np.float64)
            with open(tmp / fname, "wb") as f:
                np.savez(f, **arrays)
            files[fname] = sha256_file(tmp / fname)
            entries.append(_stage_entry(art, k, fname, depths[k] if pipelined else 0))
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "backend": "lava", "kind": art.kind,
            "source": art.source, "input": art.input, "time": art.time, "stages": entries,
            "output": (({"type": "spike-count", "decode": "argmax over classes of the output layer's spike "
                         "counts (an identity stage sums them)"} if art.stages[-1].neuron.get("counts") else
                        {"type": "readout", "decode": "argmax over classes of the summed a_in + bias"})
                       if art.kind == "lif" else
                       {"type": "first-spike", "decode": "earliest output spike; within a step the "
                        "crossing is interpolated, t = (n - (v - vth)/u)*dt; none fired: class -1"}),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(jsonable(manifest), indent=1) + "\n")
    art.manifest = manifest
    return Path(out_dir)


def _fail(path: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{path}: {what}")


def read(path: str | Path) -> Artifact:
    """Read and check an export; any problem is one ArtifactError line."""
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such export directory")
    if not path.is_dir():
        raise _fail(path, "not a directory (an esl-export --target lava folder was expected)")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise _fail(path, f"no {MANIFEST}: not an esl-snn Lava export")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(mpath, f"unreadable manifest ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise _fail(mpath, f"not an esl-snn Lava export (format {found!r}, expected {FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise _fail(mpath, f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise _fail(mpath, f"format version {version} is newer than this esl-snn reads ({FORMAT_VERSION})")
    try:
        kind = manifest["kind"]
        entries = manifest["stages"]
        files = manifest["files"]
        time, inp, source = manifest["time"], manifest["input"], manifest["source"]
        if kind not in ("lif", "single-spike") or not isinstance(entries, list) or not entries:
            raise ValueError("kind or stages")
        if not isinstance(files, dict) or not isinstance(time, dict) or not isinstance(source, dict):
            raise ValueError("files, time or source")
        steps = time["steps_per_sample"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100_000:
            raise ValueError("steps_per_sample")
        enc = inp["encoding"]
        if not isinstance(enc, dict):
            raise ValueError("input encoding")
        if kind == "single-spike":
            dt, tau_syn = float(time["dt"]), float(time["tau_syn"])
            if time.get("clock") != "shared" or not (0 < dt < float("inf") and 0 < tau_syn < float("inf")):
                raise ValueError("time: clock, dt or tau_syn")
        elif time.get("clock") != "pipelined" or enc.get("kind") not in ("direct", "rate", "frames") \
                or enc.get("T") != steps:
            raise ValueError("time: clock, or steps_per_sample against the input encoding's T")
        shape = [int(s) for s in inp["shape"]]
        if not 1 <= len(shape) <= 4 or min(shape) < 1 or int(np.prod(shape, dtype=np.float64)) > 1 << 28:
            raise ValueError("input shape")
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(mpath, f"malformed manifest (field {exc})") from None
    stages: list[Stage] = []
    n_input = int(np.prod(shape))
    for k, entry in enumerate(entries):
        try:
            fname = str(entry["file"])
            fpath = path / fname
            if Path(fname).name != fname or not fpath.is_file():
                raise _fail(path, f"stage {k}: file {fname!r} is missing")
            if sha256_file(fpath) != files.get(fname):
                raise _fail(fpath, "checksum does not match the manifest (corrupted or edited)")
            arrays = _load_arrays(fpath)
            weight = _weight(fpath, arrays)
            bias = arrays.get("bias")
            if bias is not None and (bias.ndim != 1 or not np.issubdtype(bias.dtype, np.floating)
                                     or not np.isfinite(bias).all()):
                raise _fail(fpath, "bias is not a finite 1-D float array")
            out_shape = tuple(int(s) for s in entry["shape"])
            if not isinstance(entry["graded_input"], bool) or not isinstance(entry["neuron"], dict):
                raise ValueError("graded_input or neuron")
            sources = _sources(entry.get("sources"), k, kind)
            stage = Stage(str(entry["name"]), weight, bias, dict(entry["neuron"]),
                          entry["graded_input"], out_shape, str(entry.get("layer", "")),
                          None if sources == (k - 1,) else sources)
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            msg = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise _fail(path, f"stage {k}: unreadable ({msg})") from None
        n_src = sum(n_input if j < 0 else stages[j].n_out for j in sources)
        if stage.n_in != n_src or stage.n_out != int(np.prod(out_shape)) or (
                bias is not None and bias.shape != (stage.n_out,)):
            raise _fail(path, f"stage {k} ({stage.name}): weight {stage.weight.shape} does not fit its "
                              f"sources ({n_src} values) or its neurons {out_shape}")
        if any(j >= 0 and stages[j].neuron.get("type") == "readout" for j in sources):
            raise _fail(path, f"stage {k}: reads a readout stage, which sends no spikes")
        _check_neuron(path, k, stage.neuron, kind, last=k == len(entries) - 1)
        stages.append(stage)
    return Artifact(kind, stages, inp, time, source, manifest)


def _sources(value: Any, k: int, kind: str) -> tuple[int, ...]:
    """A stage's sources from the manifest: absent (format 1) means the stage before."""
    if value is None:
        return (k - 1,)
    if not isinstance(value, list) or not value or any(
            isinstance(j, bool) or not isinstance(j, int) or not -1 <= j < k for j in value) \
            or len(set(value)) != len(value):
        raise ValueError(f"sources {value!r}"[:80])
    if kind == "single-spike" and value != [k - 1]:
        raise ValueError("sources: the single-spike network is a chain")
    return tuple(value)


#: the most memory a stage file's arrays may take once loaded
MAX_STAGE_BYTES = 4 << 30


def _load_arrays(fpath: Path) -> dict[str, np.ndarray]:
    """A stage file's arrays, refused before loading if they would not fit in memory."""
    with zipfile.ZipFile(fpath) as archive:
        size = sum(info.file_size for info in archive.infolist())
    if size > MAX_STAGE_BYTES:
        raise _fail(fpath, f"its arrays would take {size / 2**30:.1f} GiB; refusing to load them")
    with np.load(fpath, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _weight(fpath: Path, arrays: dict[str, np.ndarray]) -> sparse.csr_matrix | np.ndarray:
    """The stage's matrix, its structure checked before scipy or Lava index with it."""
    if "dense" in arrays:
        dense = arrays["dense"]
        if dense.ndim != 2 or not np.issubdtype(dense.dtype, np.floating) or not np.isfinite(dense).all():
            raise _fail(fpath, "dense weight is not a finite 2-D float array")
        return np.asarray(dense, np.float64)
    data, indices, indptr, shape = (arrays[k] for k in ("data", "indices", "indptr", "shape"))
    if shape.shape != (2,) or not np.issubdtype(shape.dtype, np.integer) or (shape < 0).any() \
            or (shape > 1 << 31).any():
        raise _fail(fpath, f"CSR shape {shape.tolist()} is not two sizes")
    n_out, n_in = (int(s) for s in shape)
    for name, arr in (("indices", indices), ("indptr", indptr)):
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise _fail(fpath, f"CSR {name} is not a 1-D integer array")
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.floating) or not np.isfinite(data).all():
        raise _fail(fpath, "CSR data is not a finite 1-D float array")
    if len(indptr) != n_out + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() \
            or indptr[-1] != len(indices) or len(indices) != len(data):
        raise _fail(fpath, "CSR row pointers do not fit the data (not 0 .. nnz, non-decreasing, one per row)")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_in):
        raise _fail(fpath, f"CSR column indices outside 0..{n_in - 1}")
    return sparse.csr_matrix((data.astype(np.float64), indices, indptr), shape=(n_out, n_in))


_NEURON_FIELDS = {"lif": ("du", "dv", "vth"), "fire-once": ("du", "vth"), "readout": ()}


def _check_neuron(path: Path, k: int, neuron: dict[str, Any], kind: str, last: bool) -> None:
    """The neuron of stage k fits the network kind and has finite parameters."""
    typ = neuron.get("type")
    if typ not in _NEURON_FIELDS:
        raise _fail(path, f"stage {k}: unknown neuron type {typ!r}")
    want = "fire-once" if kind == "single-spike" else ("readout" if last else "lif")
    if typ != want:
        raise _fail(path, f"stage {k}: a {kind} network needs {want} neurons here, not {typ}")
    for name in _NEURON_FIELDS[typ]:
        value = neuron.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(path, f"stage {k}: neuron parameter {name} = {value!r} is not a number")
        if (name == "vth" and value <= 0) or (name in ("du", "dv") and not 0 <= value <= 1):
            raise _fail(path, f"stage {k}: neuron parameter {name} = {value!r} is out of range")
