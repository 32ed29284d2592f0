"""Compiled CPU kernels for LIF inference and the 2×2 pool of spikes: the same bits as the
tensor code in ``lif.py`` and ``conv.py``, in one pass over memory instead of four or five.

- ``lif_infer``: ``LIF._infer``'s per-step ``u = u·τ`` (rounded), ``u = u + I`` (rounded),
  ``s = u > v_th``, ``u = u·(u <= v_th)``, with ``τ`` and ``v_th`` in the tensor's dtype as
  torch takes a Python scalar; no contraction into fused multiply-adds (numba's default).
  Neurons go in blocks of 512 whose state stays in L1 cache over the T steps.
- ``pool2``: ``pool2_spikes`` on 0/1 spikes, whose four-term sums are small integers, exact
  in any order.

Both take CPU float32/float64 contiguous tensors and return ``None`` otherwise (the caller
runs its tensor code). They run in the calling thread: shared with a second Python thread
they were slower here, next to torch's OpenMP workers that keep spinning after each op.
"""

from __future__ import annotations

import numpy as np
import torch

from esl_train.jit import compiled


def _plain(t: torch.Tensor) -> bool:
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()
            and not t.requires_grad)


@compiled
def _lif(cur, tau, v_th, out):
    """The currents ``cur`` ``[T, N]`` into the spikes ``out`` ``[T, N]``."""
    T, N = cur.shape
    one = tau[0] - tau[0] + 1
    zero = one - one
    block = 512
    u = np.empty(block, cur.dtype)
    for n0 in range(0, N, block):
        n = min(N, n0 + block) - n0
        u[:] = 0
        for t in range(T):
            c = cur[t, n0:n0 + n]
            s = out[t, n0:n0 + n]
            for j in range(n):
                v = u[j] * tau[0]
                v = v + c[j]
                s[j] = one if v > v_th[0] else zero
                u[j] = v * (one if v <= v_th[0] else zero)


def lif_infer(current: torch.Tensor, tau: float, v_th: float) -> torch.Tensor | None:
    """The spikes ``[T, ...]`` of LIF neurons driven by ``current`` ``[T, ...]`` (state from
    0), bit for bit ``LIF._infer``'s; ``None`` where the kernel does not apply."""
    if not _plain(current) or current.dim() < 2 or current.numel() == 0:
        return None
    kind = np.float32 if current.dtype == torch.float32 else np.float64
    cur = current.detach().reshape(current.shape[0], -1).numpy()
    out = np.empty_like(cur)
    t_, v_ = np.array([tau], kind), np.array([v_th], kind)
    _lif(cur, t_, v_, out)
    return torch.from_numpy(out).view(current.shape)


@compiled
def _pool2(x, quarter, out):
    """The planes ``x`` ``[P, H, W]`` into ``out`` ``[P, H // 2, W // 2]``."""
    P, h2, w2 = out.shape
    q = quarter[0]
    for p in range(P):
        for i in range(h2):
            a = x[p, 2 * i]
            b = x[p, 2 * i + 1]
            o = out[p, i]
            for j in range(w2):
                o[j] = (a[2 * j] + b[2 * j] + a[2 * j + 1] + b[2 * j + 1]) * q


def pool2(x: torch.Tensor) -> torch.Tensor | None:
    """``pool2_spikes(x)`` of 0/1 spikes ``[..., H, W]``; ``None`` where the kernel does not apply."""
    if not _plain(x) or x.dim() < 3 or x.numel() == 0:
        return None
    h, w = x.shape[-2], x.shape[-1]
    planes = x.detach().reshape(-1, h, w).numpy()
    out = np.empty((planes.shape[0], h // 2, w // 2), planes.dtype)
    q = np.array([0.25], planes.dtype)
    _pool2(planes, q, out)
    return torch.from_numpy(out).view(*x.shape[:-2], h // 2, w // 2)
