"""NCHW convolution forward and filter gradient as implicit GEMMs: im2col fused into packing.

``y[n] (K x PQ) = W (K x CRS) @ cols[n] (CRS x PQ)`` per group, without a column matrix: the
pixels of all samples form one column index ``t = n*P*Q + p*Q + q``; each thread takes an equal
share of its NR-wide panels, in blocks of ``nc_blk`` columns. For each block and each ``kc``-row
slice of ``CRS`` the thread packs the ``kc x nc`` panel of B straight from ``x`` into the GEMM's
packed layout (``bp[panel*NR*kc + p*NR + j]``, see :mod:`.gemm`), then runs the GEMM's
macro-kernel on it against the filter, which is packed once per call (``K x CRS`` is small). x
is read from cache (one sample's planes are ``C*H*W`` values), the panel lives in L2, and no
column matrix is written or read back: the workspace cap of :mod:`numlin.nn.conv` does not apply.

Packed filter ``ap``: group ``gi``'s ``Kg x CgRS`` matrix at ``gi*mp*CgRS`` (``mp`` = Kg rounded
up to MR), its ``kc`` slice starting at column ``pc`` at ``+ pc*mp``, in :func:`.gemm._pack_a`'s
MR-row micro-panels: the A operand the macro-kernel expects for ``mc = Kg``.

Packing B: a block's columns are split into *segments* (rows of the table from
:func:`_pixel_segments`) of consecutive ``q`` in one output row of one sample and one NR-wide
micro-panel, so every row ``(c, r, s)`` of the panel is, per segment, a zero run, a run of x
along its row (unit stride when ``sw == 1``) and a zero run: one masked vector copy of NR lanes.
The lanes are the same for every channel of a tap ``(r, s)``, so the channel loop is innermost
and the masks are built once per segment and tap (a row-by-row version spent ~50 cycles per
segment and row and made packing 40 % of the time at K = 64; now ~10 %).

A block whose columns span two samples is not one strided matrix of y: the macro-kernel writes it
to a ``Kg x nc_blk`` scratch matrix, scattered into y afterwards (a few blocks per call).

Stride 1 (:func:`conv2d_nchw_shifted`, the forward and so the input gradient of most layers): no
B packing at all. x is copied once per filter column ``s`` into planes of ``Q``-wide rows,
shifted and zeroed at the edges (:func:`_shift_plane`, the same copies as the filter gradient's
below); there every row of a sample's column matrix is a contiguous run, so the micro-kernel
reads its B rows in place through a table of tap offsets (:func:`.gemm._micro_kernel_indirect`)
for each NR-pixel tile inside a sample. The last ``P*Q mod NR`` pixels of every sample are
gathered over the chunk of samples and take the packed path above. Copies ``S`` times the
input per chunk (at most :data:`SHIFT_BYTES`; a bigger sample is packed) instead of packing
``R*S`` times it: single-thread 2-6 % faster at the benchmark layers (packing was 11-16 % of
the time, the copies cost 3-5 %). With many filters (:data:`ROW_SPLIT_BLOCKS`) each thread
takes a share of the filter's rows over every tile, not a share of the tiles: no imbalance
from the coarse tiles and the packed tails, and each thread streams only its rows of the
packed filter (2 threads: 3-5 % faster at 256 and 128 filters). Output planes of exactly one
vector (4x4 in float32 with AVX-512) have no in-place tile inside a sample; there a tile's
NR/VW vectors are as many samples (:func:`.gemm._micro_kernel_split`): the demo's second
convolution 1.5-1.8x faster than packing its 4-pixel rows.

Filter gradient (:func:`conv2d_nchw_dw_into`): ``dW (Kg x CgRS) = sum_n dY[n] @ cols[n]ᵀ``,
the pixels being the GEMM's depth. Stride 1 (:func:`conv2d_nchw_dw_dot`): every entry is a dot
product along the pixels of a row of dY (contiguous in place) and a row of ``colsᵀ``, which is
contiguous too once x is copied per filter column ``s`` into planes of ``Q``-wide rows, shifted
and zeroed at the edges (``S`` copies of a chunk of samples, ~2-3 % of the time): no transpose.
:func:`_dot_tile` keeps an ``MR' x NR'`` block of such products in vector registers (vectors
along the pixels, 10 loads per 24 FMAs) and sums each horizontally once per chunk. Strided
(:func:`conv2d_nchw_dw_fused`): dY is packed as A, ``colsᵀ`` panels (``kc`` pixels x NR filter
rows) from x, column by column along runs of pixels (:func:`_pack_bt_conv`, scalar: a
transpose, ~2.6 cycles an element) for the GEMM's macro-kernel. The input gradient of a stride-1
convolution is :func:`conv2d_nchw_into` on dy (see :mod:`numlin.nn.conv`).

Numba caches these kernels with this file's timestamp: after editing :mod:`.gemm`'s macro- or
micro-kernel, clear the cache (the register tile itself is checked, as in :mod:`.gemm`).
"""
from __future__ import annotations

