"""snntorch networks, exported by snntorch itself, through our NIR reader into Lava and
esl-energy.

Two snntorch networks with Leaky neurons (reset to zero): an MLP and a small conv net.
They are written by snntorch's own ``export_to_nir`` (with nirtorch), read by
``esl-export net.nir --target lava`` and run by Lava; every layer's spikes must equal
snntorch's own forward on the same digits, and esl-run's predictions its spike-count
argmax. ``esl-energy net.nir --mode measured`` runs the graph's reference executor (no
torch model) and must count what NeuroBench counts on the snntorch module.

What snntorch 1.0 (with nir 1.0.8) writes wrong, and what the reader does about it:
- ``export_to_nir`` fails in its final type check when a Leaky has a scalar ``beta``
  (the node's type is empty); with per-neuron parameters (a tensor of the layer's shape)
  it succeeds. For scalar ``beta`` the same layer mapping without the check
  (``nirtorch.extract_nir_graph``) gives a graph our reader completes, and says so.
- Leaky nodes always carry ``v_reset = 0``, also for the default ``reset_mechanism =
  'subtract'``: the reader reads reset-to-zero and says so in its notes.
- AvgPool2d sizes are scalars (snntorch's own importer then fails); the reader takes them.
- dt is fixed at 1e-4 s: the reader's default, so no flag is needed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

from esl_energy import cli as energy_cli
from esl_energy.referee import neurobench_synops
from esl_export import cli, run
from esl_export.lava import artifact
from esl_export.lava.runner import run_artifact, simulate
from esl_export.nir_graph import ReadOptions, from_nir
from esl_train.data import load_data

snn = pytest.importorskip("snntorch")
pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:nirtorch")]

T = 6
N_DIGITS = 24


def _leaky(shape: tuple[int, ...], **kw: object) -> nn.Module:
    """A Leaky with per-neuron beta and threshold (what snntorch's export needs)."""
    return snn.Leaky(beta=torch.full(shape, 0.5), threshold=torch.ones(shape), init_hidden=True,
                     reset_mechanism="zero", **kw)


def _mlp() -> nn.Sequential:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 48), _leaky((48,)), nn.Linear(48, 10),
                        _leaky((10,), output=True))
    with torch.no_grad():
        net[1].weight.mul_(5.0)
        net[3].weight.mul_(3.0)
    return net.eval()


def _conv(beta: float | None = None) -> nn.Sequential:
    torch.manual_seed(2)

    def leaky(shape: tuple[int, ...], **kw: object) -> nn.Module:
        if beta is None:
            return _leaky(shape, **kw)
        return snn.Leaky(beta=beta, init_hidden=True, reset_mechanism="zero", **kw)

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), leaky((4, 28, 28)), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 14 * 14, 10), leaky((10,), output=True))
    with torch.no_grad():
        net[0].weight.mul_(9.0)
        net[4].weight.mul_(20.0)
    return net.eval()


