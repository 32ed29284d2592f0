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
