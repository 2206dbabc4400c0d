"""Public GEMM front-ends: :func:`matmul` (numpy semantics) and :func:`gemm` (BLAS semantics).

validate -> dispatch (host or device) -> ``kernels.cpu.gemm`` or ``kernels.cuda.gemm``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._dispatch import holds_tensor, is_dask_array, kernels
from .._validate import as_real_scalar, out_target, result_dtype

__all__ = ["matmul", "gemm"]


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """Matrix product with :func:`numpy.matmul` semantics.

    Parameters
    ----------
    a : array_like, shape (..., m, k) or (k,)
        float32 or float64. A 1-D ``a`` is a row vector, its axis removed from the result.
    b : array_like, shape (..., k, n) or (k,)
        float32 or float64. A 1-D ``b`` is a column vector, its axis removed from the result.
        Batch dimensions of ``a`` and ``b`` broadcast against each other.
    out : ndarray, optional
        Receives the result: exactly the result's shape and dtype, writable, and sharing no
        memory with ``a`` or ``b``.

    Returns
    -------
    ndarray or scalar
        With a :class:`numlin.Tensor` operand, a Tensor (differentiable; ``out`` not allowed).
        ``a @ b`` in ``numpy.result_type(a, b)`` (float32 only if both are float32; a mixed pair
        computes in float64 after casting the float32 operand). Two 1-D operands give a scalar.
        Device operands (numba device arrays, CuPy arrays, PyTorch CUDA tensors) give a numba
        device array, computed on the GPU.

    Raises
    ------
    ValueError
        0-d operands; core dimensions that do not match; batch dimensions that do not broadcast;
        ``out`` of the wrong shape, read-only or overlapping an input; device operands on
        different GPUs.
    TypeError
        A dtype other than float32/float64 (integers are not cast silently), an ``out`` of the
        wrong dtype, or host and device operands mixed.

    Notes
    -----
    Any strides and memory order are accepted without copying: packing absorbs them. NaN and
    Inf propagate as in numpy. Large products run in parallel on ``numba.get_num_threads()``
    threads; many small ones are spread over the threads one matrix each.

    ``dask.array.Array`` operands (one may be a numpy array) give a lazy Dask array: numlin's
    GEMM on every block pair, then Dask's tree reduction over the blocks of the contracted
    dimension (chunks along it are unified first). Each task's GEMM runs on one thread
    (``numlin.linalg._dask.block_threads``); ``out`` is not supported there (TypeError).

    Examples
    --------
    >>> import numpy as np, numlin as nl
    >>> nl.matmul(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    op = "matmul"
    if holds_tensor(a) or holds_tensor(b):
        if out is not None:
            raise TypeError("matmul: out= is not supported with Tensor operands")
        from ..autodiff.ops import matmul as tensor_matmul

        return tensor_matmul(a, b)
    if is_dask_array(a) or is_dask_array(b):
        from ._dask import matmul_dask

        return matmul_dask(a, b, out)
    k = kernels(op, a=a, b=b, out=out)
    a = k.as_array(op, "a", a)
    b = k.as_array(op, "b", b)
    sa, sb = tuple(a.shape), tuple(b.shape)
    for name, shp in (("a", sa), ("b", sb)):
        if len(shp) == 0:
            raise ValueError(f"{op}: {name} is 0-d (shape ()); matmul needs arrays of at least one dimension")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ValueError(f"{op}: shapes {sa} and {sb} do not match: core dimension {ka} != {kb} "
                         f"((n?,k),(k,m?)->(n?,m?))")
    try:
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dimensions of shapes {sa} and {sb} do not broadcast") from None
    m = sa[-2] if len(sa) > 1 else None
    n = sb[-1] if len(sb) > 1 else None
    shape = batch + tuple(d for d in (m, n) if d is not None)
    dtype = result_dtype(a.dtype, b.dtype)
    a, b = k.cast(a, dtype), k.cast(b, dtype)
    scalar = out is None and not shape
    if out is None:
        out = target = k.empty(shape, dtype)
        copy_back = False
    else:
        out = k.check_out(op, "out", out, shape, dtype, {"a": a, "b": b})
        target, copy_back = out_target(out, keep=False)  # odd byte strides, np.matrix: through a temporary

    A = k.strided(a, writable=False)
    B = k.strided(b, writable=False)
    C = k.strided(target, writable=True)
    if m is None:
        A = A.insert_axis(0)
        C = C.insert_axis(C.ndim - (0 if n is None else 1))
    if n is None:
        B = B.insert_axis(B.ndim)
        C = C.insert_axis(C.ndim)
    k.gemm.matmul_into(A, B, C, 1.0, 0.0)
    if copy_back:
        out[...] = target
    return out[()] if scalar else out


def gemm(a: Any, b: Any, c: Any = None, *, alpha: float = 1.0, beta: float = 0.0,
         trans_a: bool = False, trans_b: bool = False) -> Any:
    """General matrix multiply with BLAS semantics: ``alpha * op(a) @ op(b) + beta * c``.

    Parameters
    ----------
    a, b : array_like, 2-D, float32 or float64
        ``op(a)`` is ``(m, k)`` and ``op(b)`` is ``(k, n)``, where ``op(x)`` is ``x.T`` if the
        matching ``trans_*`` flag is set (no copy is made) and ``x`` otherwise.
    c : ndarray, shape (m, n), optional
        Updated in place and returned. Its dtype must be the result dtype
        (``numpy.result_type(a, b)``); it must not overlap ``a`` or ``b``. When ``beta == 0`` its
        old contents are not read (NaN in ``c`` does not propagate), as in BLAS.
    alpha, beta : float
        Real scalars. ``beta`` must be 0 when ``c`` is not given.
    trans_a, trans_b : bool
        Use the transpose of ``a`` / ``b``.

    Returns
    -------
    ndarray
        ``c`` if given, else a new ``(m, n)`` array.

    Raises
    ------
    ValueError
        Operands that are not 2-D, inner dimensions that differ, ``c`` of the wrong shape,
        read-only or overlapping, ``beta != 0`` without ``c``, or device operands on different GPUs.
    TypeError
        Unsupported dtypes, ``c`` of the wrong dtype, non-real ``alpha``/``beta``, non-bool
        ``trans_*``, host and device operands mixed, or Dask arrays (gemm writes into ``c`` in
        place; use :func:`matmul`, which takes Dask arrays, and scale the lazy result).

    Examples
    --------
    >>> import numpy as np, numlin as nl
    >>> c = np.ones((2, 2))
    >>> nl.gemm(np.eye(2), np.eye(2), c, alpha=2.0, beta=1.0)
    array([[3., 1.],
           [1., 3.]])
    """
    op = "gemm"
    if any(is_dask_array(x) for x in (a, b, c)):
        raise TypeError("gemm: Dask arrays are not supported (gemm writes into c in place); use "
                        "nl.matmul(a, b), which builds a lazy Dask graph of numlin GEMMs, and scale or add "
                        "the lazy result (alpha * nl.matmul(a, b) + beta * c)")
    alpha = as_real_scalar(op, "alpha", alpha)
    beta = as_real_scalar(op, "beta", beta)
    for name, flag in (("trans_a", trans_a), ("trans_b", trans_b)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{op}: {name} must be a bool, got {flag!r}")
    k = kernels(op, a=a, b=b, c=c)
    a = k.as_array(op, "a", a)
    b = k.as_array(op, "b", b)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 2:
            raise ValueError(f"{op}: {name} must be 2-D, got shape {tuple(x.shape)}")
    A_shape = tuple(a.shape)[::-1] if trans_a else tuple(a.shape)
    B_shape = tuple(b.shape)[::-1] if trans_b else tuple(b.shape)
    if A_shape[1] != B_shape[0]:
        raise ValueError(f"{op}: op(a) has shape {A_shape} and op(b) has shape {B_shape}: "
                         f"inner dimensions {A_shape[1]} != {B_shape[0]}")
    shape = (A_shape[0], B_shape[1])
    dtype = result_dtype(a.dtype, b.dtype)
    a, b = k.cast(a, dtype), k.cast(b, dtype)
    if c is None:
        if beta != 0:
            raise ValueError(f"{op}: beta={beta} needs an input c to scale; pass c or beta=0")
        c = target = k.empty(shape, dtype)
        copy_back = False
    else:
        c = k.check_out(op, "c", c, shape, dtype, {"a": a, "b": b})
        target, copy_back = out_target(c, keep=beta != 0)  # odd byte strides, np.matrix: through a temporary
    A = k.strided(a, writable=False)
    B = k.strided(b, writable=False)
    k.gemm.matmul_into(A.mT if trans_a else A, B.mT if trans_b else B, k.strided(target, writable=True), alpha, beta)
    if copy_back:
        c[...] = target
    return c
