"""The recording stack: which tapes are open on this thread, and :func:`record`, which every op
calls with its inputs, its output and its vector-Jacobian product.

The ops (:mod:`.ops`, :mod:`.nn_ops`) write here and :mod:`.tape` reads the nodes back, so
neither imports the other for it. Each active, recording tape that watches one of the inputs
appends a :class:`Node`; the output becomes watched on that tape.
"""
from __future__ import annotations

import threading
from typing import Callable

from .tensor import Tensor, Variable

__all__ = ["STACK", "Node", "active", "recording", "record"]


class _Stack(threading.local):
    """The tapes inside whose ``with`` block this thread is, innermost last (per thread, as in
    TensorFlow: another thread's ops are never recorded on this thread's tapes)."""

    def __init__(self):
        self.tapes: list = []  # of GradientTape (tape.py), which reads and appends the nodes


STACK = _Stack()


class Node:
    """One recorded op: ``output = name(*inputs)`` and its ``vjp(g, needs) -> (grad per input)``."""

    __slots__ = ("name", "inputs", "output", "vjp", "versions")

    def __init__(self, name: str, inputs: tuple, output: Tensor, vjp: Callable):
        self.name = name
        self.inputs = inputs
        self.output = output
        self.vjp = vjp
        # Variables change in place (assign, optimizers): remember which value was read
        self.versions = tuple((t, t._version) for t in inputs if isinstance(t, Variable))

    def check_versions(self) -> None:
        for v, version in self.versions:
            if v._version != version:
                raise RuntimeError(
                    f"gradient: Variable {v.name or ''}{v.shape} was modified in place (assign or an optimizer "
                    f"step) after {self.name} read it; its gradient would use the new value. Compute "
                    "gradients before updating, or record again")


def active() -> bool:
    """True when some tape is open on this thread (ops then pay for :func:`record`)."""
    return bool(STACK.tapes)


def recording() -> bool:
    """True when some tape would record an op run now (open, not paused, not used up)."""
    return any(t._recording and t._nodes is not None for t in STACK.tapes)


def record(name: str, inputs: tuple, output: Tensor, vjp: Callable) -> None:
    """Record ``output = name(*inputs)`` on every recording tape that watches an input."""
    for tape in STACK.tapes:
        if not tape._recording or tape._nodes is None:  # None: a non-persistent tape that has answered
            continue
        watched = tape._watched
        hit = False
        for t in inputs:
            if id(t) in watched:
                hit = True
            elif tape._watch_accessed and isinstance(t, Variable) and t.trainable:
                watched[id(t)] = t
                hit = True
        if hit:
            tape._nodes.append(Node(name, inputs, output, vjp))
            watched[id(output)] = output
