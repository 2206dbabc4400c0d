"""The CUDA autodiff backend (``numlin.kernels.cuda.{elementwise,pool,softmax,optim}``) against
the CPU backend on the same data, kernel by kernel, then end to end: ops, layers, tapes and
optimizers on ``Tensor(..., device="cuda")`` give the CPU's values and gradients.

Without a GPU the kernels run under Numba's CUDA simulator (one Python thread per GPU thread),
so the shapes are tiny; on a GPU the same tests run on the device, plus a larger ``gpu`` case.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from numba import cuda

import numlin as nl
from numlin import autodiff as ad
from numlin.kernels.cpu import elementwise as cew, optim as copt, pool as cpool, softmax as csm
from numlin.kernels.cuda import elementwise as gew, optim as gopt, pool as gpool, softmax as gsm
from numlin.kernels import cuda as garrays  # the CUDA array façade: cast, contiguous, full, ...
from numlin.kernels.cuda.arrays import transpose_last2
from tests.conftest import HAS_GPU

DTYPES = [np.float64, np.float32]

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's inf/nan arithmetic


def _dev(a):
    a = np.asarray(a)
    return cuda.to_device(a if a.flags.c_contiguous else np.ascontiguousarray(a))  # (keeps 0-d arrays 0-d)


def _host(d):
    return d.copy_to_host()


def _close(got, want, dtype, rtol=None):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    # the device (and the simulator's Python math) may differ from the CPU's libm by an ulp or two
    rtol = rtol if rtol is not None else (1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True)


SPECIAL = np.array([-np.inf, -1e3, -3.0, -0.5, -0.0, 0.0, 0.25, 2.0, 1e3, np.inf, np.nan])


# --------------------------------------------------------------------------- elementwise rules
@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_rules_match_cpu_including_special_values(rng, dtype):
    x = np.concatenate([SPECIAL, rng.standard_normal(5) * 3]).astype(dtype).reshape(2, 8)
    assert set(gew.UNARY) == set(cew.UNARY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in cew.UNARY:
            got = gew.unary(name, _dev(x))
            _close(_host(got), cew.unary(name, x), dtype)
    # a strided (transposed) input is read in place
    xt = _dev(x)
    _close(_host(gew.unary("exp", transpose_last2(xt))), cew.unary("exp", x.T), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((2, 1, 3), (4, 1)), ((3,), ()), ((), ()), ((2, 3), (2, 3)), ((1, 3), (2, 1)),
                                    ((0, 3), (3,))])
def test_binary_rules_broadcast_like_cpu(rng, dtype, shapes):
    sa, sb = shapes
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    assert set(gew.BINARY) == set(cew.BINARY)
    for name in cew.BINARY:
        aa = np.abs(a) + np.asarray(0.5, dtype) if name == "pow" else a
        got = gew.binary(name, _dev(aa), _dev(b))
        _close(_host(got), np.asarray(cew.binary(name, aa, b)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_special_values(dtype):
    a = np.repeat(SPECIAL, SPECIAL.size).astype(dtype)
    b = np.tile(SPECIAL, SPECIAL.size).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in cew.BINARY:
            _close(_host(gew.binary(name, _dev(a), _dev(b))), cew.binary(name, a, b), dtype)
    # equal of a value with itself; a transposed operand
    m = np.arange(6, dtype=dtype).reshape(2, 3)
    got = gew.binary("sub", transpose_last2(_dev(m)), _dev(np.ones((3, 1), dtype)))
    _close(_host(got), m.T - 1, dtype)


def test_binary_errors():
    a, b = _dev(np.ones((2, 3))), _dev(np.ones((4,)))
    with pytest.raises(ValueError, match="broadcast"):
        gew.binary("add", a, b)
    with pytest.raises(TypeError, match="dtype"):
        gew.binary("add", a, _dev(np.ones(3, np.float32)))


# --------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_matches_cpu(rng, dtype, axes, keepdims):
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    for name in ("sum", "max"):
        got = gew.reduce(name, _dev(x), axes, keepdims)
        _close(_host(got), cew.reduce(name, x, axes, keepdims), dtype)


def test_reduce_edge_cases(rng):
    x = rng.standard_normal((3, 4))
    x[1, 2] = np.nan
    _close(_host(gew.reduce("max", _dev(x), (1,), False)), cew.reduce("max", x, (1,), False), np.float64)
    assert np.isnan(_host(gew.reduce("max", _dev(x), (1,), False))[1])
    # float32 sums accumulate in float64
    big = np.full(4097, 1.0, np.float32)
    big[0] = 2.0 ** 24
    assert _host(gew.reduce("sum", _dev(big), (0,), False)) == np.float32(2.0 ** 24 + 4096)
    # empty reductions, 0-d input, a transposed view
    e = np.zeros((0, 3))
    _close(_host(gew.reduce("sum", _dev(e), (0,), True)), np.zeros((1, 3)), np.float64)
    with pytest.raises(ValueError, match="identity"):
        gew.reduce("max", _dev(e), (0,), False)
    s = np.asarray(2.5)
    _close(_host(gew.reduce("sum", _dev(s), (), False)), cew.reduce("sum", s, (), False), np.float64)
    _close(_host(gew.reduce("sum", transpose_last2(_dev(x)), (0,), False)), cew.reduce("sum", x.T, (0,), False),
           np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_reductions_use_a_block_per_output(rng, dtype):
    x = rng.standard_normal((2, 3, 600)).astype(dtype)  # reduced extent 1200: the block kernel
    x[1, 2, 7] = np.nan
    for keepdims in (False, True):
        for name in ("sum", "max"):
            got = _host(gew.reduce(name, _dev(x), (0, 2), keepdims))
            _close(got, cew.reduce(name, x, (0, 2), keepdims), dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.isnan(got.ravel()[2]) and not np.isnan(got.ravel()[:2]).any()
    y = np.full(1500, -np.inf, dtype)
    assert _host(gew.reduce("max", _dev(y), (0,), False)) == -np.inf


# --------------------------------------------------------------------------- shapes and conversions
def test_shape_ops_match_numpy(rng):
    x = rng.standard_normal((2, 3, 4))
    d = _dev(x)
    for perm in [(2, 0, 1), (1, 0, 2), (0, 2, 1), (2, 1, 0)]:
        t = gew.transpose(d, perm)
        np.testing.assert_array_equal(_host(t), x.transpose(perm))
        assert t.is_c_contiguous()
    np.testing.assert_array_equal(_host(gew.transpose(gew.transpose(d, (2, 0, 1)), (1, 2, 0))), x)
    for shape in [(6, 4), (-1, 4), (4, -1, 2), (24,), (2, 3, 4)]:
        np.testing.assert_array_equal(_host(gew.reshape(d, shape)), x.reshape(shape))
    np.testing.assert_array_equal(_host(gew.reshape(gew.transpose(d, (2, 1, 0)), (4, 6))),
                                  x.transpose(2, 1, 0).reshape(4, 6))
    np.testing.assert_array_equal(_host(gew.reshape(_dev(np.asarray(3.0)), (1, 1))), np.full((1, 1), 3.0))
    np.testing.assert_array_equal(_host(gew.reshape(_dev(np.ones(1)), ())), np.asarray(1.0))
    for bad in [(5, 5), (-1, 5), (-1, -1)]:
        with pytest.raises(ValueError):
            gew.reshape(d, bad)
    b = rng.standard_normal((3, 1))
    np.testing.assert_array_equal(_host(gew.broadcast_to(_dev(b), (2, 3, 4))), np.broadcast_to(b, (2, 3, 4)))
    np.testing.assert_array_equal(_host(gew.broadcast_to(_dev(np.asarray(1.5)), (2, 2))), np.full((2, 2), 1.5))
    with pytest.raises(ValueError):
        gew.broadcast_to(_dev(b), (2, 4))
    c = garrays.contiguous(transpose_last2(_dev(b)))
    assert c.is_c_contiguous()
    np.testing.assert_array_equal(_host(c), b.T)


def test_full_and_cast():
    f = garrays.full((2, 3), 0.5, np.float32)
    assert f.dtype == np.float32 and f.shape == (2, 3)
    np.testing.assert_array_equal(_host(f), np.full((2, 3), 0.5, np.float32))
    assert _host(garrays.full((), 2.0, np.float64)).shape == ()
    assert garrays.full((0, 2), 1.0, np.float64).shape == (0, 2)
    i = np.arange(-3, 3, dtype=np.int64).reshape(2, 3)
    for dt in (np.float32, np.float64):
        got = _host(garrays.cast(_dev(i), dt))
        assert got.dtype == dt
        np.testing.assert_array_equal(got, i.astype(dt))
    x = np.array([1.0 + 2 ** -30, 3.5])
    np.testing.assert_array_equal(_host(garrays.cast(_dev(x), np.float32)), x.astype(np.float32))
    d = _dev(x)
    assert garrays.cast(d, np.float64) is d


# --------------------------------------------------------------------------- pooling
POOLS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 3), (1, 2), (1, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,p", POOLS)
def test_pools_match_cpu(rng, dtype, k, s, p):
    x = rng.standard_normal((2, 2, 5, 4)).astype(dtype)
    x[0, 1, 2, 1] = np.nan
    x[0, 1, 0, 0] = x[0, 1, 1, 0] = np.nan  # two NaNs in a border window: the first one wins
    x[1, 0, :2, :2] = 1.0  # ties: the first maximum wins
    y, arg = gpool.max_pool2d(_dev(x), k, s, p)
    yc, argc = cpool.max_pool2d(x, k, s, p)
    _close(_host(y), yc, dtype, rtol=0)
    np.testing.assert_array_equal(_host(arg), argc)
    g = rng.standard_normal(yc.shape).astype(dtype)
    _close(_host(gpool.max_pool2d_backward(_dev(g), arg, x.shape)), cpool.max_pool2d_backward(g, argc, x.shape), dtype,
           rtol=0)
    a = gpool.avg_pool2d(_dev(x), k, s, p)
    _close(_host(a), cpool.avg_pool2d(x, k, s, p), dtype)
    _close(_host(gpool.avg_pool2d_backward(_dev(g), x.shape, k, s, p)),
           cpool.avg_pool2d_backward(g, x.shape, k, s, p), dtype)


# --------------------------------------------------------------------------- softmax and loss
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_and_cross_entropy_match_cpu(rng, dtype, scale):
    x = (rng.standard_normal((5, 4)) * scale).astype(dtype)
    _close(_host(gsm.log_softmax(_dev(x))), csm.log_softmax(x), dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    lab = np.array([0, 3, 1, 1, 2])
    gl = gsm.labels(lab)
    assert gl.dtype == np.int64 and _host(gl).tolist() == lab.tolist()
    loss, prob = gsm.cross_entropy(_dev(x), gl)
    lc, pc = csm.cross_entropy(x, csm.labels(lab))
    assert np.all(np.isfinite(_host(loss)))
    _close(_host(loss), lc, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    _close(_host(prob), pc, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    g = rng.standard_normal(5).astype(dtype)
    _close(_host(gsm.cross_entropy_backward(prob, gl, _dev(g))), csm.cross_entropy_backward(pc, csm.labels(lab), g),
           dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_and_adam_match_cpu(rng, dtype):
    p0 = rng.standard_normal((3, 4)).astype(dtype)
    grads = [rng.standard_normal((3, 4)).astype(dtype) for _ in range(3)]
    for momentum in (0.0, 0.9):
        pc, vc = p0.copy(), np.zeros_like(p0)
        pg, vg = _dev(p0), _dev(np.zeros_like(p0))
        for g in grads:
            copt.sgd(pc, g, vc if momentum else None, 0.1, momentum)
            gopt.sgd(pg, _dev(g), vg if momentum else None, 0.1, momentum)
        _close(_host(pg), pc, dtype)
        _close(_host(vg), vc, dtype)
    pc, mc, vc = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    pg, mg, vg = _dev(p0), _dev(mc), _dev(vc)
    for t, g in enumerate(grads, 1):
        copt.adam(pc, g, mc, vc, 1e-2, 0.9, 0.999, 1e-7, t)
        gopt.adam(pg, _dev(g), mg, vg, 1e-2, 0.9, 0.999, 1e-7, t)
    for got, want in ((pg, pc), (mg, mc), (vg, vc)):
        _close(_host(got), want, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)


# --------------------------------------------------------------------------- end to end through nl
def _both(a, device):
    return nl.Tensor(a, device=device)


def test_ops_and_gradients_on_device_match_cpu(rng):
    xa = rng.standard_normal((2, 3)) + 0.1
    wa = rng.standard_normal((3, 1)) * 0.5
    results = {}
    for dev in ("cpu", "cuda"):
        x, w = _both(xa, dev), nl.Variable(wa, device=dev)
        with nl.GradientTape(persistent=True) as tape:
            tape.watch(x)
            h = nl.tanh(x) * 2.0 + nl.sigmoid(x) / (nl.abs(x) + 1.0) - nl.exp(-x)
            h = h + nl.transpose(ad.broadcast_to(w, (3, 2)))  # (2, 3) + (2, 3)
            h = nl.relu(h) + nl.sqrt(nl.abs(x)) * nl.sin(x) + nl.cos(x) ** 2.0 + nl.log(nl.abs(x))
            r = nl.max(h, axis=1, keepdims=True) + nl.mean(h, axis=0) + ad.log_softmax(h, axis=0)
            z = nl.sum(r * r) + nl.sum(nl.matmul(h, w))
            loss = z + ad.cross_entropy(h, np.array([2, 0]))
        gx, gw = tape.gradient(loss, [x, w])
        assert gx.device == dev and gw.device == dev
        results[dev] = (loss.numpy(), gx.numpy(), gw.numpy(), h.numpy())
    for got, want in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_scalar_operands_keep_shape_on_device():
    x = nl.Tensor(np.asarray(2.0), device="cuda")
    y = x * 3.0 + 1
    assert y.shape == () and y.device == "cuda" and float(y) == 7.0
    z = nl.Tensor(np.arange(3.0), device="cuda") - 1.0
    assert z.shape == (3,)
    np.testing.assert_array_equal(z.numpy(), [-1.0, 0.0, 1.0])
    i = nl.Tensor(np.arange(3), device="cuda")
    assert nl.exp(i).dtype == np.float64 and i.device == "cuda"


def _model(device):
    m = nl.nn.Sequential(nl.nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, random_state=0), nl.nn.ReLU(),
                         nl.nn.MaxPool2d(2), nl.nn.AvgPool2d(1), nl.nn.Flatten(),
                         nl.nn.Linear(3 * 2 * 2, 4, dtype=np.float64, random_state=1))
    return m.to(device)


def test_small_cnn_training_step_on_device_matches_cpu(rng):
    xa = rng.standard_normal((2, 2, 4, 4))
    lab = np.array([1, 3])
    out = {}
    for dev in ("cpu", "cuda"):
        model = _model(dev)
        opt = nl.optim.Adam(learning_rate=1e-2)
        sgd = nl.optim.SGD(learning_rate=1e-2, momentum=0.9)
        x = nl.Tensor(xa, device=dev)
        losses = []
        for step in range(2):
            with nl.GradientTape() as tape:
                loss = ad.cross_entropy(model(x), lab)
            params = model.parameters()
            grads = tape.gradient(loss, params)
            assert all(g.device == dev for g in grads)
            (opt if step == 0 else sgd).apply_gradients(zip(grads, params))
            losses.append(float(loss))
        out[dev] = (losses, [g.numpy() for g in grads], [p.numpy() for p in model.parameters()])
    np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=1e-12)
    for got, want in zip(out["cuda"][1] + out["cuda"][2], out["cpu"][1] + out["cpu"][2]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_float32_linear_step_on_device(rng):
    xa = rng.standard_normal((3, 5)).astype(np.float32)
    res = {}
    for dev in ("cpu", "cuda"):
        lin = nl.nn.Linear(5, 2, random_state=3).to(dev)
        with nl.GradientTape() as tape:
            loss = nl.mean(nl.sigmoid(lin(nl.Tensor(xa, device=dev))) ** 2)
        grads = tape.gradient(loss, lin.parameters())
        nl.optim.Adam(1e-2).apply_gradients(zip(grads, lin.parameters()))
        assert all(p.dtype == np.float32 for p in lin.parameters())
        res[dev] = [float(loss)] + [p.numpy() for p in lin.parameters()]
    np.testing.assert_allclose(res["cuda"][0], res["cpu"][0], rtol=1e-5)
    for got, want in zip(res["cuda"][1:], res["cpu"][1:]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a real CUDA GPU")
def test_device_sizes_on_gpu(rng):
    x = rng.standard_normal((64, 32, 33, 31)).astype(np.float32)
    b = rng.standard_normal((32, 1, 31)).astype(np.float32)
    for name in ("add", "mul", "div", "relu_grad"):
        np.testing.assert_allclose(_host(gew.binary(name, _dev(x), _dev(b))), cew.binary(name, x, b), rtol=1e-6)
    for axes in [(0, 2, 3), (1,), (0, 1, 2, 3)]:
        np.testing.assert_allclose(_host(gew.reduce("sum", _dev(x), axes, False)), cew.reduce("sum", x, axes, False),
                                   rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(_host(gew.reduce("max", _dev(x), axes, False)), cew.reduce("max", x, axes, False))
    y, arg = gpool.max_pool2d(_dev(x), (3, 3), (2, 2), (1, 1))
    yc, argc = cpool.max_pool2d(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(_host(arg), argc)
    g = rng.standard_normal(yc.shape).astype(np.float32)
    np.testing.assert_array_equal(_host(gpool.max_pool2d_backward(_dev(g), arg, x.shape)),
                                  cpool.max_pool2d_backward(g, argc, x.shape))
    np.testing.assert_allclose(_host(gpool.avg_pool2d_backward(_dev(g), x.shape, (3, 3), (2, 2), (1, 1))),
                               cpool.avg_pool2d_backward(g, x.shape, (3, 3), (2, 2), (1, 1)), rtol=1e-5, atol=1e-6)
    logits = rng.standard_normal((4096, 1000)).astype(np.float32) * 30
    lab = rng.integers(0, 1000, 4096)
    loss, _ = gsm.cross_entropy(_dev(logits), gsm.labels(lab))
    np.testing.assert_allclose(_host(loss), csm.cross_entropy(logits, csm.labels(lab))[0], rtol=1e-5, atol=1e-4)


def test_lists_of_device_tensors_stack_on_the_tape_like_cpu(rng):
    """Issue 16: an op given a list holding device Tensors stacks it on the device, differentiably;
    host data mixed in is refused as for any other operand."""
    a = rng.standard_normal((2, 3))
    grads = {}
    for device in ("cpu", "cuda"):
        x = nl.Tensor(a, device=device)
        with nl.GradientTape() as tape:
            tape.watch(x)
            y = nl.sum(nl.mean([x * x, nl.exp(x), x], axis=0) * [x, 2.0 * x])
        grads[device] = tape.gradient(y, x).numpy()
        assert y.device == device
    _close(grads["cuda"], grads["cpu"], np.float64)
    xd = nl.Tensor(a, device="cuda")
    with pytest.raises(TypeError, match="different devices"):
        nl.mean([xd, nl.Tensor(a)])
    with pytest.raises(TypeError, match="host data with GPU tensors"):
        nl.mean([xd, a])