class Stepped(nn.Module):
    """The snntorch network fed the same (direct-coded) sample for T steps: output spike
    counts [B, classes]; every Leaky's spikes are kept in ``spikes`` ([T, B, ...])."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net
        self.spikes: dict[str, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from snntorch import utils

        utils.reset(self.net)
        self.spikes = {}
        total = 0
        for _ in range(T):
            h = x
            for name, m in self.net.named_children():
                h = m(h)
                if isinstance(h, tuple):
                    h = h[0]
                if isinstance(m, snn.Leaky):
                    self.spikes.setdefault(name, []).append(h)
            total = total + h
        return total


@functools.cache
def _nir_file(kind: str, folder: Path) -> Path:
    from snntorch.export_nir import export_to_nir

    net = _mlp() if kind == "mlp" else _conv()
    sample = torch.zeros(1, 784) if kind == "mlp" else torch.zeros(1, 1, 28, 28)
    path = folder / f"{kind}.nir"
    nir.write(path, export_to_nir(net, sample, ignore_dims=[0]))  # snntorch's own exporter
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("snntorch")


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, np.ndarray]:
    test = load_data("mnist-embedded").test
    return test.x[:N_DIGITS], test.y[:N_DIGITS].numpy()


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_snntorch_export_runs_in_lava_as_snntorch_does(kind: str, folder: Path, digits: tuple,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    x, _ = digits
    path = _nir_file(kind, folder)
    assert cli.main([str(path), "--target", "lava", "--steps", str(T)]) == 0  # direct coding, default
    out = folder / f"{kind}-lava"
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "v_reset = 0 read as reset to zero" in printed
    stepped = Stepped(_mlp() if kind == "mlp" else _conv())
    with torch.no_grad():
        counts = stepped(x)
    ref = {name: torch.stack(s).numpy() for name, s in stepped.spikes.items()}
    art = artifact.read(out)
    assert art.stages[-1].neuron.get("counts")  # the output layer's spikes are counted
    sim = simulate(art, x.numpy(), record=True)
    spiking = [s for s in art.stages if s.neuron["type"] == "lif"]
    assert len(spiking) == len(ref) == 2
    for k, (stage, (name, want)) in enumerate(zip(spiking, ref.items(), strict=True)):
        delay = k + 1  # one step per connection process
        got = sim.records[stage.layer][delay:delay + N_DIGITS * T].reshape(N_DIGITS, T, -1).transpose(1, 0, 2)
        assert want.any(), f"snntorch layer {name} never spikes"
        differ = int((got != want.reshape(got.shape)).sum())
        assert differ == 0, f"layer {name}: {differ} spikes differ"
    result = run_artifact(out, N_DIGITS, progress=False)
    assert np.array_equal(result.predictions, counts.argmax(1).numpy())
    assert run.main([str(out), "--samples", str(N_DIGITS), "--no-progress"]) == 0
    assert "agrees with the reference executor on 100.00%" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_esl_energy_counts_an_snntorch_file_as_neurobench_counts_the_module(
        kind: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    x = load_data("mnist-embedded", limit=N_DIGITS).test.x  # the samples esl-energy --samples takes
    path = _nir_file(kind, folder)
    assert energy_cli.main([str(path), "--steps", str(T), "--mode", "measured", "--samples", str(N_DIGITS),
                            "--format", "json", "--no-progress"]) == 0
    (ours,) = json.loads(capsys.readouterr().out)
    nb = neurobench_synops(Stepped(_mlp() if kind == "mlp" else _conv()), x, batch_size=8)
    # a Lava export of that file is priced through it, read as the export read it (with its T)
    assert cli.main([str(path), "--target", "lava", "--steps", str(T), "-o", str(folder / f"{kind}-e")]) == 0
    capsys.readouterr()
    assert energy_cli.main([str(folder / f"{kind}-e"), "--mode", "measured", "--samples", str(N_DIGITS),
                            "--format", "json", "--no-progress"]) == 0
    (through,) = json.loads(capsys.readouterr().out)
    assert (through["macs"], through["sops"]) == (ours["macs"], ours["sops"])
    assert ours["macs"] > 0 and (ours["sops"] > 0) == (kind == "mlp")  # the conv net reads pooled values
    assert ours["macs"] == pytest.approx(nb["Effective_MACs"], rel=1e-12)
    assert ours["sops"] == pytest.approx(nb["Effective_ACs"], rel=1e-12)


def test_scalar_beta_needs_the_tolerant_reader(digits: tuple) -> None:
    """snntorch's export_to_nir cannot type a Leaky with a scalar beta; its layer mapping
    without that check gives a graph our reader completes from the neighbours."""
    import nirtorch
    from snntorch.export_nir import _extract_snntorch_module, export_to_nir

    net = _conv(beta=0.5)
    sample = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="type"):
        export_to_nir(net, sample, ignore_dims=[0])
    ng = nirtorch.extract_nir_graph(net, _extract_snntorch_module, sample, ignore_dims=[0])
    graph, notes = from_nir(ng, ReadOptions(steps=T))
    assert any("took the shape [4, 28, 28]" in n for n in notes)
    assert any("Conv2d without input_shape" in n for n in notes)
    assert any("sizes given as scalars" in n for n in notes)
    from esl_export.reference import encode, run

    x, _ = digits
    out = run(graph, encode(graph, x.numpy()))
    stepped = Stepped(_conv(beta=0.5))
    with torch.no_grad():
        stepped(x)
    for name, node in zip(stepped.spikes, [n for n in graph.nodes if "LIF" in type(graph.nodes[n]).__name__],
                          strict=True):
        want = torch.stack(stepped.spikes[name]).numpy()
        assert np.array_equal(out[node].reshape(want.shape), want), name
