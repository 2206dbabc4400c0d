"""Blocking sizes for the CPU GEMM, per instruction set and dtype, kept apart from the kernels.

The five BLIS loops use three cache blocks (``kc``, ``mc``, ``nc``) around an ``mr`` x ``nr``
register tile that the micro-kernel accumulates in ``vw``-wide SIMD vectors:

* ``mr x nr`` register tile: ``mr * nr / vw`` accumulators, leaving room for ``nr / vw`` loads of
  B and one broadcast of A in the vector register file (16 ymm with AVX2, 32 zmm with AVX-512).
* ``kc``: one ``kc x nr`` micro-panel of packed B stays in L1 while the ``ir`` loop runs.
* ``mc``: one ``mc x kc`` block of packed A stays in L2.
* ``nc``: one ``kc x nc`` panel of packed B stays in L3 (shared by the cores).

Only ``mr``, ``nr`` and ``vw`` are compile-time constants of the kernels; ``kc``, ``mc`` and
``nc`` are passed at run time. The tables were tuned with ``python -m numlin bench`` (see
``benchmarks/README.md``). Other constants compiled into the GEMM kernels (:data:`DIRECT_MR`) live
here too; switches and thresholds that Python reads at call time are in :mod:`numlin._config`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from ..._config import config

__all__ = ["Blocking", "blocking", "isa", "DIRECT_MR", "DOT_TILE"]


@dataclass(frozen=True)
class Blocking:
    """Register tile (``mr`` x ``nr`` in ``vw``-wide vectors) and cache blocks of one dtype."""

    mr: int
    nr: int
    vw: int
    kc: int
    mc: int
    nc: int

    def __post_init__(self) -> None:
        if self.nr % self.vw or self.mc % self.mr or self.nc % self.nr:
            raise ValueError(f"inconsistent blocking {self}")


# AVX2: BLIS config/zen3 (6x16 / 6x8). AVX-512: 16 zmm accumulators for float32 (8 x 32), 6 x 16
# float64 with kc 384; tuned on Zen 4, the measurements are in benchmarks/README.md.
_TABLES: dict[str, dict[str, Blocking]] = {
    "avx512": {
        "float32": Blocking(mr=8, nr=32, vw=16, kc=256, mc=192, nc=4064),
        "float64": Blocking(mr=6, nr=16, vw=8, kc=384, mc=48, nc=4080),
    },
    "avx2": {
        "float32": Blocking(mr=6, nr=16, vw=8, kc=256, mc=144, nc=4080),
        "float64": Blocking(mr=6, nr=8, vw=4, kc=256, mc=72, nc=4080),
    },
    "generic": {  # SSE2 baseline: 4-wide float32, 2-wide float64
        "float32": Blocking(mr=4, nr=8, vw=4, kc=256, mc=128, nc=4080 // 8 * 8),
        "float64": Blocking(mr=4, nr=4, vw=2, kc=256, mc=64, nc=4080),
    },
}


@functools.lru_cache(maxsize=None)
def isa() -> str:
    """The SIMD level Numba compiles for on this machine: ``"avx512"``, ``"avx2"`` or ``"generic"``.

    Honours ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` (e.g. a cache built for ``generic``).
    """
    from numba.core import config as numba_config

    if numba_config.CPU_FEATURES is not None or numba_config.CPU_NAME is not None:
        text = numba_config.CPU_FEATURES or ""
        feats = {f[1:] for f in text.split(",") if f.startswith("+")}
    else:
        import llvmlite.binding as ll

        feats = {k for k, v in ll.get_host_cpu_features().items() if v}
    if {"avx512f", "avx512vl"} <= feats:
        return "avx512"
    if {"avx2", "fma"} <= feats:
        return "avx2"
    return "generic"


@functools.lru_cache(maxsize=None)
def blocking(dtype) -> Blocking:
    """Blocking sizes for ``dtype`` (float32 or float64) on this machine's instruction set.

    ``NUMLIN_BLOCKING`` (:attr:`numlin._config.Config.blocking`) overrides fields for tuning, e.g.
    ``"float32:mr=8,kc=128;float64:mc=120"`` (:func:`overrides`; a malformed value is a
    ``ValueError`` naming the variable). Read once per process (cached): kernels compiled for
    other ``mr``/``nr``/``vw`` are cached apart (:mod:`._cache`), and a process's tiles never
    change under its compiled kernels.
    """
    name = np.dtype(dtype).name
    base = _TABLES[isa()][name]
    fields = overrides().get(name)
    if not fields:
        return base
    try:
        return replace(base, **fields)
    except ValueError as exc:
        raise ValueError(f"NUMLIN_BLOCKING={config.blocking!r}: {name} gives an {exc}; mc must be "
                         "a multiple of mr, nc of nr and nr of vw") from None


#: rows of the direct (unpacked, masked) micro-kernel's tile, which is one SIMD vector wide: a
#: product of up to 8 rows takes one call per vector of columns
DIRECT_MR = 8

_FIELDS = ("mr", "nr", "vw", "kc", "mc", "nc")


@functools.lru_cache(maxsize=None)
def overrides() -> dict:
    """``NUMLIN_BLOCKING`` (:attr:`numlin._config.Config.blocking`) parsed: ``{dtype: {field: int}}``,
    or ``ValueError`` naming the variable and the offending part. Cached: a test that overrides
    ``config.blocking`` clears this cache and :func:`blocking`'s."""
    spec = config.blocking
    out: dict = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        dt, sep, fields = part.partition(":")
        dt = dt.strip()
        if not sep or dt not in ("float32", "float64"):
            raise ValueError(f"NUMLIN_BLOCKING={spec!r}: {part!r} must read 'float32:field=value,...' or "
                             "'float64:field=value,...'")
        for item in filter(None, (f.strip() for f in fields.split(","))):
            key, eq, value = (x.strip() for x in item.partition("="))
            if not eq or key not in _FIELDS:
                raise ValueError(f"NUMLIN_BLOCKING={spec!r}: {item!r} must be field=value with a field among "
                                 f"{', '.join(_FIELDS)}")
            try:
                number = int(value)
            except ValueError:
                number = 0
            if number < 1 or str(number) != value.lstrip("+"):
                raise ValueError(f"NUMLIN_BLOCKING={spec!r}: {key} must be a positive integer, got {value!r}")
            out.setdefault(dt, {})[key] = number
    return out


#: dot-product tile of the convolution's stride-1 filter gradient (rows of dY x filter taps,
#: :mod:`.conv.implicit_dw`), per instruction set: ``MR' * NR'`` vector accumulators plus ``MR'``
#: loads of dY and one of x in the register file
DOT_TILE = {"avx512": (4, 6), "avx2": (3, 4), "generic": (2, 3)}
