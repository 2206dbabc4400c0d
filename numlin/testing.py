"""Gradient checking by central finite differences (JAX's ``check_grads`` idea, on tapes)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ._validate import as_int
from .autodiff import ops
from .autodiff.tape import GradientTape
from .autodiff.tensor import Tensor

__all__ = ["check_grads"]


def _scalar_objective(f: Callable, weights: list) -> Callable:
    """``x -> <u, f(x)>`` with a fixed random ``u`` (``f``'s output may have any shape)."""

    def obj(*xs):
        y = f(*xs)
        if not isinstance(y, Tensor):
            raise TypeError(f"check_grads: f must return a Tensor, got {type(y).__name__}")
        if not weights:
            rng = np.random.default_rng(12345)
            weights.append(Tensor(rng.standard_normal(y.shape), y.dtype, device=y.device))
        return ops.sum(ops.multiply(y, weights[0]))

    return obj


def check_grads(f: Callable, args: Sequence[Any], order: int = 1, *, eps: float | None = None,
                rtol: float | None = None, atol: float | None = None, n_directions: int = 3,
                random_state: Any = 0, _level: int = 1) -> None:
    """Check the tape's gradients of ``f`` at ``args`` against central finite differences.

    Along ``n_directions`` random directions ``v`` (one Gaussian block per argument), the
    directional derivative from the tape, ``sum_i <grad_i, v_i>``, must match
    ``(L(x + eps v) - L(x - eps v)) / (2 eps)`` where ``L = <u, f(x)>`` for a fixed random ``u``.
    With ``order=2`` the gradient itself (computed under nested tapes) is checked the same way.

    Parameters
    ----------
    f : callable
        Tensors in, a Tensor out.
    args : sequence of Tensors or arrays
        Float arguments; use float64 for meaningful differences.
    order : int
        1: gradients; 2: also second derivatives (Hessian-vector products); and so on.
    eps, rtol, atol : float, optional
        Step and tolerances; defaults from the dtype (float64: 1e-6, 1e-5, 1e-7;
        float32: 1e-3, 3e-2, 1e-3).
    n_directions : int
    random_state : int or Generator

    Raises
    ------
    AssertionError
        A mismatch, with both numbers and the direction's index.
    """
    if not callable(f):
        raise TypeError(f"check_grads: f must be callable, got {type(f).__name__}")
    order = as_int("check_grads", "order", order, minimum=1)
    n_directions = as_int("check_grads", "n_directions", n_directions, minimum=1)
    for name, v in (("eps", eps), ("rtol", rtol), ("atol", atol)):
        if v is not None and not (isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                                  and np.isfinite(v) and (v > 0 if name == "eps" else v >= 0)):
            raise ValueError(f"check_grads: {name} must be a finite number {'> 0' if name == 'eps' else '>= 0'}, "
                             f"got {v!r}")
    if isinstance(args, (Tensor, np.ndarray, str)) or not isinstance(args, (list, tuple)):
        raise TypeError(f"check_grads: args must be a list or tuple of arguments, got {type(args).__name__}")
    xs = [a if isinstance(a, Tensor) else Tensor(a) for a in args]
    for i, x in enumerate(xs):
        if x.dtype.kind != "f":
            raise TypeError(f"check_grads: argument {i} has dtype {x.dtype}; only float arguments are differentiable")
    f64 = all(x.dtype == np.float64 for x in xs)  # steps and tolerances of the least precise argument
    eps = eps if eps is not None else (1e-6 if f64 else 1e-3)
    rtol = rtol if rtol is not None else (1e-5 if f64 else 3e-2)
    atol = atol if atol is not None else (1e-7 if f64 else 1e-3)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    weights: list = []
    L = _scalar_objective(f, weights)
    host = [x.numpy() for x in xs]

    def at(shift: list | None, scale: float) -> float:
        vals = [Tensor(h if shift is None else h + scale * s, h.dtype, device=x.device)
                for h, s, x in zip(host, shift or [None] * len(host), xs)]
        return float(L(*vals))

    for d in range(n_directions):
        v = [rng.standard_normal(h.shape).astype(h.dtype) for h in host]
        norm = np.sqrt(np.sum([np.sum(np.square(vi, dtype=np.float64)) for vi in v])) or 1.0
        v = [vi / norm for vi in v]
        with GradientTape() as tape:
            xt = [Tensor(h, device=x.device) for h, x in zip(host, xs)]
            tape.watch(xt)
            out = L(*xt)
        grads = tape.gradient(out, xt, unconnected_gradients="zero")
        analytic = float(np.sum([np.sum(g.numpy().astype(np.float64) * vi) for g, vi in zip(grads, v)]))
        numeric = (at(v, eps) - at(v, -eps)) / (2 * eps)
        if not abs(analytic - numeric) <= atol + rtol * max(abs(analytic), abs(numeric)):
            raise AssertionError(f"check_grads: order-{_level} directional derivative {d}: tape {analytic!r} vs finite "
                                 f"differences {numeric!r} (eps={eps}, rtol={rtol}, atol={atol})")
    if order > 1:
        w = [rng.standard_normal(h.shape).astype(h.dtype) for h in host]

        def grad_dot_w(*ts):
            with GradientTape() as inner:
                inner.watch(list(ts))
                out = L(*ts)
            gs = inner.gradient(out, list(ts), unconnected_gradients="zero")
            total = None
            for g, wi in zip(gs, w):
                term = ops.sum(ops.multiply(g, Tensor(wi, device=g.device)))
                total = term if total is None else ops.add(total, term)
            return total

        check_grads(grad_dot_w, xs, order - 1, eps=eps, rtol=rtol * 10, atol=atol * 10,
                    n_directions=n_directions, random_state=rng, _level=_level + 1)
