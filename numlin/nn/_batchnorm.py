"""The differentiable batch-normalisation op, :func:`batch_norm`: forward and backward side by side.

Forward and backward run the fused kernels of ``numlin.kernels.{cpu,cuda}.batchnorm`` (one
launch each: per-channel statistics and the output in one go). When a tape is recording while
the backward runs (an outer tape asking for a second derivative), the backward is written with
the differentiable ops instead, the statistics recomputed from ``x``, so that it can be
differentiated again (to any order).
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._dispatch import is_device_array
from ..autodiff import ops
from ..autodiff._record import recording as _recording
from ..autodiff.ops import _cast, _k, _make, _operand, _tensor
from ..autodiff.tensor import Tensor

__all__ = ["batch_norm"]


def _real(op: str, name: str, v: Any) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a real number, got {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {v!r}")
    return v


def check_eps(op: str, eps: Any) -> float:
    """``eps`` as a float; TypeError unless a real number, ValueError unless finite and > 0."""
    eps = _real(op, "eps", eps)
    if eps <= 0:
        raise ValueError(f"{op}: eps must be positive, got {eps!r}")
    return eps


def check_momentum(op: str, momentum: Any) -> float:
    """``momentum`` as a float; TypeError unless a real number, ValueError outside [0, 1]."""
    m = _real(op, "momentum", momentum)
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"{op}: momentum must be in [0, 1], got {momentum!r}")
    return m


def _running(name: str, v: Any, x: Tensor, training: bool):
    """A running statistic: None, or a float (C,) numpy array (with x on the CPU, writable when
    training) or device array (with x on the GPU), updated in place."""
    if v is None:
        return None
    C = x.shape[1]
    if isinstance(v, Tensor):
        raise TypeError(f"batch_norm: {name} must be an array updated in place (numpy, or a device array for a "
                        "GPU input), not a Tensor")
    on_device = is_device_array(v)
    if not on_device and not isinstance(v, np.ndarray):
        raise TypeError(f"batch_norm: {name} must be a numpy array or a device array, got {type(v).__name__}")
    if on_device != (x.device == "cuda"):
        where = "the GPU" if on_device else "the host"
        raise TypeError(f"batch_norm: {name} is on {where} but x is on {x.device}; move the module (or the "
                        "arrays) with .to(device)")
    if np.dtype(v.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"batch_norm: {name} has dtype {np.dtype(v.dtype)}; float32 or float64 expected")
    if tuple(v.shape) != (C,):
        raise ValueError(f"batch_norm: {name} has shape {tuple(v.shape)}, expected ({C},) for input of shape "
                         f"{x.shape}")
    if training and not on_device and not v.flags.writeable:
        raise ValueError(f"batch_norm: {name} is read-only; it is updated in place in training mode")
    return v


def batch_norm(x: Any, weight: Any = None, bias: Any = None, running_mean: Any = None, running_var: Any = None,
               training: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over axis 1 (channels) of ``x (N, C, ...)``, as PyTorch's ``F.batch_norm``.

    Training: each channel is normalised by the mean and the biased variance of its ``N * H * W``
    values, and the running statistics (when given) are updated in place,
    ``running = (1 - momentum) running + momentum batch`` (the unbiased batch variance, as
    PyTorch). Eval (``training=False``): the running statistics normalise. Then
    ``y = x̂ weight + bias`` per channel. Differentiable in ``x``, ``weight`` and ``bias`` (to any
    order); the running statistics are not.

    Parameters
    ----------
    x : Tensor or array (N, C, ...), float32 or float64
    weight, bias : Tensor or array (C,), optional
        The affine map (default: none). Promoted with ``x`` to a common float dtype.
    running_mean, running_var : numpy array (C,) or device array (C,), optional
        Updated in place in training mode; required in eval mode. On the device of ``x``.
    training : bool
    momentum : float in [0, 1]
    eps : float > 0
        Added to the variance before its square root.

    Returns
    -------
    Tensor of ``x``'s shape.

    Raises
    ------
    ValueError
        ``x`` below 2-D; a parameter or running statistic not of shape ``(C,)``; one channel
        value per channel in training ("expected more than 1 value per channel", as PyTorch);
        eval mode without running statistics; ``eps`` <= 0, ``momentum`` outside [0, 1].
    TypeError
        Running statistics that are not float arrays on ``x``'s device; non-numeric options.

    Notes
    -----
    The argument order is numlin's (``x, weight, bias, running_mean, running_var``), not
    ``torch.nn.functional.batch_norm``'s (``input, running_mean, running_var, weight, bias``).
    """
    x = _tensor(x, "batch_norm")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: x must be at least 2-D (N, C, ...), got shape {x.shape}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"batch_norm: training must be True or False, got {training!r}")
    training = bool(training)
    eps = check_eps("batch_norm", eps)
    momentum = check_momentum("batch_norm", momentum)
    N, C = x.shape[:2]
    L = int(np.prod(x.shape[2:], dtype=np.int64))
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            params.append(None)
            continue
        t = _operand(p, x, "batch_norm")
        if t.shape != (C,):
            raise ValueError(f"batch_norm: {name} has shape {t.shape}, expected ({C},) for input of shape {x.shape}")
        params.append(t if t.dtype.kind == "f" else _tensor(t, "batch_norm"))
    rm = _running("running_mean", running_mean, x, training)
    rv = _running("running_var", running_var, x, training)
    if (rm is None) != (rv is None):
        raise ValueError("batch_norm: running_mean and running_var go together (both or neither)")
    if not training and rm is None:
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
    if training and N * L <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape "
                         f"{x.shape}")
    dt = np.result_type(x.dtype, *[p.dtype for p in params if p is not None])
    x = _cast(x, dt)
    w, b = (None if p is None else _cast(p, dt) for p in params)
    be = _k(x)
    ew, arrays, kb = be.elementwise, be.arrays, be.batchnorm
    x3 = ew.reshape(arrays.contiguous(x.data), (N, C, L))
    wd = w.data if w is not None else arrays.full((C,), 1.0, dt)
    bd = b.data if b is not None else arrays.full((C,), 0.0, dt)
    if training:
        y3, mean, var, invstd = kb.forward_train(x3, wd, bd, eps)
        if rm is not None:
            kb.update_running(rm, rv, mean, var, momentum, N * L)
    else:
        mean, invstd = kb.eval_stats(rm, rv, eps)
        y3 = kb.forward_eval(x3, wd, bd, mean, invstd)
    inputs = (x,) + tuple(p for p in (w, b) if p is not None)

    def vjp(g, needs):
        if _recording():
            grads = _backward_ops(g, x, w, training, mean, invstd, eps, needs)
        else:
            g3 = ew.reshape(arrays.contiguous(g.data), (N, C, L))
            dx3, dw, db = kb.backward(g3, x3, mean, invstd, wd, training, needs[0])
            grads = (Tensor._wrap(ew.reshape(dx3, x.shape)) if needs[0] else None, Tensor._wrap(dw),
                     Tensor._wrap(db))
        return (grads[0],) + ((grads[1],) if w is not None else ()) + ((grads[2],) if b is not None else ())

    return _make("batch_norm", ew.reshape(y3, x.shape), inputs, vjp)


