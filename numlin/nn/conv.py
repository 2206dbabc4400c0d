"""2-D convolution (cross-correlation) by im2col + GEMM; backward by GEMM + col2im.

Public front-ends: :func:`conv2d`, :func:`conv2d_backward`, :func:`im2col`, :func:`col2im`.
validate (:func:`geometry`) -> dispatch (host or device) -> the backend's ``im2col`` kernels and
``gemm.matmul_into``. The orchestration below is written once for both backends: every GEMM is
expressed on strided descriptors of the input, filter, output and column buffers (no copies),
with the groups and the batch as GEMM batch dimensions.

Workspace: the column buffer holds ``C*R*S`` values per output pixel (``R*S`` times the input).
It is bounded by :data:`WORKSPACE_BYTES` (default 64 MiB, environment variable
``NUMLIN_CONV_WORKSPACE_MB``): the batch is processed in chunks of samples, and a single sample
whose columns exceed the cap in chunks of output rows. The backward pass splits the cap between
the columns of ``x`` and those of ``dx``. A 1x1, stride-1, unpadded convolution is a plain GEMM
and uses no workspace.

Implicit GEMMs (``k.implicit_gemm``, both backends, where ``applies(geometry)``): NCHW
convolutions mostly run without a column matrix, so the cap does not apply to them. The forward
pass and the filter gradient gather their columns from ``x`` inside the GEMM (the CPU packs its
B panels straight from ``x``, or at stride 1 reads them in place from copies of ``x`` shifted per
filter column; the GPU's kernel reads its B tiles through index tables), and the
input gradient of a stride-1 convolution is the forward convolution of ``dy`` with the flipped,
channel-swapped filter (:func:`_dx_geometry`). NHWC, 1x1 and few-channel convolutions on the
CPU (its ``applies``), and the input gradient of a strided one keep im2col + GEMM (+ col2im).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from .._dispatch import holds_tensor, kernels
from .._strided import Strided
from .._validate import is_int, result_dtype

__all__ = ["conv2d", "conv2d_backward", "im2col", "col2im", "geometry", "Conv2dGeometry", "WORKSPACE_BYTES"]



def _workspace_bytes(default_mb: float = 64.0) -> int:
    """``NUMLIN_CONV_WORKSPACE_MB`` in bytes; a value that is not a positive finite number gives
    one warning naming the variable and the value, and the default (``import numlin`` never fails
    on it)."""
    raw = os.environ.get("NUMLIN_CONV_WORKSPACE_MB")
    if raw is None:
        return int(default_mb * 2**20)
    try:
        mb = float(raw)
        if not (math.isfinite(mb) and mb > 0):
            raise ValueError
    except ValueError:
        import warnings

        warnings.warn(f"NUMLIN_CONV_WORKSPACE_MB={raw!r} is not a positive number of MiB; using the default "
                      f"{default_mb:g}", RuntimeWarning, stacklevel=2)
        return int(default_mb * 2**20)
    return max(1, int(mb * 2**20))


#: cap on the im2col workspace per call, in bytes
WORKSPACE_BYTES = _workspace_bytes()
#: implicit GEMMs where the backend's ``implicit_gemm.applies`` (``NUMLIN_CONV_FUSED=0``: always
#: im2col + GEMM in workspace-capped chunks, for A/B timing)
FUSED = os.environ.get("NUMLIN_CONV_FUSED", "1") != "0"
#: depthwise NCHW convolutions by direct stencils (each backend's ``depthwise`` module); off,
#: or with ``NUMLIN_CONV_FUSED=0``, they take the GEMM paths
DEPTHWISE = True

IntPair = Union[int, tuple]


@dataclass(frozen=True)
class Conv2dGeometry:
    """Sizes of one convolution: input ``N, C, H, W``; filter ``K, R, S``; output ``P, Q``."""

    layout: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    P: int
    Q: int
    sh: int
    sw: int
    ph0: int
    ph1: int
    pw0: int
    pw1: int
    dh: int
    dw: int
    groups: int

    @property
    def x_shape(self) -> tuple:
        return (self.N, self.C, self.H, self.W) if self.layout == "NCHW" else (self.N, self.H, self.W, self.C)

    @property
    def y_shape(self) -> tuple:
        return (self.N, self.K, self.P, self.Q) if self.layout == "NCHW" else (self.N, self.P, self.Q, self.K)

    @property
    def w_shape(self) -> tuple:
        cg = self.C // self.groups
        return (self.K, cg, self.R, self.S) if self.layout == "NCHW" else (self.R, self.S, cg, self.K)

    @property
    def pointwise(self) -> bool:
        """A 1x1, stride-1, unpadded convolution: a plain GEMM over the pixels."""
        return (self.R == self.S == 1 and self.sh == self.sw == 1
                and self.ph0 == self.ph1 == self.pw0 == self.pw1 == 0)


#: the largest kernel size, stride, padding, dilation or group count accepted (int32's range):
#: anything above it is no real convolution, and every index a kernel computes stays far inside int64
GEOMETRY_MAX = 2**31 - 1


def _pair(op: str, name: str, v: Any, minimum: int) -> tuple:
    """An int or a pair of ints as a pair of Python ints in ``[minimum, GEOMETRY_MAX]``."""
    if is_int(v):
        v = (v, v)
    if not isinstance(v, (tuple, list)) or len(v) != 2 or not all(is_int(e) for e in v):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    a, b = int(v[0]), int(v[1])
    if min(a, b) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {(a, b)}")
    if max(a, b) > GEOMETRY_MAX:
        raise ValueError(f"{op}: {name} must be at most {GEOMETRY_MAX}, got {(a, b)}")
    return a, b


def conv_args(op: str, kernel: Any, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
              groups: int = 1) -> tuple:
    """Validate a convolution's geometry arguments (no shapes needed: layers call it at
    construction, :func:`geometry` at every call) and return them as Python ints:
    ``((R, S), (sh, sw), (ph0, ph1, pw0, pw1), (dh, dw), groups)``."""
    if not is_int(groups):
        raise TypeError(f"{op}: groups must be a positive int, got {groups!r}")
    if not 1 <= groups <= GEOMETRY_MAX:
        raise ValueError(f"{op}: groups must be a positive int (at most {GEOMETRY_MAX}), got {groups!r}")
    R, S = _pair(op, "kernel_size", kernel, 1)
    sh, sw = _pair(op, "stride", stride, 1)
    dh, dw = _pair(op, "dilation", dilation, 1)
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {(sh, sw)}")
            th, tw = dh * (R - 1), dw * (S - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)  # the odd one at the end
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = _pair(op, "padding", padding, 0)
        pads = (ph, ph, pw, pw)
    return (R, S), (sh, sw), pads, (dh, dw), int(groups)


def pool_args(op: str, kernel_size: Any, stride: Any = None, padding: Any = 0) -> tuple:
    """Validate a pooling window's arguments: ``(kernel, stride, padding)`` as pairs of ints
    (``stride`` None: the kernel size; padding at most half the kernel, as in PyTorch)."""
    k = _pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else _pair(op, "stride", stride, 1)
    p = _pair(op, "padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    return k, s, p


def _layout(op: str, layout: Any) -> str:
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{op}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
    return layout


def geometry(op: str, x_shape: tuple, kernel: tuple, *, stride: IntPair = 1, padding: Any = 0,
             dilation: IntPair = 1, groups: int = 1, layout: str = "NCHW", w_shape: tuple | None = None) -> Conv2dGeometry:
    """Validate a convolution's arguments and work out its sizes.

    ``kernel`` is ``(R, S)``; ``w_shape``, when given, is checked against the input's channels
    and ``groups`` and supplies ``K``.
    """
    layout = _layout(op, layout)
    if len(x_shape) != 4:
        raise ValueError(f"{op}: x must be 4-D ({layout}), got shape {tuple(x_shape)}")
    N, C, H, W = x_shape if layout == "NCHW" else (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
    K = None
    if w_shape is not None:
        if len(w_shape) != 4:
            raise ValueError(f"{op}: w must be 4-D, got shape {tuple(w_shape)}")
        K, cw, R, S = w_shape if layout == "NCHW" else (w_shape[3], w_shape[2], w_shape[0], w_shape[1])
        kernel = (R, S)
    (R, S), (sh, sw), pads, (dh, dw), groups = conv_args(op, kernel, stride=stride, padding=padding,
                                                         dilation=dilation, groups=groups)
    if C % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {C} input channels")
    if w_shape is not None:
        if cw * groups != C:
            raise ValueError(f"{op}: w of shape {tuple(w_shape)} expects {cw * groups} input channels "
                             f"({cw} per group x {groups} groups) but x of shape {tuple(x_shape)} has {C}")
        if K % groups:
            raise ValueError(f"{op}: groups={groups} does not divide the {K} output channels of w {tuple(w_shape)}")
    P = (H + pads[0] + pads[1] - dh * (R - 1) - 1) // sh + 1
    Q = (W + pads[2] + pads[3] - dw * (S - 1) - 1) // sw + 1
    if P < 1 or Q < 1:
        raise ValueError(f"{op}: kernel {(R, S)} with dilation {(dh, dw)} is larger than the padded input "
                         f"{(H + pads[0] + pads[1], W + pads[2] + pads[3])}: output size would be {(P, Q)}")
    return Conv2dGeometry(layout, N, C, H, W, K if K is not None else 0, R, S, P, Q, sh, sw, *pads, dh, dw, int(groups))


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
    Returns ``(kernels, arrays, dtype, geometry)``."""
    for name, arr in arrays.items():
        if arr is None and name != "bias":
            raise TypeError(f"{op}: {name} is None; expected an array")
    k = kernels(op, **arrays)
    out = {name: None if arr is None else k.as_array(op, name, arr) for name, arr in arrays.items()}
    dtype = result_dtype(*[a.dtype for a in out.values() if a is not None])
    for name, arr in out.items():
        if arr is not None:
            out[name] = k.contiguous(k.cast(arr, dtype))
    x, w = out["x"], out["w"]
    g = geometry(op, tuple(x.shape), (), w_shape=tuple(w.shape), **conv_args)
    if g.N and g.C and not (g.H and g.W):  # as PyTorch: nothing to convolve but padding
        raise ValueError(f"{op}: x of shape {tuple(x.shape)} has an empty spatial dimension; only an empty "
                         f"batch or channel axis is supported")
    return k, out, dtype, g


