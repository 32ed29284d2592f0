"""The IR simulator's compiled engine against its numpy reference engine.

The reference engine steps every neuron group every tick in numpy and is the
simulator's semantics; the fast engine skips groups at rest, adds dense runs of
synapses as blocks, stops stepping what can no longer matter after the last input, and
splits batches over threads. Each of those must leave counts, first-spike ticks, SOPs
and (recorded) spikes exactly as the reference has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esl_export import cli
from esl_export.truenorth import ir as ir_mod
from esl_export.truenorth.ir import NO_FLOOR, CoreIR, Geometry
from esl_export.truenorth.simulate import SimResult, Simulator, raster
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.models import build_model


def _random_ir(seed: int) -> CoreIR:
    """Three small cores wired at random: host lines on some axons, every other axon
    driven by one neuron over delays 1..4 (loops and feedback included), the remaining
    neurons outputs (several on one output index) or unused; every neuron rule mixed:
    positive and negative leaks with and without leak reversal, floors, the three reset
    modes with non-zero reset potentials, and integrators (no leak, linear reset) that
    keep spiking long after the input stops."""
    rng = np.random.default_rng(seed)
    C, A, N, n_host = 3, 12, 16, 5
    geo = Geometry(axons=A, neurons=N, axon_types=4, weight_bits=9, max_delay=4, platform="small")
    crossbar = rng.random((C, A, N)) < 0.5
    crossbar[:, np.arange(A), rng.integers(0, N, A)] = True  # every axon has a synapse
    axon_type = rng.integers(0, 4, (C, A)).astype(np.int8)
    weight = rng.integers(-9, 30, (C, N, 4)).astype(np.int16)
    threshold = rng.integers(3, 15, (C, N)).astype(np.int32)
    leak = rng.integers(-12, 3, (C, N)).astype(np.int32)  # |leak| >= threshold: reversal overshoots
    reversal = rng.random((C, N)) < 0.5
    reset = rng.integers(0, 3, (C, N)).astype(np.int8)
    integrator = rng.random((C, N)) < 0.3  # no leak, linear reset: they drain long after the input
    leak[integrator], reset[integrator] = 0, 1
    floor = np.where(rng.random((C, N)) < 0.5, -rng.integers(0, 10, (C, N)), NO_FLOOR).astype(np.int32)
    reset_value = np.where(reset == 0, rng.integers(-6, 3, (C, N)), 0).astype(np.int32)
    host = [(c, a) for c in range(C) for a in range(n_host)]
    driven = [(c, a) for c in range(C) for a in range(n_host, A)]
    neurons = rng.permutation(C * N)
    edges = [(int(s) // N, int(s) % N, c, a, int(rng.integers(1, 5)))
             for s, (c, a) in zip(neurons, driven, strict=False)]
    rest = neurons[len(driven):]
    n_out = 4
    outputs = [(int(s) // N, int(s) % N, k % n_out) for k, s in enumerate(rest[:10])]
    inputs = [(k, c, a) for k, (c, a) in enumerate(host)]
    return CoreIR(geo, crossbar, axon_type, weight, threshold, leak, reversal, reset, floor,
                  np.asarray(edges, np.int32), np.asarray(outputs, np.int32), np.asarray(inputs, np.int32),
                  len(host), n_out, reset_value=reset_value)


def _same(a: SimResult, b: SimResult, spikes: bool = False) -> None:
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.first, b.first)
    np.testing.assert_array_equal(a.sops, b.sops)
    if spikes:
        assert a.spikes is not None and b.spikes is not None
        np.testing.assert_array_equal(a.spikes, b.spikes)


@pytest.mark.parametrize("seed", range(8))
def test_fast_engine_equals_reference_on_random_recurrent_cores(seed: int) -> None:
    ir = _random_ir(seed)
    rng = np.random.default_rng(100 + seed)
    ticks, B = 60, 7
    lines = rng.random((ticks, B, ir.n_inputs)) < 0.25
    lines[rng.integers(10, 40):] = False  # input stops early: the drain is where the engine skips work
    lines[:, 0] = False  # one sample gets no input at all
    sim = Simulator(ir)
    ref = sim.run(lines, record=True, engine="reference")
    assert ref.counts.sum() > 0 and (ref.first >= 0).any() and ref.sops.sum() > 0
    _same(sim.run(lines, record=True), ref, spikes=True)
    for threads in (1, 2, 3):  # without record the engine also stops after the last input
        _same(sim.run(lines, threads=threads), ref)


def test_fast_engine_equals_reference_on_an_exported_digit_model(tmp_path: Path) -> None:
    """A rate-coded 784-64-10 LIF MLP lowered by esl-export with partial sums: long dense
    runs of input synapses (the block adds) and a draining readout."""
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [784, 64, 10], "T": 6, "encoding": "rate"})
    path = tmp_path / "m.pt"
    save_checkpoint(make_checkpoint(model, {}), path)
    assert cli.main([str(path), "--target", "truenorth", "-o", str(tmp_path / "tn"),
                     "--placement", "partial", "--readout-unit", "0.05"]) == 0
    ir = ir_mod.read(tmp_path / "tn")
    sim = Simulator(ir)
    assert len(sim.tables.inb_lo) > 0  # the input rows did become blocks
    rng = np.random.default_rng(0)
    seq = rng.random((6, 12, 784)) < 0.3
    lines = raster(ir, seq)
    ref = sim.run(lines, record=True, engine="reference")
    assert ref.counts.sum() > 0
    _same(sim.run(lines, record=True), ref, spikes=True)
    _same(sim.run(lines, threads=2), ref)
    one = [sim.run(lines[:, i:i + 1]) for i in range(12)]
    np.testing.assert_array_equal(np.concatenate([o.counts for o in one]), ref.counts)
    np.testing.assert_array_equal(sum(o.sops for o in one), ref.sops)


def test_unknown_engine_is_refused() -> None:
    sim = Simulator(_random_ir(0))
    with pytest.raises(ValueError, match="unknown engine"):
        sim.run(np.zeros((3, 1, sim.ir.n_inputs), bool), engine="turbo")


def test_what_the_engine_skips_really_never_changes() -> None:
    """``_frozen``: a tick without input leaves V and spikes as they are. ``_settled``: with
    no input ever again, V never reaches the threshold. Checked by stepping the neuron
    rule (the reference's, for one neuron) on random states, for 300 ticks."""
    from esl_export.truenorth.kernel import _frozen, _settled

    rng = np.random.default_rng(0)
    settled = frozen = 0
    for _ in range(4000):
        thr, leak = int(rng.integers(1, 12)), int(rng.integers(-12, 4))
        rev, floor, v0 = bool(rng.random() < 0.5), int(rng.integers(-8, 1)), int(rng.integers(-15, 25))
        v, spiked = v0, []
        for _t in range(300):
            v = v + (int(np.sign(v)) * leak if rev else leak)
            v = max(v, floor)
            spiked.append(v >= thr)
            if spiked[-1]:
                v -= thr  # the reset does not matter for "never reaches the threshold"
        if _settled(v0, thr, leak, rev, floor):
            settled += 1
            assert not any(spiked), (v0, thr, leak, rev, floor)
        if _frozen(v0, thr, leak, rev, floor):
            frozen += 1
            v1 = max(v0 + (int(np.sign(v0)) * leak if rev else leak), floor)
            assert v1 == v0 and v1 < thr, (v0, thr, leak, rev, floor)
    assert settled > 1000 and frozen > 100  # both claims are made often enough to be tested


def test_the_kernels_compile_where_numba_can_write_no_cache() -> None:
    """A read-only install with no writable home: numba refuses ``cache=True`` at import;
    the kernels then compile in the process and give the same numbers."""
    import subprocess
    import sys

    code = ("import numba.core.caching as c; c.CacheImpl._locator_classes = []; "
            "import numpy as np; from esl_energy.counting import _tally_kernel; "
            "import esl_export.truenorth.kernel, esl_train.models.single_spike_cpu; "
            "print(_tally_kernel(np.ones((2, 3, 4), np.float32))[0].sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "24.0"
