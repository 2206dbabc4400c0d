"""CPU depthwise convolution, NCHW: one input channel per group (``groups == C``), each
producing ``M = K / C`` output channels (the channel multiplier), any stride, padding and
dilation. Direct stencils, no GEMM: a depthwise layer does ``R*S`` multiply-adds per output
value, too few to fill a GEMM's tiles.

**Phase layout.** Each input plane is copied, zero-padded, into a buffer split into the
``sh*sw`` stride phases: padded element ``(hp, vp)`` goes to phase ``(hp % sh, vp % sw)`` at row
``hp // sh``, column ``vp // sw``; every phase is ``Hq x Wq`` (``Hq = P + (R-1)*dh // sh``,
``Wq = Q + (S-1)*dw // sw``: exactly what the outputs read). Output ``(p, q)`` of tap ``(r, s)``
is then phase ``(r*dh % sh, s*dw % sw)`` at row ``p + r*dh // sh``, column ``q + s*dw // sw``,
so a tap is *one contiguous run* of ``L = P * Wq`` values (rounded up to whole vectors) whatever
the stride, and every loop over it is a long vector loop however small or strided the plane.
Outputs are formed in rows of ``Wq``, the last ``Wq - Q`` columns of each computed and dropped.
At stride 1 the copy is a plain zero-padded plane. Each thread keeps its buffers across planes.

- forward: per output plane, the sum of the taps' runs (3x3: all nine in one pass; 5-wide
  filters: a row's five);
- filter gradient: per tap, the dot product of dy, laid out in rows of ``Wq`` with zeros in the
  dropped columns, and the tap's run (fused as in the forward: several dot products per pass);
- input gradient: for stride 1 and multiplier 1, the forward of dy with the flipped filter;
  otherwise each tap's run of ``w * dy`` added into a phase buffer, then copied back into the
  plane (the adjoint of the input's copy).

The dropped columns hold real input values (the next row's). In the gradients they meet the
zeros of dy, which adds exact zeros unless a value is not finite (``0 * inf``). So a filter
gradient with a non-finite value, and the input gradient of a filter with one, are recomputed
row by row over the columns outputs hold (``exact``). Padding is literal zeros, as in PyTorch:
the forward and the filter gradient include its products (``0 * inf`` is NaN), the input
gradient only the outputs' terms.

Interface (``numlin.nn._conv_plan`` decides when it applies): ``conv2d_into(x, w, y, g, beta,
bias=None)``, ``dx_into(dy, w, dx, g)``, ``dw_into(x, dy, dw, g)``: C-contiguous arrays of one
dtype; ``g`` a :class:`numlin._geometry.Conv2dGeometry`. ``config.conv_depthwise_whole_runs``
and ``config.conv_depthwise_fused_taps`` choose between the kernels' variants (A/B timing, tests).
"""
from __future__ import annotations

import numpy as np
from .._jit import njit, uintp

from ...._config import config
from .._threads import launch, num_threads

__all__ = ["conv2d_into", "dx_into", "dw_into"]

#: runs rounded up to a multiple of this many values (a 16-lane float32 vector), so that none
#: ends in LLVM's scalar remainder loop, which on small planes costs as much as the vector loop
RUN_ROUND = 16


# ----------------------------------------------------------------------------------------------
# Phase layout (module docstring)

