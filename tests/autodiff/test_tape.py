"""GradientTape semantics (TensorFlow's): watching, persistence, structures of sources,
output_gradients, unconnected gradients, stop_recording, Variables, nested tapes, memory
release; and the functional face, ``grad`` / ``value_and_grad``."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import numlin as nl


def test_seed_example():
    x = nl.constant(2.0)
    y = nl.constant(5.0)
    with nl.GradientTape() as g:
        g.watch(x)
        out = nl.log(x) + nl.subtract(nl.multiply(x, y), nl.sin(y))
    gx = g.gradient(out, x)
    assert isinstance(gx, nl.Tensor) and gx.shape == () and gx.dtype == np.float64
    assert float(gx) == pytest.approx(5.5, rel=1e-15)
    assert float(out) == pytest.approx(np.log(2) + 10 - np.sin(5), rel=1e-15)


def _xy():
    return nl.Tensor(np.array([1.0, 2.0, 3.0])), nl.Tensor(np.array([0.5, -1.0, 2.0]))


def test_unwatched_sources_get_none_or_zeros():
    x, y = _xy()
    with nl.GradientTape(persistent=True) as tape:
        tape.watch(x)
        z = nl.sum(x * y)
    gx, gy = tape.gradient(z, [x, y])
    np.testing.assert_array_equal(gx.numpy(), y.numpy())
    assert gy is None
    gx, gy = tape.gradient(z, [x, y], unconnected_gradients="zero")
    np.testing.assert_array_equal(gy.numpy(), np.zeros(3))
    assert gy.dtype == y.dtype and gy.shape == y.shape
    other = nl.Tensor(np.ones((2, 2), np.float32))
    tape.watch(other)  # watched but not connected to z
    assert tape.gradient(z, other) is None
    g0 = tape.gradient(z, other, unconnected_gradients="zero")
    assert g0.dtype == np.float32 and g0.shape == (2, 2) and not g0.numpy().any()
    with pytest.raises(ValueError, match="unconnected_gradients"):
        tape.gradient(z, x, unconnected_gradients="zeros")


def test_nothing_recorded_without_watch():
    x, y = _xy()
    with nl.GradientTape() as tape:
        z = nl.sum(nl.exp(x))
    assert tape.gradient(z, x) is None


def test_non_persistent_tape_answers_once():
    x, _ = _xy()
    with nl.GradientTape() as tape:
        tape.watch(x)
        z = nl.sum(x * x)
    np.testing.assert_array_equal(tape.gradient(z, x).numpy(), 2 * x.numpy())
    with pytest.raises(RuntimeError, match="only be called once"):
        tape.gradient(z, x)
    with pytest.raises(RuntimeError):
        tape.watch(x)
    with pytest.raises(RuntimeError, match="cannot be reused"):
        with tape:
            pass


def test_persistent_tape_answers_many_times_and_for_intermediates():
    x, y = _xy()
    with nl.GradientTape(persistent=True) as tape:
        tape.watch([x, y])
        h = x * y
        z = nl.sum(nl.sin(h))
        w = nl.sum(h * h)
    for _ in range(2):
        gx, gy = tape.gradient(z, (x, y))
        np.testing.assert_allclose(gx.numpy(), np.cos(x.numpy() * y.numpy()) * y.numpy(), rtol=1e-15)
        np.testing.assert_allclose(gy.numpy(), np.cos(x.numpy() * y.numpy()) * x.numpy(), rtol=1e-15)
    np.testing.assert_allclose(tape.gradient(z, h).numpy(), np.cos(h.numpy()), rtol=1e-15)
    np.testing.assert_allclose(tape.gradient(w, x).numpy(), 2 * h.numpy() * y.numpy(), rtol=1e-15)
    # a source that is also the target
    np.testing.assert_array_equal(tape.gradient(h, h).numpy(), np.ones(3))
    # several targets: their gradients add
    np.testing.assert_allclose(tape.gradient([z, w], x).numpy(),
                               (np.cos(h.numpy()) + 2 * h.numpy()) * y.numpy(), rtol=1e-14)


def test_persistent_tape_can_record_again():
    x, _ = _xy()
    tape = nl.GradientTape(persistent=True)
    with tape:
        tape.watch(x)
        a = nl.sum(x * 2.0)
    with tape:
        b = nl.sum(x * x)
    np.testing.assert_array_equal(tape.gradient(a, x).numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(tape.gradient(b, x).numpy(), 2 * x.numpy())
    with pytest.raises(RuntimeError, match="already recording"):
        with tape:
            with tape:
                pass
    tape.reset()
    assert tape.gradient(b, x) is None


def test_gradient_inside_the_with_block():
    """TensorFlow's rule: a non-persistent tape that has answered stops recording; later ops in
    the block still run."""
    x, _ = _xy()
    with nl.GradientTape() as tape:
        tape.watch(x)
        z = nl.sum(x * x)
        g = tape.gradient(z, x)
        after = nl.exp(x) + g  # must not touch the released tape
    np.testing.assert_allclose(after.numpy(), np.exp(x.numpy()) + 2 * x.numpy())
    with pytest.raises(RuntimeError, match="only be called once"):
        tape.gradient(z, x)
    with nl.GradientTape(persistent=True) as tape:
        tape.watch(x)
        z = nl.sum(x * x)
        g = tape.gradient(z, x)
        z2 = nl.sum(x * x * x)
    np.testing.assert_array_equal(tape.gradient(z, x).numpy(), g.numpy())
    np.testing.assert_allclose(tape.gradient(z2, x).numpy(), 3 * x.numpy() ** 2)


def test_sources_and_results_share_a_structure():
    x, y = _xy()
    s = nl.Tensor(np.array(2.0))
    with nl.GradientTape(persistent=True) as tape:
        tape.watch([x, y, s])
        z = nl.sum(x * y) * s
    gx, gy, gs = 2 * y.numpy(), 2 * x.numpy(), np.sum(x.numpy() * y.numpy())
    assert isinstance(tape.gradient(z, x), nl.Tensor)
    out = tape.gradient(z, [x, y])
    assert isinstance(out, list) and len(out) == 2
    out = tape.gradient(z, (x, y))
    assert isinstance(out, tuple)
    out = tape.gradient(z, {"a": x, "b": [y, {"c": s}]})
    assert set(out) == {"a", "b"} and isinstance(out["b"], list) and set(out["b"][1]) == {"c"}
    np.testing.assert_array_equal(out["a"].numpy(), gx)
    np.testing.assert_array_equal(out["b"][0].numpy(), gy)
    assert float(out["b"][1]["c"]) == pytest.approx(gs)
    with pytest.raises(TypeError, match="sources"):
        tape.gradient(z, x.numpy())


def test_non_scalar_targets_are_summed_and_output_gradients_weight_them(rng):
    a = rng.standard_normal((2, 3))
    x = nl.Tensor(a)
    with nl.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        y2 = nl.sin(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 2 * a, rtol=1e-15)  # TensorFlow's rule: sum(y)
    u = rng.standard_normal((2, 3))
    np.testing.assert_allclose(tape.gradient(y, x, output_gradients=u).numpy(), 2 * a * u, rtol=1e-15)
    np.testing.assert_allclose(tape.gradient(y, x, output_gradients=nl.Tensor(u)).numpy(), 2 * a * u, rtol=1e-15)
    u2 = rng.standard_normal((2, 3))
    got = tape.gradient([y, y2], x, output_gradients=[u, u2])
    np.testing.assert_allclose(got.numpy(), 2 * a * u + np.cos(a) * u2, rtol=1e-14)
    got = tape.gradient([y], x, output_gradients=[u])  # one target in a list, its seed in a list
    np.testing.assert_allclose(got.numpy(), 2 * a * u, rtol=1e-15)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        tape.gradient(y, x, output_gradients=np.ones(3))
    with pytest.raises(ValueError, match="1 output_gradients for 2 targets"):
        tape.gradient([y, y2], x, output_gradients=[u])


def test_output_gradients_are_cast_to_the_target_dtype():
    x = nl.Tensor(np.ones(3, np.float32))
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = x * 3.0
    g = tape.gradient(y, x, output_gradients=np.array([1.0, 2.0, 3.0]))
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g.numpy(), [3.0, 6.0, 9.0])


def test_integer_targets_and_sources_are_rejected():
    i = nl.Tensor(np.arange(3))
    x, _ = _xy()
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = x * 2.0
    with pytest.raises(TypeError, match="target has integer dtype int64"):
        tape.gradient(i, x)
    with pytest.raises(TypeError, match="source has integer dtype"):
        tape.gradient(y, [x, i])


def test_stop_recording():
    x, _ = _xy()
    with nl.GradientTape() as tape:
        tape.watch(x)
        a = x * x
        with tape.stop_recording():
            b = x * x  # not recorded: a constant for this tape
        z = nl.sum(a + b * x)
    np.testing.assert_allclose(tape.gradient(z, x).numpy(), 2 * x.numpy() + x.numpy() ** 2)
    with pytest.raises(RuntimeError, match="not recording"):
        with tape.stop_recording():
            pass


def test_stop_recording_affects_only_its_tape():
    x, _ = _xy()
    with nl.GradientTape() as outer:
        outer.watch(x)
        with nl.GradientTape() as inner:
            inner.watch(x)
            with inner.stop_recording():
                y = nl.sum(x * x)
        assert inner.gradient(y, x) is None
    np.testing.assert_array_equal(outer.gradient(y, x).numpy(), 2 * x.numpy())


def test_variables_are_watched_automatically():
    v = nl.Variable(np.array([1.0, -2.0]), name="v")
    frozen = nl.Variable(np.array([3.0, 4.0]), trainable=False)
    c = nl.constant(np.array([5.0, 6.0]))
    with nl.GradientTape() as tape:
        z = nl.sum(v * frozen * c)
    assert tape.watched_variables() == (v,)
    gv, gf, gc_ = tape.gradient(z, [v, frozen, c])
    np.testing.assert_array_equal(gv.numpy(), [15.0, 24.0])
    assert gf is None and gc_ is None


def test_watch_accessed_variables_false():
    v = nl.Variable(np.array([1.0, -2.0]))
    w = nl.Variable(np.array([0.5, 0.25]))
    with nl.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(w)
        z = nl.sum(v * w)
    assert tape.watched_variables() == (w,)
    gv, gw = tape.gradient(z, [v, w])
    assert gv is None
    np.testing.assert_array_equal(gw.numpy(), v.numpy())


def test_variable_owns_its_buffer_and_assign_keeps_identity():
    a = np.array([1.0, 2.0])
    v = nl.Variable(a)
    v.assign_sub(np.array([0.5, 0.5]))
    np.testing.assert_array_equal(a, [1.0, 2.0])
    np.testing.assert_array_equal(v.numpy(), [0.5, 1.5])
    with nl.GradientTape() as tape:
        z = nl.sum(v * v)
    np.testing.assert_array_equal(tape.gradient(z, v).numpy(), [1.0, 3.0])
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        v.assign(np.ones(3))


# --------------------------------------------------------------------------- memory
def _big_graph():
    x = nl.Tensor(np.linspace(0.0, 1.0, 200_000))
    tape = nl.GradientTape()
    with tape:
        tape.watch(x)
        h = nl.exp(x)  # a large intermediate only the tape keeps
        z = nl.sum(h * h)
    return x, tape, z, weakref.ref(h), weakref.ref(h.data)


def test_non_persistent_gradient_releases_intermediates():
    x, tape, z, h_ref, data_ref = _big_graph()
    gc.collect()
    assert h_ref() is not None  # the tape holds it until it has answered
    g = tape.gradient(z, x)
    gc.collect()
    assert h_ref() is None and data_ref() is None
    np.testing.assert_allclose(g.numpy(), 2 * np.exp(2 * x.numpy()), rtol=1e-14)


def test_persistent_tape_keeps_intermediates_until_deleted():
    x = nl.Tensor(np.linspace(0.0, 1.0, 200_000))
    tape = nl.GradientTape(persistent=True)
    with tape:
        tape.watch(x)
        h = nl.exp(x)
        z = nl.sum(h * h)
    h_ref = weakref.ref(h)
    del h
    g1 = tape.gradient(z, x)
    gc.collect()
    assert h_ref() is not None
    g2 = tape.gradient(z, x)
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())
    del tape
    gc.collect()
    assert h_ref() is None


# --------------------------------------------------------------------------- nested tapes
def test_nested_tapes_give_second_derivatives():
    x = nl.constant(1.5)
    with nl.GradientTape() as outer:
        outer.watch(x)
        with nl.GradientTape() as inner:
            inner.watch(x)
            y = x ** 3.0
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert float(dy) == pytest.approx(3 * 1.5 ** 2, rel=1e-15)
    assert float(d2y) == pytest.approx(6 * 1.5, rel=1e-15)


def test_persistent_inner_tape_in_an_outer_one(rng):
    """Hessian rows by a persistent inner tape: ∂²/∂x_i∂x_j of sum(sin(x_0 x_1 ...))."""
    a = rng.standard_normal(3)
    x = nl.Tensor(a)
    with nl.GradientTape(persistent=True) as outer:
        outer.watch(x)
        with nl.GradientTape(persistent=True) as inner:
            inner.watch(x)
            y = nl.sum(nl.exp(x) * nl.sum(x * x))
        g = inner.gradient(y, x)
        g_again = inner.gradient(y, x)
        rows = [nl.sum(g * nl.Tensor(np.eye(3)[i])) for i in range(3)]
    np.testing.assert_array_equal(g.numpy(), g_again.numpy())
    H = np.stack([outer.gradient(r, x).numpy() for r in rows])
    s, e = np.sum(a * a), np.exp(a)
    want = np.diag(e * s) + 2 * np.outer(e, a) + 2 * np.outer(a, e) + 2 * np.diag(np.full(3, e.sum()))
    np.testing.assert_allclose(H, want, rtol=1e-13)


def test_persistent_inner_tape_records_its_own_gradient_call_and_outer_does_too():
    """TensorFlow's rule (issue 16 changed it from "not on itself"): a persistent tape asked for a
    gradient inside its own block records that backward pass, as every outer tape does."""
    x = nl.constant(0.3)
    with nl.GradientTape() as outer:
        outer.watch(x)
        with nl.GradientTape(persistent=True) as inner:
            inner.watch(x)
            y = nl.sin(x)
            g = inner.gradient(y, x)  # inside inner's own block: recorded by inner and outer
        assert float(inner.gradient(g, x)) == pytest.approx(-np.sin(0.3), rel=1e-15)
    assert float(outer.gradient(g, x)) == pytest.approx(-np.sin(0.3), rel=1e-15)


def test_persistent_tape_gives_second_derivatives_on_its_own():
    """TensorFlow's higher-order pattern with one persistent tape (numlin used to give None)."""
    x = nl.constant(3.0)
    with nl.GradientTape(persistent=True) as t:
        t.watch(x)
        y = x ** 3
        dy = t.gradient(y, x)
        d2y = t.gradient(dy, x)
        d3y = t.gradient(d2y, x)
    assert (float(dy), float(d2y), float(d3y)) == (27.0, 18.0, 6.0)
    assert float(t.gradient(dy, x)) == 18.0  # after the block too
    # outside the block nothing more is recorded: a gradient computed there is a constant
    d2_outside = t.gradient(dy, x)
    assert t.gradient(d2_outside, x) is None
    # a non-persistent tape answers once, inside its block too, and records nothing after
    with nl.GradientTape() as t1:
        t1.watch(x)
        y = x ** 3
        dy = t1.gradient(y, x)
    with pytest.raises(RuntimeError, match="only be called once"):
        t1.gradient(dy, x)


