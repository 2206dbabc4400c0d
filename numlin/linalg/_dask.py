"""Randomized SVD and GEMM on Dask arrays: Dask schedules, numlin's kernels do each block's work.

Dask itself is imported only when a ``dask.array.Array`` reaches :func:`numlin.linalg.rsvd` or
:func:`numlin.matmul` (``import numlin`` never imports Dask).

rsvd: ``A`` (m, n) is chunked by rows, one chunk along the columns (other chunkings are rechunked
to that first). :class:`_DaskRows` is the rsvd operator: ``A @ X`` (X an n x l host matrix) is a
per-row-block GEMM whose result stays a Dask array, chunked like A's rows and persisted (one pass
over A); ``Aᵀ @ Y`` is a per-block GEMM ``A_iᵀ Y_i`` followed by Dask's tree reduction and
computed to an n x l host matrix (one pass over A). :class:`_DaskBackend` does the small dense
work when the tall sketch is a Dask array: CholeskyQR2 from the same reductions (Gram matrices
``Σ Y_iᵀ Y_i`` in float64, ``Y R⁻¹`` per block), ``dask.array.linalg.tsqr`` when Y is too
ill-conditioned for it. The range finder and the small SVD are rsvd.py's, unchanged.

Per-block GEMMs run numlin's CPU kernel on one thread per Dask task (Dask's workers supply the
parallelism; two levels of threads on the same cores only oversubscribe them); see
:func:`block_threads`.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any

import numpy as np

from .._dispatch import is_dask_array
from .._validate import FLOAT_DTYPES, as_int
from .gemm import matmul as _array_matmul
from ._operators import Host, Operator
from ._orth import cholesky_qr

__all__ = ["is_dask_array", "as_row_chunked", "matmul_dask", "dask_operator", "block_threads"]


# --------------------------------------------------------------------------- per-task threads
_threads_per_block = 1
_set_lock = threading.Lock()


def block_threads(n: int | None = None) -> int:
    """Get (and with ``n``, set) the number of Numba threads each Dask task's GEMM uses.

    Default 1: Dask runs one task per worker thread, so the cores are already busy; numlin's
    parallel GEMM inside each task would put two levels of threads on the same cores. Set it
    higher when Dask runs fewer tasks at a time than there are cores (e.g. the synchronous
    scheduler, or one thread per worker with few workers). Returns the previous value.
    """
    global _threads_per_block
    old = _threads_per_block
    if n is not None:
        n = as_int("block_threads", "n", n, what="a positive int")
        if n < 1:
            raise ValueError(f"block_threads: n must be a positive int, got {n!r}")
        with _set_lock:
            _threads_per_block = n
    return old


@contextlib.contextmanager
def _task_threads():
    """Numba's thread count for this thread only (``numba.set_num_threads`` is thread-local)."""
    import numba

    old = numba.get_num_threads()
    want = max(1, min(_threads_per_block, numba.config.NUMBA_NUM_THREADS))
    if want == old:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _gemm(a, b):
    """numlin's CPU GEMM on one block pair, inside a Dask task."""
    with _task_threads():
        return _array_matmul(a, b)


# --------------------------------------------------------------------------- block functions
# Module-level functions (pickled by reference for dask.distributed workers, which import numlin
# and load the compiled kernels from Numba's on-disk cache).
def _block_matmul(a, b, out_dtype):
    """``a @ b`` for one block pair, with a length-1 contraction axis before the last (for the sum)."""
    return _gemm(a.astype(out_dtype, copy=False), b.astype(out_dtype, copy=False))[..., None, :]


def _one(x):
    """The block itself from blockwise's list over a contracted index that has one chunk
    (``concatenate=True`` would copy it: ~10 ms for an 80 MB row block of A, per task)."""
    while isinstance(x, list):
        if len(x) != 1:
            raise AssertionError(f"expected one block along the contracted index, got {len(x)}")
        x = x[0]
    return x


def _block_rows_times(a, x):
    """``A_i @ X``: a row block of A times the whole (small) X."""
    return _gemm(_one(a), _one(x))


def _block_t_times(a, y):
    """``A_iᵀ @ Y_i`` for the tree reduction over row blocks, shape (1, n, l)."""
    return _gemm(a.T, y)[None]


def _block_gram(y, z):
    """``Y_iᵀ Z_i`` in float64, shape (1, l, b)."""
    return _gemm(y.T.astype(np.float64), z.astype(np.float64, copy=False))[None]


def _block_axpy(y, q, p):
    """``Y_i - Q_i P`` (projection of a row block)."""
    return y - _gemm(_one(q), _one(p))


def _block_hstack(a, b):
    return np.hstack([a, _one(b)])


def _block_sumsq(y):
    return np.einsum("ij,ij->j", y, y, dtype=np.float64)[None]


