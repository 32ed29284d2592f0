"""Lava processes from an artifact: build once, stream every sample, stop for sure.

One ``SampleSource`` holds the run's samples (compact: a digit, its rate draws or
its input spike steps) and streams them one after another; each stage is one
``Sparse`` (masked or unrolled layers, CSR with zeros dropped) or ``Dense`` process
followed by ``LIFReset`` neurons (reset at the first step of every sample, phase
shifted by the stage's delay), ``FireOnce`` neurons (single-spike network) or a
``Readout``. Only small per-sample results leave Lava (readout sums, first-spike
times); spike trains are recorded through Extractors only when asked.

fixed_pt (Loihi's integer arithmetic, Lava's bit-accurate models): each stage's
weights are scaled by S so the largest magnitude fills the 8-bit range (mixed signs:
even integers in [−256, 254], as Lava truncates the lowest bit), the threshold
becomes round(vth·S), the bias round(b·S·64) as mantissa and exponent (the neuron
shifts its input up by 6 bits), du and dv 12-bit fractions of 4096. Analog input is
sent as graded 8-bit spikes round(128·x) with weight_exp = −7; the floor of that
shift is compensated by half a unit in the bias.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from esl_export.lava.artifact import Artifact, ArtifactError, Stage
from esl_export.lava.procs import allow_lava_start_method

CONFIGS = ("floating_pt", "fixed_pt")

# Ctrl-C in a terminal reaches the whole process group: Lava's processes would each raise
# KeyboardInterrupt, print their tracebacks and leave the runtime half-stopped. The
# processes Lava forks while a network runs ignore SIGINT instead; this process handles
# it and stops them (``_force_stop``). SIGINT is blocked in the forking thread across the
# fork, so a child cannot be interrupted before it has set SIGINT aside.
_forking_for_lava = False
_SIGINT = {signal.SIGINT}


def _block_sigint() -> None:
    if _forking_for_lava:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)


def _unblock_sigint() -> None:
    if _forking_for_lava:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)


def _child_ignores_sigint() -> None:
    if _forking_for_lava:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a SIGINT pending since the fork is dropped
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)


os.register_at_fork(before=_block_sigint, after_in_parent=_unblock_sigint,
                    after_in_child=_child_ignores_sigint)
#: graded-spike payload of analog input in fixed_pt: round(x · 2**INPUT_BITS)
INPUT_BITS = 7
_VTH_MAX = (1 << 17) - 1
_BIAS_MANT_MAX = (1 << 12) - 1


@dataclass
class FixedStage:
    """Integer parameters of one stage for fixed_pt, and what quantisation cost."""

    weight: sparse.csr_matrix | np.ndarray  # int32
    scale: float  # integer units per real unit of a_in
    weight_exp: int
    vth: int | None
    bias_mant: np.ndarray | None
    bias_exp: np.ndarray | None
    bias_int: np.ndarray | None  # in 1/64 of a_in units (exactly mant · 2**exp)
    du: int | None
    dv: int | None
    error: dict[str, float] = field(default_factory=dict)


def _split_bias(b64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mantissa (13-bit signed) and exponent (0..7) per neuron, as LIF's bias_mant/exp."""
    mag = np.abs(b64)
    exp = np.zeros(b64.shape, np.int64)
    while True:
        big = np.round(mag / (1 << exp)) > _BIAS_MANT_MAX
        if not big.any() or exp.max() >= 7:
            break
        exp[big] += 1
    mant = np.clip(np.round(b64 / (1 << exp)), -_BIAS_MANT_MAX - 1, _BIAS_MANT_MAX)
    return mant.astype(np.int64), exp


