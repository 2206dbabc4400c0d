"""Every differentiable op: forward values and gradients against PyTorch autograd (float64 and
float32, broadcasting shapes), gradients against central finite differences (float64), second
derivatives of compositions under nested tapes, and bad input."""
from __future__ import annotations

from builtins import max as builtins_max

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import numlin as nl
from numlin.autodiff import ops
from tests.reference import conv2d_ref, max_pool_ref

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float64, np.float32]


# --------------------------------------------------------------------------- helpers
def _tol(dtype, reduction: int = 1) -> float:
    """Relative tolerance for a result built from a few rounded operations and a sum of
    ``reduction`` terms, computed in ``dtype`` (the reference is float64)."""
    return 32 * np.finfo(dtype).eps * max(reduction, 1)


def _check(got, want, dtype, reduction: int = 1, scale: float | None = None, what: str = ""):
    got = np.asarray(got.numpy() if isinstance(got, nl.Tensor) else got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if not want.size:
        return
    scale = builtins_max(np.max(np.abs(want)), scale or 0.0)  # an explicit scale is a floor
    bound = _tol(dtype, reduction) * max(scale, 1.0)
    err = np.max(np.abs(got - want))
    assert err <= bound, f"{what}: max error {err:.3g} over {bound:.3g}"


def _draw(rng, shape, domain):
    """Standard normal data in a domain: 'pos' (log, sqrt, power base), 'away' (|x| >= 0.3, for
    divisors and kinks), 'any'."""
    x = rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.5, shape)
    if domain == "away":
        return np.sign(x) * (0.3 + np.abs(x))
    if domain == "exp":
        return rng.uniform(-1.5, 1.5, shape)
    return x


def _vs_torch(nl_fn, torch_fn, arrays, dtype, rng, reduction=1, scale_y=None, scale_g=None):
    """Forward and vjp (random upstream gradient) of ``nl_fn`` against ``torch_fn`` in float64 on
    the same ``dtype``-rounded inputs."""
    arrays = [np.asarray(a).astype(dtype) for a in arrays]
    xs = [nl.Tensor(a) for a in arrays]
    with nl.GradientTape() as tape:
        tape.watch(xs)
        y = nl_fn(*xs)
    assert y.dtype == dtype
    ts = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    ty = torch_fn(*ts)
    _check(y, ty.detach().numpy(), dtype, reduction, scale_y, "forward")
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = tape.gradient(y, xs, output_gradients=g)
    tgrads = torch.autograd.grad(ty, ts, grad_outputs=torch.tensor(g.astype(np.float64)), allow_unused=True)
    for i, (gr, tg, a) in enumerate(zip(grads, tgrads, arrays)):
        want = np.zeros(a.shape) if tg is None else tg.numpy()
        assert gr is not None, f"gradient {i} is None"
        assert gr.dtype == dtype and gr.shape == a.shape, (i, gr.dtype, gr.shape)
        _check(gr, want, dtype, reduction, scale_g, f"gradient {i}")


# --------------------------------------------------------------------------- elementwise
BCAST = [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((5,), ()), ((), (2, 3)), ((4, 1), (1, 5))]

BINARY = {
    "add": (nl.add, torch.add, "any", "any"),
    "subtract": (nl.subtract, torch.sub, "any", "any"),
    "multiply": (nl.multiply, torch.mul, "any", "any"),
    "divide": (nl.divide, torch.div, "any", "away"),
    "power": (nl.power, torch.pow, "pos", "any"),
}

