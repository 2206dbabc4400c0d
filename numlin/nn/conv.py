"""2-D convolution (cross-correlation) front-ends for host and device arrays.

:func:`conv2d`, :func:`conv2d_backward`, :func:`im2col`, :func:`col2im`: validate
(:func:`numlin._geometry.geometry`) -> dispatch (:func:`numlin._dispatch.backend`: host or device)
-> route (:func:`numlin.nn._conv_plan.plan`: depthwise | pointwise | implicit | im2col) -> the
backend's ``conv`` kernels and ``gemm.matmul_into``. The orchestration below is written once for
both backends: every GEMM is expressed on strided descriptors of the input, filter, output and
column buffers (no copies), with the groups and the batch as GEMM batch dimensions. Tensors are
not handled here: ``numlin.conv2d`` sends them to autodiff, which calls back into this module's
:func:`_conv2d` and :func:`_conv2d_backward`.

Routes:

- *depthwise* (NCHW, ``groups == C``): direct stencils, all three passes;
- *pointwise* (1x1, stride 1, unpadded): plain GEMMs over the pixels, no workspace;
- *implicit* (mostly NCHW): the forward and the filter gradient gather their columns from x
  inside the GEMM, and the input gradient of a stride-1 convolution is the forward convolution of
  ``dy`` with the flipped, channel-swapped filter (:func:`numlin._geometry.dx_geometry`), taken
  for a finite filter only; no column matrix, so no workspace cap;
- *im2col*: the column buffer holds ``C*R*S`` values per output pixel (``R*S`` times the input),
  bounded by ``config.conv_workspace_bytes`` (default 64 MiB, ``NUMLIN_CONV_WORKSPACE_MB``): the
  batch is processed in chunks of samples, and a single sample whose columns exceed the cap in
  chunks of output rows. The backward pass splits the cap between the columns of ``x`` and those
  of ``dx``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._config import config
from .._dispatch import backend
from .._geometry import Conv2dGeometry, IntPair, geometry
from .._strided import Strided
from .._validate import is_int, result_dtype
from ._conv_plan import plan

__all__ = ["conv2d", "conv2d_backward", "im2col", "col2im"]


# --------------------------------------------------------------------------- descriptors
def _view(d: Strided, off: int, shape: tuple, strides: tuple) -> Strided:
    """A descriptor over ``d``'s buffer with element offset ``off`` from ``d``'s own."""
    return Strided(d.buf, d.off + off, tuple(shape), tuple(strides))


def _chunks(g: Conv2dGeometry, budget_elems: int):
    """``(n0, nb, p0, pc)`` chunks whose columns fit ``budget_elems`` (at least one output row)."""
    per_row = g.C * g.R * g.S * g.Q
    per_sample = per_row * g.P
    if per_sample <= budget_elems:
        nb = max(1, min(g.N, budget_elems // per_sample))
        for n0 in range(0, g.N, nb):
            yield n0, min(nb, g.N - n0), 0, g.P
    else:
        pc = max(1, budget_elems // per_row)
        for n0 in range(g.N):
            for p0 in range(0, g.P, pc):
                yield n0, 1, p0, min(pc, g.P - p0)


def _chunk_elems(g: Conv2dGeometry, budget_elems: int) -> int:
    return max(nb * pc for _, nb, _, pc in _chunks(g, budget_elems)) * g.C * g.R * g.S * g.Q


class _Operands:
    """The GEMM operands of one convolution, as descriptors (``G`` groups; ``Cg``/``Kg`` per group)."""

    def __init__(self, g: Conv2dGeometry, X: Strided, Wd: Strided, Y: Strided):
        self.g, self.X, self.W, self.Y = g, X, Wd, Y
        G = g.groups
        self.G, self.Cg, self.Kg = G, g.C // G, g.K // G
        self.CRS, self.PQ = g.C * g.R * g.S, g.P * g.Q
        self.CgRS = self.Cg * g.R * g.S

    # filter as per-group matrices
    def w_mat(self) -> Strided:  # (1, G, Kg, CgRS) for NCHW; (G, 1, CgRS, Kg) for NHWC
        g, W = self.g, self.W
        if g.layout == "NCHW":
            return _view(W, 0, (1, self.G, self.Kg, self.CgRS), (0, self.Kg * self.CgRS, self.CgRS, 1))
        return _view(W, 0, (self.G, 1, self.CgRS, self.Kg), (self.Kg, 0, g.K, 1))

    def y_chunk(self, n0: int, nb: int, p0: int, pc: int, Y: Strided | None = None) -> Strided:
        """Output (or its gradient) of a chunk: (nb, G, Kg, pc*Q) NCHW; (G, nb*pc*Q, Kg) NHWC."""
        g, Y = self.g, Y or self.Y
        if g.layout == "NCHW":
            return _view(Y, n0 * g.K * self.PQ + p0 * g.Q, (nb, self.G, self.Kg, pc * g.Q),
                         (g.K * self.PQ, self.Kg * self.PQ, self.PQ, 1))
        # rows (n, p, q) merge into one stride: chunks span whole samples or lie in one sample
        return _view(Y, (n0 * self.PQ + p0 * g.Q) * g.K, (self.G, 1, nb * pc * g.Q, self.Kg), (self.Kg, 0, g.K, 1))

    def cols(self, C: Strided, nb: int, pc: int) -> Strided:
        """Column buffer of a chunk: (nb, G, CgRS, pc*Q) NCHW; (G, 1, nb*pc*Q, CgRS) NHWC."""
        g, L = self.g, pc * self.g.Q
        if g.layout == "NCHW":
            return _view(C, 0, (nb, self.G, self.CgRS, L), (self.CRS * L, self.CgRS * L, L, 1))
        return _view(C, 0, (self.G, 1, nb * L, self.CgRS), (self.CgRS, 0, self.CRS, 1))


def _swap(d: Strided) -> Strided:
    return d.mT


# --------------------------------------------------------------------------- front-ends
def _prepare(op: str, arrays: dict, **conv_args):
    """Shared prologue of conv2d and conv2d_backward: pick the backend, promote the arrays to
    one float dtype in C order, and validate the geometry of ``arrays["x"]`` with ``arrays["w"]``.
    Returns ``(backend, arrays, dtype, geometry)``."""
    for name, arr in arrays.items():
        if arr is None and name != "bias":
            raise TypeError(f"{op}: {name} is None; expected an array")
    k = backend(op, **arrays)
    a = k.arrays
    out = {name: None if arr is None else a.as_array(op, name, arr) for name, arr in arrays.items()}
    dtype = result_dtype(*[v.dtype for v in out.values() if v is not None])
    for name, arr in out.items():
        if arr is not None:
            out[name] = a.contiguous(a.cast(arr, dtype))
    x, w = out["x"], out["w"]
    g = geometry(op, tuple(x.shape), (), w_shape=tuple(w.shape), **conv_args)
    if g.N and g.C and not (g.H and g.W):  # as PyTorch: nothing to convolve but padding
        raise ValueError(f"{op}: x of shape {tuple(x.shape)} has an empty spatial dimension; only an empty "
                         f"batch or channel axis is supported")
    return k, out, dtype, g


def conv2d(x: Any, w: Any, bias: Any = None, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
           groups: int = 1, layout: str = "NCHW") -> Any:
    """2-D convolution of host or device arrays: the array case of :func:`numlin.conv2d`
    (``numlin._api``), whose docstring gives the parameters, shapes and errors.

    Returns
    -------
    array, (N, K, P, Q) for NCHW or (N, P, Q, K) for NHWC, in ``numpy.result_type`` of the
    inputs; a numba device array when the inputs live on the GPU.

    Notes
    -----
    Non-contiguous inputs are copied to C order first. The column workspace is capped by
    ``config.conv_workspace_bytes``; a 1x1 unpadded stride-1 convolution skips im2col entirely,
    and so do most NCHW convolutions (implicit GEMMs, see the module docstring).
    """
    return _conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)[0]


def _conv2d(x: Any, w: Any, bias: Any = None, *, keep_cols: bool = False, **conv_args) -> tuple:
    """:func:`conv2d` returning ``(y, cols)``. With ``keep_cols`` (autodiff) and a column matrix
    that fits half the workspace cap in one chunk, ``cols`` is a fresh array holding it, for
    :func:`_conv2d_backward` to reuse instead of running im2col again; otherwise (and on the
    routes without columns) None."""
    op = "conv2d"
    k, arrs, dtype, g = _prepare(op, {"x": x, "w": w, "bias": bias}, **conv_args)
    x, w, bias = arrs["x"], arrs["w"], arrs["bias"]
    if bias is not None and tuple(bias.shape) != (g.K,):
        raise ValueError(f"{op}: bias must have shape ({g.K},), got {tuple(bias.shape)}")
    if g.C == 0 or g.K == 0:  # no products (x has no channels, or w no filters): the bias, or zeros
        y = k.buffers.zeros(g.y_shape, dtype)
        if bias is not None and y.size:
            k.conv.channels.fill_bias(y, bias, g.layout)
        return y, None
    y = k.arrays.empty(g.y_shape, dtype)
    route = plan(g, "forward", k.name) if g.N else None
    if route == "depthwise":  # the bias added as the output is stored
        k.conv.depthwise.conv2d_into(x, w, y, g, 0.0, bias)
        return y, None
    beta = 0.0
    if bias is not None:
        k.conv.channels.fill_bias(y, bias, g.layout)
        beta = 1.0
    if route is None:  # an empty batch
        return y, None
    if route == "implicit":  # no column matrix, no workspace cap
        k.conv.implicit_forward.conv2d_nchw_into(x, w, y, g, beta)
        return y, None
    a = k.arrays
    ops = _Operands(g, a.strided(x, writable=False), a.strided(w, writable=False), a.strided(y, writable=True))
    if route == "pointwise":
        X = ops.X
        if g.layout == "NCHW":  # y[n] (K, HW) = W (K, C) @ x[n] (C, HW), per group
            B = _view(X, 0, (g.N, ops.G, ops.Cg, ops.PQ), (g.C * ops.PQ, ops.Cg * ops.PQ, ops.PQ, 1))
            k.gemm.matmul_into(ops.w_mat(), B, ops.y_chunk(0, g.N, 0, g.P), 1.0, beta)
        else:  # y (NHW, K) = x (NHW, C) @ W (C, K), per group
            A = _view(X, 0, (ops.G, 1, g.N * ops.PQ, ops.Cg), (ops.Cg, 0, g.C, 1))
            k.gemm.matmul_into(A, ops.w_mat(), ops.y_chunk(0, g.N, 0, g.P), 1.0, beta)
        return y, None
    budget = max(1, config.conv_workspace_bytes // np.dtype(dtype).itemsize)
    keep = keep_cols and _single_chunk(g, budget // 2)
    n_elems = _chunk_elems(g, budget)
    cols = a.empty((n_elems,), dtype) if keep else a.workspace(dtype, n_elems, "conv.cols")
    Cd = a.strided(cols, writable=True)
    for n0, nb, p0, pc in _chunks(g, budget):
        k.conv.im2col.im2col_into(x, cols, g, n0, nb, p0, pc)
        Cm = ops.cols(Cd, nb, pc)
        if g.layout == "NCHW":
            k.gemm.matmul_into(ops.w_mat(), Cm, ops.y_chunk(n0, nb, p0, pc), 1.0, beta)
        else:
            k.gemm.matmul_into(Cm, ops.w_mat(), ops.y_chunk(n0, nb, p0, pc), 1.0, beta)
    return y, (cols if keep else None)


def _single_chunk(g: Conv2dGeometry, budget_elems: int) -> bool:
    return g.C * g.R * g.S * g.Q * g.P * g.N <= budget_elems


def conv2d_backward(dy: Any, x: Any, w: Any, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
                    groups: int = 1, layout: str = "NCHW") -> tuple:
    """Gradients of ``sum(dy * conv2d(x, w, b))`` with respect to ``x``, ``w`` and ``b``.

    Arguments as :func:`conv2d`, plus ``dy`` of the output's shape. Returns ``(dx, dw, db)``:
    ``dx = col2im(Wᵀ · dY)`` (overlapping patches add), ``dw = dY · colsᵀ`` summed over the batch,
    ``db = dy`` summed over every axis but the channel one.
    """
    return _conv2d_backward(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                            layout=layout)


def _conv2d_backward(dy: Any, x: Any, w: Any, *, need_dx: bool = True, need_dw: bool = True, cols: Any = None,
                     **conv_args) -> tuple:
    """:func:`conv2d_backward`; with ``need_dx=False`` / ``need_dw=False`` (autodiff, when that
    operand needs no gradient) ``dx`` / ``dw`` is None and its GEMMs are skipped; ``cols`` from
    ``_conv2d(keep_cols=True)`` replaces the im2col pass."""
    op = "conv2d_backward"
    k, arrs, dtype, g = _prepare(op, {"dy": dy, "x": x, "w": w}, **conv_args)
    dy, x, w = arrs["dy"], arrs["x"], arrs["w"]
    if tuple(dy.shape) != g.y_shape:
        raise ValueError(f"{op}: dy has shape {tuple(dy.shape)} but the convolution of x {tuple(x.shape)} "
                         f"with w {tuple(w.shape)} gives {g.y_shape}")
    db = k.conv.channels.channel_sum(dy, g.layout) if g.K else k.buffers.zeros((0,), dtype)
    if g.N == 0 or g.C == 0 or g.K == 0:  # an empty batch, no channels or no filters: zero gradients
        return (k.buffers.zeros(g.x_shape, dtype) if need_dx else None,
                k.buffers.zeros(g.w_shape, dtype) if need_dw else None, db)
    a = k.arrays
    dx = dw = None
    route_dx = plan(g, "dx", k.name) if need_dx else None
    route_dw = plan(g, "dw", k.name) if need_dw else None
    if "depthwise" in (route_dx, route_dw):  # the geometry decides: both or neither
        if need_dx:
            dx = a.empty(g.x_shape, dtype)
            k.conv.depthwise.dx_into(dy, w, dx, g)
        if need_dw:
            dw = a.empty(g.w_shape, dtype)
            k.conv.depthwise.dw_into(x, dy, dw, g)
        return dx, dw, db
    # dx as a forward convolution of dy multiplies w by the zeros padding dy, which are no
    # output's (0 * inf would make NaN where dx is finite): for a finite filter only
    if route_dx == "implicit" and k.buffers.all_finite(w):
        dx = a.empty(g.x_shape, dtype)
        fwd = k.conv.implicit_forward
        fwd.conv2d_nchw_into(dy, fwd.flipped_filter(w, g), dx, g.dx, 0.0)
    if route_dw == "implicit":
        dw = a.empty(g.w_shape, dtype)
        k.conv.implicit_dw.conv2d_nchw_dw_into(x, dy, dw, g, 0.0)
    # what is left for GEMMs (pointwise) or im2col / GEMM / col2im
    todo_dx, todo_dw = need_dx and dx is None, need_dw and dw is None
    if not (todo_dx or todo_dw):
        return dx, dw, db
    if todo_dx:
        dx = k.buffers.zeros(g.x_shape, dtype)
    if todo_dw:
        dw = a.empty(g.w_shape, dtype)
    X, Wd = a.strided(x, writable=False), a.strided(w, writable=False)
    DY = a.strided(dy, writable=False)
    ops = _Operands(g, X, Wd, DY)
    # NHWC: dW as per-group matrices over dw's buffer, laid out as ops.w_mat() is over w's
    dW = _view(a.strided(dw, writable=True), 0, ops.w_mat().shape, ops.w_mat().strides) if todo_dw else None
    if g.pointwise:
        if g.layout == "NCHW":
            Xm = _view(X, 0, (g.N, ops.G, ops.Cg, ops.PQ), (g.C * ops.PQ, ops.Cg * ops.PQ, ops.PQ, 1))
            DYm = ops.y_chunk(0, g.N, 0, g.P)
            if todo_dw:
                _dw_nchw(k, ops, DYm, _swap(Xm), dw, first=True)
            if todo_dx:
                DXm = _view(a.strided(dx, writable=True), 0, Xm.shape, Xm.strides)
                k.gemm.matmul_into(_swap(ops.w_mat()), DYm, DXm, 1.0, 0.0)
        else:
            Xm = _view(X, 0, (ops.G, 1, g.N * ops.PQ, ops.Cg), (ops.Cg, 0, g.C, 1))
            DYm = ops.y_chunk(0, g.N, 0, g.P)
            if todo_dw:
                k.gemm.matmul_into(_swap(Xm), DYm, dW, 1.0, 0.0)
            if todo_dx:
                DXm = _view(a.strided(dx, writable=True), 0, Xm.shape, Xm.strides)
                k.gemm.matmul_into(DYm, _swap(ops.w_mat()), DXm, 1.0, 0.0)
        return dx, dw, db
    # dW needs the columns of x, dx the columns' gradient: when both, they share the cap
    budget = max(1, config.conv_workspace_bytes // (2 if todo_dx and todo_dw else 1) // np.dtype(dtype).itemsize)
    n_elems = _chunk_elems(g, budget)
    have_cols = cols is not None and _single_chunk(g, budget)
    if todo_dw and not have_cols:
        cols = a.workspace(dtype, n_elems, "conv.cols")
    dcols = a.workspace(dtype, n_elems, "conv.dcols") if todo_dx else None
    Cd = a.strided(cols, writable=True) if todo_dw else None
    DCd = a.strided(dcols, writable=True) if todo_dx else None
    first = True
    for n0, nb, p0, pc in _chunks(g, budget):
        if todo_dw and not have_cols:
            k.conv.im2col.im2col_into(x, cols, g, n0, nb, p0, pc)
        Cm = ops.cols(Cd, nb, pc) if todo_dw else None
        DCm = ops.cols(DCd, nb, pc) if todo_dx else None
        DYm = ops.y_chunk(n0, nb, p0, pc)
        if g.layout == "NCHW":
            if todo_dw:
                _dw_nchw(k, ops, DYm, _swap(Cm), dw, first)  # dW += sum_n dY[n] @ cols[n]ᵀ
            first = False
            if todo_dx:
                k.gemm.matmul_into(_swap(ops.w_mat()), DYm, DCm, 1.0, 0.0)  # dcols = Wᵀ dY
        else:
            if todo_dw:
                k.gemm.matmul_into(_swap(Cm), DYm, dW, 1.0, 0.0 if first else 1.0)  # dW += colsᵀ dY
            first = False
            if todo_dx:
                k.gemm.matmul_into(DYm, _swap(ops.w_mat()), DCm, 1.0, 0.0)  # dcols = dY Wᵀ
        if todo_dx:
            k.conv.im2col.col2im_into(dcols, dx, g, n0, nb, p0, pc)
    return dx, dw, db


def _dw_nchw(k, ops: _Operands, DYm: Strided, ColsT: Strided, dw, first: bool) -> None:
    """``dw (+)= sum_n dY[n] @ colsᵀ[n]`` (NCHW), one reduction over the samples per group: on
    the CPU each thread accumulates its run of samples; on the GPU a batched GEMM writes
    per-sample partials that one kernel sums (not ``nb`` GEMM launches)."""
    DW = _view(k.arrays.strided(dw, writable=True), 0, (ops.G, ops.Kg, ops.CgRS), (ops.Kg * ops.CgRS, ops.CgRS, 1))
    k.gemm.matmul_sum_into(DYm, ColsT, DW, 0.0 if first else 1.0)


def im2col(x: Any, kernel_size: IntPair, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
           layout: str = "NCHW") -> Any:
    """Unfold the patches of ``x`` into columns: one column per output pixel.

    Returns an array of shape ``(N, C*R*S, P*Q)``. Rows follow the filter's layout: ``(c, r, s)``
    for NCHW (C order), ``(r, s, c)`` channel-fastest for NHWC, where the array is a transposed
    view of a C-ordered ``(N, P*Q, R*S*C)`` buffer (each patch contiguous). Padding reads zeros.
    """
    op = "im2col"
    k = backend(op, x=x)
    x = k.arrays.contiguous(k.arrays.as_array(op, "x", x))
    g = geometry(op, tuple(x.shape), kernel_size, stride=stride, padding=padding, dilation=dilation, layout=layout)
    rows = g.C * g.R * g.S
    cols = k.arrays.empty((g.N * rows * g.P * g.Q,), x.dtype)  # returned to the caller: not a workspace
    k.conv.im2col.im2col_into(x, cols, g, 0, g.N, 0, g.P)
    if g.layout == "NCHW":
        return cols.reshape(g.N, rows, g.P * g.Q)
    return k.arrays.transpose_last2(cols.reshape(g.N, g.P * g.Q, rows))


def col2im(cols: Any, input_shape: tuple, kernel_size: IntPair, *, stride: IntPair = 1, padding: Any = 0,
           dilation: IntPair = 1, layout: str = "NCHW") -> Any:
    """The adjoint of :func:`im2col`: fold ``(N, C*R*S, P*Q)`` columns back into an array of
    ``input_shape``, adding the entries of overlapping patches (padding positions are dropped)."""
    op = "col2im"
    if (not isinstance(input_shape, (tuple, list, np.ndarray)) or np.ndim(input_shape) != 1
            or len(input_shape) != 4 or not all(is_int(d) for d in input_shape)):
        raise TypeError(f"{op}: input_shape must be x's full shape, a tuple of 4 ints, got {input_shape!r}")
    if min(input_shape) < 0:
        raise ValueError(f"{op}: input_shape must not have negative sizes, got {tuple(input_shape)}")
    input_shape = tuple(int(d) for d in input_shape)
    k = backend(op, cols=cols)
    cols = k.arrays.as_array(op, "cols", cols)
    g = geometry(op, tuple(input_shape), kernel_size, stride=stride, padding=padding, dilation=dilation,
                 layout=layout)
    want = (g.N, g.C * g.R * g.S, g.P * g.Q)
    if tuple(cols.shape) != want:
        raise ValueError(f"{op}: cols has shape {tuple(cols.shape)}, expected {want} for input shape "
                         f"{tuple(input_shape)} and kernel {(g.R, g.S)}")
    flat = k.arrays.contiguous(cols if g.layout == "NCHW" else k.arrays.transpose_last2(cols))
    flat = flat.reshape(int(np.prod(flat.shape)))
    dx = k.buffers.zeros(g.x_shape, cols.dtype)
    k.conv.im2col.col2im_into(flat, dx, g, 0, g.N, 0, g.P)
    return dx
