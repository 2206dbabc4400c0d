"""Reverse-mode differentiation: :class:`GradientTape` (TensorFlow's interface), ``grad`` and
``value_and_grad``.

Every op calls :func:`record` (:mod:`._record`) with its inputs, its output and its
vector-Jacobian product ``vjp(g, needs) -> (grad per input)``. Each active, recording tape that
watches one of the inputs appends a node; the output becomes watched on that tape. ``gradient``
walks the nodes backwards (recording order is a topological order) and calls each ``vjp`` with
the incoming gradient as a Tensor. The ``vjp`` rules are written with the same ops, so an outer
tape records the backward pass of an inner one: nested tapes give higher derivatives.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from .._dispatch import recycling
from .._validate import is_int
from . import ops
from ._record import STACK as _STACK, Node as _Node, active, record
from .tensor import Tensor, Variable

__all__ = ["GradientTape", "grad", "value_and_grad", "record", "active"]


def _flatten(structure: Any, what: str, op: str = "gradient") -> tuple[list, Callable]:
    """Tensors of a tensor / list / tuple / dict (nested) and a function rebuilding the structure."""
    if isinstance(structure, Tensor):
        return [structure], lambda leaves: leaves[0]
    if isinstance(structure, dict):
        keys = list(structure)
        parts = [_flatten(structure[k], what, op) for k in keys]
        sizes = [len(p[0]) for p in parts]

        def rebuild_dict(leaves):
            out, i = {}, 0
            for k, (_, fn), n in zip(keys, parts, sizes):
                out[k] = fn(leaves[i:i + n])
                i += n
            return out

        return [t for p in parts for t in p[0]], rebuild_dict
    if isinstance(structure, (list, tuple)):
        parts = [_flatten(s, what, op) for s in structure]
        sizes = [len(p[0]) for p in parts]
        kind = type(structure)

        def rebuild_seq(leaves):
            out, i = [], 0
            for (_, fn), n in zip(parts, sizes):
                out.append(fn(leaves[i:i + n]))
                i += n
            return out if kind is list else tuple(out)

        return [t for p in parts for t in p[0]], rebuild_seq
    raise TypeError(f"{op}: {what} must be a Tensor or a list, tuple or dict of Tensors, "
                    f"got {type(structure).__name__}")


def _check_unconnected(value: Any, op: str) -> None:
    if not isinstance(value, str) or value not in ("none", "zero"):
        raise ValueError(f"{op}: Unknown value for unconnected_gradients: {value!r} (must be 'none' or 'zero')")


def _check_differentiable(t: Tensor, what: str) -> None:
    if t.dtype.kind != "f":
        raise TypeError(f"gradient: {what} has integer dtype {t.dtype}; integer tensors are not differentiable "
                        "(use float32 or float64)")


def _one_hot(target: Tensor, k: int, batch: int | None = None) -> Tensor:
    """A seed of ``target``'s shape, dtype and device: 1 at flat index ``k``, or, with ``batch``,
    at element ``k`` of every one of the ``batch`` rows."""
    arr = np.zeros(target.size, target.dtype)
    if batch is None:
        arr[k] = 1
    else:
        arr.reshape(batch, -1)[:, k] = 1
    return Tensor(arr.reshape(target.shape), device=target.device)


def _zeros(shape: tuple, like: Tensor) -> Tensor:
    """Zeros of ``shape`` in ``like``'s dtype, on its device (not recorded)."""
    return Tensor(np.zeros(shape, like.dtype), device=like.device)


