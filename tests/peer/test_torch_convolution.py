"""PyTorch's 2-D convolution tests, ported to numlin.

Sources (torch 2.13):
- ``test/nn/test_convolution.py`` of pytorch/pytorch (revision 00131b6bd4bedfa71eb27b407292be0ba45e5ee8):
  the 2-D cases of ``TestConvolutionNN`` and ``TestConvolutionNNDeviceType`` (CPU), under their
  upstream names. The cases (shapes, strides, paddings, dilations, groups, expected values and
  errors) are upstream's; the code is written for numlin: each test compares numlin with PyTorch
  run on the same data (``gradcheck`` becomes a comparison of :func:`numlin.conv2d_backward` with
  torch autograd in float64).
- the OpInfo sample inputs ``sample_inputs_conv2d`` and ``sample_inputs_nn_unfold`` of the
  installed ``torch/testing/_internal/common_methods_invocations.py``: their case tables are
  read from that file's source (importing it needs ``expecttest``), tensors drawn as
  ``make_tensor`` does (``unfold`` is :func:`numlin.im2col`, ``fold`` :func:`numlin.col2im`).

Not ported (not expressible in numlin): 1-D and 3-D convolutions, transposed convolutions,
padding modes other than zeros, complex and half dtypes, cuDNN/MKLDNN/NNPACK backend selection
and flags, CUDA-only and large-memory tests, forward-mode AD, serialization.

Mapping of conventions (not differences): PyTorch's RuntimeError for bad shapes is numlin's
ValueError (TypeError for a wrong kind of object), numpy's convention; ``nn.Conv2d`` arguments
that numlin's layer lacks (``dilation``, ``groups``) are exercised through :func:`numlin.conv2d`.

Deliberate differences (each kept as a test of numlin's documented behaviour, marked
``DELIBERATE``): unbatched 3-D input is refused (numlin's conv2d takes 4-D x); mixed
float32/float64 operands promote (numpy's rule) where PyTorch raises; zero input channels give
the bias broadcast over an (N, K, P, Q) output where PyTorch returns an (N, 0, P, Q) tensor (so the
bias gradient is dy summed, not zero); ``nn.Conv2d`` refuses ``in_channels=0`` and bad
``stride``/``padding`` at construction rather than warning or failing at the first forward.
The double-backward tests compare second derivatives through conv2d with PyTorch's.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import numlin as nl

torch = pytest.importorskip("torch")
F = torch.nn.functional


# --------------------------------------------------------------------------- helpers
def _t(a, grad=False):
    return torch.tensor(np.ascontiguousarray(a), requires_grad=grad)


def _torch_conv(x, w, b=None, dy=None, **kw):
    """PyTorch's forward and, for ``dy``, its gradients (float64, autograd)."""
    xt, wt = _t(x, True), _t(w, True)
    bt = None if b is None else _t(b, True)
    y = F.conv2d(xt, wt, bt, **kw)
    if dy is None:
        return y.detach().numpy()
    y.backward(_t(dy))
    return (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(),
            None if bt is None else bt.grad.numpy())


def _close(got, want, tol=1e-10):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


def _check_conv(x, w, b=None, rng=None, tol=1e-10, **kw):
    """numlin's forward and conv2d_backward against PyTorch's forward and autograd (NCHW)."""
    rng = rng or np.random.default_rng(0)
    y = nl.conv2d(x, w, b, **kw)
    dy = rng.standard_normal(y.shape)
    ty, tdx, tdw, tdb = _torch_conv(x, w, b, dy, **kw)
    _close(y, ty, tol)
    dx, dw, db = nl.conv2d_backward(dy, x, w, **kw)
    _close(dx, tdx, tol)
    _close(dw, tdw, tol)
    if b is not None:
        _close(db, tdb, tol)
    return y, dx, dw, db


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


# =========================================================================== TestConvolutionNN
def test_mismatch_shape_conv2d(rng):
    x = rng.standard_normal((1, 10, 1, 28, 28))
    w = rng.standard_normal((6, 1, 5, 5))
    with pytest.raises(RuntimeError, match="Expected 3D"):
        F.conv2d(_t(x), _t(w))
    with pytest.raises(ValueError, match="4-D"):
        nl.conv2d(x, w)


