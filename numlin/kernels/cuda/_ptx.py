"""Compile every registered CUDA kernel to PTX (default: sm_90) and print a JSON report.

Run as ``python -m numlin.kernels.cuda._ptx [major minor]`` in a process without the CUDA
simulator; exits non-zero if any kernel fails to build.
"""
from __future__ import annotations

import importlib
import json
import sys


def main(argv: list[str]) -> int:
    cc = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (9, 0)
    from numba import config

    if config.ENABLE_CUDASIM:
        print(json.dumps({"error": "the CUDA simulator is enabled; PTX cannot be built"}))
        return 2
    from numba import cuda

    from ._registry import KERNELS, MODULES

    for mod in MODULES:
        importlib.import_module(mod)
    report, failed = {}, 0
    for name, fn, sigs in KERNELS:
        for sig in sigs:
            key = f"{name}{sig}"
            try:
                ptx, _ = cuda.compile_ptx(fn, sig, cc=cc)
                report[key] = {"ok": True, "ptx_lines": ptx.count("\n"), "target": f"sm_{cc[0]}{cc[1]}" in ptx}
            except Exception as exc:  # report every failure, not just the first
                failed += 1
                report[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    print(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
