"""CPU implicit-GEMM convolution forward (NCHW): im2col fused into the GEMM's packing.

``y[n] (K x PQ) = W (K x CRS) @ cols[n] (CRS x PQ)`` per group, without a column matrix: the
pixels of all samples form one column index ``t = n*P*Q + p*Q + q`` (:mod:`.columns` says where
each entry of ``cols`` lives in x). The filter is packed once per call (``K x CRS`` is small) in
:func:`..gemm._pack_a`'s MR-row micro-panels, group ``gi``'s ``Kg x CgRS`` matrix at
``gi*mp*CgRS`` (``mp`` = Kg rounded up to MR), its ``kc`` slice starting at column ``pc`` at
``+ pc*mp``: the A operand the GEMM's macro-kernel expects for ``mc = Kg``.

Packed (:func:`conv2d_nchw_packed`, any stride): each thread takes an equal share of the NR-wide
panels of pixels, in blocks of ``config.conv_nc_pixels`` columns. For each block and ``kc``-row
slice of ``CRS`` it packs the ``kc x nc`` panel of B straight from x into the GEMM's packed layout
(``bp[panel*NR*kc + p*NR + j]``) and runs the macro-kernel on it: x is read from cache, the panel
lives in L2, and no column matrix is written or read back, so the workspace cap of
:mod:`numlin.nn.conv` does not apply. Packing goes by pixel segments; within a segment the lanes
to copy are the same for every channel of a tap ``(r, s)``, so the channel loop is innermost and
the masks are built once per segment and tap. A block whose columns span two samples is not one
strided matrix of y: the macro-kernel writes it to a ``Kg x nc`` scratch block, scattered into y
afterwards.

Shifted (:func:`conv2d_nchw_shifted`, stride 1, ``config.conv_shifted``): no B packing. x is
copied once per filter column (:func:`.columns.shift_copies`, ``S`` times the input per chunk of
samples, at most ``config.conv_shift_bytes``; a bigger sample is packed), after which every row
of a sample's column matrix is a contiguous run: the micro-kernel reads its B rows in place
through a table of tap offsets (:func:`..gemm._micro_kernel_split`) for each NR-pixel tile
inside a sample. Copying ``S`` times the input costs less than packing ``R*S`` times it. The last
``P*Q mod NR`` pixels of every sample are gathered over the chunk and take the packed path. With
many filters (``config.conv_row_split_blocks``) each thread takes a share of the filter's rows
over every tile rather than a share of the tiles: no imbalance from the coarse tiles and the
packed tails, and each thread streams only its rows of the packed filter. Output planes of
exactly one vector have no in-place tile inside a sample; there a tile's NR/VW vectors are as
many samples (:func:`..gemm._micro_kernel_split`).

The input gradient of a stride-1 convolution is :func:`conv2d_nchw_into` on dy with
:func:`flipped_filter` (see :mod:`numlin.nn.conv`).

Numba caches these kernels under this file's stamp and those of the GEMM modules it links in
(:mod:`.._cache`), so an edit to the micro- or macro-kernel recompiles them too.
"""
from __future__ import annotations

import numpy as np
from .._jit import njit, uintp

from ...._config import config
from ..blocking import blocking
from ..gemm.loops import _add_edge_tile, _macro_kernel
from ..gemm.microkernel import _micro_kernel_split, _tile_shape, _vector_width
from ..gemm.operands import workspace
from .._threads import launch, num_threads
from .columns import (SEG_COL, SEG_H0, SEG_LEN, SEG_Q0, SEG_XOFF, copy_parts, pixel_segments, q_ranges, shift_bytes,
                      shift_copies, tap_offsets)

__all__ = ["conv2d_nchw_into", "flipped_filter", "conv2d_nchw_packed", "conv2d_nchw_shifted", "pack_filter"]


