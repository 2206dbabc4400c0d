"""The CPU GEMM for every instruction-set table, not only this machine's.

Numba compiles for the host; ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` make it target an AVX2 or
a plain SSE2 machine instead, which also selects that table in ``kernels/cpu/blocking.py`` (other
tile shapes, no FMA for SSE2). Each runs in a fresh process with an empty Numba cache: GEMMs and
a convolution (the implicit GEMM's micro-kernels use the same tiles).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SCRIPT = r"""
import numpy as np, numlin as nl
from numlin.kernels.cpu.blocking import isa, blocking
print(isa(), blocking("float32"), blocking("float64"))
rng = np.random.default_rng(0)
for dt, tol in ((np.float32, 1e-4), (np.float64, 1e-12)):
    for m, n, k in ((7, 5, 3), (8, 8, 8), (130, 70, 300), (301, 257, 129)):
        a = rng.standard_normal((m, k)).astype(dt)
        b = rng.standard_normal((k, n)).astype(dt)
        for x, y in ((a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b))):
            ref = x.astype(np.float64) @ y.astype(np.float64)
            err = np.abs(nl.matmul(x, y) - ref).max() / np.abs(ref).max()
            assert err < tol, (dt, m, n, k, err)
    bat = rng.standard_normal((500, 8, 8)).astype(dt)
    ref = np.matmul(bat.astype(np.float64), bat.astype(np.float64))
    assert np.abs(nl.matmul(bat, bat) - ref).max() / np.abs(ref).max() < tol
    # convolution: in-place tiles of NR pixels and packed tails (9x9 = 81 pixels per sample)
    x = rng.standard_normal((2, 16, 9, 9)).astype(dt)
    w = rng.standard_normal((13, 16, 3, 3)).astype(dt)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = sum(np.einsum("kc,ncpq->nkpq", w[:, :, r, s].astype(np.float64), xp[:, :, r:r + 9, s:s + 9])
              for r in range(3) for s in range(3))
    assert np.abs(nl.conv2d(x, w, padding=1) - ref).max() / np.abs(ref).max() < tol
print("ok")
"""

TARGETS = {
    "avx2": ("haswell", "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+lzcnt,+movbe,+popcnt,+sse,+sse2,"
                        "+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"),
    "generic": ("x86-64", "+64bit,+sse,+sse2,+cx8,+fxsr,+mmx,+cmov"),
}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 instruction sets")
@pytest.mark.parametrize("level", sorted(TARGETS))
def test_gemm_correct_for_each_isa_table(tmp_path, level):
    cpu, features = TARGETS[level]
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=features, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.startswith(level), proc.stdout
    assert proc.stdout.strip().endswith("ok")


STALE = r"""
import sys
import numpy as np, numlin as nl
assert nl.__file__.startswith(sys.argv[1]), nl.__file__
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)
w = rng.standard_normal((31, 16, 3, 3)).astype(np.float32)
xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
ref = sum(np.einsum("kc,ncpq->nkpq", w[:, :, r, s].astype(np.float64), xp[:, :, r:r + 9, s:s + 9])
          for r in range(3) for s in range(3))
y = nl.conv2d(x, w, padding=1)
assert np.abs(y - ref).max() < 1e-4 * np.abs(ref).max(), np.abs(y - ref).max()
print("ok")
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 instruction sets")
def test_cache_built_for_another_tile_is_dropped(tmp_path):
    """Kernels cached under another register tile (``NUMLIN_BLOCKING``) are recompiled, also in a
    module whose own cache was invalidated meanwhile (its source edited): its fresh kernels link
    the GEMM's packing, which must not come stale from the GEMM's cache (a filter packed for
    6-row tiles into a buffer sized for 8 once corrupted the heap). Back and forth, so that every
    process meets caches written by a process with the other tile."""
    import shutil

    from numlin.kernels.cpu.blocking import blocking

    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "numlin"), src / "numlin", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(src))
    env.pop("NUMLIN_BLOCKING", None)
    other = 6 if blocking("float32").mr != 6 else 8
    stale = {"NUMLIN_BLOCKING": f"float32:mr={other},mc={other * 24}"}
    cpu = src / "numlin" / "kernels" / "cpu"
    edited = cpu / "conv" / "implicit_forward.py"
    for i, (extra, edit) in enumerate(((stale, False), ({}, True), (stale, True), ({}, False), (stale, False))):
        if edit:  # new source: Numba drops this module's cache entries, not the GEMM's
            with open(edited, "a") as f:
                f.write(f"# edited {i}\n")
        proc = subprocess.run([sys.executable, "-c", STALE, str(src)], env=dict(env, **extra), cwd=str(tmp_path),
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        assert proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize("spec, named", [
    ("float32:kc=abc", "'abc'"),
    ("float32:kc", "'kc'"),
    ("float16:kc=128", "'float16:kc=128'"),
    ("float32 kc=128", "'float32 kc=128'"),
    ("float32:kx=128", "'kx=128'"),
    ("float32:kc=0", "'0'"),
    ("float32:kc=-8", "'-8'"),
    ("float32:kc=1.5", "'1.5'"),
    ("float64:mr=5", "multiple"),
])
def test_malformed_numlin_blocking_is_a_value_error_naming_it(spec, named):
    """Issue 16: a malformed NUMLIN_BLOCKING was silently ignored (or half applied). The first
    GEMM now raises ValueError naming the variable and the offending part; numlin still imports."""
    env = dict(os.environ, NUMLIN_BLOCKING=spec)
    code = ("import numpy as np, numlin as nl\n"
            "try:\n"
            "    nl.matmul(np.ones((40, 40)), np.ones((40, 40)))\n"
            "except ValueError as e:\n"
            "    print('ValueError:', e)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ValueError: NUMLIN_BLOCKING="), r.stdout + r.stderr
    assert named in r.stdout


def test_numlin_blocking_overrides_parse():
    """NUMLIN_BLOCKING reaches blocking.py as ``config.blocking`` (read once, in numlin._config)."""
    from numlin._config import override
    from numlin.kernels.cpu import blocking as bmod

    try:
        with override(blocking=" float32: kc=128 , mc=384 ; float64:nc=2040;"):
            bmod.overrides.cache_clear()
            assert bmod.overrides() == {"float32": {"kc": 128, "mc": 384}, "float64": {"nc": 2040}}
    finally:
        bmod.overrides.cache_clear()
