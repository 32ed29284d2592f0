"""Custom Lava processes and process models of the esl-snn export.

Lava executes every ``.py`` file of a process's folder while it looks for process
models, so this package stays small and imports only numpy and Lava (never torch,
never the rest of esl_export), and its modules use absolute imports only.

- ``source.SampleSource``: streams preloaded samples, one every ``period`` steps
- ``neurons.FireOnce``: non-leaky IF neuron with decaying synaptic current that fires
  at most once per sample and records its (interpolated) first-spike time
- ``readout.Readout``: non-spiking output that sums ``a_in + bias`` per sample
- ``sparse.PySparseFastModelFloat``: a faster floating_pt model for Lava's ``Sparse``
"""

import multiprocessing as _mp
import sys as _sys


def allow_lava_start_method() -> None:
    """Call before the first Lava import. Lava's runtime calls
    multiprocessing.set_start_method("fork") without force when first imported, which
    raises if anything already fixed the default context (tqdm's lock does); unfix it
    so that Lava can choose. On Linux the default is fork anyway."""
    if ("lava.magma.runtime.message_infrastructure.multiprocessing" not in _sys.modules
            and _mp.get_start_method(allow_none=True) is not None):
        _mp.set_start_method(None, force=True)


allow_lava_start_method()