def quantize(stage: Stage) -> FixedStage:
    """Loihi fixed-point version of a stage (see the module docstring)."""
    csr = stage.csr()
    w = csr.data
    wmax = float(np.abs(w).max()) if w.size else 0.0
    mixed = bool(w.size) and w.min() < 0 < w.max()
    top = 254.0 if mixed else 255.0
    neuron = stage.neuron
    vth_real = float(neuron.get("vth", 0.0)) if neuron["type"] != "readout" else 0.0
    scale = top / wmax if wmax > 0 else 1.0
    if vth_real > 0:
        scale = min(scale, _VTH_MAX / vth_real)  # the 17-bit threshold caps the scale
    step = 2.0 if mixed else 1.0
    q = np.clip(step * np.round(w * scale / step), -256, 255)
    qcsr = sparse.csr_matrix((q.astype(np.int32), csr.indices, csr.indptr), shape=csr.shape)
    qcsr.eliminate_zeros()
    weight: sparse.csr_matrix | np.ndarray = np.asarray(qcsr.todense(), np.int32) \
        if isinstance(stage.weight, np.ndarray) else qcsr
    err = q / scale - w
    error = {"weight_rel_rms": float(np.sqrt((err ** 2).sum() / max((w ** 2).sum(), 1e-300))),
             "weight_max_abs": float(np.abs(err).max()) if err.size else 0.0,
             "weight_max": wmax, "zeroed": int((q == 0).sum())}
    b64 = None if stage.bias is None else stage.bias * scale * 64.0
    if stage.graded_input:  # compensate the floor of the >> INPUT_BITS shift by half a unit
        b64 = (np.zeros(stage.n_out) if b64 is None else b64) + 32.0
    mant = bexp = bint = None
    if b64 is not None:
        mant, bexp = _split_bias(b64)
        bint = mant << bexp
        if stage.bias is not None:
            berr = (bint - (32.0 if stage.graded_input else 0.0)) / (64.0 * scale) - stage.bias
            error["bias_max_abs"] = float(np.abs(berr).max())
    vth = du = dv = None
    if neuron["type"] in ("lif", "fire-once"):
        vth = round(vth_real * scale)
        error["vth_rel"] = abs(vth / scale - vth_real) / vth_real
        du = round(float(neuron["du"]) * 4096)
        dv = round(float(neuron["dv"]) * 4096)
        if neuron["type"] == "lif":
            du = min(du, 4095)  # Lava adds one to du (ds_offset): 4095 decays fully
        error["du_abs"] = abs(du / 4096 - float(neuron["du"])) if neuron["type"] == "fire-once" else 0.0
        error["dv_abs"] = abs(dv / 4096 - float(neuron["dv"]))
    return FixedStage(weight, scale, -INPUT_BITS if stage.graded_input else 0, vth, mant, bexp, bint,
                      du, dv, error)


@dataclass
class Inputs:
    """The run's samples in SampleSource form (see procs/source.py)."""

    values: np.ndarray
    kind: str  # hold | sequence | latency
    hold: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[0])


@dataclass
class SimOutput:
    """What one streamed run returns."""

    sums: np.ndarray | None  # LIF readout: [N, classes] sum over the T steps
    first: list[np.ndarray]  # single-spike: first-spike time in steps per layer [N, n] (output only
    #                          unless recorded)
    records: dict[str, np.ndarray]  # layer name -> [steps, n] per-step output (record=True); a
    #                                 readout records its a_in (W·s, without the bias)
    steps: int
    sim_seconds: float
    compile_seconds: float
    fixed: list[FixedStage] | None

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.sim_seconds if self.sim_seconds > 0 else float("nan")


