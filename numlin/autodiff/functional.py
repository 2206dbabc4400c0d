"""Function transformations on the tape, with JAX's names and argument conventions: ``jacobian``,
``hessian``, ``jvp`` (forward mode) and ``hvp`` (Hessian-vector products).

Everything here is reverse mode underneath; the ops have no tangent rules. ``jvp`` is the
"double-vjp" (linear transposition) trick: the vector-Jacobian product ``u -> J^T u`` is linear
in the cotangent ``u``, so differentiating it once more, with respect to ``u`` and with the
tangent ``v`` as the seed, gives ``J v``. That costs the forward pass and two reverse passes (the
first one recorded), and needs every backward rule on the path to be differentiable (every op's
is: conv2d, the pools, cross-entropy and batch normalization included).

Conventions (as :func:`numlin.grad`): arguments may be Tensors, numpy arrays or Python and numpy
scalars (converted with :class:`~numlin.Tensor`); results are Tensors on the arguments' device;
each differentiated argument is a fresh Tensor, so one object passed twice counts as two inputs;
a function output that does not depend on an argument gets zeros, never None.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np

from . import ops
from .tape import GradientTape, _argnums, _check_argnums, _flatten, _fresh
from .tensor import Tensor

__all__ = ["jacobian", "hessian", "jvp", "hvp"]


def _arg(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _float_primals(primals: Sequence, op: str) -> list[Tensor]:
    """Fresh Tensors for ``primals``; integer ones are refused (they have no tangent space)."""
    xs = []
    for i, p in enumerate(primals):
        x = _arg(p)
        if x.dtype.kind != "f":
            raise TypeError(f"{op}: primal {i} has integer dtype {x.dtype}; only float32/float64 primals are "
                            "differentiable (close over integer arguments, e.g. with functools.partial)")
        xs.append(_fresh(x))
    return xs


def _check_pairs(primals: Any, vectors: Any, op: str, what: str) -> None:
    if not isinstance(primals, (tuple, list)) or not isinstance(vectors, (tuple, list)):
        raise TypeError(f"{op}: primals and {what} must be tuples or lists (one entry per positional argument "
                        f"of f); found {type(primals).__name__} and {type(vectors).__name__}")
    if len(primals) != len(vectors):
        raise TypeError(f"{op}: primals and {what} must have the same structure; got {len(primals)} primals and "
                        f"{len(vectors)} {what}")


def _vector(v: Any, x: Tensor, i: int, op: str, what: str) -> Tensor:
    """Tangent ``v`` for primal ``x``: the same shape and dtype, on ``x``'s device (a host array
    for a GPU primal is copied there; a Python scalar takes ``x``'s dtype)."""
    if isinstance(v, Tensor):
        if v.device != x.device:
            raise TypeError(f"{op}: {what} {i} is on {v.device} but its primal is on {x.device}")
        t = v
    elif isinstance(v, numbers.Real) and not isinstance(v, (np.generic, bool)):
        t = Tensor(np.asarray(v, x.dtype), device=x.device)
    else:
        t = Tensor(v, device=x.device)
    if t.shape != x.shape:
        raise ValueError(f"{op}: {what} {i} has shape {t.shape} but its primal has shape {x.shape}; they must "
                         "be equal")
    if t.dtype != x.dtype:
        raise TypeError(f"{op}: {what} {i} has dtype {t.dtype} but its primal has dtype {x.dtype}; they must be "
                        "equal")
    return t


def _outputs(out: Any, op: str) -> tuple[list, Callable]:
    leaves, rebuild = _flatten(out, "the function's output", op)
    for y in leaves:
        if y.dtype.kind != "f":
            raise TypeError(f"{op}: the function's output has integer dtype {y.dtype}; it is not differentiable")
    return leaves, rebuild


