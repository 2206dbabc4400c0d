"""The upstream suites' own helpers, on numlin's API: one copy each for the ported files.

``check_grads`` stands for ``autograd.test_util.check_grads`` (HIPS autograd);
``gradients_function`` and ``val_and_grad_function`` for TensorFlow's ``backprop`` helpers of
the same names.
"""
from __future__ import annotations

import numpy as np

import numlin as nl


def check_grads(f, argnum=0, modes=None, order=2, as_float64=True):
    """autograd.test_util.check_grads(f, argnum)(*args) on numlin's tape, reverse mode only:
    finite differences of ``f`` against the tape in the arguments ``argnum`` (the others fixed).
    ``as_float64``: the checked arguments as float64 arrays (False: as given, e.g. complex ones
    whose refusal is the test)."""
    argnums = (argnum,) if isinstance(argnum, int) else tuple(argnum)

    def check(*args, **kwargs):
        def g(*xs):
            full = list(args)
            for i, x in zip(argnums, xs):
                full[i] = x
            return f(*full, **kwargs)

        xs = [np.asarray(args[i], np.float64) if as_float64 else args[i] for i in argnums]
        nl.testing.check_grads(g, xs, order=order, n_directions=1)  # one random direction per check, as autograd

    return check


def gradients_function(f, params=None):
    """TensorFlow's backprop.gradients_function: a list of gradients, one per parameter (all
    positional arguments when ``params`` is None)."""

    def decorated(*args):
        argnums = tuple(range(len(args))) if params is None else tuple(params)
        return list(nl.grad(f, argnums)(*args))

    return decorated


def val_and_grad_function(f, params=None):
    """TensorFlow's backprop.val_and_grad_function: ``(value, [gradients])``."""

    def decorated(*args):
        argnums = tuple(range(len(args))) if params is None else tuple(params)
        val, grads = nl.value_and_grad(f, argnums)(*args)
        return val, list(grads)

    return decorated
