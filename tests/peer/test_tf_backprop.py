"""TensorFlow's tensorflow/python/eager/backprop_test.py (BackpropTest), the cases numlin's API
expresses, ported to numlin.

Upstream: https://github.com/tensorflow/tensorflow/blob/016bb3fc99d75a703956c00f0adf65736407da0f/tensorflow/python/eager/backprop_test.py
(revision 016bb3fc99d75a703956c00f0adf65736407da0f). Minimal changes: ``backprop.GradientTape`` ->
``nl.GradientTape``, ``constant_op.constant`` -> ``nl.constant``, ``ResourceVariable``/``Variable`` ->
``nl.Variable``, ``math_ops.<op>`` -> ``nl.<op>``, ``backprop.gradients_function`` /
``val_and_grad_function`` -> the shims below over ``nl.grad`` / ``nl.value_and_grad``, unittest
asserts -> plain asserts on ``.numpy()`` (numlin's Tensor ``==`` compares identity); graph-mode
branches and memory-checking decorators dropped (numlin is eager only).

Not ported (need what numlin lacks): embedding_lookup/gather/IndexedSlices, implicit_grad,
custom_gradient, tf.function/defun, where, split/concat, identity-gradient on read_value, string
tensors, make_vjp, stop_gradient/argmax, GPU placement, cond/while_loop, the op-attr helpers,
softmax_cross_entropy with probability labels, Python max() over tensors (no comparisons),
testDy (no dy argument), forward-prop (jvp is tested in tests/autodiff/test_functional.py),
AggregateIndexedSlicesGradientsTest, name scopes, recompute_grad. JacobianTest and
BatchJacobianTest are ported in test_tf_jacobian.py.

Deliberate differences (kept as tests of numlin's documented behaviour, marked "numlin:"):
- testGradientInteger: an integer argument raises TypeError (TensorFlow returns None);
- testNestedSelfContexts: re-entering a recording tape raises RuntimeError (TensorFlow ValueError);
- testReturnSameThing, testOutput: a function returning a tuple raises TypeError (TensorFlow sums
  the outputs); numlin's grad wants one Tensor back;
- testDifferentiatingFunctionThatReturnsNone: TypeError naming NoneType (TensorFlow ValueError);
- testWatchBadThing: watching a numpy array raises TypeError naming ndarray (TensorFlow ValueError).
"""
import functools

import numpy as np
import pytest

import numlin as nl
from ._shims import gradients_function, val_and_grad_function


def _v(t):
    """A Tensor, or a (nested) list/tuple/dict of them, as numpy values (None stays None)."""
    if t is None:
        return None
    if isinstance(t, dict):
        return {k: _v(x) for k, x in t.items()}
    if isinstance(t, (list, tuple)):
        return type(t)(_v(x) for x in t)
    return t.numpy().tolist() if isinstance(t, nl.Tensor) else t


def testNoOpBehaviorConsistent():
    def f(x):
        # Test all different types of no-ops
        x1 = nl.Tensor(x)  # array_ops.identity
        x2 = nl.add(x, 0)
        x3 = nl.subtract(x, 0)
        x4 = nl.multiply(x, 1)
        with nl.GradientTape() as t:
            t.watch(x)
            t.watch(x1)
            t.watch(x2)
            t.watch(x3)
            t.watch(x4)
            y1 = x * 2.
            y2 = x1 * 3.
            y3 = x2 * 3.
            y4 = x3 * 3.
            y5 = x4 * 3.
            loss = y1 + y2 + y3 + y4 + y5
        return t.gradient(loss, [x, x1, x2, x3, x4])

    assert _v(f(nl.constant(10.))) == [2., 3., 3., 3., 3.]


def testTwoTargets():
    with nl.GradientTape() as t:
        x = nl.constant(3.0)
        y = nl.constant(2.0)
        t.watch([x, y])
        xx = 2 * x
        yy = 3 * y
    dx, dy = t.gradient([xx, yy], [x, y])
    assert _v(dx) == 2.0
    assert _v(dy) == 3.0


