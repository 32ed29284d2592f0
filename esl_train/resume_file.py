"""model.resume.pt: the training state an interrupted run continues from, checked field by field.

The file is read with ``weights_only=True`` (no code can run), but its contents are
still untrusted: a damaged or hand-edited file could hold tensors of the wrong shape, a
non-finite weight, a step counter past the end of the epoch or a generator state torch
would reject deep inside the loop. ``check_resume`` compares every field with the model,
optimizer and sparsifier the current command built, before any of them is touched, and
raises ``ResumeError`` with one line naming the field.

Layout (written by ``esl_train.train``):

    key         the run's settings; must equal the current command's
    model       the model's state_dict
    optimizer   the optimizer's state_dict
    sparsifier  the sparsifier's state_dict, or None for a dense run
    rng         torch's global generator state (rate encoding draws from it)
    state       epoch, step_in_epoch, global_step, best_val, best_state, best_epoch, log,
                done, epoch_sums
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

STATE_FIELDS = ("epoch", "step_in_epoch", "global_step", "best_val", "best_state", "best_epoch", "log",
                "done")


class ResumeError(ValueError):
    """A resume file that cannot continue this run; one line naming the file and the field."""


def _tensors(where: str, saved: Any, want: Mapping[str, torch.Tensor]) -> None:
    """``saved`` must be a dict with exactly ``want``'s keys, each a tensor of the same
    shape and dtype kind, floating ones finite."""
    if not isinstance(saved, Mapping):
        raise ResumeError(f"{where}: is a {type(saved).__name__}, not a dict of tensors")
    if set(saved) != set(want):
        extra, missing = sorted(set(saved) - set(want)), sorted(set(want) - set(saved))
        raise ResumeError(f"{where}: names {extra or ''} {missing and 'lacks ' + ', '.join(missing)}".strip())
    for name, ref in want.items():
        t = saved[name]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ResumeError(f"{where}[{name}]: is {got}, the model has {ref.dtype} {tuple(ref.shape)}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ResumeError(f"{where}[{name}]: holds NaN or infinite values")


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ResumeError(f"{where}: must be an integer in {lo}..{hi}, got {value!r}"[:200])
    return value


def _optimizer(saved: Any, opt: torch.optim.Optimizer) -> None:
    ref = opt.state_dict()
    if not isinstance(saved, Mapping) or set(saved) != {"state", "param_groups"}:
        raise ResumeError("optimizer: must be a dict with 'state' and 'param_groups'")
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(ref["param_groups"]) or not all(
            isinstance(g, Mapping) and g.get("params") == r["params"]
            for g, r in zip(groups, ref["param_groups"], strict=False)):
        raise ResumeError("optimizer.param_groups: do not list this model's parameters")
    for g, r in zip(groups, ref["param_groups"], strict=True):
        for k, v in r.items():
            if k != "params" and type(g.get(k)) is not type(v):
                raise ResumeError(f"optimizer.param_groups.{k}: is {type(g.get(k)).__name__}, "
                                  f"expected {type(v).__name__}")
            if isinstance(v, float) and not math.isfinite(g[k]):
                raise ResumeError(f"optimizer.param_groups.{k}: is not finite")
    params = [p for group in opt.param_groups for p in group["params"]]
    state = saved["state"]
    if not isinstance(state, Mapping) or not all(isinstance(i, int) and 0 <= i < len(params) for i in state):
        raise ResumeError("optimizer.state: must map parameter indices to their state")
    for i, entry in state.items():
        if not isinstance(entry, Mapping):
            raise ResumeError(f"optimizer.state[{i}]: is not a dict")
        for k, t in entry.items():
            if not isinstance(t, torch.Tensor):
                raise ResumeError(f"optimizer.state[{i}].{k}: is not a tensor")
            if t.dim() and t.shape != params[i].shape:
                raise ResumeError(f"optimizer.state[{i}].{k}: has shape {tuple(t.shape)}, "
                                  f"the parameter {tuple(params[i].shape)}")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ResumeError(f"optimizer.state[{i}].{k}: holds NaN or infinite values")


def _sparsifier(saved: Any, sparsifier: Any) -> None:
    if sparsifier is None:
        if saved is not None:
            raise ResumeError("sparsifier: the file holds masks, this run is dense")
        return
    ref = sparsifier.state_dict()
    if not isinstance(saved, Mapping) or set(saved) != set(ref):
        raise ResumeError(f"sparsifier: must be a dict with {', '.join(sorted(ref))}")
    if not isinstance(saved["layers"], list) or saved["layers"] != list(ref["layers"]):
        raise ResumeError(f"sparsifier.layers: must be {ref['layers']}")
    _int("sparsifier.t", saved["t"], 0, 2**62)
    for key in ("masks", "explored"):
        _tensors(f"sparsifier.{key}", saved[key], ref[key])
    if ref["config"].get("redistribute", "none") == "none":  # the sparsifier keeps each count
        for name, mask in saved["masks"].items():
            if int(mask.sum()) != int(ref["masks"][name].sum()):
                raise ResumeError(f"sparsifier.masks[{name}]: has {int(mask.sum())} active connections, "
                                  f"the run keeps {int(ref['masks'][name].sum())}")
    else:  # ... or, with redistribution, the network's total
        got, want = (sum(int(m.sum()) for m in d["masks"].values()) for d in (saved, ref))
        if got != want:
            raise ResumeError(f"sparsifier.masks: hold {got} active connections, the run keeps {want}")
    for name, mask in saved["masks"].items():
        if bool((mask & ~saved["explored"][name]).any()):
            raise ResumeError(f"sparsifier.explored[{name}]: misses connections the mask holds")
    gen = saved["generator"]
    if not isinstance(gen, torch.Tensor) or gen.dtype != torch.uint8 or gen.shape != ref["generator"].shape:
        raise ResumeError("sparsifier.generator: is not a generator state")
    if saved["config"] != ref["config"]:
        raise ResumeError("sparsifier.config: differs from this command's ESL settings")
    pools = saved["pools"]
    if not isinstance(pools, Mapping) or set(pools) != set(ref["pools"]):
        raise ResumeError("sparsifier.pools: do not match this run's core-aware layers")
    for n, p in pools.items():
        if not isinstance(p, Mapping) or set(p) != set(ref["pools"][n]):
            raise ResumeError(f"sparsifier.pools[{n}]: is malformed")
        for k, t in ref["pools"][n].items():
            got = p[k]
            if not isinstance(got, torch.Tensor) or got.shape != t.shape or got.is_floating_point():
                raise ResumeError(f"sparsifier.pools[{n}].{k}: must be an integer tensor of shape "
                                  f"{tuple(t.shape)}")
        bound = {"members": ref["masks"][n].shape[1], "of_output": p["members"].shape[0]}
        for k, hi in bound.items():
            if p[k].numel() and not 0 <= int(p[k].min()) <= int(p[k].max()) < hi:
                raise ResumeError(f"sparsifier.pools[{n}].{k}: holds indices outside 0..{hi - 1}")
        from esl_train.esl.pools import Pools  # only core-aware runs have pools

        mask = saved["masks"][n]
        allowed = Pools(p["members"].long(), p["of_output"].long()).allowed_for(mask.shape)
        if bool((mask & ~allowed).any()):
            raise ResumeError(f"sparsifier.masks[{n}]: has connections outside its input pools")


def _state(saved: Any, model: torch.nn.Module, sparsifier: Any, epochs: int, steps_per_epoch: int) -> None:
    if not isinstance(saved, Mapping) or not set(STATE_FIELDS) <= set(saved):
        raise ResumeError(f"state: must be a dict with {', '.join(STATE_FIELDS)}")
    epoch = _int("state.epoch", saved["epoch"], 0, epochs)
    _int("state.step_in_epoch", saved["step_in_epoch"], 0, steps_per_epoch)
    _int("state.global_step", saved["global_step"], 0, (epoch + 1) * steps_per_epoch)
    _int("state.best_epoch", saved["best_epoch"], -1, epoch)
    best = saved["best_val"]
    if isinstance(best, bool) or not isinstance(best, int | float) or not -1.0 <= best <= 1.0:
        raise ResumeError(f"state.best_val: must be an accuracy in [-1, 1], got {best!r}"[:200])
    if not isinstance(saved["done"], bool):
        raise ResumeError("state.done: must be true or false")
    if saved["best_state"] is not None:
        _tensors("state.best_state", saved["best_state"], model.state_dict())
    for key in ("best_masks", "best_explored"):  # a sparse run's masks at its best epoch
        if key in saved and sparsifier is not None:
            _tensors(f"state.{key}", saved[key], sparsifier.masks)
    log = saved["log"]
    if not isinstance(log, list) or not all(isinstance(r, Mapping) for r in log):
        raise ResumeError("state.log: must be a list of rows")
    sums = saved.get("epoch_sums")
    if sums is not None and (not isinstance(sums, Mapping) or set(sums) != {"loss", "correct", "seen"}
                             or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                        and math.isfinite(v) and v >= 0 for v in sums.values())):
        raise ResumeError("state.epoch_sums: must hold finite, non-negative loss, correct and seen")


def _generator_states(where: str, value: Any, ranks: int, like: torch.Tensor | None = None) -> None:
    if not isinstance(value, list) or len(value) != ranks or not all(
            isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1
            and (like is None or t.shape == like.shape) for t in value):
        raise ResumeError(f"{where}: must hold the generator states of the run's {ranks} processes")


def check_resume(saved: Any, key: dict[str, Any], model: torch.nn.Module, opt: torch.optim.Optimizer,
                 sparsifier: Any, epochs: int, steps_per_epoch: int, processes: int = 1) -> None:
    """ResumeError unless ``saved`` (a loaded resume file) continues this very run (of
    ``processes`` ranks: a distributed run keeps every rank's generator states)."""
    fields = ("key", "model", "optimizer", "sparsifier", "rng", "state")
    if not isinstance(saved, Mapping) or not set(fields) <= set(saved):
        raise ResumeError(f"not a resume file (needs {', '.join(fields)})")
    if saved["key"] != key:
        raise ResumeError("was written by a run with other settings; use the same flags, or another --out")
    _tensors("model", saved["model"], model.state_dict())
    _optimizer(saved["optimizer"], opt)
    _sparsifier(saved["sparsifier"], sparsifier)
    rng, ref = saved["rng"], torch.get_rng_state()
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.shape != ref.shape:
        raise ResumeError("rng: is not a torch generator state")
    if processes > 1:
        _generator_states("rng_ranks", saved.get("rng_ranks"), processes, ref)
    if saved.get("cuda_rng") is not None:
        _generator_states("cuda_rng", saved["cuda_rng"], processes)
    _state(saved["state"], model, sparsifier, epochs, steps_per_epoch)
