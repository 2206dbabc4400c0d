"""What ``import numlin`` and the work that needs no compiled code cost: no Numba (issue 17)."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SEED = """
import sys
import numlin as nl
assert "numba" not in sys.modules, "import numlin imported numba"
x = nl.constant(2.0); y = nl.constant(5.0)
with nl.GradientTape() as g:
    g.watch(x)
    out = nl.log(x) + nl.subtract(nl.multiply(x, y), nl.sin(y))
assert abs(float(g.gradient(out, x)) - 5.5) < 1e-12
print("numba" in sys.modules)
"""


def test_import_and_the_seeds_scalar_tape_example_never_import_numba():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _SEED], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
