"""Test harness: CUDA kernels run under Numba's simulator when this machine has no GPU.

The switch must happen before anything imports numba.cuda, hence here, at collection start.
A real GPU (``/dev/nvidia0`` present) or ``NUMLIN_TEST_GPU=1`` keeps the real target; tests
marked ``gpu`` run only then. PTX for sm_90 is built in a separate process (see
``tests/kernels/cuda/test_ptx.py``) since the simulator cannot compile.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

HAS_GPU = os.environ.get("NUMLIN_TEST_GPU") == "1" or (
    os.path.exists("/dev/nvidia0") and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"
)
if not HAS_GPU:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


def pytest_collection_finish(session):
    """Start the slow subprocess checks of the collected modules (``start_in_background()``, e.g.
    the PTX build) now, so that they run beside the rest of the suite."""
    started = set()
    for item in session.items:
        mod = getattr(item, "module", None)
        start = getattr(mod, "start_in_background", None)
        if start is not None and mod not in started:
            started.add(mod)
            start()


def pytest_collection_modifyitems(config, items):
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a real CUDA GPU (running under the CUDA simulator)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
