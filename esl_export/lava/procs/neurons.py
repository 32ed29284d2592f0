"""FireOnce: the single-spike neuron in discrete time.

Per step (see esl_export/single_spike_dt.py for the derivation)::

    u = u·(1 − du) + a_in          synaptic current, du = 1 − exp(−dt/τ_syn)
    v = v + u                      non-leaky membrane (dv = 0)
    spike where v > vth and the neuron has not fired in this sample; v ← 0

At the first step of every sample (``time_step % period == 1 % period``) u, v and
the fired flags are cleared and that step's input is dropped: in the model every
layer's input at step 0 is zero, while in the pipeline it still carries the previous
sample's last step. With that, all layers share one clock and one period, and the
one-step delay of each connection process is the model's own synaptic delay.

Each neuron records its first-spike time per sample in ``first`` [N, n], in steps,
interpolated inside the step: ``n − (v − vth)/u`` (NaN = silent), so the output
layer needs no sink and no per-step transfer.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

#: Loihi's 24-bit state and 12-bit decay arithmetic (as in Lava's PyLifModelBitAcc)
_STATE_BITS = 24
_DECAY_SHIFT = 12
_ACT_SHIFT = 6


class FireOnce(AbstractProcess):
    """Non-leaky IF neurons with decaying synaptic current, at most one spike per sample.

    ``du`` and ``vth`` are floats for floating_pt; for fixed_pt pass the integers
    (``du`` in 1/4096, ``vth`` in the units of ``a_in``; it is shifted by 6 bits as on
    Loihi). ``n_samples`` sizes the ``first`` record.
    """

    def __init__(self, *, shape: tuple[int, ...], du: float, vth: float, period: int,
                 n_samples: int, name: str | None = None) -> None:
        super().__init__(shape=shape, period=int(period), n_samples=int(n_samples), name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.fired = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=du)
        self.vth = Var(shape=(1,), init=vth)
        self.first = Var(shape=(int(n_samples), *shape), init=np.full((int(n_samples), *shape), np.nan))


class _AbstractFireOnce(PyLoihiProcessModel):
    a_in: ty.Any = None
    s_out: ty.Any = None
    u: ty.Any = None
    v: ty.Any = None
    fired: np.ndarray = LavaPyType(np.ndarray, bool)
    first: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params: dict[str, ty.Any]) -> None:
        super().__init__(proc_params)
        self.period = proc_params["period"]
        self.n_samples = proc_params["n_samples"]

    def integrate(self, a_in: np.ndarray) -> np.ndarray:
        """Update u and v; return the threshold in v's units."""
        raise NotImplementedError

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        sample, step = divmod(self.time_step - 1, self.period)
        if step == 0:  # a new sample: clear the state, drop the pipeline's leftover input
            self.u[:] = 0
            self.v[:] = 0
            self.fired[:] = False
            self.s_out.send(np.zeros(self.s_out.shape))
            return
        vth = self.integrate(a_in)
        spikes = (self.v > vth) & ~self.fired
        if spikes.any():
            if sample < self.n_samples:
                frac = (self.v[spikes] - vth) / self.u[spikes]
                self.first[sample, spikes] = step - frac
            self.fired |= spikes
            self.v[spikes] = 0
        self.s_out.send(spikes.astype(float))


@implements(proc=FireOnce, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFireOnceModelFloat(_AbstractFireOnce):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    du: float = LavaPyType(float, float)
    vth: float = LavaPyType(float, float)

    def integrate(self, a_in: np.ndarray) -> np.ndarray:
        self.u[:] = self.u * (1.0 - self.du) + a_in
        self.v[:] = self.v + self.u
        return self.vth


@implements(proc=FireOnce, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFireOnceModelFixed(_AbstractFireOnce):
    """Loihi-style integers: 12-bit decay (magnitude rounded down), input and threshold
    shifted up by 6 bits, 24-bit current (wraps) and voltage (saturates)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: int = LavaPyType(int, np.uint16, precision=12)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def integrate(self, a_in: np.ndarray) -> np.ndarray:
        limit = 1 << (_STATE_BITS - 1)
        decayed = np.int64(1) * self.u * ((1 << _DECAY_SHIFT) - int(self.du))
        decayed = np.sign(decayed) * (np.abs(decayed) >> _DECAY_SHIFT)
        u = decayed + (np.asarray(a_in, np.int64) << _ACT_SHIFT)
        u = (u + limit) % (2 * limit) - limit  # 24-bit wrap-around
        self.u[:] = u
        self.v[:] = np.clip(np.int64(1) * self.v + u, -limit + 1, limit - 1)
        return np.int64(self.vth) << _ACT_SHIFT
