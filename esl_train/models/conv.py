"""Convolutional LIF networks of the paper: VGGSNN and ResNet-19.

Both follow the TET code base (Deng et al. 2022) that ESL-SNNs builds on:

- **VGGSNN** (``"vggsnn"``): 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2,
  each C3 a 3×3 conv (stride 1, pad 1) → BatchNorm2d → LIF, each AP2 a 2×2 average pool
  applied to the spikes, then one Linear classifier on the flattened (C, H, W) spikes.
- **ResNet-19** (``"resnet19"``, tdBN/TET): 3×3 conv 128 → BN → LIF stem; basic blocks
  128×3, 256×3 (first stride 2), 512×2 (first stride 2); global average pool of the spikes;
  Linear 256 → LIF → Linear classes.  A block is conv3×3-BN-LIF-conv3×3-BN, plus the
  shortcut (identity, or conv1×1-BN when the shape changes), then LIF.

Convs have no bias (a BatchNorm follows each); the Linear layers do.  ``width`` scales
every channel count and the 256-unit hidden Linear of ResNet-19:
``channels = max(1, round(c·width))``.

Time: every layer works on ``[T, B, ...]``.  Convs, BatchNorms and pools run once on
the ``T·B`` fold (time folded into the batch); only the LIFs loop over time.  BatchNorm
is the standard ``BatchNorm2d`` over that fold: in training, statistics pool all time
steps and samples of the batch; in eval, the running statistics (fold into the conv
for export).  The last Linear is a non-spiking readout: its per-step output is the
logits ``[T, B, classes]`` (see ``LIFMLP`` for the Lava equivalent).

Input (``in_shape``):

- ``[C, H, W]``: static images, direct encoding — the analog image enters the first conv
  at each of the ``T`` steps — or, with ``encoding: "rate"``, Bernoulli spikes with
  p = pixel drawn each step (spike input, as TrueNorth-style cores need);
- ``[T, C, H, W]``: event frames (e.g. DVS-CIFAR10 ``[10, 2, 48, 48]``); the data's time
  axis is the time steps, so ``T`` is ``in_shape[0]`` (an ``arch["T"]`` that differs is
  an error).  ``forward`` takes ``[B, T, C, H, W]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from esl_train.losses import TET_LAMBDA, TET_PHI
from esl_train.models import lif_cpu
from esl_train.models.lif import LIF, LIFNet, as_float, as_int, check_neuron_keys, complete_arch

#: training recipe for the conv nets: Adam, lr 0.001, batch 64 (ESL-SNNs); cosine
#: annealing to 0 over 300 epochs, no weight decay (the TET reference training script)
_CONV_HPARAMS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_final": 0.0,
    "lr_schedule": "cosine",
    "batch_size": 64,
    "epochs": 300,
    "clip_grad_norm": None,
    "weight_decay": 0.0,
}

#: T for static images when the arch gives none
_STATIC_T = 4


def _fold(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample layer to ``[T, B, ...]`` by folding T into the batch."""
    T, B = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


def _scaled(c: int, width: float) -> int:
    return max(1, round(c * width))


def _conv_arch(arch: dict[str, Any] | None, name: str, in_shape: list[int]) -> dict[str, Any]:
    """Fill and check the keys both conv nets share."""
    defaults = {
        "name": name,
        "in_shape": in_shape,
        "num_classes": 10,
        "width": 1.0,
        "T": None,
        "tau": 0.5,
        "v_th": 1.0,
        "encoding": None,
        "tet_lambda": TET_LAMBDA,
        "tet_phi": TET_PHI,
    }
    full = complete_arch(arch, name, defaults)
    shape = full["in_shape"]
    if not isinstance(shape, list | tuple) or len(shape) not in (3, 4):
        raise ValueError(f"in_shape must be [C, H, W] or [T, C, H, W], got {shape!r}")
    full["in_shape"] = [as_int({"in_shape": s}, "in_shape") for s in shape]
    frames = len(shape) == 4
    if frames:
        if full["T"] is not None and full["T"] != full["in_shape"][0]:
            raise ValueError(f"T = {full['T']} but the event frames have "
                             f"{full['in_shape'][0]} time steps (in_shape[0])")
        full["T"] = full["in_shape"][0]
    elif full["T"] is None:
        full["T"] = _STATIC_T
    kinds = ("frames",) if frames else ("direct", "rate")
    if full["encoding"] is not None and full["encoding"] not in kinds:
        raise ValueError(f"in_shape {full['in_shape']} takes encoding {' or '.join(map(repr, kinds))}, "
                         f"got {full['encoding']!r}")
    full["encoding"] = full["encoding"] or kinds[0]
    as_int(full, "num_classes")
    as_float(full, "width", positive=True)
    check_neuron_keys(full)
    return full


