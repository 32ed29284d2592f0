"""One training run as plain data, cached by the hash of its configuration.

A ``Run`` holds everything that decides its result: architecture, data, budget and ESL
settings. ``Run.key()`` hashes them (with ``CACHE_VERSION``); the run lives in
``CACHE/<name>-<key>/`` (model.pt, logs, resume file, config.json). A finished run is
reused as it is; an interrupted one resumes from its resume file (esl_train's own), so
rerunning the same command continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CACHE_VERSION = 1  # bump when a change to training would change a cached result


@dataclass(frozen=True)
class Run:
    """A training run: ``esl`` None is dense; ``esl`` holds ESLConfig fields."""

    name: str
    arch: dict[str, Any]
    data: str = "mnist-embedded"
    data_dir: str | None = None
    limit: int | None = None
    frames: int = 10
    epochs: int = 3
    batch_size: int = 100
    lr: float = 1e-3
    lr_final: float | None = None
    lr_schedule: str = "const"
    optimizer: str = "adam"
    clip_grad_norm: float | None = None
    seed: int = 0
    esl: dict[str, Any] | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # what the figure needs: eps, rule, density...

    def key(self) -> str:
        payload = {k: v for k, v in asdict(self).items() if k not in ("name", "tags", "data_dir")}
        payload["version"] = CACHE_VERSION
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def folder(self, cache: Path) -> Path:
        return cache / f"{self.name}-{self.key()}"


@dataclass
class Result:
    """What a finished run gives the report, read back from its checkpoint and log."""

    run: Run
    path: Path
    test_acc: float
    val_acc: float
    connections: dict[str, int]  # active connections per connection layer
    density: dict[str, float]
    numel: dict[str, int]  # possible connections per connection layer
    log: list[dict[str, Any]]
    seconds: float
    init_density: dict[str, float] = field(default_factory=dict)  # ESL: each sparse layer's at step 0


def is_done(run: Run, cache: Path) -> bool:
    folder = run.folder(cache)
    return (folder / "model.pt").exists() and (folder / "config.json").exists()


def train_run(run: Run, cache: Path, progress: bool = False) -> Path:
    """Train ``run`` into its cache folder (or reuse it); returns its model.pt."""

    from esl_train.data import load_data
    from esl_train.esl import ESLConfig, esl_factory
    from esl_train.train import TrainConfig, run_paths, train

    folder = run.folder(cache)
    model = folder / "model.pt"
    if is_done(run, cache):
        return model
    folder.mkdir(parents=True, exist_ok=True)
    data = load_data(run.data, run.data_dir, frames=run.frames, limit=run.limit)
    cfg = TrainConfig(out=str(model), epochs=run.epochs, batch_size=run.batch_size, lr=run.lr,
                      lr_final=run.lr_final, lr_schedule=run.lr_schedule, optimizer=run.optimizer,
                      clip_grad_norm=run.clip_grad_norm, seed=run.seed, dataset=run.data,
                      save_every=max(1, math.ceil(len(data.train.y) / run.batch_size)))
    factory = None
    if run.esl is not None:
        factory = esl_factory(ESLConfig(**{**run.esl, "seed": run.seed, "verbose": False}))
    train(run.arch, data, cfg, sparsifier_factory=factory, resume=run_paths(model)["resume"].exists(),
          progress=progress)
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps({"name": run.name, "key": run.key(), **asdict(run)}, indent=1, default=str))
    tmp.replace(folder / "config.json")  # written last: its presence marks the run finished
    return model


def read_result(run: Run, cache: Path) -> Result:
    """The finished run's numbers, from its own files (the report shows nothing else)."""
    from esl_train.checkpoint import load_checkpoint

    folder = run.folder(cache)
    ckpt = load_checkpoint(folder / "model.pt")
    log = json.loads((folder / "model.log.json").read_text())
    seconds = sum(float(r.get("seconds", 0.0)) for r in log if r.get("kind") == "epoch")
    return Result(run, folder / "model.pt", float(ckpt.meta["test_acc"]), float(ckpt.meta["val_acc"]),
                  {k: int(m.sum()) for k, m in ckpt.masks.items()},
                  {k: float(m.float().mean()) for k, m in ckpt.masks.items()},
                  {k: int(m.numel()) for k, m in ckpt.masks.items()}, log, seconds,
                  dict((ckpt.meta.get("esl") or {}).get("init_density") or {}))
