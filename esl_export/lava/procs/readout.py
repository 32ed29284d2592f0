"""Readout: the non-spiking output layer of the LIF networks.

PyTorch's readout is ``O(t) = W·s(t) + b`` per step and the class is the argmax of
its mean over the T steps. Here each step adds ``a_in + bias`` to the running sum of
the sample it belongs to, ``sums`` [N, n]; only that small array leaves Lava.
Sample ``s`` reaches this process ``delay`` steps late (one per connection process):
step ``t`` belongs to sample ``(t − 1 − delay) // period``.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class Readout(AbstractProcess):
    """Sums ``a_in + bias`` per sample into ``sums``. For fixed_pt, ``bias`` is an
    integer in 1/64 of ``a_in``'s unit (the input is shifted by 6 bits, as on Loihi)."""

    def __init__(self, *, shape: tuple[int, ...], bias: np.ndarray | float, period: int,
                 delay: int, n_samples: int, name: str | None = None) -> None:
        super().__init__(shape=shape, period=int(period), delay=int(delay), n_samples=int(n_samples),
                         name=name)
        self.a_in = InPort(shape=shape)
        self.bias = Var(shape=shape, init=bias)
        self.sums = Var(shape=(int(n_samples), *shape), init=0)


class _AbstractReadout(PyLoihiProcessModel):
    a_in: ty.Any = None
    bias: ty.Any = None
    sums: ty.Any = None
    shift = 0

    def __init__(self, proc_params: dict[str, ty.Any]) -> None:
        super().__init__(proc_params)
        self.period = proc_params["period"]
        self.delay = proc_params["delay"]
        self.n_samples = proc_params["n_samples"]

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        step = self.time_step - 1 - self.delay
        if step >= 0 and step // self.period < self.n_samples:
            self.sums[step // self.period] += self.scale(a_in) + self.bias

    def scale(self, a_in: np.ndarray) -> np.ndarray:
        return a_in


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutModelFloat(_AbstractReadout):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    sums: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutModelFixed(_AbstractReadout):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    sums: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def scale(self, a_in: np.ndarray) -> np.ndarray:
        return np.asarray(a_in, np.int64) << 6
