"""Randomized SVD (Halko–Martinsson–Tropp) and PCA on numlin's GEMM.

validate -> an *operator* for A (:mod:`._operators`: dense, scipy.sparse, LinearOperator, device
array; :mod:`._dask`: Dask array; transposed when m < n; centred for PCA) -> the range finder
and the small SVD, written once. Every product with A goes through the operator: numlin's GEMM
for dense and device arrays, a jitted CSR kernel for sparse matrices (never densified),
``matmat``/``rmatmat`` for a LinearOperator.

Stage 1 (range finder): Gaussian test matrix Omega (n x l, l = k + p), Y = A Omega, then q power
iterations Y = A (Aᵀ Y) with re-orthonormalisation between the half-steps (``normalizer``),
Q = orth(Y). Stage 2: B = Qᵀ A (computed as (Aᵀ Q)ᵀ), SVD of the small B, U = Q Ũ.
``n_iter="auto"`` iterates until the top-k Ritz values settle (:func:`_range_finder`).
With ``tol``, a blocked QB with power iterations (Yu–Gu–Li randQB_EI, MATLAB's svdsketch) grows
until an a-posteriori estimate of ||(I − QQᵀ) A||₂ is under tol/2; the rank is then read off
the small B's singular values (:func:`_adaptive_qb`).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._dispatch import blas_single_thread, is_dask_array
from .._validate import as_int, is_int
from ._operators import Centered, Dense, Host, Operator, Sparse, as_operator, loaded_scipy_sparse

__all__ = ["rsvd", "rsvd_error_estimate", "pca", "PCAResult"]

_NORMALIZERS = ("auto", "qr", "lu", "none")


def _operator(op_name: str, A: Any) -> Operator:
    """``A`` as rsvd's operator: a Dask array's (:mod:`._dask`), else :func:`._operators.as_operator`."""
    if is_dask_array(A):
        from ._dask import dask_operator  # Dask users only: import numlin stays light

        return dask_operator(op_name, A)
    return as_operator(op_name, A)


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


def _check_args(op_name, k, n_oversamples, n_iter, normalizer, tol, m, n) -> int | None:
    """Validate rsvd's options (TypeError for a wrong type, bool included; ValueError for a
    value out of range); returns the power iterations (None for "auto": adaptive)."""
    k = as_int(op_name, "k", k)
    if not 1 <= k <= min(m, n):
        raise ValueError(f"{op_name}: k must be an integer in [1, min(m, n)] = [1, {min(m, n)}] for A of shape "
                         f"{(m, n)}, got {k!r}")
    if as_int(op_name, "n_oversamples", n_oversamples) < 0:
        raise ValueError(f"{op_name}: n_oversamples must be a non-negative int, got {n_oversamples!r}")
    if not isinstance(normalizer, str):
        raise TypeError(f"{op_name}: normalizer must be one of {_NORMALIZERS}, got {type(normalizer).__name__} "
                        f"{normalizer!r}")
    if normalizer not in _NORMALIZERS:
        raise ValueError(f"{op_name}: normalizer must be one of {_NORMALIZERS}, got {normalizer!r}")
    if isinstance(n_iter, str):
        if n_iter != "auto":
            raise ValueError(f"{op_name}: n_iter must be 'auto' or a non-negative int, got {n_iter!r}")
        q = None
    elif is_int(n_iter):
        if n_iter < 0:
            raise ValueError(f"{op_name}: n_iter must be 'auto' or a non-negative int, got {n_iter!r}")
        q = int(n_iter)
    else:
        raise TypeError(f"{op_name}: n_iter must be 'auto' or an int, got {type(n_iter).__name__} {n_iter!r}")
    if tol is not None:
        if not isinstance(tol, numbers.Real) or isinstance(tol, (bool, np.bool_)):
            raise TypeError(f"{op_name}: tol must be None or a positive number, got {type(tol).__name__} {tol!r}")
        if not tol > 0:  # NaN included
            raise ValueError(f"{op_name}: tol must be a positive number, got {tol!r}")
    return q


# --------------------------------------------------------------------------- algorithm
#: n_iter="auto": power iterations stop once the top-k Ritz values change by at most this much
#: (relative) between two iterations, after at least _AUTO_MIN and at most _AUTO_MAX iterations.
#: The iterate's Ritz values lag the final Rayleigh–Ritz step on two iterates by far, so 1e-2
#: already gives errors below scikit-learn's defaults (benchmarks/bench_rsvd.py, README); the
#: same value serves float32 (whose own rounding, ~1e-7, is far below it).
_RITZ_TOL = {np.dtype(np.float32): 1e-2, np.dtype(np.float64): 1e-2}
_AUTO_MIN, _AUTO_MAX = 2, 12


def _ritz_values(be, Z) -> np.ndarray:
    """The singular values of Z = Aᵀ Y (Y orthonormal, l columns), descending: Ritz values of A
    on range(Y), from the l x l Gram matrix in float64."""
    Zh = be.to_host(Z)
    Zh = Zh if Zh.dtype == np.float64 else Zh.astype(np.float64)
    w = np.linalg.eigvalsh(Zh.T @ Zh)[::-1]
    return np.sqrt(np.maximum(w, 0.0))


def _ritz_converged(old, new, k: int, tol: float) -> bool:
    """The top-k Ritz values moved by at most ``tol`` (relative) since the last iteration."""
    s = new[:k]
    return bool(np.all(np.abs(s - old[:k]) <= tol * np.maximum(s, 1e-300)))


def _range_finder(op: Operator, l: int, q, normalizer: str, rng, k: int | None = None):
    """Subspace iteration; the basis spans the last two iterates ``[A Z_{q-1}, A Z_q]`` when
    they fit (a depth-2 block Krylov space: the same passes over A, a Rayleigh–Ritz step on 2l
    columns). ``q=None`` is adaptive: iterate until the top-k Ritz values (singular values of
    Aᵀ Y, known from each half-step) change by at most ``_RITZ_TOL`` relative, between
    ``_AUTO_MIN`` and ``_AUTO_MAX`` iterations."""
    be = op.backend
    Y = op.matmat(be.from_host(_gaussian(rng, (op.shape[1], l), op.dtype)))
    prev, old = None, None
    tol = _RITZ_TOL.get(np.dtype(op.dtype), 1e-5)
    it = 0
    while True:
        if q is not None and it >= q:
            break
        if q is None and it >= _AUTO_MAX:
            break
        Y = be.orth(Y, "qr" if q is None else normalizer)
        prev = Y
        Z = op.rmatmat(Y)
        it += 1
        if q is None:
            ritz = _ritz_values(be, Z)
            done = old is not None and it >= _AUTO_MIN and _ritz_converged(old, ritz, k, tol)
            old = ritz
        Z = be.orth(Z, normalizer)
        Y = op.matmat(Z)
        if q is None and done:
            break
    if prev is not None and 2 * l <= min(op.shape):
        if normalizer != "qr":
            prev = be.orth(prev, "qr")
        Y = be.hstack(prev, Y)
    return be.orth(Y, "qr")


#: tol mode: HMT Lemma 4.1 with ``_PROBES`` Gaussian probes and factor ``_ALPHA``:
#: ``||R||_2 <= _ALPHA sqrt(2/pi) max_i ||R w_i||`` fails with probability at most
#: ``_ALPHA ** -_PROBES`` (2⁻³⁰ < 10⁻⁹).
_PROBES, _ALPHA = 30, 2.0


def _adaptive_qb(op: Operator, k: int, q: int, normalizer: str, tol: float, rng, block: int, cap: int):
    """Blocked randomized QB with power iterations (Yu, Gu & Li 2018 randQB_EI; MATLAB's
    ``svdsketch``), stopped by an a-posteriori estimate ``E >= ||(I - Q Qᵀ) A||_2``:
    Gaussian probes ``W = A Ω_p`` taken with the first block, projected out as Q grows.

    Grows Q (block columns at a time, at most ``cap``) until ``E <= tol / 2``, then keeps the
    smallest rank ``r <= k`` with ``σ_{r+1}(B)² <= tol² - E²``: since
    ``A - Q B_r = (A - Q B) + Q (B - B_r)`` with orthogonal ranges,
    ``||A - Q B_r||² <= E² + σ_{r+1}(B)² <= tol²``. Returns ``(Q, Bt, r)`` with Bt = Aᵀ Q
    (host), or ``(None, None, 0)`` when ``E <= tol`` already without a basis (``||A|| <= tol``)."""
    be = op.backend
    n = op.shape[1]
    factor = _ALPHA * math.sqrt(2.0 / math.pi)
    Q, Bt, W = None, None, None
    while True:
        b = min(block, cap - (0 if Q is None else Q.shape[1]))
        if W is None:  # first pass: the probes (and on the host the first block with them)
            if type(be) is Host:
                Y, W = _split_cols(op.matmat(_gaussian(rng, (n, b + _PROBES), op.dtype)), b)
            else:
                W = op.matmat(be.from_host(_gaussian(rng, (n, _PROBES), op.dtype)))
                Y = op.matmat(be.from_host(_gaussian(rng, (n, b), op.dtype)))
            est = factor * float(np.max(be.col_norms(W)))
            if est <= tol:
                return None, None, 0, est
        else:
            Y = op.matmat(be.from_host(_gaussian(rng, (n, b), op.dtype)))
        for _ in range(q):
            Y = be.orth(Y if Q is None else be.project_out(Q, Y), normalizer)
            Y = op.matmat(be.orth(op.rmatmat(Y), normalizer))
        if Q is not None:
            Y = be.project_out(Q, be.project_out(Q, Y))  # twice: orthogonal to working precision
        Qb = be.orth(Y, "qr")
        Btb = be.to_host(op.rmatmat(Qb))
        Q = be.hstack(Q, Qb)
        Bt = Btb if Bt is None else np.hstack([Bt, Btb])
        W = be.project_out(Qb, be.project_out(Qb, W))
        est = factor * float(np.max(be.col_norms(W)))
        if est <= tol / 2 or Q.shape[1] >= cap:
            break
    S = np.linalg.svd(Bt.astype(np.float64, copy=False), compute_uv=False)
    if est < tol:
        room = math.sqrt(tol * tol - est * est)
        r = int(np.count_nonzero(S > room))
    else:
        r = S.size
    return Q, Bt, max(0, min(r, k)), est


def _split_cols(YW, b: int):
    """``YW[:, :b], YW[:, b:]`` as contiguous host arrays."""
    return np.ascontiguousarray(YW[:, :b]), np.ascontiguousarray(YW[:, b:])


def _svd_from_basis(op: Operator, Q, k: int, Bt=None):
    """Stage 2: B = Qᵀ A via Bᵀ = Aᵀ Q (unless given), SVD of the small B, U = Q Ũ (truncated to k)."""
    import scipy.linalg as sl

    be = op.backend
    if Bt is None:
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
        float32 stays float32; integer input computes in float64; ``np.matrix`` and other
        array-likes are taken through ``np.asarray``. Sparse input is never densified (jitted
        CSR products); LIL, DOK, BSR and DIA matrices are converted to CSR first. A
        LinearOperator is used through matmat/rmatmat; its results must have the shapes its
        declared shape implies (ValueError otherwise) and be real (complex operators: TypeError).
        A ``dask.array.Array`` is processed out of core, each pass over A one Dask computation
        whose per-block work is numlin's GEMM (see Notes); it should be chunked by rows with one
        chunk along the columns — other chunkings are rechunked that way first
        (``A.rechunk({0: "auto", 1: -1})``, repeated in every pass).
    k : int
        Rank, ``1 <= k <= min(m, n)``; with ``tol`` the largest rank allowed.
    n_oversamples : int
        Extra random vectors ``p`` (the basis has ``k + p`` columns, at most ``min(m, n)``).
    n_iter : int or "auto"
        Power iterations ``q`` (each is two passes over A). "auto" is adaptive: iterate until the
        top-k Ritz values change by at most 1% (relative) between two iterations, at least 2 and
        at most 12 iterations (fast decay: 2–3; flat spectra: up to the cap). The final
        Rayleigh–Ritz step on the last two iterates is far more accurate than that 1%: on
        fast, slow and flat spectra the default beats scikit-learn's default accuracy. With
        ``tol``, "auto" means 2 power iterations per block.
    normalizer : {"auto", "qr", "lu", "none"}
        Re-orthonormalisation between power half-steps: Householder QR (LAPACK) on the host,
        CholeskyQR2 on the GPU ("auto"/"qr"), LU (faster, slightly less accurate), or none
        (unstable for many iterations).
    tol : float, optional
        Choose the rank adaptively: blocks of ``max(n_oversamples, 8, k // 4)`` columns (with the
        power iterations) are added to the basis Q, up to ``min(min(m, n), 2k + n_oversamples)``
        columns, until ``E = 2·sqrt(2/π)·max_i ||(I − QQᵀ) A ω_i||`` over 30 Gaussian probes is
        at most tol/2; then the rank is the smallest ``r <= k`` with
        ``σ_{r+1}(Qᵀ A) <= sqrt(tol² − E²)``. Guarantee: ``||A − U S Vt||₂ <= tol`` with
        probability at least ``1 − 2⁻³⁰`` (HMT Lemma 4.1; ``||(I − QQᵀ)A||₂ <= E`` is the only
        random event) whenever the rank is below the cap ``k`` (at the cap it is best effort:
        rank k is returned without the guarantee). The rank is near the smallest that meets
        tol (tested: within max(1.25 r*, r* + 4) on geometric spectra). When ``E <= tol``
        without any basis (``||A||₂ <= tol``, e.g. a zero matrix) the result has rank 0:
        U (m, 0), S (0,), Vt (0, n).
    random_state : None, int, numpy Generator or RandomState
        Seed of the Gaussian test matrix; the same seed gives identical results.
    flip_sign : bool
        scikit-learn ``randomized_svd``'s default ``svd_flip`` rule (``u_based_decision=True``):
        the largest-magnitude entry of each column of U is positive (first on ties; the rows of
        Vt follow). :func:`pca` uses scikit-learn PCA's rule instead (by the rows of Vt).

    Returns
    -------
    U : (m, k) array, S : (k,) array, Vt : (k, n) array
        For GPU input all three are numba device arrays (as ``torch.svd_lowrank``). For Dask
        input U is a lazy Dask array chunked like A's rows (``U.compute()`` or ``da.store`` to
        materialise it); S and Vt are numpy arrays. With ``tol`` the rank may be below k.

    Raises
    ------
    ValueError
        k out of range, A not 2-D, NaN/Inf in A (dense and sparse input are checked), an unknown
        normalizer or n_iter string, negative n_oversamples or n_iter, tol <= 0 or NaN, a
        LinearOperator returning the wrong shape.
    TypeError
        Unsupported dtypes (complex, object, float16), a wrong argument type (bools included,
        e.g. ``k=True``, ``n_iter=2.5``, ``tol="1"``), random_state.

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
    be = op.backend
    if be.device:  # all three factors on the device, as torch.svd_lowrank
        S, Vt = be.from_host(np.ascontiguousarray(S)), be.from_host(np.ascontiguousarray(Vt))
    return be.result(U), S, Vt


def _rsvd(op_name, op: Operator, k, n_oversamples, n_iter, normalizer, tol, random_state):
    m, n = op.shape
    q = _check_args(op_name, k, n_oversamples, n_iter, normalizer, tol, m, n)
    norm = "qr" if normalizer == "auto" else normalizer
    rng = _rng(random_state)
    transposed = m < n
    work = op.T() if transposed else op
    if tol is None:
        Q = _range_finder(work, min(k + n_oversamples, min(m, n)), q, norm, rng, k)
        U, S, Vt = _svd_from_basis(work, Q, k)
    else:
        cap = min(min(m, n), 2 * k + n_oversamples)
        Q, Bt, r, _ = _adaptive_qb(work, k, 2 if q is None else q, norm, float(tol), rng,
                                   max(n_oversamples, 8, k // 4), cap)
        if Q is None or r == 0:
            be = work.backend
            U = be.from_host(np.zeros((work.shape[0], 0), work.dtype))
            S, Vt = np.zeros(0, work.dtype), np.zeros((0, work.shape[1]), work.dtype)
        else:
            U, S, Vt = _svd_from_basis(work, Q, r, Bt)
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
        sp = loaded_scipy_sparse()[0]
        Xc = (X @ self.components_.T) - (self.mean_ @ self.components_.T)[None, :]
        return np.asarray(Xc) if sp is not None and sp.issparse(X) else Xc


def _flip_by_rows(U, Vt):
    """scikit-learn >= 1.5 PCA's rule (``svd_flip(u, v, u_based_decision=False)``): the
    largest-magnitude entry of each row of Vt positive (first on ties); U's columns follow."""
    if Vt.shape[0] == 0:
        return U, Vt
    idx = np.argmax(np.abs(Vt), axis=1)
    signs = np.sign(Vt[np.arange(Vt.shape[0]), idx])
    signs[signs == 0] = 1
    return U * signs, Vt * signs[:, None]