class _ConvNet(LIFNet):
    """Input handling shared by VGGSNN and ResNet19."""

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__(arch)
        self.encoding_kind = self.arch["encoding"]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw batch ``[B, *in_shape]`` → ``[T, B, C, H, W]`` (first conv's input)."""
        want = tuple(self.arch["in_shape"])
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"input samples have shape {tuple(x.shape[1:])}, the model "
                             f"takes {list(want)}")
        if self.encoding_kind == "frames":
            return x.transpose(0, 1)
        seq = x.unsqueeze(0).expand(self.n_steps, *x.shape)
        return torch.bernoulli(seq.clamp(0.0, 1.0)) if self.encoding_kind == "rate" else seq

    def _channels(self, c: int) -> int:
        return _scaled(c, self.arch["width"])


def pool2_spikes(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2)`` of spikes ``[N, C, H, W]`` (0/1 values), 3-4x faster: the sum of
    the four strided quarters times 1/4. For 0/1 inputs every partial sum is a small
    integer and the quarter exact, so the result is the same bit for bit; other inputs
    would round in a different order, so it is only used where spikes are pooled. On the
    CPU (no gradient) one compiled pass (``lif_cpu.pool2``), about 3x faster again."""
    pooled = lif_cpu.pool2(x)
    if pooled is not None:
        return pooled
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) * 0.25


class SpikePool2d(nn.AvgPool2d):
    """VGGSNN's 2×2 average pool, which always reads a LIF layer's spikes (``pool2_spikes``)."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool2_spikes(x)


