"""GEMM's array front-ends: :func:`matmul` (numpy semantics) and :func:`gemm` (BLAS semantics)
on host or device arrays.

validate -> dispatch (host or device: ``_dispatch.backend``) -> the backend's ``gemm.matmul_into``.
The public ``numlin.matmul`` / ``numlin.gemm`` (:mod:`numlin._api`) send Tensors to autodiff and
Dask arrays to :mod:`._dask` first; everything else arrives here.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._dispatch import backend
from .._validate import as_real_scalar, out_target, result_dtype

__all__ = ["matmul", "gemm"]


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """:func:`numpy.matmul` of host or device arrays by numlin's GEMM (the array front-end of
    :func:`numlin.matmul`, which documents the arguments, results and errors; Tensors and Dask
    arrays are routed by :mod:`numlin._api`, never reach here)."""
    op = "matmul"
    be = backend(op, a=a, b=b, out=out)
    k = be.arrays
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
    be.gemm.matmul_into(A, B, C, 1.0, 0.0)
    if copy_back:
        out[...] = target
    return out[()] if scalar else out


def gemm(a: Any, b: Any, c: Any = None, *, alpha: float = 1.0, beta: float = 0.0,
         trans_a: bool = False, trans_b: bool = False) -> Any:
    """``alpha * op(a) @ op(b) + beta * c`` of host or device arrays (the array front-end of
    :func:`numlin.gemm`, which documents the arguments, results and errors)."""
    op = "gemm"
    alpha = as_real_scalar(op, "alpha", alpha)
    beta = as_real_scalar(op, "beta", beta)
    for name, flag in (("trans_a", trans_a), ("trans_b", trans_b)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{op}: {name} must be a bool, got {flag!r}")
    be = backend(op, a=a, b=b, c=c)
    k = be.arrays
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
    be.gemm.matmul_into(A.mT if trans_a else A, B.mT if trans_b else B, k.strided(target, writable=True), alpha, beta)
    if copy_back:
        c[...] = target
    return c