def _block_colmax(u):
    """Per column: the largest |u| in this block and the signed entry where it first occurs."""
    idx = np.argmax(np.abs(u), axis=0)
    val = u[idx, np.arange(u.shape[1])].astype(np.float64)
    return np.stack([np.abs(val), val])[None]  # (1, 2, k)


def _sum_list(x, axis=None, keepdims=False, dtype=None):
    """Element-wise sum of same-shaped blocks (no concatenation); each has length 1 on ``axis``."""
    out = functools.reduce(np.add, x) if isinstance(x, list) else x
    return out if keepdims else out.squeeze(axis[0])


def _tree_sum(parts, axis: int):
    """Sum over ``axis`` (blocks of length 1 there) by Dask's tree reduction, without
    concatenating the blocks (each pairwise step adds two small arrays)."""
    import dask.array as da

    axis = axis % parts.ndim
    if parts.numblocks[axis] == 1:
        return parts.squeeze(axis) if parts.shape[axis] == 1 else parts.sum(axis=axis)
    return da.reduction(parts, _sum_list, _sum_list, axis=axis, dtype=parts.dtype, concatenate=False)


def _host_block(x: np.ndarray):
    """A small host matrix as a one-chunk Dask array: one graph key that every task shares."""
    import dask.array as da

    return da.from_array(np.ascontiguousarray(x), chunks=x.shape)


# --------------------------------------------------------------------------- matmul
def matmul_dask(a: Any, b: Any, out: Any = None):
    """``a @ b`` (numpy.matmul semantics) as a Dask graph: numlin's GEMM on every block pair,
    then Dask's tree reduction over the blocks of the contracted dimension.

    One operand may be a numpy array (it becomes a one-chunk Dask array). Chunks along the
    contracted dimension of ``a`` and ``b`` are unified by Dask (rechunked to a common
    refinement) when they differ. The result is lazy.
    """
    import dask.array as da

    op = "matmul"
    if out is not None:
        raise TypeError(f"{op}: out= is not supported for Dask arrays (the result is a lazy dask array; "
                        "store it with .compute() or da.store)")
    for name, x in (("a", a), ("b", b)):
        if x is None:
            raise TypeError(f"{op}: {name} is None; expected an array")
    a = a if isinstance(a, da.Array) else da.asarray(a)
    b = b if isinstance(b, da.Array) else da.asarray(b)
    for name, x in (("a", a), ("b", b)):
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: {name} has dtype {x.dtype}; numlin computes in float32 or float64 "
                            f"(cast explicitly, e.g. {name}.astype(np.float64))")
        if x.ndim == 0:
            raise ValueError(f"{op}: {name} is 0-d (shape ()); matmul needs arrays of at least one dimension")
    sa, sb = tuple(a.shape), tuple(b.shape)
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ValueError(f"{op}: shapes {sa} and {sb} do not match: core dimension {ka} != {kb} "
                         f"((n?,k),(k,m?)->(n?,m?))")
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dimensions of shapes {sa} and {sb} do not broadcast") from None
    dtype = np.result_type(a.dtype, b.dtype)
    a_1d, b_1d = a.ndim == 1, b.ndim == 1
    if a_1d:
        a = a[None, :]
    if b_1d:
        b = b[:, None]
    if a.ndim < b.ndim:
        a = a[(None,) * (b.ndim - a.ndim)]
    elif b.ndim < a.ndim:
        b = b[(None,) * (a.ndim - b.ndim)]
    nd = a.ndim
    # index letters: batch dims 0..nd-3, rows nd-2, contraction nd-1, columns nd; the output keeps
    # the contraction axis (one block each) for the tree reduction.
    out_ind = tuple(range(nd + 1))
    a_ind = tuple(range(nd))
    b_ind = tuple(range(nd - 2)) + (nd - 1, nd)
    parts = da.blockwise(_block_matmul, out_ind, a, a_ind, b, b_ind, adjust_chunks={nd - 1: 1},
                         dtype=dtype, concatenate=False, out_dtype=dtype, meta=np.empty((0,) * (nd + 1), dtype))
    res = _tree_sum(parts, axis=-2)
    if a_1d:
        res = res[..., 0, :]
    if b_1d:
        res = res[..., 0]
    return res


