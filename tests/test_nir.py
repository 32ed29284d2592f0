"""NIR out and in: our file reads back with nir.read, an independent consumer (snntorch's
NIR import) runs it spike for spike, our reader gets the exact graph back, and the graph
read back runs in Lava exactly as the original does. Bad NIR files give one line."""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest
import torch
from spiking import spiking_model

from esl_export import cli, run
from esl_export.graph import Graph
from esl_export.lava import artifact
from esl_export.lava.runner import simulate
from esl_export.lower import lower
from esl_export.nir_graph import DEFAULT_DT, NIRError, ReadOptions, read_nir, to_nir, write_nir
from esl_export.runs import pytorch_side
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_DIGITS = 20
ARCHS: dict[str, dict[str, Any]] = {
    "mlp-lif": {"name": "mlp-lif", "sizes": [784, 64, 32, 10], "T": 5},
    "vggsnn": {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 16, "T": 3},
    "resnet19": {"name": "resnet19", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 16, "T": 2},
    "mlp-single-spike": {"name": "mlp-single-spike", "sizes": [784, 32, 10]},
    "mlp-if": {"name": "mlp-lif", "sizes": [784, 40, 10], "T": 4, "tau": 1.0, "encoding": "rate"},
}


@functools.cache
def _case(key: str, folder: Path) -> tuple[torch.nn.Module, Graph, Path, Path]:
    """(model, graph, model.pt, its NIR file written by esl-export -o NAME.nir)."""
    model, masks = spiking_model(ARCHS[key])
    path = folder / f"{key}.pt"
    save_checkpoint(make_checkpoint(model, masks), path)
    assert cli.main([str(path), "--target", "nir", "-o", str(folder / f"{key}.nir")]) == 0
    return model, lower(model, masks), path, folder / f"{key}.nir"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nir")


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_data("mnist-embedded").test.x[:N_DIGITS]


def _same_graph(a: Graph, b: Graph) -> None:
    assert list(a.nodes) == list(b.nodes)
    assert sorted(a.edges) == sorted(b.edges)
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(node) is type(other), name
        for f in node.__dataclass_fields__:
            va, vb = getattr(node, f), getattr(other, f)
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and np.array_equal(va, vb), (name, f)
            else:
                assert va == vb, (name, f, va, vb)
    for key in ("model", "arch", "neuron", "encoding"):
        assert a.meta[key] == b.meta[key], key


@pytest.mark.parametrize("key", list(ARCHS))
def test_our_nir_file_is_valid_nir_and_reads_back_to_the_same_graph(key: str, folder: Path) -> None:
    _, graph, _, path = _case(key, folder)
    ng = nir.read(path)  # nir's own reader, with its type check
    assert set(ng.nodes) >= {"input", "output"}
    assert all("." not in k for k in ng.nodes), "torch-based readers refuse dots in names"
    back, notes = read_nir(path)
    _same_graph(graph, back)
    assert notes == []  # nothing guessed for our own files
    assert back.meta["nir"]["dt"] == DEFAULT_DT


def test_the_nir_parameters_mean_our_neuron_at_the_stated_dt(folder: Path) -> None:
    path = _case("mlp-lif", folder)[3]
    lif = nir.read(path).nodes["lif_0"]
    assert isinstance(lif, nir.LIF)
    # forward Euler over one step dt: v <- (1 - dt/tau) v + (dt/tau) R I == 0.5 v + I
    np.testing.assert_allclose(1 - DEFAULT_DT / lif.tau, 0.5)
    np.testing.assert_allclose(lif.r * DEFAULT_DT / lif.tau, 1.0)
    assert (lif.v_reset == 0).all() and (lif.v_leak == 0).all() and (lif.v_threshold == 1.0).all()
    fc = nir.read(path).nodes["fc_0"]
    mask = fc.metadata["mask"]
    assert mask.dtype == bool and (fc.weight[~mask] == 0).all() and 0.5 < mask.mean() < 0.7
    integrate = nir.read(_case("mlp-if", folder)[3]).nodes["lif_0"]  # tau = 1: NIR's IF
    assert isinstance(integrate, nir.IF) and np.allclose(integrate.r * DEFAULT_DT, 1.0)


