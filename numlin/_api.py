"""The public ``matmul``, ``gemm`` and ``conv2d``: one switch each, by what the operands are.

A :class:`numlin.Tensor` operand (or a list holding one) -> the differentiable op
(:mod:`numlin.autodiff.ops`, :mod:`numlin.autodiff.nn_ops`); a Dask array -> a lazy Dask graph
of numlin GEMMs (:mod:`numlin.linalg._dask`); anything else -> the array front-end
(:mod:`numlin.linalg.gemm`, :mod:`numlin.nn.conv`), which validates, picks the host or device
backend and runs the kernel. Imports run one way: this module -> autodiff -> the array
front-ends -> the kernels; the array front-ends know nothing of Tensors or Dask.
"""
from __future__ import annotations

from typing import Any

from ._dispatch import holds_tensor, is_dask_array
from ._geometry import IntPair

__all__ = ["matmul", "gemm", "conv2d"]


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """Matrix product with :func:`numpy.matmul` semantics.

    Parameters
    ----------
    a : array_like, shape (..., m, k) or (k,)
        float32 or float64. A 1-D ``a`` is a row vector, its axis removed from the result.
    b : array_like, shape (..., k, n) or (k,)
        float32 or float64. A 1-D ``b`` is a column vector, its axis removed from the result.
        Batch dimensions of ``a`` and ``b`` broadcast against each other.
    out : ndarray, optional
        Receives the result: exactly the result's shape and dtype, writable, and sharing no
        memory with ``a`` or ``b``.

    Returns
    -------
    ndarray or scalar
        With a :class:`numlin.Tensor` operand, a Tensor (differentiable; ``out`` not allowed).
        ``a @ b`` in ``numpy.result_type(a, b)`` (float32 only if both are float32; a mixed pair
        computes in float64 after casting the float32 operand). Two 1-D operands give a scalar.
        Device operands (numba device arrays, CuPy arrays, PyTorch CUDA tensors) give a numba
        device array, computed on the GPU.

    Raises
    ------
    ValueError
        0-d operands; core dimensions that do not match; batch dimensions that do not broadcast;
        ``out`` of the wrong shape, read-only or overlapping an input; device operands on
        different GPUs.
    TypeError
        A dtype other than float32/float64 (integers are not cast silently), an ``out`` of the
        wrong dtype, or host and device operands mixed.

    Notes
    -----
    Any strides and memory order are accepted without copying: packing absorbs them. NaN and
    Inf propagate as in numpy. Large products run in parallel on ``numba.get_num_threads()``
    threads; many small ones are spread over the threads one matrix each.

    ``dask.array.Array`` operands (one may be a numpy array) give a lazy Dask array: numlin's
    GEMM on every block pair, then Dask's tree reduction over the blocks of the contracted
    dimension (chunks along it are unified first). Each task's GEMM runs on one thread
    (``numlin.linalg._dask.block_threads``); ``out`` is not supported there (TypeError).

    Examples
    --------
    >>> import numpy as np, numlin as nl
    >>> nl.matmul(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    if holds_tensor(a) or holds_tensor(b):
        if out is not None:
            raise TypeError("matmul: out= is not supported with Tensor operands")
        return _tensor_matmul(a, b)
    if is_dask_array(a) or is_dask_array(b):
        from .linalg._dask import matmul_dask  # Dask users only: import numlin stays light

        return matmul_dask(a, b, out)
    return _array_matmul(a, b, out)


def gemm(a: Any, b: Any, c: Any = None, *, alpha: float = 1.0, beta: float = 0.0,
         trans_a: bool = False, trans_b: bool = False) -> Any:
    """General matrix multiply with BLAS semantics: ``alpha * op(a) @ op(b) + beta * c``.

    Parameters
    ----------
    a, b : array_like, 2-D, float32 or float64
        ``op(a)`` is ``(m, k)`` and ``op(b)`` is ``(k, n)``, where ``op(x)`` is ``x.T`` if the
        matching ``trans_*`` flag is set (no copy is made) and ``x`` otherwise.
    c : ndarray, shape (m, n), optional
        Updated in place and returned. Its dtype must be the result dtype
        (``numpy.result_type(a, b)``); it must not overlap ``a`` or ``b``. When ``beta == 0`` its
        old contents are not read (NaN in ``c`` does not propagate), as in BLAS.
    alpha, beta : float
        Real scalars. ``beta`` must be 0 when ``c`` is not given. When ``alpha == 0`` (or ``k == 0``)
        ``a`` and ``b`` are not read: the result is ``beta * c`` (NaN in them does not propagate),
        as in BLAS.
    trans_a, trans_b : bool
        Use the transpose of ``a`` / ``b``.

    Returns
    -------
    ndarray
        ``c`` if given, else a new ``(m, n)`` array.

    Raises
    ------
    ValueError
        Operands that are not 2-D, inner dimensions that differ, ``c`` of the wrong shape,
        read-only or overlapping, ``beta != 0`` without ``c``, or device operands on different GPUs.
    TypeError
        Unsupported dtypes, ``c`` of the wrong dtype, non-real ``alpha``/``beta``, non-bool
        ``trans_*``, host and device operands mixed, or Dask arrays (gemm writes into ``c`` in
        place; use :func:`matmul`, which takes Dask arrays, and scale the lazy result).

    Examples
    --------
    >>> import numpy as np, numlin as nl
    >>> c = np.ones((2, 2))
    >>> nl.gemm(np.eye(2), np.eye(2), c, alpha=2.0, beta=1.0)
    array([[3., 1.],
           [1., 3.]])
    """
    if is_dask_array(a) or is_dask_array(b) or is_dask_array(c):
        raise TypeError("gemm: Dask arrays are not supported (gemm writes into c in place); use "
                        "nl.matmul(a, b), which builds a lazy Dask graph of numlin GEMMs, and scale or add "
                        "the lazy result (alpha * nl.matmul(a, b) + beta * c)")
    return _array_gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)


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
    is :func:`numlin.conv2d_backward`); otherwise an
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
    ``NUMLIN_CONV_WORKSPACE_MB`` (64 MiB by default, ``numlin._config``); a 1x1 unpadded stride-1 convolution skips
    im2col entirely, and so do most NCHW convolutions (implicit GEMMs, see :mod:`numlin.nn.conv`).
    """
    if holds_tensor(x) or holds_tensor(w) or (bias is not None and holds_tensor(bias)):
        return _tensor_conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                              layout=layout)
    return _array_conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)


# Imported last: the packages numlin.linalg and numlin.nn export this module's names, and these
# imports run their __init__ (which then find the names above already defined).
from .autodiff.nn_ops import conv2d as _tensor_conv2d  # noqa: E402
from .autodiff.ops import matmul as _tensor_matmul  # noqa: E402
from .linalg.gemm import gemm as _array_gemm, matmul as _array_matmul  # noqa: E402
from .nn.conv import conv2d as _array_conv2d  # noqa: E402
