"""The 0-d path of the CPU elementwise ops (the rule evaluated by Python, no ufunc) gives the
compiled ufunc's bits for every rule in float64, and for the exact rules in float32, on special
and random values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from numlin.kernels import rules
from numlin.kernels.cpu import elementwise

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, math.pi, -math.pi, 1e-300, -1e-300, 5e-324,
           1e308, -1e308, 709.0, 709.78, 710.0, -745.0, -746.0, 1e16, 1e22, math.inf, -math.inf, math.nan]


def _values(rng, n=1500):
    mags = 10.0 ** rng.uniform(-8, 8, n)
    return SPECIAL + list(rng.standard_normal(n) * 3) + list(mags * rng.choice([-1, 1], n))


def _same(a: float, b: float) -> bool:
    """Equal bits, or both NaN (numpy leaves the sign of a NaN unspecified)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return np.float64(a).view(np.int64) == np.float64(b).view(np.int64)


@pytest.mark.parametrize("name", sorted(rules.UNARY))
def test_unary_scalar_path_matches_the_ufunc_bitwise(name, rng):
    xs = np.array(_values(rng))
    with np.errstate(all="ignore"):
        loop = elementwise.ufunc(name, np.float64)(xs)
    for x, want in zip(xs, loop):
        got = elementwise.unary(name, np.asarray(x))
        assert got.shape == () and got.dtype == np.float64
        assert _same(float(got), float(want)), (name, x, float(got), float(want))


@pytest.mark.parametrize("name", sorted(rules.BINARY))
def test_binary_scalar_path_matches_the_ufunc_bitwise(name, rng):
    vals = _values(rng, 300)
    a = np.array([u for u in SPECIAL for _ in SPECIAL] + vals)
    b = np.array([v for _ in SPECIAL for v in SPECIAL] + list(rng.permutation(vals)))
    with np.errstate(all="ignore"):
        loop = elementwise.ufunc(name, np.float64)(a, b)
    for x, y, want in zip(a, b, loop):
        got = elementwise.binary(name, np.asarray(x), np.asarray(y))
        assert got.shape == () and got.dtype == np.float64
        assert _same(float(got), float(want)), (name, x, y, float(got), float(want))


def test_scalar_path_falls_back_where_python_raises_or_goes_complex():
    """``exp`` overflowing, ``sin(inf)``, ``0 ** -1`` and a negative base to a fractional power:
    Python raises or returns a complex number; these take the ufunc and give its values."""
    assert elementwise._scalar(rules.exp, np.asarray(1000.0)) is None
    assert float(elementwise.unary("exp", np.asarray(1000.0))) == math.inf
    assert elementwise._scalar(rules.sin, np.asarray(math.inf)) is None
    assert math.isnan(float(elementwise.unary("sin", np.asarray(math.inf))))
    assert elementwise._scalar(rules.pow_, np.asarray(0.0), np.asarray(-1.0)) is None
    assert float(elementwise.binary("pow", np.asarray(0.0), np.asarray(-1.0))) == math.inf
    assert elementwise._scalar(rules.pow_, np.asarray(-8.0), np.asarray(1 / 3)) is None
    assert math.isnan(float(elementwise.binary("pow", np.asarray(-8.0), np.asarray(1 / 3))))


F32_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -3.0, 1e-45, -1e-45, 1.1754942e-38, 1.1754944e-38, 3.4028235e38,
               -3.4028235e38, 1e20, 1e-20, 16777217.0, math.inf, -math.inf, math.nan]


def _f32_values(rng, n):
    mags = 10.0 ** rng.uniform(-44, 38, n)
    return np.array(F32_SPECIAL + list(rng.standard_normal(n) * 3) + list(mags * rng.choice([-1, 1], n)),
                    np.float32)


@pytest.mark.parametrize("name", sorted(elementwise.EXACT_FLOAT32))
def test_float32_scalar_path_matches_the_ufunc_bitwise(name, rng):
    """Subnormal, overflowing and exactly-halfway products and quotients included: one rounding of
    the float64 result gives the float32 loop's bits."""
    if name in rules.UNARY:
        ops = (_f32_values(rng, 1500),)
    else:
        vals = _f32_values(rng, 300)
        sp = np.array(F32_SPECIAL, np.float32)
        ops = (np.concatenate([np.repeat(sp, len(sp)), vals]), np.concatenate([np.tile(sp, len(sp)), rng.permutation(vals)]))
    fn = elementwise.unary if name in rules.UNARY else elementwise.binary
    with np.errstate(all="ignore"):
        loop = elementwise.ufunc(name, np.float32)(*ops)
    for i, want in enumerate(loop):
        args = [np.asarray(o[i]) for o in ops]
        assert elementwise._python_path(name, *args)
        got = fn(name, *args)
        assert got.shape == () and got.dtype == np.float32
        assert _same(float(got), float(want)), (name, [float(a) for a in args], float(got), float(want))


def test_other_float32_rules_and_non_0d_operands_take_the_ufunc():
    x = np.asarray(np.float32(2.0))
    assert not elementwise._python_path("log", x) and not elementwise._python_path("tanh_grad", x, x)
    assert elementwise.unary("log", x).dtype == np.float32
    assert not elementwise._python_path("mul", x, np.asarray(2.0))  # mixed dtypes: the caller promotes
    y = np.array([2.0])
    assert not elementwise._python_path("neg", y)
    assert elementwise.unary("log", y).shape == (1,)
