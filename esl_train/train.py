"""The training loop: one loop for every model, resumable after an interrupt.

Determinism: the sample order of epoch e comes from a generator seeded with
(seed, e), and the global torch RNG (rate encoding, dropout) is saved in the
resume file, so an interrupted run that resumes ends with the same weights as
an uninterrupted one with the same seed.

Files, beside ``out`` (e.g. runs/x/model.pt):
    model.pt           best-validation model (written at the end)
    model.resume.pt    latest training state (every ``save_every`` steps and each epoch)
    model.log.csv/json one row per epoch (and, with ESL, per mask update)
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from esl_train.checkpoint import (
    Checkpoint,
    CheckpointError,
    atomic_save,
    load_checkpoint,
    make_checkpoint,
    safe_torch_load,
    save_checkpoint,
)
from esl_train.data import Split, Splits
from esl_train.distributed import Context, all_sum, barrier, gather, shard, sync_sparsifier
from esl_train.models import SNNModel, build_model
from esl_train.resume_file import ResumeError, check_resume
from esl_train.ternary import WEIGHTS, ternary_weights


@dataclass
class TrainConfig:
    out: str
    epochs: int
    batch_size: int
    lr: float
    lr_final: float | None = None
    lr_schedule: str = "const"  # const | exp | cosine (per epoch)
    optimizer: str = "adam"  # adam | sgd
    clip_grad_norm: float | None = None
    weight_decay: float = 0.0
    seed: int = 0
    save_every: int = 50
    eval_batch_size: int = 500
    dataset: str = "mnist-embedded"
    amp: bool = False  # bfloat16 autocast for the forward pass (the conv models' opt-in)
    weights: str = "float"  # float | ternary (esl_train.ternary: trained as the cores hold them)
    extra_meta: dict[str, Any] = field(default_factory=dict)


class Sparsifier(Protocol):
    """What the loop needs from a sparsifier (ESL): called after optimizer.step()."""

    masks: dict[str, torch.Tensor]
    explored: dict[str, torch.Tensor]

    def step(self) -> dict[str, Any] | None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def describe(self) -> dict[str, Any]: ...


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    log: list[dict[str, Any]]
    test_acc: float
    val_acc: float


SUMS = ("loss", "correct", "seen")  # an epoch's running training sums


class Interrupted(Exception):
    """Raised by a stop callback in tests to simulate a kill between steps."""


def run_paths(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    stem = out.with_suffix("")
    return {
        "model": out,
        "resume": stem.with_name(stem.name + ".resume.pt"),
        "csv": stem.with_name(stem.name + ".log.csv"),
        "json": stem.with_name(stem.name + ".log.json"),
    }


def _ours(kind: str, path: Path) -> bool:
    """Whether an existing ``path`` is a file of this kind that esl-train wrote."""
    try:
        if kind == "model":
            load_checkpoint(path)
            return True
        if kind == "resume":
            saved = safe_torch_load(path, "resume file")
            return isinstance(saved, dict) and {"key", "state", "model"} <= set(saved)
        text = path.read_text()
        if kind == "json":
            rows = json.loads(text)
            return isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
        header = next(csv.reader([text.splitlines()[0]])) if text.strip() else []
        return "epoch" in header
    except (CheckpointError, OSError, UnicodeDecodeError, ValueError, IndexError):
        return False


def check_outputs(out: str | Path) -> None:
    """ValueError unless every file a run writes (model, resume file, logs) is absent or
    one esl-train wrote, and its folder can be written: checked before training, so a
    user's file is never replaced and a bad --out never costs a training run."""
    paths = run_paths(out)
    if paths["model"].is_dir():
        raise ValueError(f"{paths['model']}: is a directory; --out names the model file to write "
                         f"(e.g. {paths['model'] / 'model.pt'})")
    if paths["resume"].resolve() == paths["model"].resolve():
        raise ValueError("--out must name a file such as model.pt")
    for kind, path in paths.items():
        if path.is_dir() or (path.exists() and not _ours(kind, path)):
            raise ValueError(f"{path}: exists and is not an esl-train {kind} file; refusing to overwrite "
                             f"it (choose another --out)")
    folder = paths["model"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{paths['model'].name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{folder}: cannot write the model there ({exc.strerror or exc})") from None


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for an epoch: exponential or cosine decay from lr to lr_final."""
    final = cfg.lr if cfg.lr_final is None else cfg.lr_final
    frac = epoch / max(1, cfg.epochs - 1)
    if cfg.lr_schedule == "exp":
        return cfg.lr * (final / cfg.lr) ** frac
    if cfg.lr_schedule == "cosine":
        return final + (cfg.lr - final) * 0.5 * (1 + math.cos(math.pi * frac))
    if cfg.lr_schedule == "const":
        return cfg.lr
    raise ValueError(f"unknown lr schedule {cfg.lr_schedule!r} (const, exp, cosine)")


def make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam, sgd)")


def train_step(model: SNNModel, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               clip_grad_norm: float | None = None, *, forward: Callable[[torch.Tensor], torch.Tensor] | None
               = None, amp: bool = False, ternary: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step (forward, loss, backward, clipping, update); returns the
    output and the loss. The loop and the benchmarks time this same step. ``forward`` is
    the model as called (its DistributedDataParallel wrapper in a distributed run);
    ``ternary`` runs forward and backward on ternary weights and updates the latent ones."""
    with ternary_weights(model, ternary):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            out = (forward or model)(x)
            loss = model.loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
    if clip_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    opt.step()
    return out, loss


def evaluate(model: SNNModel, split: Split, batch_size: int = 500, ctx: Context | None = None,
             amp: bool = False, ternary: bool = False) -> tuple[float, float]:
    """``_evaluate`` with the model's weights ternary when ``ternary``."""
    with ternary_weights(model, ternary):
        return _evaluate(model, split, batch_size, ctx, amp)


@torch.no_grad()
def _evaluate(model: SNNModel, split: Split, batch_size: int = 500, ctx: Context | None = None,
              amp: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy of a model on a split (eval mode), on the model's device; in
    a distributed run each rank takes every N-th sample and the sums are all-reduced."""
    ctx = ctx or Context()
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    xs, ys = split.x[ctx.rank::ctx.world], split.y[ctx.rank::ctx.world]
    loss_sum, correct = 0.0, 0
    for i in range(0, len(ys), batch_size):
        x, y = xs[i : i + batch_size].to(dev), ys[i : i + batch_size].to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
            loss_sum += float(model.loss(out, y)) * len(y)
        correct += int((model.predict(out) == y).sum())
    model.train(was_training)
    loss_sum, correct_f, seen = all_sum(ctx, [loss_sum, float(correct), float(len(ys))])
    n = max(1.0, seen)
    return loss_sum / n, correct_f / n


def _write_logs(rows: list[dict[str, Any]], paths: dict[str, Path]) -> None:
    epoch_rows = [r for r in rows if r.get("kind", "epoch") == "epoch"]
    keys: list[str] = []
    for r in epoch_rows:
        keys += [k for k in r if k not in keys]
    for key, text in (
        ("json", json.dumps(rows, indent=1)),
        ("csv", _csv_text(epoch_rows, keys)),
    ):
        fd, tmp = tempfile.mkstemp(dir=paths[key].parent, prefix=f".{paths[key].name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, paths[key])


def _csv_text(rows: list[dict[str, Any]], keys: list[str]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _config_key(cfg: TrainConfig, arch: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resume to continue the same run."""
    key = asdict(cfg)
    for k in ("out", "save_every", "eval_batch_size", "extra_meta"):
        key.pop(k)
    return {"config": key, "arch": arch}


def train(
    arch: dict[str, Any],
    data: Splits,
    cfg: TrainConfig,
    *,
    sparsifier_factory: Callable[[SNNModel, torch.optim.Optimizer], Sparsifier] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_steps: int | None = None,
    ctx: Context | None = None,
) -> TrainResult:
    """Train, checkpointing for resume; returns the best-validation checkpoint.

    ``ctx`` places the run on a device and, under torchrun, across processes
    (:mod:`esl_train.distributed`). ``stop_after_steps`` raises Interrupted after that
    many steps of this call (tests use it to simulate a kill at an exact point).
    """
    ctx = ctx or Context()
    dev = ctx.device
    paths = run_paths(cfg.out)
    check_outputs(cfg.out)
    if ctx.distributed and cfg.batch_size % ctx.world:
        raise ValueError(f"--batch-size {cfg.batch_size} must be a multiple of the {ctx.world} processes "
                         f"(it is the global batch)")
    local_batch = cfg.batch_size // ctx.world
    if cfg.weights not in WEIGHTS:
        raise ValueError(f"unknown weights {cfg.weights!r}; choose {' or '.join(WEIGHTS)}")
    ternary = cfg.weights == "ternary"
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed alone
    model = build_model(arch).to(dev)
    opt = make_optimizer(cfg, model.parameters())
    sparsifier = sparsifier_factory(model, opt) if sparsifier_factory else None
    if sparsifier is not None:
        model.init_for_masks(sparsifier.masks)
    key = _config_key(cfg, model.arch)
    if sparsifier is not None:  # other ESL settings would not continue the same mask trajectory
        key["sparsifier"] = sparsifier.describe()
    if ctx.distributed:  # each rank's shard and random state belong to this many processes
        key["processes"] = ctx.world
        if sparsifier is not None:  # the same initial topology everywhere, whatever the seeds did
            sync_sparsifier(ctx, sparsifier, opt)
    n = len(data.train.y)
    # a rank's shard holds ceil(n / world) samples (the sampler pads); one process: all n
    steps_per_epoch = math.ceil(math.ceil(n / ctx.world) / local_batch)
    state: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val": -1.0,
                             "best_state": None, "best_epoch": -1, "log": [], "done": False}
    if resume and paths["resume"].exists():
        saved = safe_torch_load(paths["resume"], "resume file")
        try:  # every field, before the model, optimizer or sparsifier is touched
            check_resume(saved, key, model, opt, sparsifier, cfg.epochs, steps_per_epoch, ctx.world)
        except ResumeError as exc:
            raise CheckpointError(f"{paths['resume']}: {exc}") from None
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if sparsifier is not None:
            sparsifier.load_state_dict(saved["sparsifier"])
        torch.set_rng_state(saved["rng_ranks"][ctx.rank] if ctx.distributed else saved["rng"])
        if dev.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"][ctx.rank], dev)
        state = saved["state"]
        if not ctx.main and "epoch_sums" in state:  # the file holds the sums over all ranks
            state["epoch_sums"] = {"loss": 0.0, "correct": 0, "seen": 0}
    elif resume:
        print(f"no resume file at {paths['resume']}; starting from scratch")

    def save_resume() -> None:
        """A collective in a distributed run: every rank's random state goes into rank 0's file."""
        rngs = gather(ctx, torch.get_rng_state())
        cuda_rngs = gather(ctx, torch.cuda.get_rng_state(dev)) if dev.type == "cuda" else None
        if ctx.distributed and "epoch_sums" in state:
            loss, correct, seen = all_sum(ctx, [float(state["epoch_sums"][k]) for k in SUMS])
            file_state = {**state, "epoch_sums": {"loss": loss, "correct": int(correct), "seen": int(seen)}}
        else:
            file_state = state
        if ctx.main:
            atomic_save(
                {
                    "key": key,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "sparsifier": sparsifier.state_dict() if sparsifier else None,
                    "rng": rngs[0],
                    **({"rng_ranks": rngs} if ctx.distributed else {}),
                    **({"cuda_rng": cuda_rngs} if cuda_rngs is not None else {}),
                    "state": file_state,
                },
                paths["resume"],
            )

    forward: Callable[[torch.Tensor], torch.Tensor] = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    progress = progress and ctx.main
    steps_this_call = 0
    model.train()
    while state["epoch"] < cfg.epochs and not state["done"]:
        epoch = state["epoch"]
        lr = lr_at(cfg, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        order = shard(ctx, n, cfg.seed, epoch) if ctx.distributed else \
            torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        t0 = time.perf_counter()
        bar = tqdm(total=steps_per_epoch, initial=state["step_in_epoch"], disable=not progress,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch")
        sums = state.setdefault("epoch_sums", {"loss": 0.0, "correct": 0, "seen": 0})
        while state["step_in_epoch"] < steps_per_epoch:
            i = state["step_in_epoch"] * local_batch
            idx = order[i : i + local_batch]
            x, y = data.train.x[idx].to(dev, non_blocking=True), data.train.y[idx].to(dev, non_blocking=True)
            out, loss = train_step(model, opt, x, y, cfg.clip_grad_norm, forward=forward, amp=cfg.amp,
                                   ternary=ternary)
            if sparsifier is not None:
                t_update = time.perf_counter()
                update = sparsifier.step()
                if update:
                    update["update_seconds"] = round(time.perf_counter() - t_update, 6)
                    if ctx.distributed:
                        update["sync_seconds"] = sync_sparsifier(ctx, sparsifier, opt)
                    state["log"].append({"kind": "mask_update", "step": state["global_step"],
                                         **update})
            loss_value = loss.item()
            sums["loss"] += loss_value * len(y)
            sums["correct"] += int((model.predict(out.detach()) == y).sum())
            sums["seen"] += len(y)
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            steps_this_call += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if state["step_in_epoch"] % cfg.save_every == 0:
                save_resume()
            if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                bar.close()
                save_resume()
                raise Interrupted(f"stopped after {steps_this_call} steps")
        bar.close()
        train_seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(model, data.val, cfg.eval_batch_size, ctx, cfg.amp, ternary)
        loss_sum, correct, seen = all_sum(ctx, [float(sums[k]) for k in SUMS])
        row = {
            "kind": "epoch", "epoch": epoch + 1, "step": state["global_step"], "lr": lr,
            "train_loss": loss_sum / max(1, seen),
            "train_acc": correct / max(1, seen),
            "val_loss": val_loss, "val_acc": val_acc,
            "seconds": round(time.perf_counter() - t0, 3), "train_seconds": round(train_seconds, 3),
        }
        if sparsifier is not None:
            row.update({f"density/{k}": float(m.float().mean()) for k, m in sparsifier.masks.items()})
        state["log"].append(row)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                f"train {row['train_acc']:.4f}  val {val_acc:.4f}  lr {lr:.2e}"
            )
        if val_acc > state["best_val"]:
            state["best_val"], state["best_epoch"] = val_acc, epoch + 1
            state["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if sparsifier is not None:
                state["best_masks"] = {k: m.clone() for k, m in sparsifier.masks.items()}
                state["best_explored"] = {k: m.clone() for k, m in sparsifier.explored.items()}
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        state.pop("epoch_sums")
        save_resume()
        if ctx.main:
            _write_logs(state["log"], paths)

    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    _, test_acc = evaluate(model, data.test, cfg.eval_batch_size, ctx, cfg.amp, ternary)
    meta = {
        "dataset": data.name,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "best_epoch": state["best_epoch"],
        "val_acc": state["best_val"],
        "test_acc": test_acc,
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("out", "extra_meta")},
        "esl": sparsifier.describe() if sparsifier else None,
        **cfg.extra_meta,
    }
    with ternary_weights(model, ternary):  # the file holds the weights the model computed with
        ckpt = make_checkpoint(
            model,
            masks=state.get("best_masks") if sparsifier else None,
            explored=state.get("best_explored") if sparsifier else None,
            meta=meta,
        )
    if ctx.main:
        save_checkpoint(ckpt, paths["model"])
    state["done"] = True
    save_resume()
    if ctx.main:
        _write_logs(state["log"], paths)
    barrier(ctx)  # no rank returns before the model is on disk
    return TrainResult(ckpt, state["log"], test_acc, state["best_val"])
