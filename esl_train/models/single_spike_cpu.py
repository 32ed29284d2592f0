"""Compiled CPU kernels for the single-spike layers: the same numbers as the tensor code.

The single-spike layers (``single_spike.py``) spend most of a training step not in their
one matrix product but in some twenty element-wise passes over ``[B, K, out]`` tensors
(prefix sums, the candidate ``z`` of every prefix, the causal tests, the first valid
prefix) and, for the sorted layer, in autograd's backward through all of them. These
kernels do the same arithmetic in one pass per sample and neuron, stopping at the first
causal prefix, and rebuild only the gradient terms that are not zero:

- a prefix sum is a float64 running sum rounded to the tensor's dtype at every step
  (what ``torch.cumsum`` does on the CPU);
- products, differences and quotients are single operations in the tensor's dtype, in
  the same order as the tensor expressions (no contraction into fused multiply-adds);
- where autograd's backward reduces (a sum over the batch or over the outputs, a
  scatter), the kernels hand torch the same tensor to reduce, so it sums in the same
  order.

So forward values and gradients are bit-for-bit those of the tensor code
(``tests/test_single_spike.py`` compares them), on float32 and float64 tensors on the
CPU; anything else takes the tensor code.
"""

from __future__ import annotations

import numpy as np
import torch

from esl_train.jit import compiled


