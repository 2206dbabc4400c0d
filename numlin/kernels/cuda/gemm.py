"""CUDA GEMM: shared-memory block tiles, register tiles, double buffering, vector loads.

Layout every kernel here expects: strided descriptors as on the CPU (``numlin._strided``): element
``(i, p)`` of batch matrix ``t`` of A is ``a[aoffs[t] + i*ars + p*acs]``; likewise B and C.

One thread block computes a ``BM x BN`` tile of C from ``BK``-deep slices of A and B staged in
shared memory (two buffers: the global loads of slice ``s+1`` are issued before slice ``s`` is
multiplied). Each of its ``(BM/TM) * (BN/TN)`` threads owns a ``TM x TN`` register tile, split in
four ``TM/2 x TN/2`` quadrants ``BM/2`` rows and ``BN/2`` columns apart so that its shared-memory
reads are 16-byte vectors without bank conflicts. A slice is stored transposed
(``As[k][m]``, ``Bs[k][n]``), rows padded by 16 bytes.

Numba has neither register arrays indexed by unrolled loops nor vector types, so the kernel
source is generated (:func:`_kernel_source`): the accumulators are ``TM*TN`` scalar locals
(registers), every loop over the register tile is unrolled, and 16-byte loads are LLVM vector
loads emitted by small intrinsics (:func:`_vload`), with plain-Python equivalents under the
simulator. The grid is ``(ceil(n/BN), ceil(m/BM), batch)``; edge tiles use the same code with
predicated (bounds-checked, zero-filled) loads and guarded stores.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import cuda, float32, float64, int32, int64, types

from ..._config import config
from ..._strided import Strided, gemm_dims
from ._registry import kernel
from .arrays import SIMULATOR, device_key
from .elementwise import scale_matrices

__all__ = ["Tiles", "tiles", "matmul_into", "matmul_sum_into", "gather_into", "KERNELS_BY_DTYPE"]


# --------------------------------------------------------------------------- tile sizes
@dataclass(frozen=True)
class Tiles:
    """Block tile ``BM x BN x BK`` and per-thread register tile ``TM x TN`` for one dtype."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    vec: int  # elements per 16-byte vector load

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    def shared_bytes(self, itemsize: int) -> int:
        return 2 * self.bk * ((self.bm + self.vec) + (self.bn + self.vec)) * itemsize


#: One place for the tile sizes: 128 x 128 block tiles, 8 x 8 per thread, 256 threads. On an H200
#: float32 gains 11% from a 16-deep slice (half the barriers per FMA; benchmarks/README.md);
#: float64 keeps k = 8 (a 16-deep double slice would pass the 48 KiB static shared memory).
#: For m <= 64 (e.g. the 64 filters of a convolution) a 128-row tile would idle half its threads:
#: 64 x 128 tiles with 128 threads are used instead.
_TILES_SHORT = {
    "float32": Tiles(bm=64, bn=128, bk=16, tm=8, tn=8, vec=4),
    "float64": Tiles(bm=64, bn=128, bk=8, tm=8, tn=8, vec=2),
}
_TILES = {
    "float32": Tiles(bm=128, bn=128, bk=16, tm=8, tn=8, vec=4),
    "float64": Tiles(bm=128, bn=128, bk=8, tm=8, tn=8, vec=2),
}


@functools.lru_cache(maxsize=None)
def _checked(name: str, short: bool) -> Tiles:
    t = (_TILES_SHORT if short else _TILES)[name]
    if not SIMULATOR:
        limit = cuda.get_current_device().MAX_SHARED_MEMORY_PER_BLOCK
        if t.shared_bytes(np.dtype(name).itemsize) > limit:
            raise RuntimeError(f"GEMM tiles {t} need more shared memory than this GPU's {limit} bytes per block")
    return t


def sm_count() -> int:
    """Streaming multiprocessors of the current device (132 on an H100/H200; also under the
    simulator, which has no such attribute, so that launch choices match the real card)."""
    return _sm_count(device_key())


