"""CUDA depthwise convolution, NCHW (``groups == C``, channel multiplier ``M = K / C``, any
stride, padding and dilation): the interface and semantics of ``numlin.kernels.cpu.conv.depthwise``.

Direct kernels, no GEMM: through the implicit GEMM a depthwise layer fills one row of a 64- or
128-row tile per group (``K / groups`` rows), so nearly all of its multiply-adds are wasted;
here every thread does only useful ones. Depthwise layers are memory-bound (``R*S`` multiply-
adds per value read or written), so each kernel is one pass, reading x, w and dy through the
caches.

- forward: one thread per output element, the ``R*S`` taps summed in float64 (a 2-D grid:
  planes by pixel blocks, so a thread divides once to find its pixel);
- input gradient: one thread per input element, gathering the taps whose outputs read it
  (no atomics, no races), on the same grid;
- filter gradient: one block per filter tap ``(k, r, s)`` and piece of the batch, its threads
  striding over the piece's pixels, a float64 tree reduction in shared memory; then one pass
  summing the pieces.

Padding is literal zeros, as in PyTorch and on the CPU: the forward and the filter gradient
include its products (``0 * inf`` is NaN), the input gradient only the outputs' terms.

Interface (``numlin.nn._conv_plan`` decides when it applies): ``conv2d_into(x, w, y, g, beta,
bias=None)``, ``dx_into(dy, w, dx, g)``, ``dw_into(x, dy, dw, g)``: C-contiguous 4-D device arrays
of one dtype; ``g`` a :class:`numlin._geometry.Conv2dGeometry`.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64, int64

from .._registry import kernel
from ..arrays import SIMULATOR, workspace
from ..elementwise import launch_1d
from ..gemm import sm_count
from ..reductions import block_sum

__all__ = ["conv2d_into", "dx_into", "dw_into"]

_GEOM = (int64,) * 6  # sh sw ph pw dh dw
#: threads per block of the filter gradient (a power of two, at most 256)
DW_THREADS = 256


@kernel(*[(t[:, :, :, :], t[:, :, :, :], t[:, :, :, :], t[:]) + _GEOM + (float64,) for t in (float32, float64)])
def dw_forward(x, w, y, bias, sh, sw, ph, pw, dh, dw, beta):
    """``y[n, k, p, q] = sum_{r,s} w[k, 0, r, s] * x[n, k // M, p*sh - ph + r*dh, q*sw - pw + s*dw]``
    (zero outside x) ``+ bias[k]`` (when ``bias`` is not empty) ``+ beta * y`` (read only when
    ``beta != 0``). Grid y over the output planes ``(n, k)``, x over a plane's pixels (both
    grid-stride): one integer division per pixel, the plane's two per block."""
    N, C, H, W = x.shape
    K, R, S = w.shape[0], w.shape[2], w.shape[3]
    P, Q = y.shape[2], y.shape[3]
    M = K // C
    for plane in range(cuda.blockIdx.y, N * K, cuda.gridDim.y):
        n = plane // K
        k = plane - n * K
        c = k // M
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, P * Q, cuda.gridDim.x * cuda.blockDim.x):
            p = j // Q
            q = j - p * Q
            acc = 0.0
            for r in range(R):
                h = p * sh - ph + r * dh
                for s in range(S):
                    v = q * sw - pw + s * dw
                    xv = 0.0
                    if 0 <= h < H and 0 <= v < W:
                        xv = x[n, c, h, v]
                    acc += w[k, 0, r, s] * xv
            if bias.size:
                acc += bias[k]
            if beta != 0:
                acc += beta * y[n, k, p, q]
            y[n, k, p, q] = acc


@kernel(*[(t[:, :, :, :], t[:, :, :, :], t[:, :, :, :]) + _GEOM for t in (float32, float64)])
def dw_input_grad(dy, w, dx, sh, sw, ph, pw, dh, dw):
    """``dx[n, c, h, v]`` = the sum over its ``M`` filters and the taps ``(r, s)`` whose output
    ``p = (h + ph - r*dh) / sh``, ``q = (v + pw - s*dw) / sw`` exists (whole and in range) of
    ``w[k, 0, r, s] * dy[n, k, p, q]``. Grid y over the input planes ``(n, c)``, x over a
    plane's pixels (both grid-stride)."""
    N, C, H, W = dx.shape
    K, R, S = w.shape[0], w.shape[2], w.shape[3]
    P, Q = dy.shape[2], dy.shape[3]
    M = K // C
    for plane in range(cuda.blockIdx.y, N * C, cuda.gridDim.y):
        n = plane // C
        c = plane - n * C
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, H * W, cuda.gridDim.x * cuda.blockDim.x):
            h = j // W
            v = j - h * W
            acc = 0.0
            for r in range(R):
                t = h + ph - r * dh
                p = t if sh == 1 else t // sh
                if t < 0 or p * sh != t or p >= P:
                    continue
                for s in range(S):
                    u = v + pw - s * dw
                    q = u if sw == 1 else u // sw
                    if u < 0 or q * sw != u or q >= Q:
                        continue
                    for m in range(M):
                        k = c * M + m
                        acc += w[k, 0, r, s] * dy[n, k, p, q]
            dx[n, c, h, v] = acc


