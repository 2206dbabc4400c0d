"""The scalar rules of the autodiff elementwise ops, written once for every backend.

Each rule is a plain Python function of floats, compiled by each backend: the CPU vectorizes it
into a Numba ufunc (:mod:`numlin.kernels.cpu.elementwise`), the CUDA backend compiles it into a
device function that its one unary (one binary) kernel calls by an integer code
(:mod:`numlin.kernels.cuda.elementwise`). A rule's code is its position in :data:`UNARY` or
:data:`BINARY`. Nothing here imports Numba, so reading the rules compiles nothing.

Special values (as PyTorch), on both backends:

- ``relu`` passes NaN through (``relu(nan) = nan``), and ``relu_grad`` is 0 at 0;
- ``log(0) = -inf``, ``log(x < 0) = NaN``; ``sqrt(x < 0) = NaN`` (``sqrt(-0.0) = -0.0``);
- ``sign(±0) = ±0`` and ``sign(nan) = nan``;
- division by zero gives ``±inf`` by the signs of both operands (``b`` may be ``-0.0``), and
  ``0 / 0 = NaN``;
- ``sigmoid`` is evaluated in the stable form (``exp`` of a non-positive number only), so it
  never overflows: ``sigmoid(-1000) = 0``, ``sigmoid(1000) = 1``;
- ``exp`` of a number above :data:`EXP_MAX` is ``+inf``; ``sin`` and ``cos`` of ``±inf`` or NaN
  are NaN.

The CUDA simulator (the tests' stand-in for a GPU) runs device code as Python, where
``math.exp(1000)`` raises OverflowError and ``math.sin(inf)`` ValueError. The CUDA kernel
therefore guards those two cases before it calls ``exp``, ``sin`` or ``cos``: ``x > EXP_MAX``
gives ``+inf`` and ``x - x != 0`` (``±inf`` or NaN) gives NaN, the values the device computes.
The guards live in the CUDA kernel, not in the rules: the CPU computes the same values without
them (no branch in its loops, and libm's own NaN, sign bit included).
"""
from __future__ import annotations

import math

__all__ = ["UNARY", "BINARY", "EXP_MAX", "neg", "exp", "log", "sin", "cos", "tanh", "sqrt", "abs_", "sign",
           "relu", "sigmoid", "add", "sub", "mul", "div", "pow_", "relu_grad", "tanh_grad", "sigmoid_grad",
           "equal"]

#: ``log(DBL_MAX)``: ``exp`` of anything above it is ``+inf``
EXP_MAX = 709.782712893384


# --------------------------------------------------------------------------- unary rules
def neg(x):
    """Return ``-x``."""
    return -x


def exp(x):
    """Return ``e ** x`` (``+inf`` above :data:`EXP_MAX`)."""
    return math.exp(x)


def log(x):
    """Return the natural logarithm of ``x``: ``-inf`` at 0, NaN below 0."""
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def sin(x):
    """Return the sine of ``x`` (NaN for ``±inf``)."""
    return math.sin(x)


def cos(x):
    """Return the cosine of ``x`` (NaN for ``±inf``)."""
    return math.cos(x)


def tanh(x):
    """Return the hyperbolic tangent of ``x``."""
    return math.tanh(x)


def sqrt(x):
    """Return the square root of ``x``: NaN below 0."""
    return math.sqrt(x) if x >= 0 else math.nan


def abs_(x):
    """Return ``|x|``."""
    return abs(x)


def sign(x):
    """Return 1 for ``x > 0``, -1 for ``x < 0``, else ``x`` itself (``±0`` and NaN)."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return x


def relu(x):
    """Return ``x`` where it is ``>= 0`` (``-0.0`` included) or NaN, else 0."""
    # not ``0.0 if x < 0 else x``, the same function: NVVM compiles that, in float32, as
    # ``x <= 0 ? 0 : x``, which turns -0.0 into +0.0
    return x if x >= 0 or x != x else 0.0


def sigmoid(x):
    """Return ``1 / (1 + e ** -x)``, in the form that never overflows."""
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


# --------------------------------------------------------------------------- binary rules
def add(a, b):
    """Return ``a + b``."""
    return a + b


def sub(a, b):
    """Return ``a - b``."""
    return a - b


def mul(a, b):
    """Return ``a * b``."""
    return a * b


def div(a, b):
    """Return ``a / b``: ``±inf`` by both signs when ``b`` is ``±0``, NaN for ``0 / 0``."""
    return a / b if b != 0 else a * math.copysign(math.inf, b)


def pow_(a, b):
    """Return ``a ** b``."""
    return a ** b


def relu_grad(x, g):
    """Return ``g`` where ``x > 0``, else 0 (relu's derivative is taken as 0 at 0)."""
    return g if x > 0 else 0.0


def tanh_grad(y, g):
    """Return ``g * (1 - y²)``, the gradient through ``y = tanh(x)``."""
    return g * (1 - y * y)


def sigmoid_grad(y, g):
    """Return ``g * y * (1 - y)``, the gradient through ``y = sigmoid(x)``."""
    return g * y * (1 - y)


def equal(a, b):
    """Return 1 where ``a == b``, else 0 (a mask in the operands' dtype)."""
    return 1.0 if a == b else 0.0


#: the unary rules by op name; a rule's CUDA code is its position here
UNARY = {"neg": neg, "exp": exp, "log": log, "sin": sin, "cos": cos, "tanh": tanh, "sqrt": sqrt, "abs": abs_,
         "sign": sign, "relu": relu, "sigmoid": sigmoid}
#: the binary rules by op name; a rule's CUDA code is its position here
BINARY = {"add": add, "sub": sub, "mul": mul, "div": div, "pow": pow_, "relu_grad": relu_grad,
          "tanh_grad": tanh_grad, "sigmoid_grad": sigmoid_grad, "equal": equal}
