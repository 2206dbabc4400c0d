"""Compile every registered CUDA kernel to PTX (default: sm_90) and print a JSON report.

Run as ``python -m numlin.kernels.cuda._ptx [major minor]`` in a process without the CUDA
simulator; exits non-zero if any kernel fails to build.

Where NVIDIA's ``ptxas`` is found (``$NUMLIN_PTXAS``, else on ``PATH``; ``NUMLIN_PTXAS=`` turns
this off), each kernel's PTX is also assembled to machine code for that architecture, as the
driver would at the first launch, and the report gains what the assembler says of its resources:
registers per thread, spilled bytes, stack frame and static shared memory. That is the occupancy
and spill check of a GPU kernel, done without a GPU. NVVM (from the ``cuda`` extra) may write a
newer PTX ISA version than the installed ``ptxas`` reads; the ``.version`` line is then lowered
to the assembler's (which still rejects any instruction that version lacks).
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def find_ptxas() -> str | None:
    """Path of ``ptxas``: ``$NUMLIN_PTXAS`` if set (empty: none), else the one on ``PATH``."""
    from ..._config import config

    if config.ptxas is not None:
        return config.ptxas or None
    return shutil.which("ptxas")


def assemble(ptx: str, cc: tuple[int, int], ptxas: str) -> dict:
    """Assemble ``ptx`` for ``sm_{cc}`` with ``ptxas -v``.

    Returns ``{"ok": True, "registers", "spill_stores", "spill_loads", "stack", "smem"}`` (bytes,
    summed over the entry and any device functions it calls; registers of the entry), or
    ``{"ok": False, "error": ...}``.
    """
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "k.ptx"), os.path.join(d, "k.cubin")
        for attempt in range(2):
            with open(src, "w") as f:
                f.write(ptx)
            proc = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", src, "-o", out], capture_output=True,
                                  text=True, timeout=600)
            old = re.search(r"Unsupported \.version \S+; current version is '([\d.]+)'", proc.stderr)
            if proc.returncode == 0 or old is None or attempt:
                break
            ptx = re.sub(r"^\.version \S+", f".version {old.group(1)}", ptx, count=1, flags=re.M)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return {"ok": False, "error": text[-2000:]}

    def total(pattern: str) -> int:
        return sum(int(v) for v in re.findall(pattern, text))

    regs = [int(v) for v in re.findall(r"Used (\d+) registers", text)]
    return {"ok": True, "registers": max(regs, default=0), "spill_stores": total(r"(\d+) bytes spill stores"),
            "spill_loads": total(r"(\d+) bytes spill loads"), "stack": total(r"(\d+) bytes stack frame"),
            "smem": total(r"(\d+) bytes smem")}


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
    ptxas = find_ptxas()
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
                continue
            if ptxas:
                report[key]["sass"] = sass = assemble(ptx, cc, ptxas)
                failed += not sass["ok"]
    print(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
