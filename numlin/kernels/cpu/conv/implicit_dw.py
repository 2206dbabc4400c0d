"""CPU implicit-GEMM filter gradient of an NCHW convolution: ``dW (Kg x CgRS) = sum_n dY[n] @
cols[n]ᵀ`` per group, the pixels being the GEMM's depth, without a column matrix.

Stride 1 (:func:`conv2d_nchw_dw_dot`, ``config.conv_dw_dot``): every entry is a dot product along
the pixels of a row of dY (contiguous in place) and a row of ``colsᵀ``, which is contiguous too in
the shifted copies of x (:func:`.columns.shift_copies`): nothing is transposed. :func:`_dot_tile`
keeps an ``MR' x NR'`` block of such products in vector registers (vectors along the pixels, so
each load of dY or x feeds ``NR'`` or ``MR'`` FMAs) and sums each horizontally once per chunk of
samples.

Strided (:func:`conv2d_nchw_dw_packed`): dY is packed as A, ``colsᵀ`` panels (``kc`` pixels x NR
filter rows) from x, column by column along runs of pixels (:func:`_pack_bt_conv`, a scalar
transpose), for the GEMM's macro-kernel; threads take runs of samples, their partial sums added
at the end.

Numba caches these kernels under this file's stamp and those of the GEMM modules it links in
(:mod:`.._cache`), so an edit to the micro- or macro-kernel recompiles them too.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.np.numpy_support import as_dtype

from ...._config import config
from .._jit import intrinsic, njit, uintp
from ..blocking import DOT_TILE, blocking, isa
from ..gemm.loops import _macro_kernel
from ..gemm.microkernel import _load, _splat, _tile_shape, _vector_fma, _vector_width
from ..gemm.operands import workspace
from ..gemm.pack import _pack_a
from ..gemm.plan import add_partials
from .._threads import launch, num_threads
from .columns import (SEG_COL, SEG_H0, SEG_LEN, SEG_Q0, SEG_XOFF, copy_parts, pixel_segments, q_ranges, shift_bytes,
                      shift_copies, tap_offsets)

__all__ = ["conv2d_nchw_dw_into", "conv2d_nchw_dw_dot", "conv2d_nchw_dw_packed"]


def _dot_tile_codegen(dtype):
    """LLVM IR for :func:`_dot_tile`: ``MR' x NR'`` vector accumulators, horizontal sums at the end."""
    mr, nr = DOT_TILE[isa()]
    vw = blocking(dtype).vw
    use_fma = isa() != "generic"

    def codegen(context, builder, signature, args):
        nsamp_v, nv_v, tail_v, a_v, asn_v, b_v, bsn_v, offs_v, c_v = args
        at, bt, ot, ct = signature.args[3], signature.args[5], signature.args[7], signature.args[8]
        t = context.get_value_type(at.dtype)
        vt = ir.VectorType(t, vw)
        align = np.dtype(dtype).itemsize
        intp = context.get_value_type(types.intp)
        const = lambda v: ir.Constant(intp, v)  # noqa: E731
        a_data = context.make_array(at)(context, builder, a_v).data
        b_data = context.make_array(bt)(context, builder, b_v).data
        o_data = context.make_array(ot)(context, builder, offs_v).data
        c_data = context.make_array(ct)(context, builder, c_v).data
        a_rows = [builder.gep(a_data, [builder.load(builder.gep(o_data, [const(i)]))]) for i in range(mr)]
        b_rows = [builder.gep(b_data, [builder.load(builder.gep(o_data, [const(mr + j)]))]) for j in range(nr)]
        accs = []
        for _ in range(mr * nr):
            slot = cgutils.alloca_once(builder, vt)
            builder.store(ir.Constant(vt, None), slot)
            accs.append(slot)
        ivt = ir.VectorType(intp, vw)
        tail_mask = builder.icmp_signed("<", ir.Constant(ivt, list(range(vw))), _splat(builder, tail_v, ivt))

        def step(a_n, b_n, off, mask):
            avec = [_load(builder, builder.gep(a_n[i], [off]), vt, align, mask) for i in range(mr)]
            for j in range(nr):
                bvec = _load(builder, builder.gep(b_n[j], [off]), vt, align, mask)
                for i in range(mr):
                    slot = accs[i * nr + j]
                    builder.store(_vector_fma(builder, avec[i], bvec, builder.load(slot), use_fma), slot)

        with cgutils.for_range(builder, nsamp_v) as outer:
            ao = builder.mul(outer.index, asn_v)
            bo = builder.mul(outer.index, bsn_v)
            a_n = [builder.gep(a_rows[i], [ao]) for i in range(mr)]
            b_n = [builder.gep(b_rows[j], [bo]) for j in range(nr)]
            # two vectors per trip (LLVM's own unrolling left an odd remainder that reloaded
            # the row pointers from the stack), then the odd one
            with cgutils.for_range(builder, builder.ashr(nv_v, const(1))) as loop:
                off = builder.mul(loop.index, const(2 * vw))
                step(a_n, b_n, off, None)
                step(a_n, b_n, builder.add(off, const(vw)), None)
            with builder.if_then(builder.trunc(nv_v, ir.IntType(1))):
                step(a_n, b_n, builder.mul(builder.sub(nv_v, const(1)), const(vw)), None)
            with builder.if_then(builder.icmp_signed(">", tail_v, const(0))):
                step(a_n, b_n, builder.mul(nv_v, const(vw)), tail_mask)
        i32 = ir.IntType(32)
        for k in range(mr * nr):
            v = builder.load(accs[k])
            h = vw
            while h > 1:
                h //= 2
                lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, h), list(range(h))))
                hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, h), list(range(h, 2 * h))))
                v = builder.fadd(lo, hi)
            builder.store(builder.extract_element(v, ir.Constant(i32, 0)), builder.gep(c_data, [const(k)]))
        return context.get_dummy_value()

    return codegen


@intrinsic
def _dot_tile(typingctx, nsamp, nv, tail, a, asn, b, bsn, offs, c):
    """``c[i*NR' + j] = sum_n sum_t a[offs[i] + n*asn + t] * b[offs[MR' + j] + n*bsn + t]`` for
    ``n < nsamp``, ``t < nv*VW + tail``: an ``MR' x NR'`` block of dot products (:data:`..blocking.DOT_TILE`),
    the vectors along ``t`` (unaligned loads; the ``tail < VW`` last elements by masked loads,
    nothing past them is read), one horizontal sum per product at the end."""
    sig = types.void(nsamp, nv, tail, a, asn, b, bsn, offs, c)
    return sig, _dot_tile_codegen(as_dtype(a.dtype))


@intrinsic
def _dot_shape(typingctx, buf):
    """``(MR', NR')`` of :func:`_dot_tile` for ``buf``'s dtype, as compile-time constants."""
    mr, nr = DOT_TILE[isa()]
    ret = types.UniTuple(types.intp, 2)

    def codegen(context, builder, signature, args):
        return context.make_tuple(builder, ret, [context.get_constant(types.intp, mr),
                                                 context.get_constant(types.intp, nr)])

    return ret(buf), codegen


