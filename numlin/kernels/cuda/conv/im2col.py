"""CUDA im2col / col2im: the column matrix of a convolution and its adjoint, the layouts of
``numlin.kernels.cpu.conv.im2col``.

* NCHW: ``x (N, C, H, W)``; ``cols (nb, C*R*S, pc*Q)``, row ``(c*R + r)*S + s``.
* NHWC: ``x (N, H, W, C)``; ``cols (nb, pc*Q, G, R, S, Cg)``, one contiguous patch per pixel.

All arrays are C-contiguous and passed flat. im2col runs one thread per column entry; col2im is
written as a gather, one thread per input element summing the entries it was copied to, so no
two threads write one element (no atomics) and the result does not depend on scheduling.

NCHW convolutions mostly skip these: see :mod:`.implicit_forward`.
"""
from __future__ import annotations

from numba import cuda, float32, float64, int64

from .._registry import kernel
from ..arrays import flat as _flat
from ..elementwise import grid_1d

__all__ = ["im2col_into", "col2im_into"]


_GEOM = (int64,) * 17  # C H W R S sh sw ph pw dh dw n0 nb p0 pc Q G


@kernel(*[(t[:], t[:]) + _GEOM for t in (float32, float64)])
def im2col_nchw(x, cols, C, H, W, R, S, sh, sw, ph, pw, dh, dw, n0, nb, p0, pc, Q, G):
    """Grid (1, C*R*S rows, nb samples), blocks of (32, 8) threads: x strides over the output
    columns q, y over the output rows p. Row and sample come from the block index, so the
    per-element work has no integer division (a 64-bit division costs dozens of instructions)."""
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


# --------------------------------------------------------------------------- host side
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
