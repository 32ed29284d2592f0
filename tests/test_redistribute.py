"""Redistribution across layers (sparse momentum): the regrowth budget moves between layers,
the network's total stays exact, no layer goes above dense."""

from __future__ import annotations

import pytest
import torch

from esl_train.esl import ESLConfig, ESLSparsifier
from esl_train.esl.sparsifier import apportion
from esl_train.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_apportion_is_exact_proportional_and_capped() -> None:
    assert apportion(10, {"a": 1.0, "b": 1.0, "c": 2.0}, {"a": 100, "b": 100, "c": 100}) == \
        {"a": 3, "b": 2, "c": 5}  # 2.5/2.5/5: the remainder to the earlier name
    # a full layer takes its cap and the rest is shared out again
    assert apportion(10, {"a": 8.0, "b": 1.0, "c": 1.0}, {"a": 3, "b": 100, "c": 100}) == \
        {"a": 3, "b": 4, "c": 3}
    assert apportion(7, {"a": 0.0, "b": 0.0}, {"a": 10, "b": 10}) == {"a": 4, "b": 3}  # no signal: equal
    assert apportion(5, {"a": 1.0, "b": 0.0}, {"a": 0, "b": 9}) == {"a": 0, "b": 5}  # nowhere else to go
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        caps = {k: int(torch.randint(0, 50, (1,), generator=g)) for k in "abcde"}
        total = int(torch.randint(0, sum(caps.values()) + 1, (1,), generator=g))
        weights = {k: float(torch.rand(1, generator=g)) for k in "abcde"}
        out = apportion(total, weights, caps)
        assert sum(out.values()) == total and all(0 <= out[k] <= caps[k] for k in caps)
    with pytest.raises(ValueError):
        apportion(11, {"a": 1.0}, {"a": 10})


@pytest.mark.parametrize("rule", ["momentum", "magnitude"])
def test_tiny_vggsnn_layers_drift_apart_with_the_total_exact(rule: str) -> None:
    torch.manual_seed(0)
    model = build_model({"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 0.125,
                         "T": 2})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sp = ESLSparsifier(model, opt, ESLConfig(density=0.1, prune="set", grow="random_unfired", t_iter=1,
                                             t_end=None, alpha=0.3, redistribute=rule, verbose=False))
    init = {n: int(m.sum()) for n, m in sp.masks.items()}
    total = sum(init.values())
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    rows = []
    for _ in range(25):
        loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        row = sp.step()
        assert row is not None and row["active"] == total  # the total is exact after every update
        assert sum(int(m.sum()) for m in sp.masks.values()) == total
        assert all(int(m.sum()) <= m.numel() for m in sp.masks.values())
        for n, p in sp.params.items():  # masked weights are zero
            assert not bool((p.detach() * ~sp.masks[n]).any())
        rows.append(row)
    final = {n: int(m.sum()) for n, m in sp.masks.items()}
    moved = sum(abs(final[n] - init[n]) for n in init)
    assert moved > 0.05 * total, (init, final)  # the budget really moved between layers
    density = {n: final[n] / sp.masks[n].numel() for n in final}
    assert max(density.values()) >= 2 * min(density.values()), density
    assert {k for k in rows[-1] if k.startswith("share/")} == {f"share/{n}" for n in init}


def test_none_keeps_every_layer_count() -> None:
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [40, 30, 20, 10], "T": 2})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sp = ESLSparsifier(model, opt, ESLConfig(eps=3, sparse_layers=["all"], t_iter=1, verbose=False))
    init = {n: int(m.sum()) for n, m in sp.masks.items()}
    for _ in range(5):
        loss = model.loss(model(torch.rand(8, 40)), torch.arange(8) % 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sp.step()
        assert {n: int(m.sum()) for n, m in sp.masks.items()} == init