@njit(cache=True, nogil=True)
def _pack_bt_conv(x, seg, ns, kc, crs0, ncols, C0, H, W, R, S, sw, pw, dh, dw, qlo, qhi, bp):
    """Pack the transposed column matrix ``colsᵀ`` (pixels x C*R*S) of the ``kc`` pixels in
    ``seg`` (:func:`.columns.pixel_segments` over one sample) into one NR-column micro-panel,
    ``bp[i*NR + j]`` = column ``crs0 + j`` (of a group whose first channel is ``C0``) at pixel
    ``i``; columns from ``ncols`` on are zeros. Each column is copied along the pixels (runs of
    x along its rows, stride NR in the panel), so the padding bounds are worked out per segment.
    """
    MR, NR = _tile_shape(bp)
    HW = H * W
    RS = R * S
    zero = bp.dtype.type(0)
    for j in range(NR):
        if j >= ncols:
            for i in range(kc):
                bp[uintp(i * NR + j)] = zero
            continue
        crs = crs0 + j
        c = crs // RS
        r = (crs - c * RS) // S
        s = crs - c * RS - r * S
        lo_s = qlo[s]
        hi_s = qhi[s]
        for k in range(ns):
            i0 = seg[k, SEG_COL]
            L = seg[k, SEG_LEN]
            q0 = seg[k, SEG_Q0]
            h = seg[k, SEG_H0] + r * dh
            a = min(max(lo_s - q0, 0), L)
            b = max(min(hi_s - q0, L), a)
            if h < 0 or h >= H:
                a = b = L
            src = seg[k, SEG_XOFF] + (C0 + c) * HW + h * W + q0 * sw + s * dw - pw
            d = i0 * NR + j
            for i in range(a):
                bp[uintp(d + i * NR)] = zero
            for i in range(a, b):
                bp[uintp(d + i * NR)] = x[uintp(src + i * sw)]
            for i in range(b, L):
                bp[uintp(d + i * NR)] = zero


