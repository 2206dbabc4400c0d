"""Whole-buffer CUDA kernels the front-ends and other kernels use: a zero-filled result, a
finiteness check (one pass, one 4-byte read back), and the sum of partial results along a leading
batch axis (the split reductions of the GEMM and of the implicit filter gradient). Same names as
``numlin.kernels.cpu.buffers`` where both have them."""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, int32, int64

from ._registry import kernel
from .arrays import flat as _flat
from .elementwise import grid_1d

__all__ = ["zeros", "all_finite", "sum_batch"]


@kernel(*[(t[:], t[:], int64, int64, int64) for t in (float32, float64)])
def sum_leading(partials, out, nb, size, accumulate):
    """``out[i] (+)= sum_j partials[j*size + i]`` for ``j < nb``."""
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        acc = partials[i]
        for j in range(1, nb):
            acc += partials[j * size + i]
        if accumulate:
            out[i] += acc
        else:
            out[i] = acc


@kernel(*[(t[:], t, int64) for t in (float32, float64)])
def fill(buf, value, total):
    """``buf[i] = value`` for ``i < total``."""
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        buf[idx] = value


@kernel(*[(t[:], int32[:], int64) for t in (float32, float64)])
def flag_non_finite(a, flag, total):
    """``flag[0] = 1`` if some ``a[i]`` is NaN or infinite (every writer writes 1)."""
    bad = False
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        if not math.isfinite(a[idx]):
            bad = True
    if bad:
        flag[0] = 1


# --------------------------------------------------------------------------- host side
def sum_batch(partials, out, nb: int, accumulate: bool) -> None:
    """``out (+)= sum_j partials[j]``: ``nb`` partial results of ``out``'s size, one after the
    other in the flat ``partials``; added into ``out`` with ``accumulate``."""
    size = int(np.prod(out.shape, dtype=np.int64))
    sum_leading[grid_1d(size)](partials, _flat(out), nb, size, int(accumulate))


def zeros(shape: tuple, dtype):
    """A device array of ``shape`` and ``dtype`` holding zeros."""
    out = cuda.device_array(shape, dtype)
    total = int(np.prod(shape, dtype=np.int64))
    if total:
        fill[grid_1d(total)](_flat(out), np.dtype(dtype).type(0), total)
    return out


def all_finite(a) -> bool:
    """Whether every value of the device array ``a`` is finite (one pass, one 4-byte read back)."""
    total = int(np.prod(a.shape, dtype=np.int64))
    flag = cuda.to_device(np.zeros(1, np.int32))
    if total:
        flag_non_finite[grid_1d(total)](_flat(a), flag, total)
    return int(flag.copy_to_host()[0]) == 0
