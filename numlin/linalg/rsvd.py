"""Randomized SVD (Halko–Martinsson–Tropp) and PCA on numlin's GEMM.

validate -> an *operator* for A (dense, scipy.sparse, LinearOperator, device array; transposed
when m < n; centred for PCA) -> the range finder and the small SVD, written once. Every product
with A goes through the operator: numlin's GEMM for dense and device arrays, a jitted CSR kernel
for sparse matrices (never densified), ``matmat``/``rmatmat`` for a LinearOperator.

Stage 1 (range finder): Gaussian test matrix Omega (n x l, l = k + p), Y = A Omega, then q power
iterations Y = A (Aᵀ Y) with re-orthonormalisation between the half-steps (``normalizer``),
Q = orth(Y). Stage 2: B = Qᵀ A (computed as (Aᵀ Q)ᵀ), SVD of the small B, U = Q Ũ.
With ``tol``, the basis grows in blocks (HMT Algorithm 4.2) until the a-posteriori estimate
10·sqrt(2/π)·max_i ||(I − QQᵀ) A ω_i|| (10 fresh Gaussian probes) falls under ``tol``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._dispatch import blas_single_thread, is_dask_array, is_device_array

__all__ = ["rsvd", "rsvd_error_estimate", "pca", "PCAResult"]

_NORMALIZERS = ("auto", "qr", "lu", "none")


# --------------------------------------------------------------------------- backends
class _Host:
    """Small dense linear algebra on the host (numpy/scipy LAPACK)."""

    device = False

    @staticmethod
    def from_host(x):
        return x

    @staticmethod
    def to_host(x):
        return x

    @staticmethod
    def matmul(a, b):
        from .gemm import matmul

        return matmul(a, b)

    @staticmethod
    def T(x):
        return x.T

    def orth(self, Y, method: str):
        import scipy.linalg as sl

        if method == "none":
            return Y
        if method == "lu":
            return sl.lu(Y, permute_l=True, check_finite=False)[0]
        if Y.shape[0] >= 8 * Y.shape[1]:  # tall and skinny: two GEMM passes beat Householder
            Q = self._cholesky_qr2(Y)
            if Q is not None:
                return Q
        return sl.qr(Y, mode="economic", check_finite=False, overwrite_a=True)[0]

    def _cholesky_qr2(self, Y):
        """CholeskyQR2 on numlin's GEMM: twice ``R = chol(YᵀY)``, ``Y = Y R⁻¹`` (Gram matrices in
        float64). The second Gram matrix measures how far the first pass was from orthonormal;
        beyond 0.1 (Y too ill-conditioned) return None and let Householder QR do it."""
        import scipy.linalg as sl

        eye = np.eye(Y.shape[1])
        for rnd in range(2):
            Yd = Y if Y.dtype == np.float64 else Y.astype(np.float64)
            G = np.asarray(self.matmul(Yd.T, Yd))
            if rnd == 1 and np.abs(G - eye).max() > 0.1:
                return None
            try:
                R = sl.cholesky(G, lower=False, check_finite=False)
            except np.linalg.LinAlgError:
                return None
            Rinv = sl.solve_triangular(R, eye, lower=False, check_finite=False)
            Y = self.matmul(Y, Rinv.astype(Y.dtype))
        return Y

    def project_out(self, Q, Y):
        """``Y - Q (Qᵀ Y)``."""
        return Y - self.matmul(Q, self.matmul(Q.T, Y))

    @staticmethod
    def hstack(a, b):
        return b if a is None else np.hstack([a, b])

    @staticmethod
    def col_norms(Y):
        return np.linalg.norm(Y, axis=0)

    @staticmethod
    def flip(U, Vt):
        idx = np.argmax(np.abs(U), axis=0)
        signs = np.sign(U[idx, np.arange(U.shape[1])])
        signs[signs == 0] = 1
        return U * signs, Vt * signs[:, None]

    @staticmethod
    def contiguous(x):
        return np.ascontiguousarray(x)

    @staticmethod
    def result(U):
        """U as rsvd returns it (the Dask backend wraps a host U in a Dask array)."""
        return U


class _Device(_Host):
    """The same on a GPU: GEMMs on the device, CholeskyQR2 for orthonormalisation (Gram matrix
    by GEMM, a small Cholesky on the host, then Y R⁻¹ by GEMM); only l x l and n x l matrices
    cross to the host."""

    device = True

    @staticmethod
    def from_host(x):
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(x))

    @staticmethod
    def to_host(x):
        return x.copy_to_host()

    @staticmethod
    def T(x):
        from ..kernels.cuda import transpose_last2

        return transpose_last2(x)

    def orth(self, Y, method: str):
        import scipy.linalg as sl

        if method == "none":
            return Y
        for _ in range(2):  # CholeskyQR2
            G = self.to_host(self.matmul(self.T(Y), Y)).astype(np.float64)
            try:
                R = sl.cholesky(G, lower=False, check_finite=False)
            except np.linalg.LinAlgError:  # rank-deficient: Householder QR on the host
                Qh = sl.qr(self.to_host(Y), mode="economic", check_finite=False)[0]
                return self.from_host(Qh)
            Rinv = sl.solve_triangular(R, np.eye(R.shape[0]), lower=False, check_finite=False)
            Y = self.matmul(Y, self.from_host(Rinv.astype(Y.dtype)))
        return Y

    def project_out(self, Q, Y):
        from ..kernels.cuda.gemm import matmul_into
        from ..kernels.cuda import strided

        from numba import cuda

        P = self.matmul(self.T(Q), Y)
        out = cuda.device_array_like(Y)  # a device-side copy of Y, updated in place: Y - Q P
        out.copy_to_device(Y)
        matmul_into(strided(Q, writable=False), strided(P, writable=False), strided(out, writable=True), -1.0, 1.0)
        return out

    def hstack(self, a, b):
        """``[a, b]`` side by side, copied on the device."""
        if a is None:
            return b
        from numba import cuda

        from ..kernels.cuda import strided
        from ..kernels.cuda.elementwise import copy_strided

        m, na = a.shape
        out = cuda.device_array((m, na + b.shape[1]), a.dtype)
        O = strided(out, writable=True)
        copy_strided(strided(a, writable=False), O._replace(shape=tuple(a.shape)))
        copy_strided(strided(b, writable=False), O._replace(off=O.off + na * O.strides[1], shape=tuple(b.shape)))
        return out

    def col_norms(self, Y):
        return np.linalg.norm(self.to_host(Y), axis=0)

    def flip(self, U, Vt):
        from ..kernels.cuda.reductions import flip_columns

        signs = flip_columns(U)
        return U, Vt * signs[:, None]

    def contiguous(self, x):
        from ..kernels.cuda import contiguous

        return contiguous(x)


# --------------------------------------------------------------------------- operators
class _Operator:
    """``A`` as products: ``matmat(X) = A @ X``, ``rmatmat(Y) = Aᵀ @ Y``."""

    shape: tuple
    dtype: np.dtype
    backend: _Host

    def T(self) -> "_Operator":
        return _Transposed(self)


class _Transposed(_Operator):
    def __init__(self, op: _Operator):
        self.op, self.shape, self.dtype, self.backend = op, op.shape[::-1], op.dtype, op.backend

    def matmat(self, X):
        return self.op.rmatmat(X)

    def rmatmat(self, Y):
        return self.op.matmat(Y)


class _Dense(_Operator):
    def __init__(self, A, backend):
        self.A, self.shape, self.dtype, self.backend = A, tuple(A.shape), np.dtype(A.dtype), backend

    def matmat(self, X):
        return self.backend.matmul(self.A, X)

    def rmatmat(self, Y):
        return self.backend.matmul(self.backend.T(self.A), Y)


class _Sparse(_Operator):
    def __init__(self, A, dtype):
        import scipy.sparse as sp

        self.A = sp.csr_matrix(A)
        self.AT = sp.csr_matrix(A.T)  # CSR of Aᵀ: a conversion, never a dense copy
        self.shape, self.dtype, self.backend = tuple(A.shape), dtype, _Host()

    def matmat(self, X):
        from ..kernels.cpu.sparse import csr_matmat

        return csr_matmat(self.A, X)

    def rmatmat(self, Y):
        from ..kernels.cpu.sparse import csr_matmat

        return csr_matmat(self.AT, Y)


class _Linear(_Operator):
    def __init__(self, A, dtype):
        self.A, self.shape, self.dtype, self.backend = A, tuple(A.shape), dtype, _Host()

    def matmat(self, X):
        return np.asarray(self.A.matmat(X), dtype=self.dtype)

    def rmatmat(self, Y):
        return np.asarray(self.A.rmatmat(Y), dtype=self.dtype)


class _Centered(_Operator):
    """``A - 1 μᵀ`` (columns centred) without forming it."""

    def __init__(self, op: _Operator, mu):
        self.op, self.mu, self.shape, self.dtype, self.backend = op, mu, op.shape, op.dtype, op.backend

    def matmat(self, X):  # A X - 1 (μᵀ X)
        Xh = self.backend.to_host(X)
        Y = self.backend.to_host(self.op.matmat(X))
        return self.backend.from_host(Y - (self.mu @ Xh)[None, :])

    def rmatmat(self, Y):  # Aᵀ Y - μ (1ᵀ Y)
        Yh = self.backend.to_host(Y)
        Z = self.backend.to_host(self.op.rmatmat(Y))
        return self.backend.from_host(Z - np.outer(self.mu, Yh.sum(axis=0)))


def _operator(op_name: str, A: Any, check_finite: bool = True) -> _Operator:
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator

    if is_dask_array(A):
        from ._dask import dask_operator

        return dask_operator(op_name, A)
    if is_device_array(A):
        from ..kernels.cuda import as_array

        A = as_array(op_name, "A", A)
        if len(A.shape) != 2:
            raise ValueError(f"{op_name}: A must be 2-D, got shape {tuple(A.shape)}")
        return _Dense(A, _Device())
    if isinstance(A, LinearOperator):
        dt = np.dtype(A.dtype) if np.dtype(A.dtype) in (np.float32, np.float64) else np.dtype(np.float64)
        return _Linear(A, dt)
    if sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(f"{op_name}: A must be 2-D, got shape {A.shape}")
        dt = _float_dtype(op_name, A.dtype)
        if check_finite and not np.isfinite(A.data).all():
            raise ValueError(f"{op_name}: A contains NaN or Inf")
        return _Sparse(A, dt)
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"{op_name}: A must be 2-D, got shape {A.shape}")
    A = A.astype(_float_dtype(op_name, A.dtype), copy=False)
    if check_finite and not np.isfinite(A).all():
        raise ValueError(f"{op_name}: A contains NaN or Inf")
    return _Dense(A, _Host())


def _float_dtype(op_name: str, dt) -> np.dtype:
    """float32/float64 stay; integers and bool compute in float64 (documented); others raise."""
    dt = np.dtype(dt)
    if dt in (np.float32, np.float64):
        return dt
    if dt.kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(f"{op_name}: unsupported dtype {dt}; use float32 or float64")


def _rng(random_state):
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int, a numpy Generator or RandomState, got {random_state!r}")


def _gaussian(rng, shape, dtype):
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(shape, dtype=np.float64).astype(dtype, copy=False)
    return rng.standard_normal(shape).astype(dtype, copy=False)


def _auto_iters(k: int, m: int, n: int) -> int:
    """Power iterations for ``n_iter="auto"``: QR re-orthonormalisation lets 3 (2 when k is a
    large share of the spectrum) match scikit-learn's default accuracy, which takes 7 (4) LU-
    normalised iterations (benchmarks/README.md)."""
    return 3 if k < 0.1 * min(m, n) else 2


# --------------------------------------------------------------------------- algorithm
def _range_finder(op: _Operator, l: int, q: int, normalizer: str, rng):
    """Subspace iteration; the basis spans the last two iterates ``[A Z_{q-1}, A Z_q]`` when
    they fit (a depth-2 block Krylov space: the same passes over A, a Rayleigh–Ritz step on 2l
    columns; on the benchmark matrices 3 iterations then beat scikit-learn's 7)."""
    be = op.backend
    Y = op.matmat(be.from_host(_gaussian(rng, (op.shape[1], l), op.dtype)))
    prev = None
    for _ in range(q):
        Y = be.orth(Y, normalizer)
        prev = Y
        Z = be.orth(op.rmatmat(Y), normalizer)
        Y = op.matmat(Z)
    if prev is not None and 2 * l <= min(op.shape):
        if normalizer != "qr":
            prev = be.orth(prev, "qr")
        Y = be.hstack(prev, Y)
    return be.orth(Y, "qr")


def _adaptive_range_finder(op: _Operator, k: int, q: int, normalizer: str, tol: float, rng, block: int):
    """HMT Algorithm 4.2, blocked: grow Q until the probabilistic bound is under ``tol``."""
    be = op.backend
    n = op.shape[1]
    probes = 10
    W = op.matmat(be.from_host(_gaussian(rng, (n, probes), op.dtype)))
    factor = 10.0 * math.sqrt(2.0 / math.pi)
    Q, est = None, factor * float(np.max(be.col_norms(W)))
    while est > tol and (Q is None or Q.shape[1] < k):
        b = min(block, k - (0 if Q is None else Q.shape[1]))
        Y = op.matmat(be.from_host(_gaussian(rng, (n, b), op.dtype)))
        for _ in range(q):
            Y = be.orth(Y if Q is None else be.project_out(Q, Y), normalizer)
            Y = op.matmat(be.orth(op.rmatmat(Y), normalizer))
        if Q is not None:
            Y = be.project_out(Q, be.project_out(Q, Y))  # twice: orthogonal to working precision
        Qb = be.orth(Y, "qr")
        Q = be.hstack(Q, Qb)
        W = be.project_out(Qb, W)
        est = factor * float(np.max(be.col_norms(W)))
    return Q, est


def _svd_from_basis(op: _Operator, Q, k: int):
    """Stage 2: B = Qᵀ A via Bᵀ = Aᵀ Q, SVD of the small B, U = Q Ũ (truncated to k)."""
    import scipy.linalg as sl

    be = op.backend
    Bt = be.to_host(op.rmatmat(Q))  # (n, l)
    W, S, Zt = sl.svd(Bt, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    k = min(k, S.size)
    U = be.matmul(Q, be.from_host(np.ascontiguousarray(Zt.T[:, :k])))
    Vt = np.ascontiguousarray(W[:, :k].T)
    return U, S[:k], Vt


def rsvd(A: Any, k: int, *, n_oversamples: int = 10, n_iter: Any = "auto", normalizer: str = "auto",
         tol: float | None = None, random_state: Any = None, flip_sign: bool = True) -> tuple:
    """Randomized truncated SVD, ``A ≈ U @ diag(S) @ Vt`` (Halko, Martinsson & Tropp 2011).

    Parameters
    ----------
    A : ndarray, scipy.sparse matrix/array, scipy LinearOperator, GPU array, or dask array, shape (m, n)
        float32 stays float32; integer input computes in float64. Sparse input is never
        densified (jitted CSR products); a LinearOperator is used through matmat/rmatmat.
        A ``dask.array.Array`` is processed out of core, each pass over A one Dask computation
        whose per-block work is numlin's GEMM (see Notes); it should be chunked by rows with one
        chunk along the columns — other chunkings are rechunked that way first
        (``A.rechunk({0: "auto", 1: -1})``, repeated in every pass).
    k : int
        Rank, ``1 <= k <= min(m, n)``; with ``tol`` the largest rank allowed.
    n_oversamples : int
        Extra random vectors ``p`` (the basis has ``k + p`` columns, at most ``min(m, n)``).
    n_iter : int or "auto"
        Power iterations ``q`` (each is two passes over A). "auto": 3, or 2 when ``k`` is at
        least a tenth of ``min(m, n)`` — scikit-learn's default accuracy with fewer passes.
    normalizer : {"auto", "qr", "lu", "none"}
        Re-orthonormalisation between power half-steps: Householder QR (LAPACK) on the host,
        CholeskyQR2 on the GPU ("auto"/"qr"), LU (faster, slightly less accurate), or none
        (unstable for many iterations).
    tol : float, optional
        Choose the rank adaptively so that ``||A - U S Vt||_2 <= tol`` holds with probability
        at least 1 - 10⁻¹⁰ (HMT Alg. 4.2 estimate), growing the basis in blocks; ``k`` caps it.
    random_state : None, int, numpy Generator or RandomState
        Seed of the Gaussian test matrix; the same seed gives identical results.
    flip_sign : bool
        scikit-learn's ``svd_flip`` rule: the largest-magnitude entry of each column of U is
        positive (signs of the rows of Vt follow).

    Returns
    -------
    U : (m, k) array, S : (k,) ndarray, Vt : (k, n) ndarray
        For GPU input U is a numba device array (the tall factor stays on the device); S and Vt
        are small host arrays. For Dask input U is a lazy Dask array chunked like A's rows
        (``U.compute()`` or ``da.store`` to materialise it); S and Vt are numpy arrays.

    Raises
    ------
    ValueError
        k out of range, 1-D A, NaN/Inf in A (dense and sparse input are checked), an unknown
        normalizer, negative n_oversamples or n_iter, non-positive tol.
    TypeError
        Unsupported dtypes or random_state.

    Notes
    -----
    Dask arrays (``numlin.linalg._dask``): ``A @ X`` is a ``blockwise`` GEMM per row block,
    persisted together with its Gram matrix; ``Aᵀ @ Y`` is a GEMM per row block followed by
    Dask's tree reduction, computed to the host (an n x l matrix). The tall m x l sketches are
    orthonormalised by CholeskyQR2 built from the same reductions (``dask.array.linalg.tsqr``
    when they are too ill-conditioned for it); "lu" means one CholeskyQR round there. Memory:
    a few chunks of A per worker plus up to two persisted m x (k + p) sketches (2(k + p)
    columns in the last step). It runs on whichever Dask scheduler is active (threads by
    default, or a ``dask.distributed`` client). NaN/Inf in a Dask A is detected during the first
    pass (no separate pass is spent on it). :func:`pca` does not take Dask arrays yet.
    """
    op_name = "rsvd"
    op = _operator(op_name, A)
    with blas_single_thread():
        U, S, Vt = _rsvd(op_name, op, k, n_oversamples, n_iter, normalizer, tol, random_state)
        if flip_sign:
            U, Vt = op.backend.flip(U, Vt)
    return op.backend.result(U), S, Vt


def _rsvd(op_name, op: _Operator, k, n_oversamples, n_iter, normalizer, tol, random_state):
    m, n = op.shape
    if not isinstance(k, (numbers.Integral,)) or isinstance(k, bool) or not 1 <= k <= min(m, n):
        raise ValueError(f"{op_name}: k must be an integer in [1, min(m, n)] = [1, {min(m, n)}] for A of shape "
                         f"{(m, n)}, got {k!r}")
    if not isinstance(n_oversamples, numbers.Integral) or n_oversamples < 0:
        raise ValueError(f"{op_name}: n_oversamples must be a non-negative int, got {n_oversamples!r}")
    if normalizer not in _NORMALIZERS:
        raise ValueError(f"{op_name}: normalizer must be one of {_NORMALIZERS}, got {normalizer!r}")
    if n_iter == "auto":
        q = _auto_iters(k, m, n)
    elif isinstance(n_iter, numbers.Integral) and not isinstance(n_iter, bool) and n_iter >= 0:
        q = int(n_iter)
    else:
        raise ValueError(f"{op_name}: n_iter must be 'auto' or a non-negative int, got {n_iter!r}")
    if tol is not None and not (isinstance(tol, numbers.Real) and tol > 0):
        raise ValueError(f"{op_name}: tol must be a positive number, got {tol!r}")
    norm = "qr" if normalizer == "auto" else normalizer
    rng = _rng(random_state)
    transposed = m < n
    work = op.T() if transposed else op
    if tol is None:
        Q = _range_finder(work, min(k + n_oversamples, min(m, n)), q, norm, rng)
    else:
        Q, _ = _adaptive_range_finder(work, k, q, norm, float(tol), rng, block=max(n_oversamples, 8))
    U, S, Vt = _svd_from_basis(work, Q, k)
    if transposed:  # Aᵀ = U S Vt  =>  A = Vtᵀ S Uᵀ
        be = work.backend
        U, Vt = be.from_host(np.ascontiguousarray(Vt.T)), np.ascontiguousarray(be.to_host(U).T)
    return U, S, Vt


def rsvd_error_estimate(A: Any, Q: Any, *, n_probes: int = 10, random_state: Any = None) -> float:
    """HMT's a-posteriori bound on ``||(I - Q Qᵀ) A||_2`` for an orthonormal basis ``Q`` (e.g.
    the U of :func:`rsvd`): ``10·sqrt(2/π)·max_i ||(I - Q Qᵀ) A ω_i||`` over ``n_probes``
    Gaussian vectors; it holds with probability at least ``1 - 10^-n_probes``."""
    op = _operator("rsvd_error_estimate", A)
    be = op.backend
    with blas_single_thread():
        W = op.matmat(be.from_host(_gaussian(_rng(random_state), (op.shape[1], n_probes), op.dtype)))
        W = be.project_out(Q, W)
        return 10.0 * math.sqrt(2.0 / math.pi) * float(np.max(be.col_norms(W)))


@dataclass
class PCAResult:
    """PCA by randomized SVD, with scikit-learn's attribute names."""

    components_: Any
    explained_variance_: np.ndarray
    explained_variance_ratio_: np.ndarray
    singular_values_: np.ndarray
    mean_: np.ndarray
    n_components_: int
    n_samples_: int

    def transform(self, X: Any) -> np.ndarray:
        """Project ``X`` (n_samples, n_features) onto the components."""
        import scipy.sparse as sp

        Xc = (X @ self.components_.T) - (self.mean_ @ self.components_.T)[None, :]
        return np.asarray(Xc) if sp.issparse(X) else Xc


def pca(A: Any, k: int, **rsvd_kwargs) -> PCAResult:
    """Principal component analysis of ``A`` (n_samples, n_features) by :func:`rsvd` of the
    centred matrix; the centring ``A - 1 μᵀ`` is applied implicitly, so a sparse A is never
    densified. Keyword arguments go to :func:`rsvd`.

    Returns a :class:`PCAResult`: ``components_`` (k, n_features), ``explained_variance_``
    (S² / (n_samples - 1)), ``explained_variance_ratio_``, ``singular_values_``, ``mean_``.
    """
    if is_dask_array(A):
        raise TypeError("pca: Dask arrays are not supported yet; use nl.linalg.rsvd on the centred array "
                        "(A - A.mean(axis=0)) or pass a host array")
    op = _operator("pca", A)
    if op.backend.device:
        raise TypeError("pca: GPU arrays are not supported yet; pass a host array")
    m = op.shape[0]
    if m < 2:
        raise ValueError(f"pca: needs at least 2 samples, got {m}")
    mu = np.asarray(op.rmatmat(np.ones((m, 1), op.dtype))).ravel() / m
    centred = _Centered(op, mu.astype(op.dtype))
    flip = rsvd_kwargs.pop("flip_sign", True)
    with blas_single_thread():
        U, S, Vt = _rsvd("pca", centred, k, rsvd_kwargs.pop("n_oversamples", 10), rsvd_kwargs.pop("n_iter", "auto"),
                         rsvd_kwargs.pop("normalizer", "auto"), rsvd_kwargs.pop("tol", None),
                         rsvd_kwargs.pop("random_state", None))
    if rsvd_kwargs:
        raise TypeError(f"pca: unexpected keyword arguments {sorted(rsvd_kwargs)}")
    if flip:
        U, Vt = op.backend.flip(U, Vt)
    # total variance: column variances summed, from sums of squares (sparse-friendly)
    if isinstance(op, _Sparse):
        sq = np.asarray(op.A.multiply(op.A).sum(axis=0)).ravel()
    elif isinstance(op, _Dense):
        sq = np.einsum("ij,ij->j", op.A, op.A, dtype=np.float64)
    else:
        sq = None
    var = S.astype(np.float64) ** 2 / (m - 1)
    total = (sq.sum() - m * float(mu @ mu)) / (m - 1) if sq is not None else float("nan")
    return PCAResult(Vt, var.astype(S.dtype), (var / total).astype(S.dtype), S, mu, int(S.size), m)
