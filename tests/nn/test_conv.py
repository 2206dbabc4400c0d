"""nl.conv2d / conv2d_backward / im2col / col2im against PyTorch (float64 reference)."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin.nn import conv as conv_mod
from tests.reference import assert_equal_non_finite, conv2d_ref

torch = pytest.importorskip("torch")


def _tol(dtype, reduction: int) -> float:
    """Relative (to the magnitude of the products) tolerance for a sum of ``reduction`` terms."""
    return 4 * np.finfo(dtype).eps * max(reduction, 1)


def _case(rng, layout, N, C, H, W, K, R, S, groups, dtype):
    xs = (N, C, H, W) if layout == "NCHW" else (N, H, W, C)
    ws = (K, C // groups, R, S) if layout == "NCHW" else (R, S, C // groups, K)
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype), rng.standard_normal(K).astype(dtype)


def _check(got, want, scale, tol):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.max(np.abs(got - want)) if want.size else 0.0
    assert err <= tol * max(scale, 1.0), f"max error {err:.3g} over {tol * max(scale, 1.0):.3g}"


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CONFIGS = [
    (2, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1),
    (2, 4, 10, 11, 6, 3, 2, 2, (1, 2), (1, 2), 2),
    (1, 6, 7, 7, 6, 3, 3, 1, 0, 1, 6),          # depthwise
    (1, 4, 7, 7, 8, 3, 3, 1, 1, 1, 4),          # depthwise, channel multiplier 2
    (2, 4, 5, 5, 8, 1, 1, 1, 0, 1, 1),          # pointwise: plain GEMM
    (3, 8, 6, 6, 4, 1, 1, 2, 0, 1, 2),          # 1x1 with stride: im2col path
    (2, 5, 8, 9, 3, 2, 4, 1, "same", 1, 1),     # even kernel: odd total padding
    (2, 5, 8, 9, 3, 3, 3, 1, "same", (2, 1), 1),
    (1, 3, 6, 7, 2, 3, 3, (2, 3), "valid", 1, 1),
    (2, 2, 12, 5, 3, 5, 1, (3, 1), (2, 0), (1, 1), 1),
    (1, 2, 3, 3, 2, 3, 3, 1, 0, 1, 1),          # output 1x1
    (4, 16, 13, 13, 32, 3, 3, 2, 1, 1, 4),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_forward_and_backward_match_torch(rng, layout, dtype, cfg, with_bias):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, b = _case(rng, layout, N, C, H, W, K, R, S, groups, dtype)
    b = b if with_bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)
    y = nl.conv2d(x, w, b, **kw)
    assert y.dtype == dtype
    ref = conv2d_ref(x, w, b, **kw)
    red = (C // groups) * R * S
    _check(y, ref["y"], np.abs(x).max() * np.abs(w).max() * red, _tol(dtype, red))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = nl.conv2d_backward(dy, x, w, **kw)
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (K,)
    _check(dx, ref["dx"], np.abs(dy).max() * np.abs(w).max() * K * R * S, _tol(dtype, K * R * S))
    npix = y.size // K
    _check(dw, ref["dw"], np.abs(dy).max() * np.abs(x).max() * npix, _tol(dtype, npix))
    _check(db, ref["db"], np.abs(dy).max() * npix, _tol(dtype, npix))


NON_FINITE = [  # (N, C, H, W, K, R, S, stride, padding, dilation, groups): every dense route
    (2, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1),          # implicit GEMMs (dx as a forward of dy)
    (2, 16, 12, 12, 16, 3, 3, 2, 1, 1, 1),      # strided: dx by col2im
    (2, 4, 10, 11, 6, 3, 2, 2, (1, 2), (1, 2), 2),
    (2, 8, 7, 7, 8, 1, 1, 1, 0, 1, 1),          # pointwise: plain GEMMs
    (2, 8, 7, 7, 8, 1, 1, 2, 0, 1, 1),
    (1, 1, 8, 8, 32, 3, 3, 1, 1, 1, 1),         # one input channel
]


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("cfg", NON_FINITE)
def test_non_finite_values_match_torch(rng, cfg, where, layout):
    """inf and NaN in x, w or dy give PyTorch's NaN for NaN and inf for inf: padding is literal
    zeros (the forward and dw include its products, 0 * inf = NaN), dx holds only the outputs'
    terms (a forward of dy over zero padding would not: the finite-filter check)."""
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, _ = _case(rng, "NCHW", N, C, H, W, K, R, S, groups, np.float64)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if where == "x":
        x[0, 0, H // 2, W - 1] = np.inf
        x[-1, -1, 0, 0] = np.nan
    elif where == "w":
        w[-1, 0, R // 2, 0] = np.inf
        w[0, -1, -1, -1] = np.nan
    if layout == "NHWC":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    y = nl.conv2d(x, w, layout=layout, **kw)
    dy = rng.standard_normal(y.shape)
    if where == "dy":
        dy[0, 0, 0, -1] = np.inf
        dy[-1, -1, -1, 0] = np.nan
    dx, dw, _ = nl.conv2d_backward(dy, x, w, layout=layout, **kw)
    ref = conv2d_ref(x, w, dy=dy, layout=layout, **kw)
    for name, got in (("y", y), ("dx", dx), ("dw", dw)):
        assert_equal_non_finite(got, ref[name])


@pytest.mark.parametrize("cfg", CONFIGS[:6])
def test_nhwc_equals_nchw_transposed(rng, cfg):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, b = _case(rng, "NCHW", N, C, H, W, K, R, S, groups, np.float64)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y1 = nl.conv2d(x, w, b, **kw)
    y2 = nl.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, layout="NHWC", **kw)
    np.testing.assert_allclose(y2, y1.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding=(2, 1), dilation=2), dict(padding="same")])
def test_im2col_col2im_are_adjoint(rng, layout, kw):
    shape = (2, 3, 9, 7) if layout == "NCHW" else (2, 9, 7, 3)
    x = rng.standard_normal(shape)
    cols = nl.im2col(x, (3, 2), layout=layout, **kw)
    c = rng.standard_normal(cols.shape)
    back = nl.col2im(c, shape, (3, 2), layout=layout, **kw)
    assert back.shape == shape
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, back), rel=1e-12)


def test_im2col_layout_is_documented_one(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    cols = nl.im2col(x, 3, padding=1)
    assert cols.shape == (1, 2 * 9, 16)
    # row (c, r, s), column (p, q): x[c, p + r - 1, q + s - 1] or 0
    c, r, s, p, q = 1, 2, 0, 3, 1
    assert cols[0, (c * 3 + r) * 3 + s, p * 4 + q] == (x[0, c, p + r - 1, q + s - 1] if p + r - 1 < 4 else 0)
    xh = x.transpose(0, 2, 3, 1)
    colsh = nl.im2col(xh, 3, padding=1, layout="NHWC")
    assert colsh.shape == (1, 18, 16)
    np.testing.assert_array_equal(colsh[0, (r * 3 + s) * 2 + c, p * 4 + q], cols[0, (c * 3 + r) * 3 + s, p * 4 + q])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_workspace_cap_chunks_rows_and_batch(rng, layout, configure):
    configure(conv_fused=False)  # the chunked im2col + GEMM forward
    x, w, b = _case(rng, layout, 3, 4, 11, 10, 5, 3, 3, 1, np.float64)
    kw = dict(padding=1, stride=(1, 2), layout=layout)
    want_y = nl.conv2d(x, w, b, **kw)
    want = nl.conv2d_backward(np.ones_like(want_y), x, w, **kw)
    for cap in (4 * 36 * 5 * 8 * 2, 4 * 36 * 5 * 8 * 11 * 2 + 8, 10**9):  # 1 output row, 1 sample, all
        configure(conv_workspace_bytes=cap)
        np.testing.assert_allclose(nl.conv2d(x, w, b, **kw), want_y, rtol=1e-13, atol=1e-13)
        for got, ref in zip(nl.conv2d_backward(np.ones_like(want_y), x, w, **kw), want):
            np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-12)


def test_chunks_stay_under_the_cap():
    g = conv_mod.geometry("t", (8, 64, 56, 56), (3, 3), padding=1)
    budget = 2**20
    for n0, nb, p0, pc in conv_mod._chunks(g, budget):
        assert nb * pc * g.C * 9 * g.Q <= budget
    assert conv_mod._chunk_elems(g, budget) <= budget


def test_mixed_dtypes_promote(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3))
    assert nl.conv2d(x, w).dtype == np.float64


def test_noncontiguous_inputs(rng):
    x = rng.standard_normal((2, 6, 9, 9))[:, ::2, ::-1, :]
    w = rng.standard_normal((4, 3, 3, 3))
    _check(nl.conv2d(x, w, padding=1), conv2d_ref(np.ascontiguousarray(x), w, None, padding=1)["y"], 100, 1e-12)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 4, 3, 3))), ValueError, "input channels"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 7, 7))), ValueError, "larger than the padded input"),
    (lambda: nl.conv2d(np.ones((1, 4, 5, 5)), np.ones((2, 2, 3, 3)), groups=3), ValueError, "groups=3"),
    (lambda: nl.conv2d(np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3)), groups=2), ValueError, "output channels"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), padding="same", stride=2), ValueError, "stride 1"),
    (lambda: nl.conv2d(np.ones((3, 5, 5)), np.ones((2, 3, 3, 3))), ValueError, "4-D"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3))), ValueError, "4-D"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), np.ones(3)), ValueError, "bias"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), padding="full"), ValueError, "padding"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), padding=-1), ValueError, "padding"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), stride=0), ValueError, "stride"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), stride=1.5), TypeError, "stride"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), layout="CHWN"), ValueError, "layout"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5), np.int64), np.ones((2, 3, 3, 3))), TypeError, "int64"),
    (lambda: nl.conv2d_backward(np.ones((1, 2, 4, 4)), np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3))), ValueError, "dy"),
    (lambda: nl.col2im(np.ones((1, 27, 10)), (1, 3, 5, 5), 3), ValueError, "cols has shape"),
])
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- issue 16: geometry integers
HUGE = [2**31, 2**62, 2**63 - 1, 2**63, 2**64 - 1, np.uint64(2**63), np.int64(2**62)]


@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
@pytest.mark.parametrize("value", HUGE, ids=str)
def test_huge_geometry_integers_are_refused(name, value):
    """Values in [2**63, 2**64) were typed unsigned by Numba: zeros in a fresh process, then
    OverflowError; now a ValueError naming the argument before any kernel runs."""
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    for pair in (value, (1, value), (value, 1)):
        with pytest.raises(ValueError, match=name):
            nl.conv2d(x, w, **{name: pair})
        with pytest.raises(ValueError, match=name):
            nl.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), layout="NHWC", **{name: pair})
        with pytest.raises(ValueError, match=name):
            nl.conv2d_backward(np.ones((1, 3, 3, 3)), x, w, **{name: pair})
        with pytest.raises(ValueError, match=name):
            nl.im2col(x, 3, **{name: pair})
        with pytest.raises(ValueError, match=name):
            nl.col2im(np.ones((1, 18, 9)), (1, 2, 5, 5), 3, **{name: pair})


@pytest.mark.parametrize("value", HUGE, ids=str)
def test_huge_kernel_size_and_groups_are_refused(value):
    x = np.ones((1, 2, 5, 5))
    with pytest.raises(ValueError, match="kernel_size"):
        nl.im2col(x, value)
    with pytest.raises(ValueError, match="kernel_size"):
        nl.col2im(np.ones((1, 18, 9)), (1, 2, 5, 5), (3, value))
    with pytest.raises(ValueError, match="groups"):
        nl.conv2d(x, np.ones((2, 2, 3, 3)), groups=value)


def test_huge_geometry_in_a_fresh_process():
    """The first call of a fresh process is where Numba used to compile a uint64 variant."""
    import subprocess
    import sys

    code = ("import numpy as np, numlin as nl\n"
            "x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))\n"
            "for name in ('stride', 'padding', 'dilation'):\n"
            "    for call in (lambda: nl.conv2d(x, w, **{name: 2**63}), lambda: nl.im2col(x, 3, **{name: 2**63}),\n"
            "                 lambda: nl.conv2d_backward(np.ones((1, 3, 1, 1)), x, w, **{name: 2**63})):\n"
            "        try:\n"
            "            call()\n"
            "        except ValueError as e:\n"
            "            assert name in str(e), e\n"
            "        else:\n"
            "            raise SystemExit(f'{name}=2**63 accepted')\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr[-3000:])


def test_geometry_passes_python_ints_to_kernels():
    g = conv_mod.geometry("conv2d", (1, 2, 5, 5), (np.int64(3), np.uint8(3)), stride=np.uint64(2),
                          padding=(np.int32(1), 1), dilation=np.int16(1), groups=np.uint64(1))
    for f in ("R", "S", "sh", "sw", "ph0", "ph1", "pw0", "pw1", "dh", "dw", "groups", "P", "Q"):
        assert type(getattr(g, f)) is int, f


# --------------------------------------------------------------------------- issue 16: empty dimensions
def _torch_conv(x, w, b, **kw):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    return xt, wt, bt, torch.nn.functional.conv2d(xt, wt, bt, **kw)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_zero_input_channels(layout, with_bias, rng):
    """C == 0 used to raise ZeroDivisionError. The sum over no channels is empty: y is the bias
    broadcast (zeros without one), dx and dw are empty, db is dy summed. PyTorch 2.13 returns an
    (N, 0, P, Q) output here (its empty-input shortcut keeps the input's channel count), a
    deliberate difference; its gradients agree (zero bias gradient for a zero upstream)."""
    x = np.zeros((2, 0, 5, 5))
    w = np.zeros((3, 0, 3, 3))
    b = rng.standard_normal(3) if with_bias else None
    want = np.broadcast_to((b if with_bias else np.zeros(3))[None, :, None, None], (2, 3, 3, 3))
    xt, wt, bt, yt = _torch_conv(x, w, b)
    assert tuple(yt.shape) == (2, 0, 3, 3)  # PyTorch's quirk (see the docstring)
    xl = x if layout == "NCHW" else x.transpose(0, 2, 3, 1)
    wl = w if layout == "NCHW" else w.transpose(2, 3, 1, 0)
    wantl = want if layout == "NCHW" else want.transpose(0, 2, 3, 1)
    y = nl.conv2d(xl, wl, b, layout=layout)
    np.testing.assert_array_equal(y, wantl)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = nl.conv2d_backward(dy, xl, wl, layout=layout)
    assert dx.shape == xl.shape and dw.shape == wl.shape
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3) if layout == "NCHW" else (0, 1, 2)))
    yt.sum().backward()
    assert tuple(xt.grad.shape) == x.shape and tuple(wt.grad.shape) == w.shape


def test_zero_input_channels_on_the_tape(rng):
    x = nl.Variable(np.zeros((2, 0, 5, 5)))
    w = nl.Variable(np.zeros((3, 0, 3, 3)))
    b = nl.Variable(rng.standard_normal(3))
    with nl.GradientTape() as tape:
        y = nl.conv2d(x, w, b, padding=1)
        loss = nl.sum(y)
    np.testing.assert_allclose(y.numpy(), np.broadcast_to(b.numpy()[None, :, None, None], (2, 3, 5, 5)))
    gx, gw, gb = tape.gradient(loss, [x, w, b])
    assert gx.shape == (2, 0, 5, 5) and gw.shape == (3, 0, 3, 3)
    np.testing.assert_allclose(gb.numpy(), np.full(3, 50.0))


def test_zero_filters_and_zero_batch(rng):
    """K == 0: an empty output and zero gradients (PyTorch refuses a weight with no filters:
    a deliberate difference, numpy's rule for empty products). N == 0: as PyTorch."""
    x = rng.standard_normal((2, 3, 5, 5))
    y = nl.conv2d(x, np.zeros((0, 3, 3, 3)))
    assert y.shape == (2, 0, 3, 3)
    dx, dw, db = nl.conv2d_backward(np.zeros((2, 0, 3, 3)), x, np.zeros((0, 3, 3, 3)))
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    assert dw.shape == (0, 3, 3, 3) and db.shape == (0,)
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv2d(torch.tensor(x), torch.zeros(0, 3, 3, 3, dtype=torch.float64))
    # N == 0
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    xt, wt, bt, yt = _torch_conv(np.zeros((0, 3, 5, 5)), w, b)
    y = nl.conv2d(np.zeros((0, 3, 5, 5)), w, b)
    assert y.shape == tuple(yt.shape)
    dx, dw, db = nl.conv2d_backward(np.zeros(y.shape), np.zeros((0, 3, 5, 5)), w)
    yt.sum().backward()
    assert dx.shape == tuple(xt.grad.shape)
    np.testing.assert_array_equal(dw, wt.grad.numpy())
    np.testing.assert_array_equal(db, bt.grad.numpy())


def test_empty_spatial_input_is_an_error_as_in_pytorch():
    """H == 0 without padding: the kernel does not fit; with padding, only padding would be
    convolved: errors, as in PyTorch (which allows it for an empty batch or channel axis)."""
    with pytest.raises(ValueError, match="larger than the padded input"):
        nl.conv2d(np.ones((1, 3, 0, 5)), np.ones((4, 3, 1, 1)))
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv2d(torch.ones(1, 3, 0, 5), torch.ones(4, 3, 1, 1))
    for layout in ("NCHW", "NHWC"):
        x = np.ones((1, 3, 0, 5)) if layout == "NCHW" else np.ones((1, 0, 5, 3))
        w = np.ones((4, 3, 1, 1)) if layout == "NCHW" else np.ones((1, 1, 3, 4))
        with pytest.raises(ValueError, match="empty spatial dimension"):
            nl.conv2d(x, w, padding=1, layout=layout)
        with pytest.raises(ValueError, match="empty spatial dimension"):
            nl.conv2d_backward(np.ones((1, 4, 2, 7) if layout == "NCHW" else (1, 2, 7, 4)), x, w, padding=1,
                               layout=layout)
    with pytest.raises(RuntimeError, match="Only zero batch or zero channel"):
        torch.nn.functional.conv2d(torch.ones(1, 3, 0, 5), torch.ones(4, 3, 1, 1), padding=1)
    # an empty batch or channel axis with an empty image: as PyTorch, computed
    assert nl.conv2d(np.ones((0, 3, 0, 5)), np.ones((4, 3, 1, 1)), padding=1).shape == (0, 4, 2, 7)


def test_im2col_col2im_with_empty_dims():
    for shape in ((0, 2, 4, 5), (1, 0, 4, 5)):
        cols = nl.im2col(np.ones(shape), 2)
        assert cols.shape == (shape[0], shape[1] * 4, 12)
        assert nl.col2im(cols, shape, 2).shape == shape


# --------------------------------------------------------------------------- issue 16: clear errors
@pytest.mark.parametrize("call,name", [
    (lambda: nl.conv2d(None, np.ones((2, 3, 3, 3))), "x is None"),
    (lambda: nl.conv2d(np.ones((1, 3, 5, 5)), None), "w is None"),
    (lambda: nl.conv2d_backward(None, np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3))), "dy is None"),
    (lambda: nl.conv2d_backward(np.ones((1, 2, 3, 3)), None, np.ones((2, 3, 3, 3))), "x is None"),
    (lambda: nl.conv2d_backward(np.ones((1, 2, 3, 3)), np.ones((1, 3, 5, 5)), None), "w is None"),
    (lambda: nl.im2col(None, 3), "x is None"),
    (lambda: nl.col2im(None, (1, 3, 5, 5), 3), "cols is None"),
    (lambda: nl.col2im(np.ones((1, 27, 9)), 7, 3), "input_shape"),
    (lambda: nl.col2im(np.ones((1, 27, 9)), None, 3), "input_shape"),
    (lambda: nl.col2im(np.ones((1, 27, 9)), (1, 3, 5), 3), "input_shape"),
    (lambda: nl.col2im(np.ones((1, 27, 9)), (1, 3, 5, 5.0), 3), "input_shape"),
    (lambda: nl.col2im(np.ones((1, 27, 9)), "1355", 3), "input_shape"),
])
def test_none_and_malformed_inputs_are_type_errors(call, name):
    with pytest.raises(TypeError, match=name):
        call()