# --------------------------------------------------------------------------- grad / value_and_grad
def f2(x, y):
    return nl.sum(nl.sin(x) * y)


def test_grad_and_value_and_grad(rng):
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    g = nl.grad(f2)(nl.Tensor(a), b)
    np.testing.assert_allclose(g.numpy(), np.cos(a) * b, rtol=1e-15)
    value, (ga, gb) = nl.value_and_grad(f2, argnums=(0, 1))(a, b)
    assert float(value) == pytest.approx(np.sum(np.sin(a) * b), rel=1e-14)
    np.testing.assert_allclose(ga.numpy(), np.cos(a) * b, rtol=1e-15)
    np.testing.assert_allclose(gb.numpy(), np.sin(a), rtol=1e-15)
    gb = nl.grad(f2, argnums=-1)(a, b)
    np.testing.assert_allclose(gb.numpy(), np.sin(a), rtol=1e-15)
    (gb2,) = nl.grad(f2, argnums=(1,))(a, b)
    np.testing.assert_allclose(gb2.numpy(), np.sin(a), rtol=1e-15)


def test_grad_composes_into_higher_derivatives():
    def f(x):
        return x * x * x + nl.exp(x)

    d2 = nl.grad(nl.grad(f))(nl.constant(0.5))
    d3 = nl.grad(nl.grad(nl.grad(f)))(nl.constant(0.5))
    assert float(d2) == pytest.approx(6 * 0.5 + np.exp(0.5), rel=1e-14)
    assert float(d3) == pytest.approx(6 + np.exp(0.5), rel=1e-14)


