"""CPU pooling kernels, NCHW: ``x (N, C, H, W)`` C-contiguous, windows ``kh x kw`` with stride
``(sh, sw)`` and zero/-inf padding ``(ph, pw)``; ``y (N, C, P, Q)``. One (n, c) plane per
parallel iteration, so the backward scatter-adds never race.

The backend interface (same names in ``numlin.kernels.cuda.pool``):
``max_pool2d(x, k, s, p) -> (y, argmax)``, ``max_pool2d_backward(g, argmax, x_shape)``,
``max_pool2d_gather(h, argmax, y_shape)`` (the adjoint of the backward scatter, for second
derivatives), ``avg_pool2d(x, k, s, p)``, ``avg_pool2d_backward(g, x_shape, k, s, p)``.
"""
from __future__ import annotations

import numpy as np

from . import _pool
from ._jit import njit, uintp

from ._threads import launch, split

__all__ = ["max_pool2d", "max_pool2d_backward", "max_pool2d_gather", "avg_pool2d", "avg_pool2d_backward"]


@njit(cache=True, nogil=True, inline="always")
def _window_max(xf, o, W, kh, kw):
    """``(max, flat index)`` of the ``kh x kw`` window whose corner is ``xf[o]`` (rows ``W``
    apart, all inside the plane): the first maximum, or the first NaN."""
    best = xf[o]
    bo = o
    for r in range(kh):
        for s in range(kw):
            i = o + uintp(r * W + s)
            v = xf[i]
            if not v <= best and best == best:  # v > best, or the first NaN
                best = v
                bo = i
    return best, bo


@njit(cache=True, nogil=True, inline="always")
def _max_pool_plane(xf, yf, af, t, H, W, P, Q, kh, kw, sh, sw):
    """Unpadded max pooling of plane ``t`` (flat C-ordered buffers, unsigned offsets: no index
    wraparound code); ``af``: the argmax's flat index in the plane."""
    HW = H * W
    for p in range(P):
        for q in range(Q):
            best, bo = _window_max(xf, uintp(t * HW + p * sh * W + q * sw), W, kh, kw)
            d = uintp(t * P * Q + p * Q + q)
            yf[d] = best
            af[d] = bo - uintp(t * HW)


