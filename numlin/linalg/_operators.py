"""rsvd's view of ``A``: an *operator* (``matmat(X) = A @ X``, ``rmatmat(Y) = Aᵀ @ Y``) and the
small dense linear algebra of the backend where the tall factors live.

Operators: :class:`Dense` (numpy or device array: numlin's GEMM), :class:`Sparse` (scipy.sparse:
the jitted CSR kernel, never densified), :class:`Linear` (a scipy LinearOperator's
matmat/rmatmat, results checked), :class:`Centered` (``A - 1 μᵀ`` for PCA, never formed) and
:class:`Transposed`. Backends: :class:`Host` (numpy/scipy LAPACK, numlin's GEMM) and
:class:`Device` (GEMMs and copies on the GPU; only l x l and n x l matrices cross to the host).
Both orthonormalise tall sketches by CholeskyQR2 (:func:`._orth.cholesky_qr`). The Dask
operator and backend (:mod:`._dask`) build on these.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .._dispatch import backend_named, is_device_array
from ._orth import cholesky_qr
from .gemm import matmul as _matmul

__all__ = ["Host", "Device", "Operator", "Transposed", "Dense", "Sparse", "Linear", "Centered", "as_operator",
           "float_dtype"]

_CPU, _CUDA = backend_named("cpu"), backend_named("cuda")


# --------------------------------------------------------------------------- backends
class Host:
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
        return _matmul(a, b)

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
        """CholeskyQR2 on numlin's GEMM (:func:`._orth.cholesky_qr`; Gram matrices in float64), or
        None when Y is too ill-conditioned for it."""

        def gram(Y):
            Yd = Y if Y.dtype == np.float64 else Y.astype(np.float64)
            return np.asarray(self.matmul(Yd.T, Yd))

        return cholesky_qr(Y, gram, lambda Y, M: self.matmul(Y, M.astype(Y.dtype)))

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


class Device(Host):
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
        return _CUDA.arrays.transpose_last2(x)

    def orth(self, Y, method: str):
        import scipy.linalg as sl

        if method == "none":
            return Y
        Q = cholesky_qr(Y, lambda Y: self.to_host(self.matmul(self.T(Y), Y)).astype(np.float64),
                        lambda Y, M: self.matmul(Y, self.from_host(M.astype(Y.dtype))))
        if Q is None:  # rank-deficient or too ill-conditioned: Householder QR on the host
            Q = self.from_host(sl.qr(self.to_host(Y), mode="economic", check_finite=False)[0])
        return Q

    def project_out(self, Q, Y):
        from numba import cuda

        arrays = _CUDA.arrays
        P = self.matmul(self.T(Q), Y)
        out = cuda.device_array_like(Y)  # a device-side copy of Y, updated in place: Y - Q P
        out.copy_to_device(Y)
        _CUDA.gemm.matmul_into(arrays.strided(Q, writable=False), arrays.strided(P, writable=False),
                               arrays.strided(out, writable=True), -1.0, 1.0)
        return out

    def hstack(self, a, b):
        """``[a, b]`` side by side, copied on the device."""
        if a is None:
            return b
        arrays, copy_strided = _CUDA.arrays, _CUDA.elementwise.copy_strided
        m, na = a.shape
        out = arrays.empty((m, na + b.shape[1]), a.dtype)
        O = arrays.strided(out, writable=True)
        copy_strided(arrays.strided(a, writable=False), O._replace(shape=tuple(a.shape)))
        copy_strided(arrays.strided(b, writable=False), O._replace(off=O.off + na * O.strides[1],
                                                                    shape=tuple(b.shape)))
        return out

    def col_norms(self, Y):
        return np.linalg.norm(self.to_host(Y), axis=0)

    def flip(self, U, Vt):
        signs = _CUDA.rsvd.flip_columns(U)
        return U, Vt * signs[:, None]

    def contiguous(self, x):
        return _CUDA.arrays.contiguous(x)


# --------------------------------------------------------------------------- operators
class Operator:
    """``A`` as products: ``matmat(X) = A @ X``, ``rmatmat(Y) = Aᵀ @ Y``."""

    shape: tuple
    dtype: np.dtype
    backend: Host

    def T(self) -> "Operator":
        return Transposed(self)


class Transposed(Operator):
    def __init__(self, op: Operator):
        self.op, self.shape, self.dtype, self.backend = op, op.shape[::-1], op.dtype, op.backend

    def matmat(self, X):
        return self.op.rmatmat(X)

    def rmatmat(self, Y):
        return self.op.matmat(Y)


class Dense(Operator):
    def __init__(self, A, backend: Host):
        self.A, self.shape, self.dtype, self.backend = A, tuple(A.shape), np.dtype(A.dtype), backend

    def matmat(self, X):
        return self.backend.matmul(self.A, X)

    def rmatmat(self, Y):
        return self.backend.matmul(self.backend.T(self.A), Y)


class Sparse(Operator):
    def __init__(self, A, dtype):
        import scipy.sparse as sp

        self.A = sp.csr_matrix(A)
        self.AT = sp.csr_matrix(A.T)  # CSR of Aᵀ: a conversion, never a dense copy
        self.shape, self.dtype, self.backend = tuple(A.shape), dtype, Host()

    def matmat(self, X):
        return _CPU.sparse.csr_matmat(self.A, X)

    def rmatmat(self, Y):
        return _CPU.sparse.csr_matmat(self.AT, Y)


class Linear(Operator):
    def __init__(self, A, dtype, op_name: str = "rsvd"):
        self.A, self.shape, self.dtype, self.backend = A, tuple(A.shape), dtype, Host()
        self.op_name = op_name

    def _checked(self, what: str, Y, X, rows: int):
        Y = np.asarray(Y)
        want = (rows, X.shape[1])
        if Y.shape != want and not (Y.ndim == 1 and Y.shape == want[:1] and want[1] == 1):
            raise ValueError(f"{self.op_name}: A.{what} returned shape {Y.shape} for an input of shape {X.shape}; "
                             f"A's declared shape is {self.shape}, so it must return {want}")
        if np.iscomplexobj(Y):
            raise TypeError(f"{self.op_name}: A.{what} returned complex values ({Y.dtype}); use float32 or float64")
        Y = np.asarray(Y, dtype=self.dtype).reshape(want)
        if not np.isfinite(Y).all():
            raise ValueError(f"{self.op_name}: A.{what} returned NaN or Inf")
        return Y

    def matmat(self, X):
        return self._checked("matmat", self.A.matmat(X), X, self.shape[0])

    def rmatmat(self, Y):
        return self._checked("rmatmat", self.A.rmatmat(Y), Y, self.shape[1])


class Centered(Operator):
    """``A - 1 μᵀ`` (columns centred) without forming it."""

    def __init__(self, op: Operator, mu):
        self.op, self.mu, self.shape, self.dtype, self.backend = op, mu, op.shape, op.dtype, op.backend

    def matmat(self, X):  # A X - 1 (μᵀ X)
        Xh = self.backend.to_host(X)
        Y = self.backend.to_host(self.op.matmat(X))
        return self.backend.from_host(Y - (self.mu @ Xh)[None, :])

    def rmatmat(self, Y):  # Aᵀ Y - μ (1ᵀ Y)
        Yh = self.backend.to_host(Y)
        Z = self.backend.to_host(self.op.rmatmat(Y))
        return self.backend.from_host(Z - np.outer(self.mu, Yh.sum(axis=0)))


def loaded_scipy_sparse() -> tuple:
    """``(scipy.sparse, scipy.sparse.linalg)`` as far as they are imported, else None each.

    A sparse matrix or a LinearOperator exists only once its package is imported (Python imports a
    class's package first, unpickling included), so a dense input need not import them: they cost
    0.2 s, a third of a cached rsvd's first call (benchmarks/README.md, fourteenth session)."""
    return sys.modules.get("scipy.sparse"), sys.modules.get("scipy.sparse.linalg")


def as_operator(op_name: str, A: Any, check_finite: bool = True) -> Operator:
    """``A`` (a device array, a LinearOperator, a scipy.sparse matrix or an array-like; Dask
    arrays are :mod:`._dask`'s) as an :class:`Operator`, validated: 2-D, a float dtype (integers
    compute in float64), finite (dense and sparse input, unless ``check_finite`` is False)."""
    sp, spla = loaded_scipy_sparse()
    if is_device_array(A):
        A = _CUDA.arrays.as_array(op_name, "A", A)
        if len(A.shape) != 2:
            raise ValueError(f"{op_name}: A must be 2-D, got shape {tuple(A.shape)}")
        return Dense(A, Device())
    if spla is not None and isinstance(A, spla.LinearOperator):
        if len(A.shape) != 2:
            raise ValueError(f"{op_name}: A must be 2-D, got shape {A.shape}")
        dt = float_dtype(op_name, A.dtype if A.dtype is not None else np.float64)
        return Linear(A, dt, op_name)
    if sp is not None and sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(f"{op_name}: A must be 2-D, got shape {A.shape}")
        if A.format not in ("csr", "csc", "coo"):  # LIL, DOK, BSR, DIA: converted to CSR (documented)
            A = A.tocsr()
        dt = float_dtype(op_name, A.dtype)
        if check_finite and not np.isfinite(A.data).all():
            raise ValueError(f"{op_name}: A contains NaN or Inf")
        return Sparse(A, dt)
    if isinstance(A, (str, bytes, dict, set)) or A is None:
        raise TypeError(f"{op_name}: A must be an array, a scipy.sparse matrix or a LinearOperator, "
                        f"got {type(A).__name__}")
    A = np.asarray(A)  # np.matrix and array-likes become plain ndarrays
    if A.dtype == object:
        raise TypeError(f"{op_name}: A must be a numeric array, got dtype object")
    if A.ndim != 2:
        raise ValueError(f"{op_name}: A must be 2-D, got shape {A.shape}")
    A = A.astype(float_dtype(op_name, A.dtype), copy=False)
    if check_finite and not np.isfinite(A).all():
        raise ValueError(f"{op_name}: A contains NaN or Inf")
    return Dense(A, Host())


def float_dtype(op_name: str, dt) -> np.dtype:
    """float32/float64 stay; integers and bool compute in float64 (documented); others raise."""
    dt = np.dtype(dt)
    if dt in (np.float32, np.float64):
        return dt
    if dt.kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(f"{op_name}: unsupported dtype {dt}; use float32 or float64")
