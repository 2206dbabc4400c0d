"""Packing: copying blocks of A and panels of B into the layout the micro-kernel reads.

BLIS's packm. The source is a strided descriptor (element ``(i, j)`` at ``buf[off + i*rs + j*cs]``,
any strides), so packing is where transposes, Fortran order and slices are absorbed; the
micro-kernel then reads unit-stride, aligned runs:

* A block ``mc x kc`` -> ``ceil(mc/MR)`` micro-panels, each ``kc`` rows of ``MR`` contiguous
  elements (``ap[panel*MR*kc + p*MR + i]``), zero-padded past ``mc``.
* B panel ``kc x nc`` -> ``ceil(nc/NR)`` micro-panels, each ``kc`` rows of ``NR`` contiguous
  elements (``bp[panel*NR*kc + p*NR + j]``), zero-padded past ``nc``.

The zero padding lets edge tiles run the full micro-kernel into a scratch tile.
"""
from __future__ import annotations

from .._jit import njit, uintp

from .microkernel import _tile_shape

__all__ = ["_pack_a", "_pack_b"]


@njit(cache=True, nogil=True)
def _pack_a(a, aoff, ars, acs, mc, kc, ap):
    """Pack the ``mc x kc`` block of A at ``a[aoff + i*ars + p*acs]`` into MR-row micro-panels.

    Indices are cast to unsigned so that Numba emits no negative-index wraparound code.
    """
    MR, NR = _tile_shape(ap)
    for ir_ in range(0, mc, MR):
        base = ir_ * kc
        rows = min(MR, mc - ir_)
        src0 = aoff + ir_ * ars
        if rows == MR and acs == 1:  # rows of A contiguous: MR read streams
            for p in range(kc):
                d = uintp(base + p * MR)
                s = src0 + p
                for i in range(MR):
                    ap[d + i] = a[uintp(s + i * ars)]
        elif rows == MR and ars == 1:  # columns of A contiguous: a straight copy per p
            for p in range(kc):
                d = uintp(base + p * MR)
                s = uintp(src0 + p * acs)
                for i in range(MR):
                    ap[d + i] = a[s + i]
        else:
            for p in range(kc):
                d = uintp(base + p * MR)
                s = src0 + p * acs
                for i in range(rows):
                    ap[d + i] = a[uintp(s + i * ars)]
                for i in range(rows, MR):
                    ap[d + i] = 0


@njit(cache=True, nogil=True)
def _pack_b(b, boff, brs, bcs, kc, nc, bp):
    """Pack the ``kc x nc`` panel of B at ``b[boff + p*brs + j*bcs]`` into NR-column micro-panels.

    With unit column stride, rows of B are read in order (row p feeds every micro-panel) so that
    reads stream instead of striding down columns, which alias in the caches for power-of-two
    leading dimensions.
    """
    MR, NR = _tile_shape(bp)
    nfull = nc // NR * NR
    if bcs == 1:
        for p in range(kc):
            s = boff + p * brs
            for jr in range(0, nfull, NR):
                d = uintp(jr * kc + p * NR)
                sj = uintp(s + jr)
                for j in range(NR):
                    bp[d + j] = b[sj + j]
    else:
        for jr in range(0, nfull, NR):
            for p in range(kc):
                d = uintp(jr * kc + p * NR)
                s = boff + p * brs + jr * bcs
                for j in range(NR):
                    bp[d + j] = b[uintp(s + j * bcs)]
    if nfull < nc:
        cols = nc - nfull
        for p in range(kc):
            d = uintp(nfull * kc + p * NR)
            s = boff + p * brs + nfull * bcs
            for j in range(cols):
                bp[d + j] = b[uintp(s + j * bcs)]
            for j in range(cols, NR):
                bp[d + j] = 0