class GradientTape:
    """Record operations for reverse-mode differentiation (TensorFlow's ``tf.GradientTape``).

    Parameters
    ----------
    persistent : bool
        A persistent tape may be asked for gradients many times (and keeps what it saved until
        it is deleted); a non-persistent one frees everything after the first ``gradient`` and
        raises RuntimeError on a second call.
    watch_accessed_variables : bool
        Watch every trainable :class:`Variable` an op reads inside the ``with`` block.

    Examples
    --------
    >>> x = nl.constant(2.0); y = nl.constant(5.0)
    >>> with nl.GradientTape() as g:
    ...     g.watch(x)
    ...     out = nl.log(x) + nl.subtract(nl.multiply(x, y), nl.sin(y))
    >>> float(g.gradient(out, x))
    5.5

    Nested tapes give higher derivatives: the inner tape's ``gradient`` call is recorded by the
    outer tape.
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        for name, flag in (("persistent", persistent), ("watch_accessed_variables", watch_accessed_variables)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"GradientTape: {name} must be True or False, got {flag!r}")
        self._persistent = bool(persistent)
        self._watch_accessed = bool(watch_accessed_variables)
        self._watched: dict[int, Tensor] | None = {}
        self._nodes: list[_Node] | None = []
        self._recording = False
        self._variables: tuple = ()
        self._recycling = None  # the open recycling block while in `with`

    def __enter__(self) -> "GradientTape":
        if self._recording:
            raise RuntimeError("GradientTape: this tape is already recording (a tape enters one `with` at a time)")
        if self._nodes is None:
            raise RuntimeError("GradientTape: a non-persistent tape cannot be reused after gradient()")
        self._recording = True
        _STACK.tapes.append(self)
        # a training step's activations: large results reuse dropped ones' memory (kernels.cpu._pool)
        self._recycling = recycling()
        self._recycling.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._recording = False
        if self in _STACK.tapes:
            _STACK.tapes.remove(self)
        block, self._recycling = self._recycling, None
        if block is not None:
            block.__exit__(None, None, None)

    def watch(self, tensor: Any) -> None:
        """Watch ``tensor`` (a Tensor or a list/tuple/dict of them): ops on it get recorded."""
        if self._watched is None:
            raise RuntimeError("GradientTape.watch: this tape has already computed its gradient")
        for t in _flatten(tensor, "the tensor to watch", "GradientTape.watch")[0]:
            _check_differentiable(t, "a watched tensor")
            self._watched[id(t)] = t

    def watched_variables(self) -> tuple:
        """The Variables this tape watches (kept after a non-persistent tape frees its records)."""
        if self._watched is None:
            return self._variables
        return tuple(t for t in self._watched.values() if isinstance(t, Variable))

    def reset(self) -> None:
        """Forget everything recorded so far (inside or outside the ``with`` block)."""
        self._nodes = []
        self._watched = {}

    @contextlib.contextmanager
    def stop_recording(self):
        """Inside this block, ops are not recorded on this tape."""
        if not self._recording:
            raise RuntimeError("GradientTape.stop_recording: the tape is not recording (use it inside `with`)")
        self._recording = False
        try:
            yield
        finally:
            self._recording = True

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = "none") -> Any:
        """Gradients of ``target`` with respect to ``sources``.

        Parameters
        ----------
        target : Tensor or list/tuple of Tensors
            A non-scalar target (or several) is differentiated as the sum of all its elements
            (TensorFlow's rule), unless ``output_gradients`` weights them.
        sources : Tensor, or a list, tuple or dict (nested) of Tensors
        output_gradients : Tensor or array, or a list/tuple matching ``target``, optional
            The vector of the vector-Jacobian product, one per target, each of its target's shape.
        unconnected_gradients : {"none", "zero"}
            What a source that ``target`` does not depend on gets: None or zeros of its shape.

        Returns
        -------
        Tensors in the structure of ``sources``.

        Raises
        ------
        RuntimeError
            A second call on a non-persistent tape.
        TypeError
            Integer sources or targets.
        ValueError
            An ``output_gradients`` entry whose shape differs from its target's.
        """
        _check_unconnected(unconnected_gradients, "gradient")
        self._check_alive("gradient")
        targets, _ = _flatten(target, "target")
        srcs, rebuild = _flatten(sources, "sources")
        for t in targets:
            _check_differentiable(t, "the target")
        for s in srcs:
            _check_differentiable(s, "a source")
        if output_gradients is None:
            seeds = [None] * len(targets)
        else:
            seeds = list(output_gradients) if isinstance(output_gradients, (list, tuple)) \
                and isinstance(target, (list, tuple)) else [output_gradients]
            if len(seeds) != len(targets):
                raise ValueError(f"gradient: {len(seeds)} output_gradients for {len(targets)} targets")
        result = self._backward(targets, seeds, srcs)
        if unconnected_gradients == "zero":
            result = [ops.zeros_like(s) if g is None else g for s, g in zip(srcs, result)]
        self._finish()
        return rebuild(result)

    def jacobian(self, target: Tensor, sources: Any, unconnected_gradients: str = "none") -> Any:
        """The Jacobian of ``target`` with respect to each source (TensorFlow's ``tape.jacobian``).

        Parameters
        ----------
        target : Tensor
            Any shape (0-d included).
        sources : Tensor, or a list, tuple or dict (nested) of Tensors
        unconnected_gradients : {"none", "zero"}
            What a source that ``target`` does not depend on gets: None, or zeros of shape
            ``target.shape + source.shape``.

        Returns
        -------
        Tensors in the structure of ``sources``; the one for ``source`` has shape
        ``target.shape + source.shape`` and ``source``'s dtype, and
        ``J[i..., j...] = d target[i...] / d source[j...]``.

        Raises
        ------
        RuntimeError
            A second gradient / jacobian / batch_jacobian call on a non-persistent tape.
        TypeError
            ``target`` not a Tensor; integer targets or sources.

        Notes
        -----
        Cost: one reverse pass per element of ``target`` (seeded with a one-hot
        ``output_gradients``, built on the host and copied to ``target``'s device), then a
        stack; for a wide ``target`` and few source elements, :func:`numlin.jvp` per source
        element is cheaper. As in TensorFlow (whose
        default vectorised path answers in one call), a non-persistent tape answers one
        ``jacobian`` and is then used up. The result is built from differentiable ops, so an
        outer tape records it (``outer.jacobian(inner.jacobian(y, x), x)`` is a Hessian).

        Examples
        --------
        >>> x = nl.constant([1.0, 2.0])
        >>> with nl.GradientTape() as g:
        ...     g.watch(x)
        ...     y = x * x
        >>> g.jacobian(y, x).numpy()
        array([[2., 0.],
               [0., 4.]])
        """
        _check_unconnected(unconnected_gradients, "jacobian")
        self._check_alive("jacobian")
        if not isinstance(target, Tensor):
            raise TypeError(f"jacobian: target must be a Tensor, got {type(target).__name__}")
        _check_differentiable(target, "the target")
        srcs, rebuild = _flatten(sources, "sources", "jacobian")
        for s in srcs:
            _check_differentiable(s, "a source")
        n = target.size
        if n == 0:  # no rows to seed: one pass (ones of no elements) tells which sources connect
            rows = [self._backward([target], [None], srcs)]
        else:
            rows = [self._backward([target], [_one_hot(target, k)], srcs) for k in range(n)]
        result = []
        for i, s in enumerate(srcs):
            shape = target.shape + s.shape
            if rows[0][i] is None:
                result.append(_zeros(shape, s) if unconnected_gradients == "zero" else None)
            elif n == 0 or s.size == 0:
                result.append(_zeros(shape, s))
            else:
                result.append(ops.reshape(ops.stack([r[i] for r in rows]), shape))
        self._finish()
        return rebuild(result)

    def batch_jacobian(self, target: Tensor, source: Tensor, unconnected_gradients: str = "none") -> Tensor | None:
        """Per-example Jacobians, stacked (TensorFlow's ``tape.batch_jacobian``).

        ``target[b, ...]`` must depend on ``source[b, ...]`` only (rows independent, as in a
        batch through a network without batch statistics); then the result equals
        ``stack([jacobian(target[b], source[b]) for b in range(B)])``. A dependence between rows
        is not detected: it is summed into the diagonal blocks.

        Parameters
        ----------
        target : Tensor
            Shape ``(B, y1, ..., yn)``, rank 2 or more.
        source : Tensor
            Shape ``(B, x1, ..., xm)``, rank 2 or more, the same ``B``.
        unconnected_gradients : {"none", "zero"}
            What an unconnected ``source`` gets: None or zeros.

        Returns
        -------
        Tensor of shape ``(B, y1, ..., yn, x1, ..., xm)`` in ``source``'s dtype (or None).

        Raises
        ------
        ValueError
            A rank below 2 ("must have rank at least 2"), or batch sizes that differ ("Need
            first dimension of target shape ... and source shape ... to match.").
        RuntimeError
            A second call on a non-persistent tape.
        TypeError
            ``target`` or ``source`` not a Tensor; integer dtypes.

        Notes
        -----
        Cost: one reverse pass per element of one row of ``target`` (``y1 * ... * yn`` passes),
        each seeding that element in all ``B`` rows at once, not ``B`` times as many. TensorFlow
        returns zeros for an unconnected source whatever ``unconnected_gradients`` says; numlin
        follows the argument, as ``jacobian`` does.

        Examples
        --------
        >>> x = nl.constant([[1.0, 2.0], [3.0, 4.0]])
        >>> with nl.GradientTape() as g:
        ...     g.watch(x)
        ...     y = x * x
        >>> g.batch_jacobian(y, x).numpy()
        array([[[2., 0.],
                [0., 4.]],
        <BLANKLINE>
               [[6., 0.],
                [0., 8.]]])
        """
        _check_unconnected(unconnected_gradients, "batch_jacobian")
        self._check_alive("batch_jacobian")
        for what, t in (("target", target), ("source", source)):
            if not isinstance(t, Tensor):
                raise TypeError(f"batch_jacobian: {what} must be a Tensor, got {type(t).__name__}")
            if t.ndim < 2:
                raise ValueError(f"batch_jacobian: Shape {t.shape} of the {what} must have rank at least 2 "
                                 "(a batch axis first)")
        if target.shape[0] != source.shape[0]:
            raise ValueError(f"batch_jacobian: Need first dimension of target shape {target.shape} and source "
                             f"shape {source.shape} to match.")
        _check_differentiable(target, "the target")
        _check_differentiable(source, "a source")
        shape = target.shape + source.shape[1:]
        if target.size == 0 or source.size == 0:
            g = self._backward([target], [None], [source])[0]  # which sources connect
            out = None if g is None and unconnected_gradients == "none" else _zeros(shape, source)
        else:
            batch = target.shape[0]
            cols = [self._backward([target], [_one_hot(target, j, batch)], [source])[0]
                    for j in range(target.size // batch)]
            if cols[0] is None:
                out = _zeros(shape, source) if unconnected_gradients == "zero" else None
            else:  # (row, B, x...) -> (B, row, x...) -> (B, y..., x...)
                stacked = ops.stack(cols)
                perm = (1, 0) + tuple(range(2, stacked.ndim))
                out = ops.reshape(ops.transpose(stacked, perm), shape)
        self._finish()
        return out

    def _check_alive(self, op: str) -> None:
        if self._nodes is None:
            raise RuntimeError(f"GradientTape.{op} can only be called once on a non-persistent tape (one "
                               "gradient, jacobian or batch_jacobian call; use GradientTape(persistent=True) "
                               "to ask several times)")

    def _finish(self) -> None:
        """A non-persistent tape frees its records after answering (TensorFlow's rule)."""
        if not self._persistent:
            self._variables = self.watched_variables()
            self._nodes = None
            self._watched = None

    def _backward(self, targets: list, seeds: list, srcs: list) -> list:
        """One reverse pass: the gradient of each source (None where unconnected) for the targets
        weighted by ``seeds`` (None: ones). Frees nothing; ``gradient`` and the Jacobians call it.
        Large gradients reuse dropped results' memory, as the recorded pass did."""
        with recycling():
            return self._reverse(targets, seeds, srcs)

    def _reverse(self, targets: list, seeds: list, srcs: list) -> list:
        was_recording = self._recording
        # The backward pass is recorded by the outer tapes, and by this one too when it is
        # persistent and inside its `with` block (TensorFlow's rule: then t.gradient(dy, x) on the
        # same tape gives the second derivative); a non-persistent tape is finished by this call.
        self._recording = was_recording and self._persistent
        try:
            grads: dict[int, Tensor] = {}
            for t, seed in zip(targets, seeds):
                if seed is None:
                    g = ops.ones_like(t)
                else:
                    g = ops._operand(seed, t, "gradient")
                    if g.shape != t.shape:
                        raise ValueError(f"gradient: output_gradients has shape {g.shape} but its target has "
                                         f"shape {t.shape}")
                    g = ops._cast(g, t.dtype)
                grads[id(t)] = ops.add(grads[id(t)], g) if id(t) in grads else g
            keep = {id(s) for s in srcs}
            watched = self._watched
            for node in reversed(list(self._nodes)):  # a snapshot: this pass may append nodes
                out_id = id(node.output)
                g = grads.get(out_id) if out_id in keep else grads.pop(out_id, None)
                if g is None:
                    continue
                needs = tuple(id(t) in watched and t.dtype.kind == "f" for t in node.inputs)
                if not any(needs):
                    continue
                if node.versions:
                    node.check_versions()
                for t, need, gi in zip(node.inputs, needs, node.vjp(g, needs)):
                    if not need or gi is None:
                        continue
                    tid = id(t)
                    prev = grads.get(tid)
                    grads[tid] = gi if prev is None else ops.add(prev, gi)
        finally:
            self._recording = was_recording
        return [grads.get(id(s)) for s in srcs]

# --------------------------------------------------------------------------- functional face
def _check_argnums(argnums: Any, op: str = "grad") -> None:
    """``argnums`` must be an int or a non-empty tuple/list of ints (bools are not ints here)."""
    if is_int(argnums):
        return
    if not isinstance(argnums, (tuple, list)) or not all(is_int(i) for i in argnums):
        raise TypeError(f"{op}: argnums must be an int or a tuple of ints, got {argnums!r}")
    if not argnums:
        raise ValueError(f"{op}: argnums must not be empty")


def _argnums(argnums, n: int, op: str = "grad") -> tuple:
    nums = (int(argnums),) if not isinstance(argnums, (tuple, list)) else tuple(int(i) for i in argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{op}: argnums {argnums!r} out of range for a function called with {n} arguments")
    return tuple(i % n for i in nums)


def _fresh(x: Tensor) -> Tensor:
    """A new Tensor with ``x``'s value, recorded as ``identity(x)`` on the tapes watching ``x``: each
    positional argument is its own input, even when the caller passes one object twice."""
    if x.dtype.kind != "f":
        return x  # refused as a source below, with the usual message
    return ops._make("identity", x.data, (x,), lambda g, needs: (g,))


def value_and_grad(f: Callable, argnums: int | tuple = 0) -> Callable:
    """``f`` -> a function returning ``(f(*args), gradient of f with respect to args[argnums])``.

    ``f`` must return a Tensor (a non-scalar one is differentiated as its sum). Arguments that
    are not Tensors are converted with :class:`Tensor`; the gradient is a Tensor for an int
    ``argnums``, a tuple of them for a tuple. Each differentiated argument is a distinct input,
    even when one object is passed twice: ``grad(lambda x, y: x * y, (0, 1))(t, t)`` is
    ``(t, t)``, not ``(2t, 2t)``. ``f`` sees a fresh Tensor (never the caller's Variable object)
    with the argument's value.

    Raises
    ------
    TypeError
        ``argnums`` not an int or a tuple of ints (bools included); ``f`` not returning a Tensor;
        an integer argument to differentiate.
    ValueError
        ``argnums`` out of range for the call, or empty.
    """

    if not callable(f):
        raise TypeError(f"grad: f must be callable, got {type(f).__name__}")
    _check_argnums(argnums)

    def wrapped(*args, **kwargs):
        idx = _argnums(argnums, len(args))
        args = list(args)
        for i in dict.fromkeys(idx):
            args[i] = _fresh(args[i] if isinstance(args[i], Tensor) else Tensor(args[i]))
        with GradientTape() as tape:
            for i in idx:
                tape.watch(args[i])
            value = f(*args, **kwargs)
        if not isinstance(value, Tensor):
            raise TypeError(f"grad: the function must return a Tensor, got {type(value).__name__}")
        g = tape.gradient(value, [args[i] for i in idx], unconnected_gradients="zero")
        return value, (tuple(g) if isinstance(argnums, (tuple, list)) else g[0])

    wrapped.__doc__ = f"value and gradient of {getattr(f, '__name__', 'f')}"
    return wrapped


def grad(f: Callable, argnums: int | tuple = 0) -> Callable:
    """``f`` -> a function returning the gradient of ``f`` with respect to ``args[argnums]``
    (see :func:`value_and_grad`). Composes: ``grad(grad(f))`` is the second derivative."""
    vg = value_and_grad(f, argnums)

    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    wrapped.__doc__ = f"gradient of {getattr(f, '__name__', 'f')}"
    return wrapped

