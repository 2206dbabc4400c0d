"""The CPU convolution kernels (``numlin.kernels.cpu.conv``) route by route against PyTorch:
depthwise stencils and the implicit GEMMs, steered through ``config.override`` and spied on
(which kernel ran) with monkeypatch."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import numlin as nl
from numlin.kernels.cpu.conv import columns, implicit_dw, implicit_forward
from numlin.nn import conv as conv_mod
from tests.nn.test_conv import _case, _check, _tol
from tests.reference import assert_equal_non_finite, conv2d_ref

torch = pytest.importorskip("torch")


# (N, C, H, W, multiplier, R, S, stride, padding, dilation)
DEPTHWISE = [
    (2, 3, 9, 8, 1, 3, 3, 1, 1, 1),
    (2, 4, 10, 11, 2, 3, 2, 2, (1, 2), (1, 2)),
    (1, 6, 7, 7, 1, 3, 3, 1, 0, 1),
    (3, 5, 12, 9, 3, 5, 3, (2, 3), (2, 1), 1),
    (2, 3, 8, 9, 1, 3, 3, 1, "same", (2, 1)),
    (1, 2, 3, 3, 1, 3, 3, 1, 0, 1),             # output 1x1
    (2, 8, 6, 40, 1, 3, 3, 1, (3, 4), 1),       # padding wider than the filter reach: empty runs
    (2, 3, 7, 6, 2, 2, 4, 1, "same", 1),        # even kernel: uneven padding (the extra at the end)
    (2, 4, 14, 14, 1, 3, 3, 2, 1, 1),           # MobileNet's strided layer: even plane, odd pad
    (1, 3, 13, 15, 1, 3, 3, 2, 2, 1),           # stride 2, even pad, odd plane
    (2, 3, 11, 10, 1, 3, 3, 2, 0, 2),           # stride 2, dilation 2: every tap in one phase
    (1, 4, 17, 19, 1, 3, 3, 3, 1, 1),           # stride 3: the general phase copy
    (2, 3, 9, 12, 2, 3, 5, (1, 2), (1, 2), 1),  # stride 2 across only
    (2, 3, 12, 9, 1, 5, 3, (2, 1), 2, 1),       # stride 2 down only
    (1, 2, 9, 9, 1, 3, 3, 2, (1, 3), 1),        # trailing padding no output reads
    (2, 4, 11, 10, 1, 5, 5, 1, 2, 1),           # 5x5: filter rows fused five taps at a time
    (1, 3, 12, 13, 1, 5, 5, 2, 2, 1),           # 5x5, stride 2
]


@pytest.mark.parametrize("runs", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", DEPTHWISE)
def test_depthwise_stencils_match_torch(rng, monkeypatch, configure, dtype, cfg, runs):
    """Depthwise NCHW convolutions (groups == C, channel multiplier M) take the direct stencils
    (forward with and without bias and with beta, dx, dw, each alone and together; gradients
    over whole runs or row by row, 3x3 taps in one pass or one per tap) and match PyTorch."""
    from numlin.kernels.cpu.conv import depthwise

    N, C, H, W, M, R, S, stride, padding, dilation = cfg
    x, w, b = _case(rng, "NCHW", N, C, H, W, C * M, R, S, C, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    configure(conv_depthwise_whole_runs=runs, conv_depthwise_fused_taps=runs)
    calls = _spy(monkeypatch, depthwise)
    for bias in (b, None):
        y = nl.conv2d(x, w, bias, **kw)
        ref = conv2d_ref(x, w, bias, **kw)
        _check(y, ref["y"], np.abs(x).max() * np.abs(w).max() * R * S, _tol(dtype, R * S))
    y0 = rng.standard_normal(y.shape).astype(dtype)
    y1 = y0.copy()
    g = conv_mod._prepare("conv2d", {"x": x, "w": w}, **kw)[3]
    depthwise.conv2d_into(x, w, y1, g, 0.5)  # beta: y1 = conv + 0.5 * y0
    _check(y1, ref["y"] + 0.5 * y0, np.abs(x).max() * np.abs(w).max() * R * S + 1, _tol(dtype, R * S + 1))
    y1 = y0.copy()
    depthwise.conv2d_into(x, w, y1, g, 0.5, b)  # both: y1 = conv + b + 0.5 * y0
    _check(y1, ref["y"] + b[:, None, None] + 0.5 * y0, np.abs(x).max() * np.abs(w).max() * R * S + 4,
           _tol(dtype, R * S + 2))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = nl.conv2d_backward(dy, x, w, **kw)
    ref = conv2d_ref(x, w, dy=dy, **kw)
    _check(dx, ref["dx"], np.abs(dy).max() * np.abs(w).max() * M * R * S, _tol(dtype, M * R * S))
    npix = y.size // (C * M)
    _check(dw, ref["dw"], np.abs(dy).max() * np.abs(x).max() * npix, _tol(dtype, npix))
    _check(db, ref["db"], np.abs(dy).max() * npix, _tol(dtype, npix))
    for need_dx, need_dw in ((True, False), (False, True)):
        got = conv_mod._conv2d_backward(dy, x, w, need_dx=need_dx, need_dw=need_dw, **kw)
        assert (got[0] is None) != need_dx and (got[1] is None) != need_dw
        np.testing.assert_array_equal(got[0] if need_dx else got[1], dx if need_dx else dw)
    if runs:
        want = {"_forward", "_filter_grad", "_forward" if depthwise._dx_as_forward(g) is not None else "_input_grad"}
    else:
        want = {"_forward", "_filter_grad exact", "_input_grad exact"}
    assert set(calls) == want


def _spy(monkeypatch, depthwise) -> list[str]:
    """Record the depthwise kernels called (gradients: with " exact" when row by row)."""
    calls: list[str] = []
    for name in ("_forward", "_input_grad", "_filter_grad"):
        real = getattr(depthwise, name)
        monkeypatch.setattr(depthwise, name, lambda *a, _n=name, _f=real: (
            calls.append(_n + (" exact" if a[-1] is True else "")), _f(*a))[1])
    return calls


@pytest.mark.parametrize("cfg", [(2, 4, 9, 10, 1, 3, 3, 1, 1, 1), (2, 3, 11, 12, 2, 3, 3, 2, 1, 1),
                                 (2, 3, 10, 11, 1, 5, 5, 1, 2, 1)])
@pytest.mark.parametrize("where", ["x", "w", "dy"])
def test_depthwise_non_finite_values_match_torch(rng, monkeypatch, cfg, where):
    """inf and NaN in x, w or dy, also where some taps never read them: the whole runs' dropped
    columns hold real input values, which meet dy's zeros (0 * inf); the results must equal
    PyTorch's NaN for NaN and inf for inf (padding is literal zeros, as there: the forward and dw
    include its products, dx only the outputs' terms)."""
    from numlin.kernels.cpu.conv import depthwise

    N, C, H, W, M, R, S, stride, padding, dilation = cfg
    x, w, _ = _case(rng, "NCHW", N, C, H, W, C * M, R, S, C, np.float64)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=C)
    if where == "x":  # the last column: read by the dropped columns of the s = 0 taps
        x[0, 0, 2, W - 1] = np.inf
        x[1, 1, 3, W - 1] = np.nan
    elif where == "w":
        w[C * M - 1, 0, 1, 0] = -np.inf
        w[0, 0, 0, 1] = np.nan
    calls = _spy(monkeypatch, depthwise)
    y = nl.conv2d(x, w, **kw)
    dy = rng.standard_normal(y.shape)
    if where == "dy":
        dy[0, 0, 0, -1] = np.inf
        dy[-1, -1, -1, 0] = np.nan
    dx, dw, _ = nl.conv2d_backward(dy, x, w, **kw)
    ref = conv2d_ref(x, w, dy=dy, **kw)
    for name, got in (("y", y), ("dx", dx), ("dw", dw)):
        assert_equal_non_finite(got, ref[name])
    exact = {"x": {"_filter_grad exact"}, "w": {"_input_grad exact"}, "dy": {"_filter_grad exact"}}[where]
    assert exact <= set(calls)