def testOutputGradUsedInComputation():
    with nl.GradientTape() as t:
        x = nl.constant(3.0)
        y = nl.constant(2.0)
        t.watch([x, y])
        loss = x * y
    dx, = t.gradient([loss, x], [x], output_gradients=[1.0, 2.0])
    assert _v(dx) == 4.0


def testGradientInteger():
    def f(x):
        return x + x

    int_tensor = nl.constant(1)
    # numlin: integer tensors are not differentiable, a TypeError (TensorFlow: None)
    with pytest.raises(TypeError, match="not differentiable"):
        gradients_function(f)(int_tensor)


def testTapeNoOpGradient():
    x = nl.constant(3.0)
    with nl.GradientTape() as t:
        t.watch(x)
        y = x
    assert t.gradient(y, x).numpy() == 1.0


def testTapeGradientMultiTargetOneIsSource():
    x = nl.constant(2.0)
    with nl.GradientTape() as t:
        t.watch(x)
        y = x * x
    assert t.gradient([x, y], x).numpy() == 5.0


def testTapeNoOpGradientWithMultiTargetAllSource():
    x = nl.constant(3.0)
    with nl.GradientTape() as t:
        t.watch(x)
        y = x
    assert t.gradient([y, y], x).numpy() == 2.0


def testTapeNoOpGradientWithMultiTargetMultiSource():
    x = nl.constant(3.0)
    y = nl.constant(5.0)
    with nl.GradientTape() as t:
        t.watch(x)
        t.watch(y)
        z = y * y
    assert _v(t.gradient([x, y, z], [x, y])) == [1.0, 11.0]


def testTapeNoOpGradient2By2():
    a_2_by_2 = nl.constant(np.full([2, 2], 2.0))
    with nl.GradientTape(persistent=True) as tape:
        tape.watch(a_2_by_2)
    dy_dy = tape.gradient(a_2_by_2, [a_2_by_2])[0]
    np.testing.assert_array_equal(dy_dy.numpy(), np.full([2, 2], 1.0))


def testTapeNoOpGradientMultiTarget2By2():
    a_2_by_2 = nl.constant(np.full([2, 2], 2.0))
    with nl.GradientTape(persistent=True) as tape:
        tape.watch(a_2_by_2)
    dy_dy = tape.gradient([a_2_by_2, a_2_by_2], [a_2_by_2])[0]
    np.testing.assert_array_equal(dy_dy.numpy(), np.full([2, 2], 2.0))


def testTapeStopRecording():
    with nl.GradientTape() as t:
        x = nl.Variable(1.0)
        with t.stop_recording():
            y = x * x
    assert t.gradient(y, x) is None


def testTapeStopStartRecording():
    with nl.GradientTape(persistent=True) as t:
        x = nl.Variable(1.0)
        x2 = x * 2  # This should be differentiated through.
        with t.stop_recording():
            y = x2 * x2
        z = x2 * x2
    assert t.gradient(y, x2) is None

    # If the x*2 was not differentiated through, this would be 2.0, not 4.0
    assert t.gradient(z, x2).numpy() == 4.0


def testTapeReset():
    with nl.GradientTape() as t:
        v = nl.Variable(1.0)
        loss = v * v
        t.reset()
        loss += v * v
    assert _v(t.gradient(loss, v)) == 2.0


def testAutomaticWatchedVariables():
    with nl.GradientTape() as t:
        assert 0 == len(t.watched_variables())
        v = nl.Variable(1.0)
        loss = v * v
        assert [v] == list(t.watched_variables())

        t.reset()
        assert 0 == len(t.watched_variables())
        loss += v * v
        assert [v] == list(t.watched_variables())


def testExplicitWatchedVariables():
    with nl.GradientTape() as t:
        assert 0 == len(t.watched_variables())
        v = nl.Variable(1.0)
        t.watch(v)
        assert [v] == list(t.watched_variables())

        t.reset()
        assert 0 == len(t.watched_variables())
        t.watch(v)
        assert [v] == list(t.watched_variables())


