"""CUDA batch normalisation kernels, the interface and semantics of ``numlin.kernels.cpu.batchnorm``:
``forward_train(x3, w, b, eps) -> (y3, mean, var, invstd)``,
``eval_stats(running_mean, running_var, eps) -> (mean, invstd)``,
``forward_eval(x3, w, b, mean, invstd) -> y3``,
``backward(g3, x3, mean, invstd, w, training, need_dx) -> (dx3 or None, dw, db)``,
``update_running(running_mean, running_var, mean, var, momentum, count)`` (in place).

``x3 (N, C, L)`` (any strides; NCHW with ``L = H * W``); ``w``, ``b`` ``(C,)`` of the data dtype;
the per-channel statistics are float64 ``(C,)`` device arrays. The statistics kernels run one
block of :data:`THREADS` threads per channel, each thread summing a strided share of the
channel in float64, then a shared-memory tree (:func:`reductions.block_sum`); the same block
then writes the channel's output. The running statistics may be float32 or float64.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, int64

from ._registry import kernel
from .elementwise import launch_1d
from .reductions import block_sum

__all__ = ["forward_train", "eval_stats", "forward_eval", "backward", "update_running"]

THREADS = 256  # a power of two (block_sum's tree)
_F = (float32, float64)


@kernel(*[(t[:, :, :], t[:], t[:], t[:, :, :], float64[:], float64[:], float64[:], float64) for t in _F])
def bn_forward_train(x, w, b, y, mean, var, invstd, eps):
    """Block ``c``: mean, biased variance (two passes), ``y = (x - mean) invstd w + b``."""
    c = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    buf = cuda.shared.array(THREADS, float64)
    N, L = x.shape[0], x.shape[2]
    M = N * L
    s = 0.0
    for k in range(tid, M, cuda.blockDim.x):
        n = k // L
        s += float64(x[n, c, k - n * L])
    buf[tid] = s
    m = block_sum(buf) / M
    cuda.syncthreads()  # every thread has read buf[0] before it is written again
    q = 0.0
    for k in range(tid, M, cuda.blockDim.x):
        n = k // L
        d = float64(x[n, c, k - n * L]) - m
        q += d * d
    buf[tid] = q
    v = block_sum(buf) / M
    inv = 1.0 / math.sqrt(v + eps)
    if tid == 0:
        mean[c] = m
        var[c] = v
        invstd[c] = inv
    sc = inv * float64(w[c])
    sh = float64(b[c])
    for k in range(tid, M, cuda.blockDim.x):
        n = k // L
        i = k - n * L
        y[n, c, i] = (float64(x[n, c, i]) - m) * sc + sh


@kernel(*[(r[:], r[:], float64, float64[:], float64[:]) for r in _F])
def bn_eval_stats(running_mean, running_var, eps, mean, invstd):
    """One thread per channel: the running statistics as float64 ``mean`` and ``invstd``."""
    c = cuda.grid(1)
    if c < mean.shape[0]:
        mean[c] = float64(running_mean[c])
        invstd[c] = 1.0 / math.sqrt(float64(running_var[c]) + eps)


@kernel(*[(t[:, :, :], t[:], t[:], float64[:], float64[:], t[:, :, :]) for t in _F])
def bn_forward_eval(x, w, b, mean, invstd, y):
    """One thread per element: ``y = (x - mean) invstd w + b`` with fixed statistics."""
    N, C, L = x.shape
    for idx in range(cuda.grid(1), N * C * L, cuda.gridsize(1)):
        i = idx % L
        c = (idx // L) % C
        n = idx // (L * C)
        y[n, c, i] = (float64(x[n, c, i]) - mean[c]) * (invstd[c] * float64(w[c])) + float64(b[c])


@kernel(*[(t[:, :, :], t[:, :, :], float64[:], float64[:], t[:], t[:, :, :], t[:], t[:], int64, int64)
          for t in _F])
def bn_backward(g, x, mean, invstd, w, dx, dw, db, training, need_dx):
    """Block ``c``: ``db = Σ g``, ``dw = Σ g x̂``; then ``dx = w invstd (g - mean(g) - x̂ mean(g x̂))``
    in training, ``dx = w invstd g`` with fixed statistics (``training == 0``)."""
    c = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    buf = cuda.shared.array(THREADS, float64)
    N, L = x.shape[0], x.shape[2]
    M = N * L
    m = mean[c]
    inv = invstd[c]
    sg = 0.0
    sgx = 0.0
    for k in range(tid, M, cuda.blockDim.x):
        n = k // L
        i = k - n * L
        gv = float64(g[n, c, i])
        sg += gv
        sgx += gv * (float64(x[n, c, i]) - m)
    buf[tid] = sg
    tg = block_sum(buf)
    cuda.syncthreads()
    buf[tid] = sgx
    tgx = block_sum(buf) * inv  # Σ g x̂
    if tid == 0:
        db[c] = tg
        dw[c] = tgx
    if need_dx == 0:
        return
    a = float64(w[c]) * inv
    if training != 0:
        bb = -a * inv * tgx / M
        k0 = -a * tg / M
    else:
        bb = 0.0
        k0 = 0.0
    for k in range(tid, M, cuda.blockDim.x):
        n = k // L
        i = k - n * L
        dx[n, c, i] = a * float64(g[n, c, i]) + bb * (float64(x[n, c, i]) - m) + k0


@kernel(*[(r[:], r[:], float64[:], float64[:], float64, float64) for r in _F])
def bn_update_running(running_mean, running_var, mean, var, momentum, unbias):
    """One thread per channel: ``running = (1 - momentum) running + momentum batch`` (unbiased var)."""
    c = cuda.grid(1)
    if c < mean.shape[0]:
        running_mean[c] = (1.0 - momentum) * float64(running_mean[c]) + momentum * mean[c]
        running_var[c] = (1.0 - momentum) * float64(running_var[c]) + momentum * (var[c] * unbias)


def forward_train(x3, w, b, eps: float):
    """Training-mode forward of device array ``x3``: ``(y3, mean, var, invstd)`` (float64 statistics)."""
    C = x3.shape[1]
    y = cuda.device_array(tuple(x3.shape), x3.dtype)
    mean, var, invstd = (cuda.device_array(C, np.float64) for _ in range(3))
    if C:
        bn_forward_train[C, THREADS](x3, w, b, y, mean, var, invstd, float(eps))
    return y, mean, var, invstd


def eval_stats(running_mean, running_var, eps: float):
    """``(mean, invstd)`` (float64 device arrays) of the running statistics."""
    C = running_mean.shape[0]
    mean, invstd = cuda.device_array(C, np.float64), cuda.device_array(C, np.float64)
    if C:
        bn_eval_stats[launch_1d(C, threads=64)](running_mean, running_var, float(eps), mean, invstd)
    return mean, invstd


def forward_eval(x3, w, b, mean, invstd):
    """Eval-mode forward with fixed statistics: ``(x - mean) invstd w + b`` per channel."""
    y = cuda.device_array(tuple(x3.shape), x3.dtype)
    total = int(np.prod(x3.shape, dtype=np.int64))
    if total:
        bn_forward_eval[launch_1d(total)](x3, w, b, mean, invstd, y)
    return y


def backward(g3, x3, mean, invstd, w, training: bool, need_dx: bool = True):
    """``(dx3 or None, dw, db)`` (device arrays of the data dtype)."""
    C = x3.shape[1]
    dx = cuda.device_array(tuple(x3.shape) if need_dx else (0, C, 0), x3.dtype)
    dw, db = cuda.device_array(C, x3.dtype), cuda.device_array(C, x3.dtype)
    if C:
        bn_backward[C, THREADS](g3, x3, mean, invstd, w, dx, dw, db, int(bool(training)), int(bool(need_dx)))
    return (dx if need_dx else None), dw, db


def update_running(running_mean, running_var, mean, var, momentum: float, count: int) -> None:
    """``running = (1 - momentum) running + momentum batch`` in place, unbiased batch variance."""
    C = running_mean.shape[0]
    if C:
        bn_update_running[launch_1d(C, threads=64)](running_mean, running_var, mean, var, float(momentum),
                                                    count / (count - 1))
