"""ESL through the real training loop and the esl-train CLI: exact connection counts in
model.pt, the mask-update log, resume equality, and tiny conv nets with every rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from esl_train.checkpoint import CheckpointError, load_checkpoint
from esl_train.cli import main
from esl_train.data import load_data
from esl_train.esl import GROW_RULES, PRUNE_RULES, ESLConfig, ESLSparsifier, esl_factory
from esl_train.models import build_model
from esl_train.train import Interrupted, TrainConfig, run_paths, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _updates(out: Path) -> list[dict]:
    rows = json.loads(run_paths(out)["json"].read_text())
    return [r for r in rows if r.get("kind") == "mask_update"]


def test_cli_eps60_single_spike_keeps_exactly_103040_connections(tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    rc = main(["--model", "mlp-single-spike", "--eps", "60", "--limit", "200", "--epochs", "2",
               "--batch-size", "25", "--t-iter", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    ckpt = load_checkpoint(out)  # also checks: weights are zero wherever masks are off
    hidden, output = ckpt.masks["layers.0.weight"], ckpt.masks["layers.1.weight"]
    assert int(hidden.sum()) == 95_040 and int(output.sum()) == 8_000
    assert ckpt.connections() == 103_040 and round(ckpt.connections() / 635_200, 3) == 0.162
    assert int((ckpt.state_dict["layers.0.weight"] != 0).sum()) <= 95_040
    assert bool((ckpt.explored["layers.0.weight"] | ~hidden).all())  # explored ⊇ active
    assert int(ckpt.explored["layers.0.weight"].sum()) > 95_040
    esl = ckpt.meta["esl"]
    assert esl["eps"] == 60 and esl["sparse_layers"] == ["layers.0.weight"]
    assert esl["t_iter"] == 2 and esl["t_end"] == 12 and esl["prune"] == "magnitude"
    rows = _updates(out)
    assert [r["t"] for r in rows] == [2, 4, 6, 8, 10]  # every T_iter steps before T_end
    for r in rows:  # the count is unchanged after every update
        assert r["active/layers.0.weight"] == 95_040 and r["active"] == 95_040
        assert r["pruned/layers.0.weight"] == r["regrown/layers.0.weight"] > 0
        assert r["pruned/layers.0.weight"] == int(r["alpha"] * 95_040 + 0.5)
    assert rows[-1]["explored/layers.0.weight"] > rows[0]["explored/layers.0.weight"]


def test_cli_static_mask_is_the_seeded_er_mask(tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    arch = ["--model", "mlp-lif", "--hidden", "32", "--T", "2"]
    rc = main([*arch, "--eps", "4", "--t-end", "0", "--limit", "60", "--epochs", "1", "--seed", "4",
               "--out", str(out), "--no-progress"])
    assert rc == 0 and _updates(out) == []
    model = build_model({"name": "mlp-lif", "sizes": [784, 32, 10], "T": 2})
    sp = ESLSparsifier(model, torch.optim.Adam(model.parameters()), ESLConfig(eps=4, seed=4, verbose=False))
    assert torch.equal(load_checkpoint(out).masks["fc.0.weight"], sp.masks["fc.0.weight"])


def test_cli_rejects_esl_flags_without_a_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "mlp-lif", "--prune", "set", "--out", str(tmp_path / "m.pt")]) == 2
    assert "--prune needs --eps or --density" in capsys.readouterr().err
    assert main(["--model", "mlp-lif", "--eps", "5", "--sparse-layers", "conv*", "--limit", "20",
                 "--out", str(tmp_path / "m.pt")]) == 2
    assert "matches no connection weight" in capsys.readouterr().err
    assert main(["--model", "mlp-lif", "--core-aware", "truenorth", "--out", str(tmp_path / "m.pt")]) == 2
    assert "--core-aware needs --eps or --density" in capsys.readouterr().err
    for platform, words in (("nosuch", "nosuch"), ("gpu", "no core geometry")):
        assert main(["--model", "mlp-lif", "--eps", "5", "--core-aware", platform, "--limit", "20",
                     "--out", str(tmp_path / "m.pt")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("esl-train: error:") and words in err and "\n" not in err
    assert not (tmp_path / "m.pt").exists()


def test_cli_core_aware_run_keeps_every_neuron_in_one_image_window_pool(tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    rc = main(["--model", "mlp-lif", "--hidden", "40", "--T", "2", "--encoding", "rate", "--eps", "5",
               "--core-aware", "truenorth", "--limit", "60", "--epochs", "2", "--t-iter", "1",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    ckpt = load_checkpoint(out)
    assert ckpt.meta["esl"]["pool_size"] == 127 and ckpt.meta["esl"]["pools"] == {"fc.0.weight": 9}
    assert ckpt.meta["esl"]["image"] == [1, 28, 28]  # the layer reads the image: 3 x 3 windows
    mask = ckpt.masks["fc.0.weight"]
    assert int(mask.sum()) == 5 * (784 + 40) and len(_updates(out)) > 0
    # 9 pools: the 40 neurons' inputs fall into 9 distinct sets of at most 127 inputs
    rows = [frozenset(torch.nonzero(r).squeeze(1).tolist()) for r in mask]
    assert max(len(r) for r in rows) <= 127
    unions: list[set[int]] = []
    for r in rows:
        home = next((u for u in unions if len(u | r) <= 127), None)
        if home is None:
            unions.append(set(r))
        else:
            home |= r
    assert len(unions) <= 9


ARCH = {"name": "mlp-lif", "sizes": [784, 32, 10], "T": 3}


@pytest.fixture(scope="module")
def data():
    return load_data("mnist-embedded", limit=200)


def _cfg(out: Path) -> TrainConfig:
    return TrainConfig(out=str(out), epochs=3, batch_size=40, lr=3e-3, seed=7, save_every=2)


@pytest.mark.parametrize("grow", ["random_unfired", "gradient"])
def test_interrupted_esl_run_resumes_the_same_mask_trajectory(data, tmp_path: Path, grow: str) -> None:
    esl = ESLConfig(eps=5, prune="set", grow=grow, alpha=0.5, t_iter=2, t_end=13, seed=7, verbose=False)
    full = train(ARCH, data, _cfg(tmp_path / "full" / "model.pt"), sparsifier_factory=esl_factory(esl),
                 progress=False)
    cut = _cfg(tmp_path / "cut" / "model.pt")
    with pytest.raises(Interrupted):
        train(ARCH, data, cut, sparsifier_factory=esl_factory(esl), progress=False, stop_after_steps=7)
    saved = torch.load(run_paths(cut.out)["resume"], weights_only=True)
    assert saved["sparsifier"]["t"] == 7
    resumed = train(ARCH, data, cut, sparsifier_factory=esl_factory(esl), resume=True, progress=False)

    a, b = full.checkpoint, resumed.checkpoint
    for k in a.masks:
        assert torch.equal(a.masks[k], b.masks[k]) and torch.equal(a.explored[k], b.explored[k]), k
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k], rtol=0, atol=1e-6, msg=k)
    def updates(log: list[dict]) -> list[dict]:  # timings aside, the same rows
        return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in log
                if r["kind"] == "mask_update"]

    ups = updates(full.log)
    assert len(ups) == 6 and ups == updates(resumed.log)
    assert all(r["active/fc.0.weight"] == 5 * (784 + 32) for r in ups)

    other = ESLConfig(eps=5, prune="magnitude", grow=grow, t_iter=2, t_end=13, seed=7, verbose=False)
    with pytest.raises(CheckpointError, match="other settings"):
        train(ARCH, data, cut, sparsifier_factory=esl_factory(other), resume=True, progress=False)


CONV_ARCHS = {
    "vggsnn": {"name": "vggsnn", "width": 1 / 16, "in_shape": [2, 2, 16, 16]},
    "resnet19": {"name": "resnet19", "width": 1 / 16, "in_shape": [3, 8, 8], "T": 2},
}


@pytest.mark.parametrize("net", list(CONV_ARCHS))
@pytest.mark.parametrize("grow", GROW_RULES)
@pytest.mark.parametrize("prune", PRUNE_RULES)
def test_tiny_conv_nets_train_with_every_rule(net: str, prune: str, grow: str) -> None:
    torch.manual_seed(0)
    arch = CONV_ARCHS[net]
    model = build_model(arch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sp = ESLSparsifier(model, opt, ESLConfig(density=0.3, prune=prune, grow=grow, alpha=0.3, t_iter=2,
                                             t_end=6, seed=1, verbose=False))
    names = list(model.connection_weights())
    assert list(sp.masks) == names[1:-1]  # every conv and linear but the first and the last
    counts = {k: int(m.sum()) for k, m in sp.masks.items()}
    start = {k: m.clone() for k, m in sp.masks.items()}
    x = torch.rand(6, *arch["in_shape"])
    y = torch.arange(6) % 10
    losses, rows = [], []
    for _ in range(6):
        loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        row = sp.step()
        if row:
            rows.append(row)
        losses.append(float(loss.detach()))
        weights = model.connection_weights()
        for k, m in sp.masks.items():
            assert int(m.sum()) == counts[k]
            assert bool((weights[k][~m] == 0).all()), k
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # it learns the batch
    assert [r["t"] for r in rows] == [2, 4]
    assert sum(r[f"regrown/{k}"] for r in rows for k in sp.masks) > 0
    assert any(not torch.equal(start[k], sp.masks[k]) for k in sp.masks)
