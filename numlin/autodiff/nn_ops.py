"""Differentiable neural-network ops: conv2d, max/avg pooling, log-softmax and cross-entropy,
each op's forward kernel call and its backward rule side by side (the plumbing is :mod:`.ops`'s).

The heavy ops run a dedicated backward kernel, whose result is itself a differentiable op with
its own vjp: the convolution's input and filter gradients (:func:`_conv2d_dx`,
:func:`_conv2d_dw`; conv2d is bilinear), the pools' scatters (linear in the seed: their adjoints
are max pooling's gather at the argmax and average pooling itself), and cross-entropy's
``(softmax - onehot) * g``. Without a recording tape these wrappers record nothing, so first
derivatives cost the kernel calls alone.

The convolutions run the array front-end :mod:`numlin.nn.conv` (imported where it is called:
``numlin.nn``'s package imports this module's names).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._geometry import pool_args
from .._validate import as_int
from ._record import STACK as _STACK
from .ops import (TensorLike, _axes, _cast, _k, _make, _operand, _pair, _tensor, broadcast_to, exp, multiply,
                  reshape, subtract, sum)
from .tensor import Tensor

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "log_softmax", "cross_entropy"]


# --------------------------------------------------------------------------- convolution
def conv2d(x: TensorLike, w: TensorLike, bias: TensorLike | None = None, *, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, layout: str = "NCHW") -> Tensor:
    """:func:`numlin.conv2d` on Tensors; the backward pass is numlin's ``conv2d_backward``
    (GEMMs + col2im, one call for both gradients, reusing the forward's columns), skipping ``dx``
    or ``dw`` when that operand needs no gradient. Its results are themselves differentiable
    (:func:`_conv2d_dx`, :func:`_conv2d_dw`): the convolution is bilinear, so every derivative of
    any order is again a convolution, an input gradient or a filter gradient."""
    from ..nn import conv as _conv

    x = _tensor(x, "conv2d")
    w = _operand(w, x, "conv2d")
    ts = [x, w] + ([_operand(bias, x, "conv2d")] if bias is not None else [])
    dt = np.result_type(*[t.dtype for t in ts])
    ts = [_cast(t if t.dtype.kind == "f" else _tensor(t, "conv2d"), dt) for t in ts]
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)
    recording = bool(_STACK.tapes)
    data, cols = _conv._conv2d(ts[0].data, ts[1].data, ts[2].data if bias is not None else None,
                               keep_cols=recording, **kw)
    xt, wt = ts[0], ts[1]

    def vjp(g, needs):
        dx, dw, db = _conv._conv2d_backward(g.data, xt.data, wt.data, need_dx=needs[0], need_dw=needs[1],
                                            cols=cols, **kw)
        out = [_make("conv2d_dx", dx, (g, wt), _conv2d_dx_vjp(g, wt, kw)) if needs[0] else None,
               _make("conv2d_dw", dw, (g, xt), _conv2d_dw_vjp(g, xt, kw)) if needs[1] else None]
        if bias is not None:
            out.append(_make("conv2d_db", db, (g,), _channel_sum_vjp(g, layout)))
        return tuple(out)

    return _make("conv2d", data, tuple(ts), vjp)


def _conv2d_dx_vjp(g: Tensor, w: Tensor, kw: dict) -> Callable:
    """The vjp of ``dx = Dx(g, w)`` (bilinear): with ``h`` of x's shape, ``<Dx(g, w), h> =
    <g, conv2d(h, w)>``, so ``dg = conv2d(h, w)`` and ``dw = Dw(g, h)``."""

    def vjp(h, needs):
        return (conv2d(h, w, **kw) if needs[0] else None,
                _conv2d_dw(g, h, w.shape, **kw) if needs[1] else None)

    return vjp


def _conv2d_dw_vjp(g: Tensor, x: Tensor, kw: dict) -> Callable:
    """The vjp of ``dw = Dw(g, x)`` (bilinear): with ``h`` of w's shape, ``<Dw(g, x), h> =
    <g, conv2d(x, h)>``, so ``dg = conv2d(x, h)`` and ``dx = Dx(g, h)``."""

    def vjp(h, needs):
        return (conv2d(x, h, **kw) if needs[0] else None,
                _conv2d_dx(g, h, x.shape, **kw) if needs[1] else None)

    return vjp


def _channel_sum_vjp(g: Tensor, layout: str) -> Callable:
    """The vjp of the bias gradient ``db = g`` summed over all axes but the channel one: ``h``
    (one value per channel) broadcast back over ``g``'s shape."""
    keep = (1, -1, 1, 1) if layout == "NCHW" else (1, 1, 1, -1)
    return lambda h, needs: (broadcast_to(reshape(h, keep), g.shape),)


def _empty_like(t: Tensor, shape: tuple) -> Any:
    """An uninitialised array of ``shape`` in ``t``'s dtype on its device (a stand-in operand
    whose values a kernel never reads, only its shape and dtype)."""
    return _k(t).arrays.empty(tuple(shape), t.dtype)


def _conv2d_dx(g: Tensor, w: Tensor, x_shape: tuple, **kw) -> Tensor:
    """The input gradient of :func:`conv2d` (a transposed convolution of ``g`` with ``w``) for
    an input of shape ``x_shape``; differentiable in ``g`` and ``w``. ``kw``: the convolution's
    ``stride, padding, dilation, groups, layout``."""
    from ..nn import conv as _conv

    g, w = _pair(g, w, "conv2d_dx")
    dx = _conv._conv2d_backward(g.data, _empty_like(g, x_shape), w.data, need_dx=True, need_dw=False, **kw)[0]
    return _make("conv2d_dx", dx, (g, w), _conv2d_dx_vjp(g, w, kw))


def _conv2d_dw(g: Tensor, x: Tensor, w_shape: tuple, **kw) -> Tensor:
    """The filter gradient of :func:`conv2d` (``g`` correlated with ``x``) for a filter of shape
    ``w_shape``; differentiable in ``g`` and ``x``. ``kw`` as :func:`_conv2d_dx`."""
    from ..nn import conv as _conv

    g, x = _pair(g, x, "conv2d_dw")
    dw = _conv._conv2d_backward(g.data, x.data, _empty_like(g, w_shape), need_dx=False, need_dw=True, **kw)[1]
    return _make("conv2d_dw", dw, (g, x), _conv2d_dw_vjp(g, x, kw))


# --------------------------------------------------------------------------- pooling
def _pool_args(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any) -> tuple:
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D (N, C, H, W), got shape {x.shape}")
    k, s, p = pool_args(op, kernel_size, stride, padding)
    H, W = x.shape[2:]
    if H + 2 * p[0] < k[0] or W + 2 * p[1] < k[1]:
        raise ValueError(f"{op}: kernel {k} is larger than the padded input {(H + 2 * p[0], W + 2 * p[1])}")
    return k, s, p


def max_pool2d(x: TensorLike, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """2-D max pooling over an NCHW tensor (``stride`` defaults to ``kernel_size``; padding with
    -inf); the gradient goes to each window's maximum (the first one on ties)."""
    x = _tensor(x, "max_pool2d")
    k, s, p = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    data, arg = _k(x).pool.max_pool2d(x.data, k, s, p)
    return _make("max_pool2d", data, (x,), lambda g, needs: (_max_pool2d_scatter(g, arg, x.shape),))


def _max_pool2d_scatter(g: Tensor, arg: Any, x_shape: tuple) -> Tensor:
    """Max pooling's backward: ``g`` added at each window's argmax ``arg`` (the backend's int64
    array), an array of ``x_shape``. Linear in ``g``; its adjoint is :func:`_max_pool2d_gather`.
    ``arg`` is piecewise constant in the pooled input, so the second derivative through it is
    zero almost everywhere (as in PyTorch)."""
    y_shape = g.shape
    data = _k(g).pool.max_pool2d_backward(g.data, arg, x_shape)
    return _make("max_pool2d_backward", data, (g,), lambda h, needs: (_max_pool2d_gather(h, arg, y_shape),))


def _max_pool2d_gather(h: Tensor, arg: Any, y_shape: tuple) -> Tensor:
    """``h`` (of the pooled input's shape) read at each window's argmax ``arg``: the adjoint of
    :func:`_max_pool2d_scatter`, whose vjp it is (and the other way round)."""
    x_shape = h.shape
    data = _k(h).pool.max_pool2d_gather(h.data, arg, y_shape)
    return _make("max_pool2d_gather", data, (h,), lambda g, needs: (_max_pool2d_scatter(g, arg, x_shape),))


def avg_pool2d(x: TensorLike, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """2-D average pooling over an NCHW tensor (``stride`` defaults to ``kernel_size``; zero
    padding counted in the mean, PyTorch's default)."""
    x = _tensor(x, "avg_pool2d")
    k, s, p = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    return _make("avg_pool2d", _k(x).pool.avg_pool2d(x.data, k, s, p), (x,),
                 lambda g, needs: (_avg_pool2d_backward(g, x.shape, k, s, p),))


def _avg_pool2d_backward(g: Tensor, x_shape: tuple, k: tuple, s: tuple, p: tuple) -> Tensor:
    """Average pooling's backward: ``g / (kh kw)`` spread over each window, an array of
    ``x_shape``. Linear in ``g``, and the adjoint of :func:`avg_pool2d` itself (every window
    divides by ``kh kw``, padding counted), so its vjp is ``avg_pool2d(h)``."""
    data = _k(g).pool.avg_pool2d_backward(g.data, x_shape, k, s, p)
    return _make("avg_pool2d_backward", data, (g,), lambda h, needs: (avg_pool2d(h, k, s, p),))


# --------------------------------------------------------------------------- softmax and loss
def log_softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """``x - logsumexp(x, axis)``, computed stably (finite for logits of any magnitude)."""
    x = _tensor(x, "log_softmax")
    if x.ndim == 0:
        raise ValueError("log_softmax: x must be at least 1-D")
    (ax,) = _axes("log_softmax", as_int("log_softmax", "axis", axis), x.ndim)
    if x.shape[ax] == 0:
        raise ValueError(f"log_softmax: axis {axis} of shape {x.shape} is empty")
    perm = tuple(i for i in range(x.ndim) if i != ax) + (ax,)
    moved_shape = tuple(x.shape[i] for i in perm)
    kx = _k(x)
    rows = kx.elementwise.reshape(kx.arrays.contiguous(kx.elementwise.transpose(x.data, perm)), (-1, x.shape[ax]))
    y2 = kx.softmax.log_softmax(rows)
    data = kx.elementwise.transpose(kx.elementwise.reshape(y2, moved_shape), tuple(np.argsort(perm)))

    def vjp(g, needs):  # g - softmax * sum(g)
        return (subtract(g, multiply(exp(y), sum(g, ax, keepdims=True))),)

    y = _make("log_softmax", data, (x,), vjp)
    return y


def cross_entropy(logits: TensorLike, labels: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of ``logits (N, C)`` against integer class ``labels (N,)``, fused
    (one kernel; finite for logits of magnitude 1e4 and beyond), as PyTorch's ``cross_entropy``.

    Parameters
    ----------
    logits : Tensor (N, C), float
    labels : integer array or Tensor (N,), values in ``[0, C)``
    reduction : {"mean", "sum", "none"}

    Raises
    ------
    ValueError
        Wrong shapes, a label outside ``[0, C)``, an unknown reduction.
    TypeError
        Non-integer labels.
    """
    x = _tensor(logits, "cross_entropy")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if x.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (N, C), got shape {x.shape}")
    lab = labels.numpy() if isinstance(labels, Tensor) else labels
    lab_host = np.asarray(lab.copy_to_host() if hasattr(lab, "copy_to_host") else lab)
    if lab_host.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integer class indices, got dtype {lab_host.dtype}")
    if lab_host.shape != (x.shape[0],):
        raise ValueError(f"cross_entropy: labels have shape {lab_host.shape}, expected ({x.shape[0]},) for "
                         f"logits of shape {x.shape}")
    if lab_host.size and (lab_host.min() < 0 or lab_host.max() >= x.shape[1]):
        bad = lab_host[(lab_host < 0) | (lab_host >= x.shape[1])][0]
        raise ValueError(f"cross_entropy: label {bad} is out of range for {x.shape[1]} classes")
    ks = _k(x).softmax
    lab_dev = ks.labels(lab_host)
    loss, prob = ks.cross_entropy(x.data, lab_dev)

    def vjp(g, needs):  # the fused kernel; differentiable through the softmax it read and g
        return (_cross_entropy_backward(x, prob, lab_host, ks.cross_entropy_backward(prob, lab_dev, g.data), g),)

    per_row = _make("cross_entropy", loss, (x,), vjp)
    if reduction == "none":
        return per_row
    total = sum(per_row)
    return total if reduction == "sum" else multiply(total, 1.0 / x.shape[0] if x.shape[0] else np.nan)


def _cross_entropy_backward(x: Tensor, prob: Any, labels: np.ndarray, dx: Any, g: Tensor) -> Tensor:
    """The fused kernel's ``dx = (softmax(x) - onehot(labels)) * g[:, None]`` (computed, as
    ``dx``, from the forward's softmax ``prob``), recorded as a function of ``softmax(x)`` and
    ``g`` so that an outer tape differentiates it again. Without a recording tape nothing is
    recorded and this costs two wrappers."""
    n = x.shape[0]

    def softmax_vjp(h, needs):  # d softmax: P * (h - sum(h * P))
        return (multiply(sm, subtract(h, sum(multiply(h, sm), 1, keepdims=True))),)

    sm = _make("softmax", prob, (x,), softmax_vjp)

    def vjp(h, needs):
        dsm = multiply(h, reshape(g, (n, 1))) if needs[0] else None
        dg = None
        if needs[1]:
            onehot = np.zeros(x.shape, x.dtype)
            onehot[np.arange(n), labels] = 1
            dg = sum(multiply(h, subtract(sm, Tensor(onehot, device=x.device))), 1)
        return dsm, dg

    return _make("cross_entropy_backward", dx, (sm, g), vjp)