# Implicit-GEMM forward (NCHW, CPU): pixel blocks that wrap output rows (Q > 32) or cover several
# (Q < 32), blocks spanning two samples (scattered through scratch), zero-padded last micro-panel,
# kc slices starting inside a channel, K not a multiple of MR.
# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
FUSED_CASES = [
    (2, 3, 7, 40, 5, 3, 3, 1, 1, 1, 1),                 # Q = 40: panels cross output rows
    (3, 4, 5, 6, 7, 3, 3, 1, 1, 1, 1),                  # Q < 32, tiny, K = 7
    (2, 3, 11, 37, 4, 3, 3, 2, 1, 1, 1),                # stride 2
    (2, 3, 9, 35, 4, 3, 2, 1, "same", (2, 3), 1),       # dilation, asymmetric "same" padding
    (2, 3, 9, 12, 4, 3, 2, 1, "same", (2, 3), 1),       # the same, rows of <= 32 (block copies)
    (2, 5, 7, 9, 6, 3, 3, 1, 0, 1, 1),                  # stride 1 unpadded: no zero rows in the copies
    (2, 3, 8, 40, 4, 2, 3, (1, 3), (0, 2), (1, 2), 1),  # stride 3 along W, dilation
    (2, 8, 6, 33, 12, 3, 3, 1, 1, 1, 4),                # groups
    (1, 6, 5, 5, 6, 3, 3, 1, 1, 1, 6),                  # depthwise
    (2, 29, 6, 9, 9, 3, 3, 1, 1, 1, 1),                 # C*R*S = 261: two kc slices, one mid-channel
    (1, 2, 4, 5, 3, 3, 3, 1, 3, 1, 1),                  # whole rows and columns of padding
    (1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1),                  # one pixel in, one out
    (3, 8, 6, 6, 4, 1, 2, 2, 0, 1, 2),                  # 1x2 with stride 2
    (3, 8, 7, 7, 10, 3, 3, 1, 1, 1, 1),                 # P*Q = 49: in-place tiles + tails over rows
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", FUSED_CASES)
@pytest.mark.parametrize("nc", [32, 128])
@pytest.mark.parametrize("mode", ["shifted", "shifted-chunked", "packed"])
def test_implicit_gemm_forward_edges(rng, configure, dtype, cfg, nc, mode):
    """Both implicit forwards: ``packed`` (B packed from x per block) and, for stride 1,
    ``shifted`` (B read in place from shifted copies of x, the last P*Q mod NR pixels of each
    sample packed; ``-chunked``: one sample's copies at a time)."""
    configure(conv_nc_pixels=nc, conv_fused_min_channels=1, conv_shifted=mode != "packed")
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, b = _case(rng, "NCHW", N, C, H, W, K, R, S, groups, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if mode == "shifted-chunked":  # room for one sample's copies
        g = conv_mod._prepare("conv2d", {"x": x, "w": w}, **kw)[3]
        configure(conv_shift_bytes=columns.shift_bytes(g, dtype))
    red = (C // groups) * R * S
    scale = np.abs(x).max() * np.abs(w).max() * red
    for bias in (b, None):
        configure(conv_fused=True)
        y = nl.conv2d(x, w, bias, **kw)
        assert y.dtype == dtype
        _check(y, conv2d_ref(x, w, bias, **kw)["y"], scale, _tol(dtype, red))
        configure(conv_fused=False)
        _check(y, np.asarray(nl.conv2d(x, w, bias, **kw), np.float64), scale, _tol(dtype, red))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", [
    (3, 16, 7, 7, 37, 3, 3, 1, 1, 1, 1),   # K not a multiple of MR; tails of 49 mod NR pixels
    (2, 8, 6, 33, 44, 3, 3, 1, 1, 1, 2),   # groups (22 filters each), tails over rows
    (4, 12, 8, 8, 20, 3, 3, 1, "same", 1, 1),
])
def test_shifted_forward_splits_filter_rows_among_threads(rng, monkeypatch, configure, dtype, cfg):
    """With many filters the stride-1 forward gives each thread a share of the filter's rows
    over every tile (``pr`` row groups) instead of a share of the tiles: every row block and
    the packed tails are computed once, for each group."""
    configure(conv_fused_min_channels=1, conv_row_split_blocks=1, conv_fused=True)
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, b = _case(rng, "NCHW", N, C, H, W, K, R, S, groups, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    row_groups = []
    real = implicit_forward.conv2d_nchw_shifted
    monkeypatch.setattr(implicit_forward, "conv2d_nchw_shifted", lambda *a: (row_groups.append(a[-1]), real(*a)))
    red = (C // groups) * R * S
    threads = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        y = nl.conv2d(x, w, b, **kw)
    finally:
        numba.set_num_threads(threads)
    assert row_groups == [2, 2]  # the kernel runs once per part (two threads), each with pr = 2 row groups
    _check(y, conv2d_ref(x, w, b, **kw)["y"], np.abs(x).max() * np.abs(w).max() * red, _tol(dtype, red))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, C, K, groups, chunked", [
    (6, 8, 16, 1, False),   # whole tiles of samples
    (5, 8, 13, 1, False),   # a short last tile (one sample), K not a multiple of MR
    (7, 12, 10, 2, False),  # groups
    (3, 11, 8, 1, True),    # one sample per chunk of copies: every tile short
])
def test_shifted_forward_one_sample_per_vector(rng, monkeypatch, configure, dtype, N, C, K, groups, chunked):
    """Output planes of exactly one vector (4x4 float32 with AVX-512, 2x4 float64...): each
    tile's vectors are different samples (``_micro_kernel_split``); forward and input gradient."""
    from numlin.kernels.cpu.blocking import blocking

    bl = blocking(dtype)
    if bl.nr == bl.vw:
        pytest.skip("one vector per register-tile row on this instruction set")
    P, Q = bl.vw // 4, 4
    configure(conv_fused_min_channels=1, conv_fused=True)
    x, w, b = _case(rng, "NCHW", N, C, P, Q, K, 3, 3, groups, dtype)
    kw = dict(padding=1, groups=groups)
    if chunked:
        g = conv_mod._prepare("conv2d", {"x": x, "w": w}, **kw)[3]
        configure(conv_shift_bytes=columns.shift_bytes(g, dtype))
    calls = []
    real = implicit_forward.conv2d_nchw_shifted
    # one call per part and chunk of samples: count the first part of the first chunk, (t, n0) == (0, 0)
    monkeypatch.setattr(implicit_forward, "conv2d_nchw_shifted",
                        lambda *a: (calls.append(a[0] == a[21] == 0), real(*a)))
    y = nl.conv2d(x, w, b, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, _, _ = nl.conv2d_backward(dy, x, w, **kw)
    assert sum(calls) == 2  # the forward and the input gradient
    ref = conv2d_ref(x, w, b, dy=dy, **kw)
    red, red_dx = (C // groups) * 9, (K // groups) * 9
    _check(y, ref["y"], np.abs(x).max() * np.abs(w).max() * red, _tol(dtype, red))
    _check(dx, ref["dx"], np.abs(dy).max() * np.abs(w).max() * red_dx, _tol(dtype, red_dx))


@pytest.mark.parametrize("room", [0, -1])
def test_shifted_copies_stay_under_their_cap(rng, monkeypatch, configure, room):
    """A sample whose shifted copies of x exceed ``config.conv_shift_bytes`` is packed instead (forward and
    filter gradient), so the workspace stays bounded whatever the image size; at the cap both
    stride-1 paths take the copies."""
    x, w, _ = _case(rng, "NCHW", 2, 8, 9, 40, 5, 3, 3, 1, np.float64)
    g = conv_mod._prepare("conv2d", {"x": x, "w": w}, padding=1)[3]
    configure(conv_shift_bytes=columns.shift_bytes(g, x.dtype) + room)
    calls = []
    for mod, name in ((implicit_forward, "conv2d_nchw_shifted"), (implicit_dw, "conv2d_nchw_dw_dot")):
        real = getattr(mod, name)
        # one call per part and chunk of samples: record the first part of the first chunk, (t, n0) == (0, 0)
        monkeypatch.setattr(mod, name,
                            lambda *a, _n=name, _f=real: (a[0] == a[21] == 0 and calls.append(_n), _f(*a)))
    y = nl.conv2d(x, w, padding=1)
    dy = rng.standard_normal(y.shape)
    dx, dw, _ = nl.conv2d_backward(dy, x, w, padding=1)
    ref = conv2d_ref(x, w, dy=dy, padding=1)
    _check(y, ref["y"], np.abs(x).max() * np.abs(w).max() * 72, _tol(np.float64, 72))
    _check(dx, ref["dx"], np.abs(dy).max() * np.abs(w).max() * 45, _tol(np.float64, 45))
    _check(dw, ref["dw"], np.abs(dy).max() * np.abs(x).max() * 720, _tol(np.float64, 720))
    # the input gradient, a convolution of dy's 5 channels, takes copies 5/8 the size: under the cap either way
    assert sorted(calls) == (["conv2d_nchw_dw_dot", "conv2d_nchw_shifted", "conv2d_nchw_shifted"] if room == 0
                             else ["conv2d_nchw_shifted"])


@pytest.mark.parametrize("cfg", FUSED_CASES + [
    (2, 60, 5, 6, 7, 3, 3, 1, 1, 1, 1),   # C*R*S = 540: two column blocks of the filter gradient
    (3, 3, 20, 20, 5, 3, 3, 1, 1, 1, 1),  # 400 pixels per sample: two depth blocks, 3 samples
])
def test_implicit_gemm_backward(rng, configure, cfg):
    """dw from x without columns; for stride 1, dx as the implicit-GEMM convolution of dy with the
    flipped, channel-swapped filter (padding dh*(R-1) - ph0 per side, negative for padding 3
    with a 3x3 kernel)."""
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, _ = _case(rng, "NCHW", N, C, H, W, K, R, S, groups, np.float64)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy = rng.standard_normal(conv2d_ref(x, w, **kw)["y"].shape)
    ref = conv2d_ref(x, w, dy=dy, **kw)
    npix = dy.size // K
    configure(conv_fused_min_channels=1)
    for fused in (True, False):
        configure(conv_fused=fused)
        dx, dw, _ = nl.conv2d_backward(dy, x, w, **kw)
        _check(dx, ref["dx"], np.abs(dy).max() * np.abs(w).max() * K * R * S, _tol(np.float64, K * R * S))
        _check(dw, ref["dw"], np.abs(dy).max() * np.abs(x).max() * npix, _tol(np.float64, npix))
        for need_dx, need_dw in ((True, False), (False, True)):
            got = conv_mod._conv2d_backward(dy, x, w, need_dx=need_dx, need_dw=need_dw, **kw)
            assert (got[0] is None) != need_dx and (got[1] is None) != need_dw
            np.testing.assert_allclose(got[0] if need_dx else got[1], dx if need_dx else dw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("cfg", [c for c in FUSED_CASES if c[7] == 1] + [
    (3, 16, 2, 16, 7, 3, 3, 1, 1, 1, 1),    # P*Q = 32: whole vectors, no masked tail
    (1, 9, 20, 21, 10, 3, 3, 1, 1, 1, 1),   # N = 1, Kg = 10 and C*R*S = 81: edge tiles both ways
    (2, 12, 7, 9, 6, 5, 3, 1, (2, 1), (1, 2), 3),  # groups, dilation, 5x3
])
def test_dw_dot_products(rng, configure, dtype, chunked, cfg):
    """The stride-1 filter gradient by dot products (:func:`implicit_dw.conv2d_nchw_dw_dot`)
    against the reference, in float32 and float64; ``chunked``: one sample per chunk (partial
    sums added into dw) and one tile column per group; also its packed-GEMM alternative."""
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    x, w, _ = _case(rng, "NCHW", N, C, H, W, K, R, S, groups, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy = rng.standard_normal(conv2d_ref(x, w, **kw)["y"].shape).astype(dtype)
    ref = conv2d_ref(x, w, dy=dy, **kw)["dw"]
    npix = dy.size // K
    configure(conv_fused_min_channels=1, conv_fused=True)
    if chunked:
        configure(conv_dot_a_bytes=1, conv_dot_b_bytes=1)
    g = conv_mod._prepare("conv2d", {"x": x, "w": w}, **kw)[3]
    for dot in (True, False):
        configure(conv_dw_dot=dot)
        dw = conv_mod._conv2d_backward(dy, x, w, need_dx=False, **kw)[1]
        assert dw.dtype == dtype
        _check(dw, ref, np.abs(dy).max() * np.abs(x).max() * npix, _tol(dtype, npix))
        acc = np.ones_like(w)  # beta = 1: accumulated into
        implicit_dw.conv2d_nchw_dw_into(x, dy, acc, g, 1.0)
        _check(acc, ref + 1, np.abs(dy).max() * np.abs(x).max() * npix, _tol(dtype, npix))
