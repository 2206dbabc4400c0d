"""nl.nn.BatchNorm2d and nl.nn.batch_norm against torch.nn.BatchNorm2d (copied weights): training
and eval forward, running statistics over several steps, gradients, second and third derivatives,
bad inputs; the fused CPU kernels directly; the CUDA kernels against the CPU (simulator without a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin.kernels.cpu import batchnorm as kcpu

torch = pytest.importorskip("torch")

DTYPES = [np.float64, np.float32]
TDT = {np.float64: torch.float64, np.float32: torch.float32}


def _tol(dtype, n: int = 1) -> float:
    """Error bound relative to the values' scale: a few ulps times the reduction length's sqrt."""
    return 64 * np.finfo(dtype).eps * max(np.sqrt(n), 1.0)


def _check(got, want, dtype, n=1, what=""):
    got = np.asarray(got.numpy() if isinstance(got, nl.Tensor) else got, np.float64)
    want = np.asarray(want.detach().numpy() if isinstance(want, torch.Tensor) else want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    bound = _tol(dtype, n) * max(np.max(np.abs(want), initial=0.0), 1.0)
    err = np.max(np.abs(got - want), initial=0.0)
    assert err <= bound, f"{what}: max error {err:.3g} over {bound:.3g}"


def _pair(C, dtype, affine=True, momentum=0.1, eps=1e-5, rng=None):
    """A numlin BatchNorm2d with random affine parameters and torch's twin."""
    bn = nl.nn.BatchNorm2d(C, eps=eps, momentum=momentum, affine=affine, dtype=dtype)
    tb = torch.nn.BatchNorm2d(C, eps=eps, momentum=momentum, affine=affine, dtype=TDT[dtype])
    if affine:
        bn.weight.assign(rng.uniform(0.5, 1.5, C))
        bn.bias.assign(rng.standard_normal(C))
        with torch.no_grad():
            tb.weight.copy_(torch.from_numpy(bn.weight.numpy()))
            tb.bias.copy_(torch.from_numpy(bn.bias.numpy()))
    return bn, tb


def _step(bn, tb, x, r):
    """One forward and backward of ``sum(y * r)`` in both; returns (y, grads, ty, tgrads)."""
    xt = nl.Tensor(x)
    with nl.GradientTape() as tape:
        tape.watch(xt)
        y = bn(xt)
        loss = nl.sum(y * r)
    srcs = [xt] + bn.parameters()
    grads = tape.gradient(loss, srcs)
    tx = torch.tensor(x, requires_grad=True)
    ty = tb(tx)
    (ty * torch.from_numpy(r)).sum().backward()
    tgrads = [tx.grad] + ([tb.weight.grad, tb.bias.grad] if bn.affine else [])
    if bn.affine:
        tb.weight.grad = tb.bias.grad = None
    return y, grads, ty, tgrads


# --------------------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.5, 0.0, 1.0, None])
def test_training_steps_then_eval_match_torch(rng, dtype, affine, momentum):
    N, C, H, W = 4, 3, 5, 6
    bn, tb = _pair(C, dtype, affine, momentum, rng=rng)
    M = N * H * W
    for step in range(3):
        x = (rng.standard_normal((N, C, H, W)) * (step + 1) * np.array([1, 3, 0.2])[:, None, None]
             + np.array([0.5, -2, 10])[:, None, None]).astype(dtype)
        r = rng.standard_normal(x.shape).astype(dtype)
        y, grads, ty, tgrads = _step(bn, tb, x, r)
        assert y.dtype == dtype and y.shape == x.shape
        _check(y, ty, dtype, M, "y")
        for what, g, tg in zip(["dx", "dw", "db"], grads, tgrads):
            _check(g, tg, dtype, M, what)
        _check(bn.running_mean, tb.running_mean, dtype, M, "running_mean")
        _check(bn.running_var, tb.running_var, dtype, M, "running_var")
        assert bn.num_batches_tracked == int(tb.num_batches_tracked) == step + 1
        assert isinstance(bn.running_mean, np.ndarray) and bn.running_mean.dtype == dtype
    bn.eval()
    tb.eval()
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    r = rng.standard_normal(x.shape).astype(dtype)
    before = bn.running_mean.copy(), bn.running_var.copy()
    y, grads, ty, tgrads = _step(bn, tb, x, r)
    _check(y, ty, dtype, 1, "eval y")
    for what, g, tg in zip(["dx", "dw", "db"], grads, tgrads):
        _check(g, tg, dtype, M, "eval " + what)
    np.testing.assert_array_equal(bn.running_mean, before[0])  # eval leaves the statistics alone
    np.testing.assert_array_equal(bn.running_var, before[1])
    assert bn.num_batches_tracked == 3


