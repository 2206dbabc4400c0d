"""CPU log-softmax and fused softmax cross-entropy over the rows of a C-contiguous 2-D array
``(rows, classes)``; every exponential is of ``x - max(row) <= 0``, so logits of any magnitude
stay finite.

The backend interface (same names in ``numlin.kernels.cuda.softmax``):
``log_softmax(x2d)``, ``labels(host_int_array)`` (the labels where the kernels read them),
``cross_entropy(logits2d, labels) -> (loss, prob)``, ``cross_entropy_backward(prob, labels, g)``.
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit

from ._threads import launch, split

__all__ = ["log_softmax", "labels", "cross_entropy", "cross_entropy_backward"]


@njit(cache=True, nogil=True)
def _log_softmax(part, nparts, x, y):
    m, n = x.shape
    for i in range((m) * part // nparts, (m) * (part + 1) // nparts):
        mx = x[i, 0]
        for j in range(1, n):
            mx = max(mx, x[i, j])
        s = 0.0
        for j in range(n):
            s += math.exp(x[i, j] - mx)
        lse = mx + math.log(s)
        for j in range(n):
            y[i, j] = x[i, j] - lse


@njit(cache=True, nogil=True)
def _cross_entropy(part, nparts, x, labels, loss, prob):
    """``loss[i] = logsumexp(x[i]) - x[i, labels[i]]``; ``prob`` = softmax rows (for backward)."""
    m, n = x.shape
    for i in range((m) * part // nparts, (m) * (part + 1) // nparts):
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


@njit(cache=True, nogil=True)
def _cross_entropy_backward(part, nparts, prob, labels, g, dx):
    """``dx[i] = g[i] * (prob[i] - onehot(labels[i]))``."""
    m, n = prob.shape
    for i in range((m) * part // nparts, (m) * (part + 1) // nparts):
        gi = g[i]
        for j in range(n):
            dx[i, j] = gi * prob[i, j]
        dx[i, labels[i]] -= gi


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise ``x - logsumexp(x)`` of a 2-D array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    launch(_log_softmax, split(x.size), x, y)
    return y


def labels(lab: np.ndarray) -> np.ndarray:
    """Integer class labels as the int64 C-contiguous array the kernels read."""
    return np.ascontiguousarray(lab, np.int64)


def cross_entropy(x: np.ndarray, labels: np.ndarray):
    """Per-row cross-entropy of logits ``x (rows, classes)`` against integer ``labels`` (checked
    by the caller to lie in ``[0, classes)``); returns ``(loss, prob)``."""
    x = np.ascontiguousarray(x)
    loss = np.empty(x.shape[0], x.dtype)
    prob = np.empty_like(x)
    launch(_cross_entropy, split(x.size), x, labels, loss, prob)
    return loss, prob


def cross_entropy_backward(prob: np.ndarray, labels: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Gradient of ``sum(g * loss)`` with respect to the logits."""
    dx = np.empty_like(prob)
    launch(_cross_entropy_backward, split(prob.size), prob, labels, np.ascontiguousarray(g), dx)
    return dx