@njit(cache=True, nogil=True)
def _pack_b_conv(x, seg, ns, c0, crs0, kc, H, W, R, S, sw, pw, dh, dw, qlo, qhi, bp):
    """Pack rows ``crs0 .. crs0+kc`` (of one group, first channel ``c0``) of the column matrix
    over the block described by ``seg`` into ``bp``'s NR-column micro-panels.

    Row ``(c, r, s)``, column (n, p, q): ``x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw]`` or 0 in
    the padding. ``qlo[s] .. qhi[s]`` are the output columns whose input column is inside x.
    Per segment and filter tap ``(r, s)`` the lanes to copy are the same for every channel, so
    the channel loop is innermost (its rows are ``R*S`` apart in the panel, its planes ``H*W``
    apart in x) and the masks are computed once for all channels.
    """
    MR, NR = _tile_shape(bp)
    HW = H * W
    RS = R * S
    zero = bp.dtype.type(0)
    for i in range(ns):
        j = seg[i, SEG_COL]
        L = seg[i, SEG_LEN]
        q0 = seg[i, SEG_Q0]
        jp = j % NR  # the segment's first lane in its micro-panel
        for rs in range(RS):
            p = (rs - crs0 % RS + RS) % RS  # first row of the block with this tap
            if p >= kc:
                continue
            r = rs // S
            s = rs - r * S
            h = seg[i, SEG_H0] + r * dh
            a = max(qlo[s] - q0, 0)  # valid k: a <= k < b, reading x[src + k*sw]
            b = min(qhi[s] - q0, L)
            if h < 0 or h >= H:
                b = a
            src = seg[i, SEG_XOFF] + (c0 + (crs0 + p) // RS) * HW + h * W + q0 * sw + s * dw - pw
            d = (j - jp) * kc + p * NR
            # constant trip count and per-lane conditions: LLVM makes masked vector loads and
            # stores of them (lanes outside the segment are left alone)
            if sw == 1:
                while p < kc:
                    for jj in range(NR):
                        k = jj - jp
                        if 0 <= k < L:
                            bp[uintp(d + jj)] = x[uintp(src + k)] if a <= k < b else zero
                    p += RS
                    d += RS * NR
                    src += HW
            else:  # strided reads: LLVM would not vectorise them (gathers), so plain runs
                a = min(a, L)
                b = max(b, a)
                while p < kc:
                    for k in range(a):
                        bp[uintp(d + jp + k)] = zero
                    for k in range(a, b):
                        bp[uintp(d + jp + k)] = x[uintp(src + k * sw)]
                    for k in range(b, L):
                        bp[uintp(d + jp + k)] = zero
                    p += RS
                    d += RS * NR
                    src += HW


@njit(cache=True, nogil=True)
def pack_filter(t, parts, w, ap, G, Kg, CgRS, kc_blk, mp):
    """Part ``t`` of ``parts`` of packing the filter into ``ap``: a run of its slices
    ``u = gi*nsl + kc-slice`` (group ``gi``'s ``Kg x CgRS`` matrix, ``nsl`` slices of ``kc_blk``
    columns), laid out as the module docstring says (:func:`..gemm._pack_a`'s layout, written
    here for rows of unit column stride: calling ``_pack_a`` linked its code in, ~0.4 s more to
    compile in every convolution program)."""
    MR, NR = _tile_shape(ap)
    zero = ap.dtype.type(0)
    nsl = (CgRS + kc_blk - 1) // kc_blk
    for u in range(G * nsl * t // parts, G * nsl * (t + 1) // parts):
        gi = u // nsl
        pc = (u - gi * nsl) * kc_blk
        kc = min(kc_blk, CgRS - pc)
        for i0 in range(0, Kg, MR):
            rows = min(MR, Kg - i0)
            d0 = gi * mp * CgRS + pc * mp + i0 * kc
            s0 = (gi * Kg + i0) * CgRS + pc
            for p in range(kc):
                d = uintp(d0 + p * MR)
                if rows == MR:  # MR read streams along the filter's rows
                    for i in range(MR):
                        ap[d + i] = w[uintp(s0 + p + i * CgRS)]
                else:
                    for i in range(rows):
                        ap[d + i] = w[uintp(s0 + p + i * CgRS)]
                    for i in range(rows, MR):
                        ap[d + i] = zero


@njit(cache=True, nogil=True)
def conv2d_nchw_packed(t, parts, x, y, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, P, Q, G, beta, ap, qlo, qhi,
                       work, wsize, scratch, kc_blk, nc_blk):
    """Part ``t`` of ``parts`` of ``y = conv(x, w) + beta * y`` (NCHW, flat C-ordered buffers), see
    the module docstring: an equal share of the NR-wide micro-panels of output pixels.

    ``ap`` holds the packed filter (``G * mp * CgRS``, :func:`pack_filter`); ``qlo``, ``qhi`` the
    output columns inside x per filter column (:func:`.columns.q_ranges`); ``work`` ``parts``
    slices of ``wsize`` (packed B panel, edge tile); ``scratch`` ``parts`` slices of ``Kg * nc_blk``
    (blocks spanning two samples). ``nc_blk`` is a multiple of NR.
    """
    MR, NR = _tile_shape(work)
    t_ = y.dtype.type
    one = t_(1)
    beta = t_(beta)
    Cg = C // G
    Kg = K // G
    CgRS = Cg * R * S
    PQ = P * Q
    mp = (Kg + MR - 1) // MR * MR
    total = N * PQ
    npan = (total + NR - 1) // NR
    wk = work[t * wsize:(t + 1) * wsize]
    bp = wk[:kc_blk * nc_blk]
    ct = wk[kc_blk * nc_blk:kc_blk * nc_blk + MR * NR]
    sc = t * Kg * nc_blk
    seg = np.empty((nc_blk + nc_blk // NR + 1, 5), np.int64)
    t_end = min(total, (npan * (t + 1) // parts) * NR)
    for j0 in range(npan * t // parts * NR, t_end, nc_blk):
        nc = min(nc_blk, t_end - j0)
        ns = pixel_segments(j0, nc, (nc + NR - 1) // NR * NR, PQ, Q, C * H * W, sh, ph, NR, seg)
        n0 = j0 // PQ
        cross = (j0 + nc - 1) // PQ != n0
        for gi in range(G):
            if cross:
                dst, doff, drs, b0 = scratch, sc, nc_blk, t_(0)
            else:
                dst, doff, drs, b0 = y, (n0 * K + gi * Kg) * PQ + j0 - n0 * PQ, PQ, beta
            for pc in range(0, CgRS, kc_blk):
                kc = min(kc_blk, CgRS - pc)
                _pack_b_conv(x, seg, ns, gi * Cg, pc, kc, H, W, R, S, sw, pw, dh, dw, qlo, qhi, bp)
                _macro_kernel(kc, Kg, nc, ap[gi * mp * CgRS + pc * mp:], bp, dst, doff, drs, 1, one,
                              b0 if pc == 0 else one, ct)
            if cross:  # scatter the block's columns, a run per sample
                _scatter_block(y, scratch, sc, nc_blk, j0, nc, PQ, 0, 0, PQ, K, gi * Kg, Kg, beta)


@njit(cache=True, nogil=True)
def _scatter_block(y, scratch, sc, nc_blk, j0, nc, span, first, n0, PQ, K, k0, Kg, beta):
    """Add the ``Kg x nc`` block at ``scratch[sc + k*nc_blk + j]`` (columns ``j0 ..`` in the
    numbering of :func:`.columns.pixel_segments`) into rows ``k0 ..`` of y, a run per sample."""
    jj = 0
    while jj < nc:
        nl = (j0 + jj) // span
        t = j0 + jj - nl * span
        run = min(nc - jj, span - t)
        for k in range(Kg):
            o = ((n0 + nl) * K + k0 + k) * PQ + first + t
            src = sc + k * nc_blk + jj
            for u in range(run):
                v = scratch[src + u]
                y[o + u] = v if beta == 0 else v + beta * y[o + u]
        jj += run


def conv2d_nchw_shifted(t, parts, x, y, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, ap, xs, n0, m, qlo, qhi,
                        toff, work, wsize, scratch, kc_blk, nc_blk, pr):
    """Part ``t`` of ``parts`` of ``y = conv(x, w) + beta * y`` for samples ``n0 .. n0+m`` of a
    stride-1 convolution (NCHW, flat buffers) with B read in place: ``xs`` holds the chunk's
    copies of x, one per filter column (:func:`.columns.shift_copies`), where every row of a sample's
    column matrix is a contiguous run, so each NR-pixel tile of a sample runs
    :func:`..gemm._micro_kernel_split` straight on it (through each tap's offset in a sample's
    copies, :func:`.columns.tap_offsets`): :func:`_shifted_tiles`. No B packing. Output planes of
    one vector (``PQ == VW < NR``) have no tile inside a sample; there a tile's ``NR/VW`` vectors
    are as many samples (the same kernel). The last ``PQ mod NR`` pixels of every sample,
    gathered over the chunk, take the packed path of :func:`conv2d_nchw_packed` through a scratch
    block: :func:`_shifted_tails`. The ``parts`` form ``pr`` row groups (equal
    runs of the filter's MR-row blocks) by ``parts / pr`` equal runs of the tiles (tail panels
    last, :func:`_shifted_share`), ``nc_blk / NR`` tiles of one sample at a time for each ``kc``
    slice of the packed filter ``ap`` (:func:`pack_filter`).

    A Python function calling the compiled kernel of each route this convolution takes, with the
    part's share (``lo .. r1``, computed here): a program compiles only the routes its shapes
    take (each route's kernel compiles in ~1 s), and a part skips a route it has no work in."""
    bl = blocking(y.dtype)
    lo, hi, nd, nfull, tail, r0, r1 = _shifted_share(t, parts, pr, m, P * Q, K // G, bl.mr, bl.nr, bl.vw)
    args = (t, x, y, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, ap, xs, n0, m, qlo, qhi, toff, work,
            wsize, scratch, kc_blk, nc_blk, lo, hi, nd, nfull, tail, r0, r1)
    if lo < nd:
        _shifted_tiles(*args)
    if hi > nd:
        _shifted_tails(*args)


def _shifted_share(t: int, parts: int, pr: int, m: int, PQ: int, Kg: int, MR: int, NR: int, VW: int) -> tuple:
    """Part ``t``'s share of a shifted convolution over ``m`` samples: units ``lo .. hi`` (the
    first ``nd`` are tiles in place, or of ``NR/VW`` samples where a plane is one vector; then
    the NR-column panels of the samples' tails), filter rows ``r0 .. r1`` of each group, and
    the in-place tiles ``nfull`` and tail pixels ``tail`` of each sample."""
    nvec = NR // VW
    vmode = PQ == VW and nvec > 1
    nfull = 0 if vmode else PQ // NR
    tail = 0 if vmode else PQ - nfull * NR
    mblk = (Kg + MR - 1) // MR
    pt = parts // pr
    nd = (m + nvec - 1) // nvec if vmode else m * nfull
    units = nd + (m * tail + NR - 1) // NR
    tr = t % pr  # this part's rows of the filter: r0 <= k < r1 of each group
    r0 = mblk * tr // pr * MR
    r1 = min(Kg, mblk * (tr + 1) // pr * MR)
    return units * (t // pr) // pt, units * (t // pr + 1) // pt, nd, nfull, tail, r0, r1


@njit(cache=True, nogil=True)
def _shifted_tiles(t, x, y, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, ap, xs, n0, m, qlo, qhi, toff,
                   work, wsize, scratch, kc_blk, nc_blk, lo, hi, nd, nfull, tail, r0, r1):
    """:func:`conv2d_nchw_shifted`'s tiles read in place, ``nc_blk / NR`` of them a step: NR pixels
    of one sample (``nfull`` tiles per sample), or, where a sample's plane is one vector
    (``nfull == 0``), one vector of each of ``NR/VW`` samples. One call site of
    :func:`..gemm._micro_kernel_split` serves both (its vector strides: ``VW`` in a sample, a
    sample's ``SCHQ`` copies and ``K*PQ`` outputs across samples), so one kernel compiles for both."""
    MR, NR = _tile_shape(work)
    VW = _vector_width(work)
    t_ = y.dtype.type
    one = t_(1)
    zero = t_(0)
    beta = t_(beta)
    Cg = C // G
    Kg = K // G
    CgRS = Cg * R * S
    PQ = P * Q
    HQ = (P + dh * (R - 1)) * Q
    SCHQ = S * C * HQ
    mp = (Kg + MR - 1) // MR * MR
    nvec = NR // VW
    vmode = nfull == 0  # a sample's plane is one vector: tiles of nvec samples
    tg = max(1, nc_blk // NR)  # tiles per step
    ct = work[t * wsize + kc_blk * nc_blk:t * wsize + kc_blk * nc_blk + MR * NR]
    u = lo
    end = min(hi, nd)
    while u < end:
        if vmode:  # tiles u .. u + tg
            nl, j0, j1 = 0, u, min(u + tg, end)
        else:  # tiles j0 .. j1 of sample nl
            nl = u // nfull
            j0 = u - nl * nfull
            j1 = min(j0 + tg, nfull, j0 + end - u)
        for gi in range(G):
            for pc in range(0, CgRS, kc_blk):
                kc = min(kc_blk, CgRS - pc)
                a0 = gi * mp * CgRS + pc * mp
                b0 = beta if pc == 0 else one
                for jt in range(j0, j1):
                    if vmode:
                        ns = min(nvec, m - jt * nvec)  # samples in this tile
                        boff = jt * nvec * SCHQ + gi * Cg * HQ
                        coff = ((n0 + jt * nvec) * K + gi * Kg) * PQ
                        bvs = SCHQ if ns == nvec else 0  # a short tile re-reads its first sample
                        cvs = K * PQ
                    else:
                        ns = nvec
                        boff = nl * SCHQ + gi * Cg * HQ + jt * NR
                        coff = ((n0 + nl) * K + gi * Kg) * PQ + jt * NR
                        bvs = cvs = VW
                    for i0 in range(r0, r1, MR):
                        rows = min(MR, Kg - i0)
                        full = rows == MR and ns == nvec
                        if full:  # one call site: the micro-kernel is inlined per site
                            dst, doff, drs, dvs, db = y, coff + i0 * PQ, PQ, cvs, b0
                        else:  # an edge tile: into ct, then added to y vector by vector
                            dst, doff, drs, dvs, db = ct, 0, NR, VW, zero
                        _micro_kernel_split(kc, ap, a0 + i0 * kc, xs, boff, toff, pc, bvs, dst, doff, drs, dvs, one,
                                            db)
                        if not full:
                            for v in range(ns):
                                _add_edge_tile(ct[v * VW:], NR, rows, VW, y, coff + i0 * PQ + v * cvs, PQ, 1, b0)
        u += j1 - j0


@njit(cache=True, nogil=True)
def _shifted_tails(t, x, y, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, ap, xs, n0, m, qlo, qhi, toff,
                   work, wsize, scratch, kc_blk, nc_blk, lo, hi, nd, nfull, tail, r0, r1):
    """:func:`conv2d_nchw_shifted`'s tails: columns (sample, last ``PQ mod NR`` pixels) of the
    chunk, packed from x and through the macro-kernel into a scratch block, scattered into y."""
    MR, NR = _tile_shape(work)
    t_ = y.dtype.type
    one = t_(1)
    zero = t_(0)
    Cg = C // G
    Kg = K // G
    CgRS = Cg * R * S
    PQ = P * Q
    mp = (Kg + MR - 1) // MR * MR
    wk = work[t * wsize:(t + 1) * wsize]
    bp = wk[:kc_blk * nc_blk]
    ct = wk[kc_blk * nc_blk:kc_blk * nc_blk + MR * NR]
    sc = t * Kg * nc_blk
    seg = np.empty((nc_blk + nc_blk // NR + 1, 5), np.int64)
    ta = (max(lo, nd) - nd) * NR
    tb = min(m * tail, (hi - nd) * NR)
    for j0 in range(ta, tb, nc_blk):
        nc = min(nc_blk, tb - j0)
        ns = pixel_segments(j0, nc, (nc + NR - 1) // NR * NR, PQ, Q, C * H * W, 1, ph, NR, seg,
                            tail, nfull * NR, n0)
        for gi in range(G):
            for pc in range(0, CgRS, kc_blk):
                kc = min(kc_blk, CgRS - pc)
                _pack_b_conv(x, seg, ns, gi * Cg, pc, kc, H, W, R, S, 1, pw, dh, dw, qlo, qhi, bp)
                _macro_kernel(kc, r1 - r0, nc, ap[gi * mp * CgRS + pc * mp + r0 * kc:], bp, scratch, sc,
                              nc_blk, 1, one, zero if pc == 0 else one, ct)
            _scatter_block(y, scratch, sc, nc_blk, j0, nc, tail, nfull * NR, n0, PQ, K, gi * Kg + r0, r1 - r0,
                           beta)


def conv2d_nchw_into(x: np.ndarray, w: np.ndarray, y: np.ndarray, g, beta: float) -> None:
    """``y = conv2d(x, w) + beta * y`` for C-contiguous NCHW arrays of one dtype and the
    geometry ``g`` (:class:`numlin._geometry.Conv2dGeometry`), any stride, padding, dilation and
    groups. Workspace: the packed filter plus one ``kc x config.conv_nc_pixels`` panel per thread
    (and, stride 1, the shifted copies of a chunk of samples)."""
    dtype = y.dtype
    bl = blocking(dtype)
    threads = num_threads()
    min_fma, grain, cap = config.conv_parallel_mnk, config.threads_grain, config.conv_shift_bytes
    Cg, Kg = g.C // g.groups, g.K // g.groups
    crs = Cg * g.R * g.S
    kc = -(-crs // -(-crs // bl.kc))  # equal kc slices of at most bl.kc rows
    nc = config.conv_nc_pixels
    npan = -(-g.N * g.P * g.Q // bl.nr)
    work_fma = g.N * g.P * g.Q * g.K * crs
    parts = max(1, min(threads, npan, work_fma // min_fma or 1))
    mp = -(-Kg // bl.mr) * bl.mr
    ap = workspace(dtype, g.groups * mp * crs, "conv.filter")
    wsize = kc * nc + bl.mr * bl.nr
    xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    launch(pack_filter, max(1, min(parts, g.groups * -(-crs // kc), g.groups * mp * crs // grain)), wf, ap,
           g.groups, Kg, crs, kc, mp)
    per = shift_bytes(g, dtype)  # one sample's shifted copies
    pq = g.P * g.Q
    if config.conv_shifted and g.sh == g.sw == 1 and (pq >= bl.nr or pq == bl.vw < bl.nr) and per <= cap:
        nb = max(1, min(g.N, cap // per))
        units = g.N * (g.P * g.Q // bl.nr) + -(-g.N * (g.P * g.Q % bl.nr) // bl.nr)  # in-place tiles, tail panels
        parts = max(1, min(threads, units, work_fma // min_fma or 1))
        mblk = -(-Kg // bl.mr)
        split = config.conv_row_split_blocks
        pr = max((d for d in range(1, parts + 1) if parts % d == 0 and mblk // d >= split), default=1)
        xs = workspace(dtype, nb * per // dtype.itemsize, "conv.xshift")
        work = workspace(dtype, wsize * parts)
        scratch = workspace(dtype, parts * Kg * nc, "conv.scatter")
        Hp = g.P + g.dh * (g.R - 1)
        qlo, qhi = q_ranges(g.Q, g.W, 1, g.pw0, g.S, g.dw)
        toff = tap_offsets(g.C // g.groups, g.C, g.R, g.S, g.dh, g.Q, Hp * g.Q)
        for n0 in range(0, g.N, nb):
            m = min(nb, g.N - n0)
            launch(shift_copies, copy_parts(g, m, parts), xf, xs, n0, m, g.C, g.H, g.W, g.S, g.ph0, g.pw0, g.dw,
                   Hp, g.Q, qlo, qhi)
            launch(conv2d_nchw_shifted, parts, xf, yf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.ph0, g.pw0, g.dh, g.dw,
                   g.P, g.Q, g.groups, beta, ap, xs, n0, m, qlo, qhi, toff, work, wsize, scratch, kc, nc, pr)
        return
    qlo, qhi = q_ranges(g.Q, g.W, g.sw, g.pw0, g.S, g.dw)
    launch(conv2d_nchw_packed, parts, xf, yf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw,
           g.P, g.Q, g.groups, beta, ap, qlo, qhi, workspace(dtype, wsize * parts), wsize,
           workspace(dtype, parts * Kg * nc, "conv.scatter"), kc, nc)


def flipped_filter(w: np.ndarray, g) -> np.ndarray:
    """``w (K, Cg, R, S)`` as the filter of the input gradient's convolution, ``(C, Kg, R, S)``
    with ``w'[gi*Cg + c, k, r, s] = w[gi*Kg + k, c, R-1-r, S-1-s]`` (per group: channels
    swapped, taps reversed), C-contiguous."""
    G = g.groups
    wg = w.reshape(G, g.K // G, g.C // G, g.R, g.S)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(wg.transpose(0, 2, 1, 3, 4)).reshape(g.C, g.K // G, g.R, g.S)