def test_float32_large_mean_is_accurate(rng):
    """Channels with mean 1e4 and std 1 (float32): the two-pass float64 statistics keep the
    normalised output accurate (a one-pass E[x²] - E[x]² in float32 would lose every digit)."""
    x64 = rng.standard_normal((8, 2, 6, 6)) + 1e4
    x = x64.astype(np.float32)
    y = nl.nn.batch_norm(x, training=True).numpy()
    xs = x.astype(np.float64)
    want = (xs - xs.mean((0, 2, 3), keepdims=True)) / np.sqrt(xs.var((0, 2, 3), keepdims=True) + 1e-5)
    assert np.max(np.abs(y - want)) < 5e-3  # float32 x - mean near 1e4 is exact to 1e-3 / std


def test_functional_batch_norm_matches_torch_and_updates_in_place(rng):
    x = rng.standard_normal((3, 4, 2, 5))
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    rm_id = id(rm)
    y = nl.nn.batch_norm(x, w, b, rm, rv, True, 0.3, 1e-3)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b), True, 0.3, 1e-3)
    _check(y, ty, np.float64, 30, "y")
    assert id(rm) == rm_id
    _check(rm, trm, np.float64, 30, "running_mean")
    _check(rv, trv, np.float64, 30, "running_var")
    y = nl.nn.batch_norm(x, w, b, rm, rv, False, 0.3, 1e-3)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b), False, 0.3, 1e-3)
    _check(y, ty, np.float64, 1, "eval y")
    # no affine, no running statistics; 2-D (N, C) and 3-D inputs as torch
    for shape in [(6, 4), (3, 4, 7)]:
        x = rng.standard_normal(shape)
        _check(nl.nn.batch_norm(x), torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True),
               np.float64, 30, str(shape))


