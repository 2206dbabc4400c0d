"""CPU elementwise kernels and reductions for the autodiff ops.

Elementwise kernels are Numba ufuncs: each scalar rule of :mod:`numlin.kernels.rules` (written
once for both backends, its special values documented there) is compiled by ``vectorize`` into a
ufunc loop (float32 and float64; the caller casts operands to one dtype), so broadcasting is
fused into the one pass over the output (no broadcast copies) and any strides are read in
place. A rule's ufunc is built on first use and cached on disk. A float64 operation on 0-d
operands (scalar autodiff, the seed's ``GradientTape`` example) evaluates the rule in Python
instead (:func:`_scalar`): the same C library calls, bit for bit, with no ufunc to compile or load.
So does a float32 one whose rule is exact in float64 then rounded once (:data:`EXACT_FLOAT32`: a
float32 training step's scalar loss scaling builds no ``mul`` ufunc).

Reductions work on a 2-D view ``(kept, reduced)`` of the input: the kept axes first, the reduced
ones last (a copy only when numpy cannot reshape the transposed view); their loops are in
:mod:`.reductions`. This module imports Numba only when it first builds a ufunc.

The backend interface (same names in ``numlin.kernels.cuda.elementwise``):
``unary(name, x)``, ``binary(name, a, b)``, ``reduce(name, x, axes, keepdims)``,
``broadcast_to(x, shape)``, ``reshape(x, shape)``, ``transpose(x, perm)``, ``UNARY``, ``BINARY``.
Allocation, casts and C-order copies (``empty``, ``full``, ``cast``, ``contiguous``) are the
array façade's, :mod:`numlin.kernels.cpu` itself.
"""
from __future__ import annotations

import math

import numpy as np

from .. import rules
from . import _pool
from ._threads import launch, split

__all__ = ["UNARY", "BINARY", "ufunc", "unary", "binary", "reduce", "broadcast_to", "reshape", "transpose"]


_F1 = ["float32(float32)", "float64(float64)"]
_F2 = ["float32(float32, float32)", "float64(float64, float64)"]


# The rules by op name (``rules.UNARY`` / ``rules.BINARY``), vectorized as they are: the guards the
# CUDA simulator needs (exp's overflow, sin/cos of inf) stay in the CUDA kernel, since the CPU's
# libm gives those values unguarded, with no branch in the loop.
UNARY = rules.UNARY
BINARY = rules.BINARY


_UFUNCS: dict = {}

#: rules whose float32 value is the float64 value of the same Python arithmetic rounded once to
#: float32: selections and sign changes are exact, and a float64 ``+ - * /`` of two float32
#: values rounded to float32 is the correctly rounded float32 result (53 >= 2 * 24 + 2 bits:
#: the double rounding is innocuous). Rules calling the C library (``exp`` is ``expf`` in a
#: float32 loop) or rounding more than once (``tanh_grad``) are not here.
EXACT_FLOAT32 = frozenset({"neg", "abs", "sign", "relu", "add", "sub", "mul", "div", "relu_grad", "equal"})


def ufunc(name: str, dtype=None):
    """The compiled ufunc of rule ``name`` for ``dtype`` (float32 or float64; None: both), built on
    first use, so importing this module compiles nothing, and loaded from Numba's disk cache
    after the first run. One loop per dtype: a float64 program never compiles or loads the
    float32 loops."""
    dt = None if dtype is None else np.dtype(dtype).name
    f = _UFUNCS.get((name, dt))
    if f is None:
        rule = UNARY.get(name)
        sigs = _F1 if rule is not None else _F2
        if dt is not None:
            sigs = [sig for sig in sigs if sig.startswith(dt + "(")] or sigs
        from ._cache import load_lowering_builtins
        from ._jit import vectorize  # Numba's import waits for the first ufunc

        load_lowering_builtins()  # the loop's wrapper is built here even when the rule comes from the cache
        f = vectorize(sigs, cache=True)(rule or BINARY[name])
        _UFUNCS[(name, dt)] = f
    return f


