"""Adversarial inputs to the convolution front-ends and layers (issue 16): wrong kinds of object,
dtypes, shapes, bools for ints, negative/zero/huge sizes, NaN geometry. Each is the right
exception naming the argument; random geometries either match PyTorch or are refused as it
refuses them; inputs are never written."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numlin as nl

torch = pytest.importorskip("torch")

X = np.ones((1, 3, 5, 5))
W = np.ones((2, 3, 3, 3))
DY = np.ones((1, 2, 3, 3))
COLS = np.ones((1, 27, 9))
NAN = float("nan")


def _geometry_cases(call):
    """(kwargs, exception, message) for the geometry arguments every front-end shares."""
    return [
        ({"stride": True}, TypeError, "stride"),
        ({"stride": np.bool_(True)}, TypeError, "stride"),
        ({"stride": 1.0}, TypeError, "stride"),
        ({"stride": NAN}, TypeError, "stride"),
        ({"stride": None}, TypeError, "stride"),
        ({"stride": "1"}, TypeError, "stride"),
        ({"stride": (1,)}, TypeError, "stride"),
        ({"stride": (1, 1, 1)}, TypeError, "stride"),
        ({"stride": (1, NAN)}, TypeError, "stride"),
        ({"stride": 0}, ValueError, "stride"),
        ({"stride": (1, -2)}, ValueError, "stride"),
        ({"stride": 2**64}, ValueError, "stride"),
        ({"padding": -1}, ValueError, "padding"),
        ({"padding": (0, -1)}, ValueError, "padding"),
        ({"padding": 1.5}, TypeError, "padding"),
        ({"padding": None}, TypeError, "padding"),
        ({"padding": False}, TypeError, "padding"),
        ({"padding": "SAME"}, ValueError, "padding"),
        ({"padding": 2**63}, ValueError, "padding"),
        ({"dilation": 0}, ValueError, "dilation"),
        ({"dilation": NAN}, TypeError, "dilation"),
        ({"dilation": True}, TypeError, "dilation"),
        ({"dilation": np.uint64(2**63)}, ValueError, "dilation"),
        ({"layout": "nchw"}, ValueError, "layout"),
        ({"layout": None}, ValueError, "layout"),
    ]


CONV_CALLS = {
    "conv2d": lambda **kw: nl.conv2d(X, W, **kw),
    "conv2d_backward": lambda **kw: nl.conv2d_backward(DY, X, W, **kw),
    "im2col": lambda **kw: nl.im2col(X, 3, **kw),
    "col2im": lambda **kw: nl.col2im(COLS, (1, 3, 5, 5), 3, **kw),
}


@pytest.mark.parametrize("op", list(CONV_CALLS))
@pytest.mark.parametrize("kw,exc,match", _geometry_cases(None), ids=lambda v: repr(v)[:30])
def test_geometry_arguments(op, kw, exc, match):
    with pytest.raises(exc, match=f"{op}: {match}"):
        CONV_CALLS[op](**kw)


@pytest.mark.parametrize("call,exc,match", [
    # conv2d
    (lambda: nl.conv2d("abc", W), TypeError, "conv2d: x"),
    (lambda: nl.conv2d(X, {"a": 1}), TypeError, "conv2d: w"),
    (lambda: nl.conv2d(X.astype(np.int32), W), TypeError, "conv2d: x has dtype int32"),
    (lambda: nl.conv2d(X, W.astype(bool)), TypeError, "conv2d: w has dtype bool"),
    (lambda: nl.conv2d(X, W.astype(np.complex64)), TypeError, "conv2d: w has dtype complex64"),
    (lambda: nl.conv2d(X.astype(np.float16), W), TypeError, "conv2d: x has dtype float16"),
    (lambda: nl.conv2d(X, W, "b"), TypeError, "conv2d: bias"),
    (lambda: nl.conv2d(X, W, np.ones(3)), ValueError, "conv2d: bias must have shape"),
    (lambda: nl.conv2d(X, W, np.ones((2, 1))), ValueError, "conv2d: bias must have shape"),
    (lambda: nl.conv2d(X, W, np.ones(2, np.int64)), TypeError, "conv2d: bias has dtype int64"),
    (lambda: nl.conv2d(X[0], W), ValueError, "conv2d: x must be 4-D"),
    (lambda: nl.conv2d(X[None], W), ValueError, "conv2d: x must be 4-D"),
    (lambda: nl.conv2d(X, W[0]), ValueError, "conv2d: w must be 4-D"),
    (lambda: nl.conv2d(np.float64(1.0), W), ValueError, "conv2d: x must be 4-D"),
    (lambda: nl.conv2d(X, np.ones((2, 3, 0, 3))), ValueError, "conv2d: kernel_size"),
    (lambda: nl.conv2d(X, np.ones((2, 3, 9, 9))), ValueError, "larger than the padded input"),
    (lambda: nl.conv2d(X, W, groups=True), TypeError, "conv2d: groups"),
    (lambda: nl.conv2d(X, W, groups=1.0), TypeError, "conv2d: groups"),
    (lambda: nl.conv2d(X, W, groups=NAN), TypeError, "conv2d: groups"),
    (lambda: nl.conv2d(X, W, groups=0), ValueError, "conv2d: groups"),
    (lambda: nl.conv2d(X, W, groups=-3), ValueError, "conv2d: groups"),
    (lambda: nl.conv2d(X, W, groups=2**64), ValueError, "conv2d: groups"),
    (lambda: nl.conv2d(X, W, groups=3), ValueError, "conv2d: w of shape .* expects 9 input channels"),
    (lambda: nl.conv2d(np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3)), groups=2), ValueError, "does not divide the 3"),
    (lambda: nl.conv2d(X, W, padding="same", stride=(1, 2)), ValueError, "needs stride 1"),
    # conv2d_backward
    (lambda: nl.conv2d_backward(DY[:, :1], X, W), ValueError, "conv2d_backward: dy has shape"),
    (lambda: nl.conv2d_backward(DY.astype(np.int8), X, W), TypeError, "conv2d_backward: dy has dtype int8"),
    (lambda: nl.conv2d_backward("dy", X, W), TypeError, "conv2d_backward: dy"),
    (lambda: nl.conv2d_backward(None, X, W), TypeError, "conv2d_backward: dy is None"),
    (lambda: nl.conv2d_backward(DY, X, W, groups=2), ValueError, "conv2d_backward: "),
    # im2col
    (lambda: nl.im2col(X, 0), ValueError, "im2col: kernel_size"),
    (lambda: nl.im2col(X, None), TypeError, "im2col: kernel_size"),
    (lambda: nl.im2col(X, True), TypeError, "im2col: kernel_size"),
    (lambda: nl.im2col(X, (3, 3.0)), TypeError, "im2col: kernel_size"),
    (lambda: nl.im2col(X, 9), ValueError, "larger than the padded input"),
    (lambda: nl.im2col(X[0], 3), ValueError, "im2col: x must be 4-D"),
    (lambda: nl.im2col(X.astype(np.uint8), 3), TypeError, "im2col: x has dtype uint8"),
    (lambda: nl.im2col([[["a"]]], 3), TypeError, "im2col: x"),
    # col2im
    (lambda: nl.col2im(COLS, (1, 3, 5, 5), 2), ValueError, "col2im: cols has shape"),
    (lambda: nl.col2im(COLS[0], (1, 3, 5, 5), 3), ValueError, "col2im: cols has shape"),
    (lambda: nl.col2im(COLS, (1, 3, 5, 5.5), 3), TypeError, "col2im: input_shape"),
    (lambda: nl.col2im(COLS, (1, 3, 5, True), 3), TypeError, "col2im: input_shape"),
    (lambda: nl.col2im(COLS, (1, -3, 5, 5), 3), ValueError, "col2im: input_shape"),
    (lambda: nl.col2im(COLS, np.array([1, 3, 5, 5.0]), 3), TypeError, "col2im: input_shape"),
    (lambda: nl.col2im(COLS, np.ones((2, 2), int), 3), TypeError, "col2im: input_shape"),
    (lambda: nl.col2im(COLS.astype(np.int64), (1, 3, 5, 5), 3), TypeError, "col2im: cols has dtype int64"),
    (lambda: nl.col2im(COLS, (1, 3, 5, 5), 3, padding="same", stride=2), ValueError, "stride 1"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nl.nn.Conv2d(3, 2, 3, stride=NAN), TypeError, "Conv2d: stride"),
    (lambda: nl.nn.Conv2d(3, 2, 3, padding=(1, NAN)), TypeError, "Conv2d: padding"),
    (lambda: nl.nn.Conv2d(3, 2, (3, True)), TypeError, "Conv2d: kernel_size"),
    (lambda: nl.nn.Conv2d(3, 2, -1), ValueError, "Conv2d: kernel_size"),
    (lambda: nl.nn.Conv2d(True, 2, 3), TypeError, "Conv2d: in_channels"),
    (lambda: nl.nn.Conv2d(3, -2, 3), ValueError, "Conv2d: out_channels"),
    (lambda: nl.nn.MaxPool2d(NAN), TypeError, "MaxPool2d: kernel_size"),
    (lambda: nl.nn.MaxPool2d(2, padding=-1), ValueError, "MaxPool2d: padding"),
    (lambda: nl.nn.MaxPool2d(2, stride=2**63), ValueError, "MaxPool2d: stride"),
    (lambda: nl.nn.AvgPool2d(None), TypeError, "AvgPool2d: kernel_size"),
    (lambda: nl.nn.AvgPool2d((2, 2, 2)), TypeError, "AvgPool2d: kernel_size"),
])
def test_bad_layer_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("kw,exc,match", [
    ({"kernel_size": 2**63}, ValueError, "kernel_size must be at most"),
    ({"kernel_size": 2, "stride": np.uint64(2**63)}, ValueError, "stride must be at most"),
    ({"kernel_size": 2, "stride": 0}, ValueError, "stride"),
    ({"kernel_size": 2, "padding": True}, TypeError, "padding"),
    ({"kernel_size": NAN}, TypeError, "kernel_size"),
    ({"kernel_size": 2, "padding": 2}, ValueError, "padding .* at most half"),
])
def test_functional_pool_arguments(pool, kw, exc, match):
    with pytest.raises(exc, match=f"{pool}: {match}"):
        getattr(nl.nn, pool)(nl.Tensor(np.ones((1, 1, 4, 4))), **kw)


def test_layers_refuse_bad_inputs_at_forward():
    conv = nl.nn.Conv2d(3, 2, 3, dtype=np.float64)
    with pytest.raises(ValueError, match="input channels"):
        conv(np.ones((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="4-D"):
        conv(np.ones((3, 5, 5)))
    with pytest.raises(TypeError):
        conv(np.ones((1, 3, 5, 5), np.int32).astype(object))
    pool = nl.nn.MaxPool2d(2)
    with pytest.raises(ValueError, match="4-D"):
        pool(np.ones((3, 5, 5)))


SMALL = st.integers(-1, 4)


def _torch_grads(x, w, dy, kw):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, **kw)
    y.backward(torch.tensor(np.ascontiguousarray(dy)))
    return y, xt.grad.numpy(), wt.grad.numpy(), None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(N=st.integers(0, 2), C=st.integers(1, 3), H=st.integers(0, 6), W=st.integers(1, 6), K=st.integers(1, 3),
       R=st.integers(1, 4), S=st.integers(1, 4), sh=SMALL, sw=SMALL, ph=SMALL, pw=SMALL, dh=SMALL, dw=SMALL,
       layout=st.sampled_from(["NCHW", "NHWC"]), depthwise=st.booleans())
def test_random_geometry_matches_pytorch_or_is_refused(N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, layout,
                                                       depthwise):
    """Whatever PyTorch computes numlin computes alike (forward and gradients, both layouts,
    dense and depthwise); what PyTorch refuses (RuntimeError) numlin refuses with a ValueError,
    and numlin also refuses a stride or dilation below 1 or a negative padding where PyTorch
    skips its checks (an empty batch). Inputs stay unchanged. (This found the implicit GEMM's
    wrong values and out-of-bounds writes for padding wider than the kernel.)"""
    gen = np.random.default_rng(N + 7 * C + 31 * H)
    groups = C if depthwise else 1
    K = K * C if depthwise else K
    x = gen.standard_normal((N, C, H, W))
    w = gen.standard_normal((K, C // groups, R, S))
    kw = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    try:
        with torch.no_grad():
            want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), **kw).numpy()
    except RuntimeError:
        with pytest.raises(ValueError):
            nl.conv2d(x, w, **kw)
        return
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:  # PyTorch computed an empty batch unchecked
        with pytest.raises(ValueError, match="stride|dilation|padding"):
            nl.conv2d(x, w, **kw)
        return
    xl = x if layout == "NCHW" else x.transpose(0, 2, 3, 1).copy()
    wl = w if layout == "NCHW" else w.transpose(2, 3, 1, 0).copy()
    x0, w0 = xl.copy(), wl.copy()
    y = nl.conv2d(xl, wl, layout=layout, **kw)
    got = y if layout == "NCHW" else y.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    dy = gen.standard_normal(y.shape)
    dx, dwt, db = nl.conv2d_backward(dy, xl, wl, layout=layout, **kw)
    assert dx.shape == xl.shape and dwt.shape == wl.shape and db.shape == (K,)
    if N:
        _, tdx, tdw, _ = _torch_grads(x, w, dy if layout == "NCHW" else dy.transpose(0, 3, 1, 2), kw)
        np.testing.assert_allclose(dx if layout == "NCHW" else dx.transpose(0, 3, 1, 2), tdx, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dwt if layout == "NCHW" else dwt.transpose(3, 2, 0, 1), tdw, rtol=1e-9,
                                   atol=1e-9)
    np.testing.assert_array_equal(xl, x0)
    np.testing.assert_array_equal(wl, w0)
