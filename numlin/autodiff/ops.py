"""Differentiable operations: each op's forward kernel call and its backward rule side by side.

Forward: the jitted kernel of the backend the data lives on (``numlin._dispatch``'s Backend for
the tensor's device: elementwise ufuncs with fused broadcasting, reductions, numlin's GEMM).
Backward (``vjp``): written with these same ops, so it runs the same kernels and nested tapes can
differentiate it again, to any order. The neural-network ops (conv2d, the pools, log-softmax,
cross-entropy) are in :mod:`.nn_ops`, built on the plumbing here. Without a recording tape the
ops record nothing, so first derivatives cost the kernel calls alone.

Dtypes: float32 and float64 (numpy promotion between them); integer tensors are cast to float64
when an op needs floats (numpy's rule) and are never differentiable; Python scalars adopt the
other operand's dtype (numpy 2's weak scalars).

Operands: a Tensor, a numpy array or scalar, a Python number, or a (nested) list or tuple; one
holding Tensors is stacked on the tape by :func:`stack` (``nl.mean([a, b])`` is numpy's
``np.mean([a, b])``, and its gradient reaches ``a`` and ``b``).

Importing this module gives :class:`~.tensor.Tensor` its operators (``+ - * / @ **``, ``.T``,
``.sum()`` ...): they are these ops, attached at the end of the module, so that ``tensor.py``
never imports this one.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np

from .._dispatch import _BACKENDS, Backend, holds_tensor
from .._validate import is_int
from ..linalg.gemm import matmul as _array_matmul
from ._record import STACK as _STACK, record as _record
from .tensor import Tensor

__all__ = [
    "add", "subtract", "multiply", "divide", "power", "negative", "exp", "log", "sin", "cos", "tanh",
    "sqrt", "abs", "relu", "sigmoid", "sign", "sum", "mean", "max", "reshape", "transpose", "flatten",
    "broadcast_to", "matmul", "ones_like", "zeros_like", "cast", "stack",
]

TensorLike = Any  # Tensor, numpy array, Python or numpy scalar


# --------------------------------------------------------------------------- plumbing
def _k(t: Tensor) -> Backend:
    """The kernels of the device ``t`` lives on (``.elementwise``, ``.arrays``, ``.pool``, ...)."""
    return _BACKENDS[t.device]


def _make(name: str, data, inputs: tuple, vjp: Callable | None) -> Tensor:
    """Wrap kernel output ``data`` and record it (``vjp=None``: not differentiable, nothing recorded)."""
    out = Tensor._wrap(data)
    if vjp is not None and _STACK.tapes:
        _record(name, inputs, out, vjp)
    return out


def _is_weak(x: Any) -> bool:
    """Python scalars are weak (NEP 50); numpy scalars (``np.float64`` subclasses float) are not."""
    return isinstance(x, numbers.Real) and not isinstance(x, (np.ndarray, np.generic))


def _holds_tensor(x: Any) -> bool:
    """True for a (nested) list or tuple with a Tensor somewhere inside."""
    return isinstance(x, (list, tuple)) and holds_tensor(x)


def _as_tensor(x: TensorLike, op: str) -> Tensor:
    """``x`` as a Tensor: itself, a (nested) list/tuple holding Tensors stacked on the tape
    (numpy's ``np.mean([a, b])`` stacks; the gradient reaches every element), else ``Tensor(x)``."""
    if isinstance(x, Tensor):
        return x
    if _holds_tensor(x):
        return _stack_nested(x, op)
    return Tensor(x)


def _stack_nested(items: Sequence, op: str) -> Tensor:
    """A (nested) list/tuple holding Tensors as one Tensor, by differentiable :func:`stack`s."""
    parts = [_stack_nested(i, op) if _holds_tensor(i) else i for i in items]
    ts = [p for p in parts if isinstance(p, Tensor)]
    devices = {t.device for t in ts}
    if len(devices) > 1:
        raise TypeError(f"{op}: a list mixes tensors on different devices ({sorted(devices)}); move them with .to()")
    device = ts[0].device
    dt = np.result_type(*[t.dtype for t in ts])
    weak = [p for p in parts if _is_weak(p)]
    if any(not isinstance(w, numbers.Integral) for w in weak) and dt.kind != "f":
        dt = np.dtype(np.float64)
    out = []
    for p in parts:
        if not isinstance(p, Tensor):
            if device == "cuda" and not _is_weak(p) and not isinstance(p, np.generic):
                raise TypeError(f"{op}: a list mixes host data with GPU tensors; make them Tensor(..., device='cuda')")
            p = Tensor(np.asarray(p, dt) if _is_weak(p) else p, device=device if device == "cuda" else None)
        out.append(p)
    return stack(out, op=op)


def stack(values: Sequence[TensorLike], axis: int = 0, *, op: str = "stack") -> Tensor:
    """Tensors of one shape joined along a new leading axis (``axis=0`` only), as ``np.stack``;
    differentiable (each input's gradient is its slice). Python scalars take the tensors' dtype;
    float32 and float64 promote to float64. Ops given a list or tuple holding Tensors stack it
    with this (``nl.mean([a, b])``), as numpy does."""
    if axis != 0:
        raise ValueError(f"{op}: only axis=0 is supported, got {axis!r}")
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{op}: values must be a list or tuple of tensors, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{op}: values must not be empty")
    if not all(isinstance(v, Tensor) for v in values):
        return _stack_nested(values, op) if _holds_tensor(values) else Tensor(np.stack(values))
    devices = {t.device for t in values}
    if len(devices) > 1:
        raise TypeError(f"{op}: a list mixes tensors on different devices ({sorted(devices)}); move them with .to()")
    shapes = {t.shape for t in values}
    if len(shapes) > 1:
        raise ValueError(f"{op}: the list's elements must all have one shape to be stacked, got "
                         f"{sorted(shapes, key=str)}")
    dt = np.result_type(*[t.dtype for t in values])
    ts = tuple(_cast(t, dt) if t.dtype.kind == "f" else Tensor._wrap(_k(t).arrays.cast(t.data, dt)) for t in values)
    if ts[0].device == "cuda":
        arrays = _k(ts[0]).arrays
        data = arrays.empty((len(ts),) + ts[0].shape, dt)
        for i, t in enumerate(ts):
            if t.size:
                data[i].copy_to_device(arrays.contiguous(t.data))
    else:
        data = np.stack([t.data for t in ts])
    vjp = None if dt.kind != "f" else (lambda g, needs: tuple(_slice(g, i, len(ts)) if n else None
                                                              for i, n in enumerate(needs)))
    return _make("stack", data, ts, vjp)


def _slice(x: Tensor, i: int, n: int) -> Tensor:
    """``x[i]`` along the leading axis (of length ``n``); the gradient is ``g`` stacked among zeros."""

    def vjp(g, needs):
        z = zeros_like(g)
        return (stack([g if j == i else z for j in range(n)]),)

    ew = _k(x).elementwise  # a slice then a reshape: a plain ``data[i]`` of a 1-D numpy array is a numpy scalar
    return _make("slice", ew.reshape(x.data[i:i + 1], x.shape[1:]), (x,), vjp)


def _tensor(x: TensorLike, op: str, name: str = "x") -> Tensor:
    """``x`` as a Tensor with a float dtype (integers are cast to float64; not recorded)."""
    t = _as_tensor(x, op)
    if t.dtype.kind != "f":
        t = Tensor._wrap(_k(t).arrays.cast(t.data, np.dtype(np.float64)))
    return t


def _operand(x: TensorLike, like: Tensor, op: str) -> Tensor:
    """``x`` as a Tensor on ``like``'s device; a weak Python scalar takes ``like``'s dtype."""
    if isinstance(x, Tensor):
        if x.device != like.device:
            raise TypeError(f"{op}: operands are on different devices ({like.device} and {x.device}); "
                            "move one with .to(device)")
        return x
    if _is_weak(x):
        return Tensor(np.asarray(x, like.dtype if like.dtype.kind == "f" else np.float64), device=like.device)
    if _holds_tensor(x):
        t = _stack_nested(x, op)
        if t.device != like.device:
            raise TypeError(f"{op}: operands are on different devices ({like.device} and {t.device}); "
                            "move one with .to(device)")
        return t
    if like.device == "cuda" and isinstance(x, (np.ndarray, list, tuple)):
        raise TypeError(f"{op}: a host array combined with a GPU tensor; make it a Tensor(..., device='cuda')")
    return Tensor(x, device=like.device if like.device == "cuda" else None)


def _pair(a: TensorLike, b: TensorLike, op: str) -> tuple[Tensor, Tensor]:
    """Two float operands of one dtype and device (numpy promotion, weak Python scalars)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        if _is_weak(a) and _is_weak(b):
            a, b = Tensor(np.float64(a)), Tensor(np.float64(b))
        elif _is_weak(a):
            b = _as_tensor(b, op)
        else:
            a = _as_tensor(a, op)
    if isinstance(a, Tensor):
        b = _operand(b, a, op)
    else:
        a = _operand(a, b, op)
    dt = np.result_type(a.dtype, b.dtype)
    if dt.kind != "f":
        dt = np.dtype(np.float64)
    return _cast(a, dt), _cast(b, dt)


def _cast(t: Tensor, dtype: np.dtype) -> Tensor:
    """``t`` in ``dtype``; recorded (the gradient is cast back), integer sources excepted."""
    if t.dtype == dtype:
        return t
    data = _k(t).arrays.cast(t.data, np.dtype(dtype))
    if t.dtype.kind != "f":
        return Tensor._wrap(data)
    src = t.dtype
    return _make("cast", data, (t,), lambda g, needs: (_cast(g, src),))


def cast(x: TensorLike, dtype: Any) -> Tensor:
    """``x`` converted to float32 or float64 (differentiable; the gradient is cast back)."""
    if dtype is None:
        raise TypeError("cast: dtype must be float32 or float64, got None")
    dt = np.dtype(dtype)
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise TypeError(f"cast: dtype {dt} is not float32 or float64")
    return _cast(_as_tensor(x, "cast"), dt)


def _broadcast_shape(op: str, a: tuple, b: tuple) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ValueError(f"{op}: operands could not be broadcast together with shapes {a} and {b}") from None


def _sum_to(g: Tensor, shape: tuple) -> Tensor:
    """``g`` summed over the axes that broadcasting added or stretched, back to ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    return reshape(sum(g, axes, keepdims=True), shape)


def ones_like(x: Tensor) -> Tensor:
    """A tensor of ones with ``x``'s shape, dtype (float) and device."""
    x = _as_tensor(x, "ones_like")
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return Tensor._wrap(_k(x).arrays.full(x.shape, 1.0, dt))


def zeros_like(x: Tensor) -> Tensor:
    """A tensor of zeros with ``x``'s shape, dtype (float) and device."""
    x = _as_tensor(x, "zeros_like")
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return Tensor._wrap(_k(x).arrays.full(x.shape, 0.0, dt))


# --------------------------------------------------------------------------- elementwise
def _unary(rule: str, vjp: Callable | None, doc: str) -> Callable[[TensorLike], Tensor]:
    """A unary op running kernel rule ``rule``; ``vjp(x, y, g) -> gx`` (None: not differentiable)."""

    def op(x: TensorLike) -> Tensor:
        x = _tensor(x, rule)
        y = _make(rule, _k(x).elementwise.unary(rule, x.data), (x,), None if vjp is None else
                  (lambda g, needs: (vjp(x, y, g),)))
        return y

    op.__name__ = op.__qualname__ = {"neg": "negative", "abs": "abs"}.get(rule, rule)
    op.__doc__ = f"{doc}, elementwise (a Tensor; float32/float64)."
    return op


def _binary(rule: str, vjp: Callable | None, doc: str) -> Callable[[TensorLike, TensorLike], Tensor]:
    """A broadcasting binary op running kernel rule ``rule``;
    ``vjp(a, b, y, g, needs) -> (ga, gb)`` before the broadcast axes are summed away."""

    def op(a: TensorLike, b: TensorLike) -> Tensor:
        a, b = _pair(a, b, rule)
        _broadcast_shape(op.__name__, a.shape, b.shape)

        def back(g, needs):
            ga, gb = vjp(a, b, y, g, needs)
            return (None if ga is None else _sum_to(ga, a.shape), None if gb is None else _sum_to(gb, b.shape))

        y = _make(rule, _k(a).elementwise.binary(rule, a.data, b.data), (a, b), None if vjp is None else back)
        return y

    op.__name__ = op.__qualname__ = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide",
                                     "pow": "power"}.get(rule, rule)
    op.__doc__ = (f"{doc}, elementwise with numpy broadcasting (Tensors, arrays or scalars in; a Tensor "
                  "out). Raises ValueError naming both shapes when they do not broadcast.")
    return op