def test_conv2d_discontiguous_weight():
    x = np.ones((64, 16, 16, 16))
    weight = np.arange(0, 1.0, 1 / 2.0**10).reshape(32, 16, 1, 2)[:, :, :, ::2]
    assert not weight.flags.c_contiguous
    y = nl.conv2d(x, weight, None)
    assert y.sum() == 4186112.0
    _close(y, F.conv2d(_t(x), _t(weight)).numpy())


def test_invalid_conv2d(rng):
    # kernel 3, dilation 2, stride 2 on a 4x4 input: the dilated kernel (5) does not fit
    x = np.empty((1, 1, 4, 4))
    with pytest.raises(RuntimeError):
        F.conv2d(_t(x), torch.ones(1, 1, 3, 3, dtype=torch.float64), dilation=2, stride=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        nl.conv2d(x, np.ones((1, 1, 3, 3)), dilation=2, stride=2)
    # kernel 10 on a 1x1 input
    m = nl.nn.Conv2d(3, 33, 10, bias=True, dtype=np.float64)
    with pytest.raises(ValueError, match=r"kernel \(10, 10\).*larger than the padded input \(1, 1\)"):
        m(rng.standard_normal((1, 3, 1, 1)))
    # negative and zero strides: DELIBERATE, refused when the layer is built (PyTorch: at the forward)
    for stride in (-1, 0):
        with pytest.raises(ValueError, match="stride must be >= 1"):
            nl.nn.Conv2d(3, 6, 4, stride=stride, bias=True)
        with pytest.raises(ValueError, match="stride must be >= 1"):
            nl.conv2d(rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((6, 3, 4, 4)), stride=stride)


def test_conv_invalid_groups():
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        torch.nn.Conv2d(1, 1, kernel_size=3, dilation=2, stride=2, groups=-1)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nl.conv2d(np.ones((1, 1, 9, 9)), np.ones((1, 1, 3, 3)), dilation=2, stride=2, groups=-1)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nl.conv2d(np.ones((1, 1, 9, 9)), np.ones((1, 1, 3, 3)), groups=0)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_Conv2d_module_same_padding(rng):
    # module against functional: without strides/dilation, symmetric and asymmetric padding
    x = rng.random((1, 1, 9, 20))
    m = nl.nn.Conv2d(1, 1, (5, 10), padding="same", dtype=np.float64)
    expect = nl.conv2d(x, m.weight.numpy(), m.bias.numpy(), padding="same")
    _close(m(x).numpy(), expect, 0)
    _close(expect, F.conv2d(_t(x), _t(m.weight.numpy()), _t(m.bias.numpy()), padding="same").numpy())
    # with dilation (numlin's layer has none: the functional form)
    w, b = rng.random((1, 1, 3, 4)), rng.random(1)
    _close(nl.conv2d(x, w, b, padding="same", dilation=(1, 2)),
           F.conv2d(_t(x), _t(w), _t(b), padding="same", dilation=(1, 2)).numpy())
    # construction with an invalid padding string, and 'same' with strides, raise
    with pytest.raises(ValueError, match="padding must be an int, a pair, 'valid' or 'same'"):
        nl.nn.Conv2d(3, 33, 10, padding="foo")
    for stride in (2, (1, 3), (4, 1)):
        with pytest.raises(ValueError, match="padding='same'"):
            nl.nn.Conv2d(3, 33, 10, padding="same", stride=stride)


def test_Conv2d_inconsistent_types(rng):
    inputs = rng.standard_normal((4, 1, 7, 7)).astype(np.float32)
    weights = rng.standard_normal((1, 1, 3, 3))
    with pytest.raises(RuntimeError):
        F.conv2d(torch.tensor(inputs), torch.tensor(weights))
    # DELIBERATE: numlin promotes float32 with float64 to float64 (numpy's rule, documented)
    y = nl.conv2d(inputs, weights)
    assert y.dtype == np.float64
    _close(y, F.conv2d(torch.tensor(inputs).double(), torch.tensor(weights)).numpy())
    # the same type works in both
    assert nl.conv2d(inputs, weights.astype(np.float32)).dtype == np.float32


def test_Conv2d_1x1(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 2, 1, 1))
    _check_conv(x, w)