def jacobian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """``f`` -> a function returning the Jacobian of ``f`` with respect to ``args[argnums]``
    (JAX's ``jax.jacrev``).

    Parameters
    ----------
    f : callable
        Tensors in; a Tensor, or a (nested) list/tuple/dict of Tensors, out.
    argnums : int or tuple of ints
        Which positional arguments to differentiate.

    Returns
    -------
    callable
        Called like ``f``; for an output of shape ``o`` and an argument of shape ``s`` it
        returns a Tensor of shape ``o + s`` (``J[i..., j...] = d out[i...] / d arg[j...]``), a
        tuple of them (one per argument) for a tuple ``argnums``, and the output's structure
        around those for a structured output. An output independent of an argument gives zeros.

    Raises
    ------
    TypeError
        ``f`` not callable; ``argnums`` not an int or a tuple of ints; ``f`` returning something
        other than Tensors; an integer argument to differentiate.
    ValueError
        ``argnums`` empty or out of range for the call.

    Notes
    -----
    Reverse mode, one backward pass per output element (:meth:`GradientTape.jacobian`): cheap
    for few outputs and many inputs. The result is recorded by enclosing tapes, so
    ``jacobian(jacobian(f))`` and :func:`hessian` work.

    Examples
    --------
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> nl.jacobian(lambda x: nl.matmul(W, x))(np.array([1.0, -1.0])).numpy()
    array([[1., 2.],
           [3., 4.],
           [5., 6.]])
    """
    return _jacobian(f, argnums, "jacobian")


def _jacobian(f: Callable, argnums: int | Sequence[int], op: str) -> Callable:
    if not callable(f):
        raise TypeError(f"{op}: f must be callable, got {type(f).__name__}")
    _check_argnums(argnums, op)
    several = isinstance(argnums, (tuple, list))

    def wrapped(*args, **kwargs):
        idx = _argnums(argnums, len(args), op)
        args = list(args)
        for i in dict.fromkeys(idx):
            x = _arg(args[i])
            if x.dtype.kind != "f":
                raise TypeError(f"{op}: argument {i} has integer dtype {x.dtype}; only float32/float64 arguments "
                                "are differentiable")
            args[i] = _fresh(x)
        with GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            for i in idx:
                tape.watch(args[i])
            out = f(*args, **kwargs)
        leaves, rebuild = _outputs(out, op)
        srcs = [args[i] for i in idx]
        per_leaf = []
        for y in leaves:
            jac = tape.jacobian(y, srcs, unconnected_gradients="zero")
            per_leaf.append(tuple(jac) if several else jac[0])
        return rebuild(per_leaf)

    wrapped.__doc__ = f"Jacobian of {getattr(f, '__name__', 'f')}"
    return wrapped


def hessian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """``f`` -> a function returning the Hessian of ``f`` with respect to ``args[argnums]``
    (JAX's ``jax.hessian``): the Jacobian of the Jacobian, reverse over reverse.

    Parameters
    ----------
    f : callable
        Tensors in, a Tensor out; a scalar output is the usual case.
    argnums : int or tuple of ints

    Returns
    -------
    callable
        For an output of shape ``o`` and an argument of shape ``s``: a Tensor of shape
        ``o + s + s`` (``s + s`` for a scalar ``f``). For a tuple ``argnums``, nested tuples
        ``H[i][j] = d^2 f / d args[argnums[i]] d args[argnums[j]]``, as JAX.

    Raises
    ------
    As :func:`jacobian`.

    Notes
    -----
    A non-scalar ``f`` is supported as in JAX (each output element's Hessian), not refused.
    Cost: one backward pass for the gradient, then one backward pass through the recorded
    gradient per element of the argument. Every backward rule on the path must be
    differentiable.

    Examples
    --------
    >>> h = nl.hessian(lambda x: nl.sum(x ** 3))(np.array([1.0, 2.0]))
    >>> h.numpy()
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    h = _jacobian(_jacobian(f, argnums, "hessian"), argnums, "hessian")
    h.__doc__ = f"Hessian of {getattr(f, '__name__', 'f')}"
    return h


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward-mode Jacobian-vector product (JAX's ``jax.jvp``): ``(f(*primals), J @ tangents)``.

    Parameters
    ----------
    f : callable
        Tensors in; a Tensor, or a (nested) list/tuple/dict of Tensors, out.
    primals : tuple or list
        One entry per positional argument of ``f`` (Tensors, arrays or scalars; float dtypes).
    tangents : tuple or list
        One entry per primal, each of its primal's shape and dtype (a Python scalar takes the
        primal's dtype; a host array for a GPU primal is copied to the GPU).

    Returns
    -------
    (out, tangent_out)
        ``out = f(*primals)``; ``tangent_out = sum_i J_i tangents[i]`` (``J_i`` the Jacobian with
        respect to primal ``i``) in the structure and shapes of ``out``, as Tensors.

    Raises
    ------
    TypeError
        ``f`` not callable; ``primals`` or ``tangents`` not tuples/lists, or of different
        lengths; a tangent whose dtype differs from its primal's, or on another device; integer
        primals; ``f`` returning something other than float Tensors.
    ValueError
        A tangent whose shape differs from its primal's (the message names both shapes).

    Notes
    -----
    Computed by the double-vjp trick: with a dummy cotangent ``u`` watched on an outer tape,
    ``g(u) = J^T u`` is recorded, and the gradient of ``<g(u), v>`` with respect to ``u`` is
    ``J v``. Cost: the forward pass and two reverse passes (the first one recorded). For
    ``tanh(W @ x)`` with ``W`` 500x500 on the CPU that measured about 4x the forward pass, 1.8x
    what per-op tangent rules compute (primal and tangent side by side, 2.3x the forward pass),
    and 1/170 of forming the Jacobian first; tangent rules would need a forward rule next to
    every backward one in :mod:`numlin.autodiff.ops`. The backward rules on the path must be
    differentiable.

    Examples
    --------
    >>> out, t = nl.jvp(nl.sin, (np.array([0.0, 1.0]),), (np.array([1.0, 2.0]),))
    >>> t.numpy()  # cos(x) * v
    array([1.        , 1.08060461])
    """
    if not callable(f):
        raise TypeError(f"jvp: f must be callable, got {type(f).__name__}")
    _check_pairs(primals, tangents, "jvp", "tangents")
    xs = _float_primals(primals, "jvp")
    vs = [_vector(v, x, i, "jvp", "tangent") for i, (v, x) in enumerate(zip(tangents, xs))]
    with GradientTape(watch_accessed_variables=False) as inner:
        inner.watch(xs)
        out = f(*xs)
    leaves, rebuild = _outputs(out, "jvp")
    us = [ops.zeros_like(y) for y in leaves]  # the dummy cotangents: g(u) is linear, any value works
    with GradientTape(watch_accessed_variables=False) as outer:
        outer.watch(us)
        gs = inner.gradient(leaves, xs, output_gradients=us, unconnected_gradients="zero")
    if not xs:
        return out, rebuild([ops.zeros_like(y) for y in leaves])
    tangent_out = outer.gradient(gs, us, output_gradients=vs, unconnected_gradients="zero")
    return out, rebuild(tangent_out)