# one line per rule: forward kernel name, then the gradient in terms of the other ops
add = _binary("add", lambda a, b, y, g, n: (g, g), "a + b")
subtract = _binary("sub", lambda a, b, y, g, n: (g, negative(g) if n[1] else None), "a - b")
multiply = _binary("mul", lambda a, b, y, g, n: (multiply(g, b) if n[0] else None,
                                                 multiply(g, a) if n[1] else None), "a * b")
divide = _binary("div", lambda a, b, y, g, n: (divide(g, b) if n[0] else None,
                                               negative(divide(multiply(g, y), b)) if n[1] else None), "a / b")
def _pow_grad_a(a: Tensor, b: Tensor) -> Tensor:
    """d(a**b)/da = b a**(b-1), taken as 0 where b == 0 (PyTorch's ``pow_backward``), also at a = 0.
    Where b == 0 the power reads a base of 1 instead of a (the "double where"): 0 * 0**-1 would be
    NaN in this rule's own derivative, so d²/da² of a**0 would be NaN instead of 0."""
    if b.size == 1 and b.device == "cpu" and np.all(b.data != 0):  # the common x ** 2.0: nothing to mask
        return multiply(b, power(a, subtract(b, 1.0)))
    # a where b != 0 (NaN included), else 1; the second term is -0.0 where b != 0 so that a = -0.0
    # keeps its sign
    b_zero = _equal(b, 0.0)
    safe_a = add(_relu_grad(subtract(1.0, b_zero), a), negative(_relu_grad(b_zero, -1.0)))
    return multiply(b, power(safe_a, subtract(b, 1.0)))  # exactly 0 where b == 0; NaN where b is NaN


