"""Optimizers: SGD with momentum and Adam, updating :class:`numlin.Variable` s in place with
jitted kernels (the ``optim`` kernel module of the variable's backend, ``numlin.kernels.cpu.optim``
or ``numlin.kernels.cuda.optim``).

Keras's interface: ``opt.apply_gradients(zip(grads, params))``, one call per step, with the
gradients from :meth:`numlin.GradientTape.gradient`. A None gradient (a parameter the loss does
not depend on) leaves that parameter and its state untouched.
"""
from __future__ import annotations

from typing import Any, Iterable

from ._dispatch import backend_named, is_device_array
from ._validate import as_real_scalar
from .autodiff.tensor import Tensor, Variable

__all__ = ["Optimizer", "SGD", "Adam"]


def _check_rate(opt: str, name: str, v: Any, lo: float, hi: float | None = None, lo_open: bool = False) -> float:
    v = as_real_scalar(opt, name, v)
    bad = v <= lo if lo_open else v < lo
    if bad or (hi is not None and v >= hi) or v != v:
        rng = f"({lo}, {hi})" if hi is not None else (f"> {lo}" if lo_open else f">= {lo}")
        raise ValueError(f"{opt}: {name} must be {rng}, got {v}")
    return v


class Optimizer:
    """Base class: per-parameter state keyed by the Variable, one kernel launch per parameter."""

    def __init__(self):
        self._state: dict[int, tuple] = {}
        self.iterations = 0

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Variable]]) -> None:
        """Update each Variable with its gradient, in place.

        Parameters
        ----------
        grads_and_vars : iterable of (gradient, Variable)
            Gradients as Tensors or arrays of the variable's shape (None: skipped).

        Raises
        ------
        TypeError
            A target that is not a Variable, or a gradient on another device.
        ValueError
            A gradient whose shape differs from its variable's.
        """
        checked = []
        for g, v in grads_and_vars:  # check every pair before changing anything
            if not isinstance(v, Variable):
                raise TypeError(f"{type(self).__name__}.apply_gradients: {type(v).__name__} is not a Variable")
            if g is None:
                continue
            gt = g if isinstance(g, Tensor) else Tensor(g, device=v.device)
            if gt.device != v.device:
                raise TypeError(f"{type(self).__name__}: gradient on {gt.device} for a variable on {v.device}")
            if gt.shape != v.shape:
                raise ValueError(f"{type(self).__name__}: gradient of shape {gt.shape} for variable "
                                 f"{v.name or ''} of shape {v.shape}")
            if gt.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: gradient of dtype {gt.dtype} for variable {v.name or ''}")
            checked.append((gt, v))
        self.iterations += 1
        for gt, v in checked:
            be = backend_named(v.device)
            gdata = be.arrays.contiguous(be.arrays.cast(gt.data, v.dtype))
            self._update(be.optim, v, gdata)
            v._version += 1

    def _slots(self, v: Variable, n: int, counter: bool = False) -> tuple:
        """``n`` zero-initialised buffers shaped like ``v`` (and a one-element step counter)."""
        st = self._state.get(id(v))
        moved = st is not None and st[0] is v and n and ("cuda" if is_device_array(st[1]) else "cpu") != v.device
        if moved:  # the model moved to the other device: its state follows
            st = (v, *[Tensor(b, device=v.device).data for b in st[1:n + 1]], *st[n + 1:])
            self._state[id(v)] = st
        if st is None or st[0] is not v:
            full = backend_named(v.device).arrays.full
            st = (v, *[full(v.shape, 0.0, v.dtype) for _ in range(n)], *([[0]] if counter else []))
            self._state[id(v)] = st
        return st[1:]

    def _update(self, kern, v: Variable, g) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, PyTorch's form:
    ``v = momentum * v + g; p -= learning_rate * v``.

    Parameters
    ----------
    learning_rate : float > 0
    momentum : float in [0, 1)
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0):
        super().__init__()
        self.learning_rate = _check_rate("SGD", "learning_rate", learning_rate, 0.0, lo_open=True)
        self.momentum = _check_rate("SGD", "momentum", momentum, 0.0, 1.0)

    def _update(self, kern, v: Variable, g) -> None:
        vel = self._slots(v, 1)[0] if self.momentum else None
        kern.sgd(v.data, g, vel, self.learning_rate, self.momentum)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; the step count is kept per parameter (as
    PyTorch does), so a parameter skipped with a None gradient is corrected for its own steps.

    Parameters
    ----------
    learning_rate : float > 0
    beta_1, beta_2 : float in [0, 1)
    epsilon : float > 0 (Keras's default 1e-7)
    """

    def __init__(self, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        super().__init__()
        self.learning_rate = _check_rate("Adam", "learning_rate", learning_rate, 0.0, lo_open=True)
        self.beta_1 = _check_rate("Adam", "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _check_rate("Adam", "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _check_rate("Adam", "epsilon", epsilon, 0.0, lo_open=True)

    def _update(self, kern, v: Variable, g) -> None:
        m, s, steps = self._slots(v, 2, counter=True)
        steps[0] += 1  # per parameter, as PyTorch: a skipped (None) gradient does not advance it
        kern.adam(v.data, g, m, s, self.learning_rate, self.beta_1, self.beta_2, self.epsilon, steps[0])
