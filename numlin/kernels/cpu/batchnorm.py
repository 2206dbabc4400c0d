"""CPU batch normalisation kernels over ``x3 (N, C, L)`` C-contiguous (NCHW with ``L = H * W``):
channel ``c`` is ``N`` runs of ``L`` contiguous elements. One launch per phase, each part a run
of channels, so the per-channel sums never race and a channel's data stays in that core's cache
between the passes over it.

Per-channel statistics are float64 ``(C,)`` arrays whatever the data dtype (float32 sums are
accumulated in float64); the weight and bias are ``(C,)`` arrays of the data dtype.

The backend interface (same names in ``numlin.kernels.cuda.batchnorm``):
``forward_train(x3, w, b, eps) -> (y3, mean, var, invstd)``,
``eval_stats(running_mean, running_var, eps) -> (mean, invstd)``,
``forward_eval(x3, w, b, mean, invstd) -> y3``,
``backward(g3, x3, mean, invstd, w, training, need_dx) -> (dx3 or None, dw, db)``,
``update_running(running_mean, running_var, mean, var, momentum, count)`` (in place).
"""
from __future__ import annotations

import math

import numpy as np

from . import _pool
from ._jit import njit
from ._threads import launch, split

__all__ = ["forward_train", "eval_stats", "forward_eval", "backward", "update_running"]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _forward_train(part, nparts, x, w, b, y, mean, var, invstd, eps):
    """Per channel: the mean, then the biased variance as the mean of ``(x - mean)²`` (two
    passes, float64 sums: no cancellation), then ``y = (x - mean) * (invstd * w) + b`` in the
    data dtype (PyTorch's transform)."""
    N, C, L = x.shape
    M = N * L
    for c in range(C * part // nparts, C * (part + 1) // nparts):
        s = 0.0
        for n in range(N):
            for i in range(L):
                s += np.float64(x[n, c, i])
        m = s / M
        q = 0.0
        for n in range(N):
            for i in range(L):
                d = np.float64(x[n, c, i]) - m
                q += d * d
        v = q / M
        inv = 1.0 / math.sqrt(v + eps)
        mean[c] = m
        var[c] = v
        invstd[c] = inv
        mt = x.dtype.type(m)
        sc = x.dtype.type(inv * np.float64(w[c]))
        sh = b[c]
        for n in range(N):
            for i in range(L):
                y[n, c, i] = (x[n, c, i] - mt) * sc + sh


@njit(cache=True, nogil=True, fastmath={"contract"})
def _forward_eval(part, nparts, x, w, b, mean, invstd, y):
    """``y = x * scale + shift`` per channel, ``scale = invstd * w``, ``shift = b - mean * scale``
    (the running statistics' affine map, as PyTorch's eval mode)."""
    N, C, L = x.shape
    for c in range(C * part // nparts, C * (part + 1) // nparts):
        sc64 = invstd[c] * np.float64(w[c])
        sc = x.dtype.type(sc64)
        sh = x.dtype.type(np.float64(b[c]) - mean[c] * sc64)
        for n in range(N):
            for i in range(L):
                y[n, c, i] = x[n, c, i] * sc + sh


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _backward(part, nparts, g, x, mean, invstd, w, dx, dw, db, training, need_dx):
    """Per channel: ``db = Σ g``, ``dw = Σ g x̂`` (``x̂ = (x - mean) invstd``; float64 sums), then
    training: ``dx = w invstd (g - mean(g) - x̂ mean(g x̂))``, as ``A g + B (x - mean) + K``;
    eval (constant statistics): ``dx = w invstd g``."""
    N, C, L = x.shape
    M = N * L
    for c in range(C * part // nparts, C * (part + 1) // nparts):
        m = mean[c]
        sg = 0.0
        sgx = 0.0
        for n in range(N):
            for i in range(L):
                gv = np.float64(g[n, c, i])
                sg += gv
                sgx += gv * (np.float64(x[n, c, i]) - m)
        inv = invstd[c]
        dgx = sgx * inv  # Σ g x̂
        db[c] = sg
        dw[c] = dgx
        if not need_dx:
            continue
        a64 = np.float64(w[c]) * inv
        a = x.dtype.type(a64)
        if training:
            bb = x.dtype.type(-a64 * inv * dgx / M)
            k = x.dtype.type(-a64 * sg / M)
            mt = x.dtype.type(m)
            for n in range(N):
                for i in range(L):
                    dx[n, c, i] = a * g[n, c, i] + bb * (x[n, c, i] - mt) + k
        else:
            for n in range(N):
                for i in range(L):
                    dx[n, c, i] = a * g[n, c, i]


def _parts(x3: np.ndarray) -> int:
    return max(1, min(split(x3.size), x3.shape[1]))


def forward_train(x3: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float):
    """Training-mode forward: ``(y3, mean, var, invstd)`` (statistics float64, ``var`` biased)."""
    x3 = np.ascontiguousarray(x3)
    C = x3.shape[1]
    y = _pool.empty(x3.shape, x3.dtype)
    mean, var, invstd = np.empty(C), np.empty(C), np.empty(C)
    launch(_forward_train, _parts(x3), x3, np.ascontiguousarray(w, x3.dtype), np.ascontiguousarray(b, x3.dtype),
           y, mean, var, invstd, float(eps))
    return y, mean, var, invstd


def eval_stats(running_mean: np.ndarray, running_var: np.ndarray, eps: float):
    """``(mean, invstd)`` (float64 copies) of the running statistics."""
    mean = np.array(running_mean, np.float64)
    invstd = 1.0 / np.sqrt(np.asarray(running_var, np.float64) + float(eps))
    return mean, invstd


def forward_eval(x3: np.ndarray, w: np.ndarray, b: np.ndarray, mean: np.ndarray, invstd: np.ndarray) -> np.ndarray:
    """Eval-mode forward with fixed statistics: ``(x - mean) invstd w + b`` per channel."""
    x3 = np.ascontiguousarray(x3)
    y = _pool.empty(x3.shape, x3.dtype)
    launch(_forward_eval, _parts(x3), x3, np.ascontiguousarray(w, x3.dtype), np.ascontiguousarray(b, x3.dtype),
           mean, invstd, y)
    return y


def backward(g3: np.ndarray, x3: np.ndarray, mean: np.ndarray, invstd: np.ndarray, w: np.ndarray, training: bool,
             need_dx: bool = True):
    """``(dx3 or None, dw, db)``; ``dw``/``db`` in the data dtype."""
    x3 = np.ascontiguousarray(x3)
    g3 = np.ascontiguousarray(g3, x3.dtype)
    C = x3.shape[1]
    dx = _pool.empty(x3.shape, x3.dtype) if need_dx else np.empty((0, C, 0), x3.dtype)
    dw, db = np.empty(C), np.empty(C)
    launch(_backward, _parts(x3), g3, x3, mean, invstd, np.ascontiguousarray(w, x3.dtype), dx, dw, db,
           bool(training), bool(need_dx))
    return (dx if need_dx else None), dw.astype(x3.dtype), db.astype(x3.dtype)


def update_running(running_mean: np.ndarray, running_var: np.ndarray, mean: np.ndarray, var: np.ndarray,
                   momentum: float, count: int) -> None:
    """``running = (1 - momentum) running + momentum batch`` in place, with the unbiased batch
    variance ``var * count / (count - 1)``."""
    m = float(momentum)
    running_mean[...] = (1.0 - m) * running_mean + m * mean
    running_var[...] = (1.0 - m) * running_var + m * (var * (count / (count - 1)))
