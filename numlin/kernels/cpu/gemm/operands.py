"""Host operands for the CPU kernels: strided descriptors of ndarrays and per-thread workspaces.

A matrix reaches a kernel as a *strided descriptor* ``(buf, off, rs, cs)`` over a 1-D buffer,
element ``(i, j)`` at ``buf[off + i*rs + j*cs]`` (strides in elements, any sign, zero for
broadcast): one compiled specialisation per dtype then serves C order, Fortran order, transposed
and sliced views alike, and packing absorbs the strides, so no operand is copied first. Inputs
reach the kernels as read-only views and outputs as writable ones, always, so that each kernel
compiles once per dtype.
"""
from __future__ import annotations

import threading

import numpy as np

from ...._strided import Strided

__all__ = ["strided", "workspace", "_readonly", "_rows_contiguous"]

#: each Python thread's scratch buffers: concurrent calls from several threads never share one
_local = threading.local()


def workspace(dtype, n_elems: int, slot: str = "gemm") -> np.ndarray:
    """A per-Python-thread, 64-byte aligned scratch buffer of ``n_elems`` elements, reused across
    calls (no page faults after the first) and grown on demand; ``slot`` names independent ones."""
    cache = _local.__dict__.setdefault("work", {})
    key = (np.dtype(dtype), slot)
    buf = cache.get(key)
    if buf is None or buf.size < n_elems:
        raw = np.empty(n_elems + 64, dtype=dtype)
        shift = (-raw.ctypes.data % 64) // raw.itemsize
        buf = raw[shift:shift + n_elems]
        cache[key] = buf
    return buf[:n_elems]


class _Holder:
    def __init__(self, iface, base):
        self.__array_interface__ = iface
        self.base = base


def strided(x: np.ndarray, *, writable: bool) -> Strided:
    """Describe ndarray ``x`` as a :class:`~numlin._strided.Strided` over a 1-D view (no copy).

    Inputs get read-only views and outputs writable ones, so the kernels compile once per dtype.
    An array whose byte strides are not multiples of its itemsize is copied first.
    """
    isz = x.itemsize
    if x.size and (x.flags.c_contiguous or x.flags.f_contiguous):  # the common case: a plain view
        buf = x.ravel(order="K")  # a view in memory order
        if not writable:
            buf = buf.view()
            buf.flags.writeable = False
        return Strided(buf, 0, x.shape, tuple(s // isz for s in x.strides))
    if any(s % isz for s in x.strides):
        x = np.ascontiguousarray(x)
    es = tuple(s // isz for s in x.strides)
    if x.size == 0:
        buf = np.zeros(1, x.dtype)
        buf.flags.writeable = writable
        return Strided(buf, 0, x.shape, es)
    lo = sum((d - 1) * s for d, s in zip(x.shape, es) if s < 0)
    hi = sum((d - 1) * s for d, s in zip(x.shape, es) if s > 0)
    iface = {
        "data": (x.__array_interface__["data"][0] + lo * isz, not writable),
        "shape": (hi - lo + 1,),
        "typestr": x.dtype.str,
        "version": 3,
    }
    return Strided(np.asarray(_Holder(iface, x)), -lo, x.shape, es)


def _readonly(s: Strided) -> Strided:
    """``s`` over a read-only view of its buffer: every caller's inputs reach the kernels with one
    array type (a writable input would compile each kernel a second time)."""
    if s.buf.flags.writeable:
        buf = s.buf.view()
        buf.flags.writeable = False
        return s._replace(buf=buf)
    return s


def _rows_contiguous(b: Strided, batch: tuple) -> Strided:
    """The ``(k, n)`` operand ``b`` as a C-contiguous copy when the whole batch shares one B
    with non-negative strides (``g @ Wᵀ`` of a layer's backward), else ``b`` unchanged."""
    if not all(s >= 0 for s in b.strides) or (batch and not (b.batch_offsets(batch) == b.off).all()):
        return b
    k, n = b.shape[-2:]
    isz = b.buf.itemsize
    view = np.lib.stride_tricks.as_strided(b.buf[b.off:], (k, n), (b.strides[-2] * isz, b.strides[-1] * isz),
                                           writeable=False)
    buf = np.ascontiguousarray(view).reshape(-1)
    buf.flags.writeable = False
    return Strided(buf, 0, (k, n), (n, 1))
