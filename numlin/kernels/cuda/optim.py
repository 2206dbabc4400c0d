"""CUDA optimizer updates, in place on C-contiguous device parameter buffers, the interface and
formulas of ``numlin.kernels.cpu.optim``: ``sgd(param, grad, velocity, lr, momentum)``,
``adam(param, grad, m, v, lr, b1, b2, eps, t)``. One thread per element (grid-stride).
"""
from __future__ import annotations

import math

from numba import cuda, float32, float64, int64

from ._registry import kernel
from .arrays import flat as _flat
from .elementwise import launch_1d

__all__ = ["sgd", "adam"]

_FLOATS = (float32, float64)


@kernel(*[(t[:], t[:], t[:], float64, float64, int64) for t in _FLOATS])
def sgd_kernel(p, g, vel, lr, momentum, n):
    """``v = momentum v + g; p -= lr v`` (PyTorch's form; ``vel`` unused when momentum is 0)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if momentum == 0:
            p[i] -= lr * float64(g[i])
        else:
            v = momentum * float64(vel[i]) + float64(g[i])
            vel[i] = v
            p[i] -= lr * v


@kernel(*[(t[:], t[:], t[:], t[:], float64, float64, float64, float64, int64) for t in _FLOATS])
def adam_kernel(p, g, m, v, b1, b2, step, eps_hat, n):
    """Adam's update with the bias corrections folded into ``step`` and ``eps_hat`` (host side)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = float64(g[i])  # float64 arithmetic as on the CPU (explicit for the simulator's sake)
        mi = b1 * float64(m[i]) + (1.0 - b1) * gi
        vi = b2 * float64(v[i]) + (1.0 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) + eps_hat)


def _check(op: str, name: str, a, param) -> None:
    if tuple(a.shape) != tuple(param.shape) or a.dtype != param.dtype:
        raise ValueError(f"{op}: {name} has shape {tuple(a.shape)} / dtype {a.dtype}, expected "
                         f"{tuple(param.shape)} / {param.dtype}")


def sgd(param, grad, velocity, lr: float, momentum: float) -> None:
    """In-place SGD step on device ``param`` (C-contiguous); ``grad`` C-contiguous of its dtype
    (the optimizer casts it), ``velocity`` a same-shape buffer or None."""
    _check("sgd", "grad", grad, param)
    n = int(param.size)
    if n == 0:
        return
    if velocity is not None:
        _check("sgd", "velocity", velocity, param)
    elif momentum != 0:
        raise ValueError("sgd: momentum needs a velocity buffer")
    vel = _flat(velocity) if velocity is not None else _flat(param)  # not read when momentum is 0
    sgd_kernel[launch_1d(n)](_flat(param), _flat(grad), vel, float(lr), float(momentum), n)


def adam(param, grad, m, v, lr: float, b1: float, b2: float, eps: float, t: int) -> None:
    """In-place Adam step on device ``param``; ``m``, ``v`` same-shape moment buffers; step ``t``
    counts from 1."""
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        _check("adam", name, a, param)
    n = int(param.size)
    if n == 0:
        return
    c1 = 1.0 - b1 ** t
    c2 = 1.0 - b2 ** t
    step = lr * math.sqrt(c2) / c1
    eps_hat = eps * math.sqrt(c2)
    adam_kernel[launch_1d(n)](_flat(param), _flat(grad), _flat(m), _flat(v), float(b1), float(b2), step, eps_hat, n)
