"""The readout's scale, measured on the model instead of fixed.

A readout neuron integrates its class's logit (no leak, linear reset) and spikes once
per ``readout_unit`` of it, at most once per tick, in the T + drain ticks it may spike
in; the class scores are those spike counts. A unit too large for the model's logits
leaves digits with no output spike at all (a briefly trained model, whose logits are
small); one too small saturates the winner at one spike per tick and ties it with the
runner-up. ``readout_unit`` picks the unit at which the winning class's summed logit of
nearly every training digit (``QUANTILE`` of them) just fills the available ticks, so
the counts resolve the logits as finely as the window allows.
"""

from __future__ import annotations

import numpy as np

from esl_export.graph import Graph, GraphError, Readout

QUANTILE = 0.99
SAMPLES = 500


def readout_unit(graph: Graph, x: np.ndarray, drain: int, seed: int = 0) -> float:
    """Logit units per readout spike for ``graph`` (a rate-coded LIF MLP ending in a Readout),
    from the graph's own run on the samples ``x`` (training digits)."""
    from esl_export.reference import encode, run

    out = graph.nodes[graph.output]
    if not isinstance(out, Readout):
        raise GraphError("the readout unit is calibrated for graphs that end in a Readout")
    T = int(graph.nodes[graph.input].encoding["T"])  # type: ignore[union-attr]
    seq = encode(graph, x, np.random.default_rng(seed))
    sums = np.concatenate([run(graph, seq[:, i:i + 100])[graph.output].sum(axis=0)
                           for i in range(0, len(x), 100)])
    winner = float(np.quantile(sums.max(axis=1), QUANTILE))
    if not winner > 0:
        raise GraphError("the model's winning logits are not positive on the calibration digits; "
                         "give --readout-unit")
    return winner / (T + drain)
