"""CholeskyQR2: the orthonormalisation of a tall, skinny ``Y`` (m x l, m >> l) by two GEMM
passes, shared by rsvd's host, GPU and Dask backends (each brings its own Gram matrix and
product, so the rule is written once).

A round is ``G = YᵀY`` (float64, l x l on the host), ``R = chol(G)``, ``Y = Y R⁻¹``; two rounds
give Q orthonormal to working precision when ``cond(Y)`` is below ~1/sqrt(eps) (Yamamoto et al.
2015). The second Gram matrix measures how far the first round was from orthonormal: beyond
0.1 from the identity, or when a Cholesky factorisation fails (rank deficiency), the answer is
None and the caller falls back to Householder QR.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["cholesky_qr"]


def cholesky_qr(Y: Any, gram: Callable[[Any], np.ndarray], times: Callable[[Any, np.ndarray], Any], *,
                rounds: int = 2, check: Callable[[np.ndarray], None] | None = None) -> Any:
    """``Q`` with ``Q R = Y`` by ``rounds`` CholeskyQR rounds (2: CholeskyQR2), or None.

    Parameters
    ----------
    Y : array (host, device or Dask)
        The tall matrix to orthonormalise.
    gram : callable
        ``gram(Y) -> YᵀY`` as a float64 host array.
    times : callable
        ``times(Y, M) -> Y @ M`` for a float64 host ``M`` (the backend casts it to Y's dtype and
        moves it where Y lives).
    rounds : int
        1 (CholeskyQR) or 2.
    check : callable, optional
        Called with the first Gram matrix (e.g. to refuse NaN/Inf in the data).

    Returns
    -------
    Q like ``Y``, or None when ``Y`` is too ill-conditioned for it.
    """
    import scipy.linalg as sl

    eye = np.eye(Y.shape[1])
    for rnd in range(rounds):
        G = gram(Y)
        if rnd == 0 and check is not None:
            check(G)
        if rnd == 1 and np.abs(G - eye).max() > 0.1:
            return None
        try:
            R = sl.cholesky(G, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        Y = times(Y, sl.solve_triangular(R, eye, lower=False, check_finite=False))
    return Y
