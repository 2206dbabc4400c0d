"""Elementwise CUDA kernels over strided descriptors (layout: ``buf[off + i*rs + j*cs]``)."""
from __future__ import annotations

from numba import cuda, float32, float64, int64

from ._registry import kernel


@kernel(*[(t[:], int64, int64, int64, int64, int64, t) for t in (float32, float64)])
def scale_2d(c, coff, crs, ccs, m, n, beta):
    """``C = beta * C`` on an ``m x n`` strided matrix; ``beta == 0`` writes zeros without reading C.

    One thread per element, grid-stride over ``m * n``.
    """
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for idx in range(start, m * n, step):
        i = idx // n
        j = idx - i * n
        p = coff + i * crs + j * ccs
        if beta == 0:
            c[p] = 0
        else:
            c[p] = beta * c[p]
