"""Strided operand descriptors: what the GEMM kernels take instead of arrays.

A :class:`Strided` is ``(buf, off, shape, strides)``: element ``idx`` of the operand is
``buf[off + sum(idx * strides)]`` with strides in elements (any sign; 0 for a broadcast or an
inserted axis). Transposes, inserted axes and broadcasting are descriptor arithmetic, so no operand
is ever copied to fit a kernel, and one compiled kernel per dtype serves every memory order.
``buf`` is a 1-D numpy view for the CPU kernels or a 1-D device array for the CUDA kernels.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Strided", "gemm_dims"]


class Strided(NamedTuple):
    buf: Any
    off: int
    shape: tuple
    strides: tuple

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def mT(self) -> "Strided":
        """The descriptor with its last two axes swapped (a transposed view)."""
        sh, st = self.shape, self.strides
        return Strided(self.buf, self.off, sh[:-2] + (sh[-1], sh[-2]), st[:-2] + (st[-1], st[-2]))

    def insert_axis(self, axis: int) -> "Strided":
        """A length-1 axis at ``axis`` (negative counts from the end, as ``np.expand_dims``)."""
        axis = axis if axis >= 0 else self.ndim + 1 + axis
        return Strided(self.buf, self.off, self.shape[:axis] + (1,) + self.shape[axis:],
                       self.strides[:axis] + (0,) + self.strides[axis:])

    def batch_offsets(self, batch: tuple) -> np.ndarray:
        """Offset of each matrix when the batch dims broadcast to ``batch`` (C order, int64)."""
        if not batch:  # one matrix
            return np.array((self.off,), np.int64)
        nb = len(self.shape) - 2
        st = [0] * (len(batch) - nb) + [s if d > 1 else 0 for s, d in zip(self.strides[:-2], self.shape[:-2])]
        offs = np.full(1, self.off, np.int64)
        for d, s in zip(batch, st):  # outer to inner: offs[i, j] = offs[i] + j * s
            offs = (offs[:, None] + np.arange(d, dtype=np.int64)[None, :] * s).ravel()
        return offs


def gemm_dims(a: Strided, b: Strided, c: Strided) -> tuple:
    """``(m, n, k, batch, nb)`` of ``C = A @ B``: A ``(..., m, k)``, B ``(..., k, n)``, C
    ``(*batch, m, n)`` holding ``nb`` matrices."""
    m, k = a.shape[-2:]
    batch = tuple(c.shape[:-2])
    return m, b.shape[-1], k, batch, math.prod(batch)
