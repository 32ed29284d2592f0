"""Where training runs: one device, or several processes with torch.distributed.

Launch several processes with PyTorch's own launcher; every process runs the same
command, with the same flags as ``esl-train``::

    torchrun --nproc_per_node=2 -m esl_train --model mlp-lif --eps 60 --out runs/x/model.pt

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; when
``WORLD_SIZE > 1`` the process group starts with gloo on CPU and nccl on CUDA, and the
model is wrapped in ``DistributedDataParallel`` (gradients are averaged across processes).

- **Batches.** ``--batch-size`` stays the global batch: each of the N processes takes
  ``batch_size / N`` samples per step from its ``DistributedSampler`` shard (seeded with
  ``--seed``, reshuffled per epoch). The shards interleave the single-process order, so
  when N divides the batch a step sees exactly the single process's batch, and (gradients
  being averaged) the run follows the single-process run up to float rounding.
- **Masks.** Every process runs the sparsifier's update on the same (all-reduced)
  gradients, then rank 0's decision is broadcast: its masks, explored masks, generator
  state, the sparse weights and their per-element optimizer state. Decide on rank 0 and
  broadcast, rather than trust that N processes break ties and round alike, so the
  masks are identical on every rank by construction, not by luck; the weights each rank
  masks with them are then identical too, and masked weights stay exactly zero.
- **Files.** Rank 0 alone logs, shows progress and writes the model, the logs and the
  resume file (which holds every rank's random state, so a resumed run draws the same
  rate-coded inputs). Resuming needs the same number of processes; a model.pt does not
  care how it was trained and loads anywhere, on CPU.
- **Evaluation.** Validation and test splits are sharded across ranks and the sums
  all-reduced: every rank gets the same accuracy, hence the same best epoch.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


class DeviceError(ValueError):
    """A device that cannot be used here; one line."""


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA when present: the process's local GPU under torchrun), ``cpu``,
    ``cuda`` or ``cuda:N``; DeviceError if CUDA is asked for and absent."""
    spec = spec.strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m is None:
        raise DeviceError(f"--device {spec!r}: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: this machine has no CUDA device (or torch was built "
                          f"without CUDA); use --device cpu")
    index = int(m.group(1)) if m.group(1) is not None else local_rank % torch.cuda.device_count()
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA devices")
    return torch.device("cuda", index)


@dataclass
class Context:
    """The process's place in the run: rank, world size and device."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Context:
    """The context of this process, starting the process group when launched by torchrun."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DeviceError(f"environment variable {name}={value!r} is not an integer") from None


def _comm_device(ctx: Context) -> torch.device:
    return ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_(ctx: Context, tensor: torch.Tensor) -> None:
    """Overwrite ``tensor`` in place with rank 0's (bool tensors travel as bytes)."""
    buf = tensor.detach().to(_comm_device(ctx), torch.uint8 if tensor.dtype == torch.bool else tensor.dtype)
    dist.broadcast(buf, src=0)
    with torch.no_grad():
        tensor.copy_(buf.to(tensor.device, tensor.dtype))


def all_sum(ctx: Context, values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    if not ctx.distributed:
        return values
    buf = torch.tensor(values, dtype=torch.float64, device=_comm_device(ctx))
    dist.all_reduce(buf)
    return buf.tolist()


def gather(ctx: Context, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a collective: every rank must call it)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def sync_sparsifier(ctx: Context, sparsifier: Any, optimizer: torch.optim.Optimizer) -> float:
    """Make every rank hold rank 0's sparse topology after a mask update (see the module
    docstring); returns the seconds it took."""
    if not ctx.distributed:
        return 0.0
    t0 = time.perf_counter()
    for name, pools in list(sparsifier.pools.items()):  # core-aware input pools (fixed after the start)
        broadcast_(ctx, pools.members)
        broadcast_(ctx, pools.of_output)
        sparsifier._set_pools(name, pools)
    for name, p in sparsifier.params.items():
        broadcast_(ctx, sparsifier.masks[name])
        broadcast_(ctx, sparsifier.explored[name])
        broadcast_(ctx, p.data)
        for value in optimizer.state.get(p, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                broadcast_(ctx, value)
    gen = sparsifier.generator.get_state()
    broadcast_(ctx, gen)
    sparsifier.generator.set_state(gen)
    sparsifier.apply_masks()
    return time.perf_counter() - t0


def shard(ctx: Context, n: int, seed: int, epoch: int) -> torch.Tensor:
    """This rank's sample order for an epoch: torch's DistributedSampler over ``n`` samples
    (padded so every rank gets as many). Its permutation is the one a single process draws
    (``randperm`` seeded with ``seed·100003 + epoch``) and rank r takes every N-th sample
    from r, so the N local batches of a step together are the single process's batch."""
    from torch.utils.data import DistributedSampler

    sampler: DistributedSampler[int] = DistributedSampler(
        range(n), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed * 100_003)  # type: ignore[arg-type]
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)