def test_weight_promotes_float32_input(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    y = nl.nn.batch_norm(x, np.ones(3), np.zeros(3))
    assert y.dtype == np.float64


def test_one_value_per_channel_raises_in_training_like_torch(rng):
    bn = nl.nn.BatchNorm2d(3)
    x = rng.standard_normal((1, 3, 1, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.BatchNorm2d(3)(torch.from_numpy(x))
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3, 1, 1\)"):
        bn(x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nl.nn.batch_norm(x)
    assert bn.num_batches_tracked == 0
    np.testing.assert_array_equal(bn.running_mean, 0)
    bn.eval()
    np.testing.assert_allclose(bn(x).numpy(), x / np.sqrt(1 + 1e-5), rtol=1e-6)  # eval mode takes it
    # two values per channel are enough
    assert nl.nn.batch_norm(rng.standard_normal((2, 3, 1, 1))).shape == (2, 3, 1, 1)


# --------------------------------------------------------------------------- higher derivatives
def _nested_grads(x, w, b, r, v, training, rm=None, rv=None):
    """numlin: d/d(x, w, b) of <v, d/d(x, w, b) loss>, loss = sum(y * r) + sum(y³) / 10."""
    ts = [nl.Tensor(a) for a in (x, w, b)]
    with nl.GradientTape() as outer:
        outer.watch(ts)
        with nl.GradientTape() as inner:
            inner.watch(ts)
            y = nl.nn.batch_norm(ts[0], ts[1], ts[2], rm, rv, training, 0.1, 1e-5)
            loss = nl.sum(y * r) + nl.sum(y * y * y) / 10
        g = inner.gradient(loss, ts)
        s = nl.sum(g[0] * v[0]) + nl.sum(g[1] * v[1]) + nl.sum(g[2] * v[2])
    return g, outer.gradient(s, ts)


def _torch_nested(x, w, b, r, v, training, rm=None, rv=None):
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = torch.nn.functional.batch_norm(ts[0], None if rm is None else torch.tensor(rm),
                                       None if rv is None else torch.tensor(rv), ts[1], ts[2], training, 0.1, 1e-5)
    loss = (y * torch.from_numpy(r)).sum() + (y ** 3).sum() / 10
    g = torch.autograd.grad(loss, ts, create_graph=True)
    s = sum((gi * torch.from_numpy(vi)).sum() for gi, vi in zip(g, v))
    return g, torch.autograd.grad(s, ts)


@pytest.mark.parametrize("training", [True, False])
def test_second_derivatives_match_torch_create_graph(rng, training):
    x = rng.standard_normal((3, 2, 3, 4)) * 2 + 1
    w, b = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    r = rng.standard_normal(x.shape)
    v = [rng.standard_normal(x.shape), rng.standard_normal(2), rng.standard_normal(2)]
    rm, rv = (rng.standard_normal(2), rng.uniform(0.5, 2, 2)) if not training else (None, None)
    g, gg = _nested_grads(x, w, b, r, v, training, rm, rv)
    tg, tgg = _torch_nested(x, w, b, r, v, training, rm, rv)
    for what, a, ta in zip(["dx", "dw", "db"], g, tg):
        _check(a, ta, np.float64, 36, what)
    for what, a, ta in zip(["d2x", "d2w", "d2b"], gg, tgg):
        if ta is None or not ta.abs().max() > 0:
            assert a is None or np.max(np.abs(a.numpy())) < 1e-10, what
        else:
            _check(a, ta, np.float64, 36, what)


def test_third_derivative_against_finite_differences(rng):
    x = rng.standard_normal((2, 2, 2, 3))
    w, b = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    nl.testing.check_grads(lambda x, w, b: nl.nn.batch_norm(x, w, b) ** 2, [x, w, b], order=3)


def test_fused_kernel_serves_a_plain_backward_and_ops_a_recorded_one(rng, monkeypatch):
    """An ordinary gradient runs the fused backward kernel once; under a recording outer tape the
    backward is built from ops (recorded, so differentiable) and the kernel is not used."""
    calls = []
    real = kcpu.backward
    monkeypatch.setattr(kcpu, "backward", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = nl.Tensor(rng.standard_normal((2, 3, 2, 2)))
    w = nl.Variable(np.ones(3))
    with nl.GradientTape() as tape:
        tape.watch(x)
        loss = nl.sum(nl.nn.batch_norm(x, w) ** 2)
        assert not calls
    tape.gradient(loss, [x, w])
    assert len(calls) == 1
    with nl.GradientTape() as outer:
        outer.watch(x)
        with nl.GradientTape() as inner:
            inner.watch(x)
            loss = nl.sum(nl.nn.batch_norm(x, w) ** 3)
        gx = inner.gradient(loss, x)
        assert len(calls) == 1  # the ops path
        s = nl.sum(gx * gx)
    assert outer.gradient(s, x) is not None  # nothing records this pass: the fused kernel again
    assert len(calls) == 2


def test_gradient_skips_dx_when_x_is_constant(rng, monkeypatch):
    needs = []
    real = kcpu.backward
    monkeypatch.setattr(kcpu, "backward", lambda *a, **k: needs.append(a[6] if len(a) > 6 else k.get("need_dx", True))
                        or real(*a, **k))
    bn = nl.nn.BatchNorm2d(3, dtype=np.float64)
    x = rng.standard_normal((2, 3, 2, 2))
    with nl.GradientTape() as tape:
        loss = nl.sum(bn(x) ** 3)
    dw, db = tape.gradient(loss, [bn.weight, bn.bias])
    tx = torch.tensor(x)
    tb = torch.nn.BatchNorm2d(3, dtype=torch.float64)
    (tb(tx) ** 3).sum().backward()
    _check(dw, tb.weight.grad, np.float64, 8, "dw")
    _check(db, tb.bias.grad, np.float64, 8, "db")
    assert needs == [False]  # the fused backward was told not to compute dx


def test_a_refused_forward_counts_no_batch():
    """num_batches_tracked moves only when the forward succeeds (with momentum=None it weighs the
    running averages)."""
    bn = nl.nn.BatchNorm2d(3, momentum=None, dtype=np.float64)
    with pytest.raises(ValueError):
        bn(np.ones((1, 3, 1, 1)))
    with pytest.raises(ValueError):
        bn(np.ones((2, 4, 2, 2)))
    assert bn.num_batches_tracked == 0
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    bn(x)
    assert bn.num_batches_tracked == 1
    np.testing.assert_allclose(bn.running_mean, x.mean(axis=(0, 2, 3)), rtol=1e-15)  # weight 1/1


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_kernels_same_in_every_split(rng, dtype):
    """Parts over channels: one part and many give the same bits."""
    from numlin._config import override

    x = rng.standard_normal((3, 5, 20)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    outs = []
    for grain in (1 << 30, 1):
        with override(threads_grain=grain):
            y, mean, var, inv = kcpu.forward_train(x, w, b, 1e-5)
            dx, dw, db = kcpu.backward(g, x, mean, inv, w, True)
        outs.append((y, mean, var, inv, dx, dw, db))
    for a, b_ in zip(*outs):
        np.testing.assert_array_equal(a, b_)
    y, mean, var, inv, dx, dw, db = outs[0]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean((0, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, x64.var((0, 2)), rtol=1e-12)
    dxn, dwn, dbn = kcpu.backward(g, x, mean, inv, w, True, need_dx=False)
    assert dxn is None
    np.testing.assert_array_equal(dwn, dw)
    np.testing.assert_array_equal(dbn, db)


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(num_features=0), ValueError, "num_features must be positive"),
    (dict(num_features=-2), ValueError, "num_features must be positive"),
    (dict(num_features=2.5), TypeError, "num_features must be an int"),
    (dict(num_features=True), TypeError, "num_features must be an int"),
    (dict(num_features=3, eps=0.0), ValueError, "eps must be positive"),
    (dict(num_features=3, eps=-1e-5), ValueError, "eps must be positive"),
    (dict(num_features=3, eps=float("nan")), ValueError, "eps must be finite"),
    (dict(num_features=3, eps="1e-5"), TypeError, "eps must be a real number"),
    (dict(num_features=3, momentum=-0.1), ValueError, r"momentum must be in \[0, 1\]"),
    (dict(num_features=3, momentum=1.5), ValueError, r"momentum must be in \[0, 1\]"),
    (dict(num_features=3, momentum=float("nan")), ValueError, "momentum must be finite"),
    (dict(num_features=3, affine=1), TypeError, "affine must be True or False"),
    (dict(num_features=3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
])
def test_batchnorm2d_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nl.nn.BatchNorm2d(**kwargs)


def test_batchnorm2d_rejects_bad_input_shapes(rng):
    bn = nl.nn.BatchNorm2d(3)
    for shape in [(2, 4, 3, 3), (2, 3, 3), (2, 3), (1, 2, 3, 3, 3)]:
        with pytest.raises(ValueError, match=r"C = num_features = 3, got shape " + str(shape).replace("(", r"\(")
                           .replace(")", r"\)")):
            bn(rng.standard_normal(shape).astype(np.float32))


def test_functional_rejects_bad_arguments(rng):
    x = rng.standard_normal((2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(3,\)"):
        nl.nn.batch_norm(x, np.ones(4))
    with pytest.raises(ValueError, match=r"running_var has shape \(2,\)"):
        nl.nn.batch_norm(x, None, None, np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match="both or neither"):
        nl.nn.batch_norm(x, None, None, np.zeros(3), None)
    with pytest.raises(ValueError, match="eval mode"):
        nl.nn.batch_norm(x, training=False)
    with pytest.raises(TypeError, match="float32 or float64"):
        nl.nn.batch_norm(x, None, None, np.zeros(3, np.int64), np.ones(3))
    with pytest.raises(TypeError, match="not a Tensor"):
        nl.nn.batch_norm(x, None, None, nl.Tensor(np.zeros(3)), nl.Tensor(np.ones(3)))
    with pytest.raises(TypeError, match="training must be True or False"):
        nl.nn.batch_norm(x, training=1)
    with pytest.raises(ValueError, match="at least 2-D"):
        nl.nn.batch_norm(np.ones(4))
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        nl.nn.batch_norm(x, None, None, ro, np.ones(3))
    nl.nn.batch_norm(x, None, None, ro, np.ones(3), training=False)  # read in eval mode only: fine


def test_repr_and_exports():
    assert repr(nl.nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True)"
    assert nl.nn.batch_norm is nl.nn.functional.batch_norm
    from numlin.nn.layers import BatchNorm2d, Module

    assert BatchNorm2d is nl.nn.BatchNorm2d and issubclass(BatchNorm2d, Module)


# --------------------------------------------------------------------------- CUDA (simulator without a GPU)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_kernels_match_cpu(rng, dtype):
    from numba import cuda

    from numlin.kernels.cuda import batchnorm as kgpu

    x = (rng.standard_normal((2, 3, 16)) * 2 + 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    y, mean, var, inv = kcpu.forward_train(x, w, b, 1e-5)
    dy, dmean, dvar, dinv = kgpu.forward_train(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), 1e-5)
    for a, da in zip((y, mean, var, inv), (dy, dmean, dvar, dinv)):
        np.testing.assert_allclose(da.copy_to_host(), a, rtol=rtol, atol=rtol)
    for training in (True, False):
        dx, dw, db = kcpu.backward(g, x, mean, inv, w, training)
        gdx, gdw, gdb = kgpu.backward(cuda.to_device(g), cuda.to_device(x), dmean, dinv, cuda.to_device(w), training)
        for a, da in zip((dx, dw, db), (gdx, gdw, gdb)):
            assert da.dtype == a.dtype
            np.testing.assert_allclose(da.copy_to_host(), a, rtol=rtol, atol=rtol * 10)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    m64, i64 = kcpu.eval_stats(rm, rv, 1e-3)
    dm64, di64 = kgpu.eval_stats(cuda.to_device(rm), cuda.to_device(rv), 1e-3)
    np.testing.assert_allclose(dm64.copy_to_host(), m64, rtol=1e-12)
    np.testing.assert_allclose(di64.copy_to_host(), i64, rtol=1e-12)
    ye = kcpu.forward_eval(x, w, b, m64, i64)
    np.testing.assert_allclose(kgpu.forward_eval(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), dm64,
                                                 di64).copy_to_host(), ye, rtol=rtol, atol=rtol)
    drm, drv = cuda.to_device(rm), cuda.to_device(rv)
    kcpu.update_running(rm, rv, mean, var, 0.25, 32)
    kgpu.update_running(drm, drv, dmean, dvar, 0.25, 32)
    np.testing.assert_allclose(drm.copy_to_host(), rm, rtol=rtol)
    np.testing.assert_allclose(drv.copy_to_host(), rv, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_layer_matches_cpu_layer(rng, dtype):
    """BatchNorm2d moved to the GPU: device running statistics, values and gradients as on the CPU,
    in training and eval mode, second derivatives included."""
    from numlin._dispatch import is_device_array

    cpu, _ = _pair(3, dtype, rng=rng)
    gpu, _ = _pair(3, dtype, rng=rng)
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    assert is_device_array(gpu.running_mean) and is_device_array(gpu.running_var)
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    for mode in (True, True, False):
        cpu.train(mode)
        gpu.train(mode)
        x = (rng.standard_normal((2, 3, 4, 4)) * 3 - 1).astype(dtype)
        r = rng.standard_normal(x.shape).astype(dtype)
        outs = []
        for bn, dev in ((cpu, None), (gpu, "cuda")):
            xt, rt = nl.Tensor(x, device=dev), nl.Tensor(r, device=dev)
            with nl.GradientTape() as tape:
                tape.watch(xt)
                y = bn(xt)
                loss = nl.sum(y * rt)
            assert y.device == (dev or "cpu")
            outs.append([y.numpy()] + [g.numpy() for g in tape.gradient(loss, [xt, bn.weight, bn.bias])])
        for a, b in zip(*outs):
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * 10)
        np.testing.assert_allclose(gpu.running_mean.copy_to_host(), cpu.running_mean, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(gpu.running_var.copy_to_host(), cpu.running_var, rtol=rtol, atol=rtol)
    sd = gpu.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    np.testing.assert_allclose(sd["running_var"], cpu.running_var, rtol=rtol)
    # host running statistics with a GPU input: a clear error
    with pytest.raises(TypeError, match=r"move the module"):
        nl.nn.batch_norm(nl.Tensor(np.ones((2, 3, 2, 2)), device="cuda"), None, None, np.zeros(3), np.ones(3))


def test_cuda_second_derivative_matches_cpu(rng):
    x = rng.standard_normal((2, 2, 2, 3))
    w, b = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    r = rng.standard_normal(x.shape)
    v = [rng.standard_normal(x.shape), rng.standard_normal(2), rng.standard_normal(2)]
    _, want = _nested_grads(x, w, b, r, v, True)
    ts = [nl.Tensor(a, device="cuda") for a in (x, w, b)]
    with nl.GradientTape() as outer:
        outer.watch(ts)
        with nl.GradientTape() as inner:
            inner.watch(ts)
            y = nl.nn.batch_norm(*ts)
            loss = nl.sum(y * nl.Tensor(r, device="cuda")) + nl.sum(y * y * y) / 10
        g = inner.gradient(loss, ts)
        s = nl.add(nl.add(nl.sum(g[0] * nl.Tensor(v[0], device="cuda")), nl.sum(g[1] * nl.Tensor(v[1], device="cuda"))),
                   nl.sum(g[2] * nl.Tensor(v[2], device="cuda")))
    got = outer.gradient(s, ts)
    for a, b_ in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b_.numpy(), rtol=1e-10, atol=1e-10)