def _pow_grad_b(a: Tensor, y: Tensor) -> Tensor:
    """d(a**b)/db = a**b log(a), taken as 0 where a <= 0 (TensorFlow's rule; PyTorch gives NaN for a < 0);
    the log reads 1 there, so its own derivative stays finite (0, not 0/0)."""
    safe_a = add(_relu_grad(a, a), subtract(1.0, _relu_grad(a, ones_like(a))))  # a where a > 0, else 1
    return _relu_grad(a, multiply(y, log(safe_a)))


power = _binary("pow", lambda a, b, y, g, n: (multiply(g, _pow_grad_a(a, b)) if n[0] else None,
                                              multiply(g, _pow_grad_b(a, y)) if n[1] else None), "a ** b")
negative = _unary("neg", lambda x, y, g: negative(g), "-x")
exp = _unary("exp", lambda x, y, g: multiply(g, y), "exp(x)")
log = _unary("log", lambda x, y, g: divide(g, x), "natural logarithm of x")
sin = _unary("sin", lambda x, y, g: multiply(g, cos(x)), "sin(x)")
cos = _unary("cos", lambda x, y, g: negative(multiply(g, sin(x))), "cos(x)")
sqrt = _unary("sqrt", lambda x, y, g: divide(multiply(g, 0.5), y), "square root of x")
sign = _unary("sign", None, "sign of x (-1, 0, 1; not differentiable: its gradient is zero)")
abs = _unary("abs", lambda x, y, g: multiply(g, sign(x)), "|x| (gradient sign(x), 0 at 0)")
relu = _unary("relu", lambda x, y, g: _relu_grad(x, g), "max(x, 0) (gradient 0 at 0, as in PyTorch)")
tanh = _unary("tanh", lambda x, y, g: _tanh_grad(y, g), "tanh(x)")
sigmoid = _unary("sigmoid", lambda x, y, g: _sigmoid_grad(y, g), "1 / (1 + exp(-x))")
# fused gradient kernels, themselves differentiable (for second derivatives)
_relu_grad = _binary("relu_grad", lambda x, g, y, gg, n: (None, _relu_grad(x, gg) if n[1] else None),
                     "g where x > 0")
