"""nl.conv2d / conv2d_backward / im2col / col2im on device arrays (simulator here, real sizes on a GPU)."""
from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import numlin as nl
from numlin.nn import conv as conv_mod
from tests.conftest import HAS_GPU
from tests.reference import assert_equal_non_finite, conv2d_ref

pytest.importorskip("torch")

# (N, C, H, W, K, R, S, stride, padding, dilation, groups); the simulator runs each GPU thread in Python
SMALL = [(2, 3, 5, 4, 4, 3, 3, 1, 1, 1, 1), (1, 4, 5, 6, 4, 3, 2, 2, (1, 2), (1, 2), 2),
         (1, 2, 3, 3, 2, 1, 1, 1, 0, 1, 1), (1, 2, 4, 5, 3, 2, 2, 1, "same", 1, 1)]
REAL = [(8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1), (4, 32, 30, 31, 48, 3, 3, 2, 1, 1, 2), (2, 32, 17, 17, 32, 5, 5, 1, 2, 1, 32),
        (4, 64, 14, 14, 128, 1, 1, 1, 0, 1, 1)]
CONFIGS = REAL if HAS_GPU else SMALL


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_device_conv_forward_backward(rng, layout, cfg):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    xs = (N, C, H, W) if layout == "NCHW" else (N, H, W, C)
    ws = (K, C // groups, R, S) if layout == "NCHW" else (R, S, C // groups, K)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(K)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), **kw)
    assert type(y).__module__.startswith("numba.cuda")
    dy = rng.standard_normal(tuple(y.shape))
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    np.testing.assert_allclose(y.copy_to_host(), ref["y"], rtol=1e-10, atol=1e-10)
    dx, dw, db = nl.conv2d_backward(cuda.to_device(dy), cuda.to_device(x), cuda.to_device(w), **kw)
    np.testing.assert_allclose(dx.copy_to_host(), ref["dx"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw.copy_to_host(), ref["dw"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(db.copy_to_host(), ref["db"], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_device_im2col_matches_host(rng, layout):
    shape = (2, 3, 5, 4) if layout == "NCHW" else (2, 5, 4, 3)
    x = rng.standard_normal(shape)
    host = nl.im2col(x, 3, padding=1, stride=(1, 2), layout=layout)
    dev = nl.im2col(cuda.to_device(x), 3, padding=1, stride=(1, 2), layout=layout)
    np.testing.assert_array_equal(dev.copy_to_host(), host)
    c = rng.standard_normal(host.shape)
    back = nl.col2im(cuda.to_device(np.ascontiguousarray(c)), shape, 3, padding=1, stride=(1, 2), layout=layout)
    np.testing.assert_allclose(back.copy_to_host(), nl.col2im(c, shape, 3, padding=1, stride=(1, 2), layout=layout),
                               rtol=1e-14, atol=1e-14)


def test_device_float32(rng):
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.copy_to_host(), conv2d_ref(x, w, padding=1)["y"], rtol=1e-5, atol=1e-5)


# NCHW on the device: the implicit GEMM (columns gathered from x inside the GEMM kernel) for the
# forward pass and the filter gradient, and the stride-1 input gradient as a convolution of dy.
# Shapes chosen for its edge cases: C*R*S over
# one 16-deep slice with a partial last one, P*Q over one 128-pixel tile, K over 64 (128-row
# tiles), dilation, asymmetric "same" padding, groups, padding wider than the dilated kernel
# (dx's convolution then crops), stride 2 (dx falls back to col2im), 1-row outputs.
IMPLICIT = [  # (N, C, H, W, K, R, S, stride, padding, dilation, groups, dx by the implicit path)
    (1, 3, 6, 7, 5, 3, 3, 1, "same", 2, 1, True),
    (2, 4, 5, 5, 4, 3, 3, 1, 3, 1, 2, True),
    (1, 2, 13, 12, 3, 2, 2, 1, "same", 1, 1, True),
    (1, 1, 3, 9, 66, 1, 3, 1, 0, 1, 1, True),
    (1, 2, 7, 6, 2, 3, 2, 2, (1, 0), (1, 2), 1, False),
    (2, 2, 1, 5, 2, 1, 2, 1, "valid", 1, 2, True),
]


@pytest.mark.parametrize("cfg", IMPLICIT)
def test_device_implicit_gemm_conv(rng, monkeypatch, configure, cfg):
    from numlin.kernels.cuda import gemm
    from numlin.kernels.cuda.conv import im2col

    N, C, H, W, K, R, S, stride, padding, dilation, groups, dx_implicit = cfg
    configure(conv_depthwise=False)  # the last case (groups == C) too
    calls = []
    gather = gemm.gather_into
    monkeypatch.setattr(gemm, "gather_into", lambda *a, **k: calls.append(a[-1].shape) or gather(*a, **k))
    explicit = []
    col2im, unfold = im2col.col2im_into, im2col.im2col_into
    monkeypatch.setattr(im2col, "col2im_into", lambda *a: explicit.append("col2im") or col2im(*a))
    monkeypatch.setattr(im2col, "im2col_into", lambda *a: explicit.append("im2col") or unfold(*a))
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C // groups, R, S)), rng.standard_normal(K)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), **kw)
    assert len(calls) == 1, "the forward pass should gather its columns inside the GEMM"
    dy = rng.standard_normal(tuple(y.shape))
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    np.testing.assert_allclose(y.copy_to_host(), ref["y"], rtol=1e-10, atol=1e-10)
    dx, dw, db = nl.conv2d_backward(cuda.to_device(dy), cuda.to_device(x), cuda.to_device(w), **kw)
    # dW always gathers; dx too where it is a stride-1 convolution of dy, else GEMM + col2im
    assert len(calls) == (3 if dx_implicit else 2)
    assert explicit == ([] if dx_implicit else ["col2im"])
    np.testing.assert_allclose(dx.copy_to_host(), ref["dx"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw.copy_to_host(), ref["dw"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(db.copy_to_host(), ref["db"], rtol=1e-10, atol=1e-10)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # simulator: 0 * inf in unused rows
def test_device_implicit_gemm_float32_and_nonfinite(rng):
    """float32 within its tolerance; an inf in x reaches only the outputs that read it (padding
    and the zero-filled tails of a slice never multiply it)."""
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), padding=1).copy_to_host()
    tol = 8 * 27 * np.finfo(np.float32).eps
    np.testing.assert_allclose(y, conv2d_ref(x, w, padding=1)["y"], rtol=tol, atol=tol)
    x[0, 2, 5, 5] = np.inf
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(np.abs(w)), padding=1).copy_to_host()
    hit = np.zeros((6, 6), bool)
    hit[4:, 4:] = True
    assert np.all(np.isinf(y[0][:, hit])) and np.all(np.isfinite(y[0][:, ~hit]))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_device_dx_of_a_non_finite_filter_matches_host(rng):
    """A filter with inf / NaN: dx does not take the forward of dy over zero padding (0 * inf
    would be NaN where the gradient is finite) and equals PyTorch's; the finiteness check."""
    from numlin.kernels.cuda.buffers import all_finite

    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    dy = rng.standard_normal((1, 3, 5, 5))
    assert all_finite(cuda.to_device(w))
    w[2, 0, 1, 0] = np.inf
    w[0, 1, 2, 2] = np.nan
    assert not all_finite(cuda.to_device(w)) and not all_finite(cuda.to_device(w[:, :, 1:, :1].copy()))
    dx = nl.conv2d_backward(cuda.to_device(dy), cuda.to_device(x), cuda.to_device(w), padding=1)[0].copy_to_host()
    assert_equal_non_finite(dx, conv2d_ref(x, w, dy=dy, padding=1)["dx"])


# (N, C, H, W, multiplier, R, S, stride, padding, dilation): small for the simulator
DEPTHWISE = [(2, 3, 5, 6, 1, 3, 3, 1, 1, 1), (1, 2, 7, 6, 2, 3, 2, 2, (1, 0), (1, 2)),
             (1, 3, 6, 7, 1, 3, 3, (2, 3), 2, 1), (1, 2, 4, 5, 1, 2, 3, 1, "same", 1)]
if HAS_GPU:
    DEPTHWISE += [(8, 128, 28, 28, 1, 3, 3, 2, 1, 1), (4, 64, 33, 31, 2, 5, 5, 1, 2, 1)]


@pytest.mark.parametrize("cfg", DEPTHWISE)
def test_device_depthwise_matches_torch(rng, monkeypatch, cfg):
    """Depthwise layers (groups == C) take the direct kernels: forward with and without bias
    and with beta, dx, dw and db against PyTorch (float64); the same as the host's."""
    from numlin.kernels.cuda.conv import depthwise

    N, C, H, W, M, R, S, stride, padding, dilation = cfg
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((C * M, 1, R, S)), rng.standard_normal(C * M)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    calls = []
    for name in ("conv2d_into", "dx_into", "dw_into"):
        real = getattr(depthwise, name)
        monkeypatch.setattr(depthwise, name, lambda *a, _n=name, _f=real: (calls.append(_n), _f(*a))[1])
    dev = [cuda.to_device(a) for a in (x, w, b)]
    for bias, dbias in ((b, dev[2]), (None, None)):
        y = nl.conv2d(dev[0], dev[1], dbias, **kw).copy_to_host()
        np.testing.assert_allclose(y, conv2d_ref(x, w, bias, **kw)["y"], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(y, nl.conv2d(x, w, bias, **kw), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ref = conv2d_ref(x, w, dy=dy, **kw)
    g = conv_mod._prepare("conv2d", {"x": x, "w": w}, **kw)[3]
    y1 = cuda.to_device(dy)
    depthwise.conv2d_into(dev[0], dev[1], y1, g, 0.5)
    np.testing.assert_allclose(y1.copy_to_host(), ref["y"] + 0.5 * dy, rtol=1e-10, atol=1e-10)
    y1 = cuda.to_device(dy)
    depthwise.conv2d_into(dev[0], dev[1], y1, g, 0.5, dev[2])
    np.testing.assert_allclose(y1.copy_to_host(), ref["y"] + b[:, None, None] + 0.5 * dy, rtol=1e-10, atol=1e-10)
    dx, dw, db = (a.copy_to_host() for a in nl.conv2d_backward(cuda.to_device(dy), dev[0], dev[1], **kw))
    np.testing.assert_allclose(dx, ref["dx"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, ref["dw"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(db, ref["db"], rtol=1e-10, atol=1e-10)
    assert set(calls) == {"conv2d_into", "dx_into", "dw_into"}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("where", ["x", "w", "dy"])
def test_device_depthwise_non_finite_values_match_torch(rng, where):
    """inf and NaN in x, w or dy: NaN for NaN and inf for inf as in PyTorch (padding is literal
    zeros: the forward and dw include its products, dx only the outputs' terms)."""
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((3, 1, 3, 3))
    kw = dict(padding=1, groups=3)
    if where == "x":
        x[0, 0, 2, 6] = np.inf
        x[1, 1, 3, 0] = np.nan
    elif where == "w":
        w[2, 0, 1, 0] = -np.inf
        w[0, 0, 0, 1] = np.nan
    y = nl.conv2d(cuda.to_device(x), cuda.to_device(w), **kw).copy_to_host()
    dy = rng.standard_normal(y.shape)
    if where == "dy":
        dy[0, 0, 0, -1] = np.inf
        dy[-1, -1, -1, 0] = np.nan
    dx, dw, _ = (a.copy_to_host() for a in nl.conv2d_backward(cuda.to_device(dy), cuda.to_device(x),
                                                               cuda.to_device(w), **kw))
    ref = conv2d_ref(x, w, dy=dy, **kw)
    for name, got in (("y", y), ("dx", dx), ("dw", dw)):
        assert_equal_non_finite(got, ref[name])


def test_device_implicit_tables_fall_back_when_unpackable():
    """Shifts beyond the packed tables' range send the convolution back to im2col + GEMM."""
    from numlin.nn._conv_plan import implicit
    from numlin._geometry import geometry

    assert implicit(geometry("conv2d", (1, 1, 3, 3), (), padding=1, w_shape=(1, 1, 3, 3)), "cuda")
    huge = geometry("conv2d", (1, 1, 40000, 1), (), stride=(20000, 1), w_shape=(1, 1, 1, 1))  # row shift 20000
    assert not implicit(huge, "cuda")
    assert not implicit(geometry("conv2d", (1, 3, 3, 1), (), layout="NHWC", w_shape=(1, 1, 1, 1)), "cuda")


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((1, 1, 3, 3), (1, 1, 3, 3), dict(padding=1)),
    ((1, 1, 16385, 1), (1, 1, 1, 1), dict(stride=(16384, 1))),       # last pixel row shift 2**14: too far
    ((1, 1, 16384, 1), (1, 1, 1, 1), dict(stride=(16383, 1))),       # 16383: fits
    ((1, 1, 1, 3), (1, 1, 3, 3), dict(padding=(16384, 0))),          # first pixel row shift -2**14: fits
    ((1, 1, 1, 3), (1, 1, 3, 3), dict(padding=(16385, 0))),          # -2**14 - 1: too far
    ((1, 1, 1, 32770), (1, 1, 1, 2), dict(dilation=(1, 32767))),     # tap column shift 32767: fits
    ((1, 1, 1, 32770), (1, 1, 1, 2), dict(dilation=(1, 32768))),     # 32768: too far
    ((1, 1, 16390, 1), (1, 1, 2, 1), dict(dilation=(16384, 1))),     # tap row shift 2**14: too far
])
def test_device_implicit_plan_matches_the_tables(x_shape, w_shape, kw):
    """The route decision's arithmetic (:mod:`numlin.nn._conv_plan`) says exactly when the
    index tables (``kernels.cuda.conv.columns``) can be built."""
    from numlin.kernels.cuda.conv import columns
    from numlin.nn._conv_plan import implicit
    from numlin._geometry import geometry

    g = geometry("conv2d", x_shape, (), w_shape=w_shape, **kw)
    built = columns._device_tables(0, g.C // g.groups, g.H, g.W, g.R, g.S, g.P, g.Q, g.sh, g.sw, g.ph0, g.pw0,
                                   g.dh, g.dw) is not None
    assert implicit(g, "cuda") == built


@pytest.mark.parametrize("cap_products", [1, 2, 5])
def test_device_implicit_dw_partials_bounded(rng, configure, cap_products):
    """The filter gradient's partial products stay under config.conv_partials_bytes: chunks of
    samples (and fewer split-K pieces), each summed into dw in turn; the result is unchanged."""
    N, C, H, W, K = 3, 2, 12, 12, 3  # P*Q = 144: split-K into 2 pieces of 72 when the cap allows
    size = K * C * 9
    configure(conv_partials_bytes=cap_products * size * 8)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C, 3, 3))
    dy = rng.standard_normal((N, K, H, W))
    _, dw, _ = nl.conv2d_backward(cuda.to_device(dy), cuda.to_device(x), cuda.to_device(w), padding=1)
    np.testing.assert_allclose(dw.copy_to_host(), conv2d_ref(x, w, padding=1, dy=dy)["dw"], rtol=1e-10, atol=1e-9)
