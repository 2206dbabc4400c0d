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
    from tests._cudasim import install as _install_block_scheduler

    _install_block_scheduler()  # the simulator's busy-polling block scheduler, replaced (see there)


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
    # the tests waiting on a background check (the PTX build) run last, when it has had the
    # whole suite's time to finish
    items.sort(key=lambda item: getattr(getattr(item, "module", None), "start_in_background", None) is not None)
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a real CUDA GPU (running under the CUDA simulator)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _threads_at_test_sizes(monkeypatch):
    """The work thresholds under which a kernel stays on one thread are sized for real launch
    costs (tens of microseconds a launch); the tests' small operands would then never take the
    multi-part paths. Here they keep the smaller thresholds the tests were written for."""
    from numlin._config import override

    with override(gemm_parallel_mnk=96 * 96 * 96, conv_parallel_mnk=64 * 64 * 64, threads_grain=1 << 15):
        yield


@pytest.fixture
def configure():
    """``configure(**changes)``: ``numlin._config.override`` from here to the end of the test (a
    route or threshold changed for the test, as ``monkeypatch.setattr`` of a module global was)."""
    import contextlib

    from numlin._config import override

    with contextlib.ExitStack() as stack:
        yield lambda **changes: stack.enter_context(override(**changes))