@njit(cache=True, nogil=True)
def conv2d_nchw_dw_packed(t, parts, x, dy, gw, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, P, Q, G, beta, qlo,
                          qhi, tmp, work, wsize, kc_blk, nc_blk):
    """Part ``t`` of ``parts`` of the filter gradient ``gw = sum_n dy[n] @ cols[n]ᵀ + beta * gw``
    per group (NCHW, flat buffers), the columns packed from x (:func:`_pack_bt_conv`), dy packed
    as A (:func:`..gemm._pack_a`).

    The GEMM is ``Kg x CgRS`` with the pixels of all samples as its depth: each part takes a run
    of samples, part 0 accumulating into ``gw``, part ``t`` into slice ``t - 1`` of ``tmp``
    (``K*CgRS`` values each; :func:`..gemm.add_partial_sums` adds them to ``gw``). The depth is
    blocked by ``kc_blk`` pixels within a sample, the columns by ``nc_blk`` (a multiple of NR).
    """
    MR, NR = _tile_shape(work)
    t_ = gw.dtype.type
    one = t_(1)
    beta = t_(beta)
    Cg = C // G
    Kg = K // G
    RS = R * S
    CgRS = Cg * RS
    PQ = P * Q
    HW = H * W
    mp = (Kg + MR - 1) // MR * MR
    per = (N + parts - 1) // parts
    wk = work[t * wsize:(t + 1) * wsize]
    ap = wk[:mp * kc_blk]
    bp = wk[mp * kc_blk:mp * kc_blk + kc_blk * nc_blk]
    ct = wk[mp * kc_blk + kc_blk * nc_blk:mp * kc_blk + kc_blk * nc_blk + MR * NR]
    lo = t * per
    hi = min(N, lo + per)
    seg = np.empty((kc_blk + 2, 5), np.int64)
    for gi in range(G):
        if t == 0:  # one macro-kernel call site below
            dst, doff, b0 = gw, gi * Kg * CgRS, beta
        else:
            dst, doff, b0 = tmp, ((t - 1) * G + gi) * Kg * CgRS, t_(0)
        for jc in range(0, CgRS, nc_blk):
            nc = min(nc_blk, CgRS - jc)
            for n in range(lo, hi):
                for t0 in range(0, PQ, kc_blk):
                    kc = min(kc_blk, PQ - t0)
                    _pack_a(dy, (n * K + gi * Kg) * PQ + t0, PQ, 1, Kg, kc, ap)
                    ns = pixel_segments(n * PQ + t0, kc, kc, PQ, Q, C * HW, sh, ph, kc, seg)
                    for jr in range(0, nc, NR):
                        _pack_bt_conv(x, seg, ns, kc, jc + jr, min(NR, CgRS - jc - jr), gi * Cg, H, W, R, S, sw,
                                      pw, dh, dw, qlo, qhi, bp[jr * kc:])
                    _macro_kernel(kc, Kg, nc, ap, bp, dst, doff + jc, CgRS, 1, one,
                                  b0 if n == lo and t0 == 0 else one, ct)


