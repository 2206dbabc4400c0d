"""Every route switch and tuning knob numlin reads, in one place.

The environment is read here once, at import, and each value is validated with a message that
names the variable. Code elsewhere reads ``config.<name>`` at call time, so a test (or a user
timing one route against another) changes a route with :func:`override`, never by patching a
module global::

    from numlin._config import config, override
    with override(conv_fused=False):      # the chunked im2col + GEMM forward
        ...

Knobs that are compiled into a kernel (tile sizes: ``NUMLIN_BLOCKING``) are read here too, but
take effect only through :mod:`numlin.kernels.cpu.blocking`, whose cache tag keeps kernels built
for other tiles apart; overriding :attr:`Config.blocking` after the first GEMM has no effect.

Environment variables
---------------------
NUMLIN_CONV_FUSED=0
    No implicit GEMMs or direct depthwise stencils: every convolution takes im2col + GEMM in
    workspace-capped chunks (for A/B timing).
NUMLIN_CONV_SHIFTED=0, NUMLIN_CONV_DW_DOT=0
    The CPU implicit-GEMM forward packs input panels instead of shifting rows; the filter
    gradient runs as im2col + GEMM instead of the dot-product kernel.
NUMLIN_CONV_WORKSPACE_MB
    Cap on the im2col workspace of one call, in MiB (default 64).
NUMLIN_BLOCKING
    GEMM tile overrides, ``"float32:mr=4,nr=32;float64:mc=48"``.
NUMLIN_PTXAS
    Path of ``ptxas`` for the PTX check (empty: skip assembling).
NUMLIN_DEMO_PREWARM=0
    The demo does not compile the ResNet's kernels in a background process.
NUMBA_CACHE_DIR
    Numba's own; read here only to say where kernels are cached.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from typing import Any, Iterator, Mapping

__all__ = ["Config", "config", "override"]


def _flag(env: Mapping[str, str], name: str, default: bool = True) -> bool:
    """``name`` as an on/off switch: ``"0"`` is off, ``"1"`` on; anything else warns (naming the
    variable and value) and keeps the default, so ``import numlin`` never fails on it."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip() in ("0", "1"):
        return raw.strip() == "1"
    warnings.warn(f"{name}={raw!r} is neither '0' nor '1'; using the default {int(default)}", RuntimeWarning,
                  stacklevel=3)
    return default


def _mib(env: Mapping[str, str], name: str, default_mb: float) -> int:
    """``name`` as a positive number of MiB, in bytes; a bad value warns and gives the default."""
    raw = env.get(name)
    if raw is None:
        return int(default_mb * 2**20)
    try:
        mb = float(raw)
        if not (math.isfinite(mb) and mb > 0):
            raise ValueError
    except ValueError:
        warnings.warn(f"{name}={raw!r} is not a positive number of MiB; using the default {default_mb:g}",
                      RuntimeWarning, stacklevel=3)
        return int(default_mb * 2**20)
    return max(1, int(mb * 2**20))


@dataclasses.dataclass
class Config:
    """numlin's switches and knobs; the one instance is :data:`config`.

    Routes are chosen at call time from these values; thresholds are in elements or bytes as
    named. Change them with :func:`override` (tests, A/B timing), not by assignment.
    """

    # -- environment ------------------------------------------------------------------------
    #: implicit GEMMs and direct depthwise stencils where a kernel applies (NUMLIN_CONV_FUSED)
    conv_fused: bool = True
    #: cap on the im2col workspace per call, in bytes (NUMLIN_CONV_WORKSPACE_MB)
    conv_workspace_bytes: int = 64 << 20
    #: CPU implicit-GEMM forward by shifted rows rather than packed panels (NUMLIN_CONV_SHIFTED)
    conv_shifted: bool = True
    #: CPU filter gradient by the dot-product kernel rather than im2col + GEMM (NUMLIN_CONV_DW_DOT)
    conv_dw_dot: bool = True
    #: GEMM tile overrides, the raw NUMLIN_BLOCKING string (parsed by kernels.cpu.blocking)
    blocking: str = ""
    #: ptxas for the PTX check: None = the one on PATH, "" = skip assembling (NUMLIN_PTXAS)
    ptxas: str | None = None
    #: the demo pre-compiles the ResNet's kernels in a background process (NUMLIN_DEMO_PREWARM)
    demo_prewarm: bool = True
    #: Numba's cache folder when NUMBA_CACHE_DIR is set (read only to report it)
    numba_cache_dir: str | None = None

    # -- routes without a variable (tests steer them) ----------------------------------------
    #: depthwise NCHW convolutions by direct stencils (off: the GEMM paths)
    conv_depthwise: bool = True

    # -- threads (kernels.cpu._threads) ----------------------------------------------------------
    #: elements of work per part below which a launch stays on the calling thread: waking a pool
    #: thread and handing it the GIL costs 50-100 us on the 2-core VMs (futex wake-up of an idle
    #: vCPU), and these kernels stream a few elements per nanosecond
    threads_grain: int = 1 << 18

    # -- GEMM (kernels.cpu.gemm) -----------------------------------------------------------------
    #: m*n*k below which a GEMM runs on the calling thread
    gemm_parallel_mnk: int = 192 * 192 * 192

    # -- convolution (kernels.cpu.conv, kernels.cuda.conv) -----------------------------------

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> "Config":
        """The configuration ``env`` (default ``os.environ``) asks for."""
        env = os.environ if env is None else env
        return cls(
            conv_fused=_flag(env, "NUMLIN_CONV_FUSED"),
            conv_workspace_bytes=_mib(env, "NUMLIN_CONV_WORKSPACE_MB", 64.0),
            conv_shifted=_flag(env, "NUMLIN_CONV_SHIFTED"),
            conv_dw_dot=_flag(env, "NUMLIN_CONV_DW_DOT"),
            blocking=env.get("NUMLIN_BLOCKING", ""),
            ptxas=env.get("NUMLIN_PTXAS"),
            demo_prewarm=_flag(env, "NUMLIN_DEMO_PREWARM"),
            numba_cache_dir=env.get("NUMBA_CACHE_DIR") or None,
        )


#: the process's configuration
config = Config.from_environ()

_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


@contextlib.contextmanager
def override(**changes: Any) -> Iterator[Config]:
    """Set fields of :data:`config` inside a ``with`` block; the old values come back on exit.

    Raises
    ------
    TypeError
        For a name that is not a field of :class:`Config`.
    """
    unknown = sorted(set(changes) - set(_FIELDS))
    if unknown:
        raise TypeError(f"override: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    old = {name: getattr(config, name) for name in changes}
    for name, value in changes.items():
        setattr(config, name, value)
    try:
        yield config
    finally:
        for name, value in old.items():
            setattr(config, name, value)