def _layout(H, W, R, S, sh, sw, ph0, pw0, dh, dw, P, Q):
    """``(Hq, Wq, L, size, taps, cols)`` of the phase layout: phase rows and columns, run
    length, buffer size (the runs of the last phase read up to ``(S-1)*dw // sw`` values, and
    the rounding of ``L`` as many again, past its end), each tap's run offset, and per phase
    column ``j`` the first input column it holds, that column's place in the phase and how
    many it holds (``cols[j] = (v0, u0, n)``, used for strides over 2)."""
    Hq = P + (R - 1) * dh // sh
    Wq = Q + (S - 1) * dw // sw
    L = -(-P * Wq // RUN_ROUND) * RUN_ROUND
    size = sh * sw * Hq * Wq + (S - 1) * dw // sw + L - P * Wq
    taps = np.array([(((r * dh % sh) * sw + s * dw % sw) * Hq + r * dh // sh) * Wq + s * dw // sw
                     for r in range(R) for s in range(S)], np.int64)
    cols = np.zeros((sw, 3), np.int64)
    for j in range(sw):
        v0 = (j - pw0) % sw
        u0 = (v0 + pw0) // sw
        cols[j] = v0, u0, max(0, min(-(-(W - v0) // sw), Wq - u0))
    return Hq, Wq, L, size, taps, cols


@njit(cache=True, nogil=True, inline="always")
def _phase_copy(pf, pb, xp, H, W, sh, sw, ph0, pw0, Hq, Wq, cols, back):
    """``back`` False: the ``H x W`` plane at ``pf[pb:]`` into its places in the phase buffer
    ``xp`` (the rest of ``xp`` untouched: zero padding, kept across planes). ``back`` True, the
    adjoint: the plane from ``xp``, its values no output reads set to 0."""
    n1 = cols[0, 2]
    if sh == 1 and sw == 1 and not back:  # a plain padded copy: cheaper than the phase loop below
        for h in range(min(H, Hq - ph0)):
            d = uintp((h + ph0) * Wq + pw0)
            row = pb + uintp(h * W)
            for v in range(n1):
                xp[d + uintp(v)] = pf[row + uintp(v)]
        return
    a = ph0 // sh
    i = ph0 - a * sh
    for h in range(H):
        row = pb + uintp(h * W)
        if back:
            for v in range(W):
                pf[row + uintp(v)] = 0
        if a >= Hq:  # no output reads this row or any below
            if back:
                continue
            break
        base = uintp((i * sw * Hq + a) * Wq)
        if sw == 1:
            d = base + uintp(pw0)
            for v in range(n1):
                if back:
                    pf[row + uintp(v)] = xp[d + uintp(v)]
                else:
                    xp[d + uintp(v)] = pf[row + uintp(v)]
        elif sw == 2:
            # columns vs + 2t and vs + 2t + 1 go to phases 0 and 1 at the same place ub + t: one
            # loop over both (LLVM vectorises the interleaved pair; two strided loops it does not)
            vs = pw0 & 1
            ub = (vs + pw0) >> 1
            d0 = base + uintp(ub)
            d1 = base + uintp(Hq * Wq + ub)
            if vs == 1 and ub - 1 < Wq:  # column 0: phase 1, one place before ub
                if back:
                    pf[row] = xp[d1 - uintp(1)]
                else:
                    xp[d1 - uintp(1)] = pf[row]
            npair = min((W - vs) >> 1, Wq - ub)
            for t in range(npair):
                if back:
                    pf[row + uintp(vs + 2 * t)] = xp[d0 + uintp(t)]
                    pf[row + uintp(vs + 2 * t + 1)] = xp[d1 + uintp(t)]
                else:
                    xp[d0 + uintp(t)] = pf[row + uintp(vs + 2 * t)]
                    xp[d1 + uintp(t)] = pf[row + uintp(vs + 2 * t + 1)]
            v = vs + 2 * npair
            if v < W and ub + npair < Wq:  # an odd last column: phase 0
                if back:
                    pf[row + uintp(v)] = xp[d0 + uintp(npair)]
                else:
                    xp[d0 + uintp(npair)] = pf[row + uintp(v)]
        else:
            for j in range(sw):
                d = base + uintp(j * Hq * Wq + cols[j, 1])
                src = row + uintp(cols[j, 0])
                for t in range(cols[j, 2]):
                    if back:
                        pf[src + uintp(t * sw)] = xp[d + uintp(t)]
                    else:
                        xp[d + uintp(t)] = pf[src + uintp(t * sw)]
        i += 1
        if i == sh:
            i = 0
            a += 1


@njit(cache=True, nogil=True, inline="always")
def _rows_in(pf, pb, ye, P, Q, Wq):
    """The ``P x Q`` plane at ``pf[pb:]`` into rows of ``Wq`` in ``ye`` (its other columns
    untouched: zeros, kept across planes)."""
    for p in range(P):
        for q in range(Q):
            ye[uintp(p * Wq + q)] = pf[pb + uintp(p * Q + q)]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _forward(part, nparts, x, w, y, bias, H, W, sh, sw, ph0, pw0, P, Q, M, beta, Hq, Wq, L, size, taps, cols, fused, S5, nth):
    """``y = depthwise(x, w) [+ bias] + beta * y`` (``y`` not read when ``beta == 0``; no bias
    when ``bias`` is empty): per input plane the phase copy, then per output plane the sum of
    the taps' runs, formed in rows of ``Wq``, with the bias added as it is stored. ``fused``:
    a 3x3 filter's nine runs in one pass, or (``S5``, filter rows of five) a row's five."""
    N, K = y.shape[0], y.shape[1]
    C = K // M
    RS = taps.size
    xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    be = y.dtype.type(beta)
    nt = N * C
    nch = min(nt, nth)  # one chunk of planes per thread: its buffers are kept across planes
    for ch in range((nch) * part // nparts, (nch) * (part + 1) // nparts):
        xp = np.zeros(size, x.dtype)
        ye = np.empty(L, y.dtype)
        for t in range(ch * nt // nch, (ch + 1) * nt // nch):
            n = t // C
            c = t - n * C
            _phase_copy(xf, uintp(t * H * W), xp, H, W, sh, sw, ph0, pw0, Hq, Wq, cols, False)
            for k in range(c * M, (c + 1) * M):
                kb = uintp(k * RS)
                if fused and RS == 9:
                    w0, w1, w2 = wf[kb], wf[kb + uintp(1)], wf[kb + uintp(2)]
                    w3, w4, w5 = wf[kb + uintp(3)], wf[kb + uintp(4)], wf[kb + uintp(5)]
                    w6, w7, w8 = wf[kb + uintp(6)], wf[kb + uintp(7)], wf[kb + uintp(8)]
                    o0, o1, o2 = uintp(taps[0]), uintp(taps[1]), uintp(taps[2])
                    o3, o4, o5 = uintp(taps[3]), uintp(taps[4]), uintp(taps[5])
                    o6, o7, o8 = uintp(taps[6]), uintp(taps[7]), uintp(taps[8])
                    for e in range(L):
                        u = uintp(e)
                        ye[u] = (w0 * xp[o0 + u] + w1 * xp[o1 + u] + w2 * xp[o2 + u]
                                 + w3 * xp[o3 + u] + w4 * xp[o4 + u] + w5 * xp[o5 + u]
                                 + w6 * xp[o6 + u] + w7 * xp[o7 + u] + w8 * xp[o8 + u])
                elif fused and S5:
                    for r5 in range(RS // 5):  # a filter row of five taps per pass
                        b5 = kb + uintp(5 * r5)
                        w0, w1, w2 = wf[b5], wf[b5 + uintp(1)], wf[b5 + uintp(2)]
                        w3, w4 = wf[b5 + uintp(3)], wf[b5 + uintp(4)]
                        o0, o1, o2 = uintp(taps[5 * r5]), uintp(taps[5 * r5 + 1]), uintp(taps[5 * r5 + 2])
                        o3, o4 = uintp(taps[5 * r5 + 3]), uintp(taps[5 * r5 + 4])
                        if r5 == 0:
                            for e in range(L):
                                u = uintp(e)
                                ye[u] = (w0 * xp[o0 + u] + w1 * xp[o1 + u] + w2 * xp[o2 + u]
                                         + w3 * xp[o3 + u] + w4 * xp[o4 + u])
                        else:
                            for e in range(L):
                                u = uintp(e)
                                ye[u] += (w0 * xp[o0 + u] + w1 * xp[o1 + u] + w2 * xp[o2 + u]
                                          + w3 * xp[o3 + u] + w4 * xp[o4 + u])
                else:
                    for e in range(L):
                        ye[uintp(e)] = 0
                    for j in range(RS):
                        wv = wf[kb + uintp(j)]
                        o = uintp(taps[j])
                        for e in range(L):
                            ye[uintp(e)] += wv * xp[o + uintp(e)]
                yb = uintp((n * K + k) * P * Q)
                bk = bias[k] if bias.size else y.dtype.type(0)
                for p in range(P):
                    yr = yb + uintp(p * Q)
                    er = uintp(p * Wq)
                    if be != 0:
                        for q in range(Q):
                            yf[yr + uintp(q)] = ye[er + uintp(q)] + bk + be * yf[yr + uintp(q)]
                    elif bias.size:
                        for q in range(Q):
                            yf[yr + uintp(q)] = ye[er + uintp(q)] + bk
                    else:
                        for q in range(Q):
                            yf[yr + uintp(q)] = ye[er + uintp(q)]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _filter_grad(part, nparts, x, dy, dwt, H, W, sh, sw, ph0, pw0, P, Q, M, Hq, Wq, L, size, taps, cols, fused, S5, exact):
    """``dwt[k, j]`` = the sum over samples of the dot product of dy's plane ``(n, k)`` (rows of
    ``Wq``, zeros in the dropped columns) and tap ``j``'s run of x's phase copy (per-sample
    partials in the input dtype, float64 totals); ``exact``: over each row's ``Q`` columns
    only. One filter per iteration."""
    N, K = dy.shape[0], dy.shape[1]
    C = K // M
    RS = taps.size
    xf, dyf = x.reshape(-1), dy.reshape(-1)
    t_ = dy.dtype.type
    for k in range((K) * part // nparts, (K) * (part + 1) // nparts):
        c = k // M
        xp = np.zeros(size, x.dtype)
        ye = np.zeros(L, dy.dtype)
        tot = np.zeros(RS, np.float64)
        for n in range(N):
            _phase_copy(xf, uintp((n * C + c) * H * W), xp, H, W, sh, sw, ph0, pw0, Hq, Wq, cols, False)
            _rows_in(dyf, uintp((n * K + k) * P * Q), ye, P, Q, Wq)
            if exact:
                for j in range(RS):
                    o = uintp(taps[j])
                    part = t_(0)
                    for p in range(P):
                        rb = uintp(p * Wq)
                        for q in range(Q):
                            part += ye[rb + uintp(q)] * xp[o + rb + uintp(q)]
                    tot[j] += part
            elif fused and RS == 9:
                o0, o1, o2 = uintp(taps[0]), uintp(taps[1]), uintp(taps[2])
                o3, o4, o5 = uintp(taps[3]), uintp(taps[4]), uintp(taps[5])
                o6, o7, o8 = uintp(taps[6]), uintp(taps[7]), uintp(taps[8])
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = t_(0)
                for e in range(L):
                    u = uintp(e)
                    d = ye[u]
                    s0 += d * xp[o0 + u]
                    s1 += d * xp[o1 + u]
                    s2 += d * xp[o2 + u]
                    s3 += d * xp[o3 + u]
                    s4 += d * xp[o4 + u]
                    s5 += d * xp[o5 + u]
                    s6 += d * xp[o6 + u]
                    s7 += d * xp[o7 + u]
                    s8 += d * xp[o8 + u]
                tot[0] += s0
                tot[1] += s1
                tot[2] += s2
                tot[3] += s3
                tot[4] += s4
                tot[5] += s5
                tot[6] += s6
                tot[7] += s7
                tot[8] += s8
            elif fused and S5:
                for r5 in range(RS // 5):  # a filter row of five taps per pass over dy
                    j5 = 5 * r5
                    o0, o1, o2 = uintp(taps[j5]), uintp(taps[j5 + 1]), uintp(taps[j5 + 2])
                    o3, o4 = uintp(taps[j5 + 3]), uintp(taps[j5 + 4])
                    s0 = s1 = s2 = s3 = s4 = t_(0)
                    for e in range(L):
                        u = uintp(e)
                        d = ye[u]
                        s0 += d * xp[o0 + u]
                        s1 += d * xp[o1 + u]
                        s2 += d * xp[o2 + u]
                        s3 += d * xp[o3 + u]
                        s4 += d * xp[o4 + u]
                    tot[j5] += s0
                    tot[j5 + 1] += s1
                    tot[j5 + 2] += s2
                    tot[j5 + 3] += s3
                    tot[j5 + 4] += s4
            else:
                for j in range(RS):
                    o = uintp(taps[j])
                    part = t_(0)
                    for e in range(L):
                        part += ye[uintp(e)] * xp[o + uintp(e)]
                    tot[j] += part
        for j in range(RS):
            dwt[k * RS + j] = tot[j]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _input_grad(part, nparts, dy, w, dx, H, W, sh, sw, ph0, pw0, P, Q, M, Hq, Wq, L, size, taps, cols, nth, exact):
    """``dx``: per input plane, each of its output planes' taps adds its run of ``w * dy``
    (dy in rows of ``Wq``, zeros in the dropped columns; ``exact``: each row's ``Q`` columns
    only) into a phase buffer, which is then copied back into the plane (:func:`_phase_copy`'s
    adjoint)."""
    N, C = dx.shape[0], dx.shape[1]
    K = C * M
    RS = taps.size
    dyf, wf, dxf = dy.reshape(-1), w.reshape(-1), dx.reshape(-1)
    nt = N * C
    nch = min(nt, nth)  # one chunk of planes per thread: its buffers are kept across planes
    for ch in range((nch) * part // nparts, (nch) * (part + 1) // nparts):
        xp = np.empty(size, dx.dtype)
        ye = np.zeros(L, dy.dtype)
        for t in range(ch * nt // nch, (ch + 1) * nt // nch):
            n = t // C
            c = t - n * C
            for i in range(size):
                xp[uintp(i)] = 0
            for k in range(c * M, (c + 1) * M):
                _rows_in(dyf, uintp((n * K + k) * P * Q), ye, P, Q, Wq)
                for j in range(RS):
                    wv = wf[uintp(k * RS + j)]
                    o = uintp(taps[j])
                    if exact:
                        for p in range(P):
                            rb = uintp(p * Wq)
                            for q in range(Q):
                                xp[o + rb + uintp(q)] += wv * ye[rb + uintp(q)]
                    else:
                        for e in range(L):
                            xp[o + uintp(e)] += wv * ye[uintp(e)]
            _phase_copy(dxf, uintp(t * H * W), xp, H, W, sh, sw, ph0, pw0, Hq, Wq, cols, True)


# ----------------------------------------------------------------------------------------------
# Interface

def _threads() -> int:
    """The number of threads (chunks of planes, one per part) for the phase kernels."""
    return num_threads()


def _phase_args(g):
    """The phase kernels' geometry arguments for ``g`` (before ``M``), then its layout."""
    lay = _layout(g.H, g.W, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw, g.P, g.Q)
    return (g.H, g.W, g.sh, g.sw, g.ph0, g.pw0, g.P, g.Q, g.K // g.C), lay


def conv2d_into(x: np.ndarray, w: np.ndarray, y: np.ndarray, g, beta: float, bias: np.ndarray | None = None) -> None:
    """``y = depthwise conv2d(x, w) [+ bias] + beta * y`` (``bias`` of ``y``'s dtype, shape ``(K,)``)."""

    geo, lay = _phase_args(g)
    b = np.empty(0, y.dtype) if bias is None else bias
    nth = _threads()
    launch(_forward, nth, x, w, y, b, *geo, beta, *lay, config.conv_depthwise_fused_taps, g.S == 5, nth)


def _dx_as_forward(g):
    """For stride 1 and multiplier 1, the input gradient is the forward convolution of ``dy``
    with the flipped filter, its leading paddings ``(R-1)*dh - ph0`` and ``(S-1)*dw - pw0``
    (the trailing ones follow from the sizes; negative is a crop, which the phase copy does at
    the end, not at the start): those two, or None."""
    if g.sh != 1 or g.sw != 1 or g.K != g.C:
        return None
    pads = (g.dh * (g.R - 1) - g.ph0, g.dw * (g.S - 1) - g.pw0)
    return pads if min(pads) >= 0 else None


def dx_into(dy: np.ndarray, w: np.ndarray, dx: np.ndarray, g) -> None:
    """``dx`` = the input gradient of the depthwise convolution ``g`` for ``dy``."""

    # whole runs and the padded forward multiply w by zeros that are no output's (dropped
    # columns, padding): exact for a finite filter only
    runs = config.conv_depthwise_whole_runs and bool(np.isfinite(w).all())
    pads = _dx_as_forward(g) if runs else None
    if pads is not None:
        wf = np.ascontiguousarray(w[:, :, ::-1, ::-1])
        lay = _layout(g.P, g.Q, g.R, g.S, 1, 1, *pads, g.dh, g.dw, g.H, g.W)
        nth = _threads()
        launch(_forward, nth, dy, wf, dx, np.empty(0, dx.dtype), g.P, g.Q, 1, 1, *pads, g.H, g.W, 1, 0.0, *lay,
               config.conv_depthwise_fused_taps, g.S == 5, nth)
    else:
        geo, lay = _phase_args(g)
        nth = _threads()
        launch(_input_grad, nth, dy, w, dx, *geo, *lay, nth, not runs)


def dw_into(x: np.ndarray, dy: np.ndarray, dw: np.ndarray, g) -> None:
    """``dw`` = the filter gradient of the depthwise convolution ``g`` for ``dy``."""

    total = np.empty(dw.size, np.float64)
    geo, lay = _phase_args(g)
    parts = max(1, min(_threads(), g.K))
    runs, taps = config.conv_depthwise_whole_runs, config.conv_depthwise_fused_taps
    launch(_filter_grad, parts, x, dy, total, *geo, *lay, taps, g.S == 5, not runs)
    if runs and not np.isfinite(total).all():  # 0 * inf in the dropped columns?
        launch(_filter_grad, parts, x, dy, total, *geo, *lay, taps, g.S == 5, True)
    dw.reshape(-1)[:] = total
