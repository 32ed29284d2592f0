"""The one place that turns a trained model into the lowered graph.

Every back end and esl_energy read the Graph this module returns, so each
layer type is taught here once. BatchNorm (eval mode, running statistics) is
folded into the convolution before it, which then carries a bias.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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
from esl_train.checkpoint import Checkpoint, load_model
from esl_train.models import SNNModel


def lower_file(path: str | Path) -> tuple[Graph, Checkpoint]:
    """Load model.pt through the one loader and lower it."""
    model, ckpt = load_model(path)
    return lower(model, ckpt.masks, source=str(path)), ckpt


def lower(model: SNNModel, masks: Mapping[str, torch.Tensor] | None = None, source: str = "") -> Graph:
    """Lowered graph of a model; ``masks`` by weight name (missing: all active)."""
    builder = _Builder(model, masks or {})
    name = model.arch["name"]
    if name == "mlp-single-spike":
        builder.single_spike_mlp()
    elif name == "mlp-lif":
        builder.lif_mlp()
    elif name == "vggsnn":
        builder.vggsnn()
    elif name == "resnet19":
        builder.resnet19()
    else:
        raise GraphError(f"no lowering for model {name!r}")
    meta = {"model": name, "arch": dict(model.arch), "neuron": model.neuron(),
            "encoding": model.encoding(), "source": source}
    return Graph(builder.nodes, builder.edges, meta)


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().astype(np.float32)


class _Builder:
    """Appends nodes in forward order; ``last`` is the node the next one reads."""

    def __init__(self, model: SNNModel, masks: Mapping[str, torch.Tensor]) -> None:
        self.model = model
        self.masks = masks
        self.nodes: dict[str, Node] = {}
        self.edges: list[tuple[str, str]] = []
        self.last = ""
        self.neuron = model.neuron()

    def add(self, name: str, node: Node, inputs: list[str] | None = None) -> str:
        if name in self.nodes:
            raise GraphError(f"duplicate node name {name}")
        self.nodes[name] = node
        for src in [self.last] if inputs is None else inputs:
            if src:
                self.edges.append((src, name))
        self.last = name
        return name

    def mask(self, weight_name: str, weight: torch.Tensor) -> np.ndarray:
        mask = self.masks.get(weight_name)
        if mask is None:
            return np.ones(tuple(weight.shape), bool)
        return mask.detach().cpu().numpy().astype(bool)

    def input(self, shape: tuple[int, ...]) -> None:
        self.add("input", Input(tuple(int(s) for s in shape), self.model.encoding()))

    def linear(self, name: str, fc: nn.Linear) -> None:
        mask = self.mask(f"{name}.weight", fc.weight)
        self.add(name, Affine(_np(fc.weight) * mask, _np(fc.bias), mask))

    def conv(self, name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d | None,
             in_shape: tuple[int, ...], inputs: list[str] | None = None) -> tuple[int, ...]:
        if conv.groups != 1 or conv.dilation != (1, 1) or isinstance(conv.padding, str):
            raise GraphError(f"{name}: only plain convolutions (no groups, dilation or named padding)")
        mask = self.mask(f"{name}.weight", conv.weight)
        weight = _np(conv.weight)
        bias = _np(conv.bias)
        if bn is not None:
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
            shift = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps))
            weight = weight * scale[:, None, None, None]
            bias = shift.detach().numpy().astype(np.float32) + (0 if bias is None else bias * scale)
        node = Conv2d(weight * mask, bias, mask, tuple(in_shape),  # type: ignore[arg-type]
                      tuple(conv.stride), tuple(conv.padding))  # type: ignore[arg-type]
        self.add(name, node, inputs)
        return node.output_shape

    def lif(self, name: str, shape: tuple[int, ...]) -> None:
        self.add(name, LIF(tuple(shape), float(self.neuron["tau"]), float(self.neuron["v_th"])))

    # -- models ------------------------------------------------------------------------

    def single_spike_mlp(self) -> None:
        layers: Any = self.model.layers  # type: ignore[attr-defined]
        self.input((layers[0].in_features,))
        for k, fc in enumerate(layers):
            self.linear(f"layers.{k}", fc)
            self.add(f"neuron.{k}", SingleSpikeIF((fc.out_features,), float(self.neuron["threshold"]),
                                                 float(self.neuron.get("tau_syn", 1.0))))

    def lif_mlp(self) -> None:
        fcs: Any = self.model.fc  # type: ignore[attr-defined]
        self.input((fcs[0].in_features,))
        for k, fc in enumerate(fcs):
            self.linear(f"fc.{k}", fc)
            if k < len(fcs) - 1:
                self.lif(f"lif.{k}", (fc.out_features,))
        self.add("output", Readout((fcs[-1].out_features,)))

    def _image_input(self) -> tuple[int, ...]:
        shape = tuple(self.model.arch["in_shape"][-3:])
        self.input(shape)
        return shape

    def vggsnn(self) -> None:
        shape = self._image_input()
        for k, layer in enumerate(self.model.features):  # type: ignore[attr-defined]
            if isinstance(layer, nn.AvgPool2d):
                node = AvgPool2d(int(layer.kernel_size), shape)  # type: ignore[arg-type]
                self.add(f"features.{k}", node)
                shape = node.output_shape
            else:
                shape = self.conv(f"features.{k}.conv", layer.conv, layer.bn, shape)
                self.lif(f"features.{k}.lif", shape)
        self.add("flatten", Flatten(shape))
        self.linear("classifier", self.model.classifier)  # type: ignore[attr-defined]
        self.add("output", Readout((self.model.classifier.out_features,)))  # type: ignore[attr-defined]

    def resnet19(self) -> None:
        m: Any = self.model
        shape = self._image_input()
        shape = self.conv("conv1", m.conv1, m.bn1, shape)
        self.lif("lif1", shape)
        for stage in ("layer1", "layer2", "layer3"):
            for b, block in enumerate(getattr(m, stage)):
                p = f"{stage}.{b}"
                block_in, in_shape = self.last, shape
                shape = self.conv(f"{p}.conv1", block.conv1, block.bn1, in_shape)
                self.lif(f"{p}.lif1", shape)
                self.conv(f"{p}.conv2", block.conv2, block.bn2, shape)
                main = self.last
                short = block_in
                if block.shortcut_conv is not None:
                    self.conv(f"{p}.shortcut_conv", block.shortcut_conv, block.shortcut_bn, in_shape,
                              inputs=[block_in])
                    short = self.last
                self.add(f"{p}.add", Add(shape), inputs=[main, short])
                self.lif(f"{p}.lif2", shape)
        _, h, w = shape
        if h != w:
            raise GraphError(f"resnet19: global pooling of a {h}x{w} map needs a square map")
        pool = AvgPool2d(h, shape)  # type: ignore[arg-type]
        self.add("pool", pool)
        self.add("flatten", Flatten(pool.output_shape))
        self.linear("fc1", m.fc1)
        self.lif("lif_fc1", (m.fc1.out_features,))
        self.linear("fc2", m.fc2)
        self.add("output", Readout((m.fc2.out_features,)))