def test_Conv2d_OneDNN():
    for group_val in (24, 48, 23, 25):
        for dilation in (1, 2):
            ifm = np.ones((1, group_val, 6, 6))
            weights = np.ones((group_val, 1, 3, 3))
            kw = dict(stride=2, padding=1, dilation=dilation, groups=group_val)
            y = nl.conv2d(ifm, weights, **kw)
            _, dw, _ = nl.conv2d_backward(np.ones(y.shape), ifm, weights, **kw)
            _, _, tdw, _ = _torch_conv(ifm, weights, None, np.ones(y.shape), **kw)
            _close(dw, tdw)


def test_Conv2d_missing_argument():
    c = nl.nn.Conv2d(3, 3, 3)
    with pytest.raises(TypeError):
        c(None)
    with pytest.raises(TypeError, match="x is None"):
        nl.conv2d(None, np.ones((3, 3, 3, 3)))


def test_Conv2d_backward_twice(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    c = nl.nn.Conv2d(3, 3, 3)
    with nl.GradientTape() as tape:
        o1 = nl.sum(c(x))
    tape.gradient(o1, c.parameters())
    with pytest.raises(RuntimeError):  # a non-persistent tape is used up (PyTorch: retain_graph)
        tape.gradient(o1, c.parameters())


def test_conv_modules_raise_error_on_incorrect_input_size():
    m = nl.nn.Conv2d(3, 8, 3, dtype=np.float64)
    for dims in (2, 5):
        with pytest.raises(ValueError, match="4-D"):
            m(np.empty((3,) * dims))


@pytest.mark.parametrize("should_raise,kw,input_size", [
    (True, {}, (1, 2, 2)),
    (False, {}, (1, 3, 3)),
    (False, {"padding": 1}, (1, 2, 2)),
])
def test_conv_shapecheck(should_raise, kw, input_size):
    m = nl.nn.Conv2d(1, 1, (3, 3), dtype=np.float64, **kw)
    x = np.zeros((3, *input_size))
    if should_raise:
        with pytest.raises(ValueError, match="larger than the padded input"):
            m(x)
    else:
        m(x)


def _grouped_against_halves(rng, C, K, groups, bias):
    """A grouped convolution equals the per-group convolutions side by side (forward, dx, dw, db)."""
    x = rng.standard_normal((2, C, 6, 6))
    w = rng.standard_normal((K, C // groups, 3, 3))
    b = rng.standard_normal(K) if bias else None
    y = nl.conv2d(x, w, b, groups=groups)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = nl.conv2d_backward(dy, x, w, groups=groups)
    cg, kg = C // groups, K // groups
    for g in range(groups):
        xs, ws, dys = x[:, g * cg:(g + 1) * cg], w[g * kg:(g + 1) * kg], dy[:, g * kg:(g + 1) * kg]
        bs = None if b is None else b[g * kg:(g + 1) * kg]
        _close(y[:, g * kg:(g + 1) * kg], nl.conv2d(xs, ws, bs))
        gx, gw, gb = nl.conv2d_backward(dys, xs, ws)
        _close(dx[:, g * cg:(g + 1) * cg], gx)
        _close(dw[g * kg:(g + 1) * kg], gw)
        _close(db[g * kg:(g + 1) * kg], gb)
    _check_conv(x, w, b, rng, groups=groups)


def test_Conv2d_groups_nobias(rng):
    _grouped_against_halves(rng, 4, 4, 2, bias=False)


def test_Conv2d_groups_nobias_v2(rng):
    _grouped_against_halves(rng, 4, 16, 2, bias=False)


@pytest.mark.parametrize("gradient", ["input", "weight"])
def test_grad_conv2d_input_and_weight(gradient, rng):
    """Upstream ``test_grad_conv2d_input`` and ``test_grad_conv2d_weight`` (run_grad_conv_test,
    dim 2): torch.nn.grad.conv2d_input/weight there, conv2d_backward here, against autograd."""
    for kern, inp_size in [(3, 6), (3, 7), (4, 9)]:
        for batch, stride, padding, chan_in, chan_out, dilation in itertools.product(
                [1, 2], [1, 2], [0, 1, 2], [2], [3], [1]):
            for has_bias in [True, False]:
                x = rng.standard_normal((batch, chan_in, inp_size, inp_size))
                w = rng.standard_normal((chan_out, chan_in, kern, kern))
                b = rng.standard_normal(chan_out) if has_bias else None
                kw = dict(stride=stride, padding=padding, dilation=dilation)
                y = nl.conv2d(x, w, b, **kw)
                dy = rng.standard_normal(y.shape)
                _, tdx, tdw, _ = _torch_conv(x, w, b, dy, **kw)
                dx, dw, _ = nl.conv2d_backward(dy, x, w, **kw)
                _close(dx if gradient == "input" else dw, tdx if gradient == "input" else tdw)
                # and torch.nn.grad's functional forms agree
                if gradient == "input":
                    _close(dx, torch.nn.grad.conv2d_input(x.shape, _t(w), _t(dy), **kw).numpy())
                else:
                    _close(dw, torch.nn.grad.conv2d_weight(_t(x), w.shape, _t(dy), **kw).numpy())


def test_functional_grad_conv(rng):
    # the 2-D part: dilation 2
    x = rng.standard_normal((1, 1, 5, 5))
    w = rng.standard_normal((1, 1, 3, 3))
    _check_conv(x, w, dilation=2)


def test_functional_grad_conv2d(rng):
    BATCH_SIZE, IN_CH, OUT_CH, SPATIAL = 4, 8, 16, 32
    for stride, kernel_size, groups, dilation in itertools.product([1, 2], [1, 3, 5], [1, 2, 4], [1, 2]):
        padding = kernel_size // 2
        x = rng.uniform(-8.0, 8.0, (BATCH_SIZE, IN_CH, SPATIAL, SPATIAL))
        w = rng.uniform(-4.0, 4.0, (OUT_CH, IN_CH // groups, kernel_size, kernel_size))
        _check_conv(x, w, None, rng, 1e-9, stride=stride, padding=padding, dilation=dilation, groups=groups)


def test_permute_conv2d_issue_120211():
    """An NHWC image permuted to NCHW (non-contiguous), depthwise (1, 2r+1) kernels. Upstream
    runs r = 0..127 on a 1024x1024 image; here a few radii on 256x256 (time)."""
    gen = np.random.default_rng(0)
    for radius in (0, 1, 17, 127):
        image = gen.random((1, 256, 256, 3)).transpose(0, 3, 1, 2)
        kernel_x = np.zeros((3, 1, 1, radius * 2 + 1))
        y = nl.conv2d(image, kernel_x, groups=image.shape[-3])
        assert y.shape == (1, 3, 256, 256 - 2 * radius)
        assert not y.any()


# =========================================================================== TestConvolutionNNDeviceType
def _double_back(rng, kern, stride, padding, chan_in, chan_out, batch_size, inp_size, dilation, groups=1):
    """run_conv_double_back_test: first derivatives as PyTorch, then the double backward
    (upstream's ``gradgradcheck``, whose inputs are x, w, b and the output gradient): the
    gradient of ``<dx, vx> + <dw, vw> + <db, vb>`` with respect to x, w and dy, against PyTorch's."""
    x = rng.standard_normal((batch_size, chan_in, inp_size, inp_size))
    w = rng.standard_normal((chan_out, chan_in // groups, kern, kern))
    b = rng.standard_normal(chan_out)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y, *_ = _check_conv(x, w, b, rng, **kw)
    dy = rng.standard_normal(y.shape)
    vx, vw, vb = rng.standard_normal(x.shape), rng.standard_normal(w.shape), rng.standard_normal(b.shape)
    xv, wv, bv, dyv = nl.Variable(x), nl.Variable(w), nl.Variable(b), nl.Variable(dy)
    with nl.GradientTape(persistent=True) as outer:
        with nl.GradientTape() as inner:
            out = nl.sum(nl.conv2d(xv, wv, bv, **kw) * dyv)
        gx, gw, gb = inner.gradient(out, [xv, wv, bv])
        s = nl.sum(gx * vx) + nl.sum(gw * vw) + nl.sum(gb * vb)
    got = outer.gradient(s, [xv, wv, dyv])

    tx, tw, tb, tdy = (_t(a, True) for a in (x, w, b, dy))
    tg = torch.autograd.grad((F.conv2d(tx, tw, tb, **kw) * tdy).sum(), [tx, tw, tb], create_graph=True)
    ts = sum((g * _t(v)).sum() for g, v in zip(tg, (vx, vw, vb)))
    want = torch.autograd.grad(ts, [tx, tw, tdy])
    for g, t in zip(got, want):
        _close(g, t.numpy(), 1e-10)


def test_conv_double_backward_no_bias(rng):
    _double_back(rng, 3, 2, 1, 2, 4, 2, 5, 1)


def test_conv_double_backward_groups(rng):
    _double_back(rng, 3, 1, 2, 2 * 2, 4 * 2, 2, 6, 1, groups=2)


def test_conv_double_backward_stride(rng):
    for kern, inp_size, dilations in [(3, 5, [1, 2]), (3, 7, [1])]:
        for stride, padding, chan_in, chan_out, dilation in itertools.product([2], [0, 1], [1], [2], dilations):
            _double_back(rng, kern, stride, padding, chan_in, chan_out, 2, inp_size, dilation)


def test_conv2d_same_padding(rng):
    # without strides/dilation: an odd total padding puts the extra row at the end
    x = rng.random((1, 1, 10, 11))
    y = rng.random((1, 1, 4, 5))
    expect = nl.conv2d(x, y, padding=(2, 2))[..., 1:, :]
    actual = nl.conv2d(x, y, padding="same")
    _close(actual, expect)
    _close(actual, F.conv2d(_t(x), _t(y), padding="same").numpy())
    # with dilation
    y = rng.random((1, 1, 3, 4))
    _close(nl.conv2d(x, y, padding="same", dilation=2), nl.conv2d(x, y, padding=(2, 3), dilation=2))
    # dilation with asymmetric padding
    y = rng.random((1, 1, 4, 4))
    _close(nl.conv2d(x, y, padding="same", dilation=3), nl.conv2d(x, y, padding=5, dilation=3)[..., 1:, 1:])
    _close(nl.conv2d(x, y, padding="same", dilation=3), F.conv2d(_t(x), _t(y), padding="same", dilation=3).numpy())


def test_conv2d_valid_padding(rng):
    x = rng.random((1, 1, 1, 10))
    y = rng.random((1, 1, 1, 4))
    _close(nl.conv2d(x, y, padding="valid"), nl.conv2d(x, y), 0)


def _abs_sum_grads(x, y, **kw):
    """Gradients of ``|sum(conv2d(x, y))|``: dy is the sign of the sum everywhere."""
    z = nl.conv2d(x, y, **kw)
    dz = np.full(z.shape, np.sign(z.sum()))
    return z, nl.conv2d_backward(dz, x, y, **kw)


def test_conv2d_same_padding_backward(rng):
    x = rng.random((1, 1, 10, 11))
    y = rng.random((1, 1, 4, 5))
    # symmetric padding
    _, (gx_expect, gy_expect, _) = _abs_sum_grads(x, y, padding=(3, 4), dilation=2)
    _, (gx, gy, _) = _abs_sum_grads(x, y, padding="same", dilation=2)
    _close(gx, gx_expect)
    _close(gy, gy_expect)
    # asymmetric padding: 'same' is padding 2 with the first row and column of the output dropped
    y = rng.random((1, 1, 4, 4))
    z2 = nl.conv2d(x, y, padding=2)
    dz2 = np.zeros(z2.shape)
    dz2[..., 1:, 1:] = np.sign(z2[..., 1:, 1:].sum())
    gx_expect, gy_expect, _ = nl.conv2d_backward(dz2, x, y, padding=2)
    _, (gx, gy, _) = _abs_sum_grads(x, y, padding="same")
    _close(gx, gx_expect)
    _close(gy, gy_expect)
    xt, yt = _t(x, True), _t(y, True)
    F.conv2d(xt, yt, padding="same").sum().abs().backward()
    _close(gx, xt.grad.numpy())
    _close(gy, yt.grad.numpy())


def test_conv2d_valid_padding_backward(rng):
    x = rng.random((1, 1, 1, 10))
    y = rng.random((1, 1, 1, 4))
    _, (gx_expect, gy_expect, _) = _abs_sum_grads(x, y, padding=0)
    _, (gx, gy, _) = _abs_sum_grads(x, y, padding="valid")
    _close(gx, gx_expect, 0)
    _close(gy, gy_expect, 0)


@pytest.mark.parametrize("mode", ["valid", "same"])
def test_conv2d_vs_scipy(mode, rng):
    signal = pytest.importorskip("scipy.signal")
    t = rng.uniform(-9, 9, (1, 5, 10))
    for weight in (rng.uniform(-9, 9, (1, 1, 2, 4)), rng.uniform(-9, 9, (1, 1, 3, 5))):
        expected = signal.convolve2d(t[0], weight[0, 0], mode=mode)
        x = t[None]
        kwargs = {"padding": mode}
        if mode == "same":  # PyTorch's 'same' differs from SciPy's: pad by hand
            ph, pw = weight.shape[2] // 2, weight.shape[3] // 2
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            kwargs.pop("padding")
        actual = nl.conv2d(x, weight[..., ::-1, ::-1], **kwargs)[0]  # SciPy flips the second input
        if mode == "same":
            actual = actual[:, :5, :10]
        _close(actual[0], expected, 1e-12)


@pytest.mark.parametrize("input_shape,groups,dilated,name", [
    ((2, 6, 7, 8), 3, False, "slow2d"),
    ((2, 6, 7, 8), 3, True, "slow2d_dilated"),
    ((0, 6, 7, 8), 3, False, "empty_batch2d"),
    ((2, 0, 7, 8), 3, False, "empty_channel2d"),
    ((0, 0, 7, 8), 3, False, "empty_batch_channel2d"),
])
@pytest.mark.parametrize("has_bias", [False, True])
@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("contiguous", [False, True])
def test_conv_backend(input_shape, groups, dilated, name, has_bias, strided, contiguous, rng):
    """Upstream's non-transposed 2-D backends (strided layout): forward and gradients against
    PyTorch (backend selection itself is not expressible)."""
    C_in, C_out, kernel_size = input_shape[1], 12, 3
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal((C_out, C_in // groups, kernel_size, kernel_size))
    b = rng.standard_normal(C_out) if has_bias else None

    def noncontig(a):
        return None if a is None else np.repeat(a, 2, axis=-1)[..., ::2]

    if not contiguous:
        x, w, b = noncontig(x), noncontig(w), noncontig(b)
    kw = dict(stride=2 if strided else 1, dilation=2 if dilated else 1, groups=groups)
    if C_in == 0:  # DELIBERATE: the bias broadcast over (N, K, P, Q); PyTorch returns (N, 0, P, Q)
        y = nl.conv2d(x, w, b, **kw)
        assert tuple(F.conv2d(_t(x), _t(w), None if b is None else _t(b), **kw).shape[:2]) == (input_shape[0], 0)
        assert y.shape[:2] == (input_shape[0], C_out)
        np.testing.assert_array_equal(y, np.broadcast_to((b if has_bias else np.zeros(C_out))[:, None, None],
                                                         y.shape))
        dy = noncontig(rng.standard_normal(y.shape)) if not contiguous else rng.standard_normal(y.shape)
        dx, dw, db = nl.conv2d_backward(dy, x, w, **kw)
        assert dx.shape == x.shape and dw.shape == w.shape
        _close(db, dy.sum(axis=(0, 2, 3)))
        return
    _check_conv(x, w, b, rng, **kw)


def test_conv_empty_channel(rng):
    # nn.Conv2d(0, 33, 3, stride=2): DELIBERATE, numlin's layer refuses in_channels=0 (PyTorch
    # warns); the functional form computes it (bias broadcast, see test_conv_backend)
    with pytest.raises(ValueError, match="in_channels"):
        nl.nn.Conv2d(0, 33, 3, stride=2)
    w, b = rng.standard_normal((33, 0, 3, 3)), rng.standard_normal(33)
    x = rng.standard_normal((2, 0, 50, 100))
    y = nl.conv2d(x, w, b, stride=2)
    assert y.shape == (2, 33, 24, 49)
    dx, dw, db = nl.conv2d_backward(np.ones(y.shape), x, w, stride=2)
    assert dx.shape == x.shape and dw.shape == w.shape
    _close(db, np.full(33, 24 * 49 * 2.0))  # DELIBERATE: PyTorch's bias gradient is 0 (empty output)
    # a channel mismatch is an error, as PyTorch's "Given groups=1, weight ..."
    with pytest.raises(RuntimeError, match="Given groups=1, weight"):
        F.conv2d(torch.randn(2, 1, 40, 0), torch.randn(33, 0, 3, 3))
    with pytest.raises(ValueError, match="input channels"):
        nl.conv2d(rng.standard_normal((2, 1, 40, 0)), w)


def test_group_conv_empty(rng):
    w, b = rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)
    inp = np.zeros((0, 4, 4, 4))
    kw = dict(stride=2, padding=1, groups=4)
    y = nl.conv2d(inp, w, b, **kw)
    ty, tdx, tdw, tdb = _torch_conv(inp, w, b, np.zeros((0, 4, 2, 2)), **kw)
    assert y.shape == ty.shape
    dx, dw, db = nl.conv2d_backward(np.zeros(y.shape), inp, w, **kw)
    assert dx.shape == inp.shape
    np.testing.assert_array_equal(dw, tdw)
    np.testing.assert_array_equal(db, tdb)


def test_conv_noncontig_weights(rng):
    nc = 3
    for grouped in (False, True):
        groups = 3 if grouped else 1
        w = np.broadcast_to(rng.standard_normal((3, 3)), (nc, nc // groups, 3, 3))  # zero strides
        x = rng.standard_normal((1, nc, 5, 5))
        _check_conv(x, w, None, rng, groups=groups)


def test_conv_noncontig_weights_and_bias(rng):
    for bias in [True, False]:
        input_nc = rng.standard_normal((1, 3, 224, 224, 2))[:, :, :, :, 1]
        weight_nc = rng.standard_normal((64, 3, 7, 7, 2))[:, :, :, :, 1]
        bias_nc = rng.standard_normal((64, 2))[:, 1] if bias else None
        kw = dict(stride=2, padding=3)
        out1 = nl.conv2d(input_nc, weight_nc, bias_nc, **kw)
        out2 = nl.conv2d(np.ascontiguousarray(input_nc), np.ascontiguousarray(weight_nc),
                         None if bias_nc is None else np.ascontiguousarray(bias_nc), **kw)
        np.testing.assert_array_equal(out1, out2)


def test_Conv2d_naive_groups(rng):
    _grouped_against_halves(rng, 4, 4, 2, bias=True)


def test_Conv2d_backward_depthwise(rng):
    x = rng.standard_normal((2, 2, 4, 20))
    weight = rng.standard_normal((2, 1, 3, 5))
    _check_conv(x, weight, None, rng, stride=(1, 10), groups=2)


@pytest.mark.parametrize("n,c,h,w,out_channels,kernel_size,dilation,groups", [
    (2, 8, 4, 4, 4, 3, 1, 1),
    (2, 8, 4, 4, 8, 3, 1, 8),
    (2, 1, 10, 10, 8, 3, 1, 1),
    (1, 16, 56, 56, 16, 1, 1, 1),
    (1, 16, 56, 56, 16, 1, 1, 16),
    (2, 8, 11, 13, 16, 3, 2, 1),
    (2, 16, 11, 13, 32, 3, 2, 16),
])
def test_conv_thnn_nhwc(n, c, h, w, out_channels, kernel_size, dilation, groups, rng):
    """channels_last there, numlin's NHWC layout here (small integers: exact in float64)."""
    x = rng.integers(-3, 3, (n, c, h, w)).astype(np.float64)
    wt = rng.integers(-3, 3, (out_channels, c // groups, kernel_size, kernel_size)).astype(np.float64)
    b = rng.integers(-3, 3, out_channels).astype(np.float64)
    kw = dict(dilation=dilation, groups=groups)
    ref_y, ref_dx, ref_dw, ref_db = _torch_conv(x, wt, b, None, **kw), None, None, None
    grad = rng.integers(-3, 3, ref_y.shape).astype(np.float64)
    ref_y, ref_dx, ref_dw, ref_db = _torch_conv(x, wt, b, grad, **kw)
    xh, wh, gh = x.transpose(0, 2, 3, 1), wt.transpose(2, 3, 1, 0), grad.transpose(0, 2, 3, 1)
    y = nl.conv2d(xh, wh, b, layout="NHWC", **kw)
    dx, dw, db = nl.conv2d_backward(gh, xh, wh, layout="NHWC", **kw)
    np.testing.assert_array_equal(y, ref_y.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(dx, ref_dx.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(dw, ref_dw.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(db, ref_db)


def test_conv2d_no_grad(rng):
    for batch in [1, 2, 3]:
        for groups in [1, 2, 4]:
            x = rng.random((batch, groups, 8, 8)).astype(np.float32)
            w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
            b = rng.standard_normal(8).astype(np.float32)
            output_ng = nl.conv2d(x, w, b, groups=groups)  # arrays: no tape
            output = nl.conv2d(nl.Variable(x), nl.Variable(w), nl.Variable(b), groups=groups).numpy()
            np.testing.assert_allclose(output, output_ng, rtol=1e-2, atol=1e-5)


# =========================================================================== OpInfo sample inputs
def _upstream_literals(fn: str) -> dict:
    """The literal assignments (``cases = (...)``, ``shapes = (...)``...) in the body of ``fn`` of
    the installed ``common_methods_invocations.py``, read from its source: importing that module
    needs ``expecttest`` and more, which are not numlin's test dependencies."""
    import ast
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("torch")
    src = pathlib.Path(spec.origin).parent / "testing" / "_internal" / "common_methods_invocations.py"
    tree = ast.parse(src.read_text())
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn)
    out = {}
    for node in func.body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def _make(shape, gen):
    """make_tensor's default range for floats: uniform in [-9, 9)."""
    return gen.uniform(-9, 9, shape)


def test_opinfo_conv2d_samples():
    """Every ``sample_inputs_conv2d`` sample: batched ones as PyTorch (forward and gradients);
    unbatched (3-D) ones are refused (DELIBERATE: numlin's conv2d takes 4-D x)."""
    gen = np.random.default_rng(1)
    batched = unbatched = 0
    for input_shape, weight, bias, kwargs in _upstream_literals("sample_inputs_conv2d")["cases"]:
        w, b = _make(weight, gen), None if bias is None else _make(bias, gen)
        _check_conv(_make(input_shape, gen), w, b, gen, 1e-9, **kwargs)  # batched
        batched += 1
        with pytest.raises(ValueError, match="4-D"):  # unbatched
            nl.conv2d(_make(input_shape[1:], gen), w, b, **kwargs)
        unbatched += 1
    assert batched == unbatched == 15


def test_opinfo_nn_unfold_samples():
    """Every ``sample_inputs_nn_unfold`` sample: im2col is F.unfold, col2im is F.fold."""
    lit = _upstream_literals("sample_inputs_nn_unfold")
    gen = np.random.default_rng(2)
    cases = list(itertools.product(lit["shapes"], lit["kernel_sizes"], lit["dilations"], lit["paddings"],
                                   lit["strides"]))
    cases.append(((1, 1, 5, 5), (3, 3), 1, 0, 1))  # "with default args"
    for shape, kernel_size, dilation, padding, stride in cases:
        x = _make(shape, gen)
        kw = dict(dilation=dilation, padding=padding, stride=stride)
        cols = nl.im2col(x, kernel_size, **kw)
        want = F.unfold(_t(x), kernel_size, **kw).numpy()
        np.testing.assert_array_equal(cols, want)
        back = nl.col2im(cols, x.shape, kernel_size, **kw)
        _close(back, F.fold(torch.tensor(want), x.shape[2:], kernel_size, **kw).numpy(), 1e-12)
    assert len(cases) == 2 * 3 * 3 * 3 * 3 + 1
