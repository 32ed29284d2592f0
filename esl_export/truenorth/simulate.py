"""Tick-accurate simulator of the core IR (numpy, vectorised across cores and samples).

One tick ``t``, for every core at once:

1. the axons that fire are the spikes scheduled for tick ``t`` (edges deliver a spike
   sent at tick ``t'`` with delay ``d`` at ``t' + d``) plus the host's input lines at
   tick ``t`` (data lines carry the encoded sample's step ``t``; a bias line fires at
   every tick of its window);
2. each neuron integrates ``sum over firing axons a with crossbar[a, n]`` of
   ``weight[n, axon_type[a]]``, then adds its ``leak`` (times sign(V) where
   ``leak_reversal`` is set), then ``V <- max(V, floor)``;
3. it spikes when ``V >= threshold`` and resets (0: to 0, 1: minus the threshold,
   2: not at all); a neuron spikes at most once per tick;
4. spikes go to their one destination axon (delivered ``delay`` ticks later) or count
   as a network output.

Membranes and in-flight spikes start at zero for every sample (the host resets the
cores between samples). Samples in a batch are independent copies of the network.
SOPs: per core and tick, one per (firing axon, crossbar synapse) pair.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from esl_export.truenorth.ir import RESET_LINEAR, RESET_ZERO, CoreIR


@dataclass
class SimResult:
    counts: np.ndarray  # [B, n_outputs] output spikes per sample
    sops: np.ndarray  # [C] synaptic operations per core, summed over samples and ticks
    ticks: int  # ticks per sample
    samples: int
    seconds: float
    spikes: np.ndarray | None  # [ticks, C, B, N] every neuron's spikes (record=True)

    @property
    def ticks_per_s(self) -> float:
        """Simulated network ticks per wall second (a batch of B samples is B network ticks)."""
        return self.ticks * self.samples / self.seconds if self.seconds > 0 else float("nan")

    def predictions(self) -> np.ndarray:
        return self.counts.argmax(axis=1)


class Simulator:
    """Build once from an IR, run many batches."""

    def __init__(self, ir: CoreIR) -> None:
        self.ir = ir
        C, A, N = ir.crossbar.shape
        self.shape = (C, A, N)
        # effective integer weight of every synapse: crossbar × weight of the axon's type,
        # as one block-diagonal sparse matrix [C·A, C·N] (spikes and synapses are sparse)
        wsel = np.take_along_axis(ir.weight.transpose(0, 2, 1),  # [C, types, N]
                                  ir.axon_type.astype(np.int64)[:, :, None], axis=1)  # [C, A, N]
        c, a, n = np.nonzero(ir.crossbar)
        self.w = sparse.csr_matrix((wsel[c, a, n].astype(np.float64), (c * A + a, c * N + n)),
                                   shape=(C * A, C * N))
        # SOPs per core: synapses on each axon, summed into its core
        self.sop = sparse.csr_matrix((ir.crossbar.sum(axis=2).ravel().astype(np.float64),
                                      (np.arange(C * A), np.repeat(np.arange(C), A))), shape=(C * A, C))
        self.depth = ir.geometry.max_delay + 1
        self.threshold = ir.threshold.astype(np.float64).ravel()
        self.leak = ir.leak.astype(np.float64).ravel()
        self.reversal = ir.leak_reversal.astype(bool).ravel()
        self.any_reversal = bool(self.reversal.any())
        self.floor = ir.floor.astype(np.float64).ravel()
        self.zero_reset = (ir.reset == RESET_ZERO).ravel()
        self.lin_reset = (ir.reset == RESET_LINEAR).ravel()
        e = ir.edges.astype(np.int64)
        self.edge_groups = [(int(d), e[e[:, 4] == d, 0] * N + e[e[:, 4] == d, 1],
                             e[e[:, 4] == d, 2] * A + e[e[:, 4] == d, 3]) for d in np.unique(e[:, 4])]
        self.in_index = ir.inputs[:, 0].astype(np.int64)
        self.in_axon = ir.inputs[:, 1].astype(np.int64) * A + ir.inputs[:, 2]
        o = ir.outputs.astype(np.int64)
        self.out_neuron, self.out_index = o[:, 0] * N + o[:, 1], o[:, 2]

    def run(self, raster: np.ndarray, record: bool = False) -> SimResult:
        """``raster``: bool [ticks, B, n_inputs], the host's input lines per tick."""
        ir = self.ir
        ticks, B, _ = raster.shape
        C, A, N = self.shape
        buf = np.zeros((self.depth, B, C * A), bool)
        V = np.zeros((B, C * N), np.float64)
        counts = np.zeros((B, ir.n_outputs), np.int64)
        sops = np.zeros(C, np.float64)
        rec = np.zeros((ticks, C, B, N), bool) if record else None
        t0 = time.perf_counter()
        for t in range(ticks):
            slot = t % self.depth
            axons = buf[slot]
            if len(self.in_index):
                axons[:, self.in_axon] |= raster[t][:, self.in_index]
            x = sparse.csr_matrix(axons, dtype=np.float64)
            sops += np.asarray((x @ self.sop).sum(axis=0)).ravel()
            V += (x @ self.w).toarray()  # integer-valued float64: exact
            V += np.where(self.reversal, np.sign(V) * self.leak, self.leak) if self.any_reversal \
                else self.leak
            np.maximum(V, self.floor, out=V)
            s = V >= self.threshold
            V[s & self.zero_reset] = 0.0
            lin = s & self.lin_reset
            V[lin] -= np.broadcast_to(self.threshold, V.shape)[lin]
            axons[:] = False
            for d, src, dst in self.edge_groups:
                buf[(t + d) % self.depth][:, dst] = s[:, src]
            if len(self.out_index):
                np.add.at(counts.T, self.out_index, s[:, self.out_neuron].T)
            if rec is not None:
                rec[t] = s.reshape(B, C, N).transpose(1, 0, 2)
        return SimResult(counts, sops, ticks, B, time.perf_counter() - t0, rec)


def raster(ir: CoreIR, seq: np.ndarray) -> np.ndarray:
    """The host's input lines per tick for data ``seq`` [T, B, n_data] (spikes, 0/1):
    data line i fires at tick t < T when ``seq[t, :, i]``; bias lines fire over their
    window; ``ticks_per_sample`` ticks in all."""
    timing = ir.meta["timing"]
    n_data = int(ir.meta["inputs"]["n_data"])
    ticks = int(timing["ticks_per_sample"])
    T, B = seq.shape[:2]
    seq = np.asarray(seq).reshape(T, B, -1)
    if seq.shape[2] != n_data:
        raise ValueError(f"input has {seq.shape[2]} lines, the IR takes {n_data}")
    r = np.zeros((ticks, B, ir.n_inputs), bool)
    r[:T, :, :n_data] = seq > 0
    for line in ir.meta["inputs"]["bias_lines"]:
        r[line["start"]:line["start"] + line["ticks"], :, line["index"]] = True
    return r


def simulate(ir: CoreIR, seq: np.ndarray, batch: int = 100, record: bool = False) -> SimResult:
    """Stream samples ``seq`` [T, N, n_data] through the IR in batches."""
    sim = Simulator(ir)
    n = seq.shape[1]
    parts = [sim.run(raster(ir, seq[:, i:i + batch]), record=record) for i in range(0, n, batch)]
    return SimResult(np.concatenate([p.counts for p in parts]), sum(p.sops for p in parts),
                     parts[0].ticks, n, sum(p.seconds for p in parts),
                     np.concatenate([p.spikes for p in parts], axis=2) if record else None)