def test_grad_of_unconnected_argument_is_zero_and_nonscalar_output_is_summed():
    g = nl.grad(lambda x, y: x * 2.0, argnums=1)(nl.Tensor(np.ones(3)), np.ones(2))
    np.testing.assert_array_equal(g.numpy(), np.zeros(2))
    g = nl.grad(lambda x: x * x)(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])


def test_grad_treats_repeated_arguments_as_distinct_inputs():
    """grad(f, (0, 1))(x, x) differentiates with respect to each positional argument on its own
    (as for two equal floats), even when one Tensor or Variable object is passed twice."""
    f = lambda x, y: x * y  # noqa: E731
    for x in (3.0, nl.constant(3.0), nl.Variable(3.0)):
        gx, gy = nl.grad(f, (0, 1))(x, x)
        assert (float(gx), float(gy)) == (3.0, 3.0)
    v, (gx, gy) = nl.value_and_grad(lambda x, y: nl.sum(x * x * y), (0, 1))(*[nl.Tensor(np.ones(2))] * 2)
    assert float(v) == 2.0 and gx.numpy().tolist() == [2.0, 2.0] and gy.numpy().tolist() == [1.0, 1.0]
    # nested: the fresh argument is an identity of the outer one, so higher derivatives still flow
    t = nl.constant(2.0)
    assert float(nl.grad(lambda a: nl.grad(f, 0)(a, a))(t)) == 1.0  # d/da [y at y = a] = 1
    with nl.GradientTape() as tape:
        tape.watch(t)
        g = nl.grad(lambda a: a ** 3)(t)
    assert float(tape.gradient(g, t)) == 12.0


def test_grad_errors():
    with pytest.raises(ValueError, match="argnums"):
        nl.grad(f2, argnums=2)(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="must return a Tensor"):
        nl.grad(lambda x: 3.0)(np.ones(2))
    with pytest.raises(TypeError, match="differentiable"):
        nl.grad(lambda x: x * 2.0)(np.arange(3))