def _total_variance(op: Operator, mu64: np.ndarray, m: int) -> float:
    """Σ_j Σ_i (a_ij − μ_j)² / (m − 1), from centred sums in float64 (no Σa² − m μ²
    cancellation): dense by row blocks, sparse over the stored entries plus μ_j² for each
    implicit zero (never densified); NaN for a LinearOperator (its entries are not known)."""
    if isinstance(op, Sparse):
        A = op.A.tocsc(copy=True)
        A.sum_duplicates()
        nnz = np.diff(A.indptr)
        col = np.repeat(np.arange(A.shape[1]), nnz)
        d = A.data.astype(np.float64) - mu64[col]
        return (float(d @ d) + float(((m - nnz) * mu64 ** 2).sum())) / (m - 1)
    if isinstance(op, Dense):
        total, step = 0.0, max(1, (1 << 22) // max(1, op.shape[1]))
        for i in range(0, m, step):
            d = op.A[i:i + step].astype(np.float64) - mu64
            total += float(np.einsum("ij,ij->", d, d))
        return total / (m - 1)
    return float("nan")


def pca(A: Any, k: int, **rsvd_kwargs) -> PCAResult:
    """Principal component analysis of ``A`` (n_samples, n_features) by :func:`rsvd` of the
    centred matrix. A dense A is centred in a copy (as scikit-learn does: exact in float32 too);
    for sparse input and LinearOperators the centring ``A - 1 μᵀ`` is applied implicitly, so a
    sparse A is never densified. Keyword arguments go to :func:`rsvd`.

    Returns a :class:`PCAResult`: ``components_`` (k, n_features), ``explained_variance_``
    (S² / (n_samples - 1)), ``explained_variance_ratio_``, ``singular_values_``, ``mean_``.

    ``components_`` signs follow scikit-learn's PCA (>= 1.5): the largest-magnitude entry of
    each component is positive (``flip_sign=False`` leaves rsvd's raw signs). The total variance
    behind ``explained_variance_ratio_`` is summed from centred values in float64 (stable for
    data with a large mean; sparse input is not densified). Data with total variance 0 (all
    samples equal) gives NaN ratios with a RuntimeWarning, as scikit-learn's 0/0; a
    LinearOperator gives NaN ratios (its total variance is unknown).
    """
    if is_dask_array(A):
        raise TypeError("pca: Dask arrays are not supported yet; use nl.linalg.rsvd on the centred array "
                        "(A - A.mean(axis=0)) or pass a host array")
    op = _operator("pca", A)
    if op.backend.device:
        raise TypeError("pca: GPU arrays are not supported yet; pass a host array")
    unexpected = set(rsvd_kwargs) - {"n_oversamples", "n_iter", "normalizer", "tol", "random_state", "flip_sign"}
    if unexpected:
        raise TypeError(f"pca: unexpected keyword arguments {sorted(unexpected)}")
    m = op.shape[0]
    if m < 2:
        raise ValueError(f"pca: needs at least 2 samples, got {m}")
    if isinstance(op, Dense):
        mu64 = op.A.mean(axis=0, dtype=np.float64)
    elif isinstance(op, Sparse):
        mu64 = np.asarray(op.A.sum(axis=0, dtype=np.float64)).ravel() / m
    else:
        mu64 = np.asarray(op.rmatmat(np.ones((m, 1), op.dtype)), dtype=np.float64).ravel() / m
    mu = mu64.astype(op.dtype)
    if isinstance(op, Dense):
        centred = Dense(np.ascontiguousarray(op.A - mu), op.backend)
    else:
        centred = Centered(op, mu)
    flip = rsvd_kwargs.pop("flip_sign", True)
    with blas_single_thread():
        U, S, Vt = _rsvd("pca", centred, k, rsvd_kwargs.pop("n_oversamples", 10), rsvd_kwargs.pop("n_iter", "auto"),
                         rsvd_kwargs.pop("normalizer", "auto"), rsvd_kwargs.pop("tol", None),
                         rsvd_kwargs.pop("random_state", None))
    if flip:
        U, Vt = _flip_by_rows(U, Vt)
    var = S.astype(np.float64) ** 2 / (m - 1)
    total = _total_variance(op, mu64, m)
    if total == 0.0:
        warnings.warn("pca: total variance is 0 (all samples are equal); explained_variance_ratio_ is NaN, "
                      "as scikit-learn's", RuntimeWarning, stacklevel=2)
        ratio = np.full_like(var, np.nan)
    else:
        ratio = var / total
    return PCAResult(np.ascontiguousarray(Vt), var.astype(S.dtype), ratio.astype(S.dtype), S, mu, int(S.size), m)
