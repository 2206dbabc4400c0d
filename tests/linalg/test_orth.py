"""CholeskyQR2 (``numlin.linalg._orth.cholesky_qr``), the one orthonormalisation shared by rsvd's
host, GPU and Dask backends: orthonormal Q with Q R = Y when Y is well conditioned, None (the
caller's cue for Householder QR) when it is rank-deficient or too ill-conditioned."""
from __future__ import annotations

import numpy as np
import pytest

from numlin.linalg._orth import cholesky_qr


def _gram(Y):
    return Y.T.astype(np.float64) @ Y.astype(np.float64)


def _times(Y, M):
    return Y @ M.astype(Y.dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_orthonormal_and_spanning_y(rng, dtype):
    Y = rng.standard_normal((500, 12)).astype(dtype)
    Q = cholesky_qr(Y, _gram, _times)
    eps = np.finfo(dtype).eps
    assert Q.dtype == dtype and Q.shape == Y.shape
    np.testing.assert_allclose(Q.T.astype(np.float64) @ Q, np.eye(12), atol=50 * eps)
    R = Q.T.astype(np.float64) @ Y  # Y lies in Q's span: Q Qᵀ Y = Y
    np.testing.assert_allclose(Q @ R, Y, atol=200 * eps * np.abs(Y).max())


def test_none_for_rank_deficient_and_ill_conditioned(rng):
    Y = rng.standard_normal((300, 6))
    Y[:, 5] = Y[:, 0]  # rank 5: the Cholesky of YᵀY fails or the second round is far off
    assert cholesky_qr(Y, _gram, _times) is None
    U, _ = np.linalg.qr(rng.standard_normal((300, 6)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    Z = (U * np.logspace(0, -8, 6)) @ V.T  # cond 1e8 > 1/sqrt(eps): one round leaves Q far from orthonormal
    assert cholesky_qr(Z, _gram, _times) is None
    assert cholesky_qr(Z, _gram, _times, rounds=1) is not None  # one round does not measure it
    W = (U * np.logspace(0, -6, 6)) @ V.T  # cond 1e6: CholeskyQR2 copes
    Q = cholesky_qr(W, _gram, _times)
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=1e-12)


def test_check_sees_the_first_gram_matrix(rng):
    Y = rng.standard_normal((50, 3))
    seen = []
    cholesky_qr(Y, _gram, _times, check=seen.append)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], _gram(Y))
    with pytest.raises(ValueError, match="NaN"):
        cholesky_qr(Y, _gram, _times, check=lambda G: (_ for _ in ()).throw(ValueError("NaN in A")))
