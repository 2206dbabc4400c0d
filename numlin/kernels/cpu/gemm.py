"""CPU GEMM kernels: BLIS's five loops around an LLVM-vector micro-kernel.

Layout every kernel here expects: a matrix is a *strided descriptor* ``(buf, off, rs, cs)`` over a
1-D buffer, element ``(i, j)`` at ``buf[off + i*rs + j*cs]`` (strides in elements, any sign, zero
for broadcast). One compiled specialisation per dtype then serves C order, Fortran order,
transposed and sliced views alike: packing absorbs the strides, no operand is copied first.

Packed panels (the layout the micro-kernel reads):

* A block ``mc x kc`` -> ``ceil(mc/MR)`` micro-panels, each ``kc`` rows of ``MR`` contiguous
  elements (``ap[panel*MR*kc + p*MR + i]``), zero-padded past ``mc``.
* B panel ``kc x nc`` -> ``ceil(nc/NR)`` micro-panels, each ``kc`` rows of ``NR`` contiguous
  elements (``bp[panel*NR*kc + p*NR + j]``), zero-padded past ``nc``.
"""
from __future__ import annotations

import threading

import numpy as np
from llvmlite import ir
from numba import njit, types, uintp
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import as_dtype

from ..._strided import Strided, gemm_dims
from ._threads import launch, num_threads
from .blocking import blocking, isa

__all__ = ["matmul_into", "matmul_sum_into", "strided", "gemm_blocks", "gemm_batched", "workspace_size"]


# --------------------------------------------------------------------------- micro-kernel
def _vector_fma(builder, x, y, z, use_fma):
    if use_fma:
        vt = x.type
        fname = f"llvm.fma.v{vt.count}f{64 if vt.element == ir.DoubleType() else 32}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), fname)
        return builder.call(fn, [x, y, z])
    return builder.fadd(builder.fmul(x, y), z)


def _splat(builder, scalar, vt):
    undef = ir.Constant(vt, ir.Undefined)
    v = builder.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(ir.IntType(32), vt.count), None))


def _vtag(vt):
    return f"v{vt.count}f{64 if vt.element == ir.DoubleType() else 32}"


def _load(builder, ptr, vt, align, mask):
    """Vector load from element pointer ``ptr``; lanes off in ``mask`` (if given) read nothing."""
    vptr = builder.bitcast(ptr, vt.as_pointer())
    if mask is None:
        return builder.load(vptr, align=align)
    fnty = ir.FunctionType(vt, [vt.as_pointer(), ir.IntType(32), mask.type, vt])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.{_vtag(vt)}.p0")
    return builder.call(fn, [vptr, ir.Constant(ir.IntType(32), align), mask, ir.Constant(vt, None)])


def _store(builder, val, ptr, align, mask):
    vt = val.type
    vptr = builder.bitcast(ptr, vt.as_pointer())
    if mask is None:
        builder.store(val, vptr, align=align)
        return
    fnty = ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), ir.IntType(32), mask.type])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.{_vtag(vt)}.p0")
    builder.call(fn, [val, vptr, ir.Constant(ir.IntType(32), align), mask])


