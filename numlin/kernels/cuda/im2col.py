"""CUDA im2col / col2im kernels and the convolution helpers, same layouts as ``kernels/cpu/im2col.py``.

* NCHW: ``x (N, C, H, W)``; ``cols (nb, C*R*S, pc*Q)``, row ``(c*R + r)*S + s``.
* NHWC: ``x (N, H, W, C)``; ``cols (nb, pc*Q, G, R, S, Cg)``, one contiguous patch per pixel.

All arrays are C-contiguous and passed flat. im2col runs one thread per column entry; col2im is
written as a gather, one thread per input element summing the entries it was copied to, so no
two threads write one element (no atomics) and the result does not depend on scheduling.

NCHW convolutions skip the column buffer: :func:`implicit_forward` runs the GEMM kernel's
gather variant (``gemm._kernel_source(gather=True)``), whose B tiles are read straight from ``x``
through two small index tables, one over the filter taps ``(c, r, s)`` and one over the output
pixels ``(p, q)``; :func:`implicit_dx` computes a stride-1 input gradient as the same kind of
convolution of ``dy`` with the flipped, transposed filter. Neither needs a workspace.
"""
from __future__ import annotations

import numpy as np
import dataclasses
import functools

from numba import cuda, float32, float64, int64

from ..._strided import Strided
from . import gemm
from ._registry import kernel
from .elementwise import grid_1d

__all__ = ["im2col_into", "col2im_into", "implicit_forward", "implicit_dx", "implicit_dw", "fill_bias", "channel_sum",
           "sum_batch", "zeros"]

_GEOM = (int64,) * 17  # C H W R S sh sw ph pw dh dw n0 nb p0 pc Q G