class LavaNetwork:
    """The Lava process graph of an artifact for one set of samples.

    ``connections``: ``"auto"`` (as exported), ``"dense"`` or ``"sparse"`` for every
    stage (benchmarks). ``sparse_model``: ``"fast"`` (procs.sparse, floating_pt only)
    or ``"stock"`` (Lava's own). ``record``: keep every stage's per-step output.
    """

    def __init__(self, art: Artifact, inputs: Inputs, config: str = "floating_pt", *,
                 record: bool = False, connections: str = "auto", sparse_model: str = "fast") -> None:
        if config not in CONFIGS:
            raise ArtifactError(f"unknown run config {config!r}; choose {' or '.join(CONFIGS)}")
        if connections not in ("auto", "dense", "sparse") or sparse_model not in ("fast", "stock"):
            raise ValueError(f"connections {connections!r} / sparse_model {sparse_model!r}")
        self.art, self.inputs, self.config, self.record = art, inputs, config, record
        self.sparse_model = sparse_model
        self._before: set[Any] = set()  # the processes that ran before this network started
        self.fixed = [quantize(s) for s in art.stages] if config == "fixed_pt" else None
        self.period = art.steps_per_sample
        pipelined = art.time.get("clock") == "pipelined"
        # the last stage finishes sample N-1 `depth` steps after the source sent it
        self.depths = art.depths()
        self.depth = self.depths[-1] if pipelined else 0
        self.total_steps = inputs.n_samples * self.period + self.depth
        self._build(connections, pipelined)

    # -- construction ---------------------------------------------------------------

    def _build(self, connections: str, pipelined: bool) -> None:
        allow_lava_start_method()
        from lava.proc.dense.process import Dense
        from lava.proc.io.extractor import Extractor
        from lava.proc.lif.process import LIFReset
        from lava.proc.sparse.process import Sparse

        from esl_export.lava.procs.neurons import FireOnce
        from esl_export.lava.procs.readout import Readout
        from esl_export.lava.procs.source import SampleSource

        fixed = self.fixed is not None
        values = self.inputs.values
        if fixed:
            values = np.round(values * (1 << INPUT_BITS)) if self.art.input.get("analog") else values
            values = values.astype(np.int32)
        self.source = SampleSource(values=values, kind=self.inputs.kind, period=self.period,
                                   hold=self.inputs.hold)
        n = self.inputs.n_samples
        self.conns: list[Any] = []
        self.neurons: list[Any] = []
        self.extractors: dict[str, Any] = {}
        ports: dict[int, Any] = {-1: self.source.s_out}  # who sends the spikes a stage reads
        for k, stage in enumerate(self.art.stages):
            fx = self.fixed[k] if self.fixed is not None else None
            weight = fx.weight if fx is not None else stage.weight
            kind = stage.connection if connections == "auto" else connections
            conns = []
            for j, a, b in self.art.column_blocks(k):  # one connection process per source
                kwargs: dict[str, Any] = {"num_message_bits": 8 if stage.graded_input and j < 0 else 0}
                if fx is not None:
                    kwargs["weight_exp"] = fx.weight_exp
                whole = a == 0 and b == stage.n_in
                block = weight if whole else (weight[:, a:b] if isinstance(weight, np.ndarray)
                                              else sparse.csr_matrix(weight)[:, a:b])
                if kind == "dense":
                    dense = block if isinstance(block, np.ndarray) else np.asarray(block.todense())
                    conns.append((j, Dense(weights=dense, **kwargs)))
                else:
                    csr = sparse.csr_matrix(block)
                    csr.eliminate_zeros()
                    conns.append((j, Sparse(weights=csr, **kwargs)))
            typ = stage.neuron["type"]
            shape = (stage.n_out,)
            if typ == "lif":
                # a stage at depth d receives sample s at step s·P + 1 + d: reset there
                offset = (self.depths[k] + 1) % self.period if pipelined else 1 % self.period
                if fx is not None:
                    params = {"du": fx.du, "dv": fx.dv, "vth": fx.vth,
                              "bias_mant": 0 if fx.bias_mant is None else fx.bias_mant,
                              "bias_exp": 0 if fx.bias_exp is None else fx.bias_exp}
                else:
                    params = {"du": float(stage.neuron["du"]), "dv": float(stage.neuron["dv"]),
                              "vth": float(stage.neuron["vth"]),
                              "bias_mant": 0.0 if stage.bias is None else stage.bias}
                neuron = LIFReset(shape=shape, reset_interval=self.period, reset_offset=offset, **params)
            elif typ == "fire-once":
                if pipelined:
                    raise ArtifactError("fire-once neurons need the shared clock")
                neuron = FireOnce(shape=shape, du=fx.du if fx is not None else float(stage.neuron["du"]),
                                  vth=fx.vth if fx is not None else float(stage.neuron["vth"]),
                                  period=self.period, n_samples=n)
            else:
                if k != len(self.art.stages) - 1:
                    raise ArtifactError(f"stage {k}: a readout must be the last stage")
                bias: np.ndarray | float
                if fx is not None:
                    bias = fx.bias_int if fx.bias_int is not None else 0
                else:
                    bias = stage.bias if stage.bias is not None else 0.0
                neuron = Readout(shape=shape, bias=bias, period=self.period,
                                 delay=self.depth if pipelined else 0, n_samples=n)
            for j, conn in conns:
                ports[j].connect(conn.s_in)
                conn.a_out.connect(neuron.a_in)
            if self.record:
                ext = Extractor(shape=shape, buffer_size=self.total_steps + 1)
                (conns[0][1].a_out if typ == "readout" else neuron.s_out).connect(ext.in_port)
                self.extractors[stage.layer or stage.name] = ext
            self.conns += [conn for _, conn in conns]
            self.neurons.append(neuron)
            if typ != "readout":
                ports[k] = neuron.s_out

    def run_cfg(self) -> Any:
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.sparse.process import Sparse

        from esl_export.lava.procs.sparse import PySparseFastModelFloat

        exceptions: dict[Any, Any] = {}
        if self.extractors:  # its models are untagged, so select_tag cannot pick one
            from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

            exceptions[Extractor] = PyLoihiExtractorModel
        if self.config == "floating_pt" and self.sparse_model == "fast":
            exceptions[Sparse] = PySparseFastModelFloat
        return Loihi2SimCfg(select_tag=self.config, exception_proc_model_map=exceptions)

    # -- running --------------------------------------------------------------------

    def run(self, chunk_samples: int = 25, progress: Callable[[int], None] | None = None) -> SimOutput:
        """Stream every sample through the network; Lava is stopped whatever happens.

        ``progress(k)`` is called after each chunk with the number of samples done.
        """
        from lava.magma.core.run_conditions import RunSteps

        global _forking_for_lava
        cfg = self.run_cfg()
        records: dict[str, list[np.ndarray]] = {name: [] for name in self.extractors}
        done, sim, compile_s = 0, 0.0, 0.0
        chunk = max(1, chunk_samples) * self.period
        self._healthy = True
        _forking_for_lava = True
        self._before = set(multiprocessing.active_children())  # ours to stop: what Lava starts now
        try:
            _start_quiet_resource_tracker()
            t0 = time.perf_counter()
            self._guarded(lambda: self.source.create_runtime(run_cfg=cfg))
            compile_s = time.perf_counter() - t0
            while done < self.total_steps:
                steps = min(chunk, self.total_steps - done)
                if self.total_steps - (done + steps) <= self.depth:  # drain with the last chunk
                    steps = self.total_steps - done
                t1 = time.perf_counter()
                self._guarded(lambda n=steps: self.source.run(condition=RunSteps(num_steps=n, blocking=True)))
                sim += time.perf_counter() - t1
                done += steps
                for name, ext in self.extractors.items():
                    records[name].extend(np.array(ext.receive(), copy=True) for _ in range(steps))
                if progress is not None:
                    progress(min(self.inputs.n_samples, max(0, done - self.depth) // self.period))
            sums = None
            first: list[np.ndarray] = []
            last = self.neurons[-1]
            if self.art.stages[-1].neuron["type"] == "readout":
                sums = np.asarray(self._guarded(last.sums.get), np.float64)
                if self.fixed is not None:  # back to real units: a_in·64 + bias, a_in in 1/S
                    fx = self.fixed[-1]
                    offset = 32.0 * self.period if self.art.stages[-1].graded_input else 0.0
                    sums = (sums - offset) / (64.0 * fx.scale)
            else:
                layers = self.neurons if self.record else [last]
                first = [np.asarray(self._guarded(p.first.get), np.float64) for p in layers]
        finally:
            _forking_for_lava = False
            if self._healthy:
                self.source.stop()
            else:
                self._force_stop()
            _stop_resource_tracker()
        return SimOutput(sums, first, {k: np.stack(v) if v else np.zeros((0,)) for k, v in records.items()},
                         done, sim, compile_s, self.fixed)


    # -- failure handling -----------------------------------------------------------
    #
    # Lava 0.10.0 deadlocks when a process model raises: the failed process exits, the
    # runtime service keeps waiting for the others (blocked on the dead one's channel)
    # and run() or stop() never return. So every Lava call runs in a helper thread while
    # this thread watches the OS processes; if one dies, all of them are terminated
    # here and the error is raised (the helper thread stays blocked; it is a daemon).

    def _actors(self) -> list[Any]:
        runtime = self.source.runtime
        infra = getattr(runtime, "_messaging_infrastructure", None)
        return list(getattr(infra, "actors", []) or [])

    def _guarded(self, call: Callable[[], Any]) -> Any:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = call()
            except BaseException as exc:  # handed to the watching thread
                box["error"] = exc

        worker = threading.Thread(target=target, name="esl-lava-call", daemon=True)
        worker.start()
        try:
            dead_since = None
            while worker.is_alive():
                worker.join(0.05)
                dead = [a for a in self._actors() if _exitcode(a) is not None]
                if dead and worker.is_alive():
                    dead_since = dead_since or time.monotonic()
                    if time.monotonic() - dead_since > 2.0:  # give Lava a moment to report it
                        self._healthy = False
                        raise LavaRunError(_describe(dead))
        except BaseException:
            self._healthy = False
            raise
        if "error" in box:
            self._healthy = False
            err = box["error"]
            dead = [a for a in self._actors() if _exitcode(a) is not None]
            raise (LavaRunError(_describe(dead)) if dead else err) from err
        return box.get("value")

    def _force_stop(self) -> None:
        """Terminate every Lava OS process of this network and its shared-memory manager."""
        runtime = self.source.runtime
        if runtime is None:
            return
        actors = self._actors()
        for actor in actors:
            if _exitcode(actor) is None:
                with contextlib.suppress(Exception):
                    actor.terminate()
        deadline = time.monotonic() + 5.0
        while any(_exitcode(a) is None for a in actors) and time.monotonic() < deadline:
            time.sleep(0.05)
        for actor in actors:
            if _exitcode(actor) is None:
                with contextlib.suppress(Exception):
                    actor.kill()
        for actor in actors:
            with contextlib.suppress(Exception):
                actor.join()
        infra = getattr(runtime, "_messaging_infrastructure", None)
        with contextlib.suppress(Exception):
            infra._smm.shutdown()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            runtime._watchdog_manager.stop()
        # Lava's manager processes (shared memory, watchdog) too: none may outlive this one
        for child in set(multiprocessing.active_children()) - self._before:
            with contextlib.suppress(Exception):
                child.terminate()
                child.join(2.0)
                if child.exitcode is None:
                    child.kill()
                    child.join()
        runtime._is_started = runtime._is_running = False
        # no process may try to stop this runtime again when it is garbage collected
        for proc in [self.source, *self.conns, *self.neurons, *self.extractors.values()]:
            proc.runtime = None


def _exitcode(actor: Any) -> int | None:
    """An OS process's exit code, None while it runs; a process object Lava already closed
    counts as exited (asking it would raise ValueError)."""
    try:
        code: int | None = actor.exitcode
    except ValueError:
        return 0
    return code


def _start_quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (Lava's shared memory uses it) with its
    stderr on /dev/null: after a Ctrl-C it unlinks what a stopped run left, but would
    also print a warning about it into the user's terminal."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker  # type: ignore[attr-defined]
    if getattr(tracker, "_fd", None) is not None:
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _stop_resource_tracker() -> None:
    """Stop (and reap) the resource tracker Lava's shared memory started: left running it
    outlives this process as an orphan. It starts again when something needs it."""
    from multiprocessing import resource_tracker

    with contextlib.suppress(Exception):
        resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


class LavaRunError(RuntimeError):
    """A Lava process failed during a run; the network was stopped."""


def _describe(dead: list[Any]) -> str:
    for actor in dead:
        exc = None
        with contextlib.suppress(Exception):
            exc = actor.exception
        if exc:
            err = exc[0] if isinstance(exc, tuple) else exc
            return f"a Lava process failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    return f"a Lava process exited during the run (exit code {_exitcode(dead[0])})" if dead else \
        "the Lava run failed"
