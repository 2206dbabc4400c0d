"""CPU kernels (``@njit``, on numlin's threads) and the host-array helpers the front-ends use with them.

The kernel subpackages (``gemm``, ``conv``, ``buffers``) and ``strided`` / ``workspace`` load on
first use (module ``__getattr__``): the helpers here need no Numba, and Numba's import waits for
the first kernel (see :mod:`._jit`).
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ..._validate import as_host_array, check_out
from . import _pool

__all__ = ["as_array", "cast", "contiguous", "empty", "full", "check_out", "strided", "transpose_last2", "workspace", "buffers", "conv", "gemm"]


def as_array(op: str, name: str, x: Any) -> np.ndarray:
    """``x`` as a float32/float64 ndarray (TypeError for other dtypes)."""
    return as_host_array(op, name, x)


def cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` in ``dtype`` (a copy only when the dtype differs)."""
    return x if x.dtype == dtype else x.astype(dtype)


def empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-ordered result array (a large one reuses a dropped result's memory,
    :mod:`._pool`)."""
    return _pool.empty(shape, dtype)


def full(shape: tuple, value: float, dtype: np.dtype) -> np.ndarray:
    """A new C-ordered array of ``shape`` filled with ``value``."""
    return _pool.full(shape, value, dtype)


def contiguous(x: np.ndarray) -> np.ndarray:
    """``x`` in C order (a copy only if it is not already)."""
    return np.ascontiguousarray(x)


def transpose_last2(x: np.ndarray) -> np.ndarray:
    """A view of ``x`` with its last two axes swapped."""
    return np.swapaxes(x, -1, -2)


def __getattr__(name: str) -> Any:
    if name in ("buffers", "conv", "gemm"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("strided", "workspace"):
        value = globals()[name] = getattr(importlib.import_module(f"{__name__}.gemm"), name)  # once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