def _backward_ops(g: Tensor, x: Tensor, w: Tensor | None, training: bool, mean, invstd, eps: float,
                  needs: tuple) -> tuple:
    """``(dx, dw, db)`` by differentiable ops (for higher derivatives): the batch statistics are
    recomputed from ``x`` (so they are differentiated too); eval mode's are constants."""
    axes = (0,) + tuple(range(2, x.ndim))
    cshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        xc = ops.subtract(x, ops.mean(x, axes, keepdims=True))
        var = ops.mean(ops.multiply(xc, xc), axes, keepdims=True)
        inv = ops.divide(1.0, ops.sqrt(ops.add(var, eps)))
    else:
        be = _k(x)
        const = [Tensor._wrap(be.elementwise.reshape(be.arrays.cast(a, x.dtype), cshape)) for a in (mean, invstd)]
        xc = ops.subtract(x, const[0])
        inv = const[1]
    xhat = ops.multiply(xc, inv)
    scale = inv if w is None else ops.multiply(inv, ops.reshape(w, cshape))
    dx = None
    if needs[0]:
        if training:
            gm = ops.mean(g, axes, keepdims=True)
            gxm = ops.mean(ops.multiply(g, xhat), axes, keepdims=True)
            dx = ops.multiply(scale, ops.subtract(ops.subtract(g, gm), ops.multiply(xhat, gxm)))
        else:
            dx = ops.multiply(g, scale)
    dw = ops.sum(ops.multiply(g, xhat), axes) if w is not None and needs[1] else None
    db = ops.sum(g, axes)
    return dx, dw, db
