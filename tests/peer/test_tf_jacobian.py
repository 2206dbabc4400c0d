"""TensorFlow's tensorflow/python/eager/backprop_test.py (JacobianTest, BatchJacobianTest), the
cases numlin's API expresses, ported to numlin.

Upstream: https://github.com/tensorflow/tensorflow/blob/016bb3fc99d75a703956c00f0adf65736407da0f/tensorflow/python/eager/backprop_test.py
(revision 016bb3fc99d75a703956c00f0adf65736407da0f), plus four cases that later revisions of the
same file added (test_grad_jacobian_conv, test_cond_func_grad_jacobian,
test_empty_tensor_consistent_jacobian, test_zeros_type_correct). Minimal changes:
``backprop.GradientTape`` -> ``nl.GradientTape``, ``constant_op.constant`` -> ``nl.constant``,
``array_ops.diag`` / ``stack`` -> numpy on the values, ``math_ops.<op>`` -> ``nl.<op>``,
``random_ops.random_uniform`` -> seeded numpy, unittest asserts -> numpy asserts on ``.numpy()``.
numlin has no ``experimental_use_pfor`` or ``parallel_iterations`` arguments and no graph mode:
the pfor and while-loop variants of a case become one case (the two upstream answers must agree,
so both are checked against the same answer), and ``parallel_iterations`` cases check that two
calls agree.

Not ported (need what numlin lacks): testPforDefun, testWhileLoopDefun (tf.function),
test_indexed_slices (embedding_lookup / IndexedSlices), test_nested_batch_jacobian_foldl,
test_foldl_partial_function, test_foldl_pure_function (foldl), test_strided_slice (repeat and
slicing of Tensors).

Deliberate differences (kept as tests of numlin's documented behaviour, marked "numlin:"):
- testPersistentTape (both classes): TensorFlow's non-persistent tape refuses the while-loop path
  (``experimental_use_pfor=False``) with a RuntimeError naming ``persistent``; numlin has one path
  that answers once, as TensorFlow's default pfor path does, and the RuntimeError naming
  ``persistent`` comes with the second call;
- test_zeros_type_correct: TensorFlow's batch_jacobian returns zeros for an unconnected source
  whatever ``unconnected_gradients`` says; numlin returns None by default (as ``jacobian`` and
  ``gradient`` do, and as TensorFlow documents the argument) and zeros of the right dtype with
  ``unconnected_gradients="zero"``;
- testBadShape / testBadInputRank / testBadOutputRank: the same ValueError and message fragment;
  test_cond_func_grad_jacobian uses a Python ``if`` for ``tf.cond``.
"""
import numpy as np
import pytest

import numlin as nl


def _rand(*shape):
    return nl.Tensor(np.random.default_rng(0).uniform(size=shape))


# --------------------------------------------------------------------------- JacobianTest
def _jacobian(persistent):
    with nl.GradientTape(persistent=persistent) as g:
        x = nl.constant([1., 2.])
        y = nl.constant([3., 4.])
        g.watch(x)
        g.watch(y)
        z = x * x * y
    jacobian = g.jacobian(z, [x, y])
    answer = [np.diag(2 * x.numpy() * y.numpy()), np.diag(x.numpy() * x.numpy())]
    return jacobian, answer


def testPfor():
    jacobian, answer = _jacobian(persistent=False)
    for j, a in zip(jacobian, answer):
        np.testing.assert_array_equal(a, j.numpy())


def testWhileLoop():
    jacobian, answer = _jacobian(persistent=True)
    for j, a in zip(jacobian, answer):
        np.testing.assert_array_equal(a, j.numpy())


def testPersistentTape():
    # numlin: the first jacobian on a non-persistent tape is answered (TensorFlow's pfor path);
    # asking again raises the RuntimeError that names `persistent`.
    with nl.GradientTape() as g:
        x = nl.constant([1.0, 2.0])
        g.watch(x)
        y = x * x
    np.testing.assert_array_equal(g.jacobian(y, x).numpy(), np.diag([2.0, 4.0]))
    with pytest.raises(RuntimeError, match='persistent'):
        g.jacobian(y, x)


def test_parallel_iterations():
    with nl.GradientTape(persistent=True) as g:
        x = nl.constant([[1., 2], [3, 4]])
        g.watch(x)
        y = nl.matmul(x, x)
    np.testing.assert_allclose(g.jacobian(y, x).numpy(), g.jacobian(y, x).numpy())
    # and the value: d (XX)[i, j] / d X[k, l] = delta_ik X[l, j] + X[i, k] delta_jl
    X = x.numpy()
    want = np.einsum('ik,lj->ijkl', np.eye(2), X) + np.einsum('ik,jl->ijkl', X, np.eye(2))
    np.testing.assert_allclose(g.jacobian(y, x).numpy(), want)


def test_nested_jacobian():
    x = nl.Tensor(np.ones((10, 2)))
    with nl.GradientTape(persistent=False) as g:
        g.watch(x)
        with nl.GradientTape(persistent=False) as gg:
            gg.watch(x)
            y = nl.sum(nl.multiply(x, x))  # math_ops.square
        dy_x = gg.jacobian(y, x)
    dy_xx = g.batch_jacobian(dy_x, x)
    dy_xx_answer = [[[2., 0], [0, 2.]]] * 10
    np.testing.assert_allclose(dy_xx_answer, dy_xx.numpy())


