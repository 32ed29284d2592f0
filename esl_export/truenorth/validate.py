"""Every rule of the core IR, checked on export and on load.

Rules (each error names the rule and, where there is one, the core):

- ``shape``: per-core arrays agree with the geometry: at most ``axons`` axons and
  ``neurons`` neurons per core, ``axon_types`` weights per neuron.
- ``axon-type``: each axon's type lies in ``0 .. axon_types-1``.
- ``weight-range``: each weight fits ``weight_bits`` signed bits.
- ``threshold``: 1 <= threshold <= 2^18 − 1 (TrueNorth's 18-bit threshold); ``leak``:
  within the signed weight bits (TrueNorth's 9-bit leak); ``reset``: mode 0, 1 or 2;
  ``floor`` <= 0; ``reset-value``: |reset_value| <= 2^18 − 1 (the reset potential is
  given the threshold's width here).
- ``one-destination``: a neuron appears at most once among edges and outputs.
- ``delay``: 1 <= delay <= ``max_delay``.
- ``dangling``: an edge or input names a core/axon that does not exist, or an axon with
  no synapse; an output index outside ``0 .. n_outputs-1``; an input index outside
  ``0 .. n_inputs-1``; a neuron index outside the core.
- ``one-driver``: each axon is driven by one source (an edge or an input line), so
  two spikes can never merge into one on an axon.
- ``outputs``: every network output has a neuron.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from esl_export.truenorth.ir import CoreIR


def _fail(rule: str, msg: str) -> None:
    from esl_export.truenorth.ir import IRError

    raise IRError(f"[{rule}] {msg}")


def _rows(name: str, arr: np.ndarray, width: int) -> None:
    if arr.ndim != 2 or arr.shape[1] != width or not np.issubdtype(arr.dtype, np.integer):
        _fail("shape", f"{name} must be an integer array [rows, {width}], got {arr.dtype} {arr.shape}")


def validate(ir: CoreIR) -> None:
    g = ir.geometry
    C = ir.crossbar.shape[0] if ir.crossbar.ndim == 3 else 0
    if ir.crossbar.ndim != 3:
        _fail("shape", f"crossbar must be [cores, axons, neurons], got {ir.crossbar.shape}")
    _, A, N = ir.crossbar.shape
    if A > g.axons:
        _fail("shape", f"core 0..{C - 1}: {A} axons per core, the geometry allows {g.axons}")
    if N > g.neurons:
        _fail("shape", f"core 0..{C - 1}: {N} neurons per core, the geometry allows {g.neurons}")
    if A != g.axons or N != g.neurons:
        _fail("shape", f"crossbar is {A}x{N} per core, the geometry says {g.axons}x{g.neurons}")
    per_core = {"axon_type": (C, A), "threshold": (C, N), "leak": (C, N), "reset": (C, N),
                "floor": (C, N), "weight": (C, N, g.axon_types), "reset_value": (C, N)}
    for name, shape in per_core.items():
        arr = getattr(ir, name)
        if name == "weight" and arr.ndim == 3 and arr.shape[:2] == (C, N) and arr.shape[2] > g.axon_types:
            _fail("shape", f"weight has {arr.shape[2]} axon types per neuron, the geometry allows "
                           f"{g.axon_types}")
        if arr.shape != shape or not np.issubdtype(arr.dtype, np.integer):
            _fail("shape", f"{name} must be an integer array {shape}, got {arr.dtype} {arr.shape}")
    if ir.leak_reversal.shape != (C, N) or ir.leak_reversal.dtype != np.bool_:
        _fail("shape", f"leak_reversal must be a bool array {(C, N)}, got {ir.leak_reversal.dtype} "
                       f"{ir.leak_reversal.shape}")
    bad = np.argwhere((ir.axon_type < 0) | (ir.axon_type >= g.axon_types))
    if len(bad):
        c, a = bad[0]
        _fail("axon-type", f"core {c} axon {a}: type {ir.axon_type[c, a]}, allowed 0..{g.axon_types - 1}")
    lo, hi = g.weight_range
    bad = np.argwhere((ir.weight < lo) | (ir.weight > hi))
    if len(bad):
        c, n, k = bad[0]
        _fail("weight-range", f"core {c} neuron {n} type {k}: weight {ir.weight[c, n, k]} does not fit "
                              f"{g.weight_bits} signed bits ({lo}..{hi})")
    from esl_export.truenorth.ir import THRESHOLD_MAX

    for name, cond, want in (("threshold", (ir.threshold < 1) | (ir.threshold > THRESHOLD_MAX),
                              f"in 1..{THRESHOLD_MAX}"),
                             ("leak", (ir.leak < lo) | (ir.leak > hi), f"in {lo}..{hi}"),
                             ("reset", ~np.isin(ir.reset, (0, 1, 2)), "0, 1 or 2"),
                             ("floor", ir.floor > 0, "<= 0"),
                             ("reset_value", np.abs(np.asarray(ir.reset_value, np.int64)) > THRESHOLD_MAX,
                              f"in -{THRESHOLD_MAX}..{THRESHOLD_MAX}")):
        bad = np.argwhere(cond)
        if len(bad):
            c, n = bad[0]
            _fail(name.replace("_", "-"), f"core {c} neuron {n}: {name} {getattr(ir, name)[c, n]}, "
                                          f"must be {want}")
    _rows("edges", ir.edges, 5)
    _rows("outputs", ir.outputs, 3)
    _rows("inputs", ir.inputs, 3)
    for name, rows, cc, nc in (("edge", ir.edges, 0, 1), ("output", ir.outputs, 0, 1)):
        bad = np.flatnonzero((rows[:, cc] < 0) | (rows[:, cc] >= C) | (rows[:, nc] < 0) | (rows[:, nc] >= N))
        if len(bad):
            r = rows[bad[0]]
            _fail("dangling", f"{name} row {bad[0]}: source core {r[cc]} neuron {r[nc]} does not exist "
                              f"({C} cores of {N} neurons)")
    src = np.concatenate([ir.edges[:, 0] * N + ir.edges[:, 1], ir.outputs[:, 0] * N + ir.outputs[:, 1]])
    uniq, counts = np.unique(src, return_counts=True)
    if (counts > 1).any():
        s = int(uniq[counts > 1][0])
        _fail("one-destination", f"core {s // N} neuron {s % N}: {int(counts[counts > 1][0])} destinations; "
                                 f"a neuron sends its spike to exactly one axon or output")
    d = ir.edges[:, 4]
    bad = np.flatnonzero((d < 1) | (d > g.max_delay))
    if len(bad):
        r = ir.edges[bad[0]]
        _fail("delay", f"core {r[0]} neuron {r[1]}: delay {r[4]}, allowed 1..{g.max_delay}")
    used_axon = ir.crossbar.any(axis=2)
    for name, rows, cc, ac in (("edge", ir.edges, 2, 3), ("input", ir.inputs, 1, 2)):
        bad = np.flatnonzero((rows[:, cc] < 0) | (rows[:, cc] >= C) | (rows[:, ac] < 0) | (rows[:, ac] >= A))
        if len(bad):
            r = rows[bad[0]]
            _fail("dangling", f"{name} row {bad[0]}: destination core {r[cc]} axon {r[ac]} does not exist "
                              f"({C} cores of {A} axons)")
        hit = ~used_axon[rows[:, cc], rows[:, ac]]
        if hit.any():
            r = rows[np.flatnonzero(hit)[0]]
            _fail("dangling", f"core {r[cc]} axon {r[ac]}: a {name} targets it but it has no synapse")
    bad = np.flatnonzero((ir.outputs[:, 2] < 0) | (ir.outputs[:, 2] >= ir.n_outputs))
    if len(bad):
        r = ir.outputs[bad[0]]
        _fail("dangling", f"core {r[0]} neuron {r[1]}: output index {r[2]} outside 0..{ir.n_outputs - 1}")
    bad = np.flatnonzero((ir.inputs[:, 0] < 0) | (ir.inputs[:, 0] >= ir.n_inputs))
    if len(bad):
        _fail("dangling", f"input row {bad[0]}: input index {ir.inputs[bad[0], 0]} outside "
                          f"0..{ir.n_inputs - 1}")
    dst = np.concatenate([ir.edges[:, 2] * A + ir.edges[:, 3], ir.inputs[:, 1] * A + ir.inputs[:, 2]])
    uniq, counts = np.unique(dst, return_counts=True)
    if (counts > 1).any():
        s = int(uniq[counts > 1][0])
        _fail("one-driver", f"core {s // A} axon {s % A}: driven by {int(counts[counts > 1][0])} sources")
    missing = np.setdiff1d(np.arange(ir.n_outputs), ir.outputs[:, 2])
    if len(missing):
        _fail("outputs", f"network output {int(missing[0])} has no neuron")
