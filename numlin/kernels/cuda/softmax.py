"""CUDA log-softmax and fused softmax cross-entropy over the rows of a 2-D device array
``(rows, classes)``, the interface and semantics of ``numlin.kernels.cpu.softmax``:
``log_softmax(x2d)``, ``labels(host_int_array)``, ``cross_entropy(logits2d, labels) -> (loss,
prob)``, ``cross_entropy_backward(prob, labels, g)``.

One thread per row (the class axis is short next to the batch in the losses this serves); every
exponential is of ``x - max(row) <= 0``, so logits of any magnitude stay finite. Sums are
accumulated in float64, as on the CPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, int64

from ._registry import kernel
from .elementwise import launch_1d

__all__ = ["log_softmax", "labels", "cross_entropy", "cross_entropy_backward"]

_FLOATS = (float32, float64)


@kernel(*[(t[:, :], t[:, :]) for t in _FLOATS])
def log_softmax_rows(x, y):
    m, n = x.shape
    for i in range(cuda.grid(1), m, cuda.gridsize(1)):
        mx = x[i, 0]
        for j in range(1, n):
            mx = max(mx, x[i, j])
        s = 0.0
        for j in range(n):
            s += math.exp(x[i, j] - mx)
        lse = mx + math.log(s)
        for j in range(n):
            y[i, j] = x[i, j] - lse


@kernel(*[(t[:, :], int64[:], t[:], t[:, :]) for t in _FLOATS])
def cross_entropy_rows(x, labels, loss, prob):
    """``loss[i] = logsumexp(x[i]) - x[i, labels[i]]``; ``prob`` = softmax rows (for backward)."""
    m, n = x.shape
    for i in range(cuda.grid(1), m, cuda.gridsize(1)):
        mx = x[i, 0]
        for j in range(1, n):
            mx = max(mx, x[i, j])
        s = 0.0
        for j in range(n):
            e = math.exp(x[i, j] - mx)
            prob[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(n):
            prob[i, j] *= inv
        loss[i] = mx + math.log(s) - x[i, labels[i]]


@kernel(*[(t[:, :], int64[:], t[:], t[:, :]) for t in _FLOATS])
def cross_entropy_backward_rows(prob, labels, g, dx):
    """``dx[i] = g[i] * (prob[i] - onehot(labels[i]))``."""
    m, n = prob.shape
    for i in range(cuda.grid(1), m, cuda.gridsize(1)):
        gi = g[i]
        for j in range(n):
            dx[i, j] = gi * prob[i, j]
        dx[i, labels[i]] -= gi


def _rows_grid(m: int):
    return launch_1d(m, threads=128)


def log_softmax(x):
    """Row-wise ``x - logsumexp(x)`` of a 2-D device array (a new array)."""
    m, n = tuple(x.shape)
    y = cuda.device_array((m, n), x.dtype)
    if m and n:
        log_softmax_rows[_rows_grid(m)](x, y)
    return y


def labels(lab) -> object:
    """Integer class labels (a host array) as the int64 device array the kernels read."""
    return cuda.to_device(np.ascontiguousarray(np.asarray(lab), np.int64).reshape(np.shape(lab)))


def cross_entropy(x, labels):
    """Per-row cross-entropy of device logits ``x (rows, classes)`` against int64 device ``labels``
    (checked by the caller to lie in ``[0, classes)``); returns ``(loss, prob)``."""
    m, n = tuple(x.shape)
    loss = cuda.device_array(m, x.dtype)
    prob = cuda.device_array((m, n), x.dtype)
    if m:
        cross_entropy_rows[_rows_grid(m)](x, labels, loss, prob)
    return loss, prob


def cross_entropy_backward(prob, labels, g):
    """Gradient of ``sum(g * loss)`` with respect to the logits."""
    m, n = tuple(prob.shape)
    dx = cuda.device_array((m, n), prob.dtype)
    if m:
        cross_entropy_backward_rows[_rows_grid(m)](prob, labels, g, dx)
    return dx
