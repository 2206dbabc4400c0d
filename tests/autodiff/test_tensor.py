"""Tensor/Variable value semantics: ownership, numpy interop, in-place changes vs recorded tapes,
per-thread tapes."""
import threading

import numpy as np
import pytest

import numlin as nl


def test_tensor_copies_numpy_input_and_numpy_is_read_only():
    a = np.ones(3)
    t = nl.Tensor(a)
    a[0] = 5.0  # the caller's later writes do not reach the tensor
    np.testing.assert_array_equal(t.numpy(), np.ones(3))
    with pytest.raises(ValueError):
        t.numpy()[0] = 2.0
    c = np.array(t, copy=True)
    c[0] = 7.0
    np.testing.assert_array_equal(t.numpy(), np.ones(3))
    assert np.asarray(t, dtype=np.float32).dtype == np.float32


def test_zero_d_results_are_arrays():
    y = nl.constant(2.0) * 3
    assert isinstance(y.data, np.ndarray) and y.shape == () and float(y) == 6.0
    assert isinstance(nl.exp(nl.constant(0.0)).data, np.ndarray)


def test_variable_numpy_is_a_snapshot():
    w = nl.Variable(np.ones(2))
    before = w.numpy()
    nl.optim.SGD(0.5).apply_gradients([(np.ones(2), w)])
    np.testing.assert_array_equal(before, np.ones(2))
    np.testing.assert_array_equal(w.numpy(), [0.5, 0.5])


def test_numpy_ufuncs_refuse_tensors_instead_of_dropping_the_gradient():
    x = nl.Variable(np.array([1.0]))
    with pytest.raises(TypeError):
        np.exp(x)
    y = np.ones(1) + x  # ndarray <op> Tensor runs the Tensor's operator
    assert isinstance(y, nl.Tensor)
    with nl.GradientTape() as tape:
        z = nl.sum(np.full(1, 2.0) * x)
    np.testing.assert_allclose(tape.gradient(z, x).numpy(), [2.0])


@pytest.mark.parametrize("change", ["assign", "optimizer"])
def test_persistent_tape_refuses_a_variable_changed_in_place(change):
    w = nl.Variable(np.array([2.0]), name="w")
    with nl.GradientTape(persistent=True) as tape:
        z = w * w
    np.testing.assert_allclose(tape.gradient(z, w).numpy(), [4.0])
    if change == "assign":
        w.assign([3.0])
    else:
        nl.optim.SGD(0.1).apply_gradients([(np.ones(1), w)])
    with pytest.raises(RuntimeError, match="modified in place"):
        tape.gradient(z, w)


def test_tapes_are_per_thread():
    w = nl.Variable(np.ones(3))
    entered, done = threading.Event(), threading.Event()
    holder = {}

    def other():
        with nl.GradientTape() as tape:
            holder["tape"] = tape
            entered.set()
            done.wait(10)

    th = threading.Thread(target=other)
    th.start()
    entered.wait(10)
    w * 2.0  # the main thread's op: not on the other thread's tape
    done.set()
    th.join()
    assert holder["tape"]._nodes == []


def test_module_to_keeps_the_same_variables():
    model = nl.nn.Sequential(nl.nn.Linear(3, 2, random_state=0))
    params = model.parameters()
    values = [p.numpy() for p in params]
    opt = nl.optim.Adam(0.1)
    opt.apply_gradients(zip([np.ones(p.shape) for p in params], params))
    model.to("cuda")
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert all(p.device == "cuda" for p in params)
    opt.apply_gradients(zip([nl.Tensor(np.ones(p.shape), p.dtype, device="cuda") for p in params], params))
    model.to("cpu")
    assert all(p.device == "cpu" for p in params)
    assert all(not np.allclose(p.numpy(), v) for p, v in zip(params, values))


def test_parameters_found_in_lists_and_dicts():
    class Two(nl.nn.Module):
        def __init__(self):
            self.blocks = [nl.nn.Linear(2, 2)]
            self.extra = {"scale": nl.Variable(np.ones(1))}

    assert len(Two().parameters()) == 3