def testGradientWithinTapeBlock():
    v1 = nl.Variable(1.)
    with nl.GradientTape() as t:
        loss = 2 * v1
        grad = t.gradient(loss, v1)
    assert _v(grad) == 2.0

    with nl.GradientTape(persistent=True) as t:
        loss = 2 * v1
        grad = t.gradient(loss, v1)
    assert _v(grad) == 2.0


def testNestedSelfContexts():
    with nl.GradientTape() as t:
        # numlin: RuntimeError (TensorFlow: ValueError)
        with pytest.raises(RuntimeError, match="already recording"):
            with t:
                pass


def testWatchingIsTapeLocal():
    x1 = nl.Variable(2.0, trainable=False)
    x2 = nl.Variable(2.0, trainable=False)

    with nl.GradientTape() as tape1:
        with nl.GradientTape() as tape2:
            tape1.watch(x1)
            tape2.watch([x1, x2])
            y = x1**3
            z = x2**2
            dy, dz = tape2.gradient([y, z], [x1, x2])
        d2y, d2z = tape1.gradient([dy, dz], [x1, x2])

    assert _v(d2y) == 12.0
    assert d2z is None


def testGradGrad():
    def sq(x):
        return x * x

    def grad(x):
        value = gradients_function(sq, [0])(x)[0]
        return value

    gradgrad = gradients_function(grad, [0])

    assert _v(gradgrad(nl.constant(3.0))[0]) == 2.0


def testGradGradExp():
    def grad(x):
        value = gradients_function(nl.exp, [0])(x)[0]
        return value

    gradgrad = gradients_function(grad, [0])

    assert _v(gradgrad(nl.constant(0.0))[0]) == 1.0


def testCPU():
    def fn(x):
        b = nl.constant(2.0)
        c = nl.add(x, b)
        return nl.add(c, nl.constant(3.0))

    grad = gradients_function(fn, [0])(nl.constant(1.0))[0]
    assert _v(grad) == 1.0


def testEmptyParams():
    def fn(a, b):
        return a * b

    x = nl.constant(1.0)
    y = nl.constant(2.0)
    dx, dy = gradients_function(fn)(x, y)
    assert _v(dx) == y.numpy()
    assert _v(dy) == x.numpy()


def testGradientTapeReEnterContext():
    g = nl.GradientTape()
    with g:
        x = nl.constant(3.0)
        g.watch(x)
        y = 2 * x
    with g:
        z = 2 * y
    grad = g.gradient(target=z, sources=[x])
    assert _v(grad) == [4.0]


def testGradientTapeRepeatedSource():
    with nl.GradientTape(persistent=False) as g:
        x = nl.constant(3.0)
        g.watch(x)
        y = 2 * x
    grad = g.gradient(target=y, sources=[x, x])
    assert _v(grad) == [2.0, 2.0]


def testPersistentGradientTapeRepeatedSource():
    with nl.GradientTape(persistent=True) as g:
        x = nl.constant(3.0)
        y = nl.constant(5.0)
        g.watch(x)
        g.watch(y)
        z = x * x + x * y
    grad = g.gradient(target=z, sources=[x, x])
    assert _v(grad) == [11.0, 11.0]
    grad = g.gradient(target=z, sources=[y, x])
    assert _v(grad) == [3.0, 11.0]