def usable(*tensors: torch.Tensor) -> bool:
    """The kernels apply: CPU tensors of one float dtype (float32 or float64), no autocast."""
    dt = tensors[0].dtype
    return (dt in (torch.float32, torch.float64) and not torch.is_autocast_enabled("cpu")
            and all(t.device.type == "cpu" and t.dtype == dt for t in tensors))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _scalars(t: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """1 and +inf in ``t``'s dtype (numba types the literals by them)."""
    kind = np.float32 if t.dtype == torch.float32 else np.float64
    return np.ones(1, kind), np.full(1, np.inf, kind)


# -- the level layer (first layer, quantised input times) ---------------------------------

def level_forward(Wl: torch.Tensor, z_levels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """From the per-level weight sums ``Wl`` [B, L, out]: ``z_out`` (inf: silent), the
    first causal prefix [B, 1, out], whether it fires, its ``z`` and weight sum (the last
    prefix's where none is causal, as the tensor code's gather has them)."""
    one, inf = _scalars(Wl)
    z, w_sel, idx, fired = _level_forward(_np(Wl), _np(z_levels), one, inf)
    z_t, w_t = torch.from_numpy(z), torch.from_numpy(w_sel)
    fired_t = torch.from_numpy(fired)
    out = torch.where(fired_t, z_t, torch.full_like(z_t, float("inf")))
    return out, torch.from_numpy(idx).unsqueeze(1), fired_t, z_t, w_t


@compiled
def _level_forward(Wl, zl, one, inf):
    B, L, n_out = Wl.shape
    z = np.empty((B, n_out), Wl.dtype)
    w_sel = np.empty((B, n_out), Wl.dtype)
    idx = np.empty((B, n_out), np.int64)
    fired = np.zeros((B, n_out), np.bool_)
    r = np.empty(3, Wl.dtype)  # rounding to the dtype: store, read back
    for b in range(B):  # per neuron up to its causal prefix (faster than level by level)
        for o in range(n_out):
            wc = 0.0  # float64 running sums, as torch.cumsum keeps them
            ac = 0.0
            for k in range(L):
                w = Wl[b, k, o]
                wc += w
                r[2] = w * zl[k]
                ac += r[2]
                r[0] = wc
                r[1] = ac
                Wc, Ac = r[0], r[1]
                if Wc > one[0]:  # the candidate only where it can be causal (a division each)
                    c = Ac / (Wc - one[0])
                    hi = zl[k + 1] if k + 1 < L else inf[0]
                    if c >= zl[k] and c <= hi:
                        fired[b, o] = True
                        break
                elif k == L - 1:
                    c = Ac / one[0]
            z[b, o] = c  # none causal: the last prefix's, as the tensor code's gather has it
            w_sel[b, o] = Wc
            idx[b, o] = k
    return z, w_sel, idx, fired


def level_backward_g(grad_z: torch.Tensor, z_levels: torch.Tensor, idx: torch.Tensor, fired: torch.Tensor,
                     z: torch.Tensor, w_sel: torch.Tensor) -> torch.Tensor:
    """``G`` [B, L, out] of the level layer's backward: ``(z_l − z)·coef`` on the levels up
    to the causal prefix, times 0 beyond it, ``coef = grad/(Σw − 1)`` where the neuron
    fires and the gradient is finite, else 0."""
    one, _ = _scalars(grad_z)
    g, zl, i, f, zz, w = (_np(t) for t in (grad_z, z_levels, idx.squeeze(1), fired, z, w_sel))
    return torch.from_numpy(_level_g(g, zl, i, f, zz, w, one))


@compiled
def _level_g(g, zl, idx, fired, z, w_sel, one):
    B, n_out = g.shape
    L = zl.shape[0]
    G = np.empty((B, L, n_out), g.dtype)
    zero = one[0] - one[0]
    coef = np.empty(n_out, g.dtype)
    for b in range(B):
        for o in range(n_out):
            ok = fired[b, o] and np.isfinite(g[b, o])
            coef[o] = g[b, o] / (w_sel[b, o] - one[0]) if ok else zero
        for k in range(L):
            row = G[b, k]
            for o in range(n_out):
                row[o] = ((zl[k] - z[b, o]) * coef[o]) * (one[0] if k <= idx[b, o] else zero)
    return G


# -- the sorted layer (continuous input times) --------------------------------------------

class SortedLayer(torch.autograd.Function):
    """``single_spike.layer_sorted`` (same forward values, same gradients), for CPU float
    tensors. Saves the sort and, per sample and neuron, the causal prefix's index, its
    denominator ``Σw − 1`` and its ``Σ w·z``."""

    @staticmethod
    def forward(ctx, z_in, weight):
        zs, perm = torch.sort(z_in, dim=1)
        one, inf = _scalars(z_in)
        z, idx, fired, den, acc = _sorted_forward(_np(zs), _np(perm), _np(weight), one, inf)
        z_t, fired_t = torch.from_numpy(z), torch.from_numpy(fired)
        ctx.save_for_backward(zs, perm, weight, torch.from_numpy(idx), fired_t, torch.from_numpy(den),
                              torch.from_numpy(acc))
        return torch.where(fired_t, z_t, torch.full_like(z_t, float("inf")))

    @staticmethod
    def backward(ctx, grad_out):
        zs, perm, weight, idx, fired, den, acc = ctx.saved_tensors
        one, _ = _scalars(zs)
        g, zz, pp, w, i, f, d, a = (_np(t) for t in (grad_out, zs, perm, weight, idx, fired, den, acc))
        g_full, g_prod_w = _sorted_backward(g, zz, pp, w, i, f, d, a, one)
        grad_z = grad_w = None
        if ctx.needs_input_grad[0]:  # Σ over the outputs, the finite mask, the sort's scatter
            g_zs0 = torch.from_numpy(g_prod_w).sum(-1)
            g_zs = torch.where(torch.isfinite(zs), g_zs0, torch.zeros_like(g_zs0))
            grad_z = torch.zeros_like(zs).scatter_(1, perm, g_zs)
        if ctx.needs_input_grad[1]:  # Σ over the batch of the gather's scatter-add, transposed
            grad_w = torch.from_numpy(g_full).sum(0, keepdim=True).squeeze(0).t()
        return grad_z, grad_w


@compiled
def _sorted_forward(zs, perm, W, one, inf):
    B, K = zs.shape
    n_out = W.shape[0]
    z = np.empty((B, n_out), zs.dtype)
    idx = np.empty((B, n_out), np.int64)
    fired = np.zeros((B, n_out), np.bool_)
    den = np.empty((B, n_out), zs.dtype)
    acc = np.empty((B, n_out), zs.dtype)
    r = np.empty(3, zs.dtype)
    zero = one[0] - one[0]
    for b in range(B):
        for o in range(n_out):
            wc = 0.0
            ac = 0.0
            for k in range(K):
                fin = np.isfinite(zs[b, k])
                w = W[o, perm[b, k]] * (one[0] if fin else zero)
                wc += w
                r[2] = w * (zs[b, k] if fin else zero)
                ac += r[2]
                r[0] = wc
                r[1] = ac
                Wc, Ac = r[0], r[1]
                if Wc > one[0]:  # as above
                    d = Wc - one[0]
                    c = Ac / d
                    hi = zs[b, k + 1] if k + 1 < K else inf[0]
                    if c >= zs[b, k] and c <= hi:
                        fired[b, o] = True
                        break
                elif k == K - 1:
                    d = one[0]
                    c = Ac / d
            z[b, o] = c
            idx[b, o] = k
            den[b, o] = d
            acc[b, o] = Ac
    return z, idx, fired, den, acc


@compiled
def _sorted_backward(g_out, zs, perm, W, idx, fired, den, acc, one):
    """Autograd's backward of the tensor code, term by term: the output's gradient reaches
    the causal prefix's ``c = Σwz / d`` only; through the two prefix sums it becomes, on
    every earlier input, ``a = g/d`` (on ``w·z``) and ``v = −g·((Σwz/d)/d)`` (on ``w``),
    and 0 on later ones. Returns the gradient on the weights per sample ``[B, in, out]``
    (what the gather's backward scatter-adds into zeros; its sum over the batch is the
    weights' gradient) and the ``[B, K, out]`` terms whose sum over the outputs is the
    gradient on ``zs``."""
    B, K = zs.shape
    n_out = W.shape[0]
    g_full = np.empty((B, K, n_out), zs.dtype)  # by input index: the gather's scatter-add into zeros
    g_zw = np.empty((B, K, n_out), zs.dtype)
    zero = one[0] - one[0]
    ra = np.empty(n_out, zs.dtype)  # per neuron the two reversed-cumsum values (float64 sums of
    rv = np.empty(n_out, zs.dtype)  # one non-zero term: 0 + the term, rounded back)
    for b in range(B):
        for o in range(n_out):
            g = g_out[b, o] if fired[b, o] else zero
            d = den[b, o]
            ra[o] = 0.0 + g / d
            rv[o] = 0.0 + -g * ((acc[b, o] / d) / d)
        for k in range(K):  # inputs outer, neurons inner: contiguous rows
            fin = np.isfinite(zs[b, k])
            keep = one[0] if fin else zero
            zs0 = zs[b, k] if fin else zero
            j = perm[b, k]
            for o in range(n_out):
                a, v = (ra[o], rv[o]) if k <= idx[b, o] else (zero, zero)
                g_full[b, j, o] = zero + (v + a * zs0) * keep
                g_zw[b, k, o] = a * (W[o, j] * keep)
    return g_full, g_zw
