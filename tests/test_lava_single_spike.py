"""The single-spike network in discrete time: the mapping is right (numpy, against the
z-domain model) and Lava runs it spike for spike like the project's own reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esl_export import single_spike_dt as sdt
from esl_export.lava import artifact
from esl_export.lava.runner import export_model, simulate
from esl_export.lower import lower
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model

N_DIGITS = 20


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A 784-100-10 single-spike model at its (untrained) init with a random 50 % mask
    on the hidden layer, its lowered graph, its export and 20 test digits."""
    torch.manual_seed(0)
    model = build_model({"name": "mlp-single-spike", "sizes": [784, 100, 10]})
    mask = torch.rand_like(model.layers[0].weight) < 0.5
    with torch.no_grad():
        model.layers[0].weight.mul_(mask)
    masks = {"layers.0.weight": mask}
    folder = tmp_path_factory.mktemp("ss")
    save_checkpoint(make_checkpoint(model, masks), folder / "model.pt")
    art = export_model(folder / "model.pt", folder / "lava")
    x = load_data("mnist-embedded").test.x[:N_DIGITS]
    return model.eval(), lower(model, masks), art, x


def test_discrete_time_mapping_brackets_the_z_domain_spike_times(net: tuple) -> None:
    model, graph, _, x = net
    t_z = model.spike_times(x)[0].double().numpy()  # hidden layer, continuous time
    for dt in (sdt.DEFAULT_DT, sdt.DEFAULT_DT / 4):
        dnet = sdt.network(graph, dt=dt)
        run = sdt.run(dnet, dnet.input_steps(x.numpy()))
        n = run.spike_steps(0)
        in_window = t_z <= (dnet.steps - 1) * dt
        assert in_window.mean() > 0.5 and np.array_equal(n >= 0, in_window)
        # inputs lie on the grid, so V is exact at grid points: the spike is reported at
        # the first grid point after the crossing, and interpolation is O(dt^2) close
        fired = n >= 0
        assert np.all(t_z[fired] > (n[fired] - 1) * dt - 1e-5) and np.all(t_z[fired] <= n[fired] * dt + 1e-5)
        assert np.abs(run.first[0][fired] * dt - t_z[fired]).max() < 0.2 * dt


def test_lava_matches_the_discrete_time_reference_spike_for_spike(net: tuple) -> None:
    _, graph, art, x = net
    assert art.kind == "single-spike" and art.time["clock"] == "shared"
    assert art.stages[0].connection == "sparse" and art.stages[1].connection == "dense"
    ref_net = sdt.network(graph, dt=float(art.time["dt"]), window=float(art.time["window"]))
    ref = sdt.run(ref_net, ref_net.input_steps(x.numpy()))
    out = simulate(art, x.numpy(), record=True)
    assert len(out.first) == 2
    for k in range(2):
        got, want = out.first[k], ref.first[k]
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"layer {k}: different neurons fired"
        fired = ~np.isnan(want)
        assert fired.mean() > 0.3, "the comparison needs spikes"
        # same step exactly; the interpolated time inside the step to rounding
        assert np.array_equal(np.ceil(got[fired]), np.ceil(want[fired]))
        np.testing.assert_allclose(got[fired], want[fired], rtol=0, atol=1e-9)
    pred = sdt.first_spike_class(out.first[-1])
    assert np.array_equal(pred, ref.predict())
    # the artifact's own reference view holds the same numbers
    assert np.array_equal(artifact.read(Path(art.source["path"]).parent / "lava").dt_network()
                          .layers[0].weight, ref_net.layers[0].weight)


def test_fixed_pt_single_spike_stays_close_to_floating_pt(net: tuple) -> None:
    _, _, art, x = net
    flt = simulate(art, x[:8].numpy())
    fix = simulate(art, x[:8].numpy(), config="fixed_pt")
    assert fix.fixed is not None and fix.fixed[0].du is not None
    a, b = flt.first[-1], fix.first[-1]
    both = ~np.isnan(a) & ~np.isnan(b)
    assert both.mean() > 0.5
    # 8-bit weights move output spikes by a fraction of a step (an untrained net's outputs
    # fire within a tenth of a step of each other, so its class is no test of this)
    diff = np.abs(a[both] - b[both])
    assert diff.max() < 1.0 and diff.mean() < 0.2