UNARY = {
    "negative": (nl.negative, torch.neg, "any"),
    "exp": (nl.exp, torch.exp, "exp"),
    "log": (nl.log, torch.log, "pos"),
    "sin": (nl.sin, torch.sin, "any"),
    "cos": (nl.cos, torch.cos, "any"),
    "tanh": (nl.tanh, torch.tanh, "any"),
    "sqrt": (nl.sqrt, torch.sqrt, "pos"),
    "abs": (nl.abs, torch.abs, "away"),
    "relu": (nl.relu, torch.relu, "away"),
    "sigmoid": (nl.sigmoid, torch.sigmoid, "any"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BCAST, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_ops_match_torch_with_broadcasting(rng, name, shapes, dtype):
    fn, tfn, da, db = BINARY[name]
    a, b = _draw(rng, shapes[0], da), _draw(rng, shapes[1], db)
    n_out = int(np.prod(np.broadcast_shapes(*shapes)))
    # a broadcast operand's gradient sums up to n_out terms
    _vs_torch(fn, tfn, [a, b], dtype, rng, reduction=n_out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 2)], ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_ops_match_torch(rng, name, shape, dtype):
    fn, tfn, dom = UNARY[name]
    _vs_torch(fn, tfn, [_draw(rng, shape, dom)], dtype, rng)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       name=st.sampled_from(list(BINARY)), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_binary_ops_property_any_broadcast(shapes, name, dtype, seed):
    rng = np.random.default_rng(seed)
    fn, tfn, da, db = BINARY[name]
    a, b = _draw(rng, shapes.input_shapes[0], da), _draw(rng, shapes.input_shapes[1], db)
    _vs_torch(fn, tfn, [a, b], dtype, rng, reduction=int(np.prod(shapes.result_shape)))


@st.composite
def _matmul_shapes(draw):
    m, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 9)), draw(st.integers(1, 6))
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    a = (k,) if draw(st.booleans()) and not batch.input_shapes[0] else batch.input_shapes[0] + (m, k)
    b = (k,) if draw(st.booleans()) and not batch.input_shapes[1] else batch.input_shapes[1] + (k, n)
    return a, b


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=_matmul_shapes(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_matmul_property_any_batch_broadcast(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    red = 9 * 6 * 9  # k, or m (n) times the broadcast batch
    _vs_torch(nl.matmul, torch.matmul, [a, b], dtype, rng, reduction=red, scale_y=9 * 4, scale_g=red * 4)


def test_operators_and_scalars(rng):
    a = rng.uniform(0.5, 2.0, (3, 4))
    b = rng.uniform(0.5, 2.0, (4,))
    x, y = nl.Tensor(a), nl.Tensor(b)
    cases = [
        (x + y, a + b), (x - y, a - b), (x * y, a * b), (x / y, a / b), (x ** y, a ** b), (-x, -a),
        (abs(-x), a), (2.0 + x, 2 + a), (2.0 - x, 2 - a), (2.0 * x, 2 * a), (2.0 / x, 2 / a), (2.0 ** x, 2 ** a),
        (x ** 2, a ** 2), (b - x, b - a), (b / x, b / a), (x @ y, a @ b), (a.T @ x, a.T @ a),
        (x.sum(), a.sum()), (x.mean(0), a.mean(0)), (x.max(1, keepdims=True), a.max(1, keepdims=True)),
        (x.T, a.T), (x.reshape(2, 6), a.reshape(2, 6)), (x.reshape((12,)), a.reshape(12)),
        (x.transpose((1, 0)), a.T),
    ]
    for got, want in cases:
        assert isinstance(got, nl.Tensor)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-13)


def test_dtype_promotion_follows_numpy():
    x32 = nl.Tensor(np.ones(3, np.float32))
    x64 = nl.Tensor(np.ones(3, np.float64))
    assert (x32 + 2.0).dtype == np.float32  # Python scalars are weak
    assert (2 * x32).dtype == np.float32
    assert (x32 + x64).dtype == np.float64
    assert (x32 + np.ones(3)).dtype == np.float64
    assert (x32 + np.float64(2.0)).dtype == np.result_type(np.ones(3, np.float32), np.float64(2.0))
    assert nl.add(np.ones(2, np.int64), 1.5).dtype == np.float64  # integers are cast to float64
    assert nl.exp(nl.Tensor(np.arange(3))).dtype == np.float64
    assert nl.add(1.0, 2.0).item() == 3.0


def test_mixed_precision_gradients_come_back_in_each_source_dtype(rng):
    a = nl.Tensor(rng.standard_normal((2, 3)).astype(np.float32))
    b = nl.Tensor(rng.standard_normal((2, 3)))
    with nl.GradientTape() as tape:
        tape.watch([a, b])
        y = nl.sum(a * b)
    assert y.dtype == np.float64
    ga, gb = tape.gradient(y, [a, b])
    assert ga.dtype == np.float32 and gb.dtype == np.float64
    np.testing.assert_allclose(ga.numpy(), b.numpy().astype(np.float32), rtol=1e-7)
    np.testing.assert_allclose(gb.numpy(), a.numpy().astype(np.float64), rtol=0)


def test_sign_is_not_differentiable():
    x = nl.Tensor(np.array([-2.0, 0.0, 3.0]))
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = nl.sign(x)
    np.testing.assert_array_equal(y.numpy(), [-1.0, 0.0, 1.0])
    assert tape.gradient(y, x) is None


def test_power_exponent_gradient_at_a_zero_base_is_zero():
    """d(a ** b)/db = a ** b log(a) is taken as 0 at a = 0 (as PyTorch and TensorFlow), not NaN."""
    a, b = np.array([0.0, 2.0, 0.0, 1.5]), np.array([2.0, 3.0, 0.5, -1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        _vs_torch(nl.power, torch.pow, [a[[0, 1, 3]], b[[0, 1, 3]]], np.float64, np.random.default_rng(0))
        x, y = nl.Tensor(a), nl.Tensor(b)
        with nl.GradientTape() as tape:
            tape.watch(y)
            z = nl.sum(x ** y)
        np.testing.assert_allclose(tape.gradient(z, y).numpy(), [0.0, 8 * np.log(2), 0.0, np.log(1.5) / 1.5])


def test_kinks_follow_pytorch():
    """relu'(0) = 0 and abs'(0) = 0, as in PyTorch."""
    x = nl.Tensor(np.array([-1.0, 0.0, 2.0]))
    for fn, want in [(nl.relu, [0, 0, 1]), (nl.abs, [-1, 0, 1])]:
        with nl.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        np.testing.assert_array_equal(tape.gradient(y, x).numpy(), want)


# --------------------------------------------------------------------------- reductions
RED_AXES = [(None, False), (None, True), (0, False), (-1, True), ((0, 2), False), ((2, 0), True), (1, False)]


def _torch_axes(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis,keepdims", RED_AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reductions_match_torch(rng, name, axis, keepdims, dtype):
    x = rng.standard_normal((3, 4, 5))
    nl_fn = {"sum": nl.sum, "mean": nl.mean, "max": nl.max}[name]
    t_fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[name]
    dims = _torch_axes(axis, 3)
    red = int(np.prod([x.shape[d] for d in np.atleast_1d(dims)]))
    _vs_torch(lambda t: nl_fn(t, axis, keepdims), lambda t: t_fn(t, dim=dims, keepdim=keepdims), [x], dtype, rng,
              reduction=red, scale_y=np.abs(x).max() * (red if name == "sum" else 1))


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_max_shares_the_gradient_between_ties(axis):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [3.0, -1.0, 2.0]])
    x = nl.Tensor(a)
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = nl.max(x, axis)
    t = torch.tensor(a, requires_grad=True)
    ty = torch.amax(t, dim=_torch_axes(axis, 2))
    g = np.arange(1.0, 1.0 + np.asarray(ty.detach()).size).reshape(ty.shape)
    got = tape.gradient(y, x, output_gradients=g)
    (want,) = torch.autograd.grad(ty, t, torch.tensor(g))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-15)
    np.testing.assert_allclose(got.numpy().sum(), g.sum(), rtol=1e-15)  # shared, not duplicated


def test_reductions_on_empty_axes():
    e = nl.Tensor(np.ones((0, 3)))
    np.testing.assert_array_equal(nl.sum(e, 0).numpy(), np.zeros(3))
    assert np.all(np.isnan(nl.mean(e, 0).numpy()))
    with pytest.raises(ValueError, match=r"zero-size reduction.*\(0, 3\)"):
        nl.max(e, 0)


# --------------------------------------------------------------------------- shapes
SHAPE_OPS = [
    ("reshape", lambda t: nl.reshape(t, (4, -1)), lambda t: t.reshape(4, -1)),
    ("reshape_flat", lambda t: nl.reshape(t, 24), lambda t: t.reshape(24)),
    ("transpose", lambda t: nl.transpose(t), lambda t: t.permute(2, 1, 0)),
    ("transpose_axes", lambda t: nl.transpose(t, (1, -1, 0)), lambda t: t.permute(1, 2, 0)),
    ("flatten", lambda t: nl.flatten(t), lambda t: t.flatten()),
    ("flatten1", lambda t: nl.flatten(t, 1), lambda t: t.flatten(1)),
    ("broadcast_to", lambda t: ops.broadcast_to(t, (2, 2, 3, 4)), lambda t: t.broadcast_to((2, 2, 3, 4))),
    ("transpose_then_sum",
     lambda t: nl.sum(nl.transpose(t, (2, 0, 1)) * nl.Tensor(np.arange(24.0).reshape(4, 2, 3), t.dtype), 1),
     lambda t: (t.permute(2, 0, 1) * torch.arange(24.0, dtype=t.dtype).reshape(4, 2, 3)).sum(1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,nl_fn,t_fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops_match_torch(rng, name, nl_fn, t_fn, dtype):
    x = rng.standard_normal((2, 3, 4)) if name != "broadcast_to" else rng.standard_normal((2, 1, 4))
    _vs_torch(nl_fn, t_fn, [x], dtype, rng, reduction=4, scale_y=30 if name.endswith("sum") else None,
              scale_g=30 if name.endswith("sum") else None)


def test_broadcast_to_adds_and_stretches_axes(rng):
    x = rng.standard_normal((3, 1))
    _vs_torch(lambda t: ops.broadcast_to(t, (2, 3, 5)), lambda t: t.broadcast_to((2, 3, 5)), [x], np.float64, rng,
              reduction=10)


# --------------------------------------------------------------------------- matmul
MATMUL_SHAPES = [
    ((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((4, 5), (5, 3)), ((2, 4, 5), (5, 3)), ((4, 5), (3, 5, 2)),
    ((2, 1, 4, 5), (3, 5, 6)), ((3, 4, 5), (5,)), ((5,), (2, 5, 3)), ((1, 7), (7, 1)), ((17, 33), (33, 9)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_matches_torch(rng, shapes, dtype):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    k = shapes[0][-1]
    m = shapes[0][-2] if len(shapes[0]) > 1 else 1
    n = shapes[1][-1] if len(shapes[1]) > 1 else 1
    batch = int(np.prod(np.broadcast_shapes(shapes[0][:-2], shapes[1][:-2])))
    red = builtins_max(k, m * batch, n * batch)  # a gradient sums over n (or m) and broadcast batches
    _vs_torch(nl.matmul, torch.matmul, [a, b], dtype, rng, reduction=red, scale_y=k * 4, scale_g=red * 4)


def test_matmul_of_noncontiguous_tensors(rng):
    a = rng.standard_normal((6, 5))
    _vs_torch(lambda t: nl.matmul(nl.transpose(t), t), lambda t: t.T @ t, [a], np.float64, rng,
              reduction=12, scale_y=30, scale_g=60)


# --------------------------------------------------------------------------- convolution and pooling
# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CONV = [
    (2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1),
    (2, 4, 8, 9, 6, 3, 2, 2, (1, 2), (1, 2), 2),
    (1, 4, 6, 6, 4, 3, 3, 1, "same", 1, 4),
    (2, 2, 5, 5, 3, 1, 1, 1, 0, 1, 1),
    (1, 3, 7, 8, 2, 2, 3, (2, 3), "valid", 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("cfg", CONV, ids=str)
def test_conv2d_matches_torch(rng, cfg, with_bias, layout, dtype):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    xs = (N, C, H, W) if layout == "NCHW" else (N, H, W, C)
    ws = (K, C // groups, R, S) if layout == "NCHW" else (R, S, C // groups, K)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if with_bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)
    args = [nl.Tensor(x), nl.Tensor(w)] + ([nl.Tensor(b)] if with_bias else [])
    with nl.GradientTape() as tape:
        tape.watch(args)
        y = nl.conv2d(*args, **kw)  # the top-level name dispatches to the Tensor op
    assert isinstance(y, nl.Tensor) and y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = tape.gradient(y, args, output_gradients=dy)
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    red = (C // groups) * R * S
    npix = y.size // K
    _check(y, ref["y"], dtype, red, red * 4, "y")
    _check(grads[0], ref["dx"], dtype, K * R * S, K * R * S * 4, "dx")
    _check(grads[1], ref["dw"], dtype, npix, npix * 4, "dw")
    if with_bias:
        _check(grads[2], ref["db"], dtype, npix, npix * 4, "db")


def test_conv2d_gradient_of_the_weight_only(rng):
    """Only ``w`` watched: the input gradient is skipped, ``x`` gets None."""
    x = nl.Tensor(rng.standard_normal((1, 2, 5, 5)))
    w = nl.Variable(rng.standard_normal((3, 2, 3, 3)))
    with nl.GradientTape() as tape:
        y = nl.nn.conv2d(x, w, padding=1)
    gx, gw = tape.gradient(y, [x, w])
    assert gx is None
    ref = conv2d_ref(x.numpy(), w.numpy(), None, padding=1, dy=np.ones(y.shape))
    _check(gw, ref["dw"], np.float64, 25, 100)


POOL = [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0)), (3, 1, 0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", POOL, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools_match_torch(rng, kind, kernel, stride, padding, dtype):
    x = rng.standard_normal((2, 3, 7, 8))
    nl_fn = nl.nn.max_pool2d if kind == "max" else nl.nn.avg_pool2d
    t_fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    _vs_torch(lambda t: nl_fn(t, kernel, stride, padding),
              lambda t: t_fn(t, kernel, stride if stride is not None else kernel, padding), [x], dtype, rng,
              reduction=9)


def test_max_pool_ties_and_noncontiguous_input():
    """Integer-valued data (many ties: the first maximum wins, as in PyTorch) in a transposed view."""
    a = np.random.default_rng(3).integers(0, 3, (2, 6, 5, 2)).astype(np.float64).transpose(0, 3, 1, 2)
    _vs_torch(lambda t: nl.nn.max_pool2d(t, 2, 1), lambda t: F.max_pool2d(t, 2, 1), [a], np.float64,
              np.random.default_rng(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_2x2_long_rows(rng, dtype):
    """The 2x2, stride-2 kernel's vectorised rows (long rows here; odd sizes: the last input
    row and column are dropped), value and gradient, also with ties."""
    _vs_torch(lambda t: nl.nn.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 2), [rng.standard_normal((2, 3, 9, 37))],
              dtype, rng)
    ties = rng.integers(0, 2, (1, 2, 4, 40)).astype(np.float64)
    _vs_torch(lambda t: nl.nn.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 2), [ties], np.float64, rng)


@pytest.mark.parametrize("kernel,stride,padding,shape",
                         [c + ((2, 3, 7, 8),) for c in POOL] + [(2, None, 0, (1, 2, 5, 40))], ids=str)
def test_max_pool_propagates_nan_like_torch(rng, kernel, stride, padding, shape):
    """A window holding a NaN pools to NaN (PyTorch's rule), every other window to its maximum."""
    x = rng.standard_normal(shape)
    x[rng.random(x.shape) < 0.08] = np.nan
    y = nl.nn.max_pool2d(nl.Tensor(x), kernel, stride, padding).numpy()
    ty = F.max_pool2d(torch.from_numpy(x), kernel, stride if stride is not None else kernel, padding).numpy()
    np.testing.assert_array_equal(y, ty)  # NaNs in the same places (assert_array_equal: NaN == NaN)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", POOL + [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1))], ids=str)
def test_max_pool_argmax_is_first_nan_or_first_max(rng, kernel, stride, padding, dtype):
    """The CPU kernel's argmax (where the gradient goes) against the window-by-window reference,
    with many NaNs (windows with two or more, interior and border: the first NaN wins) and many
    ties (the first maximum wins); the backward routes g there and nowhere else."""
    from numlin.kernels.cpu import pool as kp

    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    k, p = pair(kernel), pair(padding)
    s = pair(stride) if stride is not None else k
    x = rng.integers(0, 3, (2, 3, 7, 8)).astype(dtype)
    x[rng.random(x.shape) < 0.3] = np.nan
    y, arg = kp.max_pool2d(x, k, s, p)
    y_ref, arg_ref = max_pool_ref(x, k, s, p)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx_ref = np.zeros(x.shape, dtype)
    for (n, c, pp, q), i in np.ndenumerate(arg_ref):
        dx_ref[n, c, i // x.shape[3], i % x.shape[3]] += g[n, c, pp, q]
    np.testing.assert_allclose(kp.max_pool2d_backward(g, arg, x.shape), dx_ref, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_log_softmax_matches_torch(rng, axis, dtype):
    x = 3 * rng.standard_normal((4, 6, 3))
    _vs_torch(lambda t: nl.nn.log_softmax(t, axis), lambda t: torch.log_softmax(t, axis), [x], dtype, rng,
              reduction=6, scale_y=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(rng, reduction, dtype):
    x = 2 * rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, 6)
    _vs_torch(lambda t: nl.nn.cross_entropy(t, labels, reduction),
              lambda t: F.cross_entropy(t, torch.tensor(labels), reduction=reduction), [x], dtype, rng, reduction=6,
              scale_y=30)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_is_finite_for_huge_logits(rng, dtype):
    x = 1e4 * rng.standard_normal((5, 4))
    labels = np.array([0, 1, 2, 3, 0], np.int32)
    for lab in (labels, nl.Tensor(labels)):
        _vs_torch(lambda t: nl.nn.cross_entropy(t, lab), lambda t: F.cross_entropy(t, torch.tensor(labels).long()),
                  [x], dtype, rng, reduction=4)
    y = nl.nn.log_softmax(nl.Tensor(x.astype(dtype)))
    assert np.all(np.isfinite(y.numpy()))


@pytest.mark.parametrize("src,dst", [(np.float32, np.float64), (np.float64, np.float32), (np.float64, np.float64)])
def test_cast(rng, src, dst):
    x = nl.Tensor(rng.standard_normal((3, 2)).astype(src))
    with nl.GradientTape() as tape:
        tape.watch(x)
        y = nl.cast(x, dst)
        z = nl.sum(y * y)
    assert y.dtype == dst
    g = tape.gradient(z, x)
    assert g.dtype == src
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy().astype(dst), rtol=2 * np.finfo(np.float32).eps)


# --------------------------------------------------------------------------- finite differences
def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


FD_CASES = {
    "add": (lambda a, b: a + b, [(3, 1), (4,)]),
    "subtract": (lambda a, b: a - b, [(2, 3), (3,)]),
    "multiply": (lambda a, b: a * b, [(2, 1, 3), (4, 1)]),
    "divide": (lambda a, b: a / (b * b + 1.0), [(3,), (2, 3)]),
    "power": (lambda a, b: nl.power(a * a + 0.5, b), [(2, 3), (3,)]),
    "unary": (lambda a: nl.exp(nl.sin(a)) + nl.log(a * a + 1.0) * nl.cos(a) + nl.tanh(a) - nl.sqrt(a * a + 1.0)
              + nl.sigmoid(a) * nl.abs(a) + nl.relu(a) + nl.negative(a), [(3, 4)]),
    "sum": (lambda a: nl.sum(a * a, (0, 2), keepdims=True), [(2, 3, 4)]),
    "mean": (lambda a: nl.mean(nl.sin(a), -1), [(2, 3, 4)]),
    "max": (lambda a: nl.max(a, 1) + nl.max(a), [(3, 5)]),
    "reshape_transpose_flatten": (lambda a: nl.flatten(nl.transpose(nl.reshape(nl.sin(a), (3, 2, 4)), (2, 0, 1)), 1),
                                  [(6, 4)]),
    "broadcast_to": (lambda a: ops.broadcast_to(a, (2, 3, 4)) * nl.Tensor(np.arange(24.0).reshape(2, 3, 4)),
                     [(3, 1)]),
    "matmul": (lambda a, b: nl.matmul(a, b), [(2, 3, 4), (4, 5)]),
    "matmul_vec": (lambda a, b: nl.matmul(a, b), [(4,), (3, 4, 2)]),
    "conv2d": (lambda x, w, b: nl.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)),
               [(2, 3, 7, 8), (4, 3, 3, 2), (4,)]),
    "conv2d_nhwc_groups": (lambda x, w: nl.conv2d(x, w, padding="same", groups=2, layout="NHWC"),
                           [(1, 5, 6, 4), (3, 2, 2, 6)]),
    "max_pool2d": (lambda x: nl.nn.max_pool2d(x, 3, 2, 1), [(2, 2, 6, 7)]),
    "avg_pool2d": (lambda x: nl.nn.avg_pool2d(x, (2, 3), 1, (1, 1)), [(2, 2, 5, 6)]),
    "log_softmax": (lambda x: nl.nn.log_softmax(x, 0), [(4, 3)]),
    "cross_entropy": (lambda x: nl.nn.cross_entropy(x, np.array([2, 0, 1, 2])), [(4, 3)]),
    "cross_entropy_none": (lambda x: nl.nn.cross_entropy(x, np.array([1, 1, 0]), "none"), [(3, 2)]),
}


@pytest.mark.parametrize("name", list(FD_CASES))
def test_gradients_match_finite_differences(rng, name):
    fn, shapes = FD_CASES[name]
    args = [rng.standard_normal(s) for s in shapes]
    nl.testing.check_grads(fn, args, n_directions=3, random_state=rng)


def test_cast_gradient_matches_finite_differences_in_float32(rng):
    x = rng.standard_normal(4).astype(np.float32)
    nl.testing.check_grads(lambda t: nl.sin(nl.cast(t, np.float64)) * nl.cast(t, np.float64), [x], random_state=rng)


# --------------------------------------------------------------------------- second derivatives
def _composition(lib):
    """An elementwise composition using every twice-differentiable elementwise op."""
    if lib == "nl":
        m = nl
        return lambda x, y: (m.sin(x) * m.exp(y) + m.tanh(x * y) + m.sigmoid(x) / (y * y + 1.0)
                             + m.sqrt(x * x + 1.0) * m.log(y * y + 2.0) + m.power(x * x + 1.0, y) - m.cos(x - y)
                             + m.abs(x) * y + m.relu(y) * x + m.negative(x * x * x))
    t = torch
    return lambda x, y: (t.sin(x) * t.exp(y) + t.tanh(x * y) + t.sigmoid(x) / (y * y + 1.0)
                         + t.sqrt(x * x + 1.0) * t.log(y * y + 2.0) + t.pow(x * x + 1.0, y) - t.cos(x - y)
                         + t.abs(x) * y + t.relu(y) * x + t.neg(x * x * x))


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3), (3,))], ids=str)
def test_second_derivatives_of_elementwise_compositions_match_torch(rng, shapes):
    a, b = _draw(rng, shapes[0], "away"), _draw(rng, shapes[1], "away")
    u = rng.standard_normal(np.broadcast_shapes(*shapes))
    va, vb = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    f = _composition("nl")
    x, y = nl.Tensor(a), nl.Tensor(b)
    with nl.GradientTape(persistent=True) as outer:
        outer.watch([x, y])
        with nl.GradientTape() as inner:
            inner.watch([x, y])
            out = nl.sum(f(x, y) * u)
        gx, gy = inner.gradient(out, [x, y])
        hv = nl.sum(gx * va) + nl.sum(gy * vb)
    hx, hy = outer.gradient(hv, [x, y])

    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    tout = (_composition("torch")(tx, ty) * torch.tensor(u)).sum()
    tgx, tgy = torch.autograd.grad(tout, [tx, ty], create_graph=True)
    thv = (tgx * torch.tensor(va)).sum() + (tgy * torch.tensor(vb)).sum()
    thx, thy = torch.autograd.grad(thv, [tx, ty])
    for got, want in [(gx, tgx.detach()), (gy, tgy.detach()), (hx, thx), (hy, thy)]:
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", ["composition", "reductions", "matmul", "log_softmax", "avg_pool_constant_seed"])
def test_second_derivatives_match_finite_differences(rng, name):
    fns = {
        "composition": (_composition("nl"), [(2, 3), (3,)]),
        "reductions": (lambda x: nl.mean(nl.exp(x), 0) * nl.sum(x * x, 1, keepdims=True)
                       + nl.max(nl.sin(x), 1, keepdims=True), [(3, 4)]),
        "matmul": (lambda a, b: nl.tanh(nl.matmul(a, b)), [(2, 3), (3, 4)]),
        "log_softmax": (lambda x: nl.nn.log_softmax(x * x, 1), [(3, 4)]),
        # avg pooling's backward is linear in its seed alone: with a seed that does not depend on
        # x, the second derivative through it is exact (no error)
        "avg_pool_constant_seed": (lambda x: nl.nn.avg_pool2d(x * x, 2), [(1, 2, 4, 4)]),
    }
    fn, shapes = fns[name]
    args = [_draw(rng, s, "away") for s in shapes]
    nl.testing.check_grads(fn, args, order=2, n_directions=2, random_state=rng)


def test_third_derivative_by_three_tapes():
    x = nl.constant(0.7)
    with nl.GradientTape() as t3:
        t3.watch(x)
        with nl.GradientTape() as t2:
            t2.watch(x)
            with nl.GradientTape() as t1:
                t1.watch(x)
                y = nl.sin(x) * x
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    v = 0.7
    assert float(d1) == pytest.approx(np.cos(v) * v + np.sin(v), rel=1e-14)
    assert float(d2) == pytest.approx(-np.sin(v) * v + 2 * np.cos(v), rel=1e-14)
    assert float(d3) == pytest.approx(-np.cos(v) * v - 3 * np.sin(v), rel=1e-14)


@pytest.mark.parametrize("name", ["conv2d", "max_pool2d", "avg_pool2d", "cross_entropy"])
def test_second_derivatives_through_dedicated_backward_kernels_match_torch(rng, name):
    """The backward kernels' results are differentiable ops (tests/autodiff/test_higher_order.py
    covers the geometries)."""
    x = rng.standard_normal((1, 2, 4, 4))
    w = rng.standard_normal((2, 2, 3, 3))
    labels = np.array([0, 1, 2, 3])
    fn = {
        "conv2d": lambda t: nl.conv2d(t, w, padding=1),
        "max_pool2d": lambda t: nl.nn.max_pool2d(t, 2),
        "avg_pool2d": lambda t: nl.nn.avg_pool2d(t, 2),
        "cross_entropy": lambda t: nl.nn.cross_entropy(nl.reshape(t, (4, 8)), labels),
    }[name]
    tfn = {
        "conv2d": lambda t: torch.nn.functional.conv2d(t, torch.tensor(w), padding=1),
        "max_pool2d": lambda t: torch.nn.functional.max_pool2d(t, 2),
        "avg_pool2d": lambda t: torch.nn.functional.avg_pool2d(t, 2),
        "cross_entropy": lambda t: torch.nn.functional.cross_entropy(t.reshape(4, 8), torch.tensor(labels)),
    }[name]
    xt = nl.Tensor(x)
    with nl.GradientTape() as outer:
        outer.watch(xt)
        with nl.GradientTape() as inner:
            inner.watch(xt)
            y = nl.sum(fn(xt) ** 2)  # the backward kernel's seed depends on x
        g = inner.gradient(y, xt)
        s = nl.sum(g * g)
    got = outer.gradient(s, xt).numpy()
    tx = torch.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad((tfn(tx) ** 2).sum(), tx, create_graph=True)
    (want,) = torch.autograd.grad((tg * tg).sum(), tx)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.add(np.ones((2, 3)), nl.Tensor(np.ones(4))), ValueError, r"\(2, 3\) and \(4,\)"),
    (lambda: nl.Tensor(np.ones((2, 3))) * nl.Tensor(np.ones((3, 2))), ValueError, r"\(2, 3\) and \(3, 2\)"),
    (lambda: nl.matmul(nl.Tensor(np.ones((2, 3))), np.ones((4, 5))), ValueError, r"\(2, 3\) and \(4, 5\)"),
    (lambda: nl.matmul(nl.Tensor(np.ones((2, 2, 3))), np.ones((3, 3, 5))), ValueError, r"\(2, 2, 3\) and \(3, 3, 5\)"),
    (lambda: nl.matmul(nl.Tensor(np.ones(3)), 2.0), ValueError, "at least 1-D"),
    (lambda: nl.reshape(nl.Tensor(np.ones((2, 3))), (4, 2)), ValueError, r"\(2, 3\) into \(4, 2\)"),
    (lambda: ops.broadcast_to(nl.Tensor(np.ones((2, 3))), (3, 3)), ValueError, r"\(2, 3\) to \(3, 3\)"),
    (lambda: nl.transpose(nl.Tensor(np.ones((2, 3))), (0, 0)), ValueError, "permutation"),
    (lambda: nl.sum(nl.Tensor(np.ones((2, 3))), 2), np.exceptions.AxisError, "axis 2"),
    (lambda: nl.mean(nl.Tensor(np.ones((2, 3))), (0, 0)), ValueError, "duplicate"),
    (lambda: nl.max(nl.Tensor(np.ones((2, 3))), 1.5), TypeError, "axis"),
    (lambda: nl.flatten(nl.Tensor(np.ones((2, 3))), 2), ValueError, "start_axis"),
    (lambda: nl.cast(nl.Tensor(np.ones(2)), np.int32), TypeError, "int32"),
    (lambda: nl.cast(nl.Tensor(np.ones(2)), np.float16), TypeError, "float16"),
    (lambda: nl.Tensor(np.ones(2, np.complex128)), TypeError, "complex128"),
    (lambda: nl.Variable(np.arange(3)), TypeError, "not differentiable"),
    (lambda: nl.nn.max_pool2d(nl.Tensor(np.ones((2, 5, 5))), 2), ValueError, "4-D"),
    (lambda: nl.nn.avg_pool2d(nl.Tensor(np.ones((1, 1, 5, 5))), 2, 1, 2), ValueError, "half the kernel"),
    (lambda: nl.nn.max_pool2d(nl.Tensor(np.ones((1, 1, 2, 2))), 3), ValueError, "larger than the padded input"),
    (lambda: nl.nn.log_softmax(nl.constant(1.0)), ValueError, "at least 1-D"),
    (lambda: nl.nn.log_softmax(nl.Tensor(np.ones((2, 3))), 2), np.exceptions.AxisError, "axis 2"),
    (lambda: nl.nn.cross_entropy(nl.Tensor(np.ones((2, 3))), np.array([0.0, 1.0])), TypeError, "integer"),
    (lambda: nl.nn.cross_entropy(nl.Tensor(np.ones((2, 3))), np.array([0, 3])), ValueError, "label 3"),
    (lambda: nl.nn.cross_entropy(nl.Tensor(np.ones((2, 3))), np.array([0, -1])), ValueError, "label -1"),
    (lambda: nl.nn.cross_entropy(nl.Tensor(np.ones((2, 3))), np.array([0, 1, 2])), ValueError,
     r"\(3,\).*\(2,\).*\(2, 3\)"),
    (lambda: nl.nn.cross_entropy(nl.Tensor(np.ones(3)), np.array([0])), ValueError, "2-D"),
    (lambda: nl.nn.cross_entropy(nl.Tensor(np.ones((2, 3))), np.array([0, 1]), "avg"), ValueError, "reduction"),
    (lambda: nl.conv2d(nl.Tensor(np.ones((1, 3, 5, 5))), np.ones((2, 4, 3, 3))), ValueError, "input channels"),
])
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_integer_tensors_are_not_differentiable():
    i = nl.Tensor(np.arange(3))
    with nl.GradientTape() as tape:
        with pytest.raises(TypeError, match="int64.*not differentiable"):
            tape.watch(i)
        y = nl.Tensor(np.ones(3)) * i  # usable as data
    with pytest.raises(TypeError, match="not differentiable"):
        tape.gradient(y, i)
    with pytest.raises(TypeError, match="int64.*differentiable"):
        nl.testing.check_grads(lambda t: t * 2.0, [np.arange(3)])


# --------------------------------------------------------------------------- issue 16: lists of Tensors
def test_a_list_of_tensors_is_stacked_on_the_tape():
    """np.mean([a, b]) stacks; so does every op given a (nested) list or tuple holding Tensors,
    on the tape (it used to go through numpy and drop off: a gradient of 0)."""
    assert float(nl.grad(lambda x: nl.mean([x, x + 2]))(0.0)) == 1.0  # HIPS autograd: 1.0
    assert float(nl.grad(lambda x: nl.sum((x, 3.0 * x, 1.0)))(0.5)) == 4.0
    # nested, mixed with Python scalars and arrays, through a binary op and an operator
    f = lambda x: nl.sum(nl.multiply([[x, 1.0], [2.0, x * x]], np.array([3.0, 5.0])))  # noqa: E731
    assert float(nl.grad(f)(2.0)) == 3.0 + 5.0 * 4.0
    assert float(nl.grad(nl.grad(f))(2.0)) == 10.0
    v = nl.Tensor(np.array([1.0, -2.0, 0.5]))
    with nl.GradientTape() as tape:
        tape.watch(v)
        y = nl.sum(v * [v, nl.exp(v)])  # (2, 3) stacked, broadcast against (3,)
    tv = torch.tensor(v.numpy(), requires_grad=True)
    (want,) = torch.autograd.grad(torch.sum(tv * torch.stack([tv, torch.exp(tv)])), tv)
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), want.numpy(), rtol=1e-15)
    # matmul, reshape, transpose and reductions take lists too; float32 stays float32
    a = nl.Tensor(np.float32(1.5))
    with nl.GradientTape() as tape:
        tape.watch(a)
        y = nl.sum(nl.transpose(nl.reshape(ops.matmul([[a, a], [1.0, a]], [a, 2.0]), (2, 1))))
    assert y.dtype == np.float32
    assert float(tape.gradient(y, a)) == pytest.approx(2 * 1.5 + 5.0, rel=1e-6)  # sum = a^2 + 2a + 1 + 2a
    assert float(nl.grad(lambda x: nl.max([x, 2.0 * x]))(1.0)) == 2.0


def test_stack_refuses_ragged_and_mixed_device_lists():
    x = nl.Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"mean: .*one shape.*\(\), \(3,\)"):
        nl.mean([x, 2.0])
    with pytest.raises(ValueError, match="must not be empty"):
        ops.stack([])
    with pytest.raises(ValueError, match="axis=0"):
        ops.stack([x, x], axis=1)
    s = ops.stack([nl.Tensor(np.arange(2)), nl.Tensor(np.arange(2))])  # integers stay integers, off the tape
    assert s.dtype == np.int64 and s.shape == (2, 2)


