"""One time step of a lowered LIF network as an ONNX graph, and a runner for it.

The ONNX model computes a single step; the membrane potentials are explicit graph
inputs and outputs, so the caller carries the state from one call to the next (the
same graph serves any number of steps, batch sizes and streaming use).

Format
------
- Opset 17 of the default ONNX domain only (``OPSET``), IR version 8; every tensor is
  float32. ``batch`` is a symbolic dimension.
- Graph input ``input``: ``[batch, *input_shape]``, the *encoded* input of one step
  (the analog pixels for direct coding, one Bernoulli draw for rate coding, one frame
  for DVS data). Encoding is the caller's job; see ``esl_export.reference.encode`` and
  the ``encoding`` metadata entry.
- For every LIF node ``N`` (in graph order): graph input ``u_in:N``, the membrane
  potential after the previous step's reset (zeros at step 0), and graph outputs
  ``u_out:N`` (the potential after this step's reset, next step's ``u_in:N``) and
  ``spikes:N`` (0.0 / 1.0); all ``[batch, *N.shape]``.
- Graph output ``output``: the value of the graph's output node at this step: a
  Readout's logits ``[batch, classes]``, or the spikes of a final LIF node.
- ``metadata_props``: ``format`` = ``esl-snn/onnx-step``, ``format_version`` = ``1``,
  ``encoding`` (JSON of the Input node's encoding, with ``kind`` and ``T``),
  ``lif_nodes`` (JSON list of the LIF node names, in order), ``model`` (the model
  name from the graph's meta, empty if unknown).

Step semantics
--------------
As in ``esl_export.reference``: every node at step t reads its inputs at step t (no
per-connection delay). Connections: Affine → Gemm (``transB = 1``), Conv2d → Conv,
AvgPool2d → AveragePool (kernel = stride), Flatten → Flatten(axis 1), Add → Add/Sum,
Readout → Identity; the stored weights are ``weight * mask``, masked synapses exact
zeros. A LIF node computes, in PyTorch's order so that float32 results agree::

    u      = u_in:N * tau + I          (Mul, then Add)
    fire   = u > v_th                  (strict)
    spikes = float(fire)
    u_out  = fire ? 0 : u              (hard reset to zero)

The single-spike network (SingleSpikeIF, an event-time model) has no per-step form
and is refused with a GraphError.

Running
-------
``OnnxStep`` holds one onnxruntime session (CPU, ``threads`` intra-op threads) and
runs one step at a time; ``run_steps`` runs a whole ``[T, B, ...]`` sequence from
zero state. By default onnxruntime's optimisations stop at level EXTENDED: with it,
spikes and logits equal float32 PyTorch's on the tested models (mlp-lif, VGGSNN);
the NCHWc convolution layout of level ALL (``fast_conv=True``) changes the float32
summation order of convolutions and can flip neurons that sit within rounding
distance of threshold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17: loadable by older runtimes too
FORMAT = "esl-snn/onnx-step"
FORMAT_VERSION = 1
INPUT = "input"
OUTPUT = "output"


def u_in(name: str) -> str:
    return f"u_in:{name}"


def u_out(name: str) -> str:
    return f"u_out:{name}"


def spikes(name: str) -> str:
    return f"spikes:{name}"


def _dims(shape: tuple[int, ...]) -> list[int | str]:
    return ["batch", *(int(s) for s in shape)]


class _Emitter:
    """Collects ONNX nodes and initializers; ``value[name]`` is the tensor carrying
    a graph node's output at this step."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.value: dict[str, str] = {}

    def const(self, name: str, array: np.ndarray, dtype: type = np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output

    def shaped(self, src: str, shape: tuple[int, ...], dst: str) -> str:
        """``src``'s value reshaped to ``[batch, *shape]`` where the graph lets the
        shapes differ (Affine and Flatten read any layout with the right size)."""
        have = tuple(self.graph.nodes[src].output_shape)
        if have == tuple(shape):
            return self.value[src]
        target = self.const(f"{dst}.shape", np.array([0, *shape]), np.int64)  # 0: keep the batch
        return self.op("Reshape", [self.value[src], target], f"x:{dst}:reshaped", f"{dst}/Reshape")

    def emit(self, name: str) -> None:
        node = self.graph.nodes[name]
        preds = self.graph.predecessors(name)
        out = f"x:{name}"
        if len(preds) != 1 and not isinstance(node, Add):
            raise GraphError(f"onnx step graph: node {name!r} ({type(node).__name__}) has "
                             f"{len(preds)} inputs, expected 1")
        if isinstance(node, Affine):
            x = self.value[preds[0]]
            if len(self.graph.nodes[preds[0]].output_shape) != 1:
                x = self.op("Flatten", [x], f"x:{name}:flat", f"{name}/Flatten", axis=1)
            args = [x, self.const(f"{name}.weight", node.weight * node.mask)]
            if node.bias is not None:
                args.append(self.const(f"{name}.bias", node.bias))
            self.value[name] = self.op("Gemm", args, out, f"{name}/Gemm", transB=1)
        elif isinstance(node, Conv2d):
            x = self.shaped(preds[0], node.input_shape, name)
            args = [x, self.const(f"{name}.weight", node.weight * node.mask)]
            if node.bias is not None:
                args.append(self.const(f"{name}.bias", node.bias))
            kh, kw = (int(k) for k in node.weight.shape[2:])
            ph, pw = (int(p) for p in node.padding)
            self.value[name] = self.op("Conv", args, out, f"{name}/Conv", kernel_shape=[kh, kw],
                                       strides=[int(s) for s in node.stride], pads=[ph, pw, ph, pw])
        elif isinstance(node, AvgPool2d):
            x = self.shaped(preds[0], node.input_shape, name)
            k = int(node.kernel)
            self.value[name] = self.op("AveragePool", [x], out, f"{name}/AveragePool",
                                       kernel_shape=[k, k], strides=[k, k])
        elif isinstance(node, Flatten):
            self.value[name] = self.op("Flatten", [self.value[preds[0]]], out, f"{name}/Flatten", axis=1)
        elif isinstance(node, Add):
            args = [self.shaped(p, node.shape, f"{name}.{i}") for i, p in enumerate(preds)]
            op_type = "Add" if len(args) == 2 else "Sum"
            self.value[name] = self.op(op_type, args, out, f"{name}/{op_type}")
        elif isinstance(node, Readout):
            self.value[name] = self.op("Identity", [self.shaped(preds[0], node.shape, name)], out,
                                       f"{name}/Identity")
        elif isinstance(node, LIF):
            self.lif(name, node, self.shaped(preds[0], node.shape, name))
        else:
            raise GraphError(f"onnx step graph: node {name!r} is a {type(node).__name__}, "
                             "which has no per-step ONNX form")

    def lif(self, name: str, node: LIF, current: str) -> None:
        tau = self.const(f"{name}.tau", np.array(node.tau, np.float32))
        v_th = self.const(f"{name}.v_th", np.array(node.v_th, np.float32))
        zero = self.const(f"{name}.reset", np.array(0.0, np.float32))
        # torch: u = tau * u + I (float32 mul, then add); same rounding in this order
        decayed = self.op("Mul", [u_in(name), tau], f"x:{name}:decayed", f"{name}/Mul")
        u = self.op("Add", [decayed, current], f"x:{name}:u", f"{name}/Add")
        fire = self.op("Greater", [u, v_th], f"x:{name}:fire", f"{name}/Greater")
        self.op("Cast", [fire], spikes(name), f"{name}/Cast", to=TensorProto.FLOAT)
        # torch's u * (1 - s) is u or +0 exactly (u > v_th > 0 where s = 1): a select
        self.op("Where", [fire, zero, u], u_out(name), f"{name}/Where")
        dims = _dims(node.shape)
        self.inputs.append(helper.make_tensor_value_info(u_in(name), TensorProto.FLOAT, dims))
        self.outputs += [helper.make_tensor_value_info(u_out(name), TensorProto.FLOAT, dims),
                         helper.make_tensor_value_info(spikes(name), TensorProto.FLOAT, dims)]
        self.value[name] = spikes(name)


def lif_nodes(graph: Graph) -> list[str]:
    """Names of the graph's LIF nodes, in order: the state the step graph carries."""
    return [n for n, v in graph.nodes.items() if isinstance(v, LIF)]


def to_onnx(graph: Graph, *, name: str = "esl-snn-step") -> onnx.ModelProto:
    """The ONNX model of one time step of ``graph`` (see the module docstring)."""
    for node_name, node in graph.nodes.items():
        if not isinstance(node, Input | Affine | Conv2d | AvgPool2d | Flatten | Add | LIF | Readout):
            what = ("the single-spike (event-time) neuron, which has no per-step form"
                    if isinstance(node, SingleSpikeIF) else "a node type the ONNX step export lacks")
            raise GraphError(f"onnx step graph: node {node_name!r} is a {type(node).__name__}, {what}")
    inp = graph.nodes[graph.input]
    assert isinstance(inp, Input)
    em = _Emitter(graph)
    em.value[graph.input] = INPUT
    em.inputs.append(helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, _dims(inp.output_shape)))
    for node_name in list(graph.nodes)[1:]:
        em.emit(node_name)
    last = graph.nodes[graph.output]
    # ":" in the node name keeps it apart from the graph's node names ("output" is a Readout)
    em.op("Identity", [em.value[graph.output]], OUTPUT, f"{OUTPUT}:Identity")
    em.outputs.insert(0, helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, _dims(last.output_shape)))
    onnx_graph = helper.make_graph(em.nodes, name, em.inputs, em.outputs, initializer=em.inits)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="esl-snn", ir_version=IR_VERSION)
    helper.set_model_props(model, {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "encoding": json.dumps(inp.encoding, sort_keys=True, default=str),
        "lif_nodes": json.dumps(lif_nodes(graph)),
        "model": str(graph.meta.get("model") or ""),
    })
    return model