def _snntorch_run(path: Path, seq: torch.Tensor) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """snntorch's own NIR import of the file, run one sample at a time (its import maps NIR's
    Flatten(start_dim=0) to torch's Flatten(0), which would also flatten a batch)."""
    import snntorch as snn
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(nir.read(path))
    leaky = {n: m for n, m in net.named_modules() if isinstance(m, snn.Leaky)}
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in leaky}
    for n, m in leaky.items():
        m.register_forward_hook(lambda _m, _i, o, n=n: seen[n].append(o[0] if isinstance(o, tuple) else o))
    T, B = seq.shape[:2]
    spikes = {n: [] for n in leaky}
    outs = []
    with torch.no_grad():
        for b in range(B):
            utils.reset(net)
            for n in seen:
                seen[n].clear()
            outs.append(torch.stack([net(seq[t, b].float())[0] for t in range(T)]))
            for n in leaky:
                spikes[n].append(torch.stack(seen[n]))
    return ({n: torch.stack(v, 1).numpy() for n, v in spikes.items()}, torch.stack(outs, 1).numpy())


@pytest.mark.parametrize("key", ["mlp-lif", "vggsnn"])
def test_snntorch_runs_our_nir_file_spike_for_spike(key: str, folder: Path, digits: torch.Tensor) -> None:
    model, _, _, path = _case(key, folder)
    with torch.no_grad():
        rec = model.layer_spikes(digits)
    spikes, out = _snntorch_run(path, rec["input"])
    lifs = [n for n in rec if n not in ("input", "output")]
    assert sorted(spikes) == sorted(n.replace(".", "_") for n in lifs)
    for name in lifs:
        ref = rec[name].numpy()
        got = spikes[name.replace(".", "_")].reshape(ref.shape)
        assert ref.any(), f"{name} never spikes"
        assert np.array_equal(got, ref), f"{name}: {int((got != ref).sum())} spikes differ"
    np.testing.assert_allclose(out.reshape(rec["output"].shape), rec["output"].numpy(), atol=1e-5)


@pytest.mark.parametrize("key", ["mlp-lif", "vggsnn"])
def test_the_graph_read_back_runs_in_lava_spike_for_spike(key: str, folder: Path,
                                                          digits: torch.Tensor) -> None:
    _, _, path, nir_path = _case(key, folder)
    assert cli.main([str(path), "--target", "lava", "-o", str(folder / f"{key}-pt-lava")]) == 0
    assert cli.main([str(nir_path), "--target", "lava", "-o", str(folder / f"{key}-nir-lava")]) == 0
    a = artifact.read(folder / f"{key}-pt-lava")
    b = artifact.read(folder / f"{key}-nir-lava")
    assert b.source["kind"] == "nir" and b.source["sha256"] == artifact.sha256_file(nir_path)
    x = digits.numpy()
    ra = simulate(a, x, record=True)
    rb = simulate(b, x, record=True)
    assert set(ra.records) == set(rb.records) and len(ra.records) >= 3
    for layer, spikes in ra.records.items():
        assert np.array_equal(spikes, rb.records[layer]), layer
        assert spikes.any(), layer
    np.testing.assert_array_equal(ra.sums, rb.sums)


