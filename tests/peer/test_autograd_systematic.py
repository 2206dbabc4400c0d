"""HIPS autograd's tests/test_systematic.py, the cases on ops numlin has, ported to numlin.

Upstream: https://github.com/HIPS/autograd/blob/bff107b8d71a444a1160deade3e1cbd0b92f4fa6/tests/test_systematic.py
(revision bff107b8d71a444a1160deade3e1cbd0b92f4fa6), with the helpers of tests/numpy_utils.py and
autograd/test_util.py's combo_check at the same revision. Minimal changes: ``np.<op>`` -> ``nl.<op>``
(``np.absolute`` -> ``nl.abs``, ``np.true_divide`` -> ``nl.divide``); checks by the shim below over
``nl.testing.check_grads``.

Ported: test_max, test_mean, test_sum, test_sin, test_abs, test_absolute, test_cos, test_exp,
test_log, test_sign, test_sqrt, test_tanh, test_add, test_true_divide, test_true_divide_neg,
test_op_mul, test_op_add, test_op_sub, test_transpose, test_matmul, test_matmul_broadcast.
Not ported (numlin has no such op): min, prod, var, std, the other unary and binary ufuncs
(arccosh ... tan, real/imag/conj/angle, logaddexp, remainder, mod), moveaxis, repeat, diff,
gradient, tile, kron, inner, dot, outer, tensordot, maximum/minimum, sort, partition, atleast_*,
einsum, trace, diag and the rest after them.
Deliberate differences, kept as tests of numlin's documented behaviour:
- complex inputs (upstream's ``test_complex=True`` cases and the complex matrices of test_matmul):
  numlin refuses complex data with TypeError, so those cases assert the TypeError;
- reverse mode only (autograd also checks "fwd").
"""
import operator as op
from itertools import product

import numpy.random as npr
import pytest

import numlin as nl
from ._shims import check_grads as shim_check_grads

npr.seed(0)


def check_grads(f, argnum=0, modes=None, order=2):
    """The arguments as given (complex ones included: their refusal is tested)."""
    return shim_check_grads(f, argnum, modes, order, as_float64=False)


def combo_check(fun, *args, **kwargs):
    # Tests all combinations of args and kwargs given.
    _check_grads = lambda f: check_grads(f, *args, **kwargs)  # noqa: E731

    def _combo_check(*args, **kwargs):
        kwarg_key_vals = [[(k, x) for x in xs] for k, xs in kwargs.items()]
        for _args in product(*args):
            for _kwargs in product(*kwarg_key_vals):
                _check_grads(fun)(*_args, **dict(_kwargs))

    return _combo_check


def refuses_complex(fun, *args):
    """numlin's documented behaviour where upstream differentiates complex input."""
    with pytest.raises(TypeError, match="complex"):
        fun(*args)


def stat_check(fun, test_complex=True, **kwargs):
    # Tests functions that compute statistics, like sum, mean, etc
    x = 3.5
    A = npr.randn()
    B = npr.randn(3)
    C = npr.randn(2, 3)
    D = npr.randn(1, 3)
    check = combo_check(fun, (0,), **kwargs)
    check([x, A])
    check([B, C, D], axis=[None, 0], keepdims=[True, False])
    check([C, D], axis=[None, 0, 1], keepdims=[True, False])
    if test_complex:
        c = npr.randn() + 0.1j * npr.randn()
        E = npr.randn(2, 3) + 0.1j * npr.randn(2, 3)
        refuses_complex(fun, c)
        refuses_complex(fun, E)


def unary_ufunc_check(fun, lims=None, test_complex=True, **kwargs):
    if lims is None:
        lims = [-2, 2]
    scalar = transform(lims, 0.4)
    vector = transform(lims, npr.rand(2))
    mat = transform(lims, npr.rand(3, 2))
    mat2 = transform(lims, npr.rand(1, 2))
    check = combo_check(fun, (0,), **kwargs)
    check([scalar, vector, mat, mat2])
    if test_complex:
        comp = transform(lims, 0.4) + 0.1j * transform(lims, 0.3)
        matc = transform(lims, npr.rand(3, 2)) + 0.1j * npr.rand(3, 2)
        refuses_complex(fun, comp)
        refuses_complex(fun, matc)