@functools.lru_cache(maxsize=None)
def _sm_count(device: int) -> int:
    return int(getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", None) or 132)


def tiles(dtype, m: int = 1 << 30) -> Tiles:
    """Tile sizes for ``dtype`` and ``m`` output rows, checked once against the current device's
    shared memory per block."""
    return _checked(np.dtype(dtype).name, m <= 64)


# --------------------------------------------------------------------------- vector loads
def _vload(n: int):
    """``vload(arr, i) -> (arr[i], ..., arr[i+n-1])`` as one ``n``-wide aligned vector load."""
    if SIMULATOR:
        if n == 4:
            return lambda arr, i: (arr[i], arr[i + 1], arr[i + 2], arr[i + 3])
        return lambda arr, i: (arr[i], arr[i + 1])

    from numba.cuda.extending import intrinsic

    @intrinsic
    def vload(typingctx, arr, idx):
        if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
            return None
        ret = types.UniTuple(arr.dtype, n)

        def codegen(context, builder, signature, args):
            aty, ity = signature.args
            ary = context.make_array(aty)(context, builder, args[0])
            i = context.cast(builder, args[1], ity, types.intp)
            ptr = builder.gep(ary.data, [i])
            t = context.get_value_type(aty.dtype)
            vt = ir.VectorType(t, n)
            align = n * np.dtype(str(aty.dtype)).itemsize
            v = builder.load(builder.bitcast(ptr, vt.as_pointer()), align=align)
            return context.make_tuple(builder, ret, [builder.extract_element(v, ir.Constant(ir.IntType(32), k))
                                                     for k in range(n)])

        return ret(arr, idx), codegen

    return vload


# --------------------------------------------------------------------------- kernel source
def _kernel_source(t: Tiles, name: str, gather: bool = False) -> str:
    """Python source of the GEMM kernel for tiles ``t`` (see the module docstring).

    With ``gather`` the kernel is an implicit-GEMM convolution: B is never stored. Element
    ``(kk, j)`` of batch item ``bz`` is ``b[boffs[bz] + t1off[u] + t2off[j]]``, ``u = t1base[bz] +
    kk``, when the input row ``t1h[u] + t2h[j]`` lies in ``[0, H)`` and the column ``t1w[u] +
    t2w[j]`` in ``[0, W)``, else zero (padding). ``t1hw``/``t2hw`` hold ``h`` and ``w`` packed as
    ``(h + 2**14) * 2**16 + (w + 2**15)``; ``t1*`` extend a whole ``BK`` slice past the last
    ``u`` used. The forward pass has filter taps on ``kk`` and output pixels on ``j``; the filter
    gradient the other way round, with ``t1base`` cutting the pixels into split-K pieces. Each
    thread stages one column ``j`` of B (its ``t2`` entries read once) and ``LB`` consecutive
    ``kk`` of it.
    """
    BM, BN, BK, TM, TN, V = t.bm, t.bn, t.bk, t.tm, t.tn, t.vec
    NT = t.threads
    TX = BN // TN  # threads along n
    LDA, LDB = BM + V, BN + V  # padded shared rows (16 bytes)
    HM, HN, QM, QN = BM // 2, BN // 2, TM // 2, TN // 2
    # each thread stages LA elements of A and LB of B per slice
    LA, LB = BM * BK // NT, BK * BN // NT
    if not (LA % V == 0 and LB % V == 0 and BK % LA == 0 and BK % LB == 0 and QM % V == 0 and QN % V == 0
            and BM % TM == 0 and BN % TN == 0):
        raise ValueError(f"unsupported tile shape {t}")
    KA = BK // LA  # threads per row of A in k-major mapping
    MA = BM // LA  # threads per k of A in m-major mapping
    NB = BN // LB
    KB = BK // LB
    L = []
    w = L.append
    if gather:
        w(f"def {name}(m, n, k, alpha, beta, a, aoffs, ars, acs, avec, b, boffs, t1base, t1off, t1hw, t2off, t2hw, "
          "H, W, c, coffs, crs, ccs):")
    else:
        w(f"def {name}(m, n, k, alpha, beta, a, aoffs, ars, acs, avec, b, boffs, brs, bcs, bvec, c, coffs, crs, ccs):")
    align = "" if SIMULATOR else ", alignment=16"  # the simulator rejects the keyword
    w(f"    As = cuda.shared.array({2 * BK * LDA}, dtype{align})")
    w(f"    Bs = cuda.shared.array({2 * BK * LDB}, dtype{align})")
    w("    tid = cuda.threadIdx.x")
    w(f"    tx = tid % {TX}")
    w(f"    ty = tid // {TX}")
    w(f"    bm = cuda.blockIdx.y * {BM}")
    w(f"    bn = cuda.blockIdx.x * {BN}")
    w("    zero = dtype(0)")
    # staging maps: A k-major (acs == 1 or general) or m-major (ars == 1); B n-major or k-major
    w("    amaj = ars == 1 and acs != 1")
    w("    bkmaj = True" if gather else "    bkmaj = brs == 1 and bcs != 1")
    w("    if amaj:")
    w(f"        ar = (tid % {MA}) * {LA}")
    w(f"        ak = tid // {MA}")
    w("    else:")
    w(f"        ar = tid // {KA}")
    w(f"        ak = (tid % {KA}) * {LA}")
    w("    if bkmaj:")
    w(f"        bc = tid // {KB}")
    w(f"        bk = (tid % {KB}) * {LB}")
    w("    else:")
    w(f"        bc = (tid % {NB}) * {LB}")
    w(f"        bk = tid // {NB}")
    if gather:  # this thread's column of B: one output pixel (forward) for every slice and batch item
        w("    gj = bn + bc")
        w("    jok = gj < n")
        w("    if jok:")
        w("        jof = t2off[gj]")
        w("        jhw = t2hw[gj]")
        w("        jh = (jhw >> 16) - 16384")
        w("        jw = (jhw & 65535) - 32768")
        w("    else:")
        w("        jof = 0")
        w("        jh = 0")
        w("        jw = 0")
    w("    for bz in range(cuda.blockIdx.z, coffs.size, cuda.gridDim.z):")
    w("        aoff = aoffs[bz]")
    w("        boff = boffs[bz]")
    w("        coff = coffs[bz]")
    if gather:
        w("        kb = t1base[bz]")
    for i in range(TM):
        w("        " + " = ".join(f"c{i}_{j}" for j in range(TN)) + " = zero")

    def load(s: str, arr: str, reg: str, n: int, flag: str, vec_ok: str, src: str, step: str, ok):
        """``n`` elements ``arr[src + q*step]`` into registers ``reg0..``: 16-byte vectors when
        ``flag`` and ``vec_ok`` hold (all in bounds), else predicated scalar loads (``ok(q)``)."""
        w(f"{s}src = {src}")
        w(f"{s}if {flag} and {vec_ok}:")
        for q in range(0, n, V):
            w(f"{s}    " + ", ".join(f"{reg}{q + e}" for e in range(V)) + f" = vload({arr}, src + {q})")
        w(f"{s}else:")
        for q in range(n):
            w(f"{s}    {reg}{q} = {arr}[src + {q}{step}] if {ok(q)} else zero")

    def stage_loads(indent: str, k0: str):
        """Global -> registers for the slice starting at k index ``k0``: xa*, xb*.

        Each operand has two staging maps, chosen by which of its strides is 1 (the vectors run
        along that axis): A along m (``amaj``) or k; B along k (``bkmaj``) or n."""
        s = indent
        w(f"{s}gr = bm + ar")
        w(f"{s}gka = {k0} + ak")
        w(f"{s}if amaj:")
        load(s + "    ", "a", "xa", LA, "avec", f"gr + {LA - 1} < m and gka < k", "aoff + gr + gka * acs", "",
             lambda q: f"gr + {q} < m and gka < k")
        w(f"{s}else:")
        load(s + "    ", "a", "xa", LA, "avec", f"gr < m and gka + {LA - 1} < k", "aoff + gr * ars + gka * acs",
             " * acs", lambda q: f"gr < m and gka + {q} < k")
        w(f"{s}gc = bn + bc")
        w(f"{s}gkb = {k0} + bk")
        if gather:
            for q in range(LB):
                w(f"{s}khw = t1hw[kb + gkb + {q}]")
                w(f"{s}hh = jh + (khw >> 16) - 16384")
                w(f"{s}ww = jw + (khw & 65535) - 32768")
                w(f"{s}xb{q} = b[boff + t1off[kb + gkb + {q}] + jof] "
                  f"if jok and gkb + {q} < k and hh >= 0 and hh < H and ww >= 0 and ww < W else zero")
            return
        w(f"{s}if bkmaj:")
        load(s + "    ", "b", "xb", LB, "bvec", f"gc < n and gkb + {LB - 1} < k", "boff + gkb + gc * bcs", "",
             lambda q: f"gc < n and gkb + {q} < k")
        w(f"{s}else:")
        load(s + "    ", "b", "xb", LB, "bvec", f"gc + {LB - 1} < n and gkb < k", "boff + gkb * brs + gc * bcs",
             " * bcs", lambda q: f"gc + {q} < n and gkb < k")

    def stage_stores(indent: str, buf: str):
        """Registers -> shared buffer ``buf`` (0 or 1)."""
        s = indent
        w(f"{s}sa = ({buf}) * {BK * LDA}")
        w(f"{s}if amaj:")
        for q in range(LA):
            w(f"{s}    As[sa + ak * {LDA} + ar + {q}] = xa{q}")
        w(f"{s}else:")
        for q in range(LA):
            w(f"{s}    As[sa + (ak + {q}) * {LDA} + ar] = xa{q}")
        w(f"{s}sb = ({buf}) * {BK * LDB}")
        w(f"{s}if bkmaj:")
        for q in range(LB):
            w(f"{s}    Bs[sb + (bk + {q}) * {LDB} + bc] = xb{q}")
        w(f"{s}else:")
        for q in range(LB):
            w(f"{s}    Bs[sb + bk * {LDB} + bc + {q}] = xb{q}")

    w("        nk = (k + %d) // %d" % (BK - 1, BK))
    w("        if nk > 0:")
    stage_loads("            ", "0")
    stage_stores("            ", "0")
    w("        cuda.syncthreads()")
    w("        for s in range(nk):")
    w("            cur = s % 2")
    w("            if s + 1 < nk:")
    stage_loads("                ", f"(s + 1) * {BK}")
    w(f"            ba = cur * {BK * LDA} + ty * {QM}")
    w(f"            bb = cur * {BK * LDB} + tx * {QN}")
    for kk in range(BK):
        for half, off in ((0, 0), (1, HM)):
            for q in range(0, QM, V):
                names = ", ".join(f"ra{half * QM + q + e}" for e in range(V))
                w(f"            {names} = vload(As, ba + {kk * LDA + off + q})")
        for half, off in ((0, 0), (1, HN)):
            for q in range(0, QN, V):
                names = ", ".join(f"rb{half * QN + q + e}" for e in range(V))
                w(f"            {names} = vload(Bs, bb + {kk * LDB + off + q})")
        for i in range(TM):
            for j in range(TN):
                w(f"            c{i}_{j} += ra{i} * rb{j}")
    w("            if s + 1 < nk:")
    stage_stores("                ", "1 - cur")
    w("            cuda.syncthreads()")
    # epilogue
    for i in range(TM):
        row = f"bm + ty * {QM} + {i if i < QM else HM + i - QM}"
        w(f"        r = {row}")
        w("        if r < m:")
        w("            base = coff + r * crs")
        for j in range(TN):
            col = f"bn + tx * {QN} + {j if j < QN else HN + j - QN}"
            w(f"            q = {col}")
            w("            if q < n:")
            w("                p = base + q * ccs")
            w(f"                c[p] = alpha * c{i}_{j} if beta == 0 else alpha * c{i}_{j} + beta * c[p]")
    w("        cuda.syncthreads()")
    return "\n".join(L) + "\n"


def _build(dtype_name: str, t: Tiles, gather: bool = False):
    """Generate, exec and declare (``@kernel``) the GEMM kernel for one dtype and tile shape
    (``gather``: the implicit-GEMM convolution variant, see :func:`_kernel_source`)."""
    nbt = float32 if dtype_name == "float32" else float64
    name = ("conv_gather_" if gather else "gemm_tiled_") + dtype_name
    if t != _TILES[dtype_name]:
        name += f"_{t.bm}x{t.bn}x{t.bk}_{t.tm}x{t.tn}"
    registered = t in (_TILES[dtype_name], _TILES_SHORT[dtype_name])
    src = _kernel_source(t, name, gather)
    ns = {"cuda": cuda, "dtype": nbt, "vload": _vload(t.vec)}
    exec(compile(src, f"<numlin.kernels.cuda.gemm:{name}>", "exec"), ns)
    fn = ns[name]
    fn.__module__ = __name__
    fn.__qualname__ = name
    fn.__source__ = src
    if gather:
        sig = (int64, int64, int64, nbt, nbt, nbt[:], int64[:], int64, int64, types.boolean,
               nbt[:], int64[:], int64[:], int64[:], int32[:], int64[:], int32[:], int64, int64,
               nbt[:], int64[:], int64, int64)
    else:
        sig = (int64, int64, int64, nbt, nbt, nbt[:], int64[:], int64, int64, types.boolean,
               nbt[:], int64[:], int64, int64, types.boolean, nbt[:], int64[:], int64, int64)
    return kernel(sig)(fn) if registered else cuda.jit(fn)


#: the kernel of each dtype at its default tiles (compiled lazily, at first launch)
KERNELS_BY_DTYPE = {name: _build(name, t) for name, t in _TILES.items()}
#: the others, by (dtype name, tiles, gather): short tiles and the implicit-GEMM convolution
_variants: dict = {(name, t, False): _build(name, t) for name, t in _TILES_SHORT.items()}
_variants.update({(name, t, True): _build(name, t, True) for tl in (_TILES, _TILES_SHORT) for name, t in tl.items()})
gemm_tiled_float32 = KERNELS_BY_DTYPE["float32"]
gemm_tiled_float64 = KERNELS_BY_DTYPE["float64"]


def _kernel_for(dtype: np.dtype, t: Tiles, gather: bool = False):
    if t == _TILES[dtype.name] and not gather:
        return KERNELS_BY_DTYPE[dtype.name]
    key = (dtype.name, t, gather)
    if key not in _variants:
        _variants[key] = _build(dtype.name, t, gather)
    return _variants[key]


# --------------------------------------------------------------------------- launch
def _aligned(d: Strided, offsets: np.ndarray, vec: int, contiguous_axis: int) -> bool:
    """Whether 16-byte vector loads along ``contiguous_axis`` (-1 or -2) are legal for ``d``."""
    st = d.strides
    other = -2 if contiguous_axis == -1 else -1
    if st[contiguous_axis] != 1 or st[other] % vec:
        return False
    if SIMULATOR:
        return bool(np.all(offsets % vec == 0))
    ptr = d.buf.__cuda_array_interface__["data"][0]
    return ptr % 16 == 0 and bool(np.all(offsets % vec == 0))


def launch_config(t: Tiles, m: int, n: int, batch: int) -> tuple[tuple[int, int, int], int]:
    """``(grid, threads)`` for a ``batch x m x n`` output: one block per ``BM x BN`` tile, batch
    on grid z (capped at 65 535; the kernel strides over the rest)."""
    gz = min(batch, 65_535)
    return (math.ceil(n / t.bn), math.ceil(m / t.bm), gz), t.threads


def _output_offsets(c: Strided, m: int, n: int, k: int, nb: int, alpha: float, beta: float):
    """The batch offsets of ``c`` for a GEMM launch, or None when there is nothing to multiply:
    an empty output, or ``k == 0`` / ``alpha == 0`` (then ``C = beta * C`` here)."""
    if nb == 0 or m == 0 or n == 0:
        return None
    coffs = c.batch_offsets(tuple(c.shape[:-2]))
    if k == 0 or alpha == 0:
        scale_matrices(c, coffs, beta)
        return None
    return coffs


def matmul_into(a: Strided, b: Strided, c: Strided, alpha: float = 1.0, beta: float = 0.0, *,
                tile: Tiles | None = None) -> None:
    """``C = alpha * A @ B + beta * C`` on the device over descriptors of one float dtype.

    ``tile`` overrides the tile shape (for tuning; see ``benchmarks/gpu_bench.py``). More row
    tiles than a grid's y dimension takes (65 535) run as several launches over row ranges.
    """
    m, n, k, batch, nb = gemm_dims(a, b, c)
    rows = config.cuda_gemm_max_grid_y * (tile or tiles(np.dtype(c.buf.dtype), m)).bm
    if m > rows:  # e.g. a pointwise NHWC convolution of > 8.4M pixels: row ranges
        for r0 in range(0, m, rows):
            mm = min(rows, m - r0)
            a_r = a._replace(off=a.off + r0 * a.strides[-2], shape=a.shape[:-2] + (mm, k))
            c_r = c._replace(off=c.off + r0 * c.strides[-2], shape=c.shape[:-2] + (mm, n))
            matmul_into(a_r, b, c_r, alpha, beta, tile=tile)
        return
    coffs = _output_offsets(c, m, n, k, nb, alpha, beta)
    if coffs is None:
        return
    dtype = np.dtype(c.buf.dtype)
    aoffs, boffs = a.batch_offsets(batch), b.batch_offsets(batch)
    t = tile or tiles(dtype, m)
    amaj = a.strides[-2] == 1 and a.strides[-1] != 1
    bkmaj = b.strides[-2] == 1 and b.strides[-1] != 1
    avec = _aligned(a, aoffs, t.vec, -2 if amaj else -1)
    bvec = _aligned(b, boffs, t.vec, -2 if bkmaj else -1)
    grid, threads = launch_config(t, m, n, nb)
    fn = _kernel_for(dtype, t)
    st = dtype.type
    fn[grid, threads](m, n, k, st(alpha), st(beta), a.buf, _device(aoffs), a.strides[-2], a.strides[-1], avec,
                      b.buf, _device(boffs), b.strides[-2], b.strides[-1], bvec,
                      c.buf, _device(coffs), c.strides[-2], c.strides[-1])


_offsets_cache: dict = {}


def _split_k(blocks: int, k: int, bk: int) -> int:
    """Pieces to cut a reduction of length ``k`` into so that ``blocks`` thread blocks become at
    least two per SM: the largest divisor of ``k`` up to that factor whose pieces keep at least
    four ``bk``-deep slices (1 when none, or when the grid is already full)."""
    want = min(64, -(-2 * sm_count() // max(blocks, 1)))
    for d in range(want, 1, -1):
        if k % d == 0 and k // d >= 4 * bk:
            return d
    return 1


def matmul_sum_into(a: Strided, b: Strided, c: Strided, beta: float = 0.0) -> None:
    """``C = beta * C + sum_t A[t] @ B[t]`` over the leading axis of ``a`` and ``b`` (``a``
    ``(nb, ..., m, k)``, ``b`` ``(nb, ..., k, n)``; ``c`` ``(..., m, n)`` C-contiguous, ``beta`` 0
    or 1): one batched GEMM into per-product partials, then one reduction kernel over them.

    A short output (a convolution's filter gradient: 64 x 576 per group) gives few thread blocks
    per product, so the reduction axis is also cut into equal pieces (split-K) until the grid
    has about two blocks per SM; the pieces are further batch entries of the same launch."""
    from .arrays import workspace
    from .buffers import sum_batch

    if beta not in (0, 1):
        raise ValueError(f"matmul_sum_into: beta must be 0 or 1 on the GPU, got {beta}")
    (m, k), n, nb = a.shape[-2:], b.shape[-1], a.shape[0]
    shape = tuple(c.shape)
    size = int(np.prod(shape, dtype=np.int64))
    t = tiles(np.dtype(c.buf.dtype), m)
    grid, _ = launch_config(t, m, n, nb * int(np.prod(shape[:-2], dtype=np.int64)))
    split = _split_k(grid[0] * grid[1] * grid[2], k, t.bk)
    if split > 1:  # (nb, ..., m, k) -> (nb, split, ..., m, k/split); B alike along its rows
        kp = k // split
        a = Strided(a.buf, a.off, (nb, split) + a.shape[1:-1] + (kp,),
                    (a.strides[0], kp * a.strides[-1]) + a.strides[1:])
        b = Strided(b.buf, b.off, (nb, split) + b.shape[1:-2] + (kp, b.shape[-1]),
                    (b.strides[0], kp * b.strides[-2]) + b.strides[1:])
    parts = nb * split
    part = workspace(c.buf.dtype, parts * size, "gemm.sum")
    strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
    pshape = ((nb, split) if split > 1 else (nb,)) + shape
    pstrides = ((split * size, size) if split > 1 else (size,)) + strides
    matmul_into(a, b, Strided(part, 0, pshape, pstrides), 1.0, 0.0)
    sum_batch(part, c.buf[c.off:c.off + size], parts, accumulate=beta == 1)


#: deepest slice (``BK``) the gather kernel may use: its tables are padded by this much
GATHER_MAX_BK = 32


def gather_into(a: Strided, x, boffs: np.ndarray, tables: tuple, H: int, W: int, c: Strided, *, n: int, k: int,
                t1base: np.ndarray | None = None, alpha: float = 1.0, beta: float = 0.0,
                tile: Tiles | None = None) -> None:
    """``C = alpha * A @ B + beta * C`` with B gathered from the flat array ``x`` (the implicit-
    GEMM convolution; ``tables = (t1off, t1hw, t2off, t2hw)`` on the device and the element rule
    in :func:`_kernel_source`). ``boffs`` holds each batch matrix's offset into ``x`` and
    ``t1base`` (default 0) its first ``t1`` entry; ``c``'s batch dims (C order) number the
    matrices, ``a`` broadcasts over them. 128-row tiles give way to 64-row ones when their grid
    would have fewer than two blocks per SM; ``tile`` overrides the choice (for tuning, as in
    :func:`matmul_into`)."""
    m = a.shape[-2]
    batch = tuple(c.shape[:-2])
    nb = int(np.prod(batch, dtype=np.int64))
    coffs = _output_offsets(c, m, n, k, nb, alpha, beta)
    if coffs is None:
        return
    dtype = np.dtype(c.buf.dtype)
    if len(boffs) != nb or (t1base is not None and len(t1base) != nb):
        raise ValueError(f"gather_into: {nb} matrices but {len(boffs)} x offsets"
                         + ("" if t1base is None else f" and {len(t1base)} table bases"))
    aoffs = a.batch_offsets(batch)
    t = tile or tiles(dtype, m)
    if t.bk > GATHER_MAX_BK:
        raise ValueError(f"gather_into: the index tables are padded for slices of at most {GATHER_MAX_BK}, "
                         f"got tiles {t}")
    if tile is None and t.bm > 64 and math.prod(launch_config(t, m, n, nb)[0]) < 2 * sm_count():
        t = tiles(dtype, 64)
    amaj = a.strides[-2] == 1 and a.strides[-1] != 1
    avec = _aligned(a, aoffs, t.vec, -2 if amaj else -1)
    grid, threads = launch_config(t, m, n, nb)
    st = dtype.type
    _kernel_for(dtype, t, True)[grid, threads](
        m, n, k, st(alpha), st(beta), a.buf, _device(aoffs), a.strides[-2], a.strides[-1], avec,
        x, _device(np.ascontiguousarray(boffs, np.int64)),
        _device(np.zeros(nb, np.int64) if t1base is None else np.ascontiguousarray(t1base, np.int64)),
        *tables, H, W, c.buf, _device(coffs), c.strides[-2], c.strides[-1])


def _device(offsets: np.ndarray):
    """Batch offsets on the device, cached by value (and device): a synchronous host-to-device
    copy per call would stall the queue (repeated shapes, e.g. every layer of a training step,
    copy once)."""
    key = (device_key(), offsets.tobytes())
    dev = _offsets_cache.get(key)
    if dev is None:
        if len(_offsets_cache) > 1024:
            _offsets_cache.clear()
        dev = _offsets_cache[key] = cuda.to_device(offsets)
    return dev
