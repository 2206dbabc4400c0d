"""The loops of :func:`.elementwise.reduce`: ``sum`` and ``max`` along the last axis of a 2-D view
of any strides, a part of the rows per thread (:func:`._threads.launch`)."""
from __future__ import annotations

from ._jit import njit

__all__ = ["KERNELS"]


@njit(cache=True, nogil=True)
def _sum_2d(part, nparts, x, out):
    """``out[i] = sum_j x[i, j]`` for a 2-D ``x`` of any strides, accumulated in float64."""
    m, n = x.shape
    for i in range((m) * part // nparts, (m) * (part + 1) // nparts):
        s = 0.0
        for j in range(n):
            s += x[i, j]
        out[i] = s


@njit(cache=True, nogil=True)
def _max_2d(part, nparts, x, out):
    """``out[i] = max_j x[i, j]`` (NaN propagates, as in numpy); ``n >= 1``."""
    m, n = x.shape
    for i in range((m) * part // nparts, (m) * (part + 1) // nparts):
        s = x[i, 0]
        for j in range(1, n):
            v = x[i, j]
            if v > s or v != v:
                s = v
        out[i] = s


#: the loops of ``elementwise.reduce`` by name
KERNELS = {"sum": _sum_2d, "max": _max_2d}