class OnnxStep:
    """One onnxruntime session of a step model; ``step`` runs one time step.

    ``fast_conv`` lets onnxruntime apply all its graph optimisations, including the
    NCHWc layout for convolutions: faster conv nets, but float32 sums in a different
    order, so a neuron within rounding distance of threshold may fire differently
    from PyTorch (fully connected graphs are unaffected).
    """

    def __init__(self, model: onnx.ModelProto | str | Path, *, threads: int = 1,
                 fast_conv: bool = False) -> None:
        import onnxruntime as ort  # imported here: only running needs it, building does not

        if isinstance(model, str | Path):
            model = onnx.load(str(model))
        props = {p.key: p.value for p in model.metadata_props}
        if props.get("format") != FORMAT:
            raise GraphError(f"not an {FORMAT} model (metadata format {props.get('format')!r})")
        self.lif_nodes: list[str] = json.loads(props["lif_nodes"])
        self.encoding: dict[str, object] = json.loads(props["encoding"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if not fast_conv:
            # the NCHWc layout pass (level ALL) sums convolutions in another order than
            # torch, which flips float32 near-ties; up to EXTENDED results match torch
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        self.session = ort.InferenceSession(model.SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.shapes = {i.name: tuple(int(d) for d in i.shape[1:]) for i in self.session.get_inputs()}

    def reset(self, batch: int) -> dict[str, np.ndarray]:
        """The state at step 0: zero membrane potentials, keyed by ``u_in:N``."""
        return {u_in(n): np.zeros((batch, *self.shapes[u_in(n)]), np.float32) for n in self.lif_nodes}

    def step(self, x: np.ndarray, states: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one step: ``x`` [B, *input_shape], ``states`` as from ``reset`` or
        ``carry``; returns every graph output by name."""
        feeds = {INPUT: np.ascontiguousarray(x, np.float32), **states}
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds), strict=True))

    def carry(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The next step's state from this step's outputs."""
        return {u_in(n): outputs[u_out(n)] for n in self.lif_nodes}


def run_steps(model: onnx.ModelProto | str | Path, seq: np.ndarray, *, threads: int = 1,
              fast_conv: bool = False) -> dict[str, np.ndarray]:
    """Run the T steps of ``seq`` ([T, B, *input_shape], encoded) from zero state;
    returns ``{"output": [T, B, ...], "spikes:N": [T, B, ...] for every LIF node}``."""
    runner = OnnxStep(model, threads=threads, fast_conv=fast_conv)
    seq = np.asarray(seq, np.float32)
    states = runner.reset(seq.shape[1])
    keys = [OUTPUT, *(spikes(n) for n in runner.lif_nodes)]
    record: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for x in seq:
        out = runner.step(x, states)
        states = runner.carry(out)
        for k in keys:
            record[k].append(out[k])
    return {k: np.stack(v) for k, v in record.items()}