def test_col2im_negative_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        nl.col2im(np.ones((1, 27, 9)), (1, 3, -5, 5), 3)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_np_matrix_operands_are_read_as_arrays(rng):
    x = rng.standard_normal((1, 1, 4, 4))
    with pytest.raises(ValueError, match="4-D"):
        nl.conv2d(np.matrix(x[0, 0]), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="4-D"):
        nl.im2col(np.matrix(x[0, 0]), 3)


@pytest.mark.parametrize("value", ["abc", "-3", "nan", "0", ""])
def test_bad_workspace_env_warns_and_uses_the_default(value):
    """``NUMLIN_CONV_WORKSPACE_MB=abc`` used to break ``import numlin`` with a bare float() error."""
    import os
    import subprocess
    import sys

    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as ws:\n"
            "    warnings.simplefilter('always')\n"
            "    import numlin.nn.conv\n"
            "from numlin._config import config\n"
            "print(config.conv_workspace_bytes)\n"
            "print([str(w.message) for w in ws if 'NUMLIN_CONV_WORKSPACE_MB' in str(w.message)])\n")
    env = dict(os.environ, NUMLIN_CONV_WORKSPACE_MB=value)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    size, msgs = r.stdout.strip().splitlines()
    assert int(size) == 64 * 2**20
    assert "NUMLIN_CONV_WORKSPACE_MB" in msgs and repr(value) in msgs


