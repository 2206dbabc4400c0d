"""CUDA pooling kernels, NCHW, the interface and semantics of ``numlin.kernels.cpu.pool``:
``max_pool2d(x, k, s, p) -> (y, argmax)``, ``max_pool2d_backward(g, argmax, x_shape)``,
``max_pool2d_gather(h, argmax, y_shape)``, ``avg_pool2d(x, k, s, p)``,
``avg_pool2d_backward(g, x_shape, k, s, p)``.

``x (N, C, H, W)`` (any strides), windows ``kh x kw`` with stride ``(sh, sw)`` and padding
``(ph, pw)`` (-inf for max, counted zeros for the mean); ``y (N, C, P, Q)``; ``argmax`` int64,
the flat index ``h * W + w`` of each window's maximum within its plane (-1: all padding).

The forwards, and the gather that is the adjoint of max pooling's backward (for second
derivatives), run one thread per output element. The backwards never race: average pooling
gathers, one thread per input element summing ``g / (kh kw)`` over the windows that cover it;
max pooling (whose interface carries no window geometry) scatters with one thread per (n, c)
plane. Both accumulate in the CPU kernels' order (float64 results match them bit for bit).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, int64

from ._registry import kernel
from .elementwise import launch_1d

__all__ = ["max_pool2d", "max_pool2d_backward", "max_pool2d_gather", "avg_pool2d", "avg_pool2d_backward"]

_GEOM = (int64,) * 6  # kh kw sh sw ph pw


@cuda.jit(device=True, inline=True)
def _nchw(idx, C, P, Q):
    """``(n, c, p, q)`` of the C-ordered flat index ``idx`` over ``(N, C, P, Q)``."""
    q = idx % Q
    p = (idx // Q) % P
    c = (idx // (Q * P)) % C
    return idx // (Q * P * C), c, p, q


@kernel(*[(t[:, :, :, :], t[:, :, :, :], int64[:, :, :, :]) + _GEOM for t in (float32, float64)])
def max_pool_fwd(x, y, arg, kh, kw, sh, sw, ph, pw):
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    total = N * C * P * Q
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, p, q = _nchw(idx, C, P, Q)
        best = -math.inf
        bi = -1
        for r in range(kh):
            h = p * sh - ph + r
            if h < 0 or h >= H:
                continue
            for s in range(kw):
                w = q * sw - pw + s
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


@kernel(*[(t[:, :, :, :], int64[:, :, :, :], t[:, :, :, :]) for t in (float32, float64)])
def max_pool_bwd(g, arg, dx):
    """One thread per (n, c) plane: zero the plane of ``dx``, then add ``g`` at each argmax."""
    N, C, P, Q = g.shape
    H, W = dx.shape[2], dx.shape[3]
    for t in range(cuda.grid(1), N * C, cuda.gridsize(1)):
        n = t // C
        c = t - n * C
        for h in range(H):
            for w in range(W):
                dx[n, c, h, w] = 0
        for p in range(P):
            for q in range(Q):
                i = arg[n, c, p, q]
                if i >= 0:
                    h = i // W
                    dx[n, c, h, i - h * W] += g[n, c, p, q]


@kernel(*[(t[:, :, :, :], int64[:, :, :, :], t[:, :, :, :]) for t in (float32, float64)])
def max_pool_gather(h, arg, out):
    """One thread per output element: ``out = h`` at the window's argmax (0 where the window is
    all padding), the adjoint of :func:`max_pool_bwd`."""
    N, C, P, Q = out.shape
    W = h.shape[3]
    total = N * C * P * Q
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, p, q = _nchw(idx, C, P, Q)
        i = arg[n, c, p, q]
        if i >= 0:
            hh = i // W
            out[n, c, p, q] = h[n, c, hh, i - hh * W]
        else:
            out[n, c, p, q] = 0


@kernel(*[(t[:, :, :, :], t[:, :, :, :]) + _GEOM for t in (float32, float64)])
def avg_pool_fwd(x, y, kh, kw, sh, sw, ph, pw):
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    total = N * C * P * Q
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, p, q = _nchw(idx, C, P, Q)
        acc = 0.0
        for r in range(kh):
            h = p * sh - ph + r
            if h < 0 or h >= H:
                continue
            for s in range(kw):
                w = q * sw - pw + s
                if w >= 0 and w < W:
                    acc += float64(x[n, c, h, w])
        y[n, c, p, q] = acc * scale


@kernel(*[(t[:, :, :, :], t[:, :, :, :]) + _GEOM for t in (float32, float64)])
def avg_pool_bwd(g, dx, kh, kw, sh, sw, ph, pw):
    """One thread per input element: the sum of ``g / (kh kw)`` over the windows covering it,
    in the CPU kernel's (p, q) order."""
    N, C, P, Q = g.shape
    H, W = dx.shape[2], dx.shape[3]
    scale = 1.0 / (kh * kw)
    total = N * C * H * W
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, h, w = _nchw(idx, C, H, W)
        # windows p with p*sh - ph <= h < p*sh - ph + kh, likewise q
        hp = h + ph
        p_lo = 0 if hp < kh else (hp - kh) // sh + 1
        p_hi = min(hp // sh, P - 1)
        wq = w + pw
        q_lo = 0 if wq < kw else (wq - kw) // sw + 1
        q_hi = min(wq // sw, Q - 1)
        acc = 0.0
        for p in range(p_lo, p_hi + 1):
            for q in range(q_lo, q_hi + 1):
                acc += float64(g[n, c, p, q]) * scale
        dx[n, c, h, w] = acc


def _out_shape(x_shape, k, s, p):
    N, C, H, W = x_shape
    return (N, C, (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1)


def _geom(k, s, p):
    return int(k[0]), int(k[1]), int(s[0]), int(s[1]), int(p[0]), int(p[1])


def max_pool2d(x, k: tuple, s: tuple, p: tuple):
    """Max pooling of device array ``x``; returns ``(y, argmax)`` (argmax an int64 device array)."""
    shape = _out_shape(tuple(x.shape), k, s, p)
    y = cuda.device_array(shape, x.dtype)
    arg = cuda.device_array(shape, np.int64)
    total = int(np.prod(shape, dtype=np.int64))
    if total:
        max_pool_fwd[launch_1d(total)](x, y, arg, *_geom(k, s, p))
    return y, arg


def max_pool2d_backward(g, arg, x_shape: tuple):
    """Gradient of max pooling: ``g`` routed to each window's argmax."""
    x_shape = tuple(int(d) for d in x_shape)
    dx = cuda.device_array(x_shape, g.dtype)
    planes = x_shape[0] * x_shape[1]
    if int(np.prod(x_shape, dtype=np.int64)):
        max_pool_bwd[launch_1d(planes, threads=64)](g, arg, dx)
    return dx


def max_pool2d_gather(h, arg, y_shape: tuple):
    """The adjoint of :func:`max_pool2d_backward`: ``h`` (of the input's shape) read at each
    window's argmax, a device array of the pooled shape ``y_shape`` (0 where a window is all
    padding)."""
    if tuple(arg.shape) != tuple(y_shape) or len(h.shape) != 4 or tuple(h.shape[:2]) != tuple(y_shape[:2]):
        raise ValueError(f"max_pool2d_gather: h {tuple(h.shape)}, argmax {tuple(arg.shape)} and pooled shape "
                         f"{tuple(y_shape)} do not match")  # the kernel indexes planes through argmax unchecked
    y_shape = tuple(int(d) for d in y_shape)
    out = cuda.device_array(y_shape, h.dtype)
    total = int(np.prod(y_shape, dtype=np.int64))
    if total:
        max_pool_gather[launch_1d(total)](h, arg, out)
    return out


def avg_pool2d(x, k: tuple, s: tuple, p: tuple):
    """Average pooling (zero padding counted in the mean)."""
    shape = _out_shape(tuple(x.shape), k, s, p)
    y = cuda.device_array(shape, x.dtype)
    total = int(np.prod(shape, dtype=np.int64))
    if total:
        avg_pool_fwd[launch_1d(total)](x, y, *_geom(k, s, p))
    return y


def avg_pool2d_backward(g, x_shape: tuple, k: tuple, s: tuple, p: tuple):
    """Gradient of average pooling: ``g / (kh kw)`` spread over each window."""
    x_shape = tuple(int(d) for d in x_shape)
    dx = cuda.device_array(x_shape, g.dtype)
    total = int(np.prod(x_shape, dtype=np.int64))
    if total:
        avg_pool_bwd[launch_1d(total)](g, dx, *_geom(k, s, p))
    return dx