# --------------------------------------------------------------------------- issue 16: power at zero
@pytest.mark.parametrize("e", [0.0, 1.0, 2.0, 0.5, 3.0, -1.0, -2.0])
@pytest.mark.parametrize("x0", [0.0, -2.0, 1.5])
def test_power_first_and_second_derivatives_match_pytorch(e, x0):
    """d/dx and d²/dx² of power(x, e), at 0 and at a negative base with an integer exponent, are
    PyTorch's (``pow_backward``: 0 where the exponent is 0); d²/dx² x**0 at 0 used to be NaN."""
    if x0 < 0 and e != int(e):
        pytest.skip("a negative base with a fractional exponent is NaN")
    d1 = nl.grad(lambda x: nl.power(x, e))(x0)
    d2 = nl.grad(nl.grad(lambda x: nl.power(x, e)))(x0)
    tx = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(torch.pow(tx, e), tx, create_graph=True)
    g2 = torch.autograd.grad(g1, tx)[0] if g1.requires_grad else torch.zeros((), dtype=torch.float64)
    np.testing.assert_allclose(float(d1), g1.item(), rtol=1e-15)
    np.testing.assert_allclose(float(d2), g2.item(), rtol=1e-15)


def test_power_exponent_gradient_stays_finite_at_a_zero_base():
    """d/da of d(a**b)/db at a = 0 was 0/0 through log's rule; the log now reads 1 there."""
    f = lambda a, b: nl.power(a, b)  # noqa: E731
    dab = nl.grad(lambda a, b: nl.grad(f, 1)(a, b), 0)(0.0, 2.0)
    assert np.isfinite(float(dab))
    assert float(nl.grad(f, 1)(0.0, 2.0)) == 0.0
    assert float(nl.grad(f, 1)(2.0, 3.0)) == pytest.approx(8 * np.log(2.0), rel=1e-15)