import os

import numpy as np
from llvmlite import ir
from numba import njit, types, uintp
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import as_dtype

from .blocking import blocking, isa
from .gemm import (_add_edge_tile, _load, _macro_kernel, _micro_kernel_indirect, _micro_kernel_split, _pack_a, _splat,
                   _tile_shape, _vector_fma, _vector_width, add_partials, workspace, PARALLEL_MNK)
from .im2col import _q_range
from . import _threads
from ._threads import launch, num_threads

__all__ = ["applies", "conv2d_nchw_into", "conv2d_nchw_dw_into", "flipped_filter", "FUSED_MIN_CHANNELS",
           "NC_PIXELS", "DW_NC"]

#: fewest channels per group (of the convolved input) for the implicit GEMM's *strided forward of
#: a grouped convolution*: its packing costs ~30 cycles per run of pixels and filter tap, shared
#: by the channels. Every other case takes the implicit GEMMs at any channel count (seventh
#: session, 2 threads, float32, im2col -> implicit: the demo's 1-channel layer forward 123 -> 70
#: us and dW 226 -> 73 us; 3 channels 32^2 stride 2 forward 125 -> 65 us; the 7x7 stride-2 RGB
#: stem 8.6 -> 3.4 ms; a 3x3 stride-2 depthwise forward 1.6 -> 3.0 ms, hence this exception)
FUSED_MIN_CHANNELS = 8

#: output pixels per packed B block (a multiple of NR): ``kc x NC_PIXELS`` values stay in L2
NC_PIXELS = 128
#: stride-1 forward with B read in place from shifted copies of x (:func:`conv2d_nchw_shifted`;
#: off: B packed from x for every block, :func:`conv2d_nchw_fused`)
SHIFTED = os.environ.get("NUMLIN_CONV_SHIFTED", "1") != "0"
#: fewest MR-row blocks of the filter per thread for the stride-1 forward to give each thread
#: a share of the filter's rows (over every tile) rather than a share of the tiles
ROW_SPLIT_BLOCKS = 8
#: widest output rows (``Q``) whose shifted copies are made a sample and filter column at a
#: time (:func:`_shift_block`); wider rows plane by plane (:func:`_shift_plane`)
SHIFT_BLOCK_Q = 32
#: bytes of shifted copies of x (a chunk of samples) the stride-1 forward and filter gradient
#: keep; a sample whose copies alone exceed it takes the packed path (no workspace beyond panels)
SHIFT_BYTES = 16 * 1024 * 1024
#: filter-gradient columns (filter rows C*R*S) per packed panel of ``colsᵀ`` (a multiple of NR)
DW_NC = 512


#: dot-product tile of the stride-1 filter gradient (rows of dY x filter taps), per instruction
#: set: ``MR' * NR'`` vector accumulators plus ``MR'`` loads of dY and one of x in the register file
DOT_TILE = {"avx512": (4, 6), "avx2": (3, 4), "generic": (2, 3)}
#: bytes of dY rows (``MR'`` rows over a chunk of samples) the dot-product kernel keeps in L2
DOT_A_BYTES = 256 * 1024
#: bytes of shifted x planes (over the chunk of samples) one group of tile columns reads, in L2
DOT_B_BYTES = 256 * 1024
#: the stride-1 filter gradient by dot products (off: packed GEMM with ``colsᵀ`` panels, for A/B)
DW_DOT = os.environ.get("NUMLIN_CONV_DW_DOT", "1") != "0"


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
    ``n < nsamp``, ``t < nv*VW + tail``: an ``MR' x NR'`` block of dot products (:data:`DOT_TILE`),
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
def _q_ranges(Q, W, sw, pw, S, dw):
    """Per filter column ``s``: the output columns ``qlo[s] .. qhi[s]`` whose input column
    ``q*sw - pw + s*dw`` lies inside x (:func:`.im2col._q_range`)."""
    qlo = np.empty(S, np.int64)
    qhi = np.empty(S, np.int64)
    for s in range(S):
        qlo[s], qhi[s] = _q_range(Q, W, sw, pw, s * dw)
    return qlo, qhi


