"""A faster floating_pt process model for Lava's ``Sparse`` connection process.

Lava 0.10.0's floating_pt model computes ``weights[:, s_in].sum(axis=1)`` on a CSR
matrix every step, and scipy's column fancy-indexing of CSR builds a new matrix each
time: a sparse network then runs slower than its dense twin. Here the columns of the
spiking inputs are gathered from a CSC copy and summed with one ``bincount``: work in
proportion to the synapses that actually carry a spike. Each output still sums its
terms in increasing input order starting from zero, exactly as the stock model's CSR
row sums do, so the results are the same bit for bit. Graded input
(``num_message_bits > 0``, e.g. direct-coded pixels) keeps the stock CSR product, which is
already proportional to the synapses (a gather over the non-zero inputs measured 0.78x of
it), but skips it when the input is the previous step's again: direct coding holds a
sample's pixels for all T steps, so the product is computed once per sample and reused,
the same numbers.

Select it with ``Loihi2SimCfg(select_tag="floating_pt",
exception_proc_model_map={Sparse: PySparseFastModelFloat})``.
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.sparse.models import AbstractPySparseModelFloat
from lava.proc.sparse.process import Sparse


@implements(proc=Sparse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "esl_fast")
class PySparseFastModelFloat(AbstractPySparseModelFloat):
    """Same behaviour as Lava's PySparseModelFloat (one step of delay, a_buff)."""

    def __init__(self, proc_params: dict[str, ty.Any]) -> None:
        super().__init__(proc_params)
        self._csc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # graded: (input, its product)

    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # built on first use: the weights Var is filled after __init__
        if self._csc is None:
            csc = self.weights.tocsc()
            csc.sort_indices()
            self._csc = (csc.indptr.astype(np.int64), csc.indices.astype(np.int64),
                         csc.data.astype(np.float64))
        return self._csc

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() > 0:
            last = self._last
            if last is not None and np.array_equal(s_in, last[0]):
                self.a_buff = last[1].copy()
                return
            self.a_buff = self.weights.dot(s_in)
            self._last = (np.array(s_in, copy=True), self.a_buff.copy())
            return
        indptr, rows, data = self._columns()
        cols = np.flatnonzero(s_in)
        starts, ends = indptr[cols], indptr[cols + 1]
        counts = ends - starts
        total = int(counts.sum())
        n_out = self.a_out.shape[0]
        if total == 0:
            self.a_buff = np.zeros(n_out)
            return
        # positions of every synapse of the spiking columns, column after column
        pos = np.arange(total) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        self.a_buff = np.bincount(rows[pos], weights=data[pos], minlength=n_out)
