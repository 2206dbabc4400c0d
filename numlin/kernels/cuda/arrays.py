"""Device-array helpers for the CUDA front-ends: conversion, allocation, checks, descriptors.

The helpers that launch a kernel (``cast``, ``contiguous``, ``full``: device copies and fills)
are in :mod:`.elementwise`, which builds on this module; the package façade
(:mod:`numlin.kernels.cuda`) exports both.

Accepted inputs: numba device arrays (the CUDA simulator's ``FakeCUDAArray`` included) and any
object exposing ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors), viewed
zero-copy through ``numba.cuda.as_cuda_array``. Results are numba device arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import config, cuda

from ..._strided import Strided
from ..._validate import check_dtype, is_device_array

__all__ = ["as_array", "empty", "check_out", "strided", "transpose_last2", "workspace", "device_key", "SIMULATOR"]

SIMULATOR = bool(config.ENABLE_CUDASIM)


def _host_view(x) -> np.ndarray:
    """The numpy array behind a simulator device array (shares memory)."""
    return x._ary


def as_array(op: str, name: str, x: Any):
    """``x`` as a float32/float64 numba device array, without copying."""
    if not is_device_array(x):
        raise TypeError(f"{op}: {name} is not a device array")
    arr = x if SIMULATOR or cuda.devicearray.is_cuda_ndarray(x) else cuda.as_cuda_array(x)
    check_dtype(op, name, arr.dtype)
    return arr


def flat(x):
    """A C-contiguous device array as a 1-D view (the kernels' flat buffers)."""
    return x.reshape(int(np.prod(x.shape, dtype=np.int64)))


def empty(shape: tuple, dtype: np.dtype):
    """An uninitialised C-ordered device array."""
    return cuda.device_array(shape, dtype)


def transpose_last2(x):
    """A view of device array ``x`` with its last two axes swapped (numba's transpose is 2-D only)."""
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(np.swapaxes(_host_view(x), -1, -2))
    shape, st = tuple(x.shape), tuple(x.strides)
    return cuda.devicearray.DeviceNDArray(shape[:-2] + (shape[-1], shape[-2]), st[:-2] + (st[-1], st[-2]), x.dtype,
                                          gpu_data=x.gpu_data)


_pool: dict = {}


def device_key() -> int:
    """The current device's ordinal (0 under the simulator): keys the caches of device data."""
    return 0 if SIMULATOR else int(cuda.get_current_device().id)


def workspace(dtype, n_elems: int, slot: str = "gemm"):
    """A reused device scratch buffer of ``n_elems`` elements per (thread, device, dtype, slot)."""
    import threading

    key = (threading.get_ident(), device_key(), np.dtype(dtype), slot)
    buf = _pool.get(key)
    if buf is None or buf.size < n_elems:
        buf = _pool[key] = cuda.device_array(max(n_elems, 1), dtype)
    return buf[:n_elems] if buf.size != n_elems else buf


def _extent(x) -> tuple[int, int]:
    """Byte range ``[lo, hi)`` of device memory that ``x`` touches."""
    if x.size == 0:
        return (0, 0)
    if SIMULATOR:
        base = _host_view(x).__array_interface__["data"][0]
    else:
        base = x.__cuda_array_interface__["data"][0]
    lo = base + sum((d - 1) * s for d, s in zip(x.shape, x.strides) if s < 0)
    hi = base + sum((d - 1) * s for d, s in zip(x.shape, x.strides) if s > 0) + x.dtype.itemsize
    return lo, hi


def check_out(op: str, name: str, out: Any, shape: tuple, dtype: np.dtype, inputs: dict):
    """A caller's device output: exactly ``shape`` and ``dtype``, sharing no memory with ``inputs``."""
    if not is_device_array(out):
        raise TypeError(f"{op}: {name} must be a device array, got {type(out).__name__}")
    out = as_array(op, name, out) if not SIMULATOR else out
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: {name} has dtype {out.dtype}, expected {dtype}")
    lo, hi = _extent(out)
    for iname, arr in inputs.items():
        alo, ahi = _extent(arr)
        if lo < ahi and alo < hi:
            raise ValueError(f"{op}: {name} overlaps input {iname}; pass a separate output array")
    return out


def strided(x, *, writable: bool) -> Strided:
    """Describe device array ``x`` as a :class:`~numlin._strided.Strided` over a 1-D device view.

    Strides must be non-negative on a real device (numba device arrays have no negative
    strides; a CuPy view with them is rejected with ValueError).
    """
    isz = x.dtype.itemsize
    if any(s % isz for s in x.strides):
        raise ValueError(f"device array strides {x.strides} are not multiples of the itemsize {isz}")
    es = tuple(s // isz for s in x.strides)
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        from ..cpu.gemm import strided as host_strided

        d = host_strided(_host_view(x), writable=True)
        return Strided(FakeCUDAArray(d.buf), d.off, d.shape, d.strides)
    if any(s < 0 for s in es):
        raise ValueError(f"device arrays with negative strides {x.strides} are not supported; copy it first")
    span = 1 + sum((d - 1) * s for d, s in zip(x.shape, es)) if x.size else 1
    if x.size == 0:
        return Strided(cuda.device_array(1, x.dtype), 0, tuple(x.shape), es)
    buf = cuda.devicearray.DeviceNDArray(shape=(span,), strides=(isz,), dtype=x.dtype, gpu_data=x.gpu_data)
    return Strided(buf, 0, tuple(x.shape), es)