def test_esl_export_nir_folder_runs_and_compares_with_pytorch(folder: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _, _, path, _ = _case("mlp-lif", folder)
    assert cli.main([str(path), "--target", "nir"]) == 0  # no -o: next to the model
    out = folder / "mlp-lif-nir"
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and f"esl-run {out}" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "esl-snn/nir-export" and manifest["backend"] == "nir"
    assert manifest["source"]["sha256"] == artifact.sha256_file(path)
    assert run.main([str(out), "--samples", "12", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "NIR graph (reference executor): accuracy" in printed
    assert "agrees with PyTorch on 100.00%" in printed
    model, _ = spiking_model(ARCHS["mlp-lif"])
    preds, _ = pytorch_side(model, load_data("mnist-embedded").test.x[:12].numpy())
    labels = load_data("mnist-embedded").test.y[:12].numpy()
    assert f"PyTorch: accuracy {100 * np.mean(preds == labels):.2f}%" in printed


def test_a_bare_nir_file_is_replaced_only_when_it_is_ours(folder: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, _, path, _ = _case("mlp-lif", folder)
    out = tmp_path / "net.nir"
    assert cli.main([str(path), "--target", "nir", "-o", str(out)]) == 0
    assert cli.main([str(path), "--target", "nir", "-o", str(out)]) == 0  # ours: replaced
    notes = tmp_path / "notes.nir"
    notes.write_text("my notes")
    assert cli.main([str(path), "--target", "nir", "-o", str(notes)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and notes.read_text() == "my notes"
    assert cli.main([str(path), "--target", "lava", "-o", str(tmp_path / "x.nir")]) == 2
    assert "writes a folder" in capsys.readouterr().err
    assert cli.main([str(path), "--target", "nir", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not a .onnx file" in capsys.readouterr().err
    assert cli.main([str(notes), "--target", "lava"]) == 2
    assert "not a readable NIR file (not an HDF5 file)" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "gone.nir"), "--target", "lava"]) == 2
    assert "no such NIR file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir", "notes.nir"]


# ------------------------------------------------------------------------------ bad files


def _graph(*nodes: tuple[str, Any], edges: list[tuple[str, str]] | None = None) -> nir.NIRGraph:
    names = [n for n, _ in nodes]
    edges = edges if edges is not None else list(itertools.pairwise(names))
    return nir.NIRGraph(nodes=dict(nodes), edges=edges, type_check=False)


def _lif(n: int, **kw: Any) -> Any:
    p = {"tau": np.full(n, 2e-4), "r": np.full(n, 2.0), "v_leak": np.zeros(n), "v_threshold": np.ones(n)}
    p.update(kw)
    return nir.LIF(**p)


def _write(tmp_path: Path, graph: nir.NIRGraph, name: str = "g.nir") -> Path:
    nir.write(tmp_path / name, graph)
    return tmp_path / name


FOREIGN = ReadOptions(steps=4)


def _reads(tmp_path: Path, graph: nir.NIRGraph, match: str, options: ReadOptions = FOREIGN) -> str:
    with pytest.raises(NIRError) as err:
        read_nir(_write(tmp_path, graph), options)
    msg = str(err.value)
    assert "\n" not in msg and match in msg, msg
    return msg


def test_bad_nir_graphs_are_one_line_naming_the_node(tmp_path: Path) -> None:
    inp = ("input", nir.Input(input_type={"input": np.array([6])}))
    aff = ("fc", nir.Affine(weight=np.ones((3, 6), np.float32), bias=np.zeros(3, np.float32)))
    out = ("output", nir.Output(output_type={"output": np.array([3])}))
    ok = _graph(inp, aff, ("lif", _lif(3)), out)
    graph, notes = read_nir(_write(tmp_path, ok), FOREIGN)
    assert graph.output == "lif" and any("v_reset = 0" in n for n in notes)
    _reads(tmp_path, ok, "--steps T", ReadOptions())  # a foreign file does not say T
    _reads(tmp_path, _graph(inp, aff, ("d", nir.Delay(delay=np.ones(3))), out), "node d is a NIR Delay")
    cuba = nir.CubaLIF(tau_syn=np.full(3, 2e-4), tau_mem=np.full(3, 2e-4), r=np.full(3, 2.0),
                       v_leak=np.zeros(3), v_threshold=np.ones(3))
    _reads(tmp_path, _graph(inp, aff, ("syn", cuba), out), "node syn is a NIR CubaLIF")
    _reads(tmp_path, _graph(inp, aff, ("lif", _lif(3, v_threshold=np.array([1.0, 1.0, 2.0]))), out),
           "v_threshold differs between neurons")
    _reads(tmp_path, _graph(inp, aff, ("lif", _lif(3, v_leak=np.full(3, 0.1))), out), "v_leak")
    _reads(tmp_path, _graph(inp, aff, ("lif", _lif(3, v_reset=np.full(3, -1.0))), out), "v_reset")
    _reads(tmp_path, _graph(inp, aff, ("lif", _lif(3, tau=np.full(3, 1e-5))), out), "--nir-dt")
    bad_w = np.ones((3, 6), np.float32)
    bad_w[0, 0] = np.nan
    _reads(tmp_path, _graph(inp, ("fc", nir.Affine(weight=bad_w, bias=np.zeros(3, np.float32))),
                            ("lif", _lif(3)), out), "node fc: weight has NaN")
    wrong = ("fc", nir.Affine(weight=np.ones((3, 5), np.float32), bias=np.zeros(3, np.float32)))
    _reads(tmp_path, _graph(inp, wrong, ("lif", _lif(3)), out), "does not take its input")
    rec = _graph(inp, aff, ("lif", _lif(3)), ("back", nir.Linear(weight=np.ones((6, 3), np.float32))), out,
                 edges=[("input", "fc"), ("fc", "lif"), ("lif", "back"), ("back", "fc"), ("lif", "output")])
    _reads(tmp_path, rec, "recurrent connection")


def test_damaged_or_edited_files_are_one_line(folder: Path, tmp_path: Path) -> None:
    _, _, _, path = _case("mlp-lif", folder)
    data = path.read_bytes()
    cut = tmp_path / "cut.nir"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NIRError, match="not a readable NIR file"):
        read_nir(cut)
    ng = nir.read(path)
    meta = json.loads(ng.nodes["lif_0"].metadata["esl_snn"])
    meta["tau"] = 0.9  # metadata no longer what the NIR parameters say
    ng.nodes["lif_0"].metadata["esl_snn"] = json.dumps(meta)
    with pytest.raises(NIRError, match="disagrees with the NIR parameters"):
        read_nir(_write(tmp_path, ng, "edited.nir"))
    ng = nir.read(path)
    ng.nodes["fc_0"].weight[~ng.nodes["fc_0"].metadata["mask"]] = 1.0
    with pytest.raises(NIRError, match="non-zero weights outside the mask"):
        read_nir(_write(tmp_path, ng, "unmasked.nir"))


def test_to_nir_refuses_a_bad_step(folder: Path) -> None:
    _, graph, _, _ = _case("mlp-lif", folder)
    with pytest.raises(NIRError, match="dt must be"):
        to_nir(graph, dt=0.0)
    with pytest.raises(NIRError, match="dt must be"):
        write_nir(graph, folder / "never.nir", dt=float("nan"))
    model = build_model({"name": "mlp-lif", "sizes": [8, 4, 2], "T": 2})
    assert list(lower(model).nodes) == list(read_nir_graph(to_nir(lower(model))).nodes)


def read_nir_graph(ng: nir.NIRGraph) -> Graph:
    from esl_export.nir_graph import from_nir

    return from_nir(ng)[0]


def test_a_single_spike_nir_folder_runs_its_discrete_time_reference(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, path, _ = _case("mlp-single-spike", folder)
    assert cli.main([str(path), "--target", "nir", "-o", str(folder / "ss-nir")]) == 0
    capsys.readouterr()
    assert run.main([str(folder / "ss-nir"), "--samples", "10"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("NIR graph (discrete-time reference): accuracy")
    assert "PyTorch: accuracy" in printed


def test_a_single_spike_nir_file_exports_the_same_lava_network(folder: Path) -> None:
    """The fire-once neuron survives NIR through metadata: the Lava export made from the
    NIR file is the one made from model.pt, array for array (its Lava run is then the same;
    the demo runs both)."""
    _, _, path, nir_path = _case("mlp-single-spike", folder)
    assert cli.main([str(path), "--target", "lava", "-o", str(folder / "ss-pt-lava")]) == 0
    assert cli.main([str(nir_path), "--target", "lava", "-o", str(folder / "ss-nir-lava")]) == 0
    a, b = artifact.read(folder / "ss-pt-lava"), artifact.read(folder / "ss-nir-lava")
    assert a.kind == b.kind == "single-spike" and a.time == b.time and a.input == b.input
    for sa, sb in zip(a.stages, b.stages, strict=True):
        assert sa.neuron == sb.neuron and sa.neuron["type"] == "fire-once"
        assert (sa.csr() != sb.csr()).nnz == 0
