"""Which kernels compute a convolution or one of its gradients: the route decision, in one place.

``plan(g, need, device)`` for ``need`` in ``"forward"``, ``"dx"``, ``"dw"`` gives one of

``"depthwise"``
    direct stencils (``kernels.<device>.conv.depthwise``): NCHW, one input channel per group,
    a filter larger than 1x1. A depthwise layer does ``R*S`` multiply-adds per output value,
    too few to fill a GEMM's tiles.
``"pointwise"``
    a 1x1, stride-1, unpadded convolution: plain GEMMs over the pixels, no workspace.
``"implicit"``
    an implicit GEMM (``kernels.<device>.conv.implicit_forward`` / ``implicit_dw``): the column
    matrix is gathered from x inside the GEMM, never stored. For ``"dx"`` (stride 1 only) the
    input gradient is the forward convolution of dy with the flipped filter
    (:func:`numlin._geometry.dx_geometry`); the front-end takes it only for a finite filter.
``"im2col"``
    im2col + GEMM (+ col2im for ``"dx"``) in workspace-capped chunks: everything else.

With ``config.conv_fused`` off every convolution that is not pointwise takes ``"im2col"``;
``config.conv_depthwise`` off sends depthwise ones to the GEMM routes.
"""
from __future__ import annotations

from .._config import config
from .._geometry import Conv2dGeometry

__all__ = ["ROUTES", "plan", "implicit", "depthwise"]

ROUTES = ("depthwise", "pointwise", "implicit", "im2col")

#: the CUDA implicit GEMM's index tables pack an entry's row and column shift into one int32,
#: ``(h + 2**14) * 2**16 + (w + 2**15)`` (``kernels.cuda.conv.implicit_forward``): every row
#: shift must lie in ``[-2**14, 2**14)``, every column shift in ``[-2**15, 2**15)``
CUDA_ROW_SHIFT, CUDA_COL_SHIFT = 1 << 14, 1 << 15


def plan(g: Conv2dGeometry, need: str, device: str) -> str:
    """The route (one of :data:`ROUTES`) for ``need`` (``"forward"``, ``"dx"`` or ``"dw"``) of the
    convolution ``g`` on ``device`` (``"cpu"`` or ``"cuda"``). ``g`` has at least one sample,
    channel and filter (the front-ends answer empty convolutions themselves)."""
    if need not in ("forward", "dx", "dw"):
        raise ValueError(f"plan: need must be 'forward', 'dx' or 'dw', got {need!r}")
    if depthwise(g):
        return "depthwise"
    if g.pointwise:
        return "pointwise"
    if need == "dx":
        if g.sh == g.sw == 1 and implicit(g.dx, device):
            return "implicit"
    elif implicit(g, device, filter_grad=need == "dw"):
        return "implicit"
    return "im2col"


def depthwise(g: Conv2dGeometry) -> bool:
    """Whether the direct depthwise stencils take ``g`` (both devices, all three passes)."""
    return (config.conv_fused and config.conv_depthwise and g.layout == "NCHW" and g.depthwise
            and g.R * g.S > 1)


def implicit(g: Conv2dGeometry, device: str, filter_grad: bool = False) -> bool:
    """Whether an implicit GEMM takes the convolution ``g`` on ``device`` (its filter gradient
    with ``filter_grad``). Pointwise convolutions never get here (:func:`plan`)."""
    if not config.conv_fused or g.layout != "NCHW":
        return False
    if device == "cuda":
        return _cuda_tables_fit(g)
    # CPU: a 1x1 filter's columns are a subsample of x (strided 1x1: im2col + GEMM was faster).
    # A padding as wide as the dilated kernel, whose outputs read padding alone and which no CNN
    # layer has, is not handled by the packing (it wrote out of bounds): im2col + GEMM.
    if g.R * g.S == 1:
        return False
    if max(g.ph0, g.ph1) >= g.dh * (g.R - 1) + 1 or max(g.pw0, g.pw1) >= g.dw * (g.S - 1) + 1:
        return False
    return (filter_grad or g.groups == 1 or g.sh == g.sw == 1
            or g.C // g.groups >= config.conv_fused_min_channels)


def _cuda_tables_fit(g: Conv2dGeometry) -> bool:
    """Whether every shift of ``g``'s CUDA index tables fits their packing: taps ``(r*dh, s*dw)``
    and output pixels' top-left corners ``(p*sh - ph0, q*sw - pw0)``."""
    taps = g.C // g.groups == 0 or (g.dh * (g.R - 1) < CUDA_ROW_SHIFT and g.dw * (g.S - 1) < CUDA_COL_SHIFT)
    rows = -g.ph0 >= -CUDA_ROW_SHIFT and (g.P - 1) * g.sh - g.ph0 < CUDA_ROW_SHIFT
    cols = -g.pw0 >= -CUDA_COL_SHIFT and (g.Q - 1) * g.sw - g.pw0 < CUDA_COL_SHIFT
    return taps and rows and cols