def conv2d(x: Any, w: Any, bias: Any = None, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
           groups: int = 1, layout: str = "NCHW") -> Any:
    """2-D convolution (cross-correlation, as in PyTorch and TensorFlow) by im2col + GEMM.

    Parameters
    ----------
    x : array, (N, C, H, W) for ``layout="NCHW"`` or (N, H, W, C) for ``"NHWC"``
    w : array, (K, C // groups, R, S) for NCHW or (R, S, C // groups, K) for NHWC
    bias : array of shape (K,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
        "same" keeps H and W (stride 1 only); an odd total padding puts the extra row/column
        at the end (bottom/right).
    groups : int
        Input and output channels split into ``groups`` independent convolutions
        (``groups == C`` is a depthwise convolution).
    layout : "NCHW" or "NHWC"

    Returns
    -------
    With a :class:`numlin.Tensor` among the inputs, a Tensor (differentiable: the backward pass
    is :func:`conv2d_backward`); otherwise an
    array, (N, K, P, Q) for NCHW or (N, P, Q, K) for NHWC, in ``numpy.result_type`` of the
    inputs; a numba device array when the inputs live on the GPU.

    Raises
    ------
    ValueError
        Wrong ranks, channel mismatch, groups not dividing the channels, a kernel larger than
        the padded input, "same" with stride > 1, a bias of the wrong shape.
    TypeError
        Non-float dtypes, malformed stride/padding/dilation, or host and device arrays mixed.

    Notes
    -----
    Non-contiguous inputs are copied to C order first. The column workspace is capped by
    :data:`WORKSPACE_BYTES`; a 1x1 unpadded stride-1 convolution skips im2col entirely, and so
    do most NCHW convolutions (implicit GEMMs, see the module docstring).
    """
    if any(holds_tensor(t) for t in (x, w, bias)):
        from ..autodiff.ops import conv2d as tensor_conv2d

        return tensor_conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             layout=layout)
    return _conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)[0]