_tanh_grad = _binary("tanh_grad", lambda t, g, y, gg, n: (
    multiply(multiply(gg, g), multiply(t, -2.0)) if n[0] else None, _tanh_grad(t, gg) if n[1] else None),
    "g (1 - t²)")
_sigmoid_grad = _binary("sigmoid_grad", lambda s, g, y, gg, n: (
    multiply(multiply(gg, g), subtract(1.0, multiply(s, 2.0))) if n[0] else None,
    _sigmoid_grad(s, gg) if n[1] else None), "g s (1 - s)")
_equal = _binary("equal", None, "1 where a == b else 0 (not differentiable)")


# --------------------------------------------------------------------------- reductions
def _axes(op: str, axis: Any, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else axis
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in items:
        if not is_int(a):
            raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(int(a), ndim, op)
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: duplicate value in axis {axis!r}")
    return tuple(sorted(out))


def _keep_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def sum(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (None: all; int or tuple; negative counts from the end), as numpy."""
    x = _tensor(x, "sum")
    axes = _axes("sum", axis, x.ndim)
    data = _k(x).elementwise.reduce("sum", x.data, axes, bool(keepdims))
    return _make("sum", data, (x,), lambda g, needs: (broadcast_to(reshape(g, _keep_shape(x.shape, axes)), x.shape),))


def mean(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (as numpy; NaN for an empty reduction)."""
    x = _tensor(x, "mean")
    axes = _axes("mean", axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    s = sum(x, axes, keepdims)
    return multiply(s, 1.0 / count if count else np.nan)


def max(x: TensorLike, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis`` (as numpy's ``max``; ValueError for an empty reduction). The gradient
    is shared equally between tied maxima (as TensorFlow and PyTorch's ``amax``)."""
    x = _tensor(x, "max")
    axes = _axes("max", axis, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: zero-size reduction over axis {axis!r} of shape {x.shape} has no identity")
    data = _k(x).elementwise.reduce("max", x.data, axes, bool(keepdims))

    def vjp(g, needs):
        ks = _keep_shape(x.shape, axes)
        mask = _equal(x, reshape(y, ks))
        return (multiply(mask, divide(reshape(g, ks), sum(mask, axes, keepdims=True))),)

    y = _make("max", data, (x,), vjp)
    return y


def broadcast_to(x: TensorLike, shape: Sequence[int]) -> Tensor:
    """``x`` broadcast (materialised) to ``shape``; the gradient sums back."""
    x = _tensor(x, "broadcast_to")
    shape = tuple(int(s) for s in shape)
    if x.shape == shape:
        return x
    try:
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return _make("broadcast_to", _k(x).elementwise.broadcast_to(x.data, shape), (x,),
                 lambda g, needs: (_sum_to(g, x.shape),))


# --------------------------------------------------------------------------- shapes
def reshape(x: TensorLike, shape: Any) -> Tensor:
    """``x`` with a new shape (one entry may be -1), as numpy; the gradient reshapes back."""
    x = _as_tensor(x, "reshape")
    if not isinstance(shape, (numbers.Integral, np.integer, tuple, list)):
        raise TypeError(f"reshape: shape must be an int or a tuple of ints, got {shape!r}")
    shape = (shape,) if isinstance(shape, (numbers.Integral, np.integer)) else tuple(shape)
    if any(not is_int(d) for d in shape):
        raise TypeError(f"reshape: shape must be ints, got {shape!r}")
    if x.shape == shape:
        return x
    try:
        data = _k(x).elementwise.reshape(x.data, shape)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {shape} ({exc})") from None
    vjp = (lambda g, needs: (reshape(g, x.shape),)) if x.dtype.kind == "f" else None
    return _make("reshape", data, (x,), vjp)


def transpose(x: TensorLike, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (reversed when ``axes`` is None), as numpy."""
    x = _as_tensor(x, "transpose")
    if axes is None:
        perm = tuple(range(x.ndim))[::-1]
    else:
        if not isinstance(axes, (tuple, list)) or any(not is_int(a) for a in axes):
            raise TypeError(f"transpose: axes must be None or a tuple of ints, got {axes!r}")
        perm = tuple(int(a) % x.ndim if -x.ndim <= int(a) < x.ndim else -1 for a in axes)
        if sorted(perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the {x.ndim} axes of {x.shape}")
    if perm == tuple(range(x.ndim)):
        return x
    inv = tuple(np.argsort(perm))
    vjp = (lambda g, needs: (transpose(g, inv),)) if x.dtype.kind == "f" else None
    return _make("transpose", _k(x).elementwise.transpose(x.data, perm), (x,), vjp)


def flatten(x: TensorLike, start_axis: int = 0) -> Tensor:
    """Collapse axes ``start_axis ..`` into one (``start_axis=0``: 1-D, like numpy's ``ravel``;
    ``start_axis=1`` keeps the batch axis, like PyTorch's ``nn.Flatten``)."""
    x = _as_tensor(x, "flatten")
    if not 0 <= start_axis <= (x.ndim - 1 if x.ndim else 0):
        raise ValueError(f"flatten: start_axis {start_axis} out of range for shape {x.shape}")
    return reshape(x, x.shape[:start_axis] + (-1,))


# --------------------------------------------------------------------------- GEMM
def _swap_last2(t: Tensor) -> Tensor:
    perm = tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2)
    return transpose(t, perm)


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """``a @ b`` with numpy's matmul semantics (1-D operands, broadcast batches) by numlin's GEMM."""
    a, b = _pair(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1 or b.ndim == 1:
        a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        y = matmul(a2, b2)
        shape = y.shape[:-2] + ((y.shape[-2],) if a.ndim > 1 else ()) + ((y.shape[-1],) if b.ndim > 1 else ())
        return reshape(y, shape)

    def vjp(g, needs):
        return (_sum_to(matmul(g, _swap_last2(b)), a.shape) if needs[0] else None,
                _sum_to(matmul(_swap_last2(a), g), b.shape) if needs[1] else None)

    return _make("matmul", _array_matmul(a.data, b.data), (a, b), vjp)


# --------------------------------------------------------------------------- Tensor's operators
def _reflected(op: Callable) -> Callable:
    """``other <op> self`` as a method of ``self``."""

    def method(self, other):
        return op(other, self)

    method.__name__ = method.__qualname__ = f"r{op.__name__}"
    return method


def _reduction(op: Callable) -> Callable:
    def method(self, axis=None, keepdims: bool = False) -> Tensor:
        return op(self, axis, keepdims)

    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    return method


def _reshape(self, *shape) -> Tensor:
    """``reshape(self, shape)``; the shape as one tuple or as separate ints."""
    return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)


def _transpose(self, axes=None) -> Tensor:
    """``transpose(self, axes)``."""
    return transpose(self, axes)


for _name, _op in (("add", add), ("sub", subtract), ("mul", multiply), ("truediv", divide), ("pow", power),
                   ("matmul", matmul)):
    setattr(Tensor, f"__{_name}__", _op)
    setattr(Tensor, f"__r{_name}__", _reflected(_op))
Tensor.__neg__ = negative
Tensor.__abs__ = abs
Tensor.T = property(lambda self: transpose(self), doc="The axes reversed (``transpose(self)``).")
Tensor.reshape = _reshape
Tensor.transpose = _transpose
Tensor.sum, Tensor.mean, Tensor.max = _reduction(sum), _reduction(mean), _reduction(max)
del _name, _op