@kernel(*[(t[:], t[:]) + _GEOM for t in (float32, float64)])
def im2col_nchw(x, cols, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G):
    """Grid (1, C*R*S rows, nb samples), blocks of (32, 8) threads: x strides over the output
    columns q, y over the output rows p. Row and sample come from the block index, so the
    per-element work has no integer division (64-bit divisions dominated the first version)."""
    L = pc * Q
    row = cuda.blockIdx.y
    n = cuda.blockIdx.z
    s = row % S
    r = (row // S) % R
    c = row // (R * S)
    src = ((n0 + n) * C + c) * H * W
    dst = (n * C * R * S + row) * L
    for p in range(cuda.threadIdx.y, pc, cuda.blockDim.y):
        h = (p0 + p) * sh - ph + r * dh
        inside = h >= 0 and h < H
        base = dst + p * Q
        for q in range(cuda.threadIdx.x, Q, cuda.blockDim.x):
            w = q * sw - pw + s * dw
            if inside and w >= 0 and w < W:
                cols[base + q] = x[src + h * W + w]
            else:
                cols[base + q] = 0


@kernel(*[(t[:], t[:]) + _GEOM for t in (float32, float64)])
def im2col_nhwc(x, cols, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G):
    Cg = C // G
    RSC = R * S * C
    total = nb * pc * Q * RSC
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        e = idx % RSC
        pix = idx // RSC  # n * pc * Q + col
        col = pix % (pc * Q)
        n = pix // (pc * Q)
        cg = e % Cg
        s = (e // Cg) % S
        r = (e // (Cg * S)) % R
        gi = e // (Cg * S * R)
        h = (p0 + col // Q) * sh - ph + r * dh
        w = (col % Q) * sw - pw + s * dw
        if h >= 0 and h < H and w >= 0 and w < W:
            cols[idx] = x[(((n0 + n) * H + h) * W + w) * C + gi * Cg + cg]
        else:
            cols[idx] = 0


@cuda.jit(device=True, inline=True)
def _gather(cols, n, h, w, c, C, H, W, R, S, sh, sw, ph, pw, dh, dw, p0, pc, Q, G, nhwc):
    """Sum of the column entries that im2col copied from input element (n, c, h, w) of the chunk."""
    acc = cols[0] * 0
    L = pc * Q
    Cg = C // G
    for r in range(R):
        hp = h + ph - r * dh
        if hp < 0 or hp % sh != 0:
            continue
        p = hp // sh - p0
        if p < 0 or p >= pc:
            continue
        for s in range(S):
            wq = w + pw - s * dw
            if wq < 0 or wq % sw != 0:
                continue
            q = wq // sw
            if q >= Q:
                continue
            if nhwc:
                gi = c // Cg
                acc += cols[((n * L + p * Q + q) * G + gi) * R * S * Cg + (r * S + s) * Cg + c - gi * Cg]
            else:
                acc += cols[((n * C + c) * R * S + r * S + s) * L + p * Q + q]
    return acc


@kernel(*[(t[:], t[:]) + _GEOM for t in (float32, float64)])
def col2im_nchw(cols, dx, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G):
    """Grid (pixel blocks, C channels, nb samples)."""
    c = cuda.blockIdx.y
    n = cuda.blockIdx.z
    base = ((n0 + n) * C + c) * H * W
    for hw in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, H * W, cuda.gridDim.x * cuda.blockDim.x):
        h = hw // W
        w = hw - h * W
        dx[base + hw] += _gather(cols, n, h, w, c, C, H, W, R, S, sh, sw, ph, pw, dh, dw, p0, pc, Q, G, False)


@kernel(*[(t[:], t[:]) + _GEOM for t in (float32, float64)])
def col2im_nhwc(cols, dx, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G):
    total = nb * H * W * C
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        c = idx % C
        w = (idx // C) % W
        h = (idx // (C * W)) % H
        n = idx // (C * W * H)
        dx[n0 * H * W * C + idx] += _gather(cols, n, h, w, c, C, H, W, R, S, sh, sw, ph, pw, dh, dw, p0, pc, Q, G, True)


@kernel(*[(t[:], t[:], int64, int64, int64) for t in (float32, float64)])
def broadcast_channels(y, bias, total, K, inner):
    """``y[i] = bias[(i // inner) % K]``: bias along the channel axis (inner = P*Q NCHW, 1 NHWC)."""
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        y[idx] = bias[(idx // inner) % K]


@kernel(*[(t[:], t[:], int64, int64, int64) for t in (float32, float64)])
def sum_channels(dy, out, outer, K, inner):
    """``out[k] = sum over (o, i) of dy[(o*K + k)*inner + i]``: one block per channel, tree reduction."""
    k = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    buf = cuda.shared.array(256, float64)
    acc = 0.0
    for j in range(tid, outer * inner, cuda.blockDim.x):
        o = j // inner
        acc += dy[(o * K + k) * inner + (j - o * inner)]
    buf[tid] = acc
    cuda.syncthreads()
    step = 128
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        out[k] = buf[0]


@kernel(*[(t[:], t[:], int64, int64, int64) for t in (float32, float64)])
def sum_leading(partials, out, nb, size, accumulate):
    """``out[i] (+)= sum_j partials[j*size + i]`` for ``j < nb``."""
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        acc = partials[i]
        for j in range(1, nb):
            acc += partials[j * size + i]
        if accumulate:
            out[i] += acc
        else:
            out[i] = acc


@kernel(*[(t[:], t, int64) for t in (float32, float64)])
def fill(buf, value, total):
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        buf[idx] = value


# --------------------------------------------------------------------------- host side
def _flat(x):
    return x.reshape(int(np.prod(x.shape, dtype=np.int64)))


def _geom(g, n0, nb, p0, pc):
    return (g.C, g.H, g.W, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw, n0, nb, p0, pc, g.Q, g.groups)


def _grid_3d(inner: int, mid: int, outer: int, threads: int = 256):
    """Grid (blocks over ``inner``, ``mid``, ``outer``), the last two capped at CUDA's 65 535."""
    if mid > 65_535 or outer > 65_535:
        raise ValueError(f"convolution chunk too large for the grid: {mid} x {outer}")
    return (max(1, min(-(-inner // threads), 4096)), mid, outer), threads


def im2col_into(x, cols_flat, geom, n0: int, nb: int, p0: int, pc: int) -> None:
    g = geom
    if g.layout == "NCHW":
        grid, _ = _grid_3d(1, g.C * g.R * g.S, nb)
        im2col_nchw[grid, (32, 8)](_flat(x), cols_flat, *_geom(g, n0, nb, p0, pc))
    else:
        im2col_nhwc[grid_1d(nb * g.C * g.R * g.S * pc * g.Q)](_flat(x), cols_flat, *_geom(g, n0, nb, p0, pc))


def col2im_into(cols_flat, dx, geom, n0: int, nb: int, p0: int, pc: int) -> None:
    g = geom
    if g.layout == "NCHW":
        col2im_nchw[_grid_3d(g.H * g.W, g.C, nb)](cols_flat, _flat(dx), *_geom(g, n0, nb, p0, pc))
    else:
        col2im_nhwc[grid_1d(nb * g.C * g.H * g.W)](cols_flat, _flat(dx), *_geom(g, n0, nb, p0, pc))


def fill_bias(y, bias, layout: str) -> None:
    K = bias.shape[0]
    inner = y.shape[2] * y.shape[3] if layout == "NCHW" else 1
    total = int(np.prod(y.shape, dtype=np.int64))
    broadcast_channels[grid_1d(total)](_flat(y), bias, total, K, inner)


def channel_sum(dy, layout: str):
    K = dy.shape[1] if layout == "NCHW" else dy.shape[3]
    inner = dy.shape[2] * dy.shape[3] if layout == "NCHW" else 1
    outer = int(np.prod(dy.shape, dtype=np.int64)) // (K * inner)
    out = cuda.device_array(K, dy.dtype)
    sum_channels[K, 256](_flat(dy), out, outer, K, inner)
    return out


def sum_batch(partials, out, nb: int, accumulate: bool) -> None:
    size = int(np.prod(out.shape, dtype=np.int64))
    sum_leading[grid_1d(size)](partials, _flat(out), nb, size, int(accumulate))


def zeros(shape: tuple, dtype):
    out = cuda.device_array(shape, dtype)
    total = int(np.prod(shape, dtype=np.int64))
    if total:
        fill[grid_1d(total)](_flat(out), np.dtype(dtype).type(0), total)
    return out


# --------------------------------------------------------------------------- implicit GEMM (NCHW)
@kernel(*[(t[:], t[:], int64, int64, int64, int64, int64) for t in (float32, float64)])
def flip_filter(w, out, G, Kg, Cg, R, S):
    """``out[g*Cg + c, kk, R-1-r, S-1-s] = w[g*Kg + kk, c, r, s]``: the filter of the
    transposed convolution (input gradient) of an NCHW convolution with ``G`` groups."""
    RS = R * S
    total = G * Kg * Cg * RS
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        rs = idx % RS
        c = (idx // RS) % Cg
        kk = (idx // (RS * Cg)) % Kg
        gi = idx // (RS * Cg * Kg)
        out[((gi * Cg + c) * Kg + kk) * RS + RS - 1 - rs] = w[idx]


_H_BIAS, _W_BIAS = 1 << 14, 1 << 15  # packed (h, w) table entries: (h + 2**14) * 2**16 + (w + 2**15)


def _packable(h: np.ndarray, w: np.ndarray) -> bool:
    return bool(h.size == 0 or (h.min() >= -_H_BIAS and h.max() < _H_BIAS and w.min() >= -_W_BIAS
                                and w.max() < _W_BIAS))


def _pack(off: np.ndarray, h: np.ndarray, w: np.ndarray) -> tuple:
    """Device ``(offsets, packed h/w)``, padded by one 16-deep slice past a multiple of 16 (the
    kernel reads whole slices: up to ``t1base + nk*BK - 1``)."""
    n = -(-off.size // 16) * 16 + 16
    o = np.zeros(n, np.int64)
    hw = np.zeros(n, np.int32)
    o[:off.size] = off
    hw[:off.size] = ((h + _H_BIAS) << 16) + (w + _W_BIAS)
    return cuda.to_device(o), cuda.to_device(hw)


def _tables(*geometry: int):
    """:func:`_device_tables` on the current device."""
    return _device_tables(gemm.device_key(), *geometry)


@functools.lru_cache(maxsize=64)
def _device_tables(device: int, Cg: int, H: int, W: int, R: int, S: int, P: int, Q: int, sh: int, sw: int,
                   ph: int, pw: int, dh: int, dw: int):
    """Device tables of the implicit GEMM, ``(taps..., pixels...)``, or None when an entry does
    not fit the packing: taps ``(c, r, s)`` (C order, the filter's) -> offset in x, row and
    column shifts; output pixels ``(p, q)`` -> offset, top row, left column of their receptive
    field. Cached by geometry: every layer of a training step builds its tables once (the
    copies to the device are synchronous), and by device."""
    c, r, s = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(Cg), np.arange(R), np.arange(S),
                                                                 indexing="ij"))
    th, tw = r * dh, s * dw
    p, q = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(P), np.arange(Q), indexing="ij"))
    ph_, pw_ = p * sh - ph, q * sw - pw
    if not (_packable(th, tw) and _packable(ph_, pw_)):
        return None
    return _pack(c * H * W + th * W + tw, th, tw) + _pack(ph_ * W + pw_, ph_, pw_)


def implicit_forward(x, w, y, geom, beta: float) -> bool:
    """``y = conv2d(x, w) + beta * y`` (NCHW) by the implicit-GEMM kernel, no column buffer.
    Returns False (and does nothing) for layouts and geometries it does not cover (NHWC;
    shifts past the packed tables' +-16384 rows / +-32768 columns)."""
    g = geom
    if g.layout != "NCHW":
        return False
    tabs = _tables(g.C // g.groups, g.H, g.W, g.R, g.S, g.P, g.Q, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw)
    if tabs is None:
        return False
    G, Cg, Kg, PQ, HW = g.groups, g.C // g.groups, g.K // g.groups, g.P * g.Q, g.H * g.W
    CgRS = Cg * g.R * g.S
    Wd = Strided(_flat(w), 0, (1, G, Kg, CgRS), (0, Kg * CgRS, CgRS, 1))
    Yd = Strided(_flat(y), 0, (g.N, G, Kg, PQ), (g.K * PQ, Kg * PQ, PQ, 1))
    boffs = (np.arange(g.N, dtype=np.int64)[:, None] * (g.C * HW)
             + np.arange(G, dtype=np.int64)[None, :] * (Cg * HW)).ravel()
    gemm.gather_into(Wd, _flat(x), boffs, tabs, g.H, g.W, Yd, n=PQ, k=CgRS, beta=beta)
    return True


def implicit_dx(dy, w, geom):
    """The input gradient of a stride-1 NCHW convolution as a convolution of ``dy`` with the
    flipped, transposed filter (padding ``dilation*(R-1) - pad`` on each side), by
    :func:`implicit_forward`; None where that does not apply (stride > 1, padding wider than the
    dilated kernel, NHWC, unpackable tables)."""
    g = geom
    pads = (g.dh * (g.R - 1) - g.ph0, g.dh * (g.R - 1) - g.ph1, g.dw * (g.S - 1) - g.pw0, g.dw * (g.S - 1) - g.pw1)
    if g.layout != "NCHW" or (g.sh, g.sw) != (1, 1) or min(pads) < 0:
        return None
    gt = dataclasses.replace(g, C=g.K, H=g.P, W=g.Q, K=g.C, P=g.H, Q=g.W, ph0=pads[0], ph1=pads[1], pw0=pads[2],
                             pw1=pads[3])
    wt = cuda.device_array(gt.w_shape, w.dtype)
    G = g.groups
    flip_filter[grid_1d(w.size)](_flat(w), _flat(wt), G, g.K // G, g.C // G, g.R, g.S)
    dx = cuda.device_array(g.x_shape, dy.dtype)
    return dx if implicit_forward(dy, wt, dx, gt, 0.0) else None


def implicit_dw(dy, x, geom):
    """The filter gradient ``dw = sum_n dY[n] @ cols[n]ᵀ`` (NCHW) without a column buffer: the
    gather kernel with output pixels on the reduction axis and filter taps on the columns,
    the pixels cut into split-K pieces (batch entries ``(n, piece, group)``) until the grid has
    about two blocks per SM, the partials summed by one kernel. None where the tables do not
    pack (NHWC, huge shifts)."""
    from .arrays import workspace

    g = geom
    if g.layout != "NCHW":
        return None
    tabs = _tables(g.C // g.groups, g.H, g.W, g.R, g.S, g.P, g.Q, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw)
    if tabs is None:
        return None
    G, Cg, Kg, PQ, HW = g.groups, g.C // g.groups, g.K // g.groups, g.P * g.Q, g.H * g.W
    CgRS = Cg * g.R * g.S
    t = gemm.tiles(dy.dtype, Kg)
    grid, _ = gemm.launch_config(t, Kg, CgRS, g.N * G)
    split = gemm._split_k(grid[0] * grid[1] * grid[2], PQ, t.bk)
    kp = PQ // split
    size = g.K * CgRS  # dw (K, Cg, R, S) = (G, Kg, CgRS)
    part = workspace(dy.dtype, g.N * split * size, "conv.dw")
    A = Strided(_flat(dy), 0, (g.N, split, G, Kg, kp), (g.K * PQ, kp, Kg * PQ, PQ, 1))
    Cp = Strided(part, 0, (g.N, split, G, Kg, CgRS), (split * size, size, Kg * CgRS, CgRS, 1))
    n_, s_, g_ = np.meshgrid(np.arange(g.N, dtype=np.int64), np.arange(split, dtype=np.int64),
                             np.arange(G, dtype=np.int64), indexing="ij")
    boffs = (n_ * (g.C * HW) + g_ * (Cg * HW)).ravel()
    pixels, taps = tabs[2:], tabs[:2]
    gemm.gather_into(A, _flat(x), boffs, pixels + taps, g.H, g.W, Cp, n=CgRS, k=kp, t1base=(s_ * kp).ravel())
    dw = cuda.device_array(g.w_shape, dy.dtype)
    sum_batch(part, dw, g.N * split, accumulate=False)
    return dw
