"""The single-spike network on TrueNorth-style cores: the IR's first spikes equal a numpy
emulation of the same staircase, two-level, fire-once model, spike for spike, with whole
fan-ins in one core, with level partial sums, and with both in one layer; the CLI
refuses bad input in one line; old (version 3) IR folders still read.

The network: a 784-32-10 single-spike MLP with its initial weights (weight sums ~3 per
neuron, widely spread, dark pixels silent: neurons fire at many ticks, some never), a
sparse hidden mask of ~40 inputs per neuron except hidden neuron 0, which keeps ~390
inputs and so needs partial sums.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_export import cli
from esl_export import single_spike_dt as sdt
from esl_export.lower import lower
from esl_export.truenorth import ir as ir_mod
from esl_export.truenorth import single_spike as ss
from esl_export.truenorth.ir import Geometry, IRError
from esl_export.truenorth.simulate import simulate
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model

B = 24


def _model() -> tuple[torch.nn.Module, dict]:
    """The network; its output layer is dense except that outputs 1..9 keep 12 inputs each
    (so on small cores output 0 needs partial sums and the others do not)."""
    torch.manual_seed(0)
    # dark pixels never spike and the weights vary widely, so neurons fire at many ticks or not at all
    model = build_model({"name": "mlp-single-spike", "sizes": [784, 32, 10], "zero_pixels": "never",
                         "init_weight_sum": 3.0, "init_std": 3.0})
    mask = torch.rand(32, 784) < 0.05
    mask[0] = torch.rand(784) < 0.5  # ~390 inputs: more than a core's 256 axons
    out = torch.zeros(10, 32, dtype=torch.bool)
    out[0] = True
    out[1:, :12] = True
    masks = {"layers.0.weight": mask, "layers.1.weight": out}
    model.init_for_masks(masks)
    return model.eval(), masks


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("ss")
    model, masks = _model()
    path = folder / "ss.pt"
    save_checkpoint(make_checkpoint(model, masks, meta={"dataset": "mnist-embedded"}), path)
    x = load_data("mnist-embedded").test.x[:B].numpy().reshape(B, -1)
    return {"folder": folder, "path": path, "graph": lower(model, masks), "x": x, "model": model}


def _emulate(p: ss.Plan, x: np.ndarray, ticks: int, axons: int) -> list[np.ndarray]:
    """First-spike tick of every neuron of every layer ([B, n], -1 = silent) in the
    integer staircase model, written from the scheme, not from the cores: K arrivals of
    each spike at its kernel delays; a whole fan-in sums exactly, a partial-summed neuron
    sums Q·round(S/Q) per channel (one sign, <= A inputs, levels covering K·Σ|w|) one tick
    later; between layers a splitter and a relay add a tick each (and a direct neuron in a
    layer with partial sums waits one more); each neuron fires once, at V >= threshold."""
    d = np.asarray(p.delays)
    s = sdt.input_steps(p.net.encoding, x, p.net.dt, p.net.tau_syn)
    base = np.where(s >= 0, s, 10 ** 6)  # tick of the first arrival minus d_1
    out = []
    for k, lay in enumerate(p.layers):
        w = lay.int_weight().astype(np.int64)  # [n, in]
        n_out = w.shape[0]
        q = lay.q if lay.q.size else np.zeros(n_out, np.int64)
        extra = 0 if k == 0 else 2 + (1 if lay.mode != "direct" else 0)
        first = np.full((len(x), n_out), -1)
        for t in range(ticks):
            # arrivals by tick t (a level neuron's inputs count one tick early: it answers one late)
            cnt = ((base[:, :, None] + d[None, None, :] + extra) <= t).sum(2)  # [B, in]
            V = cnt @ w.T
            for j in np.flatnonzero(q > 0):
                v = np.zeros(len(x), np.int64)
                for sign, idx in ss.channels(lay, j, axons):
                    S = cnt[:, idx] @ np.abs(w[j, idx])
                    m = max(1, math.ceil(len(d) * int(np.abs(w[j, idx]).sum()) / q[j]))
                    fired = np.minimum(m, (S + q[j] // 2) // q[j])  # levels (r − ½)Q reached
                    v += (1 if sign == 0 else -1) * q[j] * fired
                V[:, j] = v
            new = (V >= lay.threshold[None, :]) & (first < 0)
            first[new] = t
        out.append(first)
        # next layer's arrival base: the spike tick (+ splitter, relay: the extra above)
        base = np.where(first >= 0, first, 10 ** 6)
    return out


SMALL = Geometry(axons=24, neurons=256, axon_types=4, weight_bits=9, max_delay=15, platform="small")


@pytest.mark.parametrize(("mode", "small", "modes"), [("auto", False, ["mixed", "direct"]),
                                                      ("levels", False, ["levels", "levels"]),
                                                      ("auto", True, ["mixed", "mixed"])])
def test_first_spikes_equal_an_emulation_of_the_staircase_model(setup: dict, mode: str, small: bool,
                                                                 modes: list[str]) -> None:
    g = SMALL if small else Geometry.from_platform()
    p = ss.plan(setup["graph"], g, mode=mode)
    ir = ss.lower_single_spike(setup["graph"], g, mode=mode)
    assert [lay["mode"] for lay in ir.meta["report"]["layers"]] == modes
    sim = simulate(ir, ss.input_raster(ir, setup["x"]), record=True, host=True)
    assert sim.spikes is not None
    ticks = int(ir.meta["timing"]["ticks_per_sample"])
    want = _emulate(p, setup["x"], ticks, g.axons)
    for k, ref in enumerate(want):
        cn = np.asarray(ir.meta["neuron_map"][k])
        placed = np.flatnonzero(cn[:, 0] >= 0)
        sp = sim.spikes[:, cn[placed, 0], :, cn[placed, 1]]  # [placed, ticks, B]
        got = np.where(sp.any(1), sp.argmax(1), -1).T
        assert (sp.sum(1) <= 1).all(), "a neuron fired twice"
        np.testing.assert_array_equal(got, ref[:, placed], err_msg=f"layer {k}")
        fired = ref[:, placed][ref[:, placed] >= 0]
        assert len(np.unique(fired)) >= 4 and 0.2 < len(fired) / ref[:, placed].size < 0.95, (k, fired)
    np.testing.assert_array_equal(sim.first, want[-1])
    assert (sim.first >= 0).any(axis=1).mean() > 0.8
    # the class is the earliest output (lowest index on ties; -1 if none), as the runner decodes it
    t = np.where(want[-1] < 0, 10 ** 6, want[-1])
    cls = np.where((want[-1] >= 0).any(1), t.argmin(1), -1)
    np.testing.assert_array_equal(sim.predictions("first-spike"), cls)


def test_the_staircase_follows_the_exponential_kernel() -> None:
    d = ss.kernel_delays(8, 2 / 15, 15)
    assert d == sorted(set(d)) and d[0] >= 1 and d[-1] <= 15
    # by tick n the staircase has delivered #{d_k <= n}/K of a spike's charge, the kernel 1 − e^{−n·dt}
    n = np.arange(1, 16)
    stair = (np.asarray(d)[None, :] <= n[:, None]).mean(1)
    assert np.abs(stair - (1 - np.exp(-n * 2 / 15))).max() < 0.15
    with pytest.raises(IRError, match="copies"):
        ss.kernel_delays(16, 2 / 15, 15)


def test_esl_run_and_energy_on_a_single_spike_export_and_bad_input_is_one_line(
        setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from esl_energy import cli as energy_cli
    from esl_export import run

    out = tmp_path / "tn"
    assert cli.main([str(setup["path"]), "--target", "truenorth", "-o", str(out), "--tick", "2/15"]) == 0
    text = capsys.readouterr().out
    assert "single-spike" in text and "lower bound" in text and "mixed" in text
    assert run.main([str(out), "--samples", "12", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "IR simulator: accuracy" in text and "agrees with PyTorch" in text and "SOPs" in text
    assert energy_cli.main([str(out), "--samples", "6", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["platform"] for r in rows] == ["truenorth-merolla2014", "truenorth"]
    assert rows[0]["SOPs/sample"] > 0 and rows[0]["static (J)"] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == 4 and manifest["outputs"]["rule"] == "first-spike"
    for argv, words in (([*_export(setup, tmp_path), "--copies", "0"], "--copies"),
                        ([*_export(setup, tmp_path), "--tick", "abc"], "--tick"),
                        ([*_export(setup, tmp_path), "--tick", "0"], "tick"),
                        ([*_export(setup, tmp_path), "--tick", "1e400"], "--tick"),
                        ([*_export(setup, tmp_path), "--tick", "100"], "--tick must be in"),
                        ([*_export(setup, tmp_path), "--tick", "1e-9"], "--tick must be in"),
                        ([*_export(setup, tmp_path), "--placement", "direct"], "does not fit one core"),
                        ([str(setup["path"]), "--target", "truenorth", "-o", str(setup["path"])],
                         "overwrite")):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("esl-export: error:") and words in err and "\n" not in err, err
    assert setup["path"].is_file() and not (tmp_path / "bad").exists()  # a refused export writes nothing
    assert energy_cli.main([str(out), "--mode", "memory"]) == 2  # an IR is priced by its own run
    err = capsys.readouterr().err.strip()
    assert err.startswith("esl-energy: error:") and "--mode" in err and "\n" not in err


def _export(setup: dict, tmp_path: Path) -> list[str]:
    return [str(setup["path"]), "--target", "truenorth", "-o", str(tmp_path / "bad")]


def test_reset_value_is_validated_and_version_3_folders_read_with_reset_to_zero(
        setup: dict, tmp_path: Path) -> None:
    from esl_export.files import sha256_file

    ir = ss.lower_single_spike(setup["graph"], Geometry.from_platform())
    assert (ir.reset_value[ir.used_neurons()] <= ss.FIRE_ONCE).any()
    ir_mod.write(ir, tmp_path / "ok")
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "ok", bad)
    with np.load(bad / ir_mod.ARRAYS) as z:
        arrays = {k: np.array(z[k]) for k in z.files}
    arrays["reset_value"][0, 0] = -(1 << 18)
    with open(bad / ir_mod.ARRAYS, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(IRError, match=r"\[reset-value\] core 0 neuron 0"):
        ir_mod.read(bad)
    # a version 3 folder: no reset_value array, every reset to 0
    old = tmp_path / "v3"
    shutil.copytree(tmp_path / "ok", old)
    del arrays["reset_value"]
    with open(old / ir_mod.ARRAYS, "wb") as f:
        np.savez(f, **arrays)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = 3
    manifest["files"][ir_mod.ARRAYS] = sha256_file(old / ir_mod.ARRAYS)
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert not ir_mod.read(old).reset_value.any()
    manifest["version"] = 5
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IRError, match="version 5, this reader knows 3, 4"):
        ir_mod.read(old)
