"""An adversarial sweep of bad input to the autodiff public functions (issue 16): Tensor and
Variable construction, ops with wrong types and shapes, GradientTape.watch/gradient with bad
sources, targets and options, grad/value_and_grad with bad argnums, check_grads with bad options.
Each must raise the right exception with a message naming the argument: never a crash deep inside,
never a silent wrong number."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin.autodiff import ops


def _x():
    return nl.Tensor(np.ones(3))


def _tape_and_target():
    x = _x()
    with nl.GradientTape() as t:
        t.watch(x)
        y = nl.sum(x * x)
    return t, y, x


def _gradient(**kw):
    def call():
        t, y, x = _tape_and_target()
        return t.gradient(kw.get("target", y), kw.get("sources", x), output_gradients=kw.get("output_gradients"),
                          unconnected_gradients=kw.get("unconnected_gradients", "none"))

    return call


CASES = [
    # ---- Tensor / Variable construction
    ("Tensor(object)", lambda: nl.Tensor(object()), TypeError, "dtype object"),
    ("Tensor(str)", lambda: nl.Tensor("abc"), TypeError, "dtype <U3"),
    ("Tensor(None)", lambda: nl.Tensor(None), TypeError, "dtype object"),
    ("Tensor(ragged)", lambda: nl.Tensor([[1.0], [1.0, 2.0]]), ValueError, "Tensor: cannot make an array of value"),
    ("Tensor(str, dtype=float)", lambda: nl.Tensor("1.5", dtype=np.float64), TypeError, "dtype <U3"),
    ("Tensor(dtype=bogus)", lambda: nl.Tensor(1.0, dtype="bogus"), TypeError, "dtype 'bogus' is not a dtype"),
    ("Tensor(dtype=complex64)", lambda: nl.Tensor(1.0, dtype=np.complex64), TypeError, "dtype complex64"),
    ("Tensor(dtype=float16)", lambda: nl.Tensor(1.0, dtype=np.float16), TypeError, "dtype float16"),
    ("Tensor(complex, dtype=float64)", lambda: nl.Tensor([1j], dtype=np.float64), TypeError, "complex"),
    ("Tensor(float16)", lambda: nl.Tensor(np.float16(1.0)), TypeError, "float16"),
    ("Tensor(datetime64)", lambda: nl.Tensor(np.array(["2020-01-01"], "datetime64[D]")), TypeError, "datetime64"),
    ("Tensor(device='gpu')", lambda: nl.Tensor(1.0, device="gpu"), ValueError, "device must be 'cpu' or 'cuda'"),
    ("Variable(int)", lambda: nl.Variable(3), TypeError, "Variable: dtype int64 is not differentiable"),
    ("Variable(bool)", lambda: nl.Variable(True), TypeError, "Variable: dtype bool is not differentiable"),
    ("Variable.assign(shape)", lambda: nl.Variable(np.ones(3)).assign(np.ones(4)), ValueError,
     r"assign: value has shape \(4,\), variable has shape \(3,\)"),
    ("Variable.assign(str)", lambda: nl.Variable(np.ones(3)).assign("a"), TypeError, "dtype <U1"),
    ("Variable.assign(None)", lambda: nl.Variable(np.ones(3)).assign(None), TypeError, "dtype object"),
    ("Variable.assign(complex)", lambda: nl.Variable(np.ones(1)).assign([1j]), TypeError, "complex"),
    # ---- ops: wrong types
    ("add(x, str)", lambda: nl.add(_x(), "a"), TypeError, "dtype <U1"),
    ("add(x, None)", lambda: nl.add(_x(), None), TypeError, "dtype object"),
    ("x * dict", lambda: _x() * {"a": 1}, TypeError, "dtype object"),
    ("x + 1j", lambda: _x() + 1j, TypeError, "complex"),
    ("x + float16", lambda: _x() + np.ones(3, np.float16), TypeError, "float16"),
    ("exp(None)", lambda: nl.exp(None), TypeError, "dtype object"),
    ("matmul(x, str)", lambda: nl.autodiff.matmul(_x(), "a"), TypeError, "dtype <U1"),
    ("x ** str", lambda: _x() ** "a", TypeError, "dtype <U1"),
    ("sum(axis='a')", lambda: nl.sum(_x(), "a"), TypeError, "sum: axis must be None, an int or a tuple of ints"),
    ("sum(axis=True)", lambda: nl.sum(_x(), True), TypeError, "sum: axis must be"),
    ("mean(axis=0.0)", lambda: nl.mean(_x(), 0.0), TypeError, "mean: axis must be"),
    ("max(axis=5)", lambda: nl.max(_x(), 5), np.exceptions.AxisError, "axis 5"),
    ("reshape(None)", lambda: nl.reshape(_x(), None), TypeError, "reshape: shape must be an int or a tuple of ints"),
    ("reshape('ab')", lambda: nl.reshape(_x(), "ab"), TypeError, "reshape: shape must be"),
    ("reshape((True, 3))", lambda: nl.reshape(_x(), (True, 3)), TypeError, "reshape: shape must be ints"),
    ("transpose(axes=0)", lambda: nl.transpose(_x(), 0), TypeError, "transpose: axes must be None or a tuple of ints"),
    ("transpose(bools)", lambda: nl.transpose(nl.Tensor(np.ones((2, 2))), (True, False)), TypeError,
     "transpose: axes must be"),
    ("cast(None)", lambda: nl.cast(_x(), None), TypeError, "cast: dtype must be float32 or float64, got None"),
    ("cast(int32)", lambda: nl.cast(_x(), np.int32), TypeError, "cast: dtype int32"),
    ("stack(Tensor)", lambda: ops.stack(_x()), TypeError, "stack: values must be a list or tuple"),
    ("stack(dict)", lambda: ops.stack({"a": _x()}), TypeError, "stack: values must be a list or tuple"),
    ("stack([])", lambda: ops.stack([]), ValueError, "stack: values must not be empty"),
    # ---- ops: wrong shapes
    ("add shapes", lambda: nl.add(_x(), np.ones(4)), ValueError, r"\(3,\) and \(4,\)"),
    ("matmul shapes", lambda: nl.matmul(_x(), nl.Tensor(np.ones(4))), ValueError, "matmul"),
    ("reshape size", lambda: nl.reshape(_x(), (2, 2)), ValueError, r"\(3,\) into \(2, 2\)"),
    ("transpose perm", lambda: nl.transpose(_x(), (1,)), ValueError, "not a permutation"),
    ("max of empty", lambda: nl.max(nl.Tensor(np.ones(0))), ValueError, "zero-size reduction"),
    ("mean of a ragged list", lambda: nl.mean([_x(), 2.0]), ValueError, r"mean: .*one shape.*\(\), \(3,\)"),
    # ---- GradientTape
    ("GradientTape(persistent='no')", lambda: nl.GradientTape(persistent="no"), TypeError,
     "persistent must be True or False"),
    ("GradientTape(watch_accessed_variables=None)", lambda: nl.GradientTape(watch_accessed_variables=None), TypeError,
     "watch_accessed_variables must be True or False"),
    ("watch(None)", lambda: nl.GradientTape().watch(None), TypeError, "GradientTape.watch: the tensor to watch must be"),
    ("watch(1.0)", lambda: nl.GradientTape().watch(1.0), TypeError, "got float"),
    ("watch(ndarray)", lambda: nl.GradientTape().watch(np.ones(2)), TypeError, "got ndarray"),
    ("watch(int Tensor)", lambda: nl.GradientTape().watch(nl.Tensor(1)), TypeError, "not differentiable"),
    ("gradient(target=None)", _gradient(target=None), TypeError, "gradient: target must be a Tensor"),
    ("gradient(target=ndarray)", _gradient(target=np.ones(3)), TypeError, "target .* got ndarray"),
    ("gradient(target=1.0)", _gradient(target=1.0), TypeError, "target .* got float"),
    ("gradient(sources=None)", _gradient(sources=None), TypeError, "gradient: sources must be a Tensor"),
    ("gradient(sources=str)", _gradient(sources="x"), TypeError, "sources .* got str"),
    ("gradient(sources=set)", _gradient(sources={1}), TypeError, "sources .* got set"),
    ("gradient(sources=int Tensor)", _gradient(sources=nl.Tensor(np.arange(3))), TypeError,
     "a source has integer dtype"),
    ("gradient(output_gradients shape)", _gradient(output_gradients=np.ones(4)), ValueError,
     r"output_gradients has shape \(4,\) but its target has shape \(\)"),
    ("gradient(output_gradients=str)", _gradient(output_gradients="a"), TypeError, "dtype <U1"),
    ("gradient(output_gradients=1j)", _gradient(output_gradients=1j), TypeError, "complex"),
    ("gradient(unconnected_gradients='zeros')", _gradient(unconnected_gradients="zeros"), ValueError,
     "Unknown value for unconnected_gradients: 'zeros'"),
    ("gradient(unconnected_gradients=None)", _gradient(unconnected_gradients=None), ValueError,
     "unconnected_gradients: None"),
    ("gradient(unconnected_gradients=array)", _gradient(unconnected_gradients=np.array(["zero", "none"])),
     ValueError, "unconnected_gradients"),
    # ---- grad / value_and_grad
    ("grad(argnums=True)", lambda: nl.grad(lambda a: a, argnums=True), TypeError,
     "grad: argnums must be an int or a tuple of ints, got True"),
    ("grad(argnums=(True,))", lambda: nl.grad(lambda a: a, argnums=(0, True)), TypeError, "argnums must be"),
    ("grad(argnums=0.0)", lambda: nl.grad(lambda a: a, argnums=0.0), TypeError, "argnums must be"),
    ("grad(argnums='0')", lambda: nl.grad(lambda a: a, argnums="0"), TypeError, "argnums must be"),
    ("grad(argnums=None)", lambda: nl.grad(lambda a: a, argnums=None), TypeError, "argnums must be"),
    ("grad(argnums=())", lambda: nl.grad(lambda a: a, argnums=()), ValueError, "argnums must not be empty"),
    ("grad(argnums=1) of one argument", lambda: nl.grad(lambda a: a, argnums=1)(1.0), ValueError,
     "argnums 1 out of range for a function called with 1 arguments"),
    ("grad(argnums=-2) of one argument", lambda: nl.grad(lambda a: a, argnums=-2)(1.0), ValueError,
     "argnums -2 out of range"),
    ("grad of no arguments", lambda: nl.grad(lambda: nl.constant(1.0))(), ValueError, "argnums 0 out of range"),
    ("value_and_grad(argnums=False)", lambda: nl.value_and_grad(lambda a: a, argnums=False), TypeError,
     "argnums must be"),
    ("grad(3)", lambda: nl.grad(3), TypeError, "grad: f must be callable, got int"),
    ("grad returning a float", lambda: nl.grad(lambda a: 1.0)(1.0), TypeError, "must return a Tensor, got float"),
    ("grad returning None", lambda: nl.grad(lambda a: None)(1.0), TypeError, "must return a Tensor, got NoneType"),
    ("grad returning an int Tensor", lambda: nl.grad(lambda a: nl.Tensor(1))(1.0), TypeError,
     "the target has integer dtype"),
    ("grad of a str", lambda: nl.grad(lambda a: a)("a"), TypeError, "dtype <U1"),
    ("grad of an int", lambda: nl.grad(lambda a: a)(1), TypeError, "integer dtype int64"),
    ("grad of a complex", lambda: nl.grad(lambda a: a)(1j), TypeError, "complex"),
    # ---- check_grads
    ("check_grads(order=0)", lambda: nl.testing.check_grads(lambda a: a, [1.0], order=0), ValueError,
     "order must be >= 1"),
    ("check_grads(order=True)", lambda: nl.testing.check_grads(lambda a: a, [1.0], order=True), TypeError,
     "order must be an int"),
    ("check_grads(order=1.5)", lambda: nl.testing.check_grads(lambda a: a, [1.0], order=1.5), TypeError,
     "order must be an int"),
    ("check_grads(n_directions=0)", lambda: nl.testing.check_grads(lambda a: a, [1.0], n_directions=0), ValueError,
     "n_directions must be >= 1"),
    ("check_grads(eps=0)", lambda: nl.testing.check_grads(lambda a: a, [1.0], eps=0.0), ValueError,
     "eps must be a finite number > 0"),
    ("check_grads(eps=-1e-6)", lambda: nl.testing.check_grads(lambda a: a, [1.0], eps=-1e-6), ValueError, "eps"),
    ("check_grads(rtol=-1)", lambda: nl.testing.check_grads(lambda a: a, [1.0], rtol=-1.0), ValueError,
     "rtol must be a finite number >= 0"),
    ("check_grads(atol=nan)", lambda: nl.testing.check_grads(lambda a: a, [1.0], atol=float("nan")), ValueError,
     "atol"),
    ("check_grads(args=1.0)", lambda: nl.testing.check_grads(lambda a: a, 1.0), TypeError,
     "args must be a list or tuple"),
    ("check_grads(args=ndarray)", lambda: nl.testing.check_grads(lambda a: a, np.ones(2)), TypeError,
     "args must be a list or tuple"),
    ("check_grads(f=None)", lambda: nl.testing.check_grads(None, [1.0]), TypeError, "f must be callable"),
    ("check_grads f returning a float", lambda: nl.testing.check_grads(lambda a: 1.0, [1.0]), TypeError,
     "f must return a Tensor, got float"),
]


@pytest.mark.parametrize("name,call,exc,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_the_right_error_naming_the_argument(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_numpy_integer_argnums_give_a_single_gradient():
    """argnums=np.int64(0) is an int: one gradient back, not a tuple of one."""
    g = nl.grad(lambda a: a * 2.0, argnums=np.int64(0))(1.0)
    assert isinstance(g, nl.Tensor) and float(g) == 2.0


def test_a_failed_call_leaves_no_tape_recording():
    """An exception inside f (or from bad input) must not leave a tape on this thread's stack."""
    from numlin.autodiff import tape as tape_mod

    with pytest.raises(ZeroDivisionError):
        nl.grad(lambda a: 1 / 0)(1.0)
    with pytest.raises(TypeError):
        nl.grad(lambda a: None)(1.0)
    assert tape_mod._STACK.tapes == []
    assert float(nl.grad(lambda a: a * a)(3.0)) == 6.0