def test_apply_gradients_checks_every_pair_before_updating():
    w1, w2 = nl.Variable(np.ones(2)), nl.Variable(np.ones(3))
    opt = nl.optim.SGD(0.5)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        opt.apply_gradients([(np.ones(2), w1), (np.ones(2), w2)])
    np.testing.assert_array_equal(w1.numpy(), np.ones(2))
    assert opt.iterations == 0


def test_power_gradient_at_zero_exponent_and_base():
    x = nl.Variable(np.array([0.0, 2.0]))
    with nl.GradientTape() as tape:
        y = nl.sum(x ** 0.0)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.0, 0.0])


def test_division_by_signed_zero_follows_numpy():
    a = np.array([1.0, -1.0, 1.0, 0.0])
    b = np.array([-0.0, 0.0, 0.0, -0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(nl.divide(a, b).numpy(), a / b)


@pytest.mark.parametrize("call,exc", [
    (lambda t: nl.transpose(t, (1.7, 0.2)), TypeError),
    (lambda t: nl.reshape(t, (4.0,)), TypeError),
    (lambda t: nl.nn.log_softmax(t, axis=(0, 1)), TypeError),
])
def test_shape_arguments_must_be_ints(call, exc):
    with pytest.raises(exc):
        call(nl.constant(np.ones((2, 2))))


def test_check_grads_steps_by_the_least_precise_argument():
    a = np.array([1.3, -0.7], np.float32)
    b = np.array([0.4, 2.0], np.float64)
    nl.testing.check_grads(lambda x, y: x * y, [a, b])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("k", [1, 3])
def test_conv_of_an_empty_batch(layout, k):
    x = np.zeros((0, 3, 6, 6)) if layout == "NCHW" else np.zeros((0, 6, 6, 3))
    w = np.ones((4, 3, k, k)) if layout == "NCHW" else np.ones((k, k, 3, 4))
    y = nl.conv2d(x, w, layout=layout)
    assert y.shape[0] == 0
    dx, dw, db = nl.conv2d_backward(np.zeros(y.shape), x, w, layout=layout)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros(w.shape))
    np.testing.assert_array_equal(db, np.zeros(4))


def test_conv_tensor_skips_unneeded_gradients():
    x = nl.Variable(np.random.default_rng(0).standard_normal((2, 3, 5, 5)))
    w = nl.constant(np.random.default_rng(1).standard_normal((4, 3, 3, 3)))
    with nl.GradientTape() as tape:
        y = nl.sum(nl.conv2d(x, w, padding=1))
    gx, gw = tape.gradient(y, [x, w])
    assert gw is None and gx.shape == x.shape
    dx_ref = nl.conv2d_backward(np.ones((2, 4, 5, 5)), x.numpy(), w.numpy(), padding=1)[0]
    np.testing.assert_allclose(gx.numpy(), dx_ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- issue 16: dtypes
def test_complex_data_is_refused_even_with_a_float_dtype():
    """astype would drop the imaginary part silently; numlin refuses complex everywhere."""
    with pytest.raises(TypeError, match="complex128"):
        nl.Tensor(np.array([1 + 2j]), dtype=np.float64)
    with pytest.raises(TypeError, match="complex"):
        nl.Tensor(1 + 1j, dtype=np.float32)
    v = nl.Variable(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="complex128"):
        v.assign(np.array([2 + 3j, 1.0]))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    assert v._version == 0


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_other_float_dtypes_are_refused_naming_the_dtype(dtype):
    """README: float16 raises TypeError rather than being cast silently (it used to become float64);
    an explicit dtype= is an explicit cast."""
    if np.dtype(dtype) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nl.Tensor(np.ones(2, dtype))
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nl.Tensor(np.ones(2)) + np.ones(2, dtype)
    assert nl.Tensor(np.ones(2, dtype), dtype=np.float32).dtype == np.float32