def testGradientTapeStructure():
    with nl.GradientTape(persistent=True) as g:
        # Using different constant values because constant tensors are
        # cached, leading to a different gradient then what one might expect.
        x1 = nl.constant(3.0)
        x2 = nl.constant(3.1)
        x3 = nl.constant(3.2)
        g.watch(x1)
        g.watch(x2)
        g.watch(x3)
        y = x1 + 2 * x2 + 3 * x3
    assert _v(g.gradient(y, x1)) == 1.0
    assert _v(g.gradient(y, (x1,))) == (1.0,)
    assert _v(g.gradient(y, (x1, x2))) == (1.0, 2.0)
    assert _v(g.gradient(y, [(x1, x2), (x2, x3)])) == [(1.0, 2.0), (2.0, 3.0)]
    assert _v(g.gradient(y, (x1, x2, [x1, x3]))) == (1.0, 2.0, [1.0, 3.0])
    assert _v(g.gradient(y, [x1, {'x2': x2, 'x3': x3}])) == [1.0, {'x2': 2.0, 'x3': 3.0}]


def testGradientTape():
    with nl.GradientTape() as g:
        x = nl.constant(3.0)
        g.watch(x)
        y = x * x
        with nl.GradientTape() as gg:
            gg.watch(y)
            z = 2 * y
        inner_grad = gg.gradient(z, [y])[0]
        assert _v(inner_grad) == 2.0
        y += inner_grad
    grad = g.gradient(y, [x])[0]
    assert _v(grad) == 6.0


def testGadientTapeCalledOnConstantTarget():
    with nl.GradientTape() as g:
        x = nl.Variable([3.0])
        y = nl.Variable([2.0])
    grad = g.gradient(x, y)
    assert grad is None


def testGradientTapeGradientCalledMultipleTimes():
    with nl.GradientTape() as g:
        x = nl.constant(3.0)
        g.watch(x)
        y = x * x
        z = y * y
    g.gradient(z, [x])
    with pytest.raises(RuntimeError, match='GradientTape.gradient can only be called once'):
        g.gradient(y, [x])


def testPersistentTape():
    with nl.GradientTape(persistent=True) as g:
        x = nl.constant(3.0)
        g.watch(x)
        y = x * x
        z = y * y
    dz_dx = g.gradient(z, [x])[0]
    assert _v(dz_dx) == 4 * 3 * 3 * 3
    dy_dx = g.gradient(y, [x])[0]
    assert _v(dy_dx) == 2 * 3
    del g


def testHigherOrderGradient():
    with nl.GradientTape(persistent=True) as g:
        x = nl.constant(3.0)
        g.watch(x)
        y = x**3  # y       := x^3
        dy_dx = g.gradient(y, x)  # dy/dx   := 3x^2
        d2y_dx2 = g.gradient(dy_dx, x)  # d2y/dx2 := 6x
    d3y_dx3 = g.gradient(d2y_dx2, x)  # d3y/dx3 := 6
    x = 3
    assert _v(y) == x**3
    assert _v(dy_dx) == 3 * x**2
    assert _v(d2y_dx2) == 6 * x
    assert _v(d3y_dx3) == 6
    del g


def testPersistentNestedTape():
    with nl.GradientTape(persistent=True) as g:
        x = nl.constant(3.0)
        g.watch(x)
        y = x * x
        with nl.GradientTape(persistent=True) as gg:
            gg.watch(y)
            z = 2 * y
        for _ in range(2):
            inner_grad = gg.gradient(z, [y])[0]
            assert _v(inner_grad) == 2.0
        y += inner_grad
        del gg
    grad = g.gradient(y, [x])[0]
    assert _v(grad) == 6.0
    grad = g.gradient(z, [x])[0]
    assert _v(grad) == 12.0
    del g


def testGradientTapeVariable():
    v = nl.Variable(1.0, name='v')
    with nl.GradientTape() as g:
        y = v * v
    grad = g.gradient(y, [v])[0]
    assert _v(grad) == 2.0


def testNestedGradients():
    x = nl.constant(3.0)
    with nl.GradientTape() as g:
        g.watch(x)
        y = x * x
        z = y * y
    dz_dx, dz_dy = g.gradient(z, [x, y])
    assert _v(dz_dx) == 108.0
    assert _v(dz_dy) == 18.0


def testUnconnectedGradientsDefault():
    x = nl.constant(1.0)
    y = nl.constant(3.0)
    with nl.GradientTape() as g:
        g.watch([x, y])
        z = y * 2
    dz_dx = g.gradient(z, x)
    assert dz_dx is None