def _micro_kernel_codegen(dtype, mr, nv, direct, indirect=False, split=False):
    """LLVM IR for an ``mr x nv*vw`` register tile: ``C = alpha * A @ B + beta * C``.

    Packed (``direct=False``): A element (i, p) at ``a[aoff + p*mr + i]``, B vector j of row p at
    ``b[boff + p*nr + j*vw]``, full tile stored. Indirect: A packed as before, B row p read in
    place at ``b[boff + offs[ooff + p] + j*vw]`` (a table of row offsets; unaligned loads); with
    ``split``, vector j of every B row at ``+ j*bvs`` and of every C row at ``+ j*cvs`` instead of
    ``j*vw`` (runtime strides: the vectors of a tile may lie in different samples).
    Direct: A at ``a[aoff + i*ars + p*acs]``, B at
    ``b[boff + p*brs + j*vw ...]`` (unit column stride), only ``rows x cols`` of the tile valid:
    rows past ``rows`` re-read row ``rows-1`` and are not stored, columns past ``cols`` are
    masked off in every B load and C access. C is ``cb[coff + i*crs + j]`` (unit column stride).
    """
    bl = blocking(dtype)
    vw = bl.vw
    nr = nv * vw
    use_fma = isa() != "generic"

    def codegen(context, builder, signature, args):
        if direct:
            (kc_v, a_v, aoff_v, ars_v, acs_v, b_v, boff_v, brs_v, cb_v, coff_v, crs_v,
             alpha_v, beta_v, rows_v, cols_v) = args
            at, bt, ct = signature.args[1], signature.args[5], signature.args[8]
        elif split:
            kc_v, a_v, aoff_v, b_v, boff_v, o_v, ooff_v, bvs_v, cb_v, coff_v, crs_v, cvs_v, alpha_v, beta_v = args
            at, bt, ot, ct = signature.args[1], signature.args[3], signature.args[5], signature.args[8]
            o_base = builder.gep(context.make_array(ot)(context, builder, o_v).data, [ooff_v])
        elif indirect:
            kc_v, a_v, aoff_v, b_v, boff_v, o_v, ooff_v, cb_v, coff_v, crs_v, alpha_v, beta_v = args
            at, bt, ot, ct = signature.args[1], signature.args[3], signature.args[5], signature.args[7]
            o_base = builder.gep(context.make_array(ot)(context, builder, o_v).data, [ooff_v])
        else:
            kc_v, a_v, aoff_v, b_v, boff_v, cb_v, coff_v, crs_v, alpha_v, beta_v = args
            at, bt, ct = signature.args[1], signature.args[3], signature.args[5]
        t = context.get_value_type(at.dtype)
        vt = ir.VectorType(t, vw)
        align = np.dtype(dtype).itemsize
        intp = context.get_value_type(types.intp)
        const = lambda v: ir.Constant(intp, v)  # noqa: E731

        if split:  # offsets of the vectors of a B row and of a C row
            bvo = [builder.mul(bvs_v, const(j)) for j in range(nv)]
            cvo = [builder.mul(cvs_v, const(j)) for j in range(nv)]
        else:
            bvo = cvo = [const(j * vw) for j in range(nv)]
        a_base = builder.gep(context.make_array(at)(context, builder, a_v).data, [aoff_v])
        b_base = builder.gep(context.make_array(bt)(context, builder, b_v).data, [boff_v])
        c_base = builder.gep(context.make_array(ct)(context, builder, cb_v).data, [coff_v])

        masks = [None] * nv
        if direct:
            lanes = ir.Constant(ir.VectorType(intp, vw), list(range(vw)))
            ivt = ir.VectorType(intp, vw)
            for j in range(nv):
                left = _splat(builder, builder.sub(cols_v, const(j * vw)), ivt)
                masks[j] = builder.icmp_signed("<", lanes, left)
            last = builder.sub(rows_v, const(1))
            a_rows = []
            for i in range(mr):
                r = builder.select(builder.icmp_signed("<", const(i), rows_v), const(i), last)
                a_rows.append(builder.gep(a_base, [builder.mul(r, ars_v)]))

        accs = []
        for _ in range(mr * nv):
            slot = cgutils.alloca_once(builder, vt)
            builder.store(ir.Constant(vt, None), slot)
            accs.append(slot)

        with cgutils.for_range(builder, kc_v) as loop:
            p = loop.index
            if direct:
                b_row = builder.gep(b_base, [builder.mul(p, brs_v)])
                a_off = builder.mul(p, acs_v)
                a_ptrs = [builder.gep(a_rows[i], [a_off]) for i in range(mr)]
            else:
                if indirect or split:
                    b_row = builder.gep(b_base, [builder.load(builder.gep(o_base, [p]))])
                else:
                    b_row = builder.gep(b_base, [builder.mul(p, const(nr))])
                a_row = builder.gep(a_base, [builder.mul(p, const(mr))])
                a_ptrs = [builder.gep(a_row, [const(i)]) for i in range(mr)]
            bvec = [_load(builder, builder.gep(b_row, [bvo[j]]), vt, align, masks[j]) for j in range(nv)]
            for i in range(mr):
                a_i = _splat(builder, builder.load(a_ptrs[i]), vt)
                for j in range(nv):
                    slot = accs[i * nv + j]
                    builder.store(_vector_fma(builder, a_i, bvec[j], builder.load(slot), use_fma), slot)

        alpha_s = _splat(builder, alpha_v, vt)
        beta_s = _splat(builder, beta_v, vt)
        beta_zero = builder.fcmp_ordered("==", beta_v, ir.Constant(t, 0.0))

        def update(read_c):
            for i in range(mr):
                row = builder.gep(c_base, [builder.mul(crs_v, const(i))])
                guard = builder.icmp_signed("<", const(i), rows_v) if direct else cgutils.true_bit
                with builder.if_then(guard, likely=True):
                    for j in range(nv):
                        ptr = builder.gep(row, [cvo[j]])
                        val = builder.fmul(alpha_s, builder.load(accs[i * nv + j]))
                        if read_c:
                            val = _vector_fma(builder, beta_s, _load(builder, ptr, vt, align, masks[j]), val, use_fma)
                        _store(builder, val, ptr, align, masks[j])

        with builder.if_else(beta_zero) as (then, otherwise):
            with then:
                update(False)
            with otherwise:
                update(True)
        return context.get_dummy_value()

    return codegen


