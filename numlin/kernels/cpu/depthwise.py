"""CPU depthwise convolution, NCHW: one input channel per group (``groups == C``), each
producing ``M = K / C`` output channels (the channel multiplier), any stride, padding and
dilation. Direct stencils, no GEMM: a depthwise layer does ``R*S`` multiply-adds per output
value, too few for a GEMM's tiles (through the implicit GEMM or im2col it ran at ~5 GFLOP/s).

Output row ``p`` of plane ``(n, k)`` is the sum over taps ``(r, s)`` of ``w[k, r, s]`` times a
run of input row ``h = p*sh - ph + r*dh`` starting at column ``q*sw - pw + s*dw``: for stride 1
a contiguous run, so every loop over ``q`` is a vector loop. The input gradient scatters the
same runs back (each thread owns whole input planes: no races); the filter gradient is one dot
product of ``dy`` and the shifted input per tap.

Interface: ``applies(g)``, ``conv2d_into(x, w, y, g, beta)``, ``dx_into(dy, w, dx, g)``,
``dw_into(x, dy, dw, g)``: C-contiguous arrays of one dtype; ``g`` a
:class:`numlin.nn.conv.Conv2dGeometry`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, uintp

from .im2col import _q_range

__all__ = ["applies", "conv2d_into", "dx_into", "dw_into"]

#: stride 1, rows under PADDED_MAX_WIDTH outputs: the forward, the filter gradient and (with
#: multiplier 1, as the forward of dy with the flipped filter) the input gradient over
#: zero-padded plane copies, a tap being one run over all rows (off: row runs, for A/B timing and
#: the tests). Wider rows vectorise as they are and the copy would only add a pass (112^2:
#: 2.7 ms padded against 2.3 by rows; 14^2: 0.32 against 1.0).
PADDED = True
PADDED_MAX_WIDTH = 64


def applies(g) -> bool:
    """Whether ``g`` is a depthwise NCHW convolution (one input channel per group, more than
    one group) with a filter larger than 1x1."""
    return g.layout == "NCHW" and g.groups == g.C and g.C > 1 and g.R * g.S > 1


@njit(cache=True, nogil=True)
def _runs(Q, W, sw, pw, S, dw):
    """``qs[s], qe[s]``: the output columns whose input column ``q*sw - pw + s*dw`` is inside
    the row (computed once per call, not per row: the divisions cost more than a short run)."""
    qs = np.empty(S, np.int64)
    qe = np.empty(S, np.int64)
    for s in range(S):
        qs[s], qe[s] = _q_range(Q, W, sw, pw, s * dw)
    return qs, qe


@njit(cache=True, parallel=True, nogil=True, fastmath={"contract"})
def _forward(x, w, y, H, W, R, S, sh, sw, ph, pw, dh, dw, P, Q, M, beta):
    """``y = depthwise(x, w) + beta * y`` (``y`` not read when ``beta == 0``), one output plane
    per iteration, each output row accumulated in place (it stays in L1)."""
    N, K = y.shape[0], y.shape[1]
    xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    C = K // M
    be = y.dtype.type(beta)
    qs, qe = _runs(Q, W, sw, pw, S, dw)
    for t in prange(N * K):
        n = t // K
        k = t - n * K
        c = k // M
        xb = uintp((n * C + c) * H * W)
        for p in range(P):
            yr = uintp(t * P * Q + p * Q)
            if be == 0:
                for q in range(Q):
                    yf[yr + uintp(q)] = 0
            else:
                for q in range(Q):
                    yf[yr + uintp(q)] *= be
            for r in range(R):
                h = p * sh - ph + r * dh
                if h < 0 or h >= H:
                    continue
                xr = xb + uintp(h * W)
                for s in range(S):
                    wv = wf[uintp((k * R + r) * S + s)]
                    off = s * dw - pw
                    if sw == 1:
                        for q in range(qs[s], qe[s]):
                            yf[yr + uintp(q)] += wv * xf[xr + uintp(q + off)]
                    else:
                        for q in range(qs[s], qe[s]):
                            yf[yr + uintp(q)] += wv * xf[xr + uintp(q * sw + off)]


@njit(cache=True, nogil=True, inline="always")
def _pad_plane(xf, xb, xp, H, W, Wp, ph0, pw0):
    """Copy the ``H x W`` plane at ``xf[xb:]`` into the zero-bordered ``xp`` (rows ``Wp`` wide),
    its corner at row ``ph0``, column ``pw0``."""
    for h in range(H):
        for v in range(W):
            xp[uintp((h + ph0) * Wp + pw0 + v)] = xf[xb + uintp(h * W + v)]


@njit(cache=True, parallel=True, nogil=True, fastmath={"contract"})
def _forward_padded(x, w, y, H, W, R, S, ph0, ph1, pw0, pw1, dh, dw, P, Q, M, beta):
    """Stride 1: each input plane copied once into a zero-padded ``Hp x Wp`` buffer; then a tap
    is one run of ``P * Wp`` values (``ye[i] += w * xp[i + r*dh*Wp + s*dw]``: whole rows of the
    padded width, the last ``(S-1)*dw`` columns of each discarded), long enough for the vector
    loop however narrow the plane; one input plane and its M filters per iteration."""
    N, K = y.shape[0], y.shape[1]
    C = K // M
    Hp, Wp = H + ph0 + ph1, W + pw0 + pw1
    xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    be = y.dtype.type(beta)
    L = P * Wp
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        xp = np.zeros(Hp * Wp + (S - 1) * dw, x.dtype)
        ye = np.empty(L, y.dtype)
        _pad_plane(xf, uintp(t * H * W), xp, H, W, Wp, ph0, pw0)
        for k in range(c * M, (c + 1) * M):
            for i in range(L):
                ye[uintp(i)] = 0
            for r in range(R):
                for s in range(S):
                    wv = wf[uintp((k * R + r) * S + s)]
                    o = uintp(r * dh * Wp + s * dw)
                    for i in range(L):
                        ye[uintp(i)] += wv * xp[o + uintp(i)]
            yb = uintp((n * K + k) * P * Q)
            for p in range(P):
                yr = yb + uintp(p * Q)
                er = uintp(p * Wp)
                if be == 0:
                    for q in range(Q):
                        yf[yr + uintp(q)] = ye[er + uintp(q)]
                else:
                    for q in range(Q):
                        yf[yr + uintp(q)] = ye[er + uintp(q)] + be * yf[yr + uintp(q)]


@njit(cache=True, parallel=True, nogil=True, fastmath={"contract"})
def _input_grad(dy, w, dx, H, W, R, S, sh, sw, ph, pw, dh, dw, P, Q, M):
    """``dx = 0``, then every tap's run of ``w * dy`` added back where the forward read it; one
    input plane (and its M output planes) per iteration."""
    N, C = dx.shape[0], dx.shape[1]
    dyf, wf, dxf = dy.reshape(-1), w.reshape(-1), dx.reshape(-1)
    K = C * M
    qs, qe = _runs(Q, W, sw, pw, S, dw)
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        xb = uintp(t * H * W)
        for i in range(H * W):
            dxf[xb + uintp(i)] = 0
        for k in range(c * M, (c + 1) * M):
            yb = uintp((n * K + k) * P * Q)
            for p in range(P):
                yr = yb + uintp(p * Q)
                for r in range(R):
                    h = p * sh - ph + r * dh
                    if h < 0 or h >= H:
                        continue
                    xr = xb + uintp(h * W)
                    for s in range(S):
                        wv = wf[uintp((k * R + r) * S + s)]
                        off = s * dw - pw
                        if sw == 1:
                            for q in range(qs[s], qe[s]):
                                dxf[xr + uintp(q + off)] += wv * dyf[yr + uintp(q)]
                        else:
                            for q in range(qs[s], qe[s]):
                                dxf[xr + uintp(q * sw + off)] += wv * dyf[yr + uintp(q)]


@njit(cache=True, parallel=True, nogil=True, fastmath={"reassoc", "contract"})
def _filter_grad(x, dy, dwt, H, W, R, S, sh, sw, ph, pw, dh, dw, P, Q, M):
    """``dwt[k, r, s] = sum_n sum_p sum_q dy[n, k, p, q] * x[n, c, h, w]`` (float64 totals of
    per-row partial dot products in the input dtype), one filter per iteration."""
    N, K = dy.shape[0], dy.shape[1]
    C = K // M
    xf, dyf = x.reshape(-1), dy.reshape(-1)
    t_ = dy.dtype.type
    qs, qe = _runs(Q, W, sw, pw, S, dw)
    for k in prange(K):
        c = k // M
        for r in range(R):
            for s in range(S):
                off = s * dw - pw
                total = 0.0
                for n in range(N):
                    xb = uintp((n * C + c) * H * W)
                    yb = uintp((n * K + k) * P * Q)
                    for p in range(P):
                        h = p * sh - ph + r * dh
                        if h < 0 or h >= H:
                            continue
                        xr = xb + uintp(h * W)
                        yr = yb + uintp(p * Q)
                        part = t_(0)
                        if sw == 1:
                            for q in range(qs[s], qe[s]):
                                part += dyf[yr + uintp(q)] * xf[xr + uintp(q + off)]
                        else:
                            for q in range(qs[s], qe[s]):
                                part += dyf[yr + uintp(q)] * xf[xr + uintp(q * sw + off)]
                        total += part
                dwt[(k * R + r) * S + s] = total


@njit(cache=True, parallel=True, nogil=True, fastmath={"reassoc", "contract"})
def _filter_grad_padded(x, dy, dwt, H, W, R, S, ph0, ph1, pw0, pw1, dh, dw, P, Q, M):
    """Stride 1: :func:`_filter_grad` with each sample's input plane in a zero-padded copy
    (as :func:`_forward_padded`) and its dy plane in rows of the padded width (the extra
    columns zero), so a tap's dot product is one run of ``P * Wp`` values; one filter per
    iteration."""
    N, K = dy.shape[0], dy.shape[1]
    C = K // M
    Hp, Wp = H + ph0 + ph1, W + pw0 + pw1
    L = P * Wp
    xf, dyf = x.reshape(-1), dy.reshape(-1)
    t_ = dy.dtype.type
    for k in prange(K):
        c = k // M
        xp = np.zeros(Hp * Wp + (S - 1) * dw, x.dtype)
        ye = np.zeros(L, dy.dtype)
        tot = np.zeros(R * S, np.float64)
        for n in range(N):
            _pad_plane(xf, uintp((n * C + c) * H * W), xp, H, W, Wp, ph0, pw0)
            yb = uintp((n * K + k) * P * Q)
            for p in range(P):
                for q in range(Q):
                    ye[uintp(p * Wp + q)] = dyf[yb + uintp(p * Q + q)]
            for r in range(R):
                for s in range(S):
                    o = uintp(r * dh * Wp + s * dw)
                    part = t_(0)
                    for i in range(L):
                        part += ye[uintp(i)] * xp[o + uintp(i)]
                    tot[r * S + s] += part
        for j in range(R * S):
            dwt[k * R * S + j] = tot[j]


def _args(g):
    return g.H, g.W, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw, g.P, g.Q, g.K // g.C


def conv2d_into(x: np.ndarray, w: np.ndarray, y: np.ndarray, g, beta: float) -> None:
    """``y = depthwise conv2d(x, w) + beta * y`` (:func:`applies` holds)."""
    from ..._dispatch import parallel_guard

    with parallel_guard():
        if _padded(g, g.Q):
            _forward_padded(x, w, y, g.H, g.W, g.R, g.S, g.ph0, g.ph1, g.pw0, g.pw1, g.dh, g.dw, g.P, g.Q,
                            g.K // g.C, beta)
        else:
            _forward(x, w, y, *_args(g), beta)


def _padded(g, width: int) -> bool:
    """Stride 1 with output rows under :data:`PADDED_MAX_WIDTH`: the padded-copy kernels."""
    return PADDED and g.sh == g.sw == 1 and width < PADDED_MAX_WIDTH


def _dx_as_forward(g):
    """For stride 1 and multiplier 1, the input gradient is the forward convolution of ``dy``
    with the flipped filter and paddings ``(R-1)*dh - ph`` (etc.): those paddings, or None when
    one is negative (a crop, which the padded copies do not do)."""
    if g.sh != 1 or g.sw != 1 or g.K != g.C:
        return None
    th, tw = g.dh * (g.R - 1), g.dw * (g.S - 1)
    pads = (th - g.ph0, th - g.ph1, tw - g.pw0, tw - g.pw1)
    return pads if min(pads) >= 0 else None


def dx_into(dy: np.ndarray, w: np.ndarray, dx: np.ndarray, g) -> None:
    """``dx`` = the input gradient of the depthwise convolution ``g`` for ``dy``."""
    from ..._dispatch import parallel_guard

    pads = _dx_as_forward(g) if _padded(g, g.W) else None
    if pads is not None:
        wf = np.ascontiguousarray(w[:, :, ::-1, ::-1])
        with parallel_guard():
            _forward_padded(dy, wf, dx, g.P, g.Q, g.R, g.S, *pads, g.dh, g.dw, g.H, g.W, 1, 0.0)
        return
    with parallel_guard():
        _input_grad(dy, w, dx, *_args(g))


def dw_into(x: np.ndarray, dy: np.ndarray, dw: np.ndarray, g) -> None:
    """``dw`` = the filter gradient of the depthwise convolution ``g`` for ``dy``."""
    from ..._dispatch import parallel_guard

    total = np.empty(dw.size, np.float64)
    with parallel_guard():
        if _padded(g, g.Q):
            _filter_grad_padded(x, dy, total, g.H, g.W, g.R, g.S, g.ph0, g.ph1, g.pw0, g.pw1, g.dh, g.dw, g.P, g.Q,
                                g.K // g.C)
        else:
            _filter_grad(x, dy, total, *_args(g))
    dw.reshape(-1)[:] = total
