"""Compute kernels: ``cpu/`` (``@njit``) and ``cuda/`` (``@cuda.jit``), chosen by ``numlin._dispatch``."""
