"""The kernel cache: keyed on the register tiles, and never a reason for numlin to fail.

Each case runs fresh Python processes (the cache is per process state plus files on disk).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]

# float32 matmul on the packed path (above the direct-path size), checked against numpy, and the
# number of numlin functions this process compiled (0 when everything came from the cache)
_MATMUL = """
import json
import numpy as np
from numba.core import event
import numlin as nl
with event.install_recorder("numba:compile") as rec:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 260)).astype(np.float32)
    err = float(np.abs(nl.matmul(a, b) - a.astype(np.float64) @ b).max())
compiled = sum(1 for _, ev in rec.buffer
               if ev.is_start and ev.data["dispatcher"].py_func.__module__.startswith("numlin."))
print(json.dumps({"err": err, "compiled": compiled}))
"""


def _run(code: str, env: dict, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_processes_with_different_tiles_share_a_cache(tmp_path):
    """Issue 17: a cache shared by processes with different NUMLIN_BLOCKING tiles gave wrong
    GEMM results. Each tile now has its own cache folder: results are right, and a process
    never recompiles (or flushes) what a process with other tiles cached."""
    base = {k: v for k, v in os.environ.items() if k != "NUMLIN_BLOCKING"}
    base["NUMBA_CACHE_DIR"] = str(tmp_path)
    other = dict(base, NUMLIN_BLOCKING="float32:mr=4;float64:mr=4,mc=48")
    runs = []
    for env in (base, other, base, other):
        proc = _run(_MATMUL, env)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for r in runs:
        assert r["err"] < 1e-3, runs
    assert runs[0]["compiled"] > 0 and runs[1]["compiled"] > 0, runs
    assert runs[2]["compiled"] == 0 and runs[3]["compiled"] == 0, runs  # each found its own tiles' kernels
    tags = sorted(p.name for p in tmp_path.glob("*/tiles-*"))
    assert len(set(tags)) == 2, tags


def test_no_writable_cache_location_still_computes(tmp_path):
    """Issue 17: with a read-only package folder and no writable HOME or NUMBA_CACHE_DIR, the
    first matmul raised ``RuntimeError: cannot cache function ...: no locator available``. It
    now computes, with one warning saying why the next process will compile again."""
    pkg = tmp_path / "site"
    shutil.copytree(ROOT / "numlin", pkg / "numlin", ignore=shutil.ignore_patterns("__pycache__"))
    for d in [pkg / "numlin", *[p for p in (pkg / "numlin").rglob("*") if p.is_dir()]]:
        (d / "__pycache__").touch()  # a file where the cache folder would go: unwritable, even for root
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env.update(HOME=str(tmp_path / "not-a-dir" / "home"), PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE="1")
    (tmp_path / "not-a-dir").touch()
    code = ("import numpy as np, numlin as nl\n"
            "assert nl.__file__.startswith(%r)\n"
            "a = np.arange(12.0).reshape(3, 4)\n"
            "assert np.array_equal(nl.matmul(a, a.T), a @ a.T)\n"
            "print('ok')\n") % str(pkg)
    proc = _run(code, env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert proc.stderr.count("no writable cache location") == 1, proc.stderr
    assert "NUMBA_CACHE_DIR" in proc.stderr


def test_tile_tag_names_both_dtypes():
    from numlin.kernels.cpu._cache import tile_tag
    from numlin.kernels.cpu.blocking import blocking

    b32, b64 = blocking(np.float32), blocking(np.float64)
    assert tile_tag() == f"tiles-{b32.mr}x{b32.nr}x{b32.vw}-{b64.mr}x{b64.nr}x{b64.vw}"


@pytest.mark.parametrize("seconds", [0.05])
def test_long_compile_is_announced_on_the_numlin_logger(tmp_path, seconds):
    """A compile of a numlin kernel that lasts past the notice's delay is logged (INFO,
    logger ``numlin``) with the kernel's name and dtype, and the promise of the cache."""
    code = f"""
import logging, numpy as np
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
import numlin as nl
from numlin.kernels.cpu import _cache
from numba.core import event
_cache.install()  # as the first kernel module's import would (numlin.kernels.cpu._jit)
for lst in event._registered.get("numba:compile", []):
    if isinstance(lst, _cache._CompileNotice):
        lst.after = {seconds}
nl.matmul(np.ones((3, 3), np.float32), np.ones((3, 3), np.float32))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = _run(code, env)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("numlin INFO compiling")]
    assert lines, proc.stderr
    assert "float32" in lines[0] and "cached for next time" in lines[0]


def test_kernels_are_stamped_with_the_files_they_link_in():
    """Numba stamps a cached kernel with its own source file, but the micro-kernel intrinsics
    (``gemm/microkernel.py``) are inlined into kernels of other files, and called kernels are
    linked into their callers: each file's stamp also covers those files (``linked_sources``),
    so that an edit to them recompiles every kernel that may contain their code."""
    from numlin.kernels.cpu import _cache

    root = Path(_cache._KERNELS)

    def linked(rel: str) -> set[str]:
        return {Path(f).relative_to(root).as_posix() for f in _cache.linked_sources(str(root / rel))}

    assert {"gemm/microkernel.py", "gemm/pack.py", "gemm/small.py", "blocking.py"} <= linked("gemm/loops.py")
    assert {"gemm/microkernel.py", "blocking.py"} <= linked("gemm/small.py")
    assert "gemm/plan.py" not in linked("gemm/loops.py")  # no compiled code: its edits recompile nothing
    users = [f.relative_to(root).as_posix() for f in root.rglob("*.py")
             if "_micro_kernel" in f.read_text() and f.name != "microkernel.py"]
    assert "gemm/loops.py" in users and "gemm/small.py" in users
    for rel in users:  # every file that calls the micro-kernel (the GEMM loops, the convolutions)
        assert "gemm/microkernel.py" in linked(rel), rel


# a small product (the direct path: gemm_direct inlines the masked micro-kernel) and the numlin
# kernels this process compiled rather than loaded
_DIRECT = """
import json
import numpy as np
from numba.core import event
import numlin as nl
with event.install_recorder("numba:compile") as rec:
    a = np.arange(24.0, dtype=np.float32).reshape(4, 6)
    b = np.arange(30.0, dtype=np.float32).reshape(6, 5)
    err = float(np.abs(nl.matmul(a, b) - a.astype(np.float64) @ b).max())
