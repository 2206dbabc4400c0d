"""The micro-kernel: an ``MR x NR`` register tile generated as LLVM IR, in three variants.

BLIS's ``kernels/`` layer. The ``MR x NR`` accumulators are ``MR * NR/VW`` LLVM vectors (``VW``
lanes, :func:`..blocking.blocking`) updated by ``llvm.fma`` with A broadcast from memory, so they
stay in the vector registers (ymm/zmm) through the ``kc`` loop (the assembly is described in
``benchmarks/README.md``, CPU GEMM log). The intrinsics are inlined into every kernel that calls
them, in this package and in the convolution kernels (:mod:`..conv`), so ``MR``, ``NR`` and ``VW`` are compile-time
constants of those kernels: the cache keeps kernels of other tiles apart, and an edit here
invalidates the cached kernels of every file that links this one in (:mod:`.._cache`).

Variants: packed A and B (:func:`_micro_kernel`, the layout of :mod:`.pack`), B read in place
through a table of row offsets with the tile's vectors at run-time strides
(:func:`_micro_kernel_split`: the convolutions' shifted copies, a vector apart within a sample
or a sample apart), and unpacked, masked operands for small products (:func:`_micro_kernel_direct`).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.np.numpy_support import as_dtype

from .._jit import intrinsic
from ..blocking import DIRECT_MR, blocking, isa

__all__ = ["_micro_kernel", "_micro_kernel_split", "_micro_kernel_direct", "_tile_shape",
           "_vector_width", "_load", "_store", "_splat", "_vector_fma"]


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


def _micro_kernel_codegen(dtype, mr, nv, direct, split=False):
    """LLVM IR for an ``mr x nv*vw`` register tile: ``C = alpha * A @ B + beta * C``.

    Packed (``direct=False``): A element (i, p) at ``a[aoff + p*mr + i]``, B vector j of row p at
    ``b[boff + p*nr + j*vw]``, full tile stored. Split: A packed as before, vector j of B row p read
    in place at ``b[boff + offs[ooff + p] + j*bvs]`` (a table of row offsets; unaligned loads) and
    of C row i at ``+ j*cvs`` (runtime strides: ``vw`` for a tile's pixels in one sample, or the
    vectors of a tile in different samples).
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
                if split:
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
def _micro_kernel_split(typingctx, kc, ap, aoff, b, boff, offs, ooff, bvs, cb, coff, crs, cvs, alpha, beta):
    """:func:`_micro_kernel` with B read in place and the tile's ``NR/VW`` vectors at run-time
    strides: vector ``j`` of B row ``p`` is ``b[boff + offs[ooff + p] + j*bvs ...]`` (VW elements,
    any alignment; ``offs``: a table of row offsets) and of C row ``i`` is
    ``cb[coff + i*crs + j*cvs ...]``. ``bvs = cvs = VW``: NR consecutive pixels; a sample's
    stride: one sample per vector (a convolution's 4x4 planes)."""
    dtype = as_dtype(ap.dtype)
    bl = blocking(dtype)
    sig = types.void(kc, ap, aoff, b, boff, offs, ooff, bvs, cb, coff, crs, cvs, alpha, beta)
    return sig, _micro_kernel_codegen(dtype, bl.mr, bl.nr // bl.vw, direct=False, split=True)


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
