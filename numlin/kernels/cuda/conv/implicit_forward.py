"""CUDA implicit-GEMM convolution forward (NCHW): the column matrix is never stored.

The GEMM kernel's gather variant reads its B tile from x through the index tables of
:mod:`.columns`: taps on the GEMM's reduction axis, pixels on its columns; one launch for the
whole batch (grid z over samples x groups), no workspace. The input gradient of a stride-1
convolution is this forward on ``dy`` with :func:`flipped_filter`
(``numlin._geometry.dx_geometry``); the filter gradient is :mod:`.implicit_dw`.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64, int64

from ...._strided import Strided
from .. import gemm
from .._registry import kernel
from ..arrays import flat
from ..elementwise import grid_1d
from .columns import tables

__all__ = ["conv2d_nchw_into", "flipped_filter"]


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


def conv2d_nchw_into(x, w, y, geom, beta: float) -> None:
    """``y = conv2d(x, w) + beta * y`` (NCHW, C-contiguous device arrays; the geometry's shifts
    fit the tables): one gather-GEMM launch for every sample and group."""
    g = geom
    G, Cg, Kg, PQ, HW = g.groups, g.C // g.groups, g.K // g.groups, g.P * g.Q, g.H * g.W
    CgRS = Cg * g.R * g.S
    Wd = Strided(flat(w), 0, (1, G, Kg, CgRS), (0, Kg * CgRS, CgRS, 1))
    Yd = Strided(flat(y), 0, (g.N, G, Kg, PQ), (g.K * PQ, Kg * PQ, PQ, 1))
    boffs = (np.arange(g.N, dtype=np.int64)[:, None] * (g.C * HW)
             + np.arange(G, dtype=np.int64)[None, :] * (Cg * HW)).ravel()
    gemm.gather_into(Wd, flat(x), boffs, tables(g), g.H, g.W, Yd, n=PQ, k=CgRS, beta=beta)


def flipped_filter(w, geom):
    """``w (K, Cg, R, S)`` as the filter of the input gradient's convolution, ``(C, Kg, R, S)``:
    per group, channels swapped and taps reversed (one small kernel)."""
    g = geom
    G = g.groups
    out = cuda.device_array((g.C, g.K // G, g.R, g.S), w.dtype)
    flip_filter[grid_1d(out.size)](flat(w), flat(out), G, g.K // G, g.C // G, g.R, g.S)
    return out