@njit(cache=True, nogil=True)
def conv2d_nchw_dw_dot(t, parts, x, dy, gw, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, xs, n0, m, jg, offs,
                       tile, toff):
    """Part ``t`` of ``parts`` of the filter gradient of a stride-1 convolution over samples
    ``n0 .. n0+m``, ``gw = sum_n dy[n] @ cols[n]ᵀ + beta * gw`` (NCHW, flat buffers; ``beta``
    applies with ``n0 == 0``, later chunks add), as blocks of dot products along the pixels
    (:func:`_dot_tile`).

    ``xs`` holds the chunk's copies of x, one per filter column ``s`` (:func:`.columns.shift_copies`):
    planes of ``Hp x Q`` (``Hp = P + dh*(R-1)``), ``xs[n, s, c, hh, q] = x[n, c, hh - ph, q - pw +
    s*dw]`` or 0 outside x. Then the tap ``(c, r, s)`` at pixel ``t = p*Q + q`` is ``xs[n, s, c]``'s
    element ``r*dh*Q + t``: every row of ``colsᵀ`` is a contiguous run, as is every row of dy
    (read in place), so nothing is transposed and no pixel is wasted (the last ``PQ mod VW`` by
    masked loads). Each part takes an equal run of the ``MR' x NR'`` output tiles (``offs``,
    ``tile``: ``MR'+NR'`` offsets and ``MR'*NR'`` sums per part), ordered by groups of ``jg``
    tile columns (their planes stay in L2), then rows (dy rows in L1), then columns. ``toff``:
    the taps' offsets in a sample's copies (:func:`.columns.tap_offsets`).
    """
    MR, NR = _dot_shape(gw)
    VW = _vector_width(gw)
    t_ = gw.dtype.type
    beta = t_(beta)
    Cg = C // G
    Kg = K // G
    RS = R * S
    CgRS = Cg * RS
    PQ = P * Q
    Hp = P + dh * (R - 1)
    HQ = Hp * Q
    mb = (Kg + MR - 1) // MR
    jb = (CgRS + NR - 1) // NR
    ntile = G * mb * jb
    off = offs[t * (MR + NR):(t + 1) * (MR + NR)]
    tl = tile[t * MR * NR:(t + 1) * MR * NR]
    for it in range(ntile * t // parts, ntile * (t + 1) // parts):
        gi = it // (mb * jb)
        rem = it - gi * mb * jb
        j1 = rem // (mb * jg) * jg  # first tile column of the group
        gs = min(jg, jb - j1)
        rem -= j1 * mb
        ib = rem // gs
        i0 = ib * MR
        j0 = (j1 + rem - ib * gs) * NR
        for i in range(MR):  # rows and columns past the edge repeat the last one
            off[i] = (n0 * K + gi * Kg + min(i0 + i, Kg - 1)) * PQ
        for j in range(NR):
            off[MR + j] = gi * Cg * HQ + toff[min(j0 + j, CgRS - 1)]
        _dot_tile(m, PQ // VW, PQ % VW, dy, K * PQ, xs, S * C * HQ, off, tl)
        for i in range(min(MR, Kg - i0)):
            o = (gi * Kg + i0 + i) * CgRS + j0
            for j in range(min(NR, CgRS - j0)):
                v = tl[i * NR + j]
                if n0 > 0:
                    gw[o + j] += v
                else:
                    gw[o + j] = v if beta == 0 else v + beta * gw[o + j]


def conv2d_nchw_dw_into(x: np.ndarray, dy: np.ndarray, gw: np.ndarray, g, beta: float) -> None:
    """``gw = sum_n dy[n] @ cols[n]ᵀ + beta * gw`` (the filter gradient, NCHW, C-contiguous
    arrays of one dtype) without a column matrix. Stride 1 (unless ``config.conv_dw_dot`` is off):
    dot products, threads over output tiles, workspace ``S`` shifted copies of x for a chunk of
    samples (``config.conv_dot_a_bytes``, at least one sample, if one sample's copies fit
    ``config.conv_shift_bytes``); otherwise the packed GEMM, threads over samples (one for N = 1)."""
    dtype = gw.dtype
    bl = blocking(dtype)
    threads = num_threads()
    xf, dyf, gwf = x.reshape(-1), dy.reshape(-1), gw.reshape(-1)
    per = shift_bytes(g, dtype)  # one sample's shifted copies
    if config.conv_dw_dot and g.sh == g.sw == 1 and per <= config.conv_shift_bytes:
        mr, nr = DOT_TILE[isa()]
        nb = max(1, min(g.N, config.conv_dot_a_bytes // (mr * g.P * g.Q * dtype.itemsize)))
        # per // C: one channel's S planes
        jg = max(1, config.conv_dot_b_bytes // (nb * per // g.C) * g.R * g.S // nr)
        ntile = g.groups * -(-(g.K // g.groups) // mr) * -(-(g.C // g.groups) * g.R * g.S // nr)
        work_fma = g.N * g.P * g.Q * g.K * (g.C // g.groups) * g.R * g.S
        parts = max(1, min(threads, ntile, work_fma // config.conv_parallel_mnk or 1))
        xs = workspace(dtype, nb * per // dtype.itemsize, "conv.xshift")
        offs = np.empty(parts * (mr + nr), np.int64)
        tile = workspace(dtype, parts * mr * nr, "conv.tile")
        Hp = g.P + g.dh * (g.R - 1)
        qlo, qhi = q_ranges(g.Q, g.W, 1, g.pw0, g.S, g.dw)
        toff = tap_offsets(g.C // g.groups, g.C, g.R, g.S, g.dh, g.Q, Hp * g.Q)
        for n0 in range(0, g.N, nb):
            m = min(nb, g.N - n0)
            launch(shift_copies, copy_parts(g, m, parts), xf, xs, n0, m, g.C, g.H, g.W, g.S, g.ph0, g.pw0, g.dw,
                   Hp, g.Q, qlo, qhi)
            launch(conv2d_nchw_dw_dot, parts, xf, dyf, gwf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.ph0, g.pw0, g.dh,
                   g.dw, g.P, g.Q, g.groups, beta, xs, n0, m, jg, offs, tile, toff)
        return
    Kg = g.K // g.groups
    mp = -(-Kg // bl.mr) * bl.mr
    kc, nc = bl.kc, config.conv_dw_nc
    parts = max(1, min(threads, g.N))
    wsize = mp * kc + kc * nc + bl.mr * bl.nr
    size = g.K * (g.C // g.groups) * g.R * g.S
    tmp = workspace(dtype, max(1, (parts - 1) * size), "gemm.sum")
    qlo, qhi = q_ranges(g.Q, g.W, g.sw, g.pw0, g.S, g.dw)
    launch(conv2d_nchw_dw_packed, parts, xf, dyf, gwf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0,
           g.dh, g.dw, g.P, g.Q, g.groups, beta, qlo, qhi, tmp, workspace(dtype, wsize * parts), wsize, kc, nc)
    add_partials(parts, g.N, size, 1, gwf, 0, 1, 1, tmp)
