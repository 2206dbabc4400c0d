"""CUDA convolution kernels, the interface of ``numlin.kernels.cpu.conv`` module by module; which
one runs is decided by ``numlin.nn._conv_plan``. Every kernel takes a
:class:`numlin._geometry.Conv2dGeometry`.

- :mod:`.im2col`: im2col / col2im (route ``"im2col"``);
- :mod:`.implicit_forward`: the forward (and the stride-1 input gradient) as gather GEMMs;
- :mod:`.implicit_dw`: the filter gradient as a split-K gather GEMM;
- :mod:`.columns`: the index tables through which the gather GEMM reads x;
- :mod:`.depthwise`: direct kernels for depthwise convolutions;
- :mod:`.channels`: the bias broadcast and the bias gradient.
"""
from __future__ import annotations

from . import channels, columns, depthwise, im2col, implicit_dw, implicit_forward

__all__ = ["channels", "columns", "depthwise", "im2col", "implicit_dw", "implicit_forward"]