@pytest.mark.parametrize("e", [0.0, 1.0, 2.0, 3.0, -1.0, -2.0, np.nan])
@pytest.mark.parametrize("x0", [0.0, -0.0, -2.0, 1.5])
def test_power_with_a_tensor_exponent_matches_pytorch(e, x0):
    """The masked rule (an exponent Tensor that may hold zeros) gives PyTorch's first and second
    derivatives too, signed zeros (d/dx x**-2 at -0.0 is +inf) and NaN exponents included."""
    ex = nl.Tensor(np.array([e, 2.0]))  # one zero-or-not exponent beside a plain one
    f = lambda x: nl.sum(nl.power(x, ex))  # noqa: E731
    xs = np.array([x0, 1.0])
    d1 = nl.grad(f)(xs).numpy()[0]
    d2 = nl.grad(lambda x: nl.sum(nl.grad(f)(x)))(xs).numpy()[0]
    tx = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(torch.pow(tx, torch.tensor(e, dtype=torch.float64)), tx, create_graph=True)
    g2 = torch.autograd.grad(g1, tx)[0] if g1.requires_grad else torch.zeros((), dtype=torch.float64)
    if e == 0 and x0 == 0:
        # PyTorch's tensor-exponent rule gives NaN here (0 * inf in its where's other branch); numlin
        # gives 0, as PyTorch's scalar-exponent rule and HIPS autograd do
        g2 = torch.zeros((), dtype=torch.float64)
    np.testing.assert_allclose(d1, g1.item(), rtol=1e-15)
    np.testing.assert_allclose(d2, g2.item(), rtol=1e-15)
    if g1.item() != 0 and np.isinf(g1.item()):
        assert np.sign(d1) == np.sign(g1.item())


def test_array_front_ends_put_lists_holding_tensors_on_the_tape():
    """``nl.matmul`` and ``nl.conv2d`` given a (nested) list holding Tensors record the op (as
    ``nl.mean([x, x + 2])`` does) instead of reading the list through numpy, off the tape."""
    a = nl.constant(3.0)
    g = nl.grad(lambda a: nl.sum(nl.matmul([[a, a], [1.0, a]], [a, 2.0])))(a)
    # [[a, a], [1, a]] @ [a, 2] = [a^2 + 2a, a + 2a]; d/da of the sum = 2a + 2 + 3 = 11 at a = 3
    assert float(g) == pytest.approx(11.0)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    s = nl.constant(2.0)
    gs = nl.grad(lambda s: nl.sum(nl.conv2d(x, [[[[s, s], [s, s]]]])))(s)
    # y = s * (sum of each 2x2 window); d/ds of the sum over the 9 windows = sum of all window sums
    windows = sum(x[0, 0, i:i + 2, j:j + 2].sum() for i in range(3) for j in range(3))
    assert float(gs) == pytest.approx(windows)