@pytest.mark.parametrize("W,S,sw,pw", [(1, 1, 2, 4), (1, 2, 2, 3), (2, 1, 3, 5), (3, 3, 2, 3)])
def test_padding_wider_than_the_kernel(W, S, sw, pw, rng):
    """Outputs that see padding alone: the CPU implicit GEMM gave wrong values (and wrote out of
    bounds: a segfault for x (1, 2, 3, 1), w (1, 2, 3, 2), stride (1, 2), padding (2, 3)); such
    geometries take im2col + GEMM."""
    x = rng.standard_normal((2, 2, 3, W))
    w = rng.standard_normal((3, 2, 3, S))
    b = rng.standard_normal(3)
    kw = dict(stride=(1, sw), padding=(2, pw))
    y = nl.conv2d(x, w, b, **kw)
    dy = rng.standard_normal(y.shape)
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    _check(y, ref["y"], np.abs(x).max() * np.abs(w).max() * 18, _tol(np.float64, 18))
    dx, dw, db = nl.conv2d_backward(dy, x, w, **kw)
    _check(dx, ref["dx"], np.abs(dy).max() * np.abs(w).max() * 18, _tol(np.float64, 18))
    _check(dw, ref["dw"], np.abs(dy).max() * np.abs(x).max() * 100, _tol(np.float64, 100))
