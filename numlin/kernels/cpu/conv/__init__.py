"""CPU convolution kernels (NCHW and NHWC), one module per way of computing it; which one runs is
decided by ``numlin.nn._conv_plan``, the orchestration (GEMMs over strided descriptors, workspace
chunks) is ``numlin.nn.conv``'s. Every kernel takes a :class:`numlin._geometry.Conv2dGeometry`.

- :mod:`.im2col`: im2col / col2im, the column matrix and its adjoint (route ``"im2col"``);
- :mod:`.implicit_forward`: the forward (and the stride-1 input gradient) as implicit GEMMs;
- :mod:`.implicit_dw`: the filter gradient as implicit GEMMs (dot products at stride 1);
- :mod:`.columns`: where the implicit GEMMs find their column matrix in x;
- :mod:`.depthwise`: direct stencils for depthwise convolutions;
- :mod:`.channels`: the bias broadcast and the bias gradient.
"""
from __future__ import annotations

from . import channels, columns, depthwise, im2col, implicit_dw, implicit_forward

__all__ = ["channels", "columns", "depthwise", "im2col", "implicit_dw", "implicit_forward"]