class ConvBNLIF(nn.Module):
    """3×3 conv (no bias) → BatchNorm2d → LIF, on ``[T, B, C, H, W]``."""

    def __init__(self, c_in: int, c_out: int, tau: float, v_th: float, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.lif = LIF(tau, v_th)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(_fold(lambda z: self.bn(self.conv(z)), x))


#: VGGSNN layers: channel counts of the C3 layers, "A" for a 2×2 average pool
VGG_LAYERS: tuple[int | str, ...] = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")


class VGGSNN(_ConvNet):
    """VGGSNN of the TET / ESL-SNNs code base.

    ``arch`` keys and defaults: ``in_shape`` ``[10, 2, 48, 48]`` (DVS-CIFAR10 frames,
    as in TET), ``num_classes`` 10, ``width`` 1.0, ``T`` (``in_shape[0]`` for frames, else
    4), ``tau`` 0.5, ``v_th`` 1.0, ``encoding`` (derived: ``"frames"`` / ``"direct"``),
    ``tet_lambda`` 1e-3, ``tet_phi`` 1.0.  H and W must be at least 16 (four pools).

    Modules: ``features.k`` is a ``ConvBNLIF`` (``.conv``, ``.bn``, ``.lif``) or an
    ``nn.AvgPool2d(2)``; ``classifier`` the readout Linear on the flattened spikes.
    """

    name = "vggsnn"
    default_hparams: ClassVar[dict[str, Any]] = dict(_CONV_HPARAMS)

    def __init__(self, arch: dict[str, Any] | None = None) -> None:
        full = _conv_arch(arch, self.name, [10, 2, 48, 48])
        super().__init__(full)
        c, h, w = full["in_shape"][-3:]
        if h < 16 or w < 16:
            raise ValueError(f"vggsnn pools four times: H and W must be >= 16, got {h}×{w}")
        layers: list[nn.Module] = []
        for spec in VGG_LAYERS:
            if spec == "A":
                layers.append(SpikePool2d())
                h, w = h // 2, w // 2
            else:
                c_out = self._channels(int(spec))
                layers.append(ConvBNLIF(c, c_out, full["tau"], full["v_th"]))
                c = c_out
        self.features = nn.ModuleList(layers)
        self.classifier = nn.Linear(c * h * w, full["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encode(x)
        self._note_input(x)
        for layer in self.features:
            x = _fold(layer, x) if isinstance(layer, nn.AvgPool2d) else layer(x)
        return self.classifier(x.flatten(2))

    def core_inputs_per_input(self) -> dict[str, int]:
        """Per connection weight, how many spiking inputs one of its inputs (a conv's input
        channel, the classifier's feature) stands for once lowered: a k×k kernel reads k²
        pixels per channel, and a 2×2 average pool fused in front of it quadruples that.
        Core-aware masks (esl_train/esl/pools.py) size their pools by it."""
        out: dict[str, int] = {}
        pooled = 1
        for k, layer in enumerate(self.features):
            if isinstance(layer, nn.AvgPool2d):
                pooled = int(layer.kernel_size) ** 2  # type: ignore[arg-type]
                continue
            kh, kw = layer.conv.kernel_size
            out[f"features.{k}.conv.weight"] = kh * kw * pooled
            pooled = 1
        out["classifier.weight"] = pooled
        return out


class BasicBlock(nn.Module):
    """conv3×3-BN-LIF-conv3×3-BN + shortcut → LIF, on ``[T, B, C, H, W]``.

    The shortcut is the identity, or ``shortcut_conv`` (1×1, stride) → ``shortcut_bn``
    when the stride or channel count changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, tau: float, v_th: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.lif1 = LIF(tau, v_th)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut_conv: nn.Conv2d | None = None
        self.shortcut_bn: nn.BatchNorm2d | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut_conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(c_out)
        self.lif2 = LIF(tau, v_th)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif1(_fold(lambda z: self.bn1(self.conv1(z)), x))
        y = _fold(lambda z: self.bn2(self.conv2(z)), s)
        if self.shortcut_conv is not None and self.shortcut_bn is not None:
            conv, bn = self.shortcut_conv, self.shortcut_bn
            x = _fold(lambda z: bn(conv(z)), x)
        return self.lif2(y + x)


#: ResNet-19 stages: (channels, blocks, stride of the first block)
RESNET19_STAGES: tuple[tuple[int, int, int], ...] = ((128, 3, 1), (256, 3, 2), (512, 2, 2))


class ResNet19(_ConvNet):
    """ResNet-19 of tdBN / TET.

    ``arch`` keys and defaults: ``in_shape`` ``[3, 32, 32]`` (CIFAR-10), ``num_classes``
    10, ``width`` 1.0, ``T`` (``in_shape[0]`` for frames, else 4), ``tau`` 0.5, ``v_th``
    1.0, ``encoding`` (derived), ``tet_lambda`` 1e-3, ``tet_phi`` 1.0.

    Modules: ``conv1``/``bn1``/``lif1`` (stem), ``layer1..3`` (``nn.Sequential`` of
    ``BasicBlock``), ``fc1`` → ``lif_fc1`` → ``fc2`` (readout).
    """

    name = "resnet19"
    default_hparams: ClassVar[dict[str, Any]] = dict(_CONV_HPARAMS)

    def __init__(self, arch: dict[str, Any] | None = None) -> None:
        full = _conv_arch(arch, self.name, [3, 32, 32])
        super().__init__(full)
        tau, v_th = full["tau"], full["v_th"]
        c = self._channels(128)
        self.conv1 = nn.Conv2d(full["in_shape"][-3], c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.lif1 = LIF(tau, v_th)
        for i, (c_base, blocks, stride) in enumerate(RESNET19_STAGES, start=1):
            c_out = self._channels(c_base)
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(c, c_out, stride if b == 0 else 1, tau, v_th))
                c = c_out
            self.add_module(f"layer{i}", nn.Sequential(*stage))
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = self._channels(256)
        self.fc1 = nn.Linear(c, hidden)
        self.lif_fc1 = LIF(tau, v_th)
        self.fc2 = nn.Linear(hidden, full["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encode(x)
        self._note_input(x)
        x = self.lif1(_fold(lambda z: self.bn1(self.conv1(z)), x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = _fold(self.pool, x).flatten(2)
        return self.fc2(self.lif_fc1(self.fc1(x)))
