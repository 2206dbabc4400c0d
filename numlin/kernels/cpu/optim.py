"""CPU optimizer updates, in place on flat C-contiguous parameter buffers.

The backend interface (same names in ``numlin.kernels.cuda.optim``):
``sgd(param, grad, velocity, lr, momentum)``, ``adam(param, grad, m, v, lr, b1, b2, eps, t)``.
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit

from ._threads import launch, split

__all__ = ["sgd", "adam"]


@njit(cache=True, nogil=True)
def _sgd(part, nparts, p, g, vel, lr, momentum):
    """``v = momentum v + g; p -= lr v`` (PyTorch's form; ``vel`` unused when momentum is 0)."""
    if momentum == 0:
        for i in range((p.size) * part // nparts, (p.size) * (part + 1) // nparts):
            p[i] -= lr * g[i]
    else:
        for i in range((p.size) * part // nparts, (p.size) * (part + 1) // nparts):
            v = momentum * vel[i] + g[i]
            vel[i] = v
            p[i] -= lr * v


@njit(cache=True, nogil=True)
def _adam(part, nparts, p, g, m, v, lr, b1, b2, eps, t):
    """Adam (Kingma & Ba, bias-corrected): ``m, v`` moments; step ``t`` counts from 1."""
    c1 = 1.0 - b1 ** t
    c2 = 1.0 - b2 ** t
    step = lr * math.sqrt(c2) / c1
    eps_hat = eps * math.sqrt(c2)
    for i in range((p.size) * part // nparts, (p.size) * (part + 1) // nparts):
        gi = g[i]
        mi = b1 * m[i] + (1.0 - b1) * gi
        vi = b2 * v[i] + (1.0 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) + eps_hat)


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1)


def sgd(param: np.ndarray, grad: np.ndarray, velocity, lr: float, momentum: float) -> None:
    """In-place SGD step on ``param`` (C-contiguous); ``velocity`` a same-shape buffer or None."""
    vel = _flat(velocity) if velocity is not None else _flat(param)[:0]
    launch(_sgd, split(param.size), _flat(param), _flat(np.ascontiguousarray(grad, param.dtype)), vel, lr, momentum)


def adam(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, b1: float,
         b2: float, eps: float, t: int) -> None:
    """In-place Adam step on ``param``; ``m``, ``v`` same-shape moment buffers."""
    launch(_adam, split(param.size), _flat(param), _flat(np.ascontiguousarray(grad, param.dtype)), _flat(m), _flat(v),
           lr, b1, b2, eps, t)