def hvp(f: Callable, primals: Sequence[Any], vectors: Sequence[Any]) -> Any:
    """Hessian-vector product of a scalar ``f`` without forming the Hessian:
    ``H @ vectors`` where ``H`` is the Hessian of ``f`` with respect to all of ``primals``.

    Parameters
    ----------
    f : callable
        Tensors in, a scalar (one-element) Tensor out.
    primals : tuple or list
        One entry per positional argument of ``f``, as in :func:`jvp`.
    vectors : tuple or list
        One entry per primal, of its shape and dtype.

    Returns
    -------
    Tensor or tuple of Tensors
        ``sum_j d^2 f / d x_i d x_j  v_j`` for each primal ``i``: a Tensor of the primal's shape
        for one primal (as JAX's ``jvp(grad(f), primals, vectors)[1]``), a tuple for several.

    Raises
    ------
    TypeError, ValueError
        As :func:`jvp`; ValueError also for an ``f`` whose output has more than one element.

    Notes
    -----
    Reverse over reverse: the gradient ``g`` of ``f`` is recorded by an outer tape, then the
    outer tape's gradient of ``<g, v>`` is ``H v``: one forward and two reverse passes.

    Examples
    --------
    >>> nl.hvp(lambda x: nl.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),)).numpy()
    array([ 6., 12.])
    """
    if not callable(f):
        raise TypeError(f"hvp: f must be callable, got {type(f).__name__}")
    _check_pairs(primals, vectors, "hvp", "vectors")
    xs = _float_primals(primals, "hvp")
    vs = [_vector(v, x, i, "hvp", "vector") for i, (v, x) in enumerate(zip(vectors, xs))]
    with GradientTape(watch_accessed_variables=False) as outer:
        outer.watch(xs)
        with GradientTape(watch_accessed_variables=False) as inner:
            inner.watch(xs)
            y = f(*xs)
        if not isinstance(y, Tensor):
            raise TypeError(f"hvp: the function must return a Tensor, got {type(y).__name__}")
        if y.size != 1:
            raise ValueError(f"hvp: the function must return a scalar (one element), got shape {y.shape}; "
                             "use jacobian/hessian for a vector-valued function")
        _outputs(y, "hvp")
        gs = inner.gradient(y, xs, unconnected_gradients="zero")
    hv = outer.gradient(gs, xs, output_gradients=vs, unconnected_gradients="zero") if xs else []
    return hv[0] if len(hv) == 1 else tuple(hv)
