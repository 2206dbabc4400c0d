"""HIPS autograd's tests/test_numpy.py, the cases on ops numlin has, ported to numlin.

Upstream: https://github.com/HIPS/autograd/blob/bff107b8d71a444a1160deade3e1cbd0b92f4fa6/tests/test_numpy.py
(revision bff107b8d71a444a1160deade3e1cbd0b92f4fa6). Minimal changes: ``np.<op>`` -> ``nl.<op>``
(``np.dot`` of 1-D/2-D operands -> ``nl.matmul``, the same product there; ``np.ravel`` ->
``nl.flatten``; ``np.array([boxes...])`` -> ``stack([...])``, numlin's differentiable stack),
autograd's ``check_grads(fun)(*args)`` -> the shim below over ``nl.testing.check_grads``.

Not ported (numlin has no such op or method): test_numpy_version, test_dot_with_floats (matmul refuses
0-d operands, as numpy's matmul), test_outer, test_min*, test_plain_numpy_reductions_on_box,
flip/rot90/cumsum, std/var, indexing and slicing, ravel/flatten methods, append/concatenate/r_/c_,
trace/diag/roll/triu/tril/clip/prod, test_array_from_scalar, where, squeeze, repeat, expand_dims,
tensordot, multi-index, cast_to_int, diagonal, nan_to_num, test_min_3_way_equality, maximum,
linspace, astype, gradient.
Deliberate differences: reverse mode only (autograd also checks "fwd"); a gradient is compared with
``float(g) == v`` (numlin's Tensor ``==`` compares identity, documented); test_no_relation returns
``nl.Tensor(c)`` (numlin's check_grads wants a Tensor back; a constant has zero gradient).
"""
import numpy as np
import numpy.random as npr

import numlin as nl
from numlin.autodiff import stack
from ._shims import check_grads

npr.seed(1)


def test_dot():
    def fun(x, y):
        return nl.matmul(x, y)

    mat1 = npr.randn(10, 11)
    mat2 = npr.randn(10, 11)
    vect1 = npr.randn(10)
    vect2 = npr.randn(11)
    vect3 = npr.randn(11)

    check_grads(fun)(mat1, vect2)
    check_grads(fun)(mat1, mat2.T)
    check_grads(fun)(vect1, mat1)
    check_grads(fun)(vect2, vect3)


def test_max():
    def fun(x):
        return nl.max(x)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_max_axis():
    def fun(x):
        return nl.max(x, axis=1)

    mat = npr.randn(3, 4, 5)
    check_grads(fun)(mat)


def test_max_axis_keepdims():
    def fun(x):
        return nl.max(x, axis=1, keepdims=True)

    mat = npr.randn(3, 4, 5)
    check_grads(fun)(mat)


def test_sum_1():
    def fun(x):
        return nl.sum(x)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_sum_2():
    def fun(x):
        return nl.sum(x, axis=0)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_sum_3():
    def fun(x):
        return nl.sum(x, axis=0, keepdims=True)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_sum_with_axis_tuple():
    def fun(x):
        return nl.sum(x, axis=(1, 2))

    mat = npr.randn(10, 11, 7)
    check_grads(fun)(mat)


def test_non_numpy_sum():
    def fun(x, y):
        return sum([x, y])

    mat1 = npr.randn(10, 11)
    mat2 = npr.randn(10, 11)
    check_grads(fun)(mat1, mat2)


def test_mean_1():
    def fun(x):
        return nl.mean(x)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_mean_2():
    def fun(x):
        return nl.mean(x, axis=0)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_mean_3():
    def fun(x):
        return nl.mean(x, axis=0, keepdims=True)

    mat = npr.randn(10, 11)
    check_grads(fun)(mat)


def test_mean_list_of_boxes():
    # float(): numlin's Tensor == compares identity (documented), not values
    assert float(nl.grad(lambda x: nl.mean([x, x + 2]))(0.0)) == 1.0
    assert float(nl.grad(lambda x: nl.mean((x, x + 2)))(0.0)) == 1.0


def test_reshape_method():
    A = npr.randn(5, 6, 4)

    def fun(x):
        return x.reshape((5 * 4, 6))

    check_grads(fun)(A)


def test_reshape_call():
    A = npr.randn(5, 6, 4)

    def fun(x):
        return nl.reshape(x, (5 * 4, 6))

    check_grads(fun)(A)


def test_reshape_method_nolist():
    # The reshape can be called in two different ways:
    # like A.reshape((5,4)) or A.reshape(5,4).
    # This test checks that we support the second way.
    A = npr.randn(5, 6, 4)

    def fun(x):
        return x.reshape(5 * 4, 6)

    check_grads(fun)(A)


def test_ravel_call():
    A = npr.randn(5, 6, 4)

    def fun(x):
        return nl.flatten(x)

    check_grads(fun)(A)


def test_transpose():
    def fun(x):
        return x.T

    mat = npr.randn(8, 8)
    check_grads(fun)(mat)


def test_1d_array():
    def fun(x):
        return stack([x, x * 1.0, x + 2.5])

    check_grads(fun)(3.0)


def test_2d_array():
    def fun(x):
        return stack([[x, x * 1.0, x + 2.5], [x**2, x, x / 2.0]])

    check_grads(fun)(3.0)


def test_1d_array_fanout():
    def fun(x):
        A = stack([x, x * 1.0, x + 2.5])
        return A + A

    check_grads(fun)(3.0)


def test_2d_array_fanout():
    def fun(x):
        A = stack([[x, x * 1.0, x + 2.5], [x**2, x, x / 2.0]])
        return A + A

    check_grads(fun)(3.0)


def test_scalar_array_box_attributes():
    # An ArrayBox-ed Python scalar is presented as a 0-dim, size-1 array
    def fun(x):
        assert x.shape == ()
        assert x.ndim == 0
        assert x.size == 1
        assert x.dtype == np.float64
        return x**2

    assert float(nl.grad(fun)(3.0)) == 6.0  # float(): Tensor == is identity in numlin


def test_array_from_arrays():
    def fun(x):
        return stack([x, x])

    A = npr.randn(3, 2)
    check_grads(fun)(A)


def test_array_from_arrays_2():
    def fun(x):
        return stack([[2 * x, x + 1], [x, x]])

    A = npr.randn(3, 2)
    check_grads(fun)(A)


def test_len():
    def fun(x):
        assert len(x) == 3
        return x

    A = npr.randn(3, 2)
    check_grads(fun)(A)


def test_no_relation():
    c = npr.randn(3, 2)

    def fun(x):
        return nl.Tensor(c)  # upstream returns c itself

    A = npr.randn(3, 2)
    check_grads(fun)(A)


def test_max_equal_values():
    def fun(x):
        return nl.max(stack([x, x]))

    check_grads(fun)(1.0)


def test_max_equal_values_2d():
    def fun(x):
        return nl.max(stack([[x, x], [x, 0.5]]), axis=1)

    check_grads(fun)(1.0)
    check_grads(fun)(-1.0)
