"""Elementwise CUDA kernels over strided descriptors (layout: ``buf[off + sum(idx * strides)]``)."""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64, int64

from ..._strided import Strided
from ._registry import kernel

__all__ = ["grid_1d", "scale_2d", "copy_strided", "scale_matrices"]

_FLOATS = (float32, float64)


def grid_1d(total: int, threads: int = 256, max_blocks: int = 65_535) -> tuple[int, int]:
    """``(blocks, threads)`` for a grid-stride loop over ``total`` items."""
    return max(1, min(max_blocks, -(-total // threads))), threads


@kernel(*[(t[:], int64, int64, int64, int64, int64, t) for t in _FLOATS])
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


@kernel(*[(s[:], int64, int64[:], int64[:], d[:], int64, int64[:], int64) for s in _FLOATS for d in _FLOATS])
def copy_nd(src, soff, shape, sstrides, dst, doff, dstrides, total):
    """``dst[idx] = src[idx]`` (with dtype conversion) for every index of an N-d ``shape``."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    nd = shape.size
    for flat in range(start, total, step):
        rem = flat
        so = soff
        do = doff
        for d in range(nd - 1, -1, -1):
            q = rem // shape[d]
            i = rem - q * shape[d]
            rem = q
            so += i * sstrides[d]
            do += i * dstrides[d]
        dst[do] = src[so]


def copy_strided(src: Strided, dst: Strided) -> None:
    """Copy (and convert) ``src`` into ``dst``, two descriptors of one shape."""
    total = int(np.prod(src.shape, dtype=np.int64))
    if total == 0:
        return
    shape = cuda.to_device(np.asarray(src.shape, np.int64))
    sst = cuda.to_device(np.asarray(src.strides, np.int64))
    dst_st = cuda.to_device(np.asarray(dst.strides, np.int64))
    blocks, threads = grid_1d(total)
    copy_nd[blocks, threads](src.buf, src.off, shape, sst, dst.buf, dst.off, dst_st, total)


def scale_matrices(c: Strided, offsets: np.ndarray, beta: float) -> None:
    """``C_t = beta * C_t`` for every matrix ``t`` of a batched descriptor (``offsets`` on the host)."""
    m, n = c.shape[-2:]
    blocks, threads = grid_1d(m * n)
    beta = c.buf.dtype.type(beta)
    for off in offsets:
        scale_2d[blocks, threads](c.buf, int(off), c.strides[-2], c.strides[-1], m, n, beta)
