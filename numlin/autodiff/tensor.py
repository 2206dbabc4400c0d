"""Tensors: a float32/float64 (or integer, non-differentiable) array on the host or the GPU.

A :class:`Tensor` wraps a numpy array (CPU kernels) or a numba device array (CUDA kernels).
Its operators (``+ - * / ** @``, reflected ones included, unary ``-`` and ``abs``) and the
methods ``T``, ``reshape``, ``transpose``, ``sum``, ``mean`` and ``max`` are the differentiable
ops of :mod:`numlin.autodiff.ops`, which attaches them when it is imported (``import numlin``
does), so that imports run one way: ops -> tensor. Tensors are immutable as far as the
engine is concerned; a :class:`Variable` is the mutable, trainable kind that tapes watch
automatically and optimizers update in place.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._dispatch import backend_named, is_device_array

__all__ = ["Tensor", "Variable", "constant", "as_tensor"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _backend_of(data) -> str:
    if type(data) is np.ndarray:  # the common case, without is_device_array's attribute probe
        return "cpu"
    return "cuda" if is_device_array(data) else "cpu"


def _to_device(arr: np.ndarray):
    from numba import cuda

    # not np.ascontiguousarray: it turns a 0-d array (a scalar operand) into shape (1,)
    return cuda.to_device(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))


class Tensor:
    """An array that autodiff operations accept and return.

    Parameters
    ----------
    value : array_like, Tensor or device array
        Data. numpy arrays of float32/float64 keep their dtype; Python floats and other
        array-likes become float64 (numpy's rule) unless ``dtype`` is given; integer and bool
        data stay integer (usable as labels, not differentiable). Other dtypes (float16,
        longdouble, complex, object, strings) raise TypeError naming the dtype; float16 and
        longdouble convert when ``dtype`` asks for it explicitly, complex never does (the
        imaginary part would be lost).
    dtype : dtype, optional
        float32, float64 or an integer dtype.
    device : {"cpu", "cuda"}, optional
        Where the data lives. Default: where ``value`` lives. ``"cuda"`` copies host data to the
        current GPU; ``"cpu"`` copies device data to the host.

    Notes
    -----
    A numpy ``value`` is copied (as ``tf.constant`` and ``torch.tensor`` do); a device array is
    wrapped without a copy. Construction is never recorded by tapes: ``Tensor([a, b])`` of Tensors
    is a constant; to keep the gradient, pass the list to an op (``nl.mean([a, b])``) or use
    ``nl.autodiff.stack([a, b])``. ``numpy()`` returns a read-only view on the CPU. numpy's ufuncs
    (``np.exp(t)``) raise TypeError: use ``nl.exp``, which the tape records.
    ``==`` compares identity (tensors are hashable, like Python objects); compare values with
    ``numpy()``. Arithmetic operators follow numpy broadcasting; Python scalars adopt the
    tensor's dtype (numpy 2's weak scalars).
    """

    __slots__ = ("_data", "__weakref__")
    __array_priority__ = 1000
    # numpy ufuncs refuse Tensors (TypeError) instead of silently dropping them from the tape;
    # ``ndarray <op> Tensor`` then runs the Tensor's reflected operator. Use nl.exp etc.
    __array_ufunc__ = None

    def __init__(self, value: Any, dtype: Any = None, device: str | None = None):
        self._data = _convert(value, dtype, device)

    @classmethod
    def _wrap(cls, data) -> "Tensor":
        """A Tensor around kernel output ``data`` (no checks, no copy)."""
        t = Tensor.__new__(Tensor)
        t._data = data
        return t

    # ----------------------------------------------------------------- properties
    @property
    def data(self):
        """The underlying numpy array or numba device array (do not modify it in place)."""
        return self._data

    @property
    def shape(self) -> tuple:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._data.dtype)

    @property
    def ndim(self) -> int:
        return len(self._data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return _backend_of(self._data)

    @property
    def trainable(self) -> bool:
        return False

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The value as a numpy array: a copy from the GPU; on the CPU a read-only view (a tape may
        hold the same buffer for its backward pass, so it must not change)."""
        if self.device == "cuda":
            return self._data.copy_to_host()
        view = self._data.view()
        view.flags.writeable = False
        return view

    def to(self, device: str) -> "Tensor":
        """This tensor's value on ``device`` (``"cpu"`` or ``"cuda"``); not recorded by tapes."""
        return Tensor(self, device=device)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError(f"Tensor of dtype {a.dtype} cannot become {np.dtype(dtype)} without a copy")
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self) -> float | int:
        if self.size != 1:
            raise ValueError(f"item: only a tensor with one element converts to a scalar, got shape {self.shape}")
        return self.numpy().reshape(-1)[0].item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self.numpy()), separator=", ", prefix=" " * 7)
        extra = "" if self.device == "cpu" else ", device='cuda'"
        return f"{type(self).__name__}({body}, dtype={self.dtype}{extra})"

    # the operators and reshape / transpose / sum / mean / max / T: attached by numlin.autodiff.ops


