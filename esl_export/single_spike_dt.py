"""The single-spike network in discrete time: the project's own reference of what
the Lava export computes, read from the lowered Graph (numpy, float64).

Continuous model (Mostafa 2018, τ_syn units): dI/dt = −I/τ_syn + Σ w_i δ(t − t_i),
dV/dt = I, spike when V crosses the threshold, at most once. Sampled on a grid of
step ``dt`` this is exact at the grid points for inputs that arrive on the grid:

    u[n] = (1 − du)·u[n−1] + du·Σ_i w_i s_i[n−1]      du = 1 − exp(−dt/τ_syn)
    v[n] = v[n−1] + u[n]                                 non-leaky membrane (dv = 0)
    spike at n when v[n] > θ and the neuron has not fired in this sample; v ← 0

``u[n]`` is the charge that flows onto the membrane during ((n−1)·dt, n·dt], so the
weights are scaled by ``du`` ("weights scaled for dt"). A spike at step n stands for
time n·dt and charges the next layer from step n+1 on, which is exactly Lava's one
step of delay per connection process: every layer runs on the same clock.

Inputs are latency coded as in the PyTorch model and put on the grid by rounding:
step round(t_i/dt). A hidden neuron's spike time is quantised *up* to the grid
(the first grid point after the crossing), so errors grow with dt: small dt is
faithful but costs steps (``window/dt`` per sample); large dt is fast but moves
spikes later and merges close output spikes into one step. Outputs that fire in the
same step are told apart by linear interpolation of the crossing inside the step,
t* = (n − (v[n] − θ)/u[n])·dt, the earliest t* wins.

Measured on the 784-800-10 model of the default recipe (1,000 embedded test digits,
window 3 τ_syn; agreement of the predicted class with the z-domain model, with the
interpolated tie-break / with the earliest step alone):

    dt      steps/digit   agreement
    4/15        13        99.2 % / 96.3 %
    2/15        24        99.8 % / 98.7 %
    1/15        46       100.0 % / 99.1 %   (default: half the input level spacing)
    1/30        91       100.0 % / 99.7 %
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from esl_export.graph import Affine, Graph, GraphError, Input, SingleSpikeIF

#: default time step in τ_syn units: half the input level spacing of the default
#: latency code (t_max 2, 16 levels: spacing 2/15), so every input level is on the grid
DEFAULT_DT = 2.0 / 15.0 / 2.0
#: default length of a sample in τ_syn units (the latest input arrives at t_max = 2)
DEFAULT_WINDOW = 3.0


@dataclass(frozen=True)
class DTLayer:
    """One layer in discrete time: a_in = weight @ spikes (weight already scaled)."""

    name: str
    weight: np.ndarray  # [out, in] float64, = W · du
    du: float
    threshold: float


@dataclass(frozen=True)
class DTNetwork:
    """The discrete-time single-spike network: layers, grid and input code."""

    layers: list[DTLayer]
    dt: float
    steps: int  # per sample
    tau_syn: float
    encoding: dict[str, Any]

    def input_steps(self, x: np.ndarray) -> np.ndarray:
        """Step of each input's spike, ``[B, n_in]`` int, −1 = never spikes."""
        return input_steps(self.encoding, x, self.dt, self.tau_syn, self.steps)


def network(graph: Graph, dt: float = DEFAULT_DT, window: float = DEFAULT_WINDOW) -> DTNetwork:
    """Discrete-time mapping of a lowered single-spike graph (Input, Affine, SingleSpikeIF...)."""
    if not (math.isfinite(dt) and dt > 0):
        raise GraphError(f"dt must be a positive number of tau_syn, got {dt}")
    if not (math.isfinite(window) and window > 0):
        raise GraphError(f"window must be positive, got {window}")
    inp = graph.nodes[graph.input]
    assert isinstance(inp, Input)
    if inp.encoding.get("kind") != "latency":
        raise GraphError("the single-spike mapping needs latency-coded input, "
                         f"not {inp.encoding.get('kind')!r}")
    layers: list[DTLayer] = []
    tau = None
    names = list(graph.nodes)[1:]
    if len(names) % 2:
        raise GraphError("single-spike graph: expected Affine/SingleSpikeIF pairs")
    for conn_name, neuron_name in zip(names[::2], names[1::2], strict=True):
        conn, neuron = graph.nodes[conn_name], graph.nodes[neuron_name]
        if not isinstance(conn, Affine) or not isinstance(neuron, SingleSpikeIF):
            raise GraphError(f"single-spike graph: {conn_name} -> {neuron_name} is not "
                             "Affine -> SingleSpikeIF")
        if conn.bias is not None and np.any(conn.bias != 0):
            raise GraphError(f"{conn_name}: the single-spike neuron has no bias input")
        if tau is not None and neuron.tau_syn != tau:
            raise GraphError("single-spike graph: one tau_syn for every layer expected")
        tau = float(neuron.tau_syn)
        du = 1.0 - math.exp(-dt / tau)
        weight = np.asarray(conn.weight, np.float64) * np.asarray(conn.mask, bool) * du
        layers.append(DTLayer(conn_name, weight, du, float(neuron.threshold)))
    assert tau is not None
    t_max = float(inp.encoding.get("t_max", 0.0))
    if window <= t_max:
        raise GraphError(f"window {window} must be longer than the latest input time t_max = {t_max}")
    steps = math.ceil(window / dt) + 1
    return DTNetwork(layers, float(dt), steps, tau, dict(inp.encoding))