@intrinsic
def _micro_kernel(typingctx, kc, ap, aoff, bp, boff, cb, coff, crs, alpha, beta):
    """``C[0:MR, 0:NR] = alpha * Ap_panel @ Bp_panel + beta * C`` (``beta == 0``: C is not read).

    ``ap[aoff + p*MR + i]``, ``bp[boff + p*NR + j]`` for ``p < kc``; ``C[i, j] = cb[coff + i*crs + j]``
    (unit column stride). The MR x NR accumulators are ``MR * NR/VW`` LLVM vectors updated by
    ``llvm.fma`` with A broadcast from memory, so they live in registers (ymm/zmm).
    """
    dtype = as_dtype(ap.dtype)
    bl = blocking(dtype)
    sig = types.void(kc, ap, aoff, bp, boff, cb, coff, crs, alpha, beta)
    return sig, _micro_kernel_codegen(dtype, bl.mr, bl.nr // bl.vw, direct=False)


@intrinsic
def _micro_kernel_indirect(typingctx, kc, ap, aoff, b, boff, offs, ooff, cb, coff, crs, alpha, beta):
    """:func:`_micro_kernel` with B read in place: row ``p`` of the ``kc x NR`` B panel is the
    run ``b[boff + offs[ooff + p] ...]`` of NR elements (any alignment), A packed as usual."""
    dtype = as_dtype(ap.dtype)
    bl = blocking(dtype)
    sig = types.void(kc, ap, aoff, b, boff, offs, ooff, cb, coff, crs, alpha, beta)
    return sig, _micro_kernel_codegen(dtype, bl.mr, bl.nr // bl.vw, direct=False, indirect=True)


@intrinsic
def _micro_kernel_split(typingctx, kc, ap, aoff, b, boff, offs, ooff, bvs, cb, coff, crs, cvs, alpha, beta):
    """:func:`_micro_kernel_indirect` whose ``NR/VW`` vectors lie apart: vector ``j`` of B row ``p``
    is ``b[boff + offs[ooff + p] + j*bvs ...]`` (VW elements) and of C row ``i`` is
    ``cb[coff + i*crs + j*cvs ...]`` (e.g. one sample per vector of a convolution's 4x4 planes)."""
    dtype = as_dtype(ap.dtype)
    bl = blocking(dtype)
    sig = types.void(kc, ap, aoff, b, boff, offs, ooff, bvs, cb, coff, crs, cvs, alpha, beta)
    return sig, _micro_kernel_codegen(dtype, bl.mr, bl.nr // bl.vw, direct=False, split=True)


#: rows of the direct (unpacked, masked) micro-kernel's tile: one call covers an 8-row matrix
DIRECT_MR = 8


@intrinsic
def _micro_kernel_direct(typingctx, kc, a, aoff, ars, acs, b, boff, brs, cb, coff, crs, alpha, beta, rows, cols):
    """The micro-kernel on unpacked operands, for small matrices: an ``MR x VW`` tile of which
    ``rows x cols`` is valid; A at ``a[aoff + i*ars + p*acs]``, B at ``b[boff + p*brs + j]``,
    C at ``cb[coff + i*crs + j]`` (masked vector loads/stores, nothing outside the valid part
    is read from B or C or written)."""
    dtype = as_dtype(a.dtype)
    sig = types.void(kc, a, aoff, ars, acs, b, boff, brs, cb, coff, crs, alpha, beta, rows, cols)
    return sig, _micro_kernel_codegen(dtype, DIRECT_MR, 1, direct=True)


@intrinsic
def _tile_shape(typingctx, buf):
    """``(MR, NR)`` of the micro-kernel for ``buf``'s dtype, as compile-time constants."""
    bl = blocking(as_dtype(buf.dtype))
    ret = types.UniTuple(types.intp, 2)

    def codegen(context, builder, signature, args):
        return context.make_tuple(
            builder, ret, [context.get_constant(types.intp, bl.mr), context.get_constant(types.intp, bl.nr)]
        )

    return ret(buf), codegen


@intrinsic
def _vector_width(typingctx, buf):
    """The SIMD width (elements) of the micro-kernel for ``buf``'s dtype, a compile-time constant."""
    vw = blocking(as_dtype(buf.dtype)).vw

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, vw)

    return types.intp(buf), codegen


def workspace_size(dtype, kc: int, mc: int, nc: int) -> int:
    """Elements of workspace one thread needs: packed A, packed B and an MR x NR edge tile."""
    bl = blocking(dtype)
    return mc * kc + kc * nc + bl.mr * bl.nr + 64


# --------------------------------------------------------------------------- packing
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


# --------------------------------------------------------------------------- macro-kernel
@njit(cache=True, nogil=True)
def _macro_kernel(kc, mc, nc, ap, bp, c, coff, crs, ccs, alpha, beta, ct):
    """C block (``mc x nc`` at ``c[coff + i*crs + j*ccs]``) = alpha * Ap @ Bp + beta * C."""
    MR, NR = _tile_shape(ap)
    zero = c.dtype.type(0)
    for jr in range(0, nc, NR):
        cols = min(NR, nc - jr)
        for ir_ in range(0, mc, MR):
            rows = min(MR, mc - ir_)
            cij = coff + ir_ * crs + jr * ccs
            if rows == MR and cols == NR and ccs == 1:
                _micro_kernel(kc, ap, ir_ * kc, bp, jr * kc, c, cij, crs, alpha, beta)
            else:
                _micro_kernel(kc, ap, ir_ * kc, bp, jr * kc, ct, 0, NR, alpha, zero)
                _add_edge_tile(ct, NR, rows, cols, c, cij, crs, ccs, beta)


@njit(cache=True, nogil=True, inline="always")
def _add_edge_tile(ct, NR, rows, cols, c, coff, crs, ccs, beta):
    """``C[:rows, :cols] = T + beta * C`` for an edge tile ``T`` computed into ``ct`` (row stride
    NR) by a micro-kernel with beta 0; ``beta == 0`` does not read C."""
    for i in range(rows):
        for j in range(cols):
            k = coff + i * crs + j * ccs
            if beta == 0:
                c[k] = ct[i * NR + j]
            else:
                c[k] = ct[i * NR + j] + beta * c[k]


@njit(cache=True, nogil=True)
def _scale(c, coff, crs, ccs, m, n, beta):
    """``C = beta * C``; ``beta == 0`` writes zeros without reading C (BLAS rule)."""
    for i in range(m):
        for j in range(n):
            k = coff + i * crs + j * ccs
            c[k] = 0 if beta == 0 else beta * c[k]


#: zero per-item offsets: a single product through :func:`_gemm_items` (a frozen constant)
_ONE_ITEM = np.zeros(1, np.int64)


@njit(cache=True, nogil=True, inline="always")  # a call of _gemm_items: no compiled layer of its own
def gemm_strided_serial(m, n, k, alpha, a, aoff, ars, acs, b, boff, brs, bcs, beta, c, coff, crs, ccs,
                        work, kc_blk, mc_blk, nc_blk):
    """``C = alpha * A @ B + beta * C`` on one thread over strided descriptors (BLIS loops 1-3).

    ``work`` holds at least ``workspace_size`` elements (packed A, packed B, edge tile).
    """
    _gemm_items(m, n, k, alpha, a, aoff, _ONE_ITEM, ars, acs, b, boff, brs, bcs, beta, c, coff, _ONE_ITEM, crs, ccs,
                0, 1, work, kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def _gemm_items(m, n, k, alpha, a, aoff, aoffs, ars, acs, b, boff, brs, bcs, beta, c, coff, coffs, crs, ccs, lo, hi,
                work, kc_blk, mc_blk, nc_blk):
    """Products ``lo .. hi`` sharing one B: ``C_i = alpha * A_i @ B + beta * C_i`` with A_i at
    ``aoff + aoffs[i]`` and C_i at ``coff + coffs[i]`` (one product: ``lo, hi = 0, 1`` and zero
    offsets). Each ``kc x nc`` panel of B is packed once and reused by every product (BLIS
    loops 1-3, the product loop inside the panel loop); ``work`` holds ``workspace_size``."""
    MR, NR = _tile_shape(work)
    ap_n = (mc_blk + MR - 1) // MR * MR * kc_blk
    bp_n = (nc_blk + NR - 1) // NR * NR * kc_blk
    if work.size < ap_n + bp_n + MR * NR:
        raise ValueError("gemm workspace too small")
    t = c.dtype.type
    alpha = t(alpha)
    beta = t(beta)
    if m == 0 or n == 0:
        return
    if k == 0 or alpha == 0:
        for i in range(lo, hi):
            _scale(c, coff + coffs[i], crs, ccs, m, n, beta)
        return
    ap = work[:ap_n]
    bp = work[ap_n:ap_n + bp_n]
    ct = work[ap_n + bp_n:ap_n + bp_n + MR * NR]
    for jc in range(0, n, nc_blk):
        nc = min(nc_blk, n - jc)
        for pc in range(0, k, kc_blk):
            kc = min(kc_blk, k - pc)
            beta_p = beta if pc == 0 else t(1)
            _pack_b(b, boff + pc * brs + jc * bcs, brs, bcs, kc, nc, bp)
            for i in range(lo, hi):
                for ic in range(0, m, mc_blk):
                    mc = min(mc_blk, m - ic)
                    _pack_a(a, aoff + aoffs[i] + ic * ars + pc * acs, ars, acs, mc, kc, ap)
                    _macro_kernel(kc, mc, nc, ap, bp, c, coff + coffs[i] + ic * crs + jc * ccs, crs, ccs, alpha,
                                  beta_p, ct)


@njit(cache=True, nogil=True)
def gemm_blocks(t, parts, tn, m, n, k, alpha, a, aoff, ars, acs, b, boff, brs, bcs, beta, c, coff, crs, ccs,
                work, wsize, kc_blk, mc_blk, nc_blk):
    """Part ``t`` of one GEMM whose C is cut into a ``parts / tn`` x ``tn`` grid of MR/NR-aligned
    blocks (:func:`._threads.launch`, one block per thread): the serial BLIS loops on block ``t``
    with slice ``t`` of ``work`` (``wsize`` elements each); no barriers."""
    MR, NR = _tile_shape(work)
    tm = parts // tn
    mt = (m + MR - 1) // MR
    nt = (n + NR - 1) // NR
    ti = t // tn
    tj = t - ti * tn
    m0 = min(m, (mt * ti // tm) * MR)
    m1 = min(m, (mt * (ti + 1) // tm) * MR)
    n0 = min(n, (nt * tj // tn) * NR)
    n1 = min(n, (nt * (tj + 1) // tn) * NR)
    if m1 > m0 and n1 > n0:
        gemm_strided_serial(m1 - m0, n1 - n0, k, alpha,
                            a, aoff + m0 * ars, ars, acs,
                            b, boff + n0 * bcs, brs, bcs,
                            beta, c, coff + m0 * crs + n0 * ccs, crs, ccs,
                            work[t * wsize:(t + 1) * wsize], kc_blk, mc_blk, nc_blk)


# --------------------------------------------------------------------------- small batched
@njit(cache=True, nogil=True, inline="always")
def _small_gemm(m, n, k, alpha, a, aoff, ars, acs, b, boff, brs, bcs, beta, c, coff, crs, ccs):
    """Unpacked ``C = alpha*A@B + beta*C`` for small matrices: the direct micro-kernel over
    MR x VW tiles when B and C have unit column stride, plain loops otherwise."""
    VW = _vector_width(c)
    if bcs == 1 and ccs == 1 and k > 0:
        for i0 in range(0, m, DIRECT_MR):
            for j0 in range(0, n, VW):
                _micro_kernel_direct(k, a, aoff + i0 * ars, ars, acs, b, boff + j0, brs, c, coff + i0 * crs + j0,
                                     crs, alpha, beta, min(DIRECT_MR, m - i0), min(VW, n - j0))
        return
    for i in range(m):
        for j in range(n):
            s = c.dtype.type(0)
            for p in range(k):
                s += a[uintp(aoff + i * ars + p * acs)] * b[uintp(boff + p * brs + j * bcs)]
            q = uintp(coff + i * crs + j * ccs)
            c[q] = alpha * s if beta == 0 else alpha * s + beta * c[q]


@njit(cache=True, nogil=True)
def gemm_batched(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boffs, brs, bcs, beta, c, coffs, crs, ccs,
                 work, wsize, kc_blk, mc_blk, nc_blk, small):
    """Part ``t`` of ``parts`` (a contiguous run of the batch) of the GEMMs
    ``C_i = alpha * A_i @ B_i + beta * C_i``.

    ``aoffs[i]``, ``boffs[i]``, ``coffs[i]`` locate matrix ``i``; the strides are shared. Matrices
    with ``m*n*k <= small`` skip packing (the branch sits outside the loop so the per-matrix
    path stays a straight call); larger ones pack into slice ``t`` of ``work``.
    """
    dt = c.dtype.type
    al = dt(alpha)
    be = dt(beta)
    nb = coffs.size
    lo = nb * t // parts
    hi = nb * (t + 1) // parts
    if m * n * k <= small:
        for i in range(lo, hi):
            _small_gemm(m, n, k, al, a, aoffs[i], ars, acs, b, boffs[i], brs, bcs, be, c, coffs[i], crs, ccs)
    else:
        w = work[t * wsize:(t + 1) * wsize]
        for i in range(lo, hi):
            gemm_strided_serial(m, n, k, al, a, aoffs[i], ars, acs, b, boffs[i], brs, bcs, be, c, coffs[i], crs, ccs,
                                w, kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def gemm_direct(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boffs, brs, beta, c, coffs, crs, rparts):
    """Part ``t`` of ``parts`` of unpacked GEMMs (B and C with unit column stride; ``k > 0``) by
    the direct micro-kernel, over the batch and, within each product, over ``rparts`` runs of
    its ``DIRECT_MR``-row blocks (each run reads all of B, which stays in cache at these sizes).
    ``rparts == 1`` (whole products, a contiguous run of the batch per part) takes a loop without
    divisions per product (three of them were a quarter of the time of an 8x8 one). Small
    products come here rather than to :func:`gemm_batched`, so a workload of small products
    never compiles the packed GEMM (~3 s per dtype)."""
    dt = c.dtype.type
    al = dt(alpha)
    be = dt(beta)
    if rparts == 1:
        nb = coffs.size
        for i in range(nb * t // parts, nb * (t + 1) // parts):
            _small_gemm(m, n, k, al, a, aoffs[i], ars, acs, b, boffs[i], brs, 1, be, c, coffs[i], crs, 1)
        return
    mb = (m + DIRECT_MR - 1) // DIRECT_MR
    units = coffs.size * rparts
    for u in range(units * t // parts, units * (t + 1) // parts):
        i = u // rparts
        j = u - i * rparts
        r0 = (mb * j // rparts) * DIRECT_MR
        r1 = min(m, (mb * (j + 1) // rparts) * DIRECT_MR)
        if r1 > r0:
            _small_gemm(r1 - r0, n, k, al, a, aoffs[i] + r0 * ars, ars, acs, b, boffs[i], brs, 1, be, c,
                        coffs[i] + r0 * crs, crs, 1)


# --------------------------------------------------------------------------- matrix x vector
@njit(cache=True, nogil=True, inline="always", fastmath={"reassoc", "contract"})
def _gemv_rows(r0, r1, k, al, be, a, ao, ars, acs, x, xo, xs, y, yo, ys):
    """Rows ``r0 .. r1`` of ``y = al * A @ x + be * y`` (``y`` not read when ``be == 0``).
    A's rows contiguous: dot products, four rows a sweep (vector lanes and FMAs: reassociation
    and contraction are the only licences taken, so NaN and Inf propagate). A's columns
    contiguous: axpy sweeps, four columns a sweep, over the block's y (in cache). Otherwise:
    strided dot products."""
    t = y.dtype.type
    if ars == 1 and acs != 1 and ys == 1:
        for r in range(r0, r1):
            q = uintp(yo + r)
            y[q] = t(0) if be == 0 else be * y[q]
        p = 0
        while p + 4 <= k:  # four columns a sweep: y's block loaded and stored once for four
            v0 = al * x[uintp(xo + p * xs)]
            v1 = al * x[uintp(xo + (p + 1) * xs)]
            v2 = al * x[uintp(xo + (p + 2) * xs)]
            v3 = al * x[uintp(xo + (p + 3) * xs)]
            b0 = ao + p * acs
            for r in range(r0, r1):
                y[uintp(yo + r)] += (v0 * a[uintp(b0 + r)] + v1 * a[uintp(b0 + acs + r)]
                                     + v2 * a[uintp(b0 + 2 * acs + r)] + v3 * a[uintp(b0 + 3 * acs + r)])
            p += 4
        for p in range(p, k):
            v = al * x[uintp(xo + p * xs)]
            base = ao + p * acs
            for r in range(r0, r1):
                y[uintp(yo + r)] += v * a[uintp(base + r)]
        return
    r = r0
    if acs == 1 and xs == 1:  # four rows a sweep: each x vector loaded once for four rows
        while r + 4 <= r1:
            b0 = ao + r * ars
            s0 = s1 = s2 = s3 = t(0)
            for p in range(k):
                v = x[uintp(xo + p)]
                s0 += a[uintp(b0 + p)] * v
                s1 += a[uintp(b0 + ars + p)] * v
                s2 += a[uintp(b0 + 2 * ars + p)] * v
                s3 += a[uintp(b0 + 3 * ars + p)] * v
            for d, sd in ((0, s0), (1, s1), (2, s2), (3, s3)):
                q = uintp(yo + (r + d) * ys)
                y[q] = al * sd if be == 0 else al * sd + be * y[q]
            r += 4
    for r in range(r, r1):
        base = ao + r * ars
        s = t(0)
        if acs == 1 and xs == 1:
            for p in range(k):
                s += a[uintp(base + p)] * x[uintp(xo + p)]
        else:
            for p in range(k):
                s += a[uintp(base + p * acs)] * x[uintp(xo + p * xs)]
        q = uintp(yo + r * ys)
        y[q] = al * s if be == 0 else al * s + be * y[q]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})  # the flags the inlined body compiles with
def gemv(t, parts, m, k, alpha, a, aoffs, ars, acs, x, xoffs, xs, beta, y, yoffs, ys, rparts):
    """Part ``t`` of ``parts`` of a batch of ``y_i = alpha * A_i @ x_i + beta * y_i`` (A ``m x k``;
    ``k > 0``), over the batch and over ``rparts`` row blocks of each product."""
    dt = y.dtype.type
    al = dt(alpha)
    be = dt(beta)
    units = yoffs.size * rparts
    for u in range(units * t // parts, units * (t + 1) // parts):
        i = u // rparts
        j = u - i * rparts
        _gemv_rows(m * j // rparts, m * (j + 1) // rparts, k, al, be, a, aoffs[i], ars, acs, x, xoffs[i], xs, y,
                   yoffs[i], ys)


@njit(cache=True, nogil=True)
def gemm_batched_shared_b(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boff, brs, bcs, beta, c, coffs, crs, ccs,
                          work, wsize, kc_blk, mc_blk, nc_blk):
    """Part ``t`` of ``parts`` (a contiguous run of products) of a batch of GEMMs sharing one B
    (e.g. a filter); each part packs B's panels once, into slice ``t`` of ``work``."""
    nb = coffs.size
    per = (nb + parts - 1) // parts
    lo = t * per
    hi = min(nb, lo + per)
    if lo < hi:
        _gemm_items(m, n, k, alpha, a, 0, aoffs, ars, acs, b, boff, brs, bcs, beta, c, 0, coffs, crs, ccs, lo, hi,
                    work[t * wsize:(t + 1) * wsize], kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def gemm_batched_sum(t, parts, m, n, k, alpha, a, aoffs, ars, acs, b, boffs, brs, bcs, beta, c, coff, crs, ccs, tmp,
                     work, wsize, kc_blk, mc_blk, nc_blk):
    """Part ``t`` of ``parts`` of ``C = beta * C + alpha * sum_i A_i @ B_i`` (a reduction over the
    batch, e.g. a filter gradient over samples): each part accumulates a contiguous run of
    products, part 0 into C, part ``t`` into the ``m x n`` slice ``t - 1`` of ``tmp``;
    :func:`add_partial_sums` then adds those to C."""
    nb = aoffs.size
    per = (nb + parts - 1) // parts
    lo = t * per
    hi = min(nb, lo + per)
    w = work[t * wsize:(t + 1) * wsize]
    for i in range(lo, hi):
        if t == 0:  # one call site below: the GEMM body is compiled (and inlined) once
            dst, doff, drs, dcs, be = c, coff, crs, ccs, beta if i == lo else 1.0
        else:
            dst, doff, drs, dcs, be = tmp, (t - 1) * m * n, n, 1, 0.0 if i == lo else 1.0
        gemm_strided_serial(m, n, k, alpha, a, aoffs[i], ars, acs, b, boffs[i], brs, bcs, be, dst, doff, drs, dcs,
                            w, kc_blk, mc_blk, nc_blk)


@njit(cache=True, nogil=True)
def add_partial_sums(t, parts, m, n, c, coff, crs, ccs, tmp, nsums):
    """Part ``t`` of ``parts`` (a run of rows) of ``C += sum_s tmp[s]`` over the first ``nsums``
    ``m x n`` partial sums of :func:`gemm_batched_sum`."""
    for s in range(nsums):
        base = s * m * n
        for i in range(m * t // parts, m * (t + 1) // parts):
            for j in range(n):
                c[coff + i * crs + j * ccs] += tmp[base + i * n + j]


# --------------------------------------------------------------------------- Python driver
#: Per-matrix work (m*n*k) at or under which packing is skipped.
SMALL_MNK = 16 * 16 * 16
#: Total work under which a product stays on the calling thread (a launch on several threads
#: costs 50-100 us, see ``_threads.GRAIN``): the sum over the batch of m*n*k plus ITEM_COST per
#: matrix (the fixed cost of one small product, in FMAs).
PARALLEL_MNK = 192 * 192 * 192
ITEM_COST = 2048
#: Batches whose products share one B pack it once per thread (off: once per product; for A/B timing).
SHARE_B = True
#: Products of at most this many FMAs (m*n*k), by itemsize, skip packing when B and C (or, for
#: the transposed product, A and C) have unit column stride: the direct micro-kernel reads them
#: in place. Seventh session, one thread, against packing: 1.2-5.5x faster up to 2.4M FMAs
#: (64x256x10 float32: 5.6 against 20 us), 1.1-1.2x at 192^3-256^3 float32, and slower from
#: 384^3 (float32; 0.84) and 256^3 (float64; 0.91), where B no longer stays in cache.
DIRECT_MNK = {4: 1 << 23, 8: 1 << 22}
#: ... and whose B (k x n) fits this many bytes (half an L2): each 8-row block of A streams all
#: of B, a strip of rows ``brs`` apart per vector column (1 x 4096 @ 4096 x 512 float32, B 8 MiB:
#: 7.4 ms direct against 0.6 packed).
DIRECT_B_BYTES = 512 * 1024
#: Products with a vector operand (n == 1, or m == 1 through Cᵀ = Bᵀ Aᵀ) run :func:`gemv`
#: (off: the direct or packed paths; for A/B timing and the tests).
GEMV = True

_local = threading.local()


def workspace(dtype, n_elems: int, slot: str = "gemm") -> np.ndarray:
    """A per-Python-thread, 64-byte aligned scratch buffer of ``n_elems`` elements, reused across
    calls (no page faults after the first) and grown on demand; ``slot`` names independent ones."""
    cache = _local.__dict__.setdefault("work", {})
    key = (np.dtype(dtype), slot)
    buf = cache.get(key)
    if buf is None or buf.size < n_elems:
        raw = np.empty(n_elems + 64, dtype=dtype)
        shift = (-raw.ctypes.data % 64) // raw.itemsize
        buf = raw[shift:shift + n_elems]
        cache[key] = buf
    return buf[:n_elems]


class _Holder:
    def __init__(self, iface, base):
        self.__array_interface__ = iface
        self.base = base


def strided(x: np.ndarray, *, writable: bool) -> Strided:
    """Describe ndarray ``x`` as a :class:`~numlin._strided.Strided` over a 1-D view (no copy).

    Inputs get read-only views and outputs writable ones, so the kernels compile once per dtype.
    An array whose byte strides are not multiples of its itemsize is copied first.
    """
    isz = x.itemsize
    if x.size and (x.flags.c_contiguous or x.flags.f_contiguous):  # the common case, ~10x cheaper
        buf = x.ravel(order="K")  # a view in memory order
        if not writable:
            buf = buf.view()
            buf.flags.writeable = False
        return Strided(buf, 0, x.shape, tuple(s // isz for s in x.strides))
    if any(s % isz for s in x.strides):
        x = np.ascontiguousarray(x)
    es = tuple(s // isz for s in x.strides)
    if x.size == 0:
        buf = np.zeros(1, x.dtype)
        buf.flags.writeable = writable
        return Strided(buf, 0, x.shape, es)
    lo = sum((d - 1) * s for d, s in zip(x.shape, es) if s < 0)
    hi = sum((d - 1) * s for d, s in zip(x.shape, es) if s > 0)
    iface = {
        "data": (x.__array_interface__["data"][0] + lo * isz, not writable),
        "shape": (hi - lo + 1,),
        "typestr": x.dtype.str,
        "version": 3,
    }
    return Strided(np.asarray(_Holder(iface, x)), -lo, x.shape, es)


def _thread_grid(mt: int, nt: int, threads: int) -> tuple[int, int]:
    """Split an ``mt x nt`` grid of micro-tiles among ``threads``: the ``(tm, tn)`` with
    ``tm * tn <= threads`` whose largest block has the fewest tiles (ties: more threads used)."""
    best = (mt * nt + 1, 0, 1, 1)
    for tm in range(1, threads + 1):
        tn = threads // tm
        load = -(-mt // tm) * -(-nt // tn)
        cand = (load, -(tm * tn), tm, tn)
        best = min(best, cand)
    return best[2], best[3]


def _tile_use(m: int, n: int, bl) -> float:
    """Fraction of the MR x NR micro-tiles covering an m x n product that holds real entries."""
    return m / (-(-m // bl.mr) * bl.mr) * n / (-(-n // bl.nr) * bl.nr)


def _readonly(s: Strided) -> Strided:
    """``s`` over a read-only view of its buffer: every caller's inputs reach the kernels with one
    array type (a writable input compiled each kernel a second time, ~2-3 s each)."""
    if s.buf.flags.writeable:
        buf = s.buf.view()
        buf.flags.writeable = False
        return s._replace(buf=buf)
    return s


def _rows_contiguous(b: Strided, batch: tuple) -> Strided:
    """The ``(k, n)`` operand ``b`` as a C-contiguous copy when the whole batch shares one B
    with non-negative strides (``g @ Wᵀ`` of a layer's backward), else ``b`` unchanged."""
    if not all(s >= 0 for s in b.strides) or (batch and not (b.batch_offsets(batch) == b.off).all()):
        return b
    k, n = b.shape[-2:]
    isz = b.buf.itemsize
    view = np.lib.stride_tricks.as_strided(b.buf[b.off:], (k, n), (b.strides[-2] * isz, b.strides[-1] * isz),
                                           writeable=False)
    buf = np.ascontiguousarray(view).reshape(-1)
    buf.flags.writeable = False
    return Strided(buf, 0, (k, n), (n, 1))


def matmul_sum_into(a: Strided, b: Strided, c: Strided, beta: float = 0.0) -> None:
    """``C = beta * C + sum_t A[t] @ B[t]`` over the leading axis of ``a`` and ``b``.

    ``a`` is ``(nb, ..., m, k)``, ``b`` ``(nb, ..., k, n)``, ``c`` ``(..., m, n)``: one reduction per
    matrix of ``c`` (e.g. per group of a grouped convolution). A thread's partial sums stay in
    registers/cache through its run of products; no per-product partial matrices are written.
    """
    a, b = _readonly(a), _readonly(b)
    nb = a.shape[0]
    cbatch = tuple(c.shape[:-2])
    m, n, k = c.shape[-2], c.shape[-1], a.shape[-1]
    dtype = c.buf.dtype
    bl = blocking(dtype)
    if _tile_use(n, m, bl) > 1.15 * _tile_use(m, n, bl):  # sum_t Bᵀ Aᵀ = Cᵀ fills the tiles better
        a, b, c = b.mT, a.mT, c.mT
        m, n = n, m
    ng = int(np.prod(cbatch, dtype=np.int64))
    if nb == 0 or k == 0:  # an empty sum: C = beta * C
        for off in c.batch_offsets(cbatch):
            _scale(c.buf, int(off), c.strides[-2], c.strides[-1], m, n, c.buf.dtype.type(beta))
        return
    aoffs = a.batch_offsets((nb,) + cbatch).reshape(nb, ng)
    boffs = b.batch_offsets((nb,) + cbatch).reshape(nb, ng)
    coffs = c.batch_offsets(cbatch)
    kc = min(bl.kc, max(k, 1))
    mc = min(bl.mc, -(-m // bl.mr) * bl.mr)
    nc = min(bl.nc, -(-n // bl.nr) * bl.nr)
    wsize = workspace_size(dtype, kc, mc, nc)
    work_items = nb * (m * n * max(k, 1) + ITEM_COST)
    parts = 1 if work_items < PARALLEL_MNK else max(1, min(num_threads(), nb))
    work = workspace(dtype, wsize * parts)
    tmp = workspace(dtype, max(1, (parts - 1) * m * n), "gemm.sum")
    for g in range(ng):
        coff = int(coffs[g])
        launch(gemm_batched_sum, parts, m, n, k, 1.0, a.buf, np.ascontiguousarray(aoffs[:, g]), a.strides[-2],
               a.strides[-1], b.buf, np.ascontiguousarray(boffs[:, g]), b.strides[-2], b.strides[-1], beta,
               c.buf, coff, c.strides[-2], c.strides[-1], tmp, work, wsize, kc, mc, nc)
        add_partials(parts, nb, m, n, c.buf, coff, c.strides[-2], c.strides[-1], tmp)


def add_partials(parts: int, items: int, m: int, n: int, c, coff: int, crs: int, ccs: int, tmp) -> None:
    """``C += `` the partial sums in ``tmp`` of the parts after the first of a reduction over
    ``items`` in runs of ``ceil(items / parts)`` (:func:`gemm_batched_sum`), those that got any."""
    per = -(-items // parts)
    nsums = sum(1 for t in range(1, parts) if t * per < items)
    if nsums:
        launch(add_partial_sums, parts if m * n >= 1 << 14 else 1, m, n, c, coff, crs, ccs, tmp, nsums)


def matmul_into(a: Strided, b: Strided, c: Strided, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``C = alpha * A @ B + beta * C`` over descriptors of one float dtype (from :func:`strided`).

    ``a`` is ``(..., m, k)``, ``b`` ``(..., k, n)``, ``c`` ``(..., m, n)``; the batch dims of ``a``
    and ``b`` broadcast to those of ``c``; ``c`` does not overlap ``a`` or ``b`` (checked by the caller).
    """
    m, n, k, batch, nb = gemm_dims(a, b, c)
    if nb == 0 or m == 0 or n == 0:
        return
    a, b = _readonly(a), _readonly(b)
    dtype = c.buf.dtype
    bl = blocking(dtype)
    threads = num_threads()
    one_item = m * n * max(k, 1)
    if GEMV and k > 0 and (n == 1 or m == 1):  # matrix x vector: memory-bound, no tiles
        if n != 1:  # a row vector times a matrix: Cᵀ = Bᵀ Aᵀ
            a, b, c = b.mT, a.mT, c.mT
            m, n = n, m
        aoffs, boffs, coffs = a.batch_offsets(batch), b.batch_offsets(batch), c.batch_offsets(batch)
        args = (m, k, alpha, a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf, boffs, b.strides[-2], beta, c.buf,
                coffs, c.strides[-2])
        if nb * (one_item + ITEM_COST) < PARALLEL_MNK or threads == 1:
            launch(gemv, 1, *args, 1)
            return
        rparts = max(1, min(threads // nb, m // 16)) if nb < threads else 1
        launch(gemv, min(threads, nb * rparts), *args, rparts)
        return
    if k > 0 and one_item <= DIRECT_MNK[dtype.itemsize]:
        if not b.strides[-1] == c.strides[-1] == 1:
            if a.strides[-2] == c.strides[-2] == 1:  # Cᵀ = Bᵀ Aᵀ reads in place
                a, b, c = b.mT, a.mT, c.mT
                m, n = n, m
        if c.strides[-1] == 1 and b.strides[-1] != 1 and k * n * dtype.itemsize <= DIRECT_B_BYTES:
            b = _rows_contiguous(b, batch)  # one small B (a transposed weight): copied, not packed per call
        if b.strides[-1] == c.strides[-1] == 1 and k * n * dtype.itemsize <= DIRECT_B_BYTES:
            aoffs, boffs, coffs = a.batch_offsets(batch), b.batch_offsets(batch), c.batch_offsets(batch)
            direct = (m, n, k, alpha, a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf, boffs, b.strides[-2], beta,
                      c.buf, coffs, c.strides[-2])
            if nb * (one_item + ITEM_COST) < PARALLEL_MNK or threads == 1:  # one thread
                launch(gemm_direct, 1, *direct, 1)
                return
            rparts = min(-(-m // DIRECT_MR), max(1, threads // nb))
            launch(gemm_direct, min(threads, nb * rparts), *direct, rparts)
            return
    if _tile_use(n, m, bl) > 1.15 * _tile_use(m, n, bl):
        # Cᵀ = Bᵀ Aᵀ fills the MR x NR register tiles better (e.g. n = 16 against NR = 32)
        a, b, c = b.mT, a.mT, c.mT
        m, n = n, m
    kc = min(bl.kc, max(k, 1))
    mc = min(bl.mc, -(-m // bl.mr) * bl.mr)
    nc = min(bl.nc, -(-n // bl.nr) * bl.nr)
    wsize = workspace_size(dtype, kc, mc, nc)
    aoffs, boffs, coffs = a.batch_offsets(batch), b.batch_offsets(batch), c.batch_offsets(batch)
    args = (a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf, boffs, b.strides[-2], b.strides[-1], beta,
            c.buf, coffs, c.strides[-2], c.strides[-1])
    if SHARE_B and nb > 1 and one_item > SMALL_MNK and (boffs == boffs[0]).all():
        # one B for the whole batch (a filter against per-sample columns): pack it once per thread
        parts = 1 if nb * (one_item + ITEM_COST) < PARALLEL_MNK else min(threads, nb)  # one thread for little work
        launch(gemm_batched_shared_b, parts, m, n, k, alpha, a.buf, aoffs, a.strides[-2], a.strides[-1], b.buf,
               int(boffs[0]), b.strides[-2], b.strides[-1], beta, c.buf, coffs, c.strides[-2], c.strides[-1],
               workspace(dtype, wsize * parts), wsize, kc, mc, nc)
        return
    if nb * (one_item + ITEM_COST) < PARALLEL_MNK or threads == 1:
        if nb == 1 and one_item > SMALL_MNK:  # one product: the kernel the threaded case uses, one block
            launch(gemm_blocks, 1, 1, m, n, k, alpha, a.buf, int(aoffs[0]), a.strides[-2], a.strides[-1], b.buf,
                   int(boffs[0]), b.strides[-2], b.strides[-1], beta, c.buf, int(coffs[0]), c.strides[-2],
                   c.strides[-1], workspace(dtype, wsize), wsize, kc, mc, nc)
            return
        launch(gemm_batched, 1, m, n, k, alpha, *args, workspace(dtype, wsize), wsize, kc, mc, nc, SMALL_MNK)
        return
    if nb >= threads or one_item <= SMALL_MNK:
        parts = min(threads, nb)
        launch(gemm_batched, parts, m, n, k, alpha, *args, workspace(dtype, wsize * parts), wsize, kc, mc, nc,
               SMALL_MNK)
        return
    # A few large products: parallelise inside each one instead of across them.
    tm, tn = _thread_grid(-(-m // bl.mr), -(-n // bl.nr), threads)
    work = workspace(dtype, wsize * tm * tn)
    for i in range(nb):
        launch(gemm_blocks, tm * tn, tn, m, n, k, alpha, a.buf, int(aoffs[i]), a.strides[-2], a.strides[-1],
               b.buf, int(boffs[i]), b.strides[-2], b.strides[-1], beta,
               c.buf, int(coffs[i]), c.strides[-2], c.strides[-1], work, wsize, kc, mc, nc)
