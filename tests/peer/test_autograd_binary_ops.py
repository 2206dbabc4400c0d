"""HIPS autograd's tests/test_binary_ops.py, ported to numlin.

Upstream: https://github.com/HIPS/autograd/blob/bff107b8d71a444a1160deade3e1cbd0b92f4fa6/tests/test_binary_ops.py
(revision bff107b8d71a444a1160deade3e1cbd0b92f4fa6). Minimal changes: ``autograd.numpy`` -> numlin's
ops, autograd's ``check_grads(fun)(*args)`` -> the shim below over ``nl.testing.check_grads``.

Ported: test_mul, test_add, test_sub, test_div, test_pow.
Not ported (numlin has no such op): test_mod, test_arctan2, test_hypot, test_comparison_grads,
test_comparison_values (Tensors have no comparison operators).
Deliberate difference: autograd checks forward mode ("fwd") too; numlin is reverse mode only, so
only "rev" is checked (to second order, autograd's default).
"""
import itertools as it

import numpy as np
import numpy.random as npr

import numlin as nl
from ._shims import check_grads


rs = npr.RandomState(0)


def arg_pairs():
    scalar = 2.0
    vector = rs.randn(4)
    mat = rs.randn(3, 4)
    mat2 = rs.randn(1, 4)
    allargs = [scalar, vector, mat, mat2]
    yield from it.product(allargs, allargs)


def _t(x):
    """A Python float or numpy array as a Tensor (autograd's boxes take ``*`` on plain numbers; a
    numlin Tensor needs one Tensor operand: both are converted, as in upstream both are boxed)."""
    return x if isinstance(x, nl.Tensor) else nl.Tensor(x)


def test_mul():
    fun = lambda x, y: _t(x) * y  # noqa: E731
    for arg1, arg2 in arg_pairs():
        check_grads(fun)(arg1, arg2)


def test_add():
    fun = lambda x, y: _t(x) + y  # noqa: E731
    for arg1, arg2 in arg_pairs():
        check_grads(fun)(arg1, arg2)


def test_sub():
    fun = lambda x, y: _t(x) - y  # noqa: E731
    for arg1, arg2 in arg_pairs():
        check_grads(fun)(arg1, arg2)


def test_div():
    fun = lambda x, y: _t(x) / y  # noqa: E731
    make_gap_from_zero = lambda x: np.sqrt(x**2 + 0.5)  # noqa: E731
    for arg1, arg2 in arg_pairs():
        arg1 = make_gap_from_zero(arg1)
        arg2 = make_gap_from_zero(arg2)
        check_grads(fun)(arg1, arg2)


def test_pow():
    fun = lambda x, y: _t(x) ** y  # noqa: E731
    make_positive = lambda x: np.abs(x) + 1.1  # Numeric derivatives fail near zero  # noqa: E731
    for arg1, arg2 in arg_pairs():
        arg1 = make_positive(arg1)
        check_grads(fun)(arg1, arg2)


def test_mul_argnum_1():
    """Not upstream: the same pairs differentiated in the second argument (upstream's
    check_grads(fun) differentiates argument 0 only)."""
    for fun in (lambda x, y: _t(x) * y, lambda x, y: _t(x) + y, lambda x, y: _t(x) - y):
        for arg1, arg2 in arg_pairs():
            check_grads(fun, 1)(arg1, arg2)
