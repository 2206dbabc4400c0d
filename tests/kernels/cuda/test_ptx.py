"""Every CUDA kernel builds for sm_90, checked on machines without a GPU too.

The simulator (enabled by conftest when there is no GPU) cannot compile, so the check runs
``python -m numlin.kernels.cuda._ptx`` in a fresh process with the simulator off; NVVM comes
from the ``cuda`` extra's wheels. Where ``ptxas`` is installed the same run assembles each kernel
to sm_90 machine code and the tests check its registers, spills and shared memory.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


_RUN: dict = {}


def start_in_background() -> None:
    """Start the PTX check's process (once). tests/conftest.py calls this when collection ends,
    so the check (minutes of NVVM on one core) overlaps the rest of the suite."""
    if _RUN:
        return
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "0"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "numlin.kernels.cuda._ptx", "9", "0"], env=env, cwd=ROOT,
                            stdout=out, stderr=err, text=True)
    _RUN.update(proc=proc, out=out, err=err)
    def _end():  # a session ended before the check: stop it; close its output files either way
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()

    atexit.register(_end)


@pytest.fixture(scope="module")
def ptx_report():
    start_in_background()
    proc = _RUN["proc"]
    try:
        code = proc.wait(timeout=1200)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("PTX check still running after 20 minutes")
    _RUN["out"].seek(0)
    _RUN["err"].seek(0)
    stdout, stderr = _RUN["out"].read(), _RUN["err"].read()
    _RUN["out"].close()
    _RUN["err"].close()
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"PTX check produced no report (exit {code}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return code, report


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


def _sass(report: dict) -> dict:
    """Each kernel's assembled resources (``ptxas -v``), or skip when ``ptxas`` is absent."""
    sass = {k: v["sass"] for k, v in report.items() if "sass" in v}
    if not sass:
        pytest.skip("ptxas not found (set NUMLIN_PTXAS or put CUDA's bin/ on PATH)")
    return sass


def test_every_kernel_assembles_to_sm90_machine_code(ptx_report):
    _, report = ptx_report
    sass = _sass(report)
    assert len(sass) == len(report)
    failed = {k: v["error"] for k, v in sass.items() if not v["ok"]}
    assert not failed, failed


#: registers of one SM of compute capability 9.0 (and every other since 5.0)
SM_REGISTERS = 65_536
#: static shared memory a block may declare
STATIC_SHARED = 48 * 1024


def test_gemm_kernels_fit_an_sm_and_float32_ones_do_not_spill(ptx_report):
    """Each GEMM and implicit-GEMM tile shape: one block fits an SM's registers and static shared
    memory (else the launch fails), and the float32 kernels and the default float64 one keep
    their accumulators in registers (a spill puts local-memory traffic in the inner loop)."""
    from numlin.kernels.cuda import gemm

    _, report = ptx_report
    sass = _sass(report)
    checked = 0
    for tiles, default in ((gemm._TILES, True), (gemm._TILES_SHORT, False)):
        for dtype, t in tiles.items():
            for prefix in ("gemm_tiled_", "conv_gather_"):
                name = f"numlin.kernels.cuda.gemm.{prefix}{dtype}"
                if not default:
                    name += f"_{t.bm}x{t.bn}x{t.bk}_{t.tm}x{t.tn}"
                (res,) = [v for k, v in sass.items() if k.split("(")[0] == name]
                assert res["registers"] * t.threads <= SM_REGISTERS, (name, res)
                assert res["smem"] == t.shared_bytes(8 if dtype == "float64" else 4) <= STATIC_SHARED, (name, res)
                if dtype == "float32" or default:
                    assert res["spill_stores"] == res["spill_loads"] == 0, (name, res)
                checked += 1
    assert checked == 8
