"""model.pt: the one file every esl-snn tool reads.

A plain dict that ``torch.load(path, weights_only=True)`` can read, so a file
from elsewhere cannot run code when loaded:

    format      "esl-snn/model"
    version     FORMAT_VERSION
    arch        the architecture as plain data (``build_model(arch)`` rebuilds it)
    state_dict  parameters and buffers; masked weights are exactly zero
    masks       {weight name: bool tensor}, all-true for dense layers
    explored    {weight name: bool tensor}, connections ever active during training
    neuron      neuron model and parameters (plain data)
    encoding    input encoding and time steps (plain data)
    meta        dataset, accuracies, seed, ESL hyperparameters, per-layer density,
                package version, ...

This module is the single loader; it imports no training code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FORMAT = "esl-snn/model"
FORMAT_VERSION = 1
REQUIRED = ("arch", "state_dict", "masks", "explored", "neuron", "encoding", "meta")


class CheckpointError(Exception):
    """A model file that cannot be used; the message is one line naming the file."""


@dataclass
class Checkpoint:
    arch: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    explored: dict[str, torch.Tensor]
    neuron: dict[str, Any]
    encoding: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, **self.__dict__}

    def density(self) -> dict[str, float]:
        """Fraction of active connections per masked weight."""
        return {k: float(m.float().mean()) for k, m in self.masks.items()}

    def connections(self) -> int:
        """Number of active (non-masked) connections in the whole network."""
        return int(sum(int(m.sum()) for m in self.masks.values()))


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("esl-snn")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "unknown"


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename over it, so a
    crash never leaves a half-written file where a good one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_torch_load(path: str | Path, what: str = "file") -> Any:
    """torch.load with weights_only=True, turning every failure into one line."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such {what}")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a {what}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a torch {what} (truncated, corrupted or another format)")
    try:  # torch does not check the members' CRCs: flipped bytes in a tensor would load silently
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: corrupted {what} ({exc})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupted {what} (checksum mismatch in {bad})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: holds pickled Python objects, refused (esl-snn files hold only "
                "tensors and plain data)"
            ) from None
        raise CheckpointError(f"{path}: unreadable {what} ({first})") from None
    except Exception as exc:  # zip member missing, CRC error, truncated storage...
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"{path}: corrupted {what} ({msg[:160]})") from None


def _check_tensor_dict(path: Path, key: str, value: Any, dtype: torch.dtype | None) -> None:
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{path}: '{key}' must be a dict of tensors")
    for name, t in value.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{path}: '{key}[{name}]' is not a tensor")
        if dtype is not None and t.dtype != dtype:
            raise CheckpointError(f"{path}: '{key}[{name}]' has dtype {t.dtype}, expected {dtype}")


def validate(raw: Any, path: str | Path = "<memory>") -> Checkpoint:
    """Check a loaded dict against the format and return it as a Checkpoint."""
    path = Path(path)
    if not isinstance(raw, Mapping) or raw.get("format") != FORMAT:
        kind = type(raw).__name__
        keys = ", ".join(sorted(map(str, raw))[:5]) if isinstance(raw, Mapping) else kind
        raise CheckpointError(f"{path}: not an esl-snn model file (no '{FORMAT}' tag; found {keys})")
    version = raw.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this esl-snn reads ({FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: missing field(s) {', '.join(missing)}")
    for key in ("arch", "neuron", "encoding", "meta"):
        if not isinstance(raw[key], Mapping):
            raise CheckpointError(f"{path}: '{key}' must be a dict")
    _check_tensor_dict(path, "state_dict", raw["state_dict"], None)
    _check_tensor_dict(path, "masks", raw["masks"], torch.bool)
    _check_tensor_dict(path, "explored", raw["explored"], torch.bool)
    sd = raw["state_dict"]
    for name, t in sd.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: '{name}' has NaN or infinite values")
    for name, mask in raw["masks"].items():
        if name not in sd:
            raise CheckpointError(f"{path}: mask for '{name}' but no such weight")
        if tuple(mask.shape) != tuple(sd[name].shape):
            raise CheckpointError(
                f"{path}: mask '{name}' has shape {tuple(mask.shape)}, weight has "
                f"{tuple(sd[name].shape)}"
            )
        if bool((sd[name][~mask] != 0).any()):
            raise CheckpointError(f"{path}: weight '{name}' is non-zero where its mask is off")
        explored = raw["explored"].get(name)
        if explored is not None and tuple(explored.shape) != tuple(mask.shape):
            raise CheckpointError(f"{path}: explored mask '{name}' does not fit its weight")
    return Checkpoint(**{k: dict(raw[k]) for k in REQUIRED})


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate model.pt (no model is built)."""
    return validate(safe_torch_load(path, "model file"), path)


def build_from_checkpoint(ckpt: Checkpoint, path: str | Path = "<memory>") -> torch.nn.Module:
    """Rebuild the network of a checkpoint, with its weights, in eval mode."""
    from esl_train.models import ArchError, build_model

    try:
        model = build_model(ckpt.arch)
    except ArchError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ckpt.state_dict))
    extra = sorted(set(ckpt.state_dict) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: state_dict does not fit {ckpt.arch.get('name')} "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, t in ckpt.state_dict.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{path}: '{name}' has shape {tuple(t.shape)}, the architecture needs "
                f"{tuple(expected[name].shape)}"
            )
    unknown = sorted(set(ckpt.masks) - set(model.connection_weights()))
    if unknown:
        raise CheckpointError(f"{path}: masks for non-connection tensors {unknown[:3]}")
    model.load_state_dict(ckpt.state_dict)
    return model.eval()


def load_model(path: str | Path) -> tuple[torch.nn.Module, Checkpoint]:
    """The one loader every tool uses: validated checkpoint and the rebuilt model."""
    ckpt = load_checkpoint(path)
    return build_from_checkpoint(ckpt, path), ckpt


def make_checkpoint(
    model: torch.nn.Module,
    masks: Mapping[str, torch.Tensor] | None = None,
    explored: Mapping[str, torch.Tensor] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Checkpoint:
    """Checkpoint of a model; weights are multiplied by their masks so that masked
    connections are exactly zero in the file. Missing masks mean dense layers."""
    weights = model.connection_weights()
    masks = {k: (masks or {}).get(k, torch.ones_like(w, dtype=torch.bool)) for k, w in weights.items()}
    masks = {k: m.detach().to("cpu", torch.bool).clone() for k, m in masks.items()}
    explored = {k: (explored or {}).get(k, masks[k]).detach().to("cpu", torch.bool).clone()
                for k in masks}
    sd = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    for k, m in masks.items():
        sd[k] = sd[k] * m
    info = dict(meta or {})
    info.setdefault("package_version", package_version())
    info["density"] = {k: float(m.float().mean()) for k, m in masks.items()}
    info["connections"] = int(sum(int(m.sum()) for m in masks.values()))
    return Checkpoint(
        arch=dict(model.arch),
        state_dict=sd,
        masks=masks,
        explored=explored,
        neuron=model.neuron(),
        encoding=model.encoding(),
        meta=info,
    )


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> None:
    atomic_save(ckpt.to_dict(), path)
