"""Cold start: the first call of five workloads, each in a fresh process, with an empty Numba
cache and then with the cache it left (issue 17's table).

    python benchmarks/cold_start.py                 # the table
    python benchmarks/cold_start.py --profile NAME  # which functions compile in NAME, and for how long
    python benchmarks/cold_start.py --demo          # also `python -m numlin demo`, wall time, both ways

Each row is timed inside its process from before ``import numlin`` to the end of the workload
(interpreter start-up and ``import numpy`` excluded). Unset ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` when quoting numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

WORKLOADS = {
    "matmul": """
a = np.ones((512, 512), np.float32); nl.matmul(a, a)
a = np.ones((512, 512), np.float64); nl.matmul(a, a)
""",
    "rsvd": """
A = np.random.default_rng(0).standard_normal((2000, 1000))
nl.linalg.rsvd(A, 15, random_state=0)
""",
    "conv": """
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 64, 28, 28)).astype(np.float32)
w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
y = nl.conv2d(x, w, padding=1)
nl.conv2d_backward(np.ones_like(y), x, w, padding=1)
""",
    "tape": """
x = nl.constant(2.0); y = nl.constant(5.0)
with nl.GradientTape() as g:
    g.watch(x)
    out = nl.log(x) + nl.subtract(nl.multiply(x, y), nl.sin(y))
assert abs(float(g.gradient(out, x)) - 5.5) < 1e-12
""",
    "cnn step": """
from numlin.demo import build_model
model = build_model()
opt = nl.optim.Adam(1e-3)
rng = np.random.default_rng(0)
images = rng.random((64, 1, 8, 8), dtype=np.float32); labels = rng.integers(0, 10, 64)
with nl.GradientTape() as tape:
    loss = nl.nn.cross_entropy(model(nl.Tensor(images)), labels)
grads = tape.gradient(loss, model.parameters())
opt.apply_gradients(zip(grads, model.parameters()))
""",
}

_RUNNER = """
import time, json, sys
import numpy as np
t0 = time.perf_counter()
import numlin as nl
{profile}
{body}
t1 = time.perf_counter()
{report}
print(json.dumps({{"seconds": t1 - t0}}))
"""

_PROFILE = """
from numba.core import event
_rec_cm = event.install_recorder("numba:compile")
_rec = _rec_cm.__enter__()
"""

_REPORT = """
from collections import defaultdict
starts, rows = {}, defaultdict(float)
for ts, ev in _rec.buffer:
    key = id(ev.data["dispatcher"]), str(ev.data["args"])
    if ev.is_start:
        starts[key] = ts
    else:
        d = ev.data["dispatcher"]
        rows[f"{d.py_func.__module__}.{d.py_func.__qualname__}{ev.data['args']}"] += ts - starts.pop(key)
# nested compiles count in their callers too: list the tree's own lines, longest first
for name, sec in sorted(rows.items(), key=lambda kv: -kv[1])[:40]:
    print(f"{sec:7.2f} s  {name}", file=sys.stderr)
print(f"{len(rows)} compiled specialisations", file=sys.stderr)
"""


def run_one(body: str, cache_dir: str, profile: bool = False) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    code = _RUNNER.format(body=body, profile=_PROFILE if profile else "", report=_REPORT if profile else "")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"workload failed:\n{proc.stderr}")
    if profile:
        sys.stderr.write(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def run_demo(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "numlin", "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=sorted(WORKLOADS), help="list the compiles of one workload")
    ap.add_argument("--demo", action="store_true", help="also time `python -m numlin demo`")
    ap.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="run only these workloads")
    args = ap.parse_args()
    if args.profile:
        with tempfile.TemporaryDirectory() as d:
            print(f"{run_one(WORKLOADS[args.profile], d, profile=True):.2f} s cold")
        return
    names = args.only or list(WORKLOADS)
    print(f"{'first call of':<12} {'cold':>8} {'cached':>8}")
    cold_sum = warm_sum = 0.0
    for name in names:
        with tempfile.TemporaryDirectory() as d:  # one cache per workload: each starts empty
            cold = run_one(WORKLOADS[name], d)
            warm = run_one(WORKLOADS[name], d)
        cold_sum += cold
        warm_sum += warm
        print(f"{name:<12} {cold:8.2f} {warm:8.2f}", flush=True)
    print(f"{'sum':<12} {cold_sum:8.2f} {warm_sum:8.2f}")
    if args.demo:
        with tempfile.TemporaryDirectory() as d:
            print(f"{'demo':<12} {run_demo(d):8.2f} {run_demo(d):8.2f}  (wall, whole process)")


if __name__ == "__main__":
    main()
