"""TrueNorth core IR: exactness against PyTorch and Lava, the validator, the CLI.

The exact network: an IF MLP (τ = 1) with ternary weights ±0.5, biases in
{−0.5, 0, 0.5} and v_th = 1.5, rate-coded input, every fan-in within one core. Its
integer form is exact (with L = 15: weight ±15, bias ±15, threshold floor(1.5·30) + 1
= 46, and 3·15 < 46 <= 4·15 as 3·0.5 <= 1.5 < 4·0.5), so
layer k's spikes at IR tick ``t + layer_offsets[k]["spike"]`` (0 for the first
hidden layer, 1 for the second: one tick per edge) equal PyTorch's step ``t`` and
Lava's step ``t + k + 1`` (one step per Lava connection process).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_export import cli
from esl_export.lava import artifact
from esl_export.lava.runner import simulate as lava_simulate
from esl_export.truenorth import ir as ir_mod
from esl_export.truenorth.energy import price_run
from esl_export.truenorth.ir import IRError
from esl_export.truenorth.simulate import simulate
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model

N, T = 16, 6


def _exact_model() -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [32, 40, 24, 5], "T": T, "tau": 1.0, "v_th": 1.5,
                         "encoding": "rate"})
    masks = {}
    with torch.no_grad():
        for name, w in model.connection_weights().items():
            masks[name] = torch.rand_like(w) < 0.6
            w.copy_(0.5 * torch.sign(torch.randn_like(w)) * masks[name])
        for fc in model.fc:
            fc.bias.copy_(0.5 * torch.randint(-1, 2, fc.bias.shape).float())
    return model.eval(), masks


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("tn")
    model, masks = _exact_model()
    path = folder / "model.pt"
    save_checkpoint(make_checkpoint(model, masks), path)
    assert cli.main([str(path), "--target", "truenorth", "-o", str(folder / "tn"),
                     "--placement", "direct"]) == 0
    assert cli.main([str(path), "--target", "lava", "-o", str(folder / "lava")]) == 0
    torch.manual_seed(1)
    x = torch.rand(N, 32, dtype=torch.float64) * 0.8
    rec = copy.deepcopy(model).double().layer_spikes(x)
    return {"folder": folder, "path": path, "ir": ir_mod.read(folder / "tn"), "rec": rec, "x": x.numpy(),
            "lava": artifact.read(folder / "lava")}


def test_exact_network_matches_pytorch_and_lava_spike_for_spike(exact: dict) -> None:
    ir, rec = exact["ir"], exact["rec"]
    seq = rec["input"].numpy()
    sim = simulate(ir, seq, record=True)
    assert sim.spikes is not None
    lava = lava_simulate(exact["lava"], exact["x"], input_seq=seq, record=True)
    offsets = ir.meta["timing"]["layer_offsets"]
    assert [o["spike"] for o in offsets[:2]] == [0, 1]
    for k, layer in enumerate(["lif.0", "lif.1"]):
        ref = rec[layer].numpy()  # [T, N, n]
        assert ref.any() and not ref.all()
        placed = [(j, c, n) for j, (c, n) in enumerate(ir.meta["neuron_map"][k]) if c >= 0]
        assert len(placed) >= 0.9 * ref.shape[2]
        js, cs, ns = (np.asarray(v) for v in zip(*placed, strict=True))
        o = offsets[k]["spike"]
        got = sim.spikes[o:o + T][:, cs, :, ns]  # [placed, T, N]
        np.testing.assert_array_equal(got.transpose(1, 2, 0), ref[:, :, js] > 0)
        lv = lava.records[layer][k + 1:k + 1 + N * T].reshape(N, T, -1).transpose(1, 0, 2)
        np.testing.assert_array_equal(lv, ref)
    # the readout integrates exactly: its class scores follow PyTorch's summed logits
    logits = rec["output"].numpy().sum(0)
    top = logits.max(1, keepdims=True)
    agree = [logits[b, p] >= top[b, 0] - 1.0 for b, p in enumerate(sim.predictions())]
    assert all(agree)
    energy = price_run(ir, sim)
    assert energy.sops_per_sample == sim.sops.sum() / N > 0 and energy.total_j > energy.dynamic_j > 0


def test_export_reports_cores_and_is_validated_on_load(exact: dict, capsys: pytest.CaptureFixture) -> None:
    ir = exact["ir"]
    st = ir.stats()
    assert st["cores"] >= ir.meta["report"]["lower_bound"] >= 1
    assert 0 < st["utilisation"] <= 1
    assert ir.meta["report"]["layers"][0]["mode"] == "direct"


def _corrupt(src: Path, dst: Path, change: Callable[[dict], None]) -> Path:
    import shutil

    shutil.copytree(src, dst)
    with np.load(dst / ir_mod.ARRAYS) as z:
        arrays = {k: np.array(z[k]) for k in z.files}
    change(arrays)
    with open(dst / ir_mod.ARRAYS, "wb") as f:
        np.savez(f, **arrays)
    return dst


def _extra_axon(a: dict) -> None:
    a["crossbar"] = np.concatenate([a["crossbar"], a["crossbar"][:, :1]], axis=1)
    a["axon_type"] = np.concatenate([a["axon_type"], a["axon_type"][:, :1]], axis=1)


def _fifth_type(a: dict) -> None:
    a["axon_type"][0, 0] = 4


def _big_weight(a: dict) -> None:
    a["weight"][0, 3, 1] = 300


def _two_destinations(a: dict) -> None:
    e = a["edges"][0].copy()
    e[3] = (e[3] + 1) % 256
    a["edges"] = np.vstack([a["edges"], e])


def _dangling(a: dict) -> None:
    a["edges"][0, 2] = 999


@pytest.mark.parametrize(("change", "rule", "words"), [
    (_extra_axon, "[shape]", "257 axons per core, the geometry allows 256"),
    (_fifth_type, "[axon-type]", "core 0 axon 0: type 4, allowed 0..3"),
    (_big_weight, "[weight-range]", "core 0 neuron 3 type 1: weight 300 does not fit 9 signed bits"),
    (_two_destinations, "[one-destination]", "2 destinations"),
    (_dangling, "[dangling]", "destination core 999 axon"),
])
def test_corrupted_ir_is_rejected_with_the_rule_and_core(exact: dict, tmp_path: Path,
                                                        change: Callable[[dict], None], rule: str,
                                                        words: str) -> None:
    bad = _corrupt(exact["folder"] / "tn", tmp_path / "bad", change)
    with pytest.raises(IRError) as err:
        ir_mod.read(bad)
    assert rule in str(err.value) and words in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_valid_but_edited_ir_fails_its_checksum(exact: dict, tmp_path: Path) -> None:
    def lower_threshold(a: dict) -> None:
        a["threshold"][0, 0] -= 1

    with pytest.raises(IRError, match="changed since export"):
        ir_mod.read(_corrupt(exact["folder"] / "tn", tmp_path / "edited", lower_threshold))


def test_esl_run_streams_digits_through_the_ir_and_bad_input_is_one_line(
        exact: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from esl_export import run

    # the exact net takes 32 inputs, not digits: a digit run must fail in one line, exit 2
    assert run.main([str(exact["folder"] / "tn"), "--samples", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("esl-run: error:") and "\n" not in err
    bad = _corrupt(exact["folder"] / "tn", tmp_path / "bad", _fifth_type)
    assert run.main([str(bad), "--samples", "5"]) == 2
    assert "[axon-type]" in capsys.readouterr().err
    model = build_model({"name": "mlp-lif", "sizes": [8, 4, 2], "T": 2})  # direct-coded: refused at export
    path = tmp_path / "direct.pt"
    save_checkpoint(make_checkpoint(model, {}), path)
    assert cli.main([str(path), "--target", "truenorth", "-o", str(tmp_path / "out")]) == 2
    assert "--encoding rate" in capsys.readouterr().err


def test_partial_sums_on_small_cores_validate_and_cost_one_tick_per_layer(exact: dict) -> None:
    from esl_export.lower import lower
    from esl_export.truenorth.ir import Geometry
    from esl_export.truenorth.lower import lower_graph

    model, masks = _exact_model()
    geo = Geometry(axons=16, neurons=32, axon_types=4, weight_bits=9, max_delay=15, platform="small")
    with pytest.raises(IRError, match="fan-in does not fit"):
        lower_graph(lower(model, masks), geo, mode="direct")
    ir = lower_graph(lower(model, masks), geo, mode="partial", quantum=2)  # validated on construction
    assert ir.crossbar.shape[1:] == (16, 32)
    assert [o["spike"] for o in ir.meta["timing"]["layer_offsets"]] == [1, 3, 5]
    assert all(lay["partial_neurons"] > 0 for lay in ir.meta["report"]["layers"])
    rec = exact["rec"]
    sim = simulate(ir, rec["input"].numpy())
    # lossy (one spike per tick per partial neuron) but close: most digits keep PyTorch's class
    agree = np.mean(sim.predictions() == rec["output"].numpy().sum(0).argmax(1))
    assert agree >= 0.5


def _export_digit_model(folder: Path) -> Path:
    """A rate-coded 784-16-10 mlp-lif as ``folder/m.pt``, exported to ``folder/tn``."""
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [784, 16, 10], "T": 4, "encoding": "rate"})
    path = folder / "m.pt"
    save_checkpoint(make_checkpoint(model, {}), path)
    assert cli.main([str(path), "--target", "truenorth", "-o", str(folder / "tn")]) == 0
    return path


def test_esl_run_on_a_digit_model_prints_accuracy_agreement_sops_energy(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from esl_export import run

    _export_digit_model(tmp_path)
    out = capsys.readouterr().out
    assert "cores (lower bound" in out and "utilisation" in out and "0 splitters" in out
    assert run.main([str(tmp_path / "tn"), "--samples", "5"]) == 0
    out = capsys.readouterr().out
    assert "IR simulator: accuracy" in out and "agrees with PyTorch" in out and "SOPs" in out
    assert "truenorth-merolla2014" in out and "ticks/s" in out


def test_core_aware_esl_mask_takes_one_core_per_pool_where_a_free_mask_needs_many() -> None:
    """784-800-10 at ε = 60 (103,040 connections each): core-aware pools of 127 inputs
    against an unconstrained ER mask and the dense twin, same weights."""
    from esl_export.lower import lower
    from esl_export.truenorth.lower import lower_graph
    from esl_train.esl import ESLConfig, ESLSparsifier

    def lowered(pool_size: int | None, sparse: bool = True) -> tuple:
        torch.manual_seed(0)
        model = build_model({"name": "mlp-lif", "sizes": [784, 800, 10], "T": 4, "encoding": "rate"})
        masks: dict = {}
        sp = None
        if sparse:
            sp = ESLSparsifier(model, torch.optim.Adam(model.parameters()),
                               ESLConfig(eps=60, pool_size=pool_size, verbose=False))
            masks = sp.masks
        return lower_graph(lower(model, masks)), sp

    pooled, sp = lowered(127)
    free, _ = lowered(None)
    dense, _ = lowered(None, sparse=False)
    first = [ir.meta["report"]["layers"][0] for ir in (pooled, free, dense)]
    assert first[0]["mode"] == "direct" and first[0]["partial_neurons"] == 0
    assert first[0]["cores"] == 7  # ceil(784 / 127) pools, 115 neurons x 2 copies each per core
    assert first[1]["cores"] >= 3 * first[0]["cores"] and first[2]["cores"] >= first[1]["cores"]
    assert pooled.n_cores <= 0.5 * free.n_cores and pooled.n_cores - pooled.meta["report"]["lower_bound"] <= 2
    # the placement found the pools: every first-layer core holds the neurons of one pool
    pool_of = sp.pools["fc.0.weight"].of_output.numpy()
    cores_of_pool: dict[int, set[int]] = {}
    for j, (c, _) in enumerate(pooled.meta["neuron_map"][0]):
        cores_of_pool.setdefault(int(pool_of[j]), set()).add(c)
    assert all(len(cs) == 1 for cs in cores_of_pool.values())
    assert len(set().union(*cores_of_pool.values())) == 7


def test_leak_reversal_and_every_neuron_rule_against_a_plain_loop() -> None:
    """One hand-made core: random crossbar, axon types, weights, leaks (half of them with
    the leak-reversal flag), floors and reset modes, driven by a random raster."""
    from esl_export.truenorth.ir import NO_FLOOR, CoreIR, Geometry
    from esl_export.truenorth.simulate import Simulator

    rng = np.random.default_rng(0)
    A = Nn = 8
    geo = Geometry(axons=A, neurons=Nn, axon_types=4, weight_bits=9, max_delay=15, platform="small")
    crossbar = rng.random((1, A, Nn)) < 0.6
    crossbar[0, np.arange(A), rng.integers(0, Nn, A)] = True  # every input axon has a synapse
    axon_type = rng.integers(0, 4, (1, A)).astype(np.int8)
    weight = rng.integers(-6, 7, (1, Nn, 4)).astype(np.int16)
    threshold = rng.integers(4, 12, (1, Nn)).astype(np.int32)
    leak = rng.integers(-3, 2, (1, Nn)).astype(np.int32)
    reversal = rng.random((1, Nn)) < 0.5
    reset = rng.integers(0, 3, (1, Nn)).astype(np.int8)
    floor = np.where(rng.random((1, Nn)) < 0.5, -8, NO_FLOOR).astype(np.int32)
    outputs = np.stack([np.zeros(Nn), np.arange(Nn), np.arange(Nn)], 1).astype(np.int32)
    inputs = np.stack([np.arange(A), np.zeros(A), np.arange(A)], 1).astype(np.int32)
    ir = CoreIR(geo, crossbar, axon_type, weight, threshold, leak, reversal, reset, floor,
                np.zeros((0, 5), np.int32), outputs, inputs, A, Nn)
    ticks, B = 40, 3
    raster = rng.random((ticks, B, A)) < 0.3
    sim = Simulator(ir).run(raster, record=True)
    assert sim.spikes is not None
    w = np.where(crossbar[0], weight[0][:, axon_type[0]].T, 0)  # [A, N] effective weights
    V = np.zeros((B, Nn))
    want = np.zeros((ticks, B, Nn), bool)
    for t in range(ticks):
        V = V + raster[t] @ w
        V = V + np.where(reversal[0], np.sign(V), 1) * leak[0]
        V = np.maximum(V, floor[0])
        s = V >= threshold[0]
        V = np.where(s & (reset[0] == 0), 0, V)
        V = np.where(s & (reset[0] == 1), V - threshold[0], V)
        want[t] = s
    assert want.any() and (~want).any() and reversal.any() and (leak < 0).any()
    np.testing.assert_array_equal(sim.spikes[:, 0], want)
    np.testing.assert_array_equal(sim.counts, want.sum(0))


def test_esl_energy_prices_an_ir_run_per_core_and_refuses_what_it_cannot_price(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from esl_energy import cli as energy_cli
    from esl_export.truenorth.runner import run_export

    path = _export_digit_model(tmp_path)
    capsys.readouterr()
    assert energy_cli.main([str(tmp_path / "tn"), "--samples", "6", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["platform"] for r in rows] == ["truenorth-merolla2014", "truenorth"]
    ir = ir_mod.read(tmp_path / "tn")
    ref = run_export(ir, 6)  # the same digits and the same rate draw
    sops = ref.sim.sops.sum() / 6
    merolla, backcomputed = rows
    assert merolla["SOPs/sample"] == pytest.approx(sops) and sops > 0
    assert merolla["dynamic (J)"] == pytest.approx(sops * 2.6e-11)
    # static: cores × ticks × 65 mW / 4096 cores × 1 ms
    assert merolla["static (J)"] == pytest.approx(ir.n_cores * ref.sim.ticks * 1e-3 * 0.065 / 4096)
    assert backcomputed["static (J)"] is None and backcomputed["total (J)"] == backcomputed["dynamic (J)"]
    assert merolla["accuracy"] == ref.accuracy and merolla["cores"] == ir.n_cores
    for argv, words in (([str(tmp_path / "tn"), "--platforms", "gpu"], "no energy per synaptic operation"),
                        ([str(tmp_path / "tn"), str(path)], "not both"),
                        ([str(tmp_path / "tn"), "--source", str(tmp_path / "nope.pt")], "nope.pt")):
        assert energy_cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("esl-energy: error:") and words in err and "\n" not in err


def test_the_readout_unit_is_calibrated_on_the_model_so_small_logits_still_spike(tmp_path: Path) -> None:
    """A model with small logits (here: the readout scaled down 20×, like a briefly trained
    one) gets no output spike on most digits with a fixed unit of 2; the unit calibrated on
    its training digits gives every digit a count and follows PyTorch closely."""
    from esl_export.truenorth.runner import run_export

    model = build_model({"name": "mlp-lif", "sizes": [784, 64, 10], "T": 6, "encoding": "rate"})
    torch.manual_seed(0)
    with torch.no_grad():
        model.fc[0].weight.mul_(4.0)
        model.fc[1].weight.mul_(0.2)
    path = tmp_path / "small.pt"
    save_checkpoint(make_checkpoint(model, {}, meta={"dataset": "mnist-embedded"}), path)
    runs = {}
    for unit in ("2", "auto"):
        assert cli.main([str(path), "--target", "truenorth", "-o", str(tmp_path / unit),
                         "--readout-unit", unit, "--calibration-samples", "200"]) == 0
        runs[unit] = run_export(tmp_path / unit, 100)
    silent = {u: float((r.sim.counts.sum(axis=1) == 0).mean()) for u, r in runs.items()}
    assert silent["2"] > 0.5 and silent["auto"] < 0.05, silent
    assert runs["auto"].agreement is not None and runs["auto"].agreement > runs["2"].agreement


def test_a_tiny_rate_coded_vggsnn_goes_onto_cores(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Convolutions unrolled onto crossbars (pooling fused into the next layer, as in the
    Lava export), validated on load and run by the same simulator; a residual network is
    refused with one line."""
    from esl_export import run

    torch.manual_seed(0)
    arch = {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 64, "T": 2,
            "encoding": "rate"}
    path = tmp_path / "vgg.pt"
    save_checkpoint(make_checkpoint(build_model(arch).eval(), {}), path)
    assert cli.main([str(path), "--target", "truenorth", "-o", str(tmp_path / "tn")]) == 0
    out = capsys.readouterr().out
    layers = [line.split(":")[0].strip() for line in out.splitlines()
              if line.startswith("  ") and (": direct," in line or ": partial," in line)]
    assert "esl-train --weights ternary deploys exactly" in out  # float weights were rounded
    assert layers == ["features.0.conv", "features.1.conv", "features.2+features.3.conv", "features.4.conv",
                      "features.5+features.6.conv", "features.7.conv", "features.8+features.9.conv",
                      "features.10.conv", "features.11+classifier"]
    assert run.main([str(tmp_path / "tn"), "--samples", "5"]) == 0
    assert "IR simulator: accuracy" in capsys.readouterr().out
    res = {"name": "resnet19", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 64, "T": 2,
           "encoding": "rate"}
    save_checkpoint(make_checkpoint(build_model(res).eval(), {}), tmp_path / "res.pt")
    assert cli.main([str(tmp_path / "res.pt"), "--target", "truenorth", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "residual networks" in err


def test_a_core_aware_ternary_if_vggsnn_is_spike_exact_on_cores(tmp_path: Path) -> None:
    """Convolutions on cores, exactly: with ternary weights, IF neurons and core-aware input-channel
    pools every layer places directly (no partial sums), and every spike of every layer equals
    PyTorch's at its tick (pooling fused into the next layer)."""
    from esl_train.esl import ESLConfig, ESLSparsifier

    torch.manual_seed(0)
    arch = {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 64, "T": 4,
            "encoding": "rate", "tau": 1.0}
    model = build_model(arch)
    sp = ESLSparsifier(model, torch.optim.Adam(model.parameters()),
                       ESLConfig(density=0.3, pool_size=127, verbose=False))
    masks = {}
    with torch.no_grad():
        for name, w in model.connection_weights().items():
            masks[name] = sp.masks.get(name, torch.ones_like(w, dtype=torch.bool))
            sign = torch.where(torch.rand_like(w) < 0.6, 1.0, -1.0)  # excitatory enough to keep firing
            w.copy_(0.6 * sign * masks[name])  # ternary, one magnitude
    model.eval()
    path = tmp_path / "vgg.pt"
    save_checkpoint(make_checkpoint(model, masks), path)
    assert cli.main([str(path), "--target", "truenorth", "-o", str(tmp_path / "tn"),
                     "--placement", "direct", "--readout-unit", "1"]) == 0
    ir = ir_mod.read(tmp_path / "tn")
    assert all(lay["mode"] == "direct" for lay in ir.meta["report"]["layers"])
    x = torch.as_tensor(load_data("mnist-embedded").test.x[:8].numpy(), dtype=torch.float64)
    torch.manual_seed(1)
    rec = copy.deepcopy(model).double().layer_spikes(x)
    sim = simulate(ir, rec["input"].numpy(), record=True)
    assert sim.spikes is not None
    offsets = ir.meta["timing"]["layer_offsets"]
    layers = [n for n in rec if n not in ("input", "output")]
    spiking = 0
    for k, layer in enumerate(layers):
        ref = rec[layer].numpy().reshape(4, 8, -1) > 0  # [T, N, neurons], torch's flatten order
        placed = [(j, c, n) for j, (c, n) in enumerate(ir.meta["neuron_map"][k]) if c >= 0]
        js, cs, ns = (np.asarray(v) for v in zip(*placed, strict=True))
        o = offsets[k]["spike"]
        got = sim.spikes[o:o + 4][:, cs, :, ns]  # [placed, T, N]
        np.testing.assert_array_equal(got.transpose(1, 2, 0), ref[:, :, js], err_msg=layer)
        spiking += int(ref[:, :, js].any())
    assert spiking >= len(layers) - 2, f"only {spiking} of {len(layers)} layers spike"
