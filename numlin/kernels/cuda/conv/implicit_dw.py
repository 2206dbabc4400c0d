"""CUDA implicit-GEMM filter gradient (NCHW): ``dW = sum_n dY[n] @ cols[n]ᵀ`` without a column
matrix. The gather kernel of :mod:`.implicit_forward` with the index tables' roles swapped
(pixels on the reduction axis, taps on the columns), each sample's pixels cut into split-K
pieces, the partials summed by one kernel (:func:`..buffers.sum_batch`).
"""
from __future__ import annotations

import numpy as np

from ...._config import config
from ...._strided import Strided
from .. import gemm
from ..arrays import flat, workspace
from ..buffers import sum_batch
from .columns import tables

__all__ = ["conv2d_nchw_dw_into"]


def conv2d_nchw_dw_into(x, dy, dw, geom, beta: float) -> None:
    """``dw = sum_n dY[n] @ cols[n]ᵀ + beta * dw`` (``beta`` 0 or 1; the shifts fit the tables):
    the gather kernel with output pixels on the reduction axis and filter taps on the columns,
    the pixels cut into split-K pieces (batch entries ``(n, piece, group)``) until the grid has
    about two blocks per SM, the partials summed by one kernel. Partials are bounded by
    ``config.conv_partials_bytes``: chunks of samples, each summed into ``dw`` in turn."""
    if beta not in (0, 1):
        raise ValueError(f"conv2d_nchw_dw_into: beta must be 0 or 1, got {beta}")
    g = geom
    G, Cg, Kg, PQ, HW = g.groups, g.C // g.groups, g.K // g.groups, g.P * g.Q, g.H * g.W
    CgRS = Cg * g.R * g.S
    size = g.K * CgRS  # dw (K, Cg, R, S) = (G, Kg, CgRS)
    budget = max(1, config.conv_partials_bytes // np.dtype(dy.dtype).itemsize)
    nb = max(1, min(g.N, budget // size))
    t = gemm.tiles(dy.dtype, Kg)
    grid, _ = gemm.launch_config(t, Kg, CgRS, nb * G)
    split = gemm._split_k(grid[0] * grid[1] * grid[2], PQ, t.bk)
    split = max((d for d in range(1, split + 1) if PQ % d == 0 and d * size <= budget), default=1)
    nb = max(1, min(nb, budget // (split * size)))
    kp = PQ // split
    part = workspace(dy.dtype, nb * split * size, "conv.dw")
    tabs = tables(g)
    pixels, taps = tabs[2:], tabs[:2]
    for n0 in range(0, g.N, nb):
        nn = min(nb, g.N - n0)
        A = Strided(flat(dy), n0 * g.K * PQ, (nn, split, G, Kg, kp), (g.K * PQ, kp, Kg * PQ, PQ, 1))
        Cp = Strided(part, 0, (nn, split, G, Kg, CgRS), (split * size, size, Kg * CgRS, CgRS, 1))
        n_, s_, g_ = np.meshgrid(np.arange(n0, n0 + nn, dtype=np.int64), np.arange(split, dtype=np.int64),
                                 np.arange(G, dtype=np.int64), indexing="ij")
        boffs = (n_ * (g.C * HW) + g_ * (Cg * HW)).ravel()
        gemm.gather_into(A, flat(x), boffs, pixels + taps, g.H, g.W, Cp, n=CgRS, k=kp, t1base=(s_ * kp).ravel())
        sum_batch(part, dw, nn * split, accumulate=beta == 1 or n0 > 0)
