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


def _args(g):
    return g.H, g.W, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw, g.P, g.Q, g.K // g.C


def conv2d_into(x: np.ndarray, w: np.ndarray, y: np.ndarray, g, beta: float) -> None:
    """``y = depthwise conv2d(x, w) + beta * y`` (:func:`applies` holds)."""
    from ..._dispatch import parallel_guard

    with parallel_guard():
        _forward(x, w, y, *_args(g), beta)


def dx_into(dy: np.ndarray, w: np.ndarray, dx: np.ndarray, g) -> None:
    """``dx`` = the input gradient of the depthwise convolution ``g`` for ``dy``."""
    from ..._dispatch import parallel_guard

    with parallel_guard():
        _input_grad(dy, w, dx, *_args(g))


def dw_into(x: np.ndarray, dy: np.ndarray, dw: np.ndarray, g) -> None:
    """``dw`` = the filter gradient of the depthwise convolution ``g`` for ``dy``."""
    from ..._dispatch import parallel_guard

    total = np.empty(dw.size, np.float64)
    with parallel_guard():
        _filter_grad(x, dy, total, *_args(g))
    dw.reshape(-1)[:] = total
