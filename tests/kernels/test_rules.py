"""The elementwise rules of ``numlin.kernels.rules``, every one on both backends, in one test
body against one float64 numpy reference: ordinary values, and the special values (±0, ±inf,
NaN, negatives, arguments that overflow ``exp``) that the rules document.

The CPU runs the Numba ufuncs of ``kernels.cpu.elementwise``; "cuda" runs the one unary / one
binary kernel of ``kernels.cuda.elementwise`` (under Numba's CUDA simulator without a GPU).
"""
from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from numba import cuda

from numlin.kernels import rules
from numlin.kernels.cpu import elementwise as cew
from numlin.kernels.cuda import elementwise as gew

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's inf/NaN arithmetic

DTYPES = [np.float64, np.float32]

#: float64 references, numpy's own functions where they share the rule's special values
UNARY_REF = {
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": lambda x: np.where(x == 0, x, np.sign(x)),  # sign(±0) = ±0 (numpy: +0)
    "relu": lambda x: np.where(x < 0, 0.0, x),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}
BINARY_REF = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "relu_grad": lambda x, g: np.where(x > 0, g, 0.0),
    "tanh_grad": lambda y, g: g * (1 - y * y),
    "sigmoid_grad": lambda y, g: g * y * (1 - y),
    "equal": lambda a, b: (a == b).astype(np.float64),
}

SPECIAL = np.array([-np.inf, -1e3, -3.0, -0.5, -0.0, 0.0, 0.25, 2.0, 1e3, np.inf, np.nan])
#: arguments around exp's overflow (float32: 88.7, float64: 709.8) and far beyond it
LARGE = np.array([-1e30, -710.0, -709.0, -100.0, -80.0, 80.0, 100.0, 700.0, 709.0, 710.0, 1e30])


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    return request.param


def _unary(device: str, name: str, x: np.ndarray) -> np.ndarray:
    if device == "cpu":
        return cew.unary(name, x)
    return gew.unary(name, cuda.to_device(x)).copy_to_host()


def _binary(device: str, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if device == "cpu":
        return cew.binary(name, a, b)
    return gew.binary(name, cuda.to_device(a), cuda.to_device(b)).copy_to_host()


def _check(got: np.ndarray, ref64: np.ndarray, dtype) -> None:
    """``got`` is ``ref64`` rounded to ``dtype``: NaN exactly where it is NaN, infinities and
    the sign of zeros exact, other values within a few units of the last place."""
    with np.errstate(all="ignore"):
        ref = ref64.astype(dtype)
    assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    inf = np.isinf(ref)
    np.testing.assert_array_equal(got[inf], ref[inf])
    zero = (got == 0) & (ref == 0)
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(ref[zero]))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(rules.UNARY))
def test_unary_rule(device, name, dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([SPECIAL, LARGE, rng.standard_normal(20) * 3, [1e-300, -1e-300, 1e-30]]).astype(dtype)
    with np.errstate(all="ignore"):
        ref = UNARY_REF[name](x.astype(np.float64))
    _check(_unary(device, name, x), ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(rules.BINARY))
def test_binary_rule(device, name, dtype):
    rng = np.random.default_rng(8)
    values = np.concatenate([SPECIAL, [-1.0, 1.0], rng.standard_normal(6) * 2])
    a = np.repeat(values, values.size).astype(dtype)  # every pair of values
    b = np.tile(values, values.size).astype(dtype)
    with np.errstate(all="ignore"):
        ref = BINARY_REF[name](a.astype(np.float64), b.astype(np.float64))
    _check(_binary(device, name, a, b), ref, dtype)


def test_every_rule_has_a_reference_and_both_backends_serve_it():
    assert list(UNARY_REF) == list(rules.UNARY) and list(BINARY_REF) == list(rules.BINARY)
    assert cew.UNARY == rules.UNARY and cew.BINARY == rules.BINARY
    # the CUDA kernels' codes are the rules' positions
    assert gew.UNARY == {name: code for code, name in enumerate(rules.UNARY)}
    assert gew.BINARY == {name: code for code, name in enumerate(rules.BINARY)}


def test_the_rules_module_is_plain_python():
    tree = ast.parse(inspect.getsource(rules))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"math", "__future__"}
    for fn in list(rules.UNARY.values()) + list(rules.BINARY.values()):
        assert fn.__doc__ and "\n" not in fn.__doc__.strip(), fn.__name__
