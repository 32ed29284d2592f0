"""What every back end's run shares: the test digits, the source an export was made
from (checked by its sha256), the reference run on the same digits, and the report.

The reference is the PyTorch model when the source is a model.pt, and the graph's own
numpy executor (``reference.py``) when it is a NIR file. For rate-coded input the
reference draws the Bernoulli spikes (seeded, so a command repeats) and the back end is
fed that very draw, so both see the same spikes and agreement measures the export alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esl_export.graph import Graph, SingleSpikeIF
from esl_export.sources import Source, reopen


class RunError(ValueError):
    """A run that cannot start (digits, source); one line."""


@dataclass(frozen=True)
class RunRequest:
    """What ``esl-run`` asks of a back end; ``options`` holds the back end's own flags."""

    samples: int = 200
    offset: int = 0
    data: str | None = None
    data_dir: str | None = None
    source: str | Path | None = None  # another path to the recorded source
    compare: bool = True
    progress: bool = False
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    """Predictions of one back end on test digits, beside the reference's."""

    title: str  # "Lava floating_pt", "IR simulator", ...
    short: str  # how the summary names it in a sentence: "Lava", "the IR", ...
    samples: int
    predictions: np.ndarray
    labels: np.ndarray
    reference: str | None  # "PyTorch" | "the reference executor" | None (not compared)
    reference_predictions: np.ndarray | None

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    @property
    def reference_accuracy(self) -> float | None:
        if self.reference_predictions is None:
            return None
        return float(np.mean(self.reference_predictions == self.labels))

    @property
    def pytorch_accuracy(self) -> float | None:
        return self.reference_accuracy if self.reference == "PyTorch" else None

    @property
    def agreement(self) -> float | None:
        if self.reference_predictions is None:
            return None
        return float(np.mean(self.reference_predictions == self.predictions))

    def detail_lines(self) -> list[str]:
        """The back end's own figures (speed, operations, energy)."""
        return []

    def summary(self) -> str:
        lines = [f"{self.title}: accuracy {100 * self.accuracy:.2f}% on {self.samples} test digits"]
        ref_acc, agree = self.reference_accuracy, self.agreement
        if self.reference is not None and ref_acc is not None and agree is not None:
            lines.append(f"{self.reference}: accuracy {100 * ref_acc:.2f}%; {self.short} agrees with "
                         f"{self.reference} on {100 * agree:.2f}% of the digits")
        else:
            lines.append("not compared (the source is not at the path the export records, or --no-compare; "
                         "name it with --source)")
        if (self.predictions < 0).any():
            lines.append(f"no output spike in the window for {int((self.predictions < 0).sum())} digit(s)")
        return "\n".join(lines + self.detail_lines())


# ----------------------------------------------------------------------------- digits


def test_digits(req: RunRequest, dataset: str | None, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """``req.samples`` test samples from ``req.offset`` of the request's dataset (default: the
    source's, else the embedded digits), checked against the network's input size."""
    from esl_train.data import load_data

    name = req.data or dataset or "mnist-embedded"
    splits = load_data(name, req.data_dir)
    n = len(splits.test.y)
    if req.samples < 1 or req.offset < 0 or req.offset + req.samples > n:
        raise RunError(f"{name} has {n} test samples; asked for {req.samples} from {req.offset}")
    x = splits.test.x[req.offset:req.offset + req.samples].numpy()
    if int(np.prod(x.shape[1:])) != n_in:
        raise RunError(f"{name} samples have {int(np.prod(x.shape[1:]))} values, the export takes {n_in}")
    return x, splits.test.y[req.offset:req.offset + req.samples].numpy()


# ----------------------------------------------------------------------------- the reference


@dataclass
class Reference:
    """The reference's predictions and the per-step input it used ([T, N, ...]; None for
    latency coding, whose back ends encode spike times themselves)."""

    name: str | None
    predictions: np.ndarray | None
    seq: np.ndarray | None


def pytorch_side(model: Any, x: np.ndarray, batch: int = 100) -> tuple[np.ndarray, np.ndarray | None]:
    """PyTorch's predictions on ``x`` and, for LIF models, the input sequence it used
    ([T, N, ...]; for rate coding that is its own Bernoulli draw)."""
    import torch

    preds, seqs = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(np.asarray(x[i:i + batch]), dtype=torch.float32)
            if hasattr(model, "layer_spikes"):
                rec = model.layer_spikes(xb)
                seqs.append(rec["input"].double().numpy())
                preds.append(model.predict(rec["output"]).numpy())
            else:
                preds.append(model.predict(model(xb)).numpy())
    return np.concatenate(preds), (np.concatenate(seqs, axis=1) if seqs else None)


def decode(graph: Graph, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Class per sample from a reference run: argmax of the summed readout, or of the
    output layer's spike counts (ties: the lower class, as torch and numpy both do)."""
    out = outputs[graph.output]
    T, N = out.shape[:2]
    return out.reshape(T, N, -1).sum(axis=0).argmax(axis=1)


def reference_run(source: Source, x: np.ndarray, seed: int = 0) -> Reference:
    """Run the source on ``x``: its PyTorch model, or the graph's reference executor."""
    if source.model is not None:
        import torch

        torch.manual_seed(seed)  # the rate draw repeats from run to run
        preds, seq = pytorch_side(source.model.eval(), x)
        return Reference("PyTorch", preds, seq)
    return graph_run(source.graph, x, seed)


def graph_run(graph: Graph, x: np.ndarray, seed: int = 0, seq: np.ndarray | None = None) -> Reference:
    """Predictions of the graph itself: the numpy reference executor for LIF graphs, fed
    ``seq`` ([T, N, ...], e.g. another run's rate draw) or its own seeded encoding of ``x``;
    the discrete-time reference (``single_spike_dt``, the network a Lava export computes)
    for the single-spike network, whose z-domain neuron has no steps."""
    if any(isinstance(n, SingleSpikeIF) for n in graph.nodes.values()):
        from esl_export import single_spike_dt as sdt

        net = sdt.network(graph)
        return Reference("the discrete-time reference", sdt.run(net, net.input_steps(x)).predict(), None)
    from esl_export.reference import encode, run

    if seq is None:
        seq = encode(graph, x, np.random.default_rng(seed))
    preds = np.concatenate([decode(graph, run(graph, seq[:, i:i + 100])) for i in range(0, len(x), 100)])
    return Reference("the reference executor", preds, seq)


def prepare(recorded: dict[str, Any], req: RunRequest,
            n_in: int) -> tuple[np.ndarray, np.ndarray, Source | None, Reference | None]:
    """Digits, the recorded source (None if absent or not wanted) and its reference run."""
    source = reopen(recorded, req.source) if req.compare or req.source is not None else None
    x, y = test_digits(req, (recorded or {}).get("dataset"), n_in)
    ref = reference_run(source, x, req.seed) if source is not None and req.compare else None
    return x, y, source, ref

