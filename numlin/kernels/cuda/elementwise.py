"""Elementwise CUDA kernels over strided descriptors (layout: ``buf[off + sum(idx * strides)]``)."""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64, int32, int64

from ..._strided import Strided
from ._registry import kernel
from .arrays import SIMULATOR, device_key, flat as _flat, strided

__all__ = ["grid_1d", "launch_1d", "scale_2d", "copy_strided", "scale_matrices", "UNARY", "BINARY", "unary",
           "binary", "reduce", "full", "cast", "broadcast_to", "reshape", "transpose", "contiguous"]

_FLOATS = (float32, float64)


def grid_1d(total: int, threads: int = 256, max_blocks: int = 65_535) -> tuple[int, int]:
    """``(blocks, threads)`` for a grid-stride loop over ``total`` items."""
    return max(1, min(max_blocks, -(-total // threads))), threads


def launch_1d(total: int, threads: int = 256) -> tuple[int, int]:
    """The launch of a grid-stride kernel over ``total`` items: :func:`grid_1d` on a GPU; a small
    grid under the CUDA simulator, where every simulated thread is a Python thread (the
    grid-stride loops cover any grid, and two blocks still exercise the block arithmetic)."""
    return (2, 4) if SIMULATOR else grid_1d(total, threads)


@kernel(*[(t[:], int64, int64, int64, int64, int64, t) for t in _FLOATS])
def scale_2d(c, coff, crs, ccs, m, n, beta):
    """``C = beta * C`` on an ``m x n`` strided matrix; ``beta == 0`` writes zeros without reading C.

    One thread per element, grid-stride over ``m * n``.
    """
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for idx in range(start, m * n, step):
        i = idx // n
        j = idx - i * n
        p = coff + i * crs + j * ccs
        if beta == 0:
            c[p] = 0
        else:
            c[p] = beta * c[p]


@cuda.jit(device=True, inline=True)
def _offset(flat, shape, strides, first, stop):
    """Offset of C-ordered index ``flat`` over axes ``first .. stop-1`` of ``shape``."""
    off = 0
    rem = flat
    for d in range(stop - 1, first - 1, -1):
        q = rem // shape[d]
        off += (rem - q * shape[d]) * strides[d]
        rem = q
    return off


@cuda.jit(device=True, inline=True)
def _offsets2(flat, shape, s1, s2):
    """:func:`_offset` over all axes for two stride vectors at once (one division per axis)."""
    o1 = 0
    o2 = 0
    rem = flat
    for d in range(shape.size - 1, -1, -1):
        q = rem // shape[d]
        i = rem - q * shape[d]
        rem = q
        o1 += i * s1[d]
        o2 += i * s2[d]
    return o1, o2


# int sources: astype of integer tensors (the dispatcher compiles any other pair lazily)
@kernel(*[(s[:], int64, int64[:], int64[:], d[:], int64, int64[:], int64) for s in _FLOATS + (int32, int64)
          for d in _FLOATS])
def copy_nd(src, soff, shape, sstrides, dst, doff, dstrides, total):
    """``dst[idx] = src[idx]`` (with dtype conversion) for every index of an N-d ``shape``."""
    for flat in range(cuda.grid(1), total, cuda.gridsize(1)):
        so, do = _offsets2(flat, shape, sstrides, dstrides)
        dst[doff + do] = src[soff + so]


def copy_strided(src: Strided, dst: Strided) -> None:
    """Copy (and convert) ``src`` into ``dst``, two descriptors of one shape."""
    total = int(np.prod(src.shape, dtype=np.int64))
    if total == 0:
        return
    sh, (ss, ds) = _coalesce(tuple(src.shape), tuple(src.strides), tuple(dst.strides))
    blocks, threads = launch_1d(total)
    copy_nd[blocks, threads](src.buf, src.off, _meta(sh), _meta(ss), dst.buf, dst.off, _meta(ds), total)


def scale_matrices(c: Strided, offsets: np.ndarray, beta: float) -> None:
    """``C_t = beta * C_t`` for every matrix ``t`` of a batched descriptor (``offsets`` on the host)."""
    m, n = c.shape[-2:]
    blocks, threads = grid_1d(m * n)
    beta = c.buf.dtype.type(beta)
    for off in offsets:
        scale_2d[blocks, threads](c.buf, int(off), c.strides[-2], c.strides[-1], m, n, beta)


# =========================================================================== autodiff backend
# The interface of ``numlin.kernels.cpu.elementwise`` on numba device arrays: ``unary``,
# ``binary``, ``reduce``, ``broadcast_to``, ``reshape``, ``transpose``, ``UNARY``, ``BINARY``; and
# the array façade's ``full``, ``cast`` and ``contiguous`` (exported by ``numlin.kernels.cuda``:
# on the device they launch kernels, so they live here). Results are new C-contiguous device arrays (numba's
# device arrays cannot express N-d transposed views, so transpose and broadcast_to copy).
#
# One kernel serves every unary rule and one every binary rule: the rule is an integer code
# (uniform across a launch, so the switch costs one predictable branch), operands are read
# through strided descriptors over the output's N-d index (a zero stride for a broadcast axis),
# so broadcasting is fused and nothing is materialised. Axes that are contiguous for every
# operand are merged first, so a plain contiguous operand is a 1-D loop.
#
# The rules are :mod:`numlin.kernels.rules`' (written once for both backends, special values
# documented there), compiled here as inlined device functions; a rule's code is its position in
# ``rules.UNARY`` / ``rules.BINARY``. The kernel adds only the guards that keep the CUDA simulator
# (which runs device code as Python: ``math.exp(1000)`` raises OverflowError, ``math.sin(inf)``
# ValueError) on the device's results: ``exp`` above ``rules.EXP_MAX`` is +inf, ``sin`` / ``cos``
# of +-inf or NaN are NaN.
import math  # noqa: E402

from .. import rules  # noqa: E402

UNARY = {name: code for code, name in enumerate(rules.UNARY)}
BINARY = {name: code for code, name in enumerate(rules.BINARY)}


def _device(rule):
    return cuda.jit(device=True, inline=True)(rule)


# the device rules in rules.py's order, so that the k-th name below (and branch k) is code k
_neg, _exp, _log, _sin, _cos, _tanh, _sqrt, _abs, _sign, _relu, _sigmoid = map(_device, rules.UNARY.values())
_add, _sub, _mul, _div, _pow, _relu_grad, _tanh_grad, _sigmoid_grad, _equal = map(_device, rules.BINARY.values())


@cuda.jit(device=True, inline=True)
def _unary_rule(code, x):
    """Unary rule number ``code`` of ``x``."""
    if code == 0:
        return _neg(x)
    if code == 1:
        if x > rules.EXP_MAX:  # the simulator's math.exp raises OverflowError
            return math.inf
        return _exp(x)
    if code == 2:
        return _log(x)
    if code == 3:
        if x - x != 0:  # +-inf or NaN: the simulator's math.sin(inf) raises ValueError
            return math.nan
        return _sin(x)
    if code == 4:
        if x - x != 0:
            return math.nan
        return _cos(x)
    if code == 5:
        return _tanh(x)
    if code == 6:
        return _sqrt(x)
    if code == 7:
        return _abs(x)
    if code == 8:
        return _sign(x)
    if code == 9:
        return _relu(x)
    return _sigmoid(x)


@cuda.jit(device=True, inline=True)
def _binary_rule(code, a, b):
    """Binary rule number ``code`` of ``a`` and ``b``."""
    if code == 0:
        return _add(a, b)
    if code == 1:
        return _sub(a, b)
    if code == 2:
        return _mul(a, b)
    if code == 3:
        return _div(a, b)
    if code == 4:
        return _pow(a, b)
    if code == 5:
        return _relu_grad(a, b)
    if code == 6:
        return _tanh_grad(a, b)
    if code == 7:
        return _sigmoid_grad(a, b)
    return _equal(a, b)


@kernel(*[(int64, t[:], int64, int64[:], int64[:], t[:], int64) for t in _FLOATS])
def unary_nd(code, x, xoff, shape, xst, out, total):
    """``out[flat] = rule(x[idx])`` over the C-ordered index of ``shape``; ``out`` contiguous."""
    for flat in range(cuda.grid(1), total, cuda.gridsize(1)):
        out[flat] = _unary_rule(code, x[xoff + _offset(flat, shape, xst, 0, shape.size)])


@kernel(*[(int64, t[:], int64, int64[:], t[:], int64, int64[:], int64[:], t[:], int64) for t in _FLOATS])
def binary_nd(code, a, aoff, ast, b, boff, bst, shape, out, total):
    """``out[flat] = rule(a[idx], b[idx])``; broadcast axes have stride 0 in ``ast`` / ``bst``."""
    for flat in range(cuda.grid(1), total, cuda.gridsize(1)):
        ao, bo = _offsets2(flat, shape, ast, bst)
        out[flat] = _binary_rule(code, a[aoff + ao], b[boff + bo])


@kernel(*[(t[:], int64, int64[:], int64[:], int64, t[:], int64, int64, int64) for t in _FLOATS])
def reduce_nd(x, xoff, shape, xst, nk, out, outer, inner, is_max):
    """One thread per output element ``o < outer``: ``shape``/``xst`` list the kept axes (the
    first ``nk``) then the reduced ones; ``out[o]`` = sum (in float64) or max (NaN propagates) of
    the ``inner`` elements of the reduced index."""
    nd = shape.size
    for o in range(cuda.grid(1), outer, cuda.gridsize(1)):
        base = xoff + _offset(o, shape, xst, 0, nk)
        if is_max:
            m = x[base]
            for r in range(inner):
                v = x[base + _offset(r, shape, xst, nk, nd)]
                if v > m or v != v:
                    m = v
                if m != m:
                    break
            out[o] = m
        else:
            s = 0.0
            for r in range(inner):
                s += float64(x[base + _offset(r, shape, xst, nk, nd)])  # explicit: the simulator would otherwise add float32 to float32
            out[o] = s


_RB = 256  # threads per block of reduce_blocks


@kernel(*[(t[:], int64, int64[:], int64[:], int64, t[:], int64, int64, int64) for t in _FLOATS])
def reduce_blocks(x, xoff, shape, xst, nk, out, outer, inner, is_max):
    """:func:`reduce_nd` with one block of ``_RB`` threads per output element (for long reduced
    extents): each thread folds a strided part of the reduced index, then a shared-memory tree."""
    buf = cuda.shared.array(_RB, float64)
    tid = cuda.threadIdx.x
    nd = shape.size
    for o in range(cuda.blockIdx.x, outer, cuda.gridDim.x):  # block-uniform trip count
        base = xoff + _offset(o, shape, xst, 0, nk)
        acc = -math.inf if is_max else 0.0
        for r in range(tid, inner, _RB):
            v = float64(x[base + _offset(r, shape, xst, nk, nd)])
            if is_max:
                if v > acc or v != v:
                    acc = v
            else:
                acc += v
        buf[tid] = acc
        cuda.syncthreads()
        step = _RB // 2
        while step > 0:
            if tid < step:
                v = buf[tid + step]
                if is_max:
                    if v > buf[tid] or v != v:
                        buf[tid] = v
                else:
                    buf[tid] += v
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            out[o] = buf[0]
        cuda.syncthreads()  # buf is reused by the next output


@kernel(*[(t[:], t, int64) for t in _FLOATS])
def fill_flat(buf, value, total):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        buf[i] = value


# --------------------------------------------------------------------------- host side
_META: dict = {}


def _meta(values: tuple):
    """``values`` (non-empty) as an int64 device array, cached per device: kernels get their shapes and
    strides without a host-to-device copy per launch."""
    key = (device_key(), values)
    arr = _META.get(key)
    if arr is None:
        if len(_META) > 1024:
            _META.clear()
        arr = _META[key] = cuda.to_device(np.asarray(values, np.int64))
    return arr


def _coalesce(shape: tuple, *strides: tuple) -> tuple:
    """Drop length-1 axes and merge neighbours that are contiguous for every operand
    (``stride[d] == stride[d+1] * shape[d+1]``); at least one axis."""
    sh: list = []
    sts: list = [[] for _ in strides]
    for d, n in enumerate(shape):
        if n == 1:
            continue
        if sh and all(st[-1] == s[d] * n for st, s in zip(sts, strides)):
            sh[-1] *= n
            for st, s in zip(sts, strides):
                st[-1] = s[d]
            continue
        sh.append(n)
        for st, s in zip(sts, strides):
            st.append(s[d])
    if not sh:
        return (1,), tuple((0,) for _ in strides)
    return tuple(sh), tuple(tuple(st) for st in sts)


def _size(shape: tuple) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _check_float(op: str, x) -> None:
    if np.dtype(x.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{op}: dtype {x.dtype} is not float32 or float64")


def unary(name: str, x):
    """Rule ``name`` (a key of :data:`UNARY`) on every element of device array ``x``; a new array."""
    code = UNARY[name]
    _check_float(name, x)
    shape = tuple(x.shape)
    out = cuda.device_array(shape, x.dtype)
    total = _size(shape)
    if total:
        d = strided(x, writable=False)
        sh, (xs,) = _coalesce(shape, d.strides)
        unary_nd[launch_1d(total)](code, d.buf, d.off, _meta(sh), _meta(xs), _flat(out), total)
    return out


def _broadcast_strides(d: Strided, shape: tuple) -> tuple:
    lead = len(shape) - len(d.shape)
    return (0,) * lead + tuple(0 if n == 1 else s for n, s in zip(d.shape, d.strides))


def binary(name: str, a, b):
    """Rule ``name`` (a key of :data:`BINARY`) with numpy broadcasting fused into the kernel;
    ``a`` and ``b`` share a float dtype."""
    code = BINARY[name]
    _check_float(name, a)
    if a.dtype != b.dtype:
        raise TypeError(f"{name}: operands have dtypes {a.dtype} and {b.dtype}; cast them to one")
    try:
        shape = tuple(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))
    except ValueError:
        raise ValueError(f"{name}: operands could not be broadcast together with shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}") from None
    out = cuda.device_array(shape, a.dtype)
    total = _size(shape)
    if total:
        da, db = strided(a, writable=False), strided(b, writable=False)
        sh, (sa, sb) = _coalesce(shape, _broadcast_strides(da, shape), _broadcast_strides(db, shape))
        binary_nd[launch_1d(total)](code, da.buf, da.off, _meta(sa), db.buf, db.off, _meta(sb), _meta(sh),
                                  _flat(out), total)
    return out


def reduce(name: str, x, axes: tuple, keepdims: bool):
    """``sum`` (accumulated in float64) or ``max`` (NaN propagates) of ``x`` over ``axes``
    (normalised, non-negative, unique); a zero-size ``max`` raises ValueError. One thread per
    output element, or one block per output element when the reduced extent is long."""
    if name not in ("sum", "max"):
        raise ValueError(f"reduce: unknown reduction {name!r}")
    _check_float(name, x)
    shape = tuple(x.shape)
    axes = tuple(axes)
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    kept_shape = tuple(shape[i] for i in kept)
    outer, inner = _size(kept_shape), _size(tuple(shape[i] for i in axes))
    if name == "max" and inner == 0:
        raise ValueError("max: zero-size reduction has no identity")
    out_shape = tuple(1 if i in axes else shape[i] for i in range(len(shape))) if keepdims else kept_shape
    out = cuda.device_array(out_shape, x.dtype)
    if outer:
        if inner == 0:
            fill_flat[launch_1d(outer)](_flat(out), x.dtype.type(0), outer)
        else:
            d = strided(x, writable=False)
            ksh, (kst,) = _coalesce(kept_shape, tuple(d.strides[i] for i in kept))
            rsh, (rst,) = _coalesce(tuple(shape[i] for i in axes), tuple(d.strides[i] for i in axes))
            args = (d.buf, d.off, _meta(ksh + rsh), _meta(kst + rst), len(ksh), _flat(out), outer, inner,
                    int(name == "max"))
            if inner >= 4 * _RB:  # long reductions: a block per output element
                reduce_blocks[min(outer, 65_535), _RB](*args)
            else:
                reduce_nd[launch_1d(outer)](*args)
    return out


def full(shape: tuple, value: float, dtype):
    """A new device array of ``shape`` filled with ``value``."""
    shape = tuple(int(s) for s in shape)
    dt = np.dtype(dtype)
    out = cuda.device_array(shape, dt)
    total = _size(shape)
    if total:
        fill_flat[launch_1d(total)](_flat(out), dt.type(value), total)
    return out


def cast(x, dtype):
    """``x`` in ``dtype``: ``x`` itself when it already is, else a new C-ordered device array
    converted on the device (integer sources convert as numpy)."""
    dt = np.dtype(dtype)
    if x.dtype == dt:
        return x
    out = cuda.device_array(tuple(x.shape), dt)
    if x.size:
        copy_strided(strided(x, writable=False), strided(out, writable=True))
    return out


def _copy_of(src: Strided, shape: tuple, dtype):
    out = cuda.device_array(shape, dtype)
    if _size(shape):
        copy_strided(src, strided(out, writable=True))
    return out


def broadcast_to(x, shape: tuple):
    """``x`` broadcast to ``shape``, materialised (a new C-ordered device array)."""
    shape = tuple(int(s) for s in shape)
    xs = tuple(x.shape)
    if tuple(np.broadcast_shapes(xs, shape)) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {xs} to {shape}")
    d = strided(x, writable=False)
    return _copy_of(d._replace(shape=shape, strides=_broadcast_strides(d, shape)), shape, x.dtype)


def transpose(x, perm: tuple):
    """``x`` with its axes permuted: a new C-contiguous device array."""
    perm = tuple(int(p) for p in perm)
    if sorted(perm) != list(range(len(x.shape))):
        raise ValueError(f"transpose: {perm} is not a permutation of {len(x.shape)} axes")
    d = strided(x, writable=False)
    shape = tuple(d.shape[p] for p in perm)
    return _copy_of(d._replace(shape=shape, strides=tuple(d.strides[p] for p in perm)), shape, x.dtype)


def _is_c_contiguous(x) -> bool:
    expect = x.dtype.itemsize
    for d, s in zip(reversed(tuple(x.shape)), reversed(tuple(x.strides))):
        if d != 1 and s != expect:
            return False
        expect *= d
    return True


def contiguous(x):
    """``x`` in C order: ``x`` itself if it already is, else a copy made on the device."""
    if _is_c_contiguous(x):
        return x
    out = cuda.device_array(tuple(x.shape), x.dtype)
    copy_strided(strided(x, writable=False), strided(out, writable=True))
    return out


def reshape(x, shape):
    """``x`` with a new shape (one entry may be -1), as numpy; a view of ``x`` when it is
    C-contiguous, else of a contiguous copy. ValueError when the sizes differ."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    shape = tuple(int(s) for s in shape)
    size = _size(tuple(x.shape))
    if shape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension")
    if any(s < -1 for s in shape):
        raise ValueError(f"negative dimensions not allowed in {shape}")
    if -1 in shape:
        known = _size(tuple(s for s in shape if s != -1))
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if _size(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    if shape == tuple(x.shape):
        return x
    return contiguous(x).reshape(*shape) if shape else contiguous(x).reshape(())
