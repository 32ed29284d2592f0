"""Tick-accurate simulator of the core IR (numpy, vectorised across cores and samples).

One tick ``t``, for every core at once:

1. the axons that fire are the spikes scheduled for tick ``t`` (edges deliver a spike
   sent at tick ``t'`` with delay ``d`` at ``t' + d``) plus the host's input lines at
   tick ``t`` (data lines carry the encoded sample's step ``t``; a bias line fires at
   every tick of its window);
2. each neuron integrates ``sum over firing axons a with crossbar[a, n]`` of
   ``weight[n, axon_type[a]]``, then adds its ``leak`` (times sign(V) where
   ``leak_reversal`` is set), then ``V <- max(V, floor)``;
3. it spikes when ``V >= threshold`` and resets (0: to its ``reset_value``, 1: minus the
   threshold, 2: not at all); a neuron spikes at most once per tick;
4. spikes go to their one destination axon (delivered ``delay`` ticks later) or count
   as a network output.

Membranes and in-flight spikes start at zero for every sample (the host resets the
cores between samples). Samples in a batch are independent copies of the network.
SOPs: per core and tick, one per (firing axon, crossbar synapse) pair.

Only distinct neurons are simulated: a neuron with no synapse and no leak never leaves 0
(its threshold is positive, validated), and replica neurons (the same core, crossbar
column and parameters: the lowering's fan-out copies) share one state, so each group
is stepped once and its spikes copied to every member. The arithmetic per neuron is
unchanged, so the results are the same spike for spike.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from esl_export.truenorth import kernel as _kernel
from esl_export.truenorth.ir import RESET_LINEAR, RESET_ZERO, CoreIR


@dataclass
class SimResult:
    counts: np.ndarray  # [B, n_outputs] output spikes per sample
    first: np.ndarray  # [B, n_outputs] tick of each output's first spike, -1 = none
    sops: np.ndarray  # [C] synaptic operations per core, summed over samples and ticks
    ticks: int  # ticks per sample
    samples: int
    seconds: float
    spikes: np.ndarray | None  # [ticks, C, B, N] every neuron's spikes (record=True)

    @property
    def ticks_per_s(self) -> float:
        """Simulated network ticks per wall second (a batch of B samples is B network ticks)."""
        return self.ticks * self.samples / self.seconds if self.seconds > 0 else float("nan")

    @classmethod
    def join(cls, parts: list[SimResult]) -> SimResult:
        """One result from the results of consecutive batches of samples."""
        spikes = [p.spikes for p in parts if p.spikes is not None]
        return cls(np.concatenate([p.counts for p in parts]), np.concatenate([p.first for p in parts]),
                   np.sum([p.sops for p in parts], axis=0), parts[0].ticks, sum(p.samples for p in parts),
                   sum(p.seconds for p in parts),
                   np.concatenate(spikes, axis=2) if len(spikes) == len(parts) else None)

    def predictions(self, rule: str = "counts") -> np.ndarray:
        """Class per sample: ``counts``: argmax of the output spike counts (first index on
        ties); ``first-spike``: the output that spiked at the earliest tick (lowest index on
        ties), -1 where no output spiked."""
        if rule == "first-spike":
            t = np.where(self.first < 0, np.iinfo(np.int64).max, self.first)
            return np.where((self.first >= 0).any(axis=1), t.argmin(axis=1), -1)
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
        # distinct live neurons: the key is everything that decides a neuron's trajectory
        params = np.stack([ir.threshold.ravel(), ir.leak.ravel(), ir.leak_reversal.ravel().astype(np.int64),
                           ir.floor.ravel(), ir.reset.ravel().astype(np.int64),
                           np.asarray(ir.reset_value).ravel()], axis=1).astype(np.int64)
        column = ir.crossbar.transpose(0, 2, 1).reshape(C * N, A)  # [neuron, axon]
        live = column.any(axis=1) | (ir.leak.ravel() != 0)
        key = np.concatenate([np.repeat(np.arange(C), N)[:, None], params, np.packbits(column, axis=1),
                              ir.weight.reshape(C * N, -1)], axis=1)
        ids = np.flatnonzero(live)
        _, first, inverse = np.unique(key[ids], axis=0, return_index=True, return_inverse=True)
        self.unique = ids[first]  # one representative per group, [U] flat neuron indices
        self.group = np.full(C * N, -1, np.int64)  # flat neuron -> its group (-1: never fires)
        self.group[ids] = inverse.ravel()
        U = len(self.unique)
        col = np.full(C * N, -1, np.int64)
        col[self.unique] = np.arange(U)
        keep = col[c * N + n] >= 0  # the representatives' synapses
        w = sparse.csr_matrix((wsel[c, a, n][keep].astype(np.float64),
                               ((c * A + a)[keep], col[(c * N + n)[keep]])), shape=(C * A, U))
        # SOPs per core: synapses on each axon, summed into its core
        sop = sparse.csr_matrix((ir.crossbar.sum(axis=2).ravel().astype(np.float64),
                                 (np.arange(C * A), np.repeat(np.arange(C), A))), shape=(C * A, C))
        self.depth = ir.geometry.max_delay + 1
        u = self.unique
        self.threshold = ir.threshold.astype(np.float64).ravel()[u]
        self.leak = ir.leak.astype(np.float64).ravel()[u]
        self.reversal = ir.leak_reversal.astype(bool).ravel()[u]
        self.any_reversal = bool(self.reversal.any())
        self.floor = ir.floor.astype(np.float64).ravel()[u]
        self.zero_reset = (ir.reset == RESET_ZERO).ravel()[u]
        self.reset_value = np.asarray(ir.reset_value, np.float64).ravel()[u]
        self.lin_reset = (ir.reset == RESET_LINEAR).ravel()[u]
        e = ir.edges.astype(np.int64)
        src_all = e[:, 0] * N + e[:, 1]
        fires = self.group[src_all] >= 0  # an edge from a neuron that never fires carries nothing
        edge_groups = [(int(d), self.group[src_all[sel]], e[sel, 2] * A + e[sel, 3])
                       for d in np.unique(e[:, 4]) for sel in [(e[:, 4] == d) & fires]]
        in_index = ir.inputs[:, 0].astype(np.int64)
        in_axon = ir.inputs[:, 1].astype(np.int64) * A + ir.inputs[:, 2]
        o = ir.outputs.astype(np.int64)
        out_group = self.group[o[:, 0] * N + o[:, 1]]
        self.out_neuron, self.out_index = out_group[out_group >= 0], o[out_group >= 0, 2]
        # every axon has one driver (validated), so an axon's spike is its driver's spike d
        # ticks earlier: fold the axons away. Per delay d, M_d[g, u] sums the weights group
        # g's spikes reach representative u with (integers: exact), S_d[g, c] the synapses
        # they touch in core c; the host's input lines likewise.
        self.by_delay = []
        for d, src, dst in edge_groups:
            route = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(U, C * A))
            self.by_delay.append((d, (route @ w).tocsr(), (route @ sop).tocsr()))
        n_in = ir.n_inputs
        route = sparse.csr_matrix((np.ones(len(in_index)), (in_index, in_axon)), shape=(n_in, C * A))
        self.from_input, self.sop_input = (route @ w).tocsr(), (route @ sop).tocsr()
        self.tables = _kernel.tables(
            self.from_input, self.sop_input, self.by_delay,
            {"threshold": self.threshold, "leak": self.leak, "reversal": self.reversal, "floor": self.floor,
             "zero_reset": self.zero_reset, "reset_value": self.reset_value, "lin_reset": self.lin_reset},
            self.out_neuron, self.out_index, ir.n_outputs, C, self.depth)
        # compile (or load from numba's cache) now, so that no run's timing includes it
        _kernel.run(np.zeros((1, 1, ir.n_inputs), np.bool_), self.tables, False)

    def run(self, raster: np.ndarray, record: bool = False, engine: str = "fast",
            threads: int | None = None) -> SimResult:
        """``raster``: bool [ticks, B, n_inputs], the host's input lines per tick. ``engine``:
        ``fast`` (the compiled event-driven kernel, samples split over ``threads``, by
        default one per CPU this process may use) or ``reference`` (the numpy loop that
        states the semantics); both give the same counts, first spikes, SOPs and spikes."""
        if engine == "reference":
            return self._run_reference(raster, record)
        if engine != "fast":
            raise ValueError(f"unknown engine {engine!r}: fast or reference")
        ticks, B, _ = raster.shape
        raster = np.ascontiguousarray(raster, dtype=np.bool_)
        workers = max(1, min(B, threads or len(os.sched_getaffinity(0))))
        cuts = np.linspace(0, B, workers + 1).astype(int)
        t0 = time.perf_counter()
        if workers == 1:
            parts = [_kernel.run(raster, self.tables, record)]
        else:  # samples are independent and the kernel releases the GIL
            chunks = [np.ascontiguousarray(raster[:, cuts[i]:cuts[i + 1]]) for i in range(workers)]
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(lambda r: _kernel.run(r, self.tables, record), chunks))
        seconds = time.perf_counter() - t0
        counts, first = (np.concatenate([p[k] for p in parts]) for k in (0, 1))
        sops = np.sum([p[2] for p in parts], axis=0).astype(np.float64)
        rec = self._expand(np.concatenate([p[3] for p in parts], axis=1)) if record else None
        return SimResult(counts, first, sops, ticks, B, seconds, rec)

    def _expand(self, groups: np.ndarray) -> np.ndarray:
        """Every neuron's spikes [ticks, C, B, N] from its group's [ticks, B, U] (never for
        the silent ones)."""
        C, _, N = self.shape
        ticks, B, _ = groups.shape
        full = np.zeros((ticks, B, C * N), bool)
        members = self.group >= 0
        full[:, :, members] = groups[:, :, self.group[members]]
        return full.reshape(ticks, B, C, N).transpose(0, 2, 1, 3)

    def _run_reference(self, raster: np.ndarray, record: bool) -> SimResult:
        """One tick at a time over every group, in numpy (the semantics, spelled out)."""
        ir = self.ir
        ticks, B, _ = raster.shape
        C = self.shape[0]
        hist = np.zeros((self.depth, B, len(self.unique)), bool)  # the groups' spikes, last ticks
        V = np.zeros((B, len(self.unique)), np.float64)
        counts = np.zeros((B, ir.n_outputs), np.int64)
        first = np.full((B, ir.n_outputs), -1, np.int64)
        sops = np.zeros(C, np.float64)
        rec = np.zeros((ticks, B, len(self.unique)), bool) if record else None
        t0 = time.perf_counter()
        for t in range(ticks):
            arriving = [(raster[t], self.from_input, self.sop_input)]
            arriving += [(hist[(t - d) % self.depth], m, sm) for d, m, sm in self.by_delay if t >= d]
            for spikes, m, sm in arriving:
                if not spikes.any():
                    continue
                x = sparse.csr_matrix(spikes, dtype=np.float64)
                sops += np.asarray((x @ sm).sum(axis=0)).ravel()
                V += (x @ m).toarray()  # integer-valued float64: exact
            V += np.where(self.reversal, np.sign(V) * self.leak, self.leak) if self.any_reversal \
                else self.leak
            np.maximum(V, self.floor, out=V)
            s = V >= self.threshold
            z = s & self.zero_reset
            V[z] = np.broadcast_to(self.reset_value, V.shape)[z]
            lin = s & self.lin_reset
            V[lin] -= np.broadcast_to(self.threshold, V.shape)[lin]
            hist[t % self.depth] = s
            if len(self.out_index):
                out = s[:, self.out_neuron]
                np.add.at(counts.T, self.out_index, out.T)
                if out.any():  # several neurons may share an output index: its earliest tick
                    b, o = np.nonzero(out)
                    cur = first[b, self.out_index[o]]
                    first[b[cur < 0], self.out_index[o][cur < 0]] = t
            if rec is not None:
                rec[t] = s
        seconds = time.perf_counter() - t0
        spikes = self._expand(rec) if rec is not None else None
        return SimResult(counts, first, sops, ticks, B, seconds, spikes)


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


def simulate(ir: CoreIR, seq: np.ndarray, batch: int = 100, record: bool = False,
             host: bool = False, engine: str = "fast") -> SimResult:
    """Stream samples ``seq`` [T, N, n_data] through the IR in batches; with ``host``, ``seq``
    is already every input line per tick, [ticks_per_sample, N, n_inputs] (the single-spike
    IR's latency raster)."""
    sim = Simulator(ir)
    n = seq.shape[1]
    if host and (seq.shape[0] != int(ir.meta["timing"]["ticks_per_sample"]) or seq.shape[2] != ir.n_inputs):
        raise ValueError(f"host raster {seq.shape}: expected [ticks per sample, samples, {ir.n_inputs}]")
    parts = [sim.run(seq[:, i:i + batch] if host else raster(ir, seq[:, i:i + batch]),
                     record=record, engine=engine)
             for i in range(0, n, batch)]
    return SimResult.join(parts)