def testUnconnectedGradientsZeros():
    x = nl.constant(np.full([2, 2], 1.0))
    y = nl.constant(3.0)
    with nl.GradientTape() as g:
        g.watch([x, y])
        z = y * 2
    dz_dx = g.gradient(z, x, unconnected_gradients='zero')
    assert _v(dz_dx) == [[0.0, 0.0], [0.0, 0.0]]


def testUnconnectedGradientsVariablesZeros():
    x = nl.Variable(nl.constant(np.full([2, 2], 1.)))
    y = nl.Variable(nl.constant(3.))
    with nl.GradientTape() as g:
        g.watch([x, y])
        z = y * 2
    dz_dx = g.gradient(z, x, unconnected_gradients='zero')
    assert _v(dz_dx) == [[0.0, 0.0], [0.0, 0.0]]


def testUnknownUnconnectedGradientsValueGiven():
    x = nl.constant(1.0)
    y = nl.constant(1.0)
    with nl.GradientTape() as g:
        g.watch([x, y])
        z = y * 2
    with pytest.raises(ValueError, match="Unknown value for unconnected_gradients: 'nonsense'"):
        g.gradient(z, x, unconnected_gradients='nonsense')


def testEmptyParamsForValueAndGradFunction():
    def fn(a, b):
        return a * b

    val_and_grads_fn = val_and_grad_function(fn)

    x = 2.0
    y = 3.0
    val, (dx, dy) = val_and_grads_fn(x, y)
    assert _v(val) == pytest.approx(x * y)
    assert _v(dx) == y
    assert _v(dy) == x


def testNonEmptyParamsForValueAndGradFunction():
    def fn(a, b):
        return a * b

    val_and_grad_fn = val_and_grad_function(fn, params=[1])

    x = 2.0
    y = 3.0
    val, grads = val_and_grad_fn(x, y)
    assert _v(val) == pytest.approx(x * y)
    assert 1 == len(grads)
    assert _v(grads[0]) == x


def testMulType():
    def mul(x):
        return nl.multiply(x, x)  # math_ops._mul_dispatch

    assert gradients_function(mul)(3.0)[0].numpy() == 6.0


def testArgsGradientFunction():
    def f(*args):
        return args[0] * args[0]

    grad = gradients_function(f)
    assert _v(grad(1.0)[0]) == 2.0


def testPartial():
    def f(x, y):
        return x * y

    part = functools.partial(f, nl.constant(2.0))
    assert _v(gradients_function(part)(nl.constant(1.0))[0]) == 2.0


def testReturnSameThing():
    def f(x):
        return x, 2 * x

    # numlin: the function must return one Tensor, TypeError (TensorFlow sums the outputs: 3.0)
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradients_function(f)(1.0)


def testExceptionSafety():
    def f(unused_x):
        raise ValueError()

    try:
        gradients_function(f)(1.0)
    except ValueError:
        pass

    def real_f(x):
        return x * x

    assert _v(gradients_function(real_f)(1.0)[0]) == 2.0


def testOutput():
    def multiout(x):
        return x + 2, x * x

    x = nl.constant([0.0, 1.0, 2.0])

    # numlin: TypeError for a tuple of outputs (TensorFlow sums them: [1.0, 3.0, 5.0])
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradients_function(multiout)(x)


def testMultiValuePreservesIfNotDiffedAgainst():
    def tfe_conv2d(timage, tkernel, conv2dstrides):
        return nl.conv2d(timage, tkernel, stride=conv2dstrides[1:3], padding='same', layout='NHWC')

    i = nl.constant([[[[1.0]]]])
    k = nl.constant([[[[2.0]]]])
    s = [1, 1, 1, 1]

    grad = gradients_function(tfe_conv2d, params=(0,))(i, k, s)[0]
    assert _v(grad) == [[[[2.0]]]]