@kernel(*[(t[:, :, :, :], t[:, :, :, :], float64[:], int64, int64, int64) + _GEOM for t in (float32, float64)])
def dw_filter_grad(x, dy, partials, K, R, S, sh, sw, ph, pw, dh, dw):
    """Block ``(b, z)``: filter tap ``b = (k, r, s)`` (grid-stride in x), piece ``z`` of the
    batch (grid y: samples ``z*N // pieces`` on): ``partials[z*K*R*S + b]`` = the sum over its
    ``(n, p, q)`` of ``dy[n, k, p, q] * x[n, k // M, p*sh - ph + r*dh, q*sw - pw + s*dw]``
    (zero outside x), each thread's share in float64, then a tree reduction."""
    N, C, H, W = x.shape
    P, Q = dy.shape[2], dy.shape[3]
    M = K // C
    taps = K * R * S
    z = cuda.blockIdx.y
    n0 = z * N // cuda.gridDim.y
    n1 = (z + 1) * N // cuda.gridDim.y
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    buf = cuda.shared.array(256, float64)
    for b in range(cuda.blockIdx.x, taps, cuda.gridDim.x):  # the same b for every thread
        s = b % S
        r = (b // S) % R
        k = b // (S * R)
        c = k // M
        acc = 0.0
        for n in range(n0, n1):
            for j in range(tid, P * Q, nt):
                p = j // Q
                q = j - p * Q
                h = p * sh - ph + r * dh
                v = q * sw - pw + s * dw
                xv = 0.0
                if 0 <= h < H and 0 <= v < W:
                    xv = x[n, c, h, v]
                acc += dy[n, k, p, q] * xv
        buf[tid] = acc
        total = block_sum(buf)
        if tid == 0:
            partials[z * taps + b] = total
        cuda.syncthreads()  # every thread has read the sum before the next tap overwrites buf


@kernel(*[(float64[:], t[:, :, :, :], int64) for t in (float32, float64)])
def dw_sum_pieces(partials, dwt, pieces):
    """``dwt[k, 0, r, s] = sum_z partials[z*K*R*S + (k*R + r)*S + s]``, in piece order."""
    K, R, S = dwt.shape[0], dwt.shape[2], dwt.shape[3]
    taps = K * R * S
    for b in range(cuda.grid(1), taps, cuda.gridsize(1)):
        acc = 0.0
        for z in range(pieces):
            acc += partials[z * taps + b]
        s = b % S
        r = (b // S) % R
        dwt[b // (S * R), 0, r, s] = acc


# --------------------------------------------------------------------------- host side
def _geom(g) -> tuple:
    return g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw


def _planes(planes: int, pixels: int, threads: int = 256) -> tuple:
    """Grid (pixel blocks, planes) and block for the plane kernels: a small one under the
    simulator, where every thread is a Python thread (the grid-stride loops cover any grid)."""
    if SIMULATOR:
        return (2, 2), 4
    return (max(1, -(-pixels // threads)), min(planes, 65_535)), threads


def conv2d_into(x, w, y, g, beta: float, bias=None) -> None:
    """``y = depthwise conv2d(x, w) [+ bias] + beta * y``."""
    b = cuda.device_array(0, y.dtype) if bias is None else bias
    dw_forward[_planes(g.N * g.K, g.P * g.Q)](x, w, y, b, *_geom(g), float(beta))


def dx_into(dy, w, dx, g) -> None:
    """``dx`` = the input gradient of the depthwise convolution ``g`` for ``dy``."""
    dw_input_grad[_planes(g.N * g.C, g.H * g.W)](dy, w, dx, *_geom(g))


def dw_into(x, dy, dw, g) -> None:
    """``dw`` = the filter gradient of the depthwise convolution ``g`` for ``dy``: the batch in
    pieces until the grid has ~4 blocks per SM (a 32 x 3x3 layer is only 288 taps), then one
    pass summing the pieces."""
    taps = g.K * g.R * g.S
    # the simulator runs each thread in Python: a small grid (still two pieces, several
    # reduction steps)
    if SIMULATOR:
        pieces = min(g.N, 2)
        grid = (2, pieces), 8
    else:
        pieces = max(1, min(g.N, -(-4 * sm_count() // taps)))
        grid = (min(taps, 65_535), pieces), DW_THREADS
    partials = workspace(np.float64, pieces * taps, "depthwise.dw")
    dw_filter_grad[grid](x, dy, partials, g.K, g.R, g.S, *_geom(g))
    dw_sum_pieces[launch_1d(taps)](partials, dw, pieces)
