"""Command line: ``python -m numlin demo [--device cuda] [--plot PATH]``, ``python -m numlin bench
[--quick] [--json PATH]``, ``python -m numlin info`` and ``python -m numlin compile [--op OP]
[--dtype DTYPE] [-j N]``."""
from __future__ import annotations

import argparse
import platform
import sys


def info(out=print) -> dict:
    """Print versions, threading, CPU features and blocking, and the GPU if any; return them."""
    import llvmlite
    import numba
    import numpy as np
    import scipy

    import numlin
    from numlin.kernels.cpu._threads import num_threads
    from numlin.kernels.cpu.blocking import blocking, isa

    facts = {
        "numlin": numlin.__version__, "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "numba": numba.__version__, "llvmlite": llvmlite.__version__,
    }
    facts["threads"] = f"{num_threads()} (Python threads over nogil kernels; numba.set_num_threads)"
    import llvmlite.binding as ll

    facts["cpu"] = f"{ll.get_host_cpu_name()} ({platform.machine()}), SIMD level {isa()}"
    for dt in ("float32", "float64"):
        b = blocking(dt)
        facts[f"blocking {dt}"] = f"MR x NR = {b.mr} x {b.nr} ({b.vw}-wide), KC {b.kc}, MC {b.mc}, NC {b.nc}"
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{p['internal_api']} {p['version']} ({p.get('architecture')}, {p['num_threads']} threads)"
                for p in threadpool_info() if p["user_api"] == "blas"]
        facts["numpy BLAS"] = "; ".join(blas) or "unknown"
    except ImportError:
        facts["numpy BLAS"] = "unknown (install threadpoolctl)"
    facts["gpu"] = _gpu()
    width = max(map(len, facts))
    for k, v in facts.items():
        out(f"{k.ljust(width)}  {v}")
    return facts


def _gpu() -> str:
    try:
        from numba import config

        if config.ENABLE_CUDASIM:
            return "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        from numba import cuda

        if not cuda.is_available():
            return "none (numba.cuda.is_available() is False)"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        return f"{name}, compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]}"
    except Exception as exc:  # numba-cuda not installed, driver errors, ...
        return f"none ({type(exc).__name__}: {exc})".splitlines()[0]


def _show_notices() -> None:
    """Print the ``numlin`` logger's notices (a kernel compiling on first use) on stderr."""
    import logging

    log = logging.getLogger("numlin")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("numlin: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numlin", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="train a CNN on scikit-learn's digits with numlin's autodiff, then compress "
                                       "its linear layer with randomized SVD")
    demo.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    demo.add_argument("--epochs", type=int, default=12)
    demo.add_argument("--plot", metavar="PATH", help="write training curves and singular values as a PNG")
    sub.add_parser("info", help="versions, threading layer, CPU features, blocking, GPU")
    comp = sub.add_parser("compile", help="compile the kernels ahead of use into Numba's cache (NUMBA_CACHE_DIR)")
    comp.add_argument("--op", action="append", choices=("matmul", "conv", "rsvd", "autodiff"),
                      help="only these ops (repeatable; default all)")
    comp.add_argument("--dtype", action="append", choices=("float32", "float64"),
                      help="only these dtypes (repeatable; default both)")
    comp.add_argument("-j", "--jobs", type=int, help="processes at once (default: the CPU count)")
    bench = sub.add_parser("bench", help="numlin vs its anchors (numpy/OpenBLAS, ...), paired runs, median ratio")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and rounds (about a minute)")
    bench.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    bench.add_argument("--table", action="append", help="run only these tables (repeatable)")
    args = parser.parse_args(argv)
    _show_notices()
    if args.cmd == "demo":
        from numlin.demo import main as demo_main

        if args.epochs < 1:
            parser.error(f"--epochs must be >= 1, got {args.epochs}")
        demo_main(args.device, args.epochs, args.plot)
    elif args.cmd == "info":
        info()
    elif args.cmd == "compile":
        from numlin._precompile import main as compile_main

        if args.jobs is not None and args.jobs < 1:
            parser.error(f"--jobs must be >= 1, got {args.jobs}")
        return compile_main(args.op, args.dtype, args.jobs)
    elif args.cmd == "bench":
        from numlin._bench import TABLES, preload_anchors, run

        preload_anchors()  # before info(), whose threading-layer query starts Numba's OpenMP

        unknown = set(args.table or ()) - set(TABLES)
        if unknown:
            parser.error(f"unknown table(s) {sorted(unknown)}; choose from {sorted(TABLES)}")
        info()
        print()
        run(args.table, quick=args.quick, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
