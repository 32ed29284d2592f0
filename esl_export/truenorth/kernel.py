"""The core simulator's compiled inner loop: event-driven, one sample at a time.

``Simulator`` (simulate.py) folds the IR into neuron *groups* and, per delay, sparse rows
"a spike of group g adds these integers to these groups and touches this many synapses
in these cores". Per sample and tick this kernel

1. adds the rows of the host lines that fire (long runs of nearby targets as dense
   blocks, which vectorise) and of the spikes that arrive;
2. steps the groups: all of them, branch-free, on a tick the host's lines fired;
   otherwise only the listed ones, skipping every group a tick without input would
   leave as it is (``_frozen``: no leak acting, floor <= V < threshold);
3. after the last input, once no spike is in flight and no group that sends can reach
   its threshold again (``_settled``), steps only the outputs, and stops when they
   cannot spike either. A group only the host feeds stops being stepped once settled.

The arithmetic per group is the reference loop's, in int64 instead of integer-valued
float64, so counts, first spikes, SOPs and spikes are the same; SOPs are summed from
per-source delivery counts at the end. ``tests/test_truenorth_kernel.py`` checks both
engines against each other and the two skipping rules against the neuron rule.

Why compiled: a tick of a few cores is a few hundred additions; in numpy every tick
costs a dozen array calls whatever the work, which is what made the IR slower than
Lava per digit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse

from esl_train.jit import compiled


class Tables(NamedTuple):
    """The folded IR as flat integer arrays (CSR rows per source)."""

    inb_ptr: np.ndarray  # [n_in + 1] input line -> dense runs of groups it reaches ...
    inb_lo: np.ndarray  # (first group, length, offset into inb_w; zeros fill the gaps)
    inb_len: np.ndarray
    inb_off: np.ndarray
    inb_w: np.ndarray
    in_ptr: np.ndarray  # [n_in + 1] ... and the groups outside those runs
    in_idx: np.ndarray
    in_w: np.ndarray
    ins_ptr: np.ndarray  # [n_in + 1] input line -> cores whose synapses it touches
    ins_idx: np.ndarray
    ins_n: np.ndarray
    delays: np.ndarray  # [D]
    d_ptr: np.ndarray  # [D, U + 1] group -> groups it reaches with delay d (into d_idx, d_w)
    d_idx: np.ndarray
    d_w: np.ndarray
    ds_ptr: np.ndarray  # [D, U + 1] group -> cores, synapses touched
    ds_idx: np.ndarray
    ds_n: np.ndarray
    threshold: np.ndarray  # [U] int64
    leak: np.ndarray
    reversal: np.ndarray  # bool
    floor: np.ndarray
    zero_reset: np.ndarray  # bool
    reset_value: np.ndarray
    lin_reset: np.ndarray  # bool
    out_ptr: np.ndarray  # [U + 1] group -> output indices it counts for
    out_idx: np.ndarray
    n_out: int
    n_cores: int
    depth: int


def _csr(m: sparse.csr_matrix, compact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row pointers, column indices and integer values of ``m``; ``compact``: the narrowest
    index and value types that hold them (the additions stream these arrays, so bytes
    per synapse is what they cost)."""
    m = m.tocsr()
    m.sum_duplicates()
    m.sort_indices()
    data = np.rint(m.data).astype(np.int64)  # integer weights and synapse counts
    if not compact:
        return m.indptr.astype(np.int64), m.indices.astype(np.int64), data
    index = np.uint16 if m.shape[1] <= np.iinfo(np.uint16).max else np.uint32
    big = int(np.abs(data).max()) if len(data) else 0
    value = next(v for v in (np.int16, np.int32, np.int64) if big <= np.iinfo(v).max)
    return m.indptr.astype(np.int64), m.indices.astype(index), data.astype(value)


#: a run of a row's targets becomes one dense block when it has at least RUN_MIN targets
#: and they fill at least RUN_FILL of its span: a vectorised add of a block costs about
#: 0.2 ns per element, a scattered add about 0.9 ns, and fewer, longer blocks waste less
#: on loop overhead (on the 784-800-10 IRs 1/32 ran fastest of 1/2 ... 1/200)
RUN_MIN, RUN_FILL = 8, 1 / 32