# --------------------------------------------------------------------------- rsvd operator
def as_row_chunked(op_name: str, A: Any):
    """Validate a Dask array for rsvd and return it chunked by rows, one chunk along columns.

    Column-chunked input is rechunked (``A.rechunk({0: "auto", 1: -1})``: rows per chunk chosen
    by Dask's ``array.chunk-size``), which adds a rechunk step to every pass over A; chunk A by
    rows upstream to avoid it. Integer and bool arrays compute in float64.
    """
    import dask.array as da

    if not isinstance(A, da.Array):
        raise TypeError(f"{op_name}: expected a dask.array.Array, got {type(A).__module__}.{type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"{op_name}: A must be 2-D, got shape {A.shape}")
    if any(np.isnan(c) for cs in A.chunks for c in cs):
        raise ValueError(f"{op_name}: A has unknown chunk sizes (shape {A.shape}); call A.compute_chunk_sizes() "
                         "first")
    dt = np.dtype(A.dtype)
    if dt.kind in "iub":
        A = A.astype(np.float64)
    elif dt not in FLOAT_DTYPES:
        raise TypeError(f"{op_name}: unsupported dtype {dt}; use float32 or float64")
    if A.numblocks[1] > 1:
        A = A.rechunk({0: "auto", 1: -1})
    return A


def dask_operator(op_name: str, A: Any) -> "_DaskRows":
    """The rsvd operator for a Dask array (rechunked by rows if needed, see :func:`as_row_chunked`)."""
    return _DaskRows(as_row_chunked(op_name, A), op_name)


def _check_finite(op_name: str, x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        raise ValueError(f"{op_name}: A contains NaN or Inf (found during a pass over the Dask array)")


class _DaskRows(Operator):
    """A row-chunked Dask array (one chunk along columns) as rsvd's operator.

    ``matmat(X)``: X (n, l) on the host -> ``A @ X`` as a Dask array chunked like A's rows,
    persisted. ``rmatmat(Y)``: Y (m, l), a Dask array chunked like A's rows or a host array ->
    ``Aᵀ @ Y`` on the host (per-block GEMMs, tree reduction, one compute).
    """

    def __init__(self, A, op_name: str = "rsvd"):
        self.A, self.op_name = A, op_name
        self.shape, self.dtype = tuple(A.shape), np.dtype(A.dtype)
        self.backend = _DaskBackend(A.chunks[0], op_name)

    def matmat(self, X):
        import dask.array as da

        X = np.asarray(self.backend.to_host(X), dtype=self.dtype)
        Y = da.blockwise(_block_rows_times, "ij", self.A, "ik", _host_block(X), "kj", dtype=self.dtype,
                         concatenate=False, meta=np.empty((0, 0), self.dtype))
        return self.backend.persist_with_gram(Y)

    def rmatmat(self, Y):
        import dask.array as da

        Y = self.backend.rows(Y, self.dtype)
        parts = da.blockwise(_block_t_times, "kij", self.A, "ki", Y, "kj", adjust_chunks={"k": 1},
                             dtype=self.dtype, concatenate=True, meta=np.empty((0, 0, 0), self.dtype))
        Z = np.asarray(_tree_sum(parts, axis=0).compute())
        _check_finite(self.op_name, Z)
        return Z


# --------------------------------------------------------------------------- backend
class _DaskBackend(Host):
    """rsvd's small dense linear algebra when the tall factors are Dask arrays chunked like A's
    rows; host arrays (the n x l factors) go to :class:`~numlin.linalg._operators.Host`."""

    def __init__(self, row_chunks: tuple, op_name: str = "rsvd"):
        self.row_chunks, self.op_name = tuple(row_chunks), op_name
        self._grams: dict = {}  # dask name of a persisted Y -> its Gram matrix YᵀY (float64, host)

    def persist_with_gram(self, Y):
        """Persist Y and compute its Gram matrix in the same graph (the pass that makes Y also
        reduces ``Σ Y_iᵀ Y_i``), so the first CholeskyQR round costs no extra round trip."""
        import dask

        Y, G = dask.persist(Y, self._gram_graph(Y))
        self._grams = {Y.name: G}  # only the newest Y's Gram is ever asked for
        return Y

    # -- conversions
    @staticmethod
    def to_host(x):
        return np.asarray(x.compute()) if is_dask_array(x) else x

    def rows(self, x, dtype=None):
        """``x`` (m, l) as a Dask array chunked like A's rows, one chunk along columns."""
        import dask.array as da

        if is_dask_array(x):
            if x.chunks[0] != self.row_chunks or x.numblocks[1] != 1:
                x = x.rechunk((self.row_chunks, -1))
            return x if dtype is None or x.dtype == dtype else x.astype(dtype)
        x = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
        return da.from_array(x, chunks=(self.row_chunks, x.shape[1]))

    def result(self, U):
        """U of the result: always a Dask array chunked like A's rows (host U of a wide A too)."""
        return self.rows(U)

    # -- products
    def matmul(self, a, b):
        """Tall (Dask, row-chunked) times small (host); host times host on numlin's GEMM."""
        import dask.array as da

        if not is_dask_array(a) and not is_dask_array(b):
            return super().matmul(a, b)
        if is_dask_array(b):
            return matmul_dask(a, b)
        b = np.asarray(b, dtype=a.dtype)
        return da.blockwise(_block_rows_times, "ij", self.rows(a), "ik", _host_block(b), "kj", dtype=a.dtype,
                            concatenate=False, meta=np.empty((0, 0), a.dtype))

    @staticmethod
    def _gram_graph(Y, Z=None):
        """``Yᵀ Z`` (Z = Y by default) in float64 as a lazy one-chunk array: per-block GEMMs,
        then Dask's tree reduction."""
        import dask.array as da

        Z = Y if Z is None else Z
        parts = da.blockwise(_block_gram, "kij", Y, "ki", Z, "kj", adjust_chunks={"k": 1}, dtype=np.float64,
                             meta=np.empty((0, 0, 0), np.float64))
        return _tree_sum(parts, axis=0)

    def _gram(self, Y, Z=None):
        """``Yᵀ Z`` on the host; a Gram matrix made with Y's pass is reused."""
        G = self._grams.get(Y.name) if Z is None else None
        return np.asarray((self._gram_graph(Y, Z) if G is None else G).compute())

    # -- orthonormalisation
    def orth(self, Y, method: str):
        """Host Y: as in memory. Dask Y: "qr"/"auto" CholeskyQR2, "lu" one CholeskyQR round (a
        cheap normaliser between power steps, as LU is in memory), "none" nothing; Dask's
        ``tsqr`` when a Gram matrix is not positive definite or the second one is far from I."""
        if not is_dask_array(Y):
            return super().orth(Y, method)
        if method == "none":
            return Y
        Y = self.rows(Y)
        Q = self._cholesky_qr_dask(Y, rounds=1 if method == "lu" else 2)
        if Q is None:
            import dask.array as da

            Q = da.linalg.tsqr(Y)[0].persist()
        return Q

    def _cholesky_qr_dask(self, Y, rounds: int):
        """CholeskyQR (``rounds`` = 1) or CholeskyQR2 (:func:`._orth.cholesky_qr`) on a persisted
        Y: ``Q = ((Y R₁⁻¹) R₂⁻¹)`` kept lazy. The second Gram matrix is reduced from blocks
        ``Y_i R₁⁻¹`` made on the fly; the returned Q recomputes the same blocks (same kernel, one
        thread: bit-identical), so nothing but Y is held in memory. None when Y is too
        ill-conditioned."""
        return cholesky_qr(Y, self._gram, lambda Q, M: self.matmul(Q, M.astype(Y.dtype)), rounds=rounds,
                           check=lambda G: _check_finite(self.op_name, G))

    def project_out(self, Q, Y):
        """``Y - Q (Qᵀ Y)``; a Dask Y is persisted."""
        import dask.array as da

        if not is_dask_array(Q) and not is_dask_array(Y):
            return super().project_out(Q, Y)
        Q, Y = self.rows(Q), self.rows(Y)
        P = self._gram(Q, Y).astype(Y.dtype)
        return da.blockwise(_block_axpy, "ij", Y, "ij", Q, "ik", _host_block(P), "kj", dtype=Y.dtype,
                            concatenate=False, meta=np.empty((0, 0), Y.dtype)).persist()

    def hstack(self, a, b):
        import dask.array as da

        if a is None:
            return b
        if not is_dask_array(a) and not is_dask_array(b):
            return super().hstack(a, b)
        a, b = self.rows(a), self.rows(b)
        return da.blockwise(_block_hstack, "ij", a, "ij", b, "ik", adjust_chunks={"j": a.shape[1] + b.shape[1]},
                            concatenate=False, dtype=np.result_type(a.dtype, b.dtype), meta=np.empty((0, 0), a.dtype))

    def col_norms(self, Y):
        import dask.array as da

        if not is_dask_array(Y):
            return super().col_norms(Y)
        parts = da.blockwise(_block_sumsq, "ki", self.rows(Y), "ki", adjust_chunks={"k": 1}, dtype=np.float64,
                             meta=np.empty((0, 0), np.float64))
        return np.sqrt(np.asarray(_tree_sum(parts[:, None, :], axis=0).compute()).ravel())

    def flip(self, U, Vt):
        """svd_flip on a lazy U: the signed largest-magnitude entry of each column comes from a
        reduction over U's blocks (first occurrence wins, as ``np.argmax`` on the whole U);
        U stays lazy, scaled by the signs."""
        import dask.array as da

        if not is_dask_array(U):
            return super().flip(U, Vt)
        U = self.rows(U)
        parts = da.blockwise(_block_colmax, "bij", U, "bj", new_axes={"i": 2}, adjust_chunks={"b": 1},
                             dtype=np.float64, meta=np.empty((0, 0, 0), np.float64)).compute()
        best = np.argmax(parts[:, 0, :], axis=0)  # first block holding the column's largest |u|
        signs = np.sign(parts[best, 1, np.arange(U.shape[1])])
        signs[signs == 0] = 1
        return U * signs.astype(U.dtype), Vt * signs[:, None].astype(Vt.dtype)
