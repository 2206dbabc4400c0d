"""The sizes of one 2-D convolution: :class:`Conv2dGeometry`, the contract every convolution
kernel (CPU and CUDA, forward and gradients) takes, and the validation that builds it.

:func:`geometry` checks a convolution's arguments against its operands' shapes and works out the
output size; :func:`conv_args` and :func:`pool_args` check the shape-free arguments (layers call
them at construction, so that a bad ``stride`` fails there and not at the first forward). Every
size is a Python int in ``[0, GEOMETRY_MAX]``: kernels index in int64 and never overflow.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Union

from ._validate import GEOMETRY_MAX, as_int, as_layout, as_pair

__all__ = ["Conv2dGeometry", "GEOMETRY_MAX", "IntPair", "conv_args", "dx_geometry", "geometry", "pool_args"]

IntPair = Union[int, tuple]


@dataclass(frozen=True)
class Conv2dGeometry:
    """Sizes of one convolution: input ``N, C, H, W``; filter ``K, R, S``; output ``P, Q``;
    strides ``sh, sw``; paddings ``ph0, ph1`` (top, bottom) and ``pw0, pw1`` (left, right);
    dilations ``dh, dw``; ``groups``. ``layout`` is ``"NCHW"`` or ``"NHWC"``."""

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

    @functools.cached_property
    def dx(self) -> "Conv2dGeometry":
        """:func:`dx_geometry` of this geometry, built once (the backward's plan and its launch
        both need it)."""
        return dx_geometry(self)

    @property
    def depthwise(self) -> bool:
        """One input channel per group, more than one group (``K / C`` outputs per channel)."""
        return self.groups == self.C and self.C > 1


def dx_geometry(g: Conv2dGeometry) -> Conv2dGeometry:
    """The input gradient of a stride-1 convolution as a forward one: ``dx = conv(dy, w')`` with
    ``w'`` the flipped, channel-swapped filter, input ``P x Q``, output ``H x W`` and padding
    ``dh*(R-1) - ph0`` etc. (dx[h] takes dy[p] for ``p = h + ph0 - r*dh``; a negative padding
    only crops)."""
    th, tw = g.dh * (g.R - 1), g.dw * (g.S - 1)
    return replace(g, C=g.K, H=g.P, W=g.Q, K=g.C, P=g.H, Q=g.W, ph0=th - g.ph0, ph1=th - g.ph1, pw0=tw - g.pw0,
                   pw1=tw - g.pw1)


def conv_args(op: str, kernel: Any, *, stride: IntPair = 1, padding: Any = 0, dilation: IntPair = 1,
              groups: int = 1) -> tuple:
    """Validate a convolution's geometry arguments (no shapes needed: layers call it at
    construction, :func:`geometry` at every call) and return them as Python ints:
    ``((R, S), (sh, sw), (ph0, ph1, pw0, pw1), (dh, dw), groups)``."""
    g = as_int(op, "groups", groups, what="a positive int")
    if not 1 <= g <= GEOMETRY_MAX:
        raise ValueError(f"{op}: groups must be a positive int (at most {GEOMETRY_MAX}), got {groups!r}")
    R, S = as_pair(op, "kernel_size", kernel, 1)
    sh, sw = as_pair(op, "stride", stride, 1)
    dh, dw = as_pair(op, "dilation", dilation, 1)
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
        ph, pw = as_pair(op, "padding", padding, 0)
        pads = (ph, ph, pw, pw)
    return (R, S), (sh, sw), pads, (dh, dw), g


def pool_args(op: str, kernel_size: Any, stride: Any = None, padding: Any = 0) -> tuple:
    """Validate a pooling window's arguments: ``(kernel, stride, padding)`` as pairs of ints
    (``stride`` None: the kernel size; padding at most half the kernel, as in PyTorch)."""
    k = as_pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else as_pair(op, "stride", stride, 1)
    p = as_pair(op, "padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    return k, s, p


def geometry(op: str, x_shape: tuple, kernel: tuple, *, stride: IntPair = 1, padding: Any = 0,
             dilation: IntPair = 1, groups: int = 1, layout: str = "NCHW", w_shape: tuple | None = None) -> Conv2dGeometry:
    """Validate a convolution's arguments and work out its sizes.

    ``kernel`` is ``(R, S)``; ``w_shape``, when given, is checked against the input's channels
    and ``groups`` and supplies ``K``.
    """
    layout = as_layout(op, layout)
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