def _conv2d(x: Any, w: Any, bias: Any = None, *, keep_cols: bool = False, **conv_args) -> tuple:
    """:func:`conv2d` returning ``(y, cols)``. With ``keep_cols`` (autodiff) and a column matrix
    that fits half the workspace cap in one chunk, ``cols`` is a fresh array holding it, for
    :func:`_conv2d_backward` to reuse instead of running im2col again; otherwise (and on the
    implicit-GEMM path, which has no columns) None."""
    op = "conv2d"
    k, arrs, dtype, g = _prepare(op, {"x": x, "w": w, "bias": bias}, **conv_args)
    x, w, bias = arrs["x"], arrs["w"], arrs["bias"]
    if bias is not None and tuple(bias.shape) != (g.K,):
        raise ValueError(f"{op}: bias must have shape ({g.K},), got {tuple(bias.shape)}")
    if g.C == 0 or g.K == 0:  # no products (x has no channels, or w no filters): the bias, or zeros
        y = k.im2col.zeros(g.y_shape, dtype)
        if bias is not None and y.size:
            k.im2col.fill_bias(y, bias, g.layout)
        return y, None
    y = k.empty(g.y_shape, dtype)
    if g.N and _depthwise(k, g):  # the bias added as the output is stored
        k.depthwise.conv2d_into(x, w, y, g, 0.0, bias)
        return y, None
    beta = 0.0
    if bias is not None:
        k.im2col.fill_bias(y, bias, g.layout)
        beta = 1.0
    if g.N == 0:
        return y, None
    ops = _Operands(g, k.strided(x, writable=False), k.strided(w, writable=False), k.strided(y, writable=True))
    if g.pointwise:
        X = ops.X
        if g.layout == "NCHW":  # y[n] (K, HW) = W (K, C) @ x[n] (C, HW), per group
            B = _view(X, 0, (g.N, ops.G, ops.Cg, ops.PQ), (g.C * ops.PQ, ops.Cg * ops.PQ, ops.PQ, 1))
            k.gemm.matmul_into(ops.w_mat(), B, ops.y_chunk(0, g.N, 0, g.P), 1.0, beta)
        else:  # y (NHW, K) = x (NHW, C) @ W (C, K), per group
            A = _view(X, 0, (ops.G, 1, g.N * ops.PQ, ops.Cg), (ops.Cg, 0, g.C, 1))
            k.gemm.matmul_into(A, ops.w_mat(), ops.y_chunk(0, g.N, 0, g.P), 1.0, beta)
        return y, None
    if _implicit(k, g):  # no column matrix, no workspace cap
        k.implicit_gemm.conv2d_nchw_into(x, w, y, g, beta)
        return y, None
    budget = max(1, WORKSPACE_BYTES // np.dtype(dtype).itemsize)
    keep = keep_cols and _single_chunk(g, budget // 2)
    cols = k.empty((_chunk_elems(g, budget),), dtype) if keep else k.workspace(dtype, _chunk_elems(g, budget),
                                                                                "conv.cols")
    Cd = k.strided(cols, writable=True)
    for n0, nb, p0, pc in _chunks(g, budget):
        k.im2col.im2col_into(x, cols, g, n0, nb, p0, pc)
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
    db = k.im2col.channel_sum(dy, g.layout) if g.K else k.im2col.zeros((0,), dtype)
    if g.N == 0 or g.C == 0 or g.K == 0:  # an empty batch, no channels or no filters: zero gradients
        return (k.im2col.zeros(g.x_shape, dtype) if need_dx else None,
                k.im2col.zeros(g.w_shape, dtype) if need_dw else None, db)
    dx = dw = None
    if _depthwise(k, g):
        if need_dx:
            dx = k.empty(g.x_shape, dtype)
            k.depthwise.dx_into(dy, w, dx, g)
        if need_dw:
            dw = k.empty(g.w_shape, dtype)
            k.depthwise.dw_into(x, dy, dw, g)
        return dx, dw, db
    if not g.pointwise:  # implicit GEMMs: no column matrices
        gt = _dx_geometry(g) if need_dx and g.sh == g.sw == 1 else None
        # dx as a forward convolution of dy: that multiplies w by the zeros padding dy, which
        # are no output's (0 * inf would make NaN where dx is finite): for a finite filter only
        if gt is not None and _implicit(k, gt) and k.im2col.all_finite(w):
            dx = k.empty(g.x_shape, dtype)
            k.implicit_gemm.conv2d_nchw_into(dy, k.implicit_gemm.flipped_filter(w, g), dx, gt, 0.0)
        if need_dw and _implicit(k, g, filter_grad=True):
            dw = k.empty(g.w_shape, dtype)
            k.implicit_gemm.conv2d_nchw_dw_into(x, dy, dw, g, 0.0)
    # what is left for im2col / GEMM / col2im
    todo_dx, todo_dw = need_dx and dx is None, need_dw and dw is None
    if not (todo_dx or todo_dw):
        return dx, dw, db
    if todo_dx:
        dx = k.im2col.zeros(g.x_shape, dtype)
    if todo_dw:
        dw = k.empty(g.w_shape, dtype)
    X, Wd = k.strided(x, writable=False), k.strided(w, writable=False)
    DY = k.strided(dy, writable=False)
    ops = _Operands(g, X, Wd, DY)
    # NHWC: dW as per-group matrices over dw's buffer, laid out as ops.w_mat() is over w's
    dW = _view(k.strided(dw, writable=True), 0, ops.w_mat().shape, ops.w_mat().strides) if todo_dw else None
    if g.pointwise:
        if g.layout == "NCHW":
            Xm = _view(X, 0, (g.N, ops.G, ops.Cg, ops.PQ), (g.C * ops.PQ, ops.Cg * ops.PQ, ops.PQ, 1))
            DYm = ops.y_chunk(0, g.N, 0, g.P)
            if todo_dw:
                _dw_nchw(k, ops, DYm, _swap(Xm), dw, first=True)
            if todo_dx:
                DXm = _view(k.strided(dx, writable=True), 0, Xm.shape, Xm.strides)
                k.gemm.matmul_into(_swap(ops.w_mat()), DYm, DXm, 1.0, 0.0)
        else:
            Xm = _view(X, 0, (ops.G, 1, g.N * ops.PQ, ops.Cg), (ops.Cg, 0, g.C, 1))
            DYm = ops.y_chunk(0, g.N, 0, g.P)
            if todo_dw:
                k.gemm.matmul_into(_swap(Xm), DYm, dW, 1.0, 0.0)
            if todo_dx:
                DXm = _view(k.strided(dx, writable=True), 0, Xm.shape, Xm.strides)
                k.gemm.matmul_into(DYm, _swap(ops.w_mat()), DXm, 1.0, 0.0)
        return dx, dw, db
    # dW needs the columns of x, dx the columns' gradient: when both, they share the cap
    budget = max(1, WORKSPACE_BYTES // (2 if todo_dx and todo_dw else 1) // np.dtype(dtype).itemsize)
    n_elems = _chunk_elems(g, budget)
    have_cols = cols is not None and _single_chunk(g, budget)
    if todo_dw and not have_cols:
        cols = k.workspace(dtype, n_elems, "conv.cols")
    dcols = k.workspace(dtype, n_elems, "conv.dcols") if todo_dx else None
    Cd = k.strided(cols, writable=True) if todo_dw else None
    DCd = k.strided(dcols, writable=True) if todo_dx else None
    first = True
    for n0, nb, p0, pc in _chunks(g, budget):
        if todo_dw and not have_cols:
            k.im2col.im2col_into(x, cols, g, n0, nb, p0, pc)
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
            k.im2col.col2im_into(dcols, dx, g, n0, nb, p0, pc)
    return dx, dw, db


def _depthwise(k, g: Conv2dGeometry) -> bool:
    dw = getattr(k, "depthwise", None)
    return FUSED and DEPTHWISE and dw is not None and dw.applies(g)


def _implicit(k, g: Conv2dGeometry, filter_grad: bool = False) -> bool:
    return FUSED and k.implicit_gemm.applies(g, filter_grad)


def _dx_geometry(g: Conv2dGeometry) -> Conv2dGeometry:
    """For stride 1: ``dx = conv(dy, flipped filter)`` with input P x Q, output H x W and
    padding ``dh*(R-1) - ph0`` etc. (dx[h] takes dy[p] for ``p = h + ph0 - r*dh``; a negative
    padding only crops)."""
    th, tw = g.dh * (g.R - 1), g.dw * (g.S - 1)
    return replace(g, C=g.K, H=g.P, W=g.Q, K=g.C, P=g.H, Q=g.W, ph0=th - g.ph0, ph1=th - g.ph1, pw0=tw - g.pw0,
                   pw1=tw - g.pw1)


def _dw_nchw(k, ops: _Operands, DYm: Strided, ColsT: Strided, dw, first: bool) -> None:
    """``dw (+)= sum_n dY[n] @ colsᵀ[n]`` (NCHW), one reduction over the samples per group: on
    the CPU each thread accumulates its run of samples; on the GPU a batched GEMM writes
    per-sample partials that one kernel sums (not ``nb`` GEMM launches)."""
    DW = _view(k.strided(dw, writable=True), 0, (ops.G, ops.Kg, ops.CgRS), (ops.Kg * ops.CgRS, ops.CgRS, 1))
    k.gemm.matmul_sum_into(DYm, ColsT, DW, 0.0 if first else 1.0)


def im2col(x: Any, kernel_size: IntPair, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
           layout: str = "NCHW") -> Any:
    """Unfold the patches of ``x`` into columns: one column per output pixel.

    Returns an array of shape ``(N, C*R*S, P*Q)``. Rows follow the filter's layout: ``(c, r, s)``
    for NCHW (C order), ``(r, s, c)`` channel-fastest for NHWC, where the array is a transposed
    view of a C-ordered ``(N, P*Q, R*S*C)`` buffer (each patch contiguous). Padding reads zeros.
    """
    op = "im2col"
    k = kernels(op, x=x)
    x = k.contiguous(k.as_array(op, "x", x))
    g = geometry(op, tuple(x.shape), kernel_size, stride=stride, padding=padding, dilation=dilation, layout=layout)
    rows = g.C * g.R * g.S
    cols = k.empty((g.N * rows * g.P * g.Q,), x.dtype)  # returned to the caller: not a workspace
    k.im2col.im2col_into(x, cols, g, 0, g.N, 0, g.P)
    if g.layout == "NCHW":
        return cols.reshape(g.N, rows, g.P * g.Q)
    return k.transpose_last2(cols.reshape(g.N, g.P * g.Q, rows))


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
    k = kernels(op, cols=cols)
    cols = k.as_array(op, "cols", cols)
    g = geometry(op, tuple(input_shape), kernel_size, stride=stride, padding=padding, dilation=dilation,
                 layout=layout)
    want = (g.N, g.C * g.R * g.S, g.P * g.Q)
    if tuple(cols.shape) != want:
        raise ValueError(f"{op}: cols has shape {tuple(cols.shape)}, expected {want} for input shape "
                         f"{tuple(input_shape)} and kernel {(g.R, g.S)}")
    flat = k.contiguous(cols if g.layout == "NCHW" else k.transpose_last2(cols))
    flat = flat.reshape(int(np.prod(flat.shape)))
    dx = k.im2col.zeros(g.x_shape, cols.dtype)
    k.im2col.col2im_into(flat, dx, g, 0, g.N, 0, g.P)
    return dx
