"""``python -m numlin compile`` fills the kernel cache: a later process compiles nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys

_COUNT = """
import json, numpy as np
from numba.core import event
import numlin as nl
from numlin._precompile import warm
with event.install_recorder("numba:compile") as rec:
    warm("matmul", "float64")
print(json.dumps(sum(1 for _, ev in rec.buffer
                     if ev.is_start and ev.data["dispatcher"].py_func.__module__.startswith("numlin."))))
"""


def test_compile_command_fills_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "numlin", "compile", "--op", "matmul", "--dtype", "float64",
                           "-j", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matmul    float64" in proc.stdout and "FAILED" not in proc.stdout
    assert str(tmp_path) in proc.stdout  # says where the kernels went
    again = subprocess.run([sys.executable, "-c", _COUNT], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == 0


def test_compile_command_rejects_bad_arguments():
    for args in (["--op", "svd"], ["--dtype", "float16"], ["-j", "0"]):
        proc = subprocess.run([sys.executable, "-m", "numlin", "compile", *args], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert args[-1] in proc.stderr