@njit(cache=True, nogil=True, inline="always")
def _max_pool_plane_padded(x, xf, y, arg, t, kh, kw, sh, sw, ph, pw):
    """Max pooling of plane ``t`` where windows may reach into the padding: interior windows by
    :func:`_window_max`, border ones with bounds checks."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    P, Q = y.shape[2], y.shape[3]
    HW = H * W
    n = t // C
    c = t - n * C
    for p in range(P):
        h0 = p * sh - ph
        rows_in = h0 >= 0 and h0 + kh <= H
        for q in range(Q):
            w0 = q * sw - pw
            if rows_in and w0 >= 0 and w0 + kw <= W:  # an interior window: unchecked
                best, bo = _window_max(xf, uintp(t * HW + h0 * W + w0), W, kh, kw)
                y[n, c, p, q] = best
                arg[n, c, p, q] = bo - uintp(t * HW)
                continue
            best = -np.inf
            bi = -1
            for r in range(kh):
                h = h0 + r
                if h < 0 or h >= H:
                    continue
                for s in range(kw):
                    w = w0 + s
                    if w < 0 or w >= W:
                        continue
                    v = x[n, c, h, w]
                    if bi < 0 or (best == best and (v > best or v != v)):  # the first max, or the first NaN
                        best = v
                        bi = h * W + w
                        if v != v:
                            break
            y[n, c, p, q] = best
            arg[n, c, p, q] = bi


@njit(cache=True, nogil=True)
def _max_pool(part, nparts, x, y, arg, kh, kw, sh, sw, ph, pw):
    """``y[n, c, p, q]`` = max of the window; ``arg`` = its flat index ``h * W + w`` in the plane
    (-1 for a window entirely in the padding, which then yields -inf)."""
    N, C = x.shape[0], x.shape[1]
    xf = x.reshape(-1)
    # without padding every window is interior: none is checked
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        _max_pool_plane_padded(x, xf, y, arg, t, kh, kw, sh, sw, ph, pw)


@njit(cache=True, nogil=True)
def _max_pool_2x2(part, nparts, x, y, arg, sh, sw):
    """:func:`_max_pool` for an unpadded 2x2 window (the common CNN case): the window is a literal
    in the inlined plane loop, so LLVM unrolls it (as a run-time value: 2.5-5x slower)."""
    N, C, H, W = x.shape
    xf, yf, af = x.reshape(-1), y.reshape(-1), arg.reshape(-1)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        _max_pool_plane(xf, yf, af, t, H, W, y.shape[2], y.shape[3], 2, 2, sh, sw)


@njit(cache=True, nogil=True)
def _max_pool_2x2_s2(part, nparts, x, y, arg):
    """:func:`_max_pool_2x2` with stride 2 literal too: LLVM vectorises the rows (3x faster than
    with a run-time stride at 8x64x112x112, 1.0 ms against 3.0-3.6). Faster at every row length
    (seventh session, paired, 2 threads: 8x8 planes 109 against 121 us, 16x16 66 against 340,
    4x4 61 against 65), so it serves every 2x2, stride-2, unpadded pooling."""
    N, C, H, W = x.shape
    xf, yf, af = x.reshape(-1), y.reshape(-1), arg.reshape(-1)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        _max_pool_plane(xf, yf, af, t, H, W, y.shape[2], y.shape[3], 2, 2, 2, 2)


@njit(cache=True, nogil=True)
def _max_pool_3x3(part, nparts, x, y, arg, sh, sw, ph, pw):
    """:func:`_max_pool` for a 3x3 window (ResNet's stem: stride 2, padding 1), the window a
    literal in the inlined plane loop."""
    N, C = x.shape[0], x.shape[1]
    xf = x.reshape(-1)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        _max_pool_plane_padded(x, xf, y, arg, t, 3, 3, sh, sw, ph, pw)


@njit(cache=True, nogil=True)
def _max_pool_backward(part, nparts, g, arg, dx):
    """``dx = 0``, then ``+= g`` at each window's argmax, one plane per iteration (zeroing the
    plane just before its scatter keeps it in cache: 4-5x faster than a separate ``np.zeros``
    and a 4-D indexed scatter on the demo's planes)."""
    N, C, P, Q = g.shape
    HW = dx.shape[2] * dx.shape[3]
    PQ = P * Q
    gf, af, df = g.reshape(-1), arg.reshape(-1), dx.reshape(-1)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        b = uintp(t * HW)
        for j in range(HW):
            df[b + uintp(j)] = 0
        o = uintp(t * PQ)
        for j in range(PQ):
            i = af[o + uintp(j)]
            if i >= 0:
                df[b + uintp(i)] += gf[o + uintp(j)]


@njit(cache=True, nogil=True)
def _max_pool_gather(part, nparts, h, arg, out):
    """``out[n, c, p, q] = h`` at the window's argmax (0 for a window wholly in the padding),
    one plane per iteration: the adjoint of :func:`_max_pool_backward`'s scatter."""
    N, C, P, Q = out.shape
    HW = h.shape[2] * h.shape[3]
    PQ = P * Q
    hf, af, of = h.reshape(-1), arg.reshape(-1), out.reshape(-1)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        b = uintp(t * HW)
        o = uintp(t * PQ)
        for j in range(PQ):
            i = af[o + uintp(j)]
            if i >= 0:
                of[o + uintp(j)] = hf[b + uintp(i)]
            else:
                of[o + uintp(j)] = 0


@njit(cache=True, nogil=True)
def _avg_pool(part, nparts, x, y, kh, kw, sh, sw, ph, pw):
    """``y`` = window mean, padding counted as zeros (PyTorch's ``count_include_pad=True``)."""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        n = t // C
        c = t - n * C
        for p in range(P):
            for q in range(Q):
                s_ = 0.0
                for r in range(kh):
                    h = p * sh - ph + r
                    if h < 0 or h >= H:
                        continue
                    for s in range(kw):
                        w = q * sw - pw + s
                        if 0 <= w < W:
                            s_ += x[n, c, h, w]
                y[n, c, p, q] = s_ * scale


@njit(cache=True, nogil=True)
def _avg_pool_backward(part, nparts, g, dx, kh, kw, sh, sw, ph, pw):
    """``dx`` (zeroed) ``+= g / (kh kw)`` over each window."""
    N, C, P, Q = g.shape
    H, W = dx.shape[2], dx.shape[3]
    scale = 1.0 / (kh * kw)
    for t in range((N * C) * part // nparts, (N * C) * (part + 1) // nparts):
        n = t // C
        c = t - n * C
        for p in range(P):
            for q in range(Q):
                v = g[n, c, p, q] * scale
                for r in range(kh):
                    h = p * sh - ph + r
                    if h < 0 or h >= H:
                        continue
                    for s in range(kw):
                        w = q * sw - pw + s
                        if 0 <= w < W:
                            dx[n, c, h, w] += v


def _out_shape(x_shape, k, s, p):
    N, C, H, W = x_shape
    return (N, C, (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1)


def max_pool2d(x: np.ndarray, k: tuple, s: tuple, p: tuple):
    """Max pooling; returns ``(y, argmax)`` (argmax int64, flat index within each plane)."""
    x = np.ascontiguousarray(x)
    shape = _out_shape(x.shape, k, s, p)
    y = _pool.empty(shape, x.dtype)
    arg = _pool.empty(shape, np.int64)
    if tuple(k) == (2, 2) and tuple(p) == (0, 0):
        if tuple(s) == (2, 2):
            launch(_max_pool_2x2_s2, split(x.size), x, y, arg)
        else:
            launch(_max_pool_2x2, split(x.size), x, y, arg, s[0], s[1])
    elif tuple(k) == (3, 3):
        launch(_max_pool_3x3, split(x.size), x, y, arg, s[0], s[1], p[0], p[1])
    else:
        launch(_max_pool, split(x.size), x, y, arg, k[0], k[1], s[0], s[1], p[0], p[1])
    return y, arg


def max_pool2d_backward(g: np.ndarray, arg: np.ndarray, x_shape: tuple) -> np.ndarray:
    """Gradient of max pooling: ``g`` routed to each window's argmax."""
    dx = _pool.empty(x_shape, g.dtype)
    launch(_max_pool_backward, split(dx.size), np.ascontiguousarray(g), np.ascontiguousarray(arg), dx)
    return dx


def max_pool2d_gather(h: np.ndarray, arg: np.ndarray, y_shape: tuple) -> np.ndarray:
    """The adjoint of :func:`max_pool2d_backward`: ``h`` (of the input's shape) read at each
    window's argmax, an array of the pooled shape ``y_shape`` (0 where a window is all padding)."""
    if tuple(arg.shape) != tuple(y_shape) or len(h.shape) != 4 or tuple(h.shape[:2]) != tuple(y_shape[:2]):
        raise ValueError(f"max_pool2d_gather: h {tuple(h.shape)}, argmax {tuple(arg.shape)} and pooled shape "
                         f"{tuple(y_shape)} do not match")  # the kernel indexes planes through argmax unchecked
    out = np.empty(tuple(y_shape), h.dtype)
    launch(_max_pool_gather, split(out.size), np.ascontiguousarray(h), np.ascontiguousarray(arg), out)
    return out


def avg_pool2d(x: np.ndarray, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    """Average pooling (zero padding counted in the mean)."""
    x = np.ascontiguousarray(x)
    y = np.empty(_out_shape(x.shape, k, s, p), x.dtype)
    launch(_avg_pool, split(x.size), x, y, k[0], k[1], s[0], s[1], p[0], p[1])
    return y


def avg_pool2d_backward(g: np.ndarray, x_shape: tuple, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    """Gradient of average pooling: ``g / (kh kw)`` spread over each window."""
    dx = np.zeros(x_shape, g.dtype)
    launch(_avg_pool_backward, split(dx.size), np.ascontiguousarray(g), dx, k[0], k[1], s[0], s[1], p[0],
           p[1])
    return dx