# columns of the segment table
_COL, _LEN, _XOFF, _H0, _Q0 = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)
def _pixel_segments(j0, nc, ncp, PQ, Q, CHW, sh, ph, NR, seg, span=0, first=0, n0=0):
    """Split columns ``j0 .. j0+nc`` into runs within one output row and one NR micro-panel.

    Column ``t`` is pixel ``t mod PQ`` of sample ``t // PQ``; with ``span > 0``, pixel
    ``first + t mod span`` of sample ``n0 + t // span`` (the last ``span`` pixels of each
    sample, say). Row ``i`` of ``seg``: first column (relative to ``j0``), length, offset of its
    sample in x, input row of filter row 0 (``p*sh - ph``), first ``q``. Columns ``nc .. ncp``
    (the zero padding of the last micro-panel) get segments whose input row is never valid.
    Returns the number of segments.
    """
    if span == 0:
        span = PQ
    ns = 0
    j = 0
    while j < ncp:
        room = NR - j % NR
        if j < nc:
            t = j0 + j
            n = t // span
            pq = first + t - n * span
            p = pq // Q
            q = pq - p * Q
            L = min(Q - q, nc - j, room, span - (t - n * span))
            seg[ns, _XOFF] = (n0 + n) * CHW
            seg[ns, _H0] = p * sh - ph
            seg[ns, _Q0] = q
        else:
            L = min(ncp - j, room)
            seg[ns, _XOFF] = 0
            seg[ns, _H0] = -(1 << 40)  # no input row: zeros
            seg[ns, _Q0] = 0
        seg[ns, _COL] = j
        seg[ns, _LEN] = L
        ns += 1
        j += L
    return ns


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
        j = seg[i, _COL]
        L = seg[i, _LEN]
        q0 = seg[i, _Q0]
        jp = j % NR  # the segment's first lane in its micro-panel
        for rs in range(RS):
            p = (rs - crs0 % RS + RS) % RS  # first row of the block with this tap
            if p >= kc:
                continue
            r = rs // S
            s = rs - r * S
            h = seg[i, _H0] + r * dh
            a = max(qlo[s] - q0, 0)  # valid k: a <= k < b, reading x[src + k*sw]
            b = min(qhi[s] - q0, L)
            if h < 0 or h >= H:
                b = a
            src = seg[i, _XOFF] + (c0 + (crs0 + p) // RS) * HW + h * W + q0 * sw + s * dw - pw
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


@njit(cache=True, nogil=True, inline="always")  # one caller, pack_filter
def _pack_filter_slice(w, ap, u, nsl, Kg, CgRS, kc_blk, mp):
    """Pack slice ``u = gi*nsl + kc-slice`` of the filter (group ``gi``'s ``Kg x CgRS`` matrix,
    ``nsl`` slices of ``kc_blk`` columns) into ``ap``, laid out as the module docstring says."""
    gi = u // nsl
    pc = (u - gi * nsl) * kc_blk
    _pack_a(w, gi * Kg * CgRS + pc, CgRS, 1, Kg, min(kc_blk, CgRS - pc), ap[gi * mp * CgRS + pc * mp:])


@njit(cache=True, nogil=True)
def pack_filter(t, parts, w, ap, G, Kg, CgRS, kc_blk, mp):
    """Part ``t`` of ``parts`` of packing the filter into ``ap`` (a run of its ``kc`` slices,
    :func:`_pack_filter_slice`)."""
    nsl = (CgRS + kc_blk - 1) // kc_blk
    for u in range(G * nsl * t // parts, G * nsl * (t + 1) // parts):
        _pack_filter_slice(w, ap, u, nsl, Kg, CgRS, kc_blk, mp)


@njit(cache=True, nogil=True)
def conv2d_nchw_fused(t, parts, x, y, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, P, Q, G, beta, ap, work, wsize,
                      scratch, kc_blk, nc_blk):
    """Part ``t`` of ``parts`` of ``y = conv(x, w) + beta * y`` (NCHW, flat C-ordered buffers), see
    the module docstring: an equal share of the NR-wide micro-panels of output pixels.

    ``ap`` holds the packed filter (``G * mp * CgRS``, :func:`pack_filter`); ``work`` ``parts``
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
    qlo, qhi = _q_ranges(Q, W, sw, pw, S, dw)
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
        ns = _pixel_segments(j0, nc, (nc + NR - 1) // NR * NR, PQ, Q, C * H * W, sh, ph, NR, seg)
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
    numbering of :func:`_pixel_segments`) into rows ``k0 ..`` of y, a run per sample."""
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


@njit(cache=True, nogil=True)
def conv2d_nchw_shifted(t, parts, x, y, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, ap, xs, n0, m, work,
                        wsize, scratch, kc_blk, nc_blk, pr):
    """Part ``t`` of ``parts`` of ``y = conv(x, w) + beta * y`` for samples ``n0 .. n0+m`` of a
    stride-1 convolution (NCHW, flat buffers) with B read in place: ``xs`` holds the chunk's
    copies of x, one per filter column (:func:`shift_copies`), where every row of a sample's
    column matrix is a contiguous run, so each NR-pixel tile of a sample runs
    :func:`.gemm._micro_kernel_indirect` straight on it (through each tap's offset in a sample's
    copies, :func:`_tap_offsets`). No B packing. The last ``PQ mod NR`` pixels of every sample,
    gathered over the chunk, take the packed path of :func:`conv2d_nchw_fused` through a scratch
    block. The ``parts`` form ``pr`` row groups (equal runs of the filter's MR-row blocks) by
    ``parts / pr`` equal runs of the tiles (tail panels last), ``nc_blk / NR`` tiles of one
    sample at a time for each ``kc`` slice of the packed filter ``ap`` (:func:`pack_filter`)."""
    MR, NR = _tile_shape(work)
    t_ = y.dtype.type
    one = t_(1)
    zero = t_(0)
    beta = t_(beta)
    Cg = C // G
    Kg = K // G
    RS = R * S
    CgRS = Cg * RS
    PQ = P * Q
    Hp = P + dh * (R - 1)
    HQ = Hp * Q
    SCHQ = S * C * HQ
    mp = (Kg + MR - 1) // MR * MR
    toff = _tap_offsets(np.empty(CgRS, np.int64), CgRS, C, R, S, dh, Q, HQ)
    qlo, qhi = _q_ranges(Q, W, 1, pw, S, dw)
    VW = _vector_width(work)
    nvec = NR // VW
    vmode = PQ == VW and nvec > 1  # a sample's plane is one vector: tiles of nvec samples
    nfull = 0 if vmode else PQ // NR  # in-place tiles per sample
    tail = 0 if vmode else PQ - nfull * NR
    mblk = (Kg + MR - 1) // MR
    pt = parts // pr
    tg = max(1, nc_blk // NR)  # tiles per step
    nd = (m + nvec - 1) // nvec if vmode else m * nfull
    ntail = m * tail
    units = nd + (ntail + NR - 1) // NR
    wk = work[t * wsize:(t + 1) * wsize]
    bp = wk[:kc_blk * nc_blk]
    ct = wk[kc_blk * nc_blk:kc_blk * nc_blk + MR * NR]
    tr = t % pr  # this part's rows of the filter: r0 <= k < r1 of each group
    r0 = mblk * tr // pr * MR
    r1 = min(Kg, mblk * (tr + 1) // pr * MR)
    sc = t * Kg * nc_blk
    seg = np.empty((nc_blk + nc_blk // NR + 1, 5), np.int64)
    lo = units * (t // pr) // pt
    hi = units * (t // pr + 1) // pt
    u = lo
    while vmode and u < min(hi, nd):  # tiles of nvec samples (one vector each), tg at a time
        u1 = min(u + tg, hi, nd)
        for gi in range(G):
            for pc in range(0, CgRS, kc_blk):
                kc = min(kc_blk, CgRS - pc)
                a0 = gi * mp * CgRS + pc * mp
                b0 = beta if pc == 0 else one
                for jt in range(u, u1):
                    ns = min(nvec, m - jt * nvec)  # samples in this tile
                    boff = jt * nvec * SCHQ + gi * Cg * HQ
                    coff = ((n0 + jt * nvec) * K + gi * Kg) * PQ
                    bvs = SCHQ if ns == nvec else 0  # a short tile re-reads its first sample
                    for i0 in range(r0, r1, MR):
                        rows = min(MR, Kg - i0)
                        if rows == MR and ns == nvec:
                            _micro_kernel_split(kc, ap, a0 + i0 * kc, xs, boff, toff, pc, bvs, y,
                                                coff + i0 * PQ, PQ, K * PQ, one, b0)
                        else:
                            _micro_kernel_split(kc, ap, a0 + i0 * kc, xs, boff, toff, pc, bvs, ct, 0, NR, VW,
                                                one, zero)
                            for v in range(ns):
                                _add_edge_tile(ct[v * VW:], NR, rows, VW, y, coff + i0 * PQ + v * K * PQ, PQ,
                                               1, b0)
        u = u1
    while u < min(hi, nd):  # in-place tiles, up to tg of one sample at a time
        nl = u // nfull
        j0 = u - nl * nfull
        j1 = min(j0 + tg, nfull, j0 + min(hi, nd) - u)
        for gi in range(G):
            for pc in range(0, CgRS, kc_blk):
                kc = min(kc_blk, CgRS - pc)
                a0 = gi * mp * CgRS + pc * mp
                b0 = beta if pc == 0 else one
                for jt in range(j0, j1):
                    boff = nl * SCHQ + gi * Cg * HQ + jt * NR
                    coff = ((n0 + nl) * K + gi * Kg) * PQ + jt * NR
                    for i0 in range(r0, r1, MR):
                        rows = min(MR, Kg - i0)
                        if rows == MR:
                            _micro_kernel_indirect(kc, ap, a0 + i0 * kc, xs, boff, toff, pc, y,
                                                   coff + i0 * PQ, PQ, one, b0)
                        else:
                            _micro_kernel_indirect(kc, ap, a0 + i0 * kc, xs, boff, toff, pc, ct, 0, NR,
                                                   one, zero)
                            _add_edge_tile(ct, NR, rows, NR, y, coff + i0 * PQ, PQ, 1, b0)
        u += j1 - j0
    # the chunk's sample tails: columns (sample, last `tail` pixels), packed from x
    ta = (max(lo, nd) - nd) * NR
    tb = min(ntail, (hi - nd) * NR)
    for j0 in range(ta, tb, nc_blk):
        nc = min(nc_blk, tb - j0)
        ns = _pixel_segments(j0, nc, (nc + NR - 1) // NR * NR, PQ, Q, C * H * W, 1, ph, NR, seg,
                             tail, nfull * NR, n0)
        for gi in range(G):
            for pc in range(0, CgRS, kc_blk):
                kc = min(kc_blk, CgRS - pc)
                _pack_b_conv(x, seg, ns, gi * Cg, pc, kc, H, W, R, S, 1, pw, dh, dw, qlo, qhi, bp)
                _macro_kernel(kc, r1 - r0, nc, ap[gi * mp * CgRS + pc * mp + r0 * kc:], bp, scratch, sc,
                              nc_blk, 1, one, zero if pc == 0 else one, ct)
            _scatter_block(y, scratch, sc, nc_blk, j0, nc, tail, nfull * NR, n0, PQ, K, gi * Kg + r0, r1 - r0,
                           beta)


@njit(cache=True, nogil=True)
def _pack_bt_conv(x, seg, ns, kc, crs0, ncols, C0, H, W, R, S, sw, pw, dh, dw, qlo, qhi, bp):
    """Pack the transposed column matrix ``colsᵀ`` (pixels x C*R*S) of the ``kc`` pixels in
    ``seg`` (:func:`_pixel_segments` over one sample) into one NR-column micro-panel,
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
            i0 = seg[k, _COL]
            L = seg[k, _LEN]
            q0 = seg[k, _Q0]
            h = seg[k, _H0] + r * dh
            a = min(max(lo_s - q0, 0), L)
            b = max(min(hi_s - q0, L), a)
            if h < 0 or h >= H:
                a = b = L
            src = seg[k, _XOFF] + (C0 + c) * HW + h * W + q0 * sw + s * dw - pw
            d = i0 * NR + j
            for i in range(a):
                bp[uintp(d + i * NR)] = zero
            for i in range(a, b):
                bp[uintp(d + i * NR)] = x[uintp(src + i * sw)]
            for i in range(b, L):
                bp[uintp(d + i * NR)] = zero


@njit(cache=True, nogil=True)
def conv2d_nchw_dw_fused(t, parts, x, dy, gw, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, P, Q, G, beta, tmp,
                         work, wsize, kc_blk, nc_blk):
    """Part ``t`` of ``parts`` of the filter gradient ``gw = sum_n dy[n] @ cols[n]ᵀ + beta * gw``
    per group (NCHW, flat buffers), the columns packed from x (:func:`_pack_bt_conv`), dy packed
    as A (:func:`.gemm._pack_a`).

    The GEMM is ``Kg x CgRS`` with the pixels of all samples as its depth: each part takes a run
    of samples, part 0 accumulating into ``gw``, part ``t`` into slice ``t - 1`` of ``tmp``
    (``K*CgRS`` values each; :func:`.gemm.add_partial_sums` adds them to ``gw``). The depth is
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
    qlo, qhi = _q_ranges(Q, W, sw, pw, S, dw)
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
                    ns = _pixel_segments(n * PQ + t0, kc, kc, PQ, Q, C * HW, sh, ph, kc, seg)
                    for jr in range(0, nc, NR):
                        _pack_bt_conv(x, seg, ns, kc, jc + jr, min(NR, CgRS - jc - jr), gi * Cg, H, W, R, S, sw,
                                      pw, dh, dw, qlo, qhi, bp[jr * kc:])
                    _macro_kernel(kc, Kg, nc, ap, bp, dst, doff + jc, CgRS, 1, one,
                                  b0 if n == lo and t0 == 0 else one, ct)


@njit(cache=True, nogil=True)
def _tap_offsets(toff, CgRS, C, R, S, dh, Q, HQ):
    """``toff[(c*R + r)*S + s]``: where the run of tap ``(c, r, s)`` (a group's channel ``c``)
    starts in one sample's shifted copies (:func:`_shift_plane`, planes of ``HQ`` values)."""
    RS = R * S
    for crs in range(CgRS):
        c = crs // RS
        r = (crs - c * RS) // S
        s = crs - c * RS - r * S
        toff[crs] = (s * C + c) * HQ + r * dh * Q
    return toff


@njit(cache=True, nogil=True)
def _shift_plane(x, xs, pl, n0, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi):
    """Plane ``pl = (n*S + s)*C + c`` of the shifted copies of x (stride 1): ``xs[n, s, c, hh, q]
    = x[n0 + n, c, hh - ph, q - pw + s*dw]``, 0 outside x, for ``hh < Hp``, ``q < Q``. Then the
    column-matrix row of tap ``(c, r, s)`` at output pixel ``t = p*Q + q`` is ``xs[n, s, c]``'s
    element ``r*dh*Q + t``: a contiguous run along the pixels, rows and samples' edges zeroed."""
    zero = xs.dtype.type(0)
    n = pl // (S * C)
    s = (pl - n * S * C) // C
    c = pl - n * S * C - s * C
    for hh in range(Hp):
        d = (pl * Hp + hh) * Q
        h = hh - ph
        a = qlo[s]
        b = qhi[s]
        if h < 0 or h >= H:
            a = b = Q
        src = (((n0 + n) * C + c) * H + h) * W - pw + s * dw
        for u in range(a):
            xs[uintp(d + u)] = zero
        for u in range(a, b):
            xs[uintp(d + u)] = x[uintp(src + u)]
        for u in range(b, Q):
            xs[uintp(d + u)] = zero


@njit(cache=True, nogil=True)
def _shift_block(x, xs, ns, n0, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi):
    """The ``C`` planes ``(n, s, c)`` of :func:`_shift_plane` for ``ns = n*S + s``, all at once:
    the block zeroed in one run, then x's rows copied over it. Writes the copied part twice but
    has no per-row zero runs: for rows of up to :data:`SHIFT_BLOCK_Q` values 1.3-3x faster (2
    threads: 64 x 32 4x4 planes 188 -> 62 us, 8 x 256 14x14 500 -> 187 us, 8 x 128 28x28 505 ->
    378 us), for 56-wide rows 1.4x slower."""
    zero = xs.dtype.type(0)
    HQ = Hp * Q
    n = ns // S
    s = ns - n * S
    d0 = ns * C * HQ
    for u in range(C * HQ):
        xs[uintp(d0 + u)] = zero
    a = qlo[s]
    b = qhi[s]
    h0 = max(0, ph)  # rows hh = h + ph of xs that hold a row h of x
    h1 = min(Hp, H + ph)
    for c in range(C):
        src0 = (((n0 + n) * C + c) * H - ph) * W - pw + s * dw
        dc = d0 + c * HQ
        for hh in range(h0, h1):
            d = dc + hh * Q
            src = src0 + hh * W
            for u in range(a, b):
                xs[uintp(d + u)] = x[uintp(src + u)]


@njit(cache=True, nogil=True)
def shift_copies(t, parts, x, xs, n0, m, C, H, W, S, ph, pw, dw, Hp, Q):
    """Part ``t`` of ``parts`` of the shifted copies of samples ``n0 .. n0+m`` (:func:`_shift_plane`):
    a block of planes per (sample, filter column) for rows of up to :data:`SHIFT_BLOCK_Q` values,
    else a plane per item."""
    qlo, qhi = _q_ranges(Q, W, 1, pw, S, dw)
    if Q <= SHIFT_BLOCK_Q:
        for ns in range(m * S * t // parts, m * S * (t + 1) // parts):
            _shift_block(x, xs, ns, n0, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi)
    else:
        for pl in range(m * S * C * t // parts, m * S * C * (t + 1) // parts):
            _shift_plane(x, xs, pl, n0, C, H, W, S, ph, pw, dw, Hp, Q, qlo, qhi)


@njit(cache=True, nogil=True)
def conv2d_nchw_dw_dot(t, parts, x, dy, gw, N, C, H, W, K, R, S, ph, pw, dh, dw, P, Q, G, beta, xs, n0, m, jg, offs,
                       tile):
    """Part ``t`` of ``parts`` of the filter gradient of a stride-1 convolution over samples
    ``n0 .. n0+m``, ``gw = sum_n dy[n] @ cols[n]ᵀ + beta * gw`` (NCHW, flat buffers; ``beta``
    applies with ``n0 == 0``, later chunks add), as blocks of dot products along the pixels
    (:func:`_dot_tile`).

    ``xs`` holds the chunk's copies of x, one per filter column ``s`` (:func:`shift_copies`):
    planes of ``Hp x Q`` (``Hp = P + dh*(R-1)``), ``xs[n, s, c, hh, q] = x[n, c, hh - ph, q - pw +
    s*dw]`` or 0 outside x. Then the tap ``(c, r, s)`` at pixel ``t = p*Q + q`` is ``xs[n, s, c]``'s
    element ``r*dh*Q + t``: every row of ``colsᵀ`` is a contiguous run, as is every row of dy
    (read in place), so nothing is transposed and no pixel is wasted (the last ``PQ mod VW`` by
    masked loads). Each part takes an equal run of the ``MR' x NR'`` output tiles (``offs``,
    ``tile``: ``MR'+NR'`` offsets and ``MR'*NR'`` sums per part), ordered by groups of ``jg``
    tile columns (their planes stay in L2), then rows (dy rows in L1), then columns.
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
    toff = _tap_offsets(np.empty(CgRS, np.int64), CgRS, C, R, S, dh, Q, HQ)
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


def _shift_bytes(g, dtype) -> int:
    """Bytes of one sample's shifted copies of x (:func:`_shift_plane`), stride 1."""
    return g.S * g.C * (g.P + g.dh * (g.R - 1)) * g.Q * np.dtype(dtype).itemsize


def conv2d_nchw_dw_into(x: np.ndarray, dy: np.ndarray, gw: np.ndarray, g, beta: float) -> None:
    """``gw = sum_n dy[n] @ cols[n]ᵀ + beta * gw`` (the filter gradient, NCHW, C-contiguous
    arrays of one dtype) without a column matrix. Stride 1 (unless :data:`DW_DOT` is off): dot
    products, threads over output tiles, workspace ``S`` shifted copies of x for a chunk of
    samples (:data:`DOT_A_BYTES`, at least one sample, if one sample's copies fit
    :data:`SHIFT_BYTES`); otherwise the packed GEMM, threads over samples (one for N = 1)."""
    dtype = gw.dtype
    bl = blocking(dtype)
    threads = num_threads()
    xf, dyf, gwf = x.reshape(-1), dy.reshape(-1), gw.reshape(-1)
    per = _shift_bytes(g, dtype)  # one sample's shifted copies
    if DW_DOT and g.sh == g.sw == 1 and per <= SHIFT_BYTES:
        mr, nr = DOT_TILE[isa()]
        nb = max(1, min(g.N, DOT_A_BYTES // (mr * g.P * g.Q * dtype.itemsize)))
        jg = max(1, DOT_B_BYTES // (nb * per // g.C) * g.R * g.S // nr)  # per // C: one channel's S planes
        ntile = g.groups * -(-(g.K // g.groups) // mr) * -(-(g.C // g.groups) * g.R * g.S // nr)
        work_fma = g.N * g.P * g.Q * g.K * (g.C // g.groups) * g.R * g.S
        parts = max(1, min(threads, ntile, work_fma // PARALLEL_MNK or 1))
        xs = workspace(dtype, nb * per // dtype.itemsize, "conv.xshift")
        offs = np.empty(parts * (mr + nr), np.int64)
        tile = workspace(dtype, parts * mr * nr, "conv.tile")
        Hp = g.P + g.dh * (g.R - 1)
        for n0 in range(0, g.N, nb):
            m = min(nb, g.N - n0)
            launch(shift_copies, _copy_parts(g, m, parts), xf, xs, n0, m, g.C, g.H, g.W, g.S, g.ph0, g.pw0, g.dw,
                   Hp, g.Q)
            launch(conv2d_nchw_dw_dot, parts, xf, dyf, gwf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.ph0, g.pw0, g.dh,
                   g.dw, g.P, g.Q, g.groups, beta, xs, n0, m, jg, offs, tile)
        return
    Kg = g.K // g.groups
    mp = -(-Kg // bl.mr) * bl.mr
    kc, nc = bl.kc, DW_NC
    parts = max(1, min(threads, g.N))
    wsize = mp * kc + kc * nc + bl.mr * bl.nr
    size = g.K * (g.C // g.groups) * g.R * g.S
    tmp = workspace(dtype, max(1, (parts - 1) * size), "gemm.sum")
    launch(conv2d_nchw_dw_fused, parts, xf, dyf, gwf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0,
           g.dh, g.dw, g.P, g.Q, g.groups, beta, tmp, workspace(dtype, wsize * parts), wsize, kc, nc)
    add_partials(parts, g.N, size, 1, gwf, 0, 1, 1, tmp)


def _copy_parts(g, m: int, parts: int) -> int:
    """Parts for :func:`shift_copies` of ``m`` samples: as many as the kernel after it has, but
    one while the copy is smaller than a launch's grain (waking a thread costs more)."""
    elems = m * g.S * g.C * (g.P + g.dh * (g.R - 1)) * g.Q
    return max(1, min(parts, m * g.S * (1 if g.Q <= SHIFT_BLOCK_Q else g.C), elems // _threads.GRAIN))


def conv2d_nchw_into(x: np.ndarray, w: np.ndarray, y: np.ndarray, g, beta: float) -> None:
    """``y = conv2d(x, w) + beta * y`` for C-contiguous NCHW arrays of one dtype and the
    geometry ``g`` (:class:`numlin.nn.conv.Conv2dGeometry`), any stride, padding, dilation and
    groups. Workspace: the packed filter plus one ``kc x NC_PIXELS`` panel per thread."""
    dtype = y.dtype
    bl = blocking(dtype)
    threads = num_threads()
    Cg, Kg = g.C // g.groups, g.K // g.groups
    crs = Cg * g.R * g.S
    kc = -(-crs // -(-crs // bl.kc))  # equal kc slices of at most bl.kc rows
    nc = NC_PIXELS
    npan = -(-g.N * g.P * g.Q // bl.nr)
    work_fma = g.N * g.P * g.Q * g.K * crs
    parts = max(1, min(threads, npan, work_fma // PARALLEL_MNK or 1))
    mp = -(-Kg // bl.mr) * bl.mr
    ap = workspace(dtype, g.groups * mp * crs, "conv.filter")
    wsize = kc * nc + bl.mr * bl.nr
    xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    launch(pack_filter, max(1, min(parts, g.groups * -(-crs // kc), g.groups * mp * crs // _threads.GRAIN)), wf, ap,
           g.groups, Kg, crs, kc, mp)
    per = _shift_bytes(g, dtype)  # one sample's shifted copies
    pq = g.P * g.Q
    if SHIFTED and g.sh == g.sw == 1 and (pq >= bl.nr or pq == bl.vw < bl.nr) and per <= SHIFT_BYTES:
        nb = max(1, min(g.N, SHIFT_BYTES // per))
        units = g.N * (g.P * g.Q // bl.nr) + -(-g.N * (g.P * g.Q % bl.nr) // bl.nr)  # in-place tiles, tail panels
        parts = max(1, min(threads, units, work_fma // PARALLEL_MNK or 1))
        mblk = -(-Kg // bl.mr)
        pr = max((d for d in range(1, parts + 1) if parts % d == 0 and mblk // d >= ROW_SPLIT_BLOCKS), default=1)
        xs = workspace(dtype, nb * per // dtype.itemsize, "conv.xshift")
        work = workspace(dtype, wsize * parts)
        scratch = workspace(dtype, parts * Kg * nc, "conv.scatter")
        Hp = g.P + g.dh * (g.R - 1)
        for n0 in range(0, g.N, nb):
            m = min(nb, g.N - n0)
            launch(shift_copies, _copy_parts(g, m, parts), xf, xs, n0, m, g.C, g.H, g.W, g.S, g.ph0, g.pw0, g.dw,
                   Hp, g.Q)
            launch(conv2d_nchw_shifted, parts, xf, yf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.ph0, g.pw0, g.dh, g.dw,
                   g.P, g.Q, g.groups, beta, ap, xs, n0, m, work, wsize, scratch, kc, nc, pr)
        return
    launch(conv2d_nchw_fused, parts, xf, yf, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.sh, g.sw, g.ph0, g.pw0, g.dh, g.dw,
           g.P, g.Q, g.groups, beta, ap, workspace(dtype, wsize * parts), wsize,
           workspace(dtype, parts * Kg * nc, "conv.scatter"), kc, nc)


def applies(g, filter_grad: bool = False) -> bool:
    """Whether the implicit GEMMs take the convolution ``g`` (its filter gradient with
    ``filter_grad``): NCHW and a filter larger than 1x1 (a strided 1x1 one's columns are a
    subsample of x: im2col + GEMM was 1.2x faster); for the strided forward of a grouped
    convolution, also at least :data:`FUSED_MIN_CHANNELS` input channels per group; and each
    padding narrower than the dilated kernel (wider padding, whose outputs read padding alone and
    which no CNN layer has, gave wrong values and wrote out of bounds here: e.g. x (1, 2, 3, 1),
    w (1, 2, 3, 2), stride (1, 2), padding (2, 3); it takes im2col + GEMM)."""
    if g.layout != "NCHW" or g.R * g.S == 1:
        return False
    if max(g.ph0, g.ph1) >= g.dh * (g.R - 1) + 1 or max(g.pw0, g.pw1) >= g.dw * (g.S - 1) + 1:
        return False
    return (filter_grad or g.groups == 1 or g.sh == g.sw == 1
            or g.C // g.groups >= FUSED_MIN_CHANNELS)


def flipped_filter(w: np.ndarray, g) -> np.ndarray:
    """``w (K, Cg, R, S)`` as the filter of the input gradient's convolution, ``(C, Kg, R, S)``
    with ``w'[gi*Cg + c, k, r, s] = w[gi*Kg + k, c, R-1-r, S-1-s]`` (per group: channels
    swapped, taps reversed), C-contiguous."""
    G = g.groups
    wg = w.reshape(G, g.K // G, g.C // G, g.R, g.S)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(wg.transpose(0, 2, 1, 3, 4)).reshape(g.C, g.K // G, g.R, g.S)

