"""SampleSource: many samples preloaded into one process, streamed in sequence.

Lava's ``Var.set`` moves one number per message, far too slow to load each digit
between runs, so the whole run's samples are given at build time in a compact
form and the process expands them step by step. Sample ``s`` owns the global steps
``s·period + 1 … s·period + period``; after the last sample the output is zero.

``kind``:
- ``"hold"``: ``values`` [N, n], sent unchanged at the first ``hold`` steps of a
  sample (direct encoding of a static image);
- ``"sequence"``: ``values`` [N, L, n], step j of the sample sends ``values[s, j]``
  (rate-coded draws, event frames);
- ``"latency"``: ``values`` [N, n] integer step of each input's single spike
  (−1: never); step j sends 1 where ``values[s] == j``.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

KINDS = ("hold", "sequence", "latency")


class SampleSource(AbstractProcess):
    """Streams ``values`` (see the module docstring) through ``s_out``."""

    def __init__(self, *, values: np.ndarray, kind: str, period: int, hold: int = 0,
                 name: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        values = np.asarray(values)
        shape = (values.shape[-1],)
        super().__init__(kind=kind, period=int(period), hold=int(hold), n_samples=int(values.shape[0]),
                         name=name)
        self.s_out = OutPort(shape=shape)
        self.values = Var(shape=values.shape, init=values)


class _AbstractSampleSource(PyLoihiProcessModel):
    s_out: ty.Any = None
    values: ty.Any = None

    def __init__(self, proc_params: dict[str, ty.Any]) -> None:
        super().__init__(proc_params)
        self.kind = proc_params["kind"]
        self.period = proc_params["period"]
        self.hold = proc_params["hold"]
        self.n_samples = proc_params["n_samples"]

    def frame(self) -> np.ndarray:
        sample, step = divmod(self.time_step - 1, self.period)
        out = np.zeros(self.s_out.shape, self.values.dtype)
        if sample >= self.n_samples:
            return out
        if self.kind == "hold":
            if step < self.hold:
                out[:] = self.values[sample]
        elif self.kind == "sequence":
            if step < self.values.shape[1]:
                out[:] = self.values[sample, step]
        else:
            out[:] = self.values[sample] == step
        return out

    def run_spk(self) -> None:
        self.s_out.send(self.frame())


@implements(proc=SampleSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySampleSourceFloat(_AbstractSampleSource):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    values: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=SampleSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySampleSourceFixed(_AbstractSampleSource):
    """Integer samples (the builder quantises analog input to graded 8-bit spikes)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    values: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
