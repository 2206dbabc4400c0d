"""Layers: callable objects holding :class:`numlin.Variable` parameters (PyTorch's ``nn`` style).

Parameters are initialised as PyTorch does (Kaiming-uniform weights, ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))`` biases), from ``random_state`` (an int seed or a ``numpy.random.Generator``).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterator

import numpy as np

from .._geometry import conv_args, pool_args
from .._validate import as_int
from ..autodiff import nn_ops, ops
from ..autodiff.tensor import Tensor, Variable
from ._batchnorm import batch_norm, check_eps, check_momentum
from .module import Module

__all__ = ["Module", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Flatten", "Sequential", "BatchNorm2d",
           "Dropout", "GlobalAvgPool2d"]


def _rng(random_state: Any) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


def _positive_int(layer: str, name: str, v: Any) -> int:
    v = as_int(layer, name, v)
    if v < 1:
        raise ValueError(f"{layer}: {name} must be positive, got {v!r}")
    return v


class Linear(Module):
    """``y = x @ weight + bias``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : float32 (default) or float64
    random_state : int, Generator or None

    Attributes
    ----------
    weight : Variable, (in_features, out_features)
        Stored input-major (``x @ W``, as Keras and JAX), the transpose of PyTorch's layout;
        ``state_dict()`` holds it in PyTorch's ``(out_features, in_features)`` layout (and
        ``load_state_dict`` expects that), so PyTorch's state dicts load as they are.
    bias : Variable (out_features,) or None
    """

    _state_transposed = ("weight",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: Any = np.float32,
                 random_state: Any = None):
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        rng = _rng(random_state)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Variable(rng.uniform(-bound, bound, (self.in_features, self.out_features)), dtype,
                               name="Linear.weight")
        self.bias = Variable(rng.uniform(-bound, bound, self.out_features), dtype, name="Linear.bias") if bias else None

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input of shape {x.shape} does not end in in_features={self.in_features}")
        y = ops.matmul(x, self.weight)
        return y if self.bias is None else ops.add(y, self.bias)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Conv2d(Module):
    """2-D convolution layer over NCHW input (numlin's im2col + GEMM :func:`numlin.conv2d`).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : as :func:`numlin.conv2d`
    bias : bool
    dtype, random_state : as :class:`Linear`

    Attributes
    ----------
    weight : Variable (out_channels, in_channels, kh, kw)
    bias : Variable (out_channels,) or None
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 bias: bool = True, *, dtype: Any = np.float32, random_state: Any = None):
        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        # validated now, with numlin.conv2d's rules and messages (not at the first forward)
        self.kernel_size = conv_args("Conv2d", kernel_size, stride=stride, padding=padding)[0]
        self.stride, self.padding = stride, padding
        rng = _rng(random_state)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Variable(rng.uniform(-bound, bound, (self.out_channels, self.in_channels, *self.kernel_size)),
                               dtype, name="Conv2d.weight")
        self.bias = Variable(rng.uniform(-bound, bound, self.out_channels), dtype, name="Conv2d.bias") if bias else None

    def forward(self, x: Any) -> Tensor:
        return nn_ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class MaxPool2d(Module):
    """Max pooling (:func:`numlin.autodiff.nn_ops.max_pool2d`); ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        pool_args(type(self).__name__, kernel_size, stride, padding)  # validated now, not at the first forward
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Any) -> Tensor:
        return nn_ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def __repr__(self) -> str:
        return f"MaxPool2d({self.kernel_size})"


class AvgPool2d(MaxPool2d):
    """Average pooling (:func:`numlin.autodiff.nn_ops.avg_pool2d`); ``stride`` defaults to ``kernel_size``."""

    def forward(self, x: Any) -> Tensor:
        return nn_ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def __repr__(self) -> str:
        return f"AvgPool2d({self.kernel_size})"


class ReLU(Module):
    """``max(x, 0)``."""

    def forward(self, x: Any) -> Tensor:
        return ops.relu(x)

    def __repr__(self) -> str:
        return "ReLU()"


class Flatten(Module):
    """Collapse every axis but the first (the batch): ``(N, ...) -> (N, prod(...))``."""

    def forward(self, x: Any) -> Tensor:
        return ops.flatten(x, 1)

    def __repr__(self) -> str:
        return "Flatten()"


class Sequential(Module):
    """Layers applied in order; ``model[i]`` is the i-th layer, ``len(model)`` their number."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {i} ({type(layer).__name__}) is not callable")
        self.layers = list(layers)

    def forward(self, x: Any) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def _named_children(self) -> Iterator[tuple[str, Any]]:
        """The layers named ``"0"``, ``"1"``, ... (PyTorch's state-dict keys ``"0.weight"``)."""
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"