def _scalar(rule, *args: np.ndarray, dtype=np.float64):
    """``rule`` evaluated by Python on 0-d float64 operands, as a 0-d array of ``dtype`` (float64,
    or float32 for a rule of :data:`EXACT_FLOAT32` on float32 operands), or None.

    The compiled loop would compute the same bits: both run the rule's float64 arithmetic in the
    same order (no contraction to FMA) and call the C library's ``exp``, ``log``, ``sin``, ``pow``,
    ... (``tests/kernels/cpu/test_elementwise.py`` checks every rule on special and random values).
    None (use the loop) where Python's float semantics part from the loop's: an exception
    (``math.exp`` overflowing, ``math.sin(inf)``, ``0.0 ** -1``) or a complex power."""
    try:
        v = rule(*(float(a) for a in args))
    except (ArithmeticError, ValueError):
        return None
    if not isinstance(v, float):
        return None
    with np.errstate(over="ignore"):  # a float32 quotient past its range is inf, as in the loop
        return np.asarray(v, dtype)


def _python_path(name: str, x: np.ndarray, y: np.ndarray | None = None) -> bool:
    """Whether :func:`_scalar` may serve rule ``name`` on these operands (0-d, one dtype)."""
    if x.ndim or (y is not None and (y.ndim or y.dtype != x.dtype)):
        return False
    return x.dtype == np.float64 or (x.dtype == np.float32 and name in EXACT_FLOAT32)


def unary(name: str, x: np.ndarray) -> np.ndarray:
    """Rule ``UNARY[name]`` applied to every element of ``x`` (float32/float64), a new array."""
    if _python_path(name, x):
        out = _scalar(UNARY[name], x, dtype=x.dtype)
        if out is not None:
            return out
    return _apply(ufunc(name, x.dtype), (x,), x.dtype)


def binary(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rule ``BINARY[name]`` with numpy broadcasting fused into the loop; ``a`` and ``b`` share a
    dtype (the caller promotes)."""
    if _python_path(name, a, b):
        out = _scalar(BINARY[name], a, b, dtype=a.dtype)
        if out is not None:
            return out
    return _apply(ufunc(name, a.dtype), (a, b), a.dtype)


def _apply(f, operands: tuple, dtype) -> np.ndarray:
    """``f(*operands)``; inside the tape's recycling block a large result is written into
    recycled memory (:mod:`._pool`)."""
    with np.errstate(all="ignore"):  # special values follow the rules, silently (as PyTorch)
        if _pool.active():
            a = operands[0]
            shape = a.shape
            if len(operands) == 2 and operands[1].shape != shape:
                sb = operands[1].shape
                shape = sb if not shape else (shape if not sb else np.broadcast_shapes(shape, sb))
            if math.prod(shape) * a.itemsize >= _pool.MIN_BYTES:  # a small one: ufunc's own output
                return f(*operands, out=_pool.empty(shape, dtype))
        out = f(*operands)
    return out if isinstance(out, np.ndarray) else np.asarray(out)  # 0-d in, 0-d array out (not a scalar)


# --------------------------------------------------------------------------- reductions
def reduce(name: str, x: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """``sum`` or ``max`` of ``x`` over ``axes`` (normalised, non-negative, unique)."""
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    kept_shape = tuple(x.shape[i] for i in kept)
    outer = int(np.prod(kept_shape, dtype=np.int64))
    inner = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    if name == "max" and inner == 0:
        raise ValueError("max: zero-size reduction has no identity")
    x2 = np.transpose(x, kept + tuple(axes)).reshape(outer, inner)
    out = np.empty(outer, x.dtype)
    if outer:
        if inner == 0:
            out[:] = 0
        else:
            from .reductions import KERNELS

            launch(KERNELS[name], split(x2.size), x2, out)
    if keepdims:
        return out.reshape(tuple(1 if i in axes else x.shape[i] for i in range(x.ndim)))
    return out.reshape(kept_shape)


def broadcast_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """``x`` broadcast to ``shape``, materialised (a new C-ordered array)."""
    return np.ascontiguousarray(np.broadcast_to(x, shape))


def reshape(x: np.ndarray, shape: tuple) -> np.ndarray:
    """``x`` reshaped (a view when the strides allow, else a copy)."""
    return x.reshape(shape)


def transpose(x: np.ndarray, perm: tuple) -> np.ndarray:
    """``x`` with its axes permuted (a strided view: the kernels read any strides)."""
    return x.transpose(perm)