def binary_ufunc_check(fun, lims_A=None, lims_B=None, test_complex=True, **kwargs):
    if lims_B is None:
        lims_B = [-2, 2]
    if lims_A is None:
        lims_A = [-2, 2]
    T_A = lambda x: transform(lims_A, x)  # noqa: E731
    T_B = lambda x: transform(lims_B, x)  # noqa: E731
    scalar = 0.6
    vector = npr.rand(2)
    mat = npr.rand(3, 2)
    mat2 = npr.rand(1, 2)
    check = combo_check(fun, (0, 1), **kwargs)
    check([T_A(scalar), T_A(vector), T_A(mat), T_A(mat2)], [T_B(scalar), T_B(vector), T_B(mat), T_B(mat2)])
    if test_complex:
        comp = 0.6 + 0.3j
        matc = npr.rand(3, 2) + 0.1j * npr.rand(3, 2)
        refuses_complex(fun, nl.Tensor(T_A(mat)), T_B(comp))
        refuses_complex(fun, T_A(matc), nl.Tensor(T_B(mat)))


def transform(lims, x):
    return x * (lims[1] - lims[0]) + lims[0]


# Array statistics functions
def test_max():
    stat_check(nl.max)


def test_mean():
    stat_check(nl.mean)


def test_sum():
    stat_check(nl.sum)


# Unary ufunc tests


def test_sin():
    unary_ufunc_check(nl.sin)


def test_abs():
    unary_ufunc_check(nl.abs, lims=[0.1, 4.0])


def test_absolute():
    unary_ufunc_check(nl.abs, lims=[0.1, 4.0])


def test_cos():
    unary_ufunc_check(nl.cos)


def test_exp():
    unary_ufunc_check(nl.exp)


def test_log():
    unary_ufunc_check(nl.log, lims=[0.2, 2.0])


def test_sign():
    unary_ufunc_check(nl.autodiff.sign, test_complex=False)


def test_sqrt():
    unary_ufunc_check(nl.sqrt, lims=[1.0, 3.0])


def test_tanh():
    unary_ufunc_check(nl.tanh)


# Binary ufunc tests


def test_add():
    binary_ufunc_check(nl.add)


def test_true_divide():
    binary_ufunc_check(nl.divide, lims_B=[0.8, 1.2], test_complex=False)


def test_true_divide_neg():
    binary_ufunc_check(nl.divide, lims_B=[-0.3, -2.0], test_complex=False)


def test_op_mul():
    binary_ufunc_check(op.mul)


def test_op_add():
    binary_ufunc_check(op.add)


def test_op_sub():
    binary_ufunc_check(op.sub)


# Misc tests

R = npr.randn
C = lambda *shape: npr.randn(*shape) + 1j * npr.randn(*shape)  # noqa: E731


def test_transpose():
    combo_check(nl.transpose, [0])(
        [R(2, 3, 4)], axes=[None, [0, 1, 2], [0, 2, 1], [2, 0, 1], [2, 1, 0], [1, 0, 2], [1, 2, 0]]
    )


def test_matmul():
    combo_check(nl.matmul, [0, 1])([R(3), R(2, 3), R(2, 2, 3)], [R(3), R(3, 4), R(2, 3, 4)])
    # upstream's complex operands C(3), C(2, 3), C(3, 4): refused
    refuses_complex(nl.matmul, nl.Tensor(R(3)), C(3))
    refuses_complex(nl.matmul, C(2, 3), nl.Tensor(R(3, 4)))


def test_matmul_broadcast():
    combo_check(nl.matmul, [0, 1])([R(1, 2, 2)], [R(3, 2, 1)])