class BatchNorm2d(Module):
    """Batch normalisation over the channels of NCHW input (:func:`numlin.nn.batch_norm`), as
    PyTorch's ``nn.BatchNorm2d``.

    In training mode each channel is normalised by its batch mean and biased variance, and the
    running statistics are updated in place with the unbiased variance,
    ``running = (1 - momentum) running + momentum batch``; in eval mode (:meth:`Module.eval`)
    the running statistics normalise. Then ``y = x̂ weight + bias``.

    Parameters
    ----------
    num_features : int
        The number of channels ``C``.
    eps : float > 0
        Added to the variance before its square root.
    momentum : float in [0, 1], or None
        Weight of each batch in the running statistics; None: their cumulative average
        (``1 / num_batches_tracked``), as PyTorch.
    affine : bool
        Learn ``weight`` (ones) and ``bias`` (zeros).
    dtype : float32 (default) or float64
        Of the parameters and the running statistics.

    Attributes
    ----------
    weight, bias : Variable (C,) or None
    running_mean, running_var : array (C,)
        Zeros and ones at first; numpy arrays, device arrays after ``to("cuda")``.
    num_batches_tracked : int
        Training-mode forward passes so far.

    Notes
    -----
    ``state_dict()`` holds ``weight``, ``bias`` (when affine), ``running_mean``, ``running_var``
    and ``num_batches_tracked`` (a 0-d int64 array), PyTorch's five keys, so a PyTorch
    BatchNorm2d's state dict (as numpy arrays) loads.
    """

    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True, *,
                 dtype: Any = np.float32):
        self.num_features = _positive_int("BatchNorm2d", "num_features", num_features)
        self.eps = check_eps("BatchNorm2d", eps)
        self.momentum = None if momentum is None else check_momentum("BatchNorm2d", momentum)
        if not isinstance(affine, (bool, np.bool_)):
            raise TypeError(f"BatchNorm2d: affine must be True or False, got {affine!r}")
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"BatchNorm2d: dtype must be float32 or float64, got {dt}")
        C = self.num_features
        self.weight = Variable(np.ones(C), dt, name="BatchNorm2d.weight") if affine else None
        self.bias = Variable(np.zeros(C), dt, name="BatchNorm2d.bias") if affine else None
        self.running_mean = np.zeros(C, dt)
        self.running_var = np.ones(C, dt)
        self.num_batches_tracked = 0

    @property
    def affine(self) -> bool:
        return self.weight is not None

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: expected 4-D input (N, C, H, W) with C = num_features = "
                             f"{self.num_features}, got shape {x.shape}")
        momentum = self.momentum
        if self.training:
            if x.shape[0] * x.shape[2] * x.shape[3] <= 1:  # checked before the count moves
                raise ValueError(f"BatchNorm2d: expected more than 1 value per channel when training, got input "
                                 f"of shape {x.shape}")
            if momentum is None:  # PyTorch's cumulative average: this batch's weight 1 / (batches so far)
                momentum = 1.0 / (self.num_batches_tracked + 1)
        y = batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                       0.0 if momentum is None else momentum, self.eps)
        if self.training:  # counted once the forward has succeeded (a refused input counts nothing)
            self.num_batches_tracked += 1
        return y

    def __repr__(self) -> str:
        return (f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine})")


class Dropout(Module):
    """Inverted dropout: in training mode each element is kept with probability ``1 - p`` and
    scaled by ``1 / (1 - p)`` (zeroed otherwise), so the expectation is unchanged; in eval mode,
    and for ``p == 0``, the input passes through. ``p == 1`` gives zeros.

    Parameters
    ----------
    p : float in [0, 1]
        The probability of zeroing an element.
    random_state : int, Generator or None
        The source of the masks (drawn on the host with numpy; copied to the GPU for GPU input).
        Each layer holds its own stream: two layers built with the same int seed draw the same
        masks for same-shaped inputs (pass one shared ``Generator``, or distinct seeds, to avoid
        that); ``None`` seeds from the operating system (runs are not reproducible). There is
        no global seed.

    Notes
    -----
    The output is ``x * mask`` (:func:`numlin.multiply` with a constant mask of zeros and
    ``1 / (1 - p)``), so its gradient is ``g * mask``, to any order.
    """

    def __init__(self, p: float = 0.5, *, random_state: Any = None):
        if not isinstance(p, numbers.Real) or isinstance(p, (bool, np.bool_)):
            raise TypeError(f"Dropout: p must be a real number, got {p!r}")
        if not 0.0 <= float(p) <= 1.0:  # NaN fails too
            raise ValueError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self._rng = _rng(random_state)

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if not self.training or self.p == 0.0:
            return x
        dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        draw = self._rng.random(x.shape, dtype=np.float32 if dt == np.float32 else np.float64)
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        mask = np.where(draw >= self.p, dt.type(scale), dt.type(0))  # kept with probability 1 - p
        return ops.multiply(x, Tensor(mask, device="cuda" if x.device == "cuda" else None))

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class GlobalAvgPool2d(Module):
    """The mean over each channel's plane: ``(N, C, H, W) -> (N, C)`` (:func:`numlin.mean` over
    axes 2 and 3; differentiable)."""

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 4:
            raise ValueError(f"GlobalAvgPool2d: expected 4-D input (N, C, H, W), got shape {x.shape}")
        return ops.mean(x, (2, 3))

    def __repr__(self) -> str:
        return "GlobalAvgPool2d()"
