"""The installed Lava runs a real two-layer network, and its spikes follow the LIF
equations the project relies on (floating_pt, du=1, dv=1-tau, strict threshold,
reset to zero, one step of delay per connection process)."""

from __future__ import annotations

import numpy as np


def reference(inp: np.ndarray, weights: list[np.ndarray], tau: float, vth: float) -> list[np.ndarray]:
    """Spike trains per layer; inp is [T, n_in] binary."""
    trains, x = [], inp
    for w in weights:
        v = np.zeros(w.shape[0])
        out = np.zeros((len(x), w.shape[0]))
        for t in range(len(x)):
            v = tau * v + w @ x[t]
            out[t] = v > vth
            v[out[t] > 0] = 0.0
        trains.append(out)
        x = out
    return trains


def test_two_layer_lava_network_matches_lif_equations() -> None:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    rng = np.random.default_rng(0)
    steps, n_in, n_hid, n_out, tau, vth = 30, 20, 12, 5, 0.5, 1.0
    inp = (rng.random((steps, n_in)) < 0.3).astype(float)
    w1 = rng.normal(0.0, 0.6, (n_hid, n_in))
    w2 = rng.normal(0.3, 0.8, (n_out, n_hid))

    src = Source(data=inp.T)
    dense1, dense2 = Dense(weights=w1), Dense(weights=w2)
    lif1 = LIF(shape=(n_hid,), du=1.0, dv=1.0 - tau, vth=vth)
    lif2 = LIF(shape=(n_out,), du=1.0, dv=1.0 - tau, vth=vth)
    sink1, sink2 = Sink(shape=(n_hid,), buffer=steps), Sink(shape=(n_out,), buffer=steps)
    src.s_out.connect(dense1.s_in)
    dense1.a_out.connect(lif1.a_in)
    lif1.s_out.connect(dense2.s_in)
    dense2.a_out.connect(lif2.a_in)
    lif1.s_out.connect(sink1.a_in)
    lif2.s_out.connect(sink2.a_in)
    try:
        lif2.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        got1, got2 = sink1.data.get().T, sink2.data.get().T
    finally:
        lif2.stop()

    ref1, ref2 = reference(inp, [w1, w2], tau, vth)
    assert ref1.sum() > 10 and ref2.sum() > 3, "the test network must actually spike"
    # layer k's spikes at Lava step t are the reference's step t - k
    np.testing.assert_array_equal(got1[1:], ref1[:-1])
    np.testing.assert_array_equal(got2[2:], ref2[:-2])
    assert not got1[0].any() and not got2[:2].any()
