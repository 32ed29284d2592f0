"""ESL sparsifier: ER init, the prune and growth rules on hand-made layers, the cosine
schedule, freezing, masking and state (fast unit tests, no training data)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from esl_train.esl import (
    GROW_RULES,
    PRUNE_RULES,
    ESLConfig,
    ESLSparsifier,
    alpha_at,
    er_count,
    esl_factory,
    is_update_step,
    select_layers,
    solve_eps,
)
from esl_train.esl.rules import set_split
from esl_train.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---------------------------------------------------------------------------------------
# initialisation


def test_er_eps60_on_the_paper_mlp_is_exact() -> None:
    assert er_count((800, 784), 60) == 95_040  # 60·(784 + 800)
    model = build_model({"name": "mlp-single-spike"})
    sp = ESLSparsifier(model, torch.optim.Adam(model.parameters()), ESLConfig(eps=60, verbose=False))
    assert list(sp.masks) == ["layers.0.weight"]  # hidden layer only, output dense
    mask = sp.masks["layers.0.weight"]
    assert mask.dtype == torch.bool and int(mask.sum()) == 95_040
    assert int(sp.explored["layers.0.weight"].sum()) == 95_040
    w = model.layers[0].weight
    assert bool((w[~mask] == 0).all()) and bool((w[mask] != 0).all())
    assert int((model.layers[1].weight != 0).sum()) == 8_000
    assert round((95_040 + 8_000) / (627_200 + 8_000), 3) == 0.162


def test_er_mask_depends_on_the_seed_only() -> None:
    def mask(seed: int, global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)
        m = _Tiny(8, 6)
        state = torch.get_rng_state()
        sp = ESLSparsifier(m, torch.optim.SGD(m.parameters(), lr=0.1),
                           ESLConfig(eps=2, sparse_layers=["all"], seed=seed, verbose=False))
        assert torch.equal(state, torch.get_rng_state())  # the global RNG is not touched
        return sp.masks["fc.weight"]

    a, b = mask(5, 0), mask(5, 1)  # the global RNG does not matter
    assert torch.equal(a, b) and not torch.equal(a, mask(6, 0))
    assert int(a.sum()) == er_count((6, 8), 2) == 28


def test_conv_layers_use_the_er_kernel_rule_and_dense_fallback() -> None:
    assert er_count((16, 8, 3, 3), 1) == 16 + 8 + 3 + 3
    assert er_count((4, 2, 3, 3), 100) == 4 * 2 * 3 * 3  # p > 1 → dense
    shapes = {"b": (64, 32, 3, 3), "c": (64, 64, 3, 3)}
    eps, dense = solve_eps(shapes, 0.2)
    assert dense == set()
    ratio = er_count(shapes["b"], eps) / er_count(shapes["c"], eps)
    assert ratio == pytest.approx(102 / 134, abs=1e-3)  # the ratio of Σdims
    total = sum(er_count(s, eps) for s in shapes.values())
    assert total == pytest.approx(0.2 * (18_432 + 36_864), abs=2)
    shapes["a"] = (4, 2, 3, 3)  # small: p = ε·18/72 would exceed 1
    eps, dense = solve_eps(shapes, 0.2)
    assert dense == {"a"}
    total = sum(er_count(s, eps) for k, s in shapes.items() if k != "a") + 72
    assert total == pytest.approx(0.2 * (18_432 + 36_864 + 72), abs=2)
    eps, dense = solve_eps(shapes, 1.0)
    assert all(k in dense or er_count(s, eps) == math.prod(s) for k, s in shapes.items())


def test_density_mode_on_the_mlp() -> None:
    model = build_model({"name": "mlp-lif", "sizes": [784, 800, 10], "T": 2})
    sp = ESLSparsifier(model, torch.optim.Adam(model.parameters()), ESLConfig(density=0.3, verbose=False))
    assert int(sp.masks["fc.0.weight"].sum()) == round(0.3 * 627_200)
    assert sp.describe()["solved_eps"] == pytest.approx(0.3 * 627_200 / 1584)


def test_default_and_chosen_sparse_layers() -> None:
    def layers(arch: dict, patterns: list[str] | None = None) -> list[str]:
        m = build_model(arch)
        return list(ESLSparsifier(m, torch.optim.Adam(m.parameters()),
                                  ESLConfig(eps=1, sparse_layers=patterns, verbose=False)).masks)

    assert layers({"name": "mlp-lif", "sizes": [784, 40, 30, 10], "T": 2}) == ["fc.0.weight", "fc.1.weight"]
    vgg = {"name": "vggsnn", "width": 1 / 16, "in_shape": [2, 2, 16, 16]}
    got = layers(vgg)
    assert got[0] == "features.1.conv.weight" and got[-1] == "features.10.conv.weight" and len(got) == 7
    res = layers({"name": "resnet19", "width": 1 / 16, "in_shape": [3, 8, 8], "T": 1})
    assert "conv1.weight" not in res and "fc2.weight" not in res and "fc1.weight" in res
    assert layers(vgg, ["features.1.conv", "classifier.weight"]) == ["features.1.conv.weight",
                                                                      "classifier.weight"]
    assert len(layers(vgg, ["features.*"])) == 8
    assert len(layers(vgg, ["all"])) == 9
    with pytest.raises(ValueError, match="matches no connection weight"):
        select_layers(["fc.weight"], ["conv*"])


def test_start_prints_every_layer(capsys: pytest.CaptureFixture[str]) -> None:
    m = build_model({"name": "mlp-single-spike"})
    ESLSparsifier(m, torch.optim.Adam(m.parameters()), ESLConfig(eps=60))
    out = capsys.readouterr().out
    assert "layers.0.weight" in out and "95,040" in out and "0.1515" in out
    assert "layers.1.weight" in out and "103,040 / 635,200" in out


@pytest.mark.parametrize("kwargs", [{}, {"eps": 1, "density": 0.5}, {"eps": 1, "prune": "x"},
                                    {"eps": 1, "grow": "x"}, {"eps": 1, "alpha": 1.5},
                                    {"eps": 1, "t_iter": 0}, {"density": 1.2}, {"eps": -1}])
def test_bad_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ESLConfig(**kwargs)


# ---------------------------------------------------------------------------------------
# schedule


def test_cosine_schedule_and_update_steps() -> None:
    assert alpha_at(0, 0.4, 100) == pytest.approx(0.4)
    assert alpha_at(50, 0.4, 100) == pytest.approx(0.2)
    assert alpha_at(25, 0.4, 100) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert alpha_at(100, 0.4, 100) == 0.0 and alpha_at(150, 0.4, 100) == 0.0
    assert alpha_at(10**6, 0.4, None) == 0.4
    assert [t for t in range(1, 30) if is_update_step(t, 5, 20)] == [5, 10, 15]
    assert not any(is_update_step(t, 1, 0) for t in range(1, 10))  # static mask
    assert [t for t in range(1, 12) if is_update_step(t, 5, None)] == [5, 10]


# ---------------------------------------------------------------------------------------
# the rules on a hand-made layer


class _Tiny(nn.Module):
    def __init__(self, n_in: int = 4, n_out: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out, bias=False)
        self.out = nn.Linear(n_out, 2, bias=False)


# 3×4 layer, flat indices 0..11. Active (M): 8 connections, inactive: 3, 6, 9, 11.
W = torch.tensor([[0.05, -0.90, 0.40, 0.00],
                  [0.08, -0.30, 0.00, 0.70],
                  [-0.20, 0.00, 0.60, 0.00]])
M = torch.tensor([[1, 1, 1, 0],
                  [1, 1, 0, 1],
                  [1, 0, 1, 0]], dtype=torch.bool)
# magnitude (α = 0.25 → 2 of 8): |w| smallest among active: 0.05 (0), 0.08 (4)
MAGNITUDE_PRUNED = {0, 4}
# SET: positives 0.05, 0.4, 0.08, 0.7, 0.6 (5) → α·5 = 1.25; negatives -0.9, -0.3, -0.2 (3)
# → 0.75; total round(2.0) = 2, largest remainder gives one each: 0.05 (0) and -0.2 (8)
SET_PRUNED = {0, 8}
# grow scores: index 0 (about to be pruned) has the largest gradient of all — it must not
# come back; among the inactive (3, 6, 9, 11) the two largest |grad| are 9 and 3
GRAD = torch.tensor([[9.0, 0.1, 0.1, -0.5],
                     [0.1, 0.1, 0.2, 0.1],
                     [0.1, -0.9, 0.1, 0.3]])
GRADIENT_GROWN = {9, 3}
# Adam: |m| alone would pick 6 and 11, m/(√v+ε) picks 11 (0.5/0.1) and 3 (0.2/0.1)
EXP_AVG = torch.tensor([[0.0, 0.0, 0.0, 0.2],
                        [0.0, 0.0, 0.9, 0.0],
                        [0.0, 0.1, 0.0, -0.5]])
EXP_AVG_SQ = torch.tensor([[1.0, 1.0, 1.0, 0.01],
                           [1.0, 1.0, 81.0, 1.0],
                           [1.0, 0.01, 1.0, 0.01]])
MOMENTUM_GROWN = {11, 3}
# random_unfired: of the inactive, 3 and 9 were active once (explored), 6 and 11 never
EXPLORED = M | torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
UNFIRED_GROWN = {6, 11}
INACTIVE = {3, 6, 9, 11}


def _hand_made(prune: str, grow: str, alpha: float = 0.25, t_iter: int = 1, t_end: int | None = None,
               seed: int = 0) -> tuple[ESLSparsifier, _Tiny, torch.optim.Optimizer]:
    model = _Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=0.0)
    sp = ESLSparsifier(model, opt, ESLConfig(eps=1, prune=prune, grow=grow, alpha=alpha, t_iter=t_iter,
                                             t_end=t_end, sparse_layers=["fc"], seed=seed, verbose=False))
    with torch.no_grad():
        model.fc.weight.copy_(W)
    sp.masks["fc.weight"].copy_(M)
    sp.explored["fc.weight"].copy_(EXPLORED)
    model.fc.weight.grad = GRAD.clone()
    opt.state[model.fc.weight] = {"step": torch.tensor(10.0), "exp_avg": EXP_AVG.clone(),
                                  "exp_avg_sq": EXP_AVG_SQ.clone()}
    return sp, model, opt


def _flat_set(mask: torch.Tensor) -> set[int]:
    return set(mask.reshape(-1).nonzero().squeeze(1).tolist())


@pytest.mark.parametrize("grow", GROW_RULES)
@pytest.mark.parametrize("prune", PRUNE_RULES)
def test_each_rule_pair_on_a_hand_made_layer(prune: str, grow: str) -> None:
    sp, model, opt = _hand_made(prune, grow)
    row = sp.step()
    assert row is not None and row["t"] == 1 and row["alpha"] == 0.25
    new = sp.masks["fc.weight"]
    pruned = _flat_set(M & ~new)
    grown = _flat_set(new & ~M)
    assert pruned == (MAGNITUDE_PRUNED if prune == "magnitude" else SET_PRUNED)
    assert len(grown) == 2 and grown <= INACTIVE  # never a just-pruned connection
    expected = {"gradient": GRADIENT_GROWN, "momentum": MOMENTUM_GROWN,
                "random_unfired": UNFIRED_GROWN}.get(grow)
    if expected is not None:
        assert grown == expected
    assert int(new.sum()) == int(M.sum()) == 8
    assert row["pruned/fc.weight"] == row["regrown/fc.weight"] == 2
    assert row["active/fc.weight"] == 8 and row["density/fc.weight"] == pytest.approx(8 / 12)
    assert row["churn/fc.weight"] == pytest.approx(2 / 8)
    assert row["explored/fc.weight"] == pytest.approx(len(_flat_set(EXPLORED) | grown) / 12)
    # weights: regrown start at 0, pruned are 0, survivors untouched
    w = model.fc.weight.detach().reshape(-1)
    for i in range(12):
        want = 0.0 if (i in grown or i in pruned or i in INACTIVE) else float(W.reshape(-1)[i])
        assert float(w[i]) == want, i
    # optimizer state: zeroed where regrown, untouched elsewhere
    state = opt.state[model.fc.weight]
    for key, ref in (("exp_avg", EXP_AVG), ("exp_avg_sq", EXP_AVG_SQ)):
        got = state[key].reshape(-1)
        for i in range(12):
            assert float(got[i]) == (0.0 if i in grown else float(ref.reshape(-1)[i])), (key, i)
    assert torch.equal(sp.explored["fc.weight"], EXPLORED | new)
    assert model.out.weight.abs().sum() > 0  # the dense layer is not touched


def test_sgd_momentum_buffer_is_the_momentum_signal_and_is_reset() -> None:
    model = _Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    sp = ESLSparsifier(model, opt, ESLConfig(eps=1, grow="momentum", alpha=0.25, t_iter=1,
                                             sparse_layers=["fc"], verbose=False))
    with torch.no_grad():
        model.fc.weight.copy_(W)
    sp.masks["fc.weight"].copy_(M)
    buf = torch.zeros(3, 4)
    buf.view(-1)[[3, 6, 9, 11]] = torch.tensor([0.3, -0.8, 0.1, 0.2])
    opt.state[model.fc.weight] = {"momentum_buffer": buf.clone()}
    sp.step()
    assert _flat_set(sp.masks["fc.weight"] & ~M) == {6, 3}
    got = opt.state[model.fc.weight]["momentum_buffer"].reshape(-1)
    assert float(got[6]) == 0.0 and float(got[3]) == 0.0 and float(got[9]) == pytest.approx(0.1)


def test_random_growth_is_uniform_and_reproducible() -> None:
    counts = dict.fromkeys(INACTIVE, 0)
    for seed in range(200):
        sp, _, _ = _hand_made("magnitude", "random", seed=seed)
        sp.step()
        for i in _flat_set(sp.masks["fc.weight"] & ~M):
            counts[i] += 1
    assert sum(counts.values()) == 400
    assert all(70 <= c <= 130 for c in counts.values()), counts  # each 100 expected
    a, _, _ = _hand_made("set", "random", seed=3)
    b, _, _ = _hand_made("set", "random", seed=3)
    a.step()
    b.step()
    assert torch.equal(a.masks["fc.weight"], b.masks["fc.weight"])


def test_random_unfired_tops_up_from_explored_when_too_few_are_fresh() -> None:
    sp, _, _ = _hand_made("magnitude", "random_unfired", alpha=0.5)  # 4 to regrow, 2 fresh
    row = sp.step()
    assert row is not None and row["regrown/fc.weight"] == 4
    assert _flat_set(sp.masks["fc.weight"] & ~M) == INACTIVE
    assert row["explored/fc.weight"] == 1.0


def test_set_split_counts_exactly() -> None:
    assert set_split(0.25, 5, 3) == (1, 1)
    assert set_split(0.3, 10, 0) == (3, 0)
    assert set_split(0.5, 3, 3) == (2, 1)  # 1.5 + 1.5 = 3: tie to the positive side
    for n_pos in range(0, 40, 3):
        for n_neg in range(0, 40, 7):
            for alpha in (0.05, 0.3, 0.5, 0.77):
                p, q = set_split(alpha, n_pos, n_neg)
                assert p + q == math.floor(alpha * (n_pos + n_neg) + 0.5)
                assert abs(p - alpha * n_pos) < 1 and abs(q - alpha * n_neg) < 1


def test_set_removes_exactly_what_it_is_asked_with_many_zero_weights() -> None:
    """Public SET ports threshold the whole tensor and remove every weight between the
    two thresholds (including exact zeros and ties); this one counts."""
    torch.manual_seed(0)
    model = _Tiny(50, 40)
    opt = torch.optim.Adam(model.parameters(), lr=0.0)
    sp = ESLSparsifier(model, opt, ESLConfig(eps=5, prune="set", grow="random", alpha=0.3, t_iter=1,
                                             sparse_layers=["fc"], verbose=False))
    with torch.no_grad():  # a third of the active weights exactly zero (just regrown), ties
        w = model.fc.weight
        w.copy_(torch.randint(-3, 4, w.shape).float() / 10 * sp.masks["fc.weight"])
    n = int(sp.masks["fc.weight"].sum())
    row = sp.step()
    assert row is not None
    assert row["pruned/fc.weight"] == row["regrown/fc.weight"] == math.floor(0.3 * n + 0.5)
    assert int(sp.masks["fc.weight"].sum()) == n


def test_too_dense_layer_prunes_only_what_it_can_regrow() -> None:
    model = _Tiny(4, 3)
    sp = ESLSparsifier(model, torch.optim.Adam(model.parameters()),
                       ESLConfig(eps=1, grow="random", alpha=0.5, t_iter=1, sparse_layers=["fc"],
                                 verbose=False))
    sp.masks["fc.weight"].fill_(True)
    sp.masks["fc.weight"].view(-1)[[0, 1]] = False  # 10 active, 2 inactive: α·10 = 5 > 2
    row = sp.step()
    assert row is not None and row["pruned/fc.weight"] == row["regrown/fc.weight"] == 2
    assert int(sp.masks["fc.weight"].sum()) == 10


# ---------------------------------------------------------------------------------------
# in a loop: masking, schedule, freezing, state


def _loop(sp: ESLSparsifier, model: _Tiny, opt: torch.optim.Optimizer, steps: int,
          gen: torch.Generator) -> list[dict]:
    rows = []
    for _ in range(steps):
        x = torch.randn(16, model.fc.in_features, generator=gen)
        loss = model.out(torch.tanh(model.fc(x))).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        row = sp.step()
        mask = sp.masks["fc.weight"]
        assert bool((model.fc.weight[~mask] == 0).all())  # exactly zero between updates
        if row:
            rows.append(row)
    return rows


@pytest.mark.parametrize("grow", GROW_RULES)
@pytest.mark.parametrize("prune", PRUNE_RULES)
def test_schedule_counts_and_freezing_in_a_loop(prune: str, grow: str) -> None:
    torch.manual_seed(1)
    model = _Tiny(30, 20)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sp = ESLSparsifier(model, opt, ESLConfig(eps=3, prune=prune, grow=grow, alpha=0.4, t_iter=3, t_end=14,
                                             sparse_layers=["fc"], verbose=False))
    n = int(sp.masks["fc.weight"].sum())
    assert n == 150
    gen = torch.Generator().manual_seed(0)
    rows = _loop(sp, model, opt, 14, gen)
    assert [r["t"] for r in rows] == [3, 6, 9, 12]
    for r in rows:
        assert r["alpha"] == pytest.approx(0.2 * (1 + math.cos(r["t"] * math.pi / 14)))
        if prune == "magnitude":
            assert r["pruned/fc.weight"] == math.floor(r["alpha"] * n + 0.5)
        assert r["pruned/fc.weight"] == r["regrown/fc.weight"] > 0
        assert r["active/fc.weight"] == n
    frozen = sp.masks["fc.weight"].clone()
    assert _loop(sp, model, opt, 20, gen) == []  # after T_end: no updates
    assert torch.equal(frozen, sp.masks["fc.weight"]) and sp.t == 34


def _save_run_and_resume(setup: Callable[[], tuple[ESLSparsifier, _Tiny, torch.optim.Optimizer]],
                         sp: ESLSparsifier, model: _Tiny, opt: torch.optim.Optimizer, gen: torch.Generator,
                         steps: int) -> tuple[list[dict], list[dict], ESLSparsifier]:
    """Save sparsifier, model, optimizer and batch generator (weights_only), run ``steps``
    more; then rebuild with ``setup()``, load the save and run the same steps again."""
    buf = io.BytesIO()
    torch.save({"sp": sp.state_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
                "gen": gen.get_state()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    ref = _loop(sp, model, opt, steps, gen)
    sp2, model2, opt2 = setup()
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    sp2.load_state_dict(saved["sp"])
    gen2 = torch.Generator()
    gen2.set_state(saved["gen"])
    return ref, _loop(sp2, model2, opt2, steps, gen2), sp2


def test_state_dict_is_weights_only_safe_and_resumes_the_same_trajectory() -> None:
    def setup() -> tuple[ESLSparsifier, _Tiny, torch.optim.Optimizer]:
        torch.manual_seed(2)
        model = _Tiny(30, 20)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        return ESLSparsifier(model, opt, ESLConfig(
            eps=3, grow="random_unfired", alpha=0.4, t_iter=2, t_end=30, sparse_layers=["fc"],
            seed=9, verbose=False)), model, opt

    sp, model, opt = setup()
    gen = torch.Generator().manual_seed(0)
    _loop(sp, model, opt, 7, gen)
    ref, again, sp2 = _save_run_and_resume(setup, sp, model, opt, gen, 20)
    assert sp2.t == sp.t == 27  # the resumed one restarted from t = 7
    assert again == ref and len(ref) > 3
    assert torch.equal(sp.masks["fc.weight"], sp2.masks["fc.weight"])
    assert torch.equal(sp.explored["fc.weight"], sp2.explored["fc.weight"])


def test_describe_is_plain_data() -> None:
    model = _Tiny()
    sp = esl_factory(ESLConfig(density=0.5, sparse_layers=["fc"], verbose=False))(
        model, torch.optim.Adam(model.parameters()))
    d = sp.describe()
    assert d["sparse_layers"] == ["fc.weight"] and d["density"] == 0.5 and d["prune"] == "magnitude"
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == d


def test_rules_that_need_a_signal_say_so() -> None:
    model = _Tiny()
    with pytest.raises(ValueError, match="momentum"):
        ESLSparsifier(model, torch.optim.SGD(model.parameters(), lr=0.1),
                      ESLConfig(eps=1, grow="momentum", sparse_layers=["fc"], verbose=False))
    sp = ESLSparsifier(model, torch.optim.SGD(model.parameters(), lr=0.1),
                       ESLConfig(eps=1, grow="gradient", t_iter=1, sparse_layers=["fc"], verbose=False))
    with pytest.raises(RuntimeError, match="no gradient"):
        sp.step()


# ---------------------------------------------------------------------------------------
# core-aware pools


def test_pools_cover_every_input_are_full_and_split_the_outputs() -> None:
    from esl_train.esl.pools import draw_pools, pool_size_for

    assert pool_size_for("truenorth") == 127  # (256 axons - 1 bias line) // 2 signs
    pools = draw_pools(800, 784, 127, torch.Generator().manual_seed(0))
    G = math.ceil(784 / 127)
    assert pools.members.shape == (G, 127)
    for row in pools.members:
        assert row.unique().numel() == 127  # no input twice in a pool
    assert set(pools.members.flatten().tolist()) == set(range(784))
    sizes = torch.bincount(pools.of_output, minlength=G)
    assert int(sizes.max() - sizes.min()) <= 1 and int(sizes.sum()) == 800
    allowed = pools.allowed(784)
    assert allowed.shape == (800, 784) and int(allowed.sum()) == 800 * 127
    assert torch.equal(allowed[0], allowed[pools.of_output == pools.of_output[0]][-1])


def test_image_pools_are_square_windows_on_a_grid_topped_up_elsewhere() -> None:
    from esl_train.esl.pools import draw_pools

    pools = draw_pools(800, 784, 127, torch.Generator().manual_seed(0), image=(1, 28, 28))
    assert pools.members.shape == (9, 127)  # 11 x 11 windows, 3 x 3 grid at rows/cols 0, 8, 17
    assert set(pools.members.flatten().tolist()) == set(range(784))
    for g, (r, c) in enumerate((r, c) for r in (0, 8, 17) for c in (0, 8, 17)):
        window = {(r + i) * 28 + c + j for i in range(11) for j in range(11)}
        assert window <= set(pools.members[g].tolist())
    rgb = draw_pools(100, 3 * 32 * 32, 127, torch.Generator().manual_seed(0), image=(3, 32, 32))
    # 6 x 6 windows over all 3 channels (108 inputs) on a 6 x 6 grid
    assert rgb.members.shape == (36, 127)
    first = {ch * 1024 + i * 32 + j for ch in range(3) for i in range(6) for j in range(6)}
    assert first <= set(rgb.members[0].tolist())


def test_core_aware_masks_stay_in_their_pools_through_updates_and_resume() -> None:
    def setup() -> tuple[ESLSparsifier, _Tiny, torch.optim.Optimizer]:
        torch.manual_seed(3)
        model = _Tiny(60, 40)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        return ESLSparsifier(model, opt, ESLConfig(eps=4, alpha=0.5, t_iter=2, t_end=40, pool_size=13,
                                                   sparse_layers=["fc"], seed=4, verbose=False)), model, opt

    sp, model, opt = setup()
    allowed = sp.allowed["fc.weight"]
    n = int(sp.masks["fc.weight"].sum())
    assert n == 400 and not (sp.masks["fc.weight"] & ~allowed).any()
    # each output reads one pool of 13 inputs: at most 13 inputs per row
    assert int(sp.masks["fc.weight"].sum(1).max()) <= 13
    gen = torch.Generator().manual_seed(0)
    rows = _loop(sp, model, opt, 9, gen)
    assert rows and all(r["regrown/fc.weight"] > 0 for r in rows)
    assert not (sp.masks["fc.weight"] & ~allowed).any() and int(sp.masks["fc.weight"].sum()) == n
    ref, again, sp2 = _save_run_and_resume(setup, sp, model, opt, gen, 12)
    assert again == ref
    assert torch.equal(sp.masks["fc.weight"], sp2.masks["fc.weight"])
    assert not (sp.masks["fc.weight"] & ~allowed).any()
    assert sp.describe()["pool_size"] == 13 and sp.describe()["pools"] == {"fc.weight": 5}


def test_core_aware_masks_refuse_what_does_not_fit() -> None:
    model = _Tiny(60, 40)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="do not fit pools of 5 inputs"):
        ESLSparsifier(model, opt, ESLConfig(eps=6, pool_size=5, sparse_layers=["fc"], verbose=False))
    conv = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
    with pytest.raises(ValueError, match="do not fit pools of 1 inputs"):  # 10 // 9: one input channel
        ESLSparsifier(conv, torch.optim.Adam(conv.parameters()),
                      ESLConfig(eps=4, pool_size=10, sparse_layers=["all"], verbose=False))


def test_core_aware_conv_masks_keep_each_output_channel_on_its_input_channel_pool() -> None:
    """A conv's pools are input channels, sized by the pixels one channel stands for (k², times
    a fused pooling window): pool_size 40 and 3×3 kernels give 4 input channels per output."""
    conv = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3))
    sp = ESLSparsifier(conv, torch.optim.Adam(conv.parameters()),
                       ESLConfig(eps=1, pool_size=40, sparse_layers=["all"], verbose=False))
    for name, mask in sp.masks.items():
        channels = mask.any(dim=(2, 3)).sum(dim=1)  # input channels each output channel reads
        assert int(channels.max()) <= 4 and sp.pools[name].size == 4, name
        assert not bool((mask & ~sp.allowed[name]).any())
    with pytest.raises(ValueError, match="pool_size"):
        ESLConfig(eps=1, pool_size=0)
