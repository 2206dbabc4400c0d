"""Sparse x dense products for randomized SVD: never densify the sparse operand.

Layout: CSR ``(indptr, indices, data)`` of an ``m x n`` matrix; ``X`` C-contiguous ``(n, l)``;
``Y`` C-contiguous ``(m, l)``. Rows of Y are independent, so each thread takes a run of them.
"""
from __future__ import annotations

import numpy as np
from ._jit import njit

from ._threads import launch, split

__all__ = ["csr_matmat"]


@njit(cache=True, nogil=True)
def _csr_matmat(part, nparts, indptr, indices, data, X, Y):
    m = indptr.size - 1
    L = X.shape[1]
    for i in range((m) * part // nparts, (m) * (part + 1) // nparts):
        for c in range(L):
            Y[i, c] = 0
        for jj in range(indptr[i], indptr[i + 1]):
            v = data[jj]
            j = indices[jj]
            for c in range(L):
                Y[i, c] += v * X[j, c]


def csr_matmat(A, X: np.ndarray) -> np.ndarray:
    """``A @ X`` for a scipy CSR matrix ``A`` and a dense ``X`` (result in ``X``'s dtype)."""

    X = np.ascontiguousarray(X)
    Y = np.empty((A.shape[0], X.shape[1]), X.dtype)
    data = A.data if A.data.dtype == X.dtype else A.data.astype(X.dtype)
    launch(_csr_matmat, split(A.nnz * X.shape[1] + Y.size), A.indptr, A.indices, data, X, Y)
    return Y