def testSameObjectForMultipleArguments():
    def f(x, y):
        return nl.multiply(x, y)

    g = gradients_function(f)

    def np_g(x, y):
        dx, dy = g(x, y)
        return [dx.numpy(), dy.numpy()]

    x = nl.constant(1.)
    assert _v(np_g(x, x)) == [1., 1.]
    x = 1.
    assert _v(np_g(x, x)) == [1., 1.]
    x = nl.constant([[1.]])
    assert np.array(np_g(x, x)).tolist() == [[[1.]], [[1.]]]
    x = [[1.]]
    assert np.array(np_g(x, x)).tolist() == [[[1.]], [[1.]]]

    v = nl.Variable(1., name='testSameObjectForMultipleArguments.Variable')
    assert _v(np_g(v, v)) == [1., 1.]


def testDifferentiatingFunctionThatReturnsNone():
    def fn(x, y):
        x * y  # computed, then dropped: fn returns None

    x = nl.constant(1.)
    y = nl.constant(2.)

    val_and_grads_fn = val_and_grad_function(fn)
    # numlin: TypeError naming what came back (TensorFlow: ValueError 'Cannot differentiate a
    # function that returns None'); float constants, as numlin refuses integer ones first
    with pytest.raises(TypeError, match='must return a Tensor, got NoneType'):
        val_and_grads_fn(x, y)


def testSelectivelyWatchVariables():
    x1 = nl.Variable(1.0)
    x2 = nl.Variable(1.0)
    with nl.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x2)
        y = x1**2
        z = x2**3
    assert tape.watched_variables() == (x2,)
    dy, dz = tape.gradient([y, z], [x1, x2])
    assert dy is None
    assert _v(dz) == 3.0


def testDifferentiatingScalarCache():
    # In the following test, if x2 = x1 (i.e the objects are the exact same),
    # then y is essentially, 2*x1, and dy/dx1 = 2.
    with nl.GradientTape(persistent=False) as g:
        x1 = nl.constant(3.0)
        x2 = nl.constant(3.0)
        g.watch(x1)
        g.watch(x2)
        y = x1 + x2
    grad = g.gradient(target=y, sources=[x1])
    assert _v(grad) == [1.0]


def testVariablesAndConstantsProduceTheSameGradients():
    def get_grads(a, b):
        with nl.GradientTape() as tape:
            tape.watch([a, b])
            y = a**3
            z = b**2
        return tape.gradient([y, z], [a, b])

    gradients_constants = get_grads(nl.constant(2.0), nl.constant(2.0))
    gradients_variables = get_grads(nl.Variable(2.0), nl.Variable(2.0))
    assert _v(gradients_constants) == _v(gradients_variables)


def testWatchBadThing():
    g = nl.GradientTape()
    # numlin: TypeError (TensorFlow: ValueError), naming the type
    with pytest.raises(TypeError, match='ndarray'):
        g.watch(np.array(1.))


def testWatchedVariablesAfterNonPersistentGradientCall():
    with nl.GradientTape(persistent=False) as tape:
        x = nl.Variable(1.0)
        tape.watch(x)
    tape.gradient(x, x)
    assert (x,) == tape.watched_variables()


def testWatchedVariablesOnlyHasVariablesFromLastTape():
    with nl.GradientTape(persistent=False) as tape:
        x = nl.Variable(1.0)
        tape.watch(x)
    with nl.GradientTape(persistent=False) as tape:
        z = nl.Variable(2.0)
        tape.watch(z)
    tape.gradient(z, z)
    assert (z,) == tape.watched_variables()


def testWatchedVariablesRespectReset():
    with nl.GradientTape(persistent=False) as tape:
        x = nl.Variable(1.0)
        tape.watch(x)
        assert (x,) == tape.watched_variables()
        tape.reset()
        z = nl.Variable(2.0)
        tape.watch(z)
        assert (z,) == tape.watched_variables()
    tape.gradient(z, z)
    assert (z,) == tape.watched_variables()
