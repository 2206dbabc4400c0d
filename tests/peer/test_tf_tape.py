"""TensorFlow's tensorflow/python/eager/tape_test.py (TapeTest), the cases numlin's API
expresses, ported to numlin.

Upstream: https://github.com/tensorflow/tensorflow/blob/c3bd2f4bcdcf440cb6bbc3d88cef3f3bc56dbb70/tensorflow/python/eager/tape_test.py
(revision c3bd2f4bcdcf440cb6bbc3d88cef3f3bc56dbb70). Minimal changes: ``constant_op.constant`` ->
``nl.constant``, ``math_ops.<op>`` -> ``nl.<op>``, ``backprop.gradients_function`` /
``val_and_grad_function`` -> the shims below over ``nl.grad`` / ``nl.value_and_grad``, unittest
asserts -> plain asserts on ``.numpy()``.

Ported: testBasicFunctional, testBasicFunctionalPositionalArg, testBasicFunctionalWithValue,
testGcTwoOutputs (``sparse_softmax_cross_entropy_with_logits(...)[0]`` -> ``nl.nn.cross_entropy``
with ``reduction="sum"``: the one row's loss), testTfTensor.
Not ported: testMultiOutput (needs split), testTwoOutputs (custom_gradient), VariableWatcherTest
(numlin has no VariableWatcher).
Deliberate difference: parameters are named by position only; upstream's ``params=['a']`` (by
argument name) in testBasicFunctional and testBasicFunctionalWithValue becomes ``[0]``.
"""
import numpy as np

import numlin as nl
from numlin.autodiff import ops
from ._shims import gradients_function, val_and_grad_function


def testBasicFunctional():

    def forward(a, b):
        mm = nl.matmul(a, b)
        return nl.sum(mm)

    aa = nl.constant([[1., 0.], [0., 1.]])
    bb = nl.constant([[1., 2.], [3., 4.]])
    da, = gradients_function(forward, [0])(aa, bb)  # numlin: by position (upstream ['a'])
    np.testing.assert_array_equal(da.numpy(), nl.matmul(ops.ones_like(aa), nl.transpose(bb)).numpy())


def testBasicFunctionalPositionalArg():

    def forward(a, b):
        mm = nl.matmul(a, b)
        return nl.sum(mm)

    aa = nl.constant([[1., 0.], [0., 1.]])
    bb = nl.constant([[1., 2.], [3., 4.]])
    da, = gradients_function(forward, [0])(aa, bb)
    np.testing.assert_array_equal(da.numpy(), nl.matmul(ops.ones_like(aa), nl.transpose(bb)).numpy())


def testBasicFunctionalWithValue():

    def forward(a, b):
        mm = nl.matmul(a, b)
        return nl.sum(mm)

    aa = nl.constant([[1., 0.], [0., 1.]])
    bb = nl.constant([[1., 2.], [3., 4.]])
    val, (da,) = val_and_grad_function(forward, [0])(aa, bb)  # numlin: by position (upstream ['a'])
    np.testing.assert_array_equal(da.numpy(), nl.matmul(ops.ones_like(aa), nl.transpose(bb)).numpy())
    np.testing.assert_array_equal(val.numpy(), forward(aa, bb).numpy())


def testGcTwoOutputs():

    def fn(x, y):
        return nl.nn.cross_entropy(x, y, reduction="sum")

    labels = nl.constant([0])
    logits = nl.constant([[0.0]])
    grad, = gradients_function(fn, [0])(logits, labels)
    np.testing.assert_array_equal(grad.numpy(), [[0.0]])


def testTfTensor():

    def fn(x):
        return x

    t = nl.constant(1.0)
    g, = gradients_function(fn, [0])(t)
    assert g.numpy() == 1.0
