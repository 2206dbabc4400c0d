"""Argument checking shared by every public function.

Errors follow numpy's conventions: TypeError for a wrong kind of object or dtype, ValueError for
wrong shapes or values; messages name the function, the argument and the offending value.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["FLOAT_DTYPES", "as_host_array", "check_dtype", "check_out", "out_target", "result_dtype", "as_real_scalar",
           "is_int"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(op: str, name: str, dtype: Any) -> np.dtype:
    """Return ``dtype`` if it is float32 or float64; otherwise raise TypeError naming it."""
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: {name} has dtype {dt}; numlin computes in float32 or float64 "
            f"(cast explicitly, e.g. {name}.astype(np.float64))"
        )
    return dt


def is_device_array(x: Any) -> bool:
    """True for numba device arrays (real or simulated) and ``__cuda_array_interface__`` objects
    (CuPy arrays, PyTorch CUDA tensors), told without importing numba."""
    if hasattr(x, "__cuda_array_interface__"):
        return True
    return (type(x).__module__ or "").startswith(("numba.cuda", "numba_cuda"))


def as_host_array(op: str, name: str, x: Any) -> np.ndarray:
    """``x`` as a float32/float64 ndarray (array-likes are converted, never the dtype)."""
    if x is None:
        raise TypeError(f"{op}: {name} is None; expected an array")
    # np.matrix is read as the ndarray it wraps (its 2-D-only indexing would break the kernels);
    # results are plain ndarrays, as np.asarray(np.matmul(...)) would be
    arr = x if type(x) is np.ndarray else np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{op}: {name} could not be converted to a numeric array")
    check_dtype(op, name, arr.dtype)
    return arr


def result_dtype(*dtypes: Any) -> np.dtype:
    """numpy's promotion restricted to float32/float64 (float32 with float64 gives float64)."""
    return np.result_type(*dtypes)


def is_int(value: Any) -> bool:
    """An integer (Python or numpy) and not a bool: what counts, sizes, axes and strides take."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def as_real_scalar(op: str, name: str, value: Any) -> float:
    """A real Python/numpy scalar as float; TypeError for anything else (complex, arrays, str)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def check_out(op: str, name: str, out: Any, shape: tuple, dtype: np.dtype, inputs: dict) -> np.ndarray:
    """Check a caller-provided output: an ndarray of exactly ``shape`` and ``dtype``, writable,
    sharing no memory with any of ``inputs`` (name -> array)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: {name} has dtype {out.dtype}, expected {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{op}: {name} is read-only")
    for iname, arr in inputs.items():
        if isinstance(arr, np.ndarray) and _overlap(out, arr):
            raise ValueError(f"{op}: {name} overlaps input {iname}; pass a separate output array")
    return out


def out_target(out: Any, *, keep: bool) -> tuple:
    """``(target, copy_back)``: the array a kernel should write for the checked output ``out``.

    A plain ndarray whose byte strides are multiples of its itemsize is its own target. Otherwise
    (a field of a structured array, a view with odd byte strides, an ndarray subclass such as
    np.matrix) the kernels cannot describe it in elements: they write a C-ordered temporary
    (holding ``out``'s values when ``keep``, e.g. ``gemm`` with ``beta != 0``) and ``copy_back`` is
    True: the caller then stores it with ``out[...] = target``, as numpy's own ``out=`` would.
    Device arrays are returned as they are.
    """
    if not isinstance(out, np.ndarray):
        return out, False
    if type(out) is np.ndarray and not any(s % out.itemsize for s in out.strides):
        return out, False
    view = out.view(np.ndarray)
    return (np.array(view, order="C") if keep else np.empty(view.shape, view.dtype)), True


def _overlap(x: np.ndarray, y: np.ndarray) -> bool:
    if not np.may_share_memory(x, y):
        return False
    try:
        return bool(np.shares_memory(x, y, max_work=10**6))
    except np.exceptions.TooHardError:  # undecidable cheaply: assume they overlap
        return True


def as_int(op: str, name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
           what: str = "an int") -> int:
    """``value`` as a Python int (Python or numpy integer, not a bool) in ``[minimum, maximum]``.

    Raises
    ------
    TypeError
        When ``value`` is not an integer (bools included), naming ``op``, ``name`` and the value.
    ValueError
        When it is out of range.
    """
    if not is_int(value):
        raise TypeError(f"{op}: {name} must be {what}, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{op}: {name} must be at most {maximum}, got {v}")
    return v


#: the largest size, stride, padding or dilation a convolution or pooling kernel takes (int32 indexing)
GEOMETRY_MAX = 2**31 - 1


def as_pair(op: str, name: str, value: Any, minimum: int, maximum: int = GEOMETRY_MAX) -> tuple[int, int]:
    """An int or a pair of ints as a pair of Python ints in ``[minimum, maximum]`` (TypeError for
    anything else, bools included; ValueError out of range; both name ``op``, ``name`` and the value)."""
    if is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(is_int(e) for e in value):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    a, b = int(value[0]), int(value[1])
    if min(a, b) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {(a, b)}")
    if max(a, b) > maximum:
        raise ValueError(f"{op}: {name} must be at most {maximum}, got {(a, b)}")
    return a, b


def as_layout(op: str, layout: Any) -> str:
    """``layout`` checked to be ``"NCHW"`` or ``"NHWC"`` (ValueError naming the value)."""
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{op}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
    return layout