def input_times(encoding: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Latency code of the PyTorch model (SingleSpikeMLP.input_spike_times), in numpy:
    ``[B, n_in]`` spike times in τ_syn units, inf = never."""
    x = np.clip(np.asarray(x, np.float64).reshape(len(x), -1), 0.0, 1.0)
    t_max = float(encoding["t_max"])
    levels = int(encoding.get("T") or 0)
    if levels:
        # same float32 rounding of the level index as the model
        lvl = np.round((1.0 - x.astype(np.float32)) * np.float32(levels - 1)).astype(np.int64)
        t = np.linspace(0.0, t_max, levels, dtype=np.float32).astype(np.float64)[lvl]
    else:
        t = t_max * (1.0 - x)
    if encoding.get("zero_pixels") == "never":
        t = np.where(x > 0, t, np.inf)
    return t


def input_steps(encoding: dict[str, Any], x: np.ndarray, dt: float, tau_syn: float = 1.0,
                steps: int | None = None) -> np.ndarray:
    """Grid step of each input spike (rounded), −1 = never (or beyond ``steps``)."""
    t = input_times(encoding, x) / tau_syn
    k = np.where(np.isfinite(t), np.round(np.where(np.isfinite(t), t, 0.0) / dt), -1).astype(np.int64)
    if steps is not None:
        k[k >= steps] = -1
    return k


@dataclass(frozen=True)
class DTRun:
    """Result of a discrete-time run: per layer, the first-spike time of every neuron in
    steps (``n − frac``: grid step minus the interpolated fraction), NaN = silent."""

    first: list[np.ndarray]  # per layer [B, n]
    dt: float

    def spike_steps(self, layer: int) -> np.ndarray:
        """Grid step of each neuron's spike, −1 = silent, ``[B, n]``."""
        f = self.first[layer]
        return np.where(np.isnan(f), -1, np.ceil(np.nan_to_num(f, nan=-1.0))).astype(np.int64)

    def predict(self) -> np.ndarray:
        """Class per sample: the earliest output spike (interpolated), −1 if none fired."""
        return first_spike_class(self.first[-1])


def first_spike_class(first: np.ndarray) -> np.ndarray:
    """Earliest (interpolated) output spike per row; −1 where no output fired."""
    filled = np.where(np.isnan(first), np.inf, first)
    cls = filled.argmin(axis=1)
    return np.where(np.isfinite(filled.min(axis=1)), cls, -1)


def run(net: DTNetwork, in_steps: np.ndarray) -> DTRun:
    """Step the network over one window per sample (batched over samples)."""
    B = in_steps.shape[0]
    spikes_prev = np.zeros((B, in_steps.shape[1]), bool)  # layer input at step n−1
    states = [(np.zeros((B, lay.weight.shape[0])), np.zeros((B, lay.weight.shape[0])),
               np.zeros((B, lay.weight.shape[0]), bool)) for lay in net.layers]
    first = [np.full((B, lay.weight.shape[0]), np.nan) for lay in net.layers]
    prev_out: list[np.ndarray] = [np.zeros((B, lay.weight.shape[0]), bool) for lay in net.layers]
    for n in range(1, net.steps):
        spikes_prev = in_steps == (n - 1)
        new_out = []
        for k, lay in enumerate(net.layers):
            u, v, fired = states[k]
            src = spikes_prev if k == 0 else prev_out[k - 1]
            a = src.astype(np.float64) @ lay.weight.T
            u[:] = u * (1.0 - lay.du) + a
            v[:] = v + u
            spk = (v > lay.threshold) & ~fired
            if spk.any():
                first[k][spk] = n - (v[spk] - lay.threshold) / u[spk]
                fired |= spk
                v[spk] = 0.0
            new_out.append(spk)
        prev_out = new_out
    return DTRun(first, net.dt)