names = sorted({f"{d.py_func.__module__}.{d.py_func.__name__}" for _, ev in rec.buffer if ev.is_start
                for d in [ev.data["dispatcher"]] if d.py_func.__module__.startswith("numlin.")})
print(json.dumps({"err": err, "compiled": names}))
"""


def test_an_edit_to_the_micro_kernel_recompiles_the_kernels_that_inline_it(tmp_path):
    """The end-to-end check of the stamps above, in fresh processes on one cache: compiled, then
    (after an edit of the micro-kernel's file, none of the caller's) compiled again rather than
    loaded stale, then loaded."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "numlin", src / "numlin", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMLIN_BLOCKING"}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(src))
    runs = []
    for edit in (False, True, False):
        if edit:
            with open(src / "numlin" / "kernels" / "cpu" / "gemm" / "microkernel.py", "a") as f:
                f.write("# edited\n")
        proc = _run(_DIRECT, env, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert all(r["err"] == 0 for r in runs), runs
    kernel = "numlin.kernels.cpu.gemm.small.gemm_direct"
    assert kernel in runs[0]["compiled"] and kernel in runs[1]["compiled"], runs
    assert runs[2]["compiled"] == [], runs


# GEMM both ways, convolutions (in place, per vector and with a tail) forward and backward, and
# rsvd; then a training step (batch norm, pooling, dropout, the fused loss, Adam) and ufuncs. Prints
# a digest of every result, the numlin functions this process compiled, and whether Numba's
# registries (numba.np.arraymath) were imported (ufuncs included: their loop wrappers, built at
# load, need only the lowering of constants).
# With "numba" on the command line the process loads cached kernels the way Numba does.
_LOAD_ALL = """
import json, sys, hashlib
import numpy as np
import scipy.linalg  # loaded first either way: LAPACK's last bits depended on when it loaded (rsvd: 1e-14)
from numba.core import caching, event
import numlin as nl
from numlin.kernels.cpu import _jit  # noqa: F401  (installs numlin's loader)
if sys.argv[1:] == ["numba"]:
    caching.Cache.load_overload = caching.Cache.load_overload.__wrapped__
rng = np.random.default_rng(0)
out = []
with event.install_recorder("numba:compile") as rec:
    for dt in (np.float32, np.float64):
        a, b = rng.standard_normal((300, 200)).astype(dt), rng.standard_normal((200, 260)).astype(dt)
        out += [nl.matmul(a, b), nl.matmul(a[:5, :7], b[:7, :6])]
    for hw in (9, 8, 4):
        x, w = rng.standard_normal((4, 8, hw, hw)).astype(np.float32), rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
        y = nl.conv2d(x, w, padding=1)
        out += [y, *nl.conv2d_backward(np.ones_like(y), x, w, padding=1)]
    out += list(nl.linalg.rsvd(rng.standard_normal((400, 300)), 5, random_state=0))
    model = nl.nn.Sequential(
        nl.nn.Conv2d(1, 16, 3, padding=1, random_state=0), nl.nn.BatchNorm2d(16), nl.nn.ReLU(),
        nl.nn.MaxPool2d(2), nl.nn.Conv2d(16, 32, 3, padding=1, random_state=1), nl.nn.ReLU(),
        nl.nn.MaxPool2d(2), nl.nn.Dropout(0.25, random_state=2), nl.nn.GlobalAvgPool2d(),
        nl.nn.Linear(32, 10, random_state=3))
    opt = nl.optim.Adam(1e-3)
    x = rng.random((16, 1, 16, 16), dtype=np.float32)
    labels = rng.integers(0, 10, 16)
    with nl.GradientTape() as tape:
        loss = nl.nn.cross_entropy(model(nl.Tensor(x)), labels)
    grads = tape.gradient(loss, model.parameters())
    opt.apply_gradients(zip(grads, model.parameters()))
    out += [loss, *grads, *model.parameters(), nl.exp(a), nl.tanh(a), nl.sum(a, axis=0)]
    out += [nl.add(a, a[:1]), nl.divide(a, a[:, :1]), nl.power(np.abs(a), a), nl.sigmoid(a[:, 0])]
    registries = "numba.np.arraymath" in sys.modules
out = [r.numpy() if hasattr(r, "numpy") else np.asarray(r) for r in out]
compiled = sorted({ev.data["dispatcher"].py_func.__name__ for _, ev in rec.buffer if ev.is_start})
digest = [hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest() for r in out]
print(json.dumps({"digest": digest, "compiled": compiled, "registries": registries,
                  "finite": all(bool(np.isfinite(r).all()) for r in out)}))
"""


def test_cached_kernels_load_without_numbas_registries():
    """numlin loads its cached kernels without Numba's context refresh, which imports every
    typing and lowering registry (and scipy.linalg) before the first load: ~0.3 s of every
    process's first call. The kernels then compute exactly what they compute when loaded the
    way Numba does, and the process never imports the registries, ufuncs and all."""
    env = dict(os.environ)
    first = _run(_LOAD_ALL, env)  # compiles what is not cached yet
    assert first.returncode == 0, first.stderr
    proc = subprocess.run([sys.executable, "-c", _LOAD_ALL, "numba"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    fast = _run(_LOAD_ALL, env)
    assert fast.returncode == 0, fast.stderr
    got = json.loads(fast.stdout.strip().splitlines()[-1])
    assert ref["finite"] and ref["compiled"] == [], ref
    assert got["compiled"] == [], got  # everything came from the cache ...
    assert not got["registries"], got  # ... without Numba's registries
    assert ref["registries"]  # (which Numba's own loading imports: the check above can fail)
    assert got["digest"] == ref["digest"]
