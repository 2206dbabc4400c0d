"""Randomized SVD's device kernels: the column sign flip (scikit-learn's ``svd_flip``) of U."""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64

from ._registry import kernel

__all__ = ["flip_columns"]


@kernel(*[(t[:, :], t[:]) for t in (float32, float64)])
def flip_columns_kernel(U, signs):
    """Block ``j``: find the largest-magnitude entry of column ``j`` (first on ties, as
    ``numpy.argmax``), make it positive by scaling the column, record the sign."""
    j = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    best = cuda.shared.array(256, float64)
    where = cuda.shared.array(256, float64)
    m = U.shape[0]
    b = -1.0
    w = 0.0
    for i in range(tid, m, cuda.blockDim.x):
        a = abs(U[i, j])
        if a > b:
            b = a
            w = i
    best[tid] = b
    where[tid] = w
    cuda.syncthreads()
    step = 128
    while step > 0:
        if tid < step:
            o = tid + step
            if best[o] > best[tid] or (best[o] == best[tid] and where[o] < where[tid]):
                best[tid] = best[o]
                where[tid] = where[o]
        cuda.syncthreads()
        step //= 2
    s = U[int(where[0]), j]
    sign = 1.0 if s >= 0 else -1.0
    if tid == 0:
        signs[j] = sign
    cuda.syncthreads()  # every thread has read the pivot before any thread rescales it
    for i in range(tid, m, cuda.blockDim.x):
        U[i, j] = U[i, j] * sign


def flip_columns(U) -> np.ndarray:
    """Flip device matrix ``U``'s columns in place (svd_flip rule); returns the signs (host)."""
    k = U.shape[1]
    signs = cuda.device_array(k, U.dtype)
    if U.shape[0] and k:
        flip_columns_kernel[k, 256](U, signs)
    return signs.copy_to_host()
