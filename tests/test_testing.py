"""nl.testing.check_grads: passes on correct gradients, catches wrong ones (first and second order)."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin.autodiff import ops


def _square_wrong_vjp(x):
    """x² with the gradient 3x (wrong)."""
    x = ops._tensor(x, "square")
    data = x.numpy() * x.numpy()
    return ops._make("square", data, (x,), lambda g, needs: (ops.multiply(g, ops.multiply(x, 3.0)),))


def _square_first_order_only(x):
    """x² with the right gradient 2x computed from raw data: correct once, but an outer tape sees
    a constant, so the second derivative comes out 0 instead of 2."""
    x = ops._tensor(x, "square")
    data = x.numpy() * x.numpy()
    return ops._make("square", data, (x,), lambda g, needs: (ops.multiply(g, nl.Tensor(2 * x.numpy())),))


def _square_right(x):
    x = ops._tensor(x, "square")
    return ops._make("square", x.numpy() * x.numpy(), (x,), lambda g, needs: (ops.multiply(g, ops.multiply(x, 2.0)),))


def test_passes_on_correct_gradients(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    nl.testing.check_grads(lambda x, y: nl.sin(x) * y + nl.exp(y), [a, b])
    nl.testing.check_grads(lambda x, y: nl.tanh(nl.matmul(x, y)), [a, b], order=2)
    nl.testing.check_grads(_square_right, [a], order=3)
    nl.testing.check_grads(lambda x: nl.sum(x * x), [nl.Tensor(a)], n_directions=1,
                           random_state=np.random.default_rng(1))


def test_passes_in_float32_with_dtype_tolerances(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    nl.testing.check_grads(lambda x: nl.sigmoid(x) * x, [a])


def test_catches_a_wrong_gradient(rng):
    a = rng.uniform(0.5, 1.5, 5)
    with pytest.raises(AssertionError, match="order-1 directional derivative 0"):
        nl.testing.check_grads(_square_wrong_vjp, [a])


def test_catches_a_wrong_second_derivative(rng):
    a = rng.uniform(0.5, 1.5, 5)
    nl.testing.check_grads(_square_first_order_only, [a])  # first order is right
    with pytest.raises(AssertionError, match="order-2 directional derivative"):
        nl.testing.check_grads(_square_first_order_only, [a], order=2)


def test_catches_a_gradient_wrong_only_for_one_argument(rng):
    a, b = rng.standard_normal(3), rng.uniform(0.5, 1.5, 3)
    with pytest.raises(AssertionError):
        nl.testing.check_grads(lambda x, y: x + _square_wrong_vjp(y), [a, b])


def test_tolerances_can_be_tightened_and_loosened(rng):
    a = rng.uniform(0.5, 1.5, 4)
    # 3x vs 2x: a 50% error passes with rtol=1, fails with the default
    nl.testing.check_grads(_square_wrong_vjp, [a], rtol=1.0)
    with pytest.raises(AssertionError):
        nl.testing.check_grads(lambda x: nl.exp(x), [a], eps=1e-1, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.testing.check_grads(nl.sin, [np.ones(2)], order=0), ValueError, "order"),
    (lambda: nl.testing.check_grads(nl.sin, [np.arange(3)]), TypeError, "argument 0 has dtype int64"),
    (lambda: nl.testing.check_grads(lambda x: 1.0, [np.ones(2)]), TypeError, "must return a Tensor"),
])
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