class Variable(Tensor):
    """A trainable tensor: watched automatically by tapes (``watch_accessed_variables=True``) and
    updated in place by optimizers. Must be float32 or float64.

    Parameters
    ----------
    value, dtype, device
        As :class:`Tensor`.
    name : str, optional
        A label shown in ``repr`` and error messages.
    trainable : bool
        ``False`` makes it a mutable constant that tapes do not watch on their own.
    """

    __slots__ = ("name", "_trainable", "_version")

    def __init__(self, value: Any, dtype: Any = None, device: str | None = None, *, name: str | None = None,
                 trainable: bool = True):
        super().__init__(value, dtype, device)
        if self.dtype not in _FLOATS:
            raise TypeError(f"Variable: dtype {self.dtype} is not differentiable; use float32 or float64")
        if self.device == "cpu":  # a Variable owns its buffer: updates never write into the caller's array
            self._data = np.array(self._data, order="C")
        else:
            from numba import cuda

            own = cuda.device_array(tuple(self._data.shape), self._data.dtype)
            own.copy_to_device(self._data)
            self._data = own
        self.name = name
        self._trainable = bool(trainable)
        self._version = 0  # bumped by every in-place change; tapes check it (see _record.Node)

    @property
    def trainable(self) -> bool:
        return self._trainable

    def assign(self, value: Any) -> "Variable":
        """Overwrite the value in place (same shape; cast to this variable's dtype; complex values
        raise TypeError)."""
        new = _convert(value, self.dtype, self.device)
        if tuple(new.shape) != self.shape:
            raise ValueError(f"assign: value has shape {tuple(new.shape)}, variable has shape {self.shape}")
        if self.device == "cuda":
            self._data.copy_to_device(new)
        else:
            self._data[...] = new
        self._version += 1
        return self

    def numpy(self) -> np.ndarray:
        """A copy of the current value (the variable changes in place; a view would too)."""
        return self._data.copy_to_host() if self.device == "cuda" else self._data.copy()

    def _move(self, device: str) -> None:
        """Move the value to ``device`` in place (the same Variable object, references stay valid)."""
        if device != self.device:
            self._data = Variable(self, device=device)._data
            self._version += 1

    def assign_sub(self, delta: Any) -> "Variable":
        """``self -= delta`` in place (``delta`` broadcast to this variable's shape)."""
        return self.assign(Tensor._wrap(self._data) - delta)  # the differentiable subtract (ops)

    def __repr__(self) -> str:
        return super().__repr__().replace("Variable(", f"Variable({self.name!r}, " if self.name else "Variable(", 1)


def _convert(value: Any, dtype: Any, device: str | None):
    """``value`` as a numpy array or numba device array of ``dtype`` on ``device``."""
    if isinstance(value, Tensor):
        value = value.data
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if is_device_array(value):
        data = value if type(value).__module__.startswith(("numba", "numba_cuda")) else _device_view(value)
        if np.dtype(data.dtype).kind == "c":
            raise TypeError(f"Tensor: complex data (dtype {np.dtype(data.dtype)}) is not supported "
                            "(float32, float64 or integer)")
        if dtype is not None and np.dtype(dtype) != np.dtype(data.dtype):
            data = backend_named("cuda").arrays.cast(data, _check_dtype(dtype))
        if device == "cpu":
            return data.copy_to_host()
        return data
    if isinstance(value, np.ndarray):
        arr = np.array(value)  # a Tensor owns its value: later writes to the caller's array change nothing
    else:
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"Tensor: cannot make an array of value ({exc})") from None
        except Exception as exc:
            raise TypeError(f"Tensor: cannot convert {type(value).__name__} to an array ({exc})") from None
    if arr.dtype.kind == "c":  # astype would drop the imaginary part without a word
        raise TypeError(f"Tensor: complex data (dtype {arr.dtype}) is not supported (float32, float64 or integer)")
    if arr.dtype.kind not in "fiub":  # strings, objects, dates: with or without dtype=
        raise TypeError(f"Tensor: dtype {arr.dtype} is not supported (float32, float64 or integer)")
    if dtype is not None:
        arr = arr.astype(_check_dtype(dtype), copy=False)  # an explicit dtype is an explicit cast
    elif arr.dtype.kind == "f" and arr.dtype not in _FLOATS:
        raise TypeError(f"Tensor: dtype {arr.dtype} is not supported (float32, float64 or integer; "
                        "pass dtype= to convert)")
    if device == "cuda":
        return _to_device(arr)
    return arr


def _device_view(x):
    from numba import cuda

    return cuda.as_cuda_array(x)


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"Tensor: dtype {dtype!r} is not a dtype (float32, float64 or integer)") from None
    if dt.kind not in "fiub" or (dt.kind == "f" and dt not in _FLOATS):
        raise TypeError(f"Tensor: dtype {dt} is not supported (float32, float64 or integer)")
    return dt


def constant(value: Any, dtype: Any = None, device: str | None = None) -> Tensor:
    """A :class:`Tensor` holding ``value`` (TensorFlow's ``tf.constant``): see :class:`Tensor`."""
    return Tensor(value, dtype, device)


def as_tensor(x: Any) -> Tensor:
    """``x`` itself if it is a Tensor, else ``Tensor(x)``."""
    return x if isinstance(x, Tensor) else Tensor(x)
