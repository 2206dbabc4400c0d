"""Every CUDA kernel builds for sm_90, checked on machines without a GPU too.

The simulator (enabled by conftest when there is no GPU) cannot compile, so the check runs
``python -m numlin.kernels.cuda._ptx`` in a fresh process with the simulator off; NVVM comes
from the ``cuda`` extra's wheels.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def ptx_report():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "0"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "numlin.kernels.cuda._ptx", "9", "0"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"PTX check produced no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.returncode, report


def test_every_kernel_compiles_to_ptx_for_sm90(ptx_report):
    code, report = ptx_report
    failed = {k: v["error"] for k, v in report.items() if not v["ok"]}
    assert not failed, failed
    assert code == 0
    assert all(v["target"] for v in report.values()), "PTX not built for sm_90"


def test_registry_covers_the_gemm_and_elementwise_kernels(ptx_report):
    _, report = ptx_report
    names = {k.split("(")[0] for k in report}
    assert {"numlin.kernels.cuda.gemm.gemm_tiled_float32", "numlin.kernels.cuda.gemm.gemm_tiled_float64",
            "numlin.kernels.cuda.elementwise.scale_2d", "numlin.kernels.cuda.elementwise.copy_nd"} <= names