def _runs(ptr: np.ndarray, idx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Split CSR rows (sorted columns) into dense blocks over runs of nearby columns, which
    the kernel adds with vector instructions, and the scattered rest. Returns the blocks'
    row pointers, starts, lengths, offsets and values, then the rest's row pointers,
    columns and values. Groups are numbered core by core, so an input's targets in one
    core mostly form such a run."""
    b_ptr, b_lo, b_len, b_off, b_w = [0], [], [], [], []
    r_ptr, r_idx, r_w = [0], [], []
    off = 0
    for i in range(len(ptr) - 1):
        cols, vals = idx[ptr[i]:ptr[i + 1]].astype(np.int64), w[ptr[i]:ptr[i + 1]]
        rest = 0
        cut = np.flatnonzero(np.diff(cols) > 1 / RUN_FILL) + 1
        for c, v in zip(np.split(cols, cut), np.split(vals, cut), strict=True):
            span = int(c[-1] - c[0] + 1) if len(c) else 0
            if len(c) >= RUN_MIN and len(c) >= RUN_FILL * span:
                block = np.zeros(span, w.dtype)
                block[c - c[0]] = v
                b_lo.append(int(c[0]))
                b_len.append(span)
                b_off.append(off)
                b_w.append(block)
                off += span
            else:
                r_idx.append(c)
                r_w.append(v)
                rest += len(c)
        b_ptr.append(len(b_lo))
        r_ptr.append(r_ptr[-1] + rest)
    return (np.asarray(b_ptr, np.int64), np.asarray(b_lo, np.int64), np.asarray(b_len, np.int64),
            np.asarray(b_off, np.int64), np.concatenate(b_w) if b_w else np.zeros(0, w.dtype),
            np.asarray(r_ptr, np.int64), np.concatenate(r_idx).astype(idx.dtype) if r_idx else idx[:0],
            np.concatenate(r_w) if r_w else w[:0])


def tables(from_input: sparse.csr_matrix, sop_input: sparse.csr_matrix,
           by_delay: list[tuple[int, sparse.csr_matrix, sparse.csr_matrix]],
           params: dict[str, np.ndarray], out_neuron: np.ndarray, out_index: np.ndarray,
           n_out: int, n_cores: int, depth: int) -> Tables:
    """Pack the simulator's folded matrices and group parameters for ``run``."""
    U = len(params["threshold"])
    inb_ptr, inb_lo, inb_len, inb_off, inb_w, in_ptr, in_idx, in_w = _runs(*_csr(from_input, compact=True))
    ins_ptr, ins_idx, ins_n = _csr(sop_input)
    D = len(by_delay)
    d_ptr = np.zeros((D, U + 1), np.int64)
    ds_ptr = np.zeros((D, U + 1), np.int64)
    idx, w, sidx, sn = [], [], [], []
    off = soff = 0
    for j, (_, m, sm) in enumerate(by_delay):
        p, i, v = _csr(m, compact=True)
        d_ptr[j] = p + off
        idx.append(i)
        w.append(v)
        off += len(i)
        p, i, v = _csr(sm)
        ds_ptr[j] = p + soff
        sidx.append(i)
        sn.append(v)
        soff += len(i)
    empty = np.zeros(0, np.int64)
    order = np.argsort(out_neuron, kind="stable")
    out_ptr = np.searchsorted(out_neuron[order], np.arange(U + 1)).astype(np.int64)
    as64 = {k: np.ascontiguousarray(v, np.int64) for k, v in params.items()
            if k in ("threshold", "leak", "floor", "reset_value")}
    flags = {k: np.ascontiguousarray(v, np.bool_) for k, v in params.items()
             if k in ("reversal", "zero_reset", "lin_reset")}
    return Tables(inb_ptr, inb_lo, inb_len, inb_off, inb_w, in_ptr, in_idx, in_w, ins_ptr, ins_idx, ins_n,
                  np.asarray([d for d, _, _ in by_delay], np.int64), d_ptr,
                  np.concatenate(idx) if idx else empty, np.concatenate(w) if w else empty,
                  ds_ptr, np.concatenate(sidx) if sidx else empty, np.concatenate(sn) if sn else empty,
                  as64["threshold"], as64["leak"], flags["reversal"], as64["floor"], flags["zero_reset"],
                  as64["reset_value"], flags["lin_reset"],
                  out_ptr, np.ascontiguousarray(out_index[order], np.int64), int(n_out), int(n_cores),
                  int(depth))


def run(raster: np.ndarray, t: Tables, record: bool) -> tuple[np.ndarray, ...]:
    """Counts [B, n_out], first-spike ticks [B, n_out] (-1: none), SOPs per core [C] (int64)
    and, with ``record``, every group's spikes [ticks, B, U] for ``raster`` [ticks, B, n_in]."""
    return _run(raster, t, record)


@compiled
def _run(raster, t, record):
    inb_ptr, inb_lo, inb_len, inb_off, inb_w = t.inb_ptr, t.inb_lo, t.inb_len, t.inb_off, t.inb_w
    in_ptr, in_idx, in_w, ins_ptr, ins_idx, ins_n = t.in_ptr, t.in_idx, t.in_w, t.ins_ptr, t.ins_idx, t.ins_n
    delays, d_ptr, d_idx, d_w = t.delays, t.d_ptr, t.d_idx, t.d_w
    ds_ptr, ds_idx, ds_n = t.ds_ptr, t.ds_idx, t.ds_n
    threshold, leak, reversal, floor = t.threshold, t.leak, t.reversal, t.floor
    zero_reset, reset_value, lin_reset = t.zero_reset, t.reset_value, t.lin_reset
    out_ptr, out_idx, n_out, n_cores, depth = t.out_ptr, t.out_idx, t.n_out, t.n_cores, t.depth
    ticks, B, n_in = raster.shape
    U = threshold.shape[0]
    D = delays.shape[0]
    max_delay = 0
    for j in range(D):
        max_delay = max(max_delay, delays[j])
    sends = np.zeros(U, np.bool_)  # the group's spikes reach other groups
    fed = np.zeros(U, np.bool_)  # other groups' spikes reach the group
    for j in range(D):
        for u in range(U):
            if d_ptr[j, u + 1] > d_ptr[j, u]:
                sends[u] = True
        for k in range(d_idx.shape[0]):
            fed[d_idx[k]] = True
    counted = np.zeros(U, np.bool_)  # the group's spikes are network outputs
    for u in range(U):
        counted[u] = out_ptr[u + 1] > out_ptr[u]
    counts = np.zeros((B, n_out), np.int64)
    first = np.full((B, n_out), -1, np.int64)
    sent_in = np.zeros(n_in, np.int64)  # deliveries per input line and per (delay, group):
    sent = np.zeros((D, U), np.int64)  # the SOPs follow from them at the end
    rec = np.zeros((ticks if record else 0, B, U), np.bool_)
    V = np.zeros(U, np.int64)
    act = np.empty(U, np.int64)  # the groups that may change without input ...
    listed = np.zeros(U, np.bool_)  # ... and which those are
    S = np.zeros(U, np.bool_)  # this tick's spikes
    spk = np.empty((depth, U), np.int64)  # per tick slot, the groups that spiked then
    nspk = np.zeros(depth, np.int64)
    for b in range(B):
        V[:] = 0
        nspk[:] = 0
        last_input = -1
        for t in range(ticks - 1, -1, -1):
            for i in range(n_in):
                if raster[t, b, i]:
                    last_input = t
                    break
            if last_input >= 0:
                break
        last_send = -(1 << 40)  # tick of the last spike that went to other groups
        terminal = False  # nothing arrives any more: only the outputs are stepped
        n_act = _still(V, threshold, leak, reversal, floor, act, listed)
        fresh = True  # act is up to date
        for t in range(ticks):
            full = False  # the host's lines fired: step every group
            if t <= last_input:
                for i in range(n_in):
                    if raster[t, b, i]:
                        full = True
                        sent_in[i] += 1
                        for k in range(inb_ptr[i], inb_ptr[i + 1]):
                            n = inb_len[k]  # on views: indices from 0 vectorise, offset ones do not
                            dst, src = V[inb_lo[k]:inb_lo[k] + n], inb_w[inb_off[k]:inb_off[k] + n]
                            for q in range(n):
                                dst[q] += src[q]
                        for k in range(in_ptr[i], in_ptr[i + 1]):
                            V[in_idx[k]] += in_w[k]
            if not full and not fresh:
                n_act = _still(V, threshold, leak, reversal, floor, act, listed)
                fresh = True
            if not terminal:
                for j in range(D):  # spikes sent delays[j] ticks ago
                    d = delays[j]
                    if t < d:
                        continue
                    slot = (t - d) % depth
                    for s in range(nspk[slot]):
                        g = spk[slot, s]
                        sent[j, g] += 1
                        if full:  # every group is stepped this tick anyway
                            for k in range(d_ptr[j, g], d_ptr[j, g + 1]):
                                V[d_idx[k]] += d_w[k]
                        else:  # few spikes: list whom they reach
                            for k in range(d_ptr[j, g], d_ptr[j, g + 1]):
                                u = d_idx[k]
                                V[u] += d_w[k]
                                if not listed[u]:
                                    listed[u] = True
                                    act[n_act] = u
                                    n_act += 1
            slot = t % depth
            n = 0
            if full:  # two passes over every group (the identity for one at rest)
                for u in range(U):  # the arithmetic, branch-free so that it vectorises
                    v = V[u]
                    sg = (v > 0) - (v < 0)
                    v += leak[u] * sg if reversal[u] else leak[u]
                    v = max(v, floor[u])
                    fired = v >= threshold[u]
                    reset = reset_value[u] if zero_reset[u] else v - threshold[u] if lin_reset[u] else v
                    V[u] = reset if fired else v
                    S[u] = fired
                for u in range(U):  # the spikes, listed without a branch per group
                    spk[slot, n] = u
                    n += S[u]
                fresh = False
            else:  # only the listed groups: the others are at rest
                kept = 0
                for q in range(n_act):
                    u = act[q]
                    v = V[u]
                    if reversal[u]:
                        if v > 0:
                            v += leak[u]
                        elif v < 0:
                            v -= leak[u]
                    else:
                        v += leak[u]
                    if v < floor[u]:
                        v = floor[u]
                    if v >= threshold[u]:
                        if zero_reset[u]:
                            v = reset_value[u]
                        elif lin_reset[u]:
                            v -= threshold[u]
                        spk[slot, n] = u
                        n += 1
                    V[u] = v
                    if _frozen(v, threshold[u], leak[u], reversal[u], floor[u]) or (
                            t > last_input and not (fed[u] or counted[u] or record)
                            and _settled(v, threshold[u], leak[u], reversal[u], floor[u])):
                        # (a group only the host feeds, after the host's last input, that can no
                        # longer spike: nothing it does matters any more)
                        listed[u] = False
                    else:
                        act[kept] = u
                        kept += 1
                n_act = kept
            nspk[slot] = n
            for q in range(n):  # book this tick's spikes
                u = spk[slot, q]
                if sends[u]:
                    last_send = t
                for k in range(out_ptr[u], out_ptr[u + 1]):
                    o = out_idx[k]
                    counts[b, o] += 1
                    if first[b, o] < 0:
                        first[b, o] = t
                if record:
                    rec[t, b, u] = True
            if not record and not terminal and t >= last_input and t - last_send >= max_delay:
                # no input and no spike in flight: a group that can never reach its threshold
                # again (its V only decays) is done; if no group that sends can, nothing
                # arrives for the rest of the sample and only the outputs need stepping
                if not fresh:
                    n_act = _still(V, threshold, leak, reversal, floor, act, listed)
                    fresh = True
                terminal = True
                for q in range(n_act):
                    u = act[q]
                    if sends[u] and not _settled(V[u], threshold[u], leak[u], reversal[u], floor[u]):
                        terminal = False
                        break
            if terminal:
                kept = 0
                for q in range(n_act):
                    u = act[q]
                    if counted[u] and not _settled(V[u], threshold[u], leak[u],
                                                                   reversal[u], floor[u]):
                        act[kept] = u
                        kept += 1
                    else:
                        listed[u] = False
                n_act = kept
                if n_act == 0:
                    break
    sops = np.zeros(n_cores, np.int64)
    for i in range(n_in):
        for k in range(ins_ptr[i], ins_ptr[i + 1]):
            sops[ins_idx[k]] += sent_in[i] * ins_n[k]
    for j in range(D):
        for g in range(U):
            for k in range(ds_ptr[j, g], ds_ptr[j, g + 1]):
                sops[ds_idx[k]] += sent[j, g] * ds_n[k]
    return counts, first, sops, rec


@compiled
def _settled(v, threshold, leak, reversal, floor):
    """Without input, V never reaches the threshold again: with a leak that does not push
    it up and a floor <= 0, V stays <= max(V, 0), and with leak reversal (a decay toward
    0 by |leak| per tick, which may overshoot 0) <= max(V, |leak| − 1, 0)."""
    if floor > 0 or leak > 0:
        return False
    bound = max(v, 0)
    if reversal:
        bound = max(bound, -leak - 1)
    return bound < threshold


@compiled
def _frozen(v, threshold, leak, reversal, floor):
    """Without input, a tick leaves V as it is and does not spike: no leak acts (none, or
    leak reversal at V = 0), the floor is below V and the threshold above it."""
    return (leak == 0 or (reversal and v == 0)) and floor <= v < threshold


@compiled
def _still(V, threshold, leak, reversal, floor, act, listed):
    """List in ``act`` (and flag in ``listed``) the groups that a tick without input may
    change; return how many."""
    n = 0
    for u in range(V.shape[0]):
        moving = not _frozen(V[u], threshold[u], leak[u], reversal[u], floor[u])
        listed[u] = moving
        if moving:
            act[n] = u
            n += 1
    return n