def test_grad_jacobian_conv():
    def _inner(x):
        kernel = np.ones([3, 3, 1, 9])
        with nl.GradientTape() as tape:
            tape.watch(x)
            y = nl.conv2d(x, kernel, stride=(1, 1), padding='same', layout='NHWC')
            reduced = nl.sum(y ** 2.0, axis=(2, 3))
        return nl.sum(tape.batch_jacobian(reduced, x))

    nl.testing.check_grads(_inner, [np.ones([10, 4, 4, 1])], rtol=0.1)  # gradient_checker_v2


def test_cond_func_grad_jacobian():
    def f(x):
        return x ** 3.0 if float(x) > 0. else x ** 2.0  # tf.cond

    with nl.GradientTape(persistent=True) as tape:
        x = nl.constant(1.0)
        tape.watch(x)
        y = f(x)
        grad = tape.gradient(y, x)
    np.testing.assert_allclose(3.0, grad.numpy())
    jacobian = tape.jacobian(grad, x)
    np.testing.assert_allclose(6.0, jacobian.numpy())


def test_empty_tensor_consistent_jacobian():
    variable = nl.Variable(np.float32(1.0))
    inputs = (np.random.uniform(size=(0, 4)), np.random.uniform(size=(0, 3)))
    with nl.GradientTape(persistent=True) as tape:
        outputs = variable * nl.cast(np.concatenate(inputs, axis=-1), np.float32)
    jacobians = tape.jacobian(outputs, variable)
    again = tape.jacobian(outputs, variable)
    assert jacobians.shape == (0, 7) and jacobians.dtype == np.float32
    np.testing.assert_allclose(jacobians.numpy(), again.numpy())


# --------------------------------------------------------------------------- BatchJacobianTest
def _batch_jacobian(persistent):
    with nl.GradientTape(persistent=persistent) as g:
        x = nl.constant([[1., 2.], [3., 4.]])
        y = nl.constant([[3., 4.], [5., 6.]])
        g.watch(x)
        z = x * x * y
    batch_jacobian = g.batch_jacobian(z, x)
    xv, yv = x.numpy(), y.numpy()
    answer = np.stack([np.diag(2 * xv[0] * yv[0]), np.diag(2 * xv[1] * yv[1])])
    return batch_jacobian, answer


def testBatchPfor():
    batch_jacobian, answer = _batch_jacobian(persistent=False)
    np.testing.assert_array_equal(answer, batch_jacobian.numpy())


def testBatchWhileLoop():
    batch_jacobian, answer = _batch_jacobian(persistent=True)
    np.testing.assert_array_equal(answer, batch_jacobian.numpy())


def testBatchPersistentTape():
    # numlin: answered once, the second call raises (see testPersistentTape)
    with nl.GradientTape() as g:
        x = nl.constant([[1.0, 2.0]])
        g.watch(x)
        y = x * x
    np.testing.assert_array_equal(g.batch_jacobian(y, x).numpy(), [[[2.0, 0.0], [0.0, 4.0]]])
    with pytest.raises(RuntimeError, match='persistent'):
        g.batch_jacobian(y, x)


def testBadShape():
    x = _rand(2, 3)
    with nl.GradientTape() as g:
        y = nl.reshape(nl.autodiff.stack([x, x]), (4, 3))  # array_ops.concat([x, x], axis=0)
    with pytest.raises(ValueError, match='Need first dimension'):
        g.batch_jacobian(y, x)


def testBadInputRank():
    x = _rand(2)
    with nl.GradientTape() as g:
        y = _rand(2, 2)
    with pytest.raises(ValueError, match='must have rank at least 2'):
        g.batch_jacobian(y, x)


def testBadOutputRank():
    x = _rand(2, 2)
    with nl.GradientTape() as g:
        y = _rand(2)
    with pytest.raises(ValueError, match='must have rank at least 2'):
        g.batch_jacobian(y, x)


def test_batch_parallel_iterations():
    with nl.GradientTape(persistent=True) as g:
        x = nl.constant([[1., 2], [3, 4]])
        g.watch(x)
        w = nl.constant([[1., 2, 3, 4], [5, 6, 7, 8]])
        y = nl.matmul(x, w)
    np.testing.assert_allclose(g.batch_jacobian(y, x).numpy(), g.batch_jacobian(y, x).numpy())
    np.testing.assert_allclose(g.batch_jacobian(y, x).numpy(), np.stack([w.numpy().T] * 2))


def test_degenerate_shape():  # upstream's (use_function, use_pfor) variants are one case here
    def f(x):
        with nl.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = x ** 2
        return tape.batch_jacobian(y, x)

    assert f(nl.Tensor(np.zeros([1, 0]))).shape == (1, 0, 0)


def test_zeros_type_correct():  # upstream's use_pfor variants are one case here
    for dtype in [np.float32, np.float64]:
        def f(x):
            del x
            return nl.constant([[1.0]], dtype=dtype)

        with nl.GradientTape(persistent=True) as tape:
            x = nl.constant([[2.0]], dtype=dtype)
            tape.watch(x)
            y = f(x)
        jac = tape.batch_jacobian(y, x)
        assert jac is None  # numlin: TensorFlow returns zeros here too

        with nl.GradientTape(persistent=True) as tape:
            x = nl.constant([[2.0]], dtype=dtype)
            tape.watch(x)
            y = f(x)
        jac = tape.batch_jacobian(y, x, unconnected_gradients='zero')
        assert jac.dtype == dtype
        np.testing.assert_allclose([[[0.0]]], jac.numpy())
