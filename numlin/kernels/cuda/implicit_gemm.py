"""CUDA implicit-GEMM convolution (NCHW): the column matrix is never stored.

The GEMM kernel's gather variant (``gemm._kernel_source(gather=True)``, launched by
:func:`numlin.kernels.cuda.gemm.gather_into`) reads its B tile straight from the input through
two small index tables: one over the filter taps ``(c, r, s)`` and one over the output pixels
``(p, q)``, each entry an offset into x plus a packed row/column shift, so that B element
(tap, pixel) is ``x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw]`` or zero outside the image.

* forward: taps on the GEMM's reduction axis, pixels on its columns; one launch for the whole
  batch (grid z over samples x groups), no workspace;
* filter gradient: the tables' roles swapped (pixels on the reduction axis, taps on the
  columns), each sample's pixels cut into split-K pieces, the partials summed by one kernel;
* input gradient (stride 1): the front-end runs the forward on ``dy`` with
  :func:`flipped_filter` (``numlin.nn.conv._dx_geometry``).

Same interface as ``kernels/cpu/implicit_gemm.py``: :func:`applies`, :func:`conv2d_nchw_into`,
:func:`conv2d_nchw_dw_into`, :func:`flipped_filter`.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import cuda, float32, float64, int64

from ..._strided import Strided
from . import gemm
from ._registry import kernel
from .arrays import device_key, workspace
from .elementwise import grid_1d
from .im2col import sum_batch

__all__ = ["applies", "conv2d_nchw_into", "conv2d_nchw_dw_into", "flipped_filter"]


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


def _flat(x):
    return x.reshape(int(np.prod(x.shape, dtype=np.int64)))


def _packable(h: np.ndarray, w: np.ndarray) -> bool:
    return bool(h.size == 0 or (h.min() >= -_H_BIAS and h.max() < _H_BIAS and w.min() >= -_W_BIAS
                                and w.max() < _W_BIAS))


def _pack(off: np.ndarray, h: np.ndarray, w: np.ndarray) -> tuple:
    """Device ``(offsets, packed h/w)``, padded by one slice of ``gemm.GATHER_MAX_BK`` past a
    multiple of it (the kernel reads whole slices: up to ``t1base + nk*BK - 1``)."""
    pad = gemm.GATHER_MAX_BK
    n = -(-off.size // pad) * pad + pad
    o = np.zeros(n, np.int64)
    hw = np.zeros(n, np.int32)
    o[:off.size] = off
    hw[:off.size] = ((h + _H_BIAS) << 16) + (w + _W_BIAS)
    return cuda.to_device(o), cuda.to_device(hw)


def _tables(g):
    """:func:`_device_tables` of geometry ``g`` on the current device."""
    return _device_tables(device_key(), g.C // g.groups, g.H, g.W, g.R, g.S, g.P, g.Q, g.sh, g.sw, g.ph0,
                          g.pw0, g.dh, g.dw)


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


def applies(geom, filter_grad: bool = False) -> bool:
    """Whether the implicit GEMM covers the convolution ``geom`` (forward, or its filter gradient
    with ``filter_grad``: the same rule here): NCHW, and every shift fits the packed tables (rows
    within +-16384, columns within +-32768)."""
    return geom.layout == "NCHW" and _tables(geom) is not None


def conv2d_nchw_into(x, w, y, geom, beta: float) -> None:
    """``y = conv2d(x, w) + beta * y`` (NCHW, C-contiguous device arrays; :func:`applies`
    holds): one gather-GEMM launch for every sample and group."""
    g = geom
    G, Cg, Kg, PQ, HW = g.groups, g.C // g.groups, g.K // g.groups, g.P * g.Q, g.H * g.W
    CgRS = Cg * g.R * g.S
    Wd = Strided(_flat(w), 0, (1, G, Kg, CgRS), (0, Kg * CgRS, CgRS, 1))
    Yd = Strided(_flat(y), 0, (g.N, G, Kg, PQ), (g.K * PQ, Kg * PQ, PQ, 1))
    boffs = (np.arange(g.N, dtype=np.int64)[:, None] * (g.C * HW)
             + np.arange(G, dtype=np.int64)[None, :] * (Cg * HW)).ravel()
    gemm.gather_into(Wd, _flat(x), boffs, _tables(g), g.H, g.W, Yd, n=PQ, k=CgRS, beta=beta)


#: cap on the filter gradient's per-(sample, piece) partial products, in bytes: the batch is
#: taken in chunks of samples under it (at least one sample, unsplit, per launch)
PARTIALS_BYTES = 64 << 20


def conv2d_nchw_dw_into(x, dy, dw, geom, beta: float) -> None:
    """``dw = sum_n dY[n] @ cols[n]ᵀ + beta * dw`` (``beta`` 0 or 1; :func:`applies` holds):
    the gather kernel with output pixels on the reduction axis and filter taps on the columns,
    the pixels cut into split-K pieces (batch entries ``(n, piece, group)``) until the grid has
    about two blocks per SM, the partials summed by one kernel. Partials are bounded by
    :data:`PARTIALS_BYTES`: chunks of samples, each summed into ``dw`` in turn."""
    if beta not in (0, 1):
        raise ValueError(f"conv2d_nchw_dw_into: beta must be 0 or 1, got {beta}")
    g = geom
    G, Cg, Kg, PQ, HW = g.groups, g.C // g.groups, g.K // g.groups, g.P * g.Q, g.H * g.W
    CgRS = Cg * g.R * g.S
    size = g.K * CgRS  # dw (K, Cg, R, S) = (G, Kg, CgRS)
    budget = max(1, PARTIALS_BYTES // np.dtype(dy.dtype).itemsize)
    nb = max(1, min(g.N, budget // size))
    t = gemm.tiles(dy.dtype, Kg)
    grid, _ = gemm.launch_config(t, Kg, CgRS, nb * G)
    split = gemm._split_k(grid[0] * grid[1] * grid[2], PQ, t.bk)
    split = max((d for d in range(1, split + 1) if PQ % d == 0 and d * size <= budget), default=1)
    nb = max(1, min(nb, budget // (split * size)))
    kp = PQ // split
    part = workspace(dy.dtype, nb * split * size, "conv.dw")
    tabs = _tables(g)
    pixels, taps = tabs[2:], tabs[:2]
    for n0 in range(0, g.N, nb):
        nn = min(nb, g.N - n0)
        A = Strided(_flat(dy), n0 * g.K * PQ, (nn, split, G, Kg, kp), (g.K * PQ, kp, Kg * PQ, PQ, 1))
        Cp = Strided(part, 0, (nn, split, G, Kg, CgRS), (split * size, size, Kg * CgRS, CgRS, 1))
        n_, s_, g_ = np.meshgrid(np.arange(n0, n0 + nn, dtype=np.int64), np.arange(split, dtype=np.int64),
                                 np.arange(G, dtype=np.int64), indexing="ij")
        boffs = (n_ * (g.C * HW) + g_ * (Cg * HW)).ravel()
        gemm.gather_into(A, _flat(x), boffs, pixels + taps, g.H, g.W, Cp, n=CgRS, k=kp, t1base=(s_ * kp).ravel())
        sum_batch(part, dw, nn * split, accumulate=beta == 1 or n0 > 0)


def flipped_filter(w, geom):
    """``w (K, Cg, R, S)`` as the filter of the input gradient's convolution, ``(C, Kg, R, S)``:
    per group, channels swapped and taps reversed (one small kernel)."""
    g = geom
    G = g.groups
    out = cuda.device_array((g.C, g.K // G, g.R, g.S), w.dtype)
    flip_filter[grid_1d(out.size)](_flat(w), _flat(out), G, g.K // G, g.C // G, g.R, g.S)
    return out
