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
    The CPU implicit-GEMM forward packs input panels instead of shifting rows; the stride-1
    filter gradient runs as a packed GEMM instead of dot products.
NUMLIN_CONV_WORKSPACE_MB
    Cap on the im2col workspace of one call, in MiB (default 64).
NUMLIN_CPU_POOL_MB
    Memory of large CPU results kept for reuse, in MiB (default 512; 0: none).
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


def _mib(env: Mapping[str, str], name: str, default_mb: float, zero: bool = False) -> int:
    """``name`` as a positive (or, with ``zero``, non-negative) number of MiB, in bytes; a bad value
    warns and gives the default."""
    raw = env.get(name)
    if raw is None:
        return int(default_mb * 2**20)
    try:
        mb = float(raw)
        if not (math.isfinite(mb) and (mb > 0 or (zero and mb == 0))):
            raise ValueError
    except ValueError:
        kind = "non-negative" if zero else "positive"
        warnings.warn(f"{name}={raw!r} is not a {kind} number of MiB; using the default {default_mb:g}",
                      RuntimeWarning, stacklevel=3)
        return int(default_mb * 2**20)
    return int(mb * 2**20) if zero else max(1, int(mb * 2**20))


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
    #: bytes of large CPU results' memory kept for reuse once they are dropped (NUMLIN_CPU_POOL_MB;
    #: 0: every result is a fresh ``np.empty``), see kernels/cpu/_pool.py
    cpu_pool_bytes: int = 512 << 20
    #: CPU implicit-GEMM forward by shifted rows rather than packed panels (NUMLIN_CONV_SHIFTED)
    conv_shifted: bool = True
    #: CPU stride-1 filter gradient by dot products rather than a packed GEMM (NUMLIN_CONV_DW_DOT)
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
    #: work below which a GEMM runs on the calling thread: the sum over the batch of m*n*k plus
    #: gemm_item_cost per product, in FMAs (a launch on several threads costs 50-100 us)
    gemm_parallel_mnk: int = 192 * 192 * 192
    #: the fixed cost of one small product, in FMAs, added per product when sizing a launch
    gemm_item_cost: int = 2048
    #: per-product m*n*k at or under which the batched kernels skip packing
    gemm_small_mnk: int = 16 * 16 * 16
    #: batches whose products share one B pack it once per thread (off: once per product; A/B timing)
    gemm_share_b: bool = True
    #: products with a vector operand (n == 1, or m == 1 through Cᵀ = Bᵀ Aᵀ) run gemv (off: the
    #: direct or packed paths; A/B timing and the tests)
    gemm_gemv: bool = True
    #: m*n*k at or under which a product skips packing when B and C (or, for Cᵀ = Bᵀ Aᵀ, A and C)
    #: have unit column stride, by itemsize: the direct micro-kernel reads them in place, faster
    #: while B stays in cache (benchmarks/README.md, CPU GEMM log)
    gemm_direct_mnk: dict = dataclasses.field(default_factory=lambda: {4: 1 << 23, 8: 1 << 22})
    #: ... and whose B (k x n) fits this many bytes (half an L2): each 8-row block of A streams
    #: all of B, a strip of rows per vector of columns
    gemm_direct_b_bytes: int = 512 * 1024
    #: CUDA's limit on a grid's y (row tiles) dimension; more row tiles run as several launches
    cuda_gemm_max_grid_y: int = 65_535

    # -- convolution (kernels.cpu.conv, kernels.cuda.conv) -----------------------------------
    #: fewest channels per group for the CPU implicit GEMM to take the *strided forward of a grouped
    #: convolution* (its B packing costs ~30 cycles per run of pixels and filter tap, shared by the
    #: channels; fewer channels take im2col + GEMM). Every other case takes it at any channel count
    conv_fused_min_channels: int = 8
    #: m*n*k (summed over the batch) below which a CPU implicit GEMM runs on the calling thread.
    #: 2^25: the demo CNN's 19 M-FMA convolutions lost as 2 parts beside PyTorch (its step 3.9-4.1
    #: against 2.7-2.8 ms, bench pairing; at 192^3 they took 2), ResNet-8's step is unchanged
    #: (66.7 / 66.1 ms); 75 M FMAs gain from 2 parts (benchmarks/README.md, fourteenth session)
    conv_parallel_mnk: int = 1 << 25
    #: output pixels per packed B block of the CPU implicit forward (a multiple of NR):
    #: ``kc x conv_nc_pixels`` values stay in L2
    conv_nc_pixels: int = 128
    #: fewest MR-row blocks of the filter per thread for the CPU stride-1 forward to give each
    #: thread a share of the filter's rows (over every tile) rather than a share of the tiles
    conv_row_split_blocks: int = 8
    #: bytes of shifted copies of x (a chunk of samples) the CPU stride-1 forward and filter gradient
    #: keep; a sample whose copies alone exceed it is packed instead (no workspace beyond panels)
    conv_shift_bytes: int = 16 * 1024 * 1024
    #: bytes of dY rows (MR' rows over a chunk of samples) the CPU dot-product filter gradient keeps in L2
    conv_dot_a_bytes: int = 256 * 1024
    #: bytes of shifted x planes (over the chunk of samples) one group of its tile columns reads, in L2
    conv_dot_b_bytes: int = 256 * 1024
    #: filter-gradient columns (filter rows C*R*S) per packed panel of ``colsᵀ`` (a multiple of NR)
    conv_dw_nc: int = 512
    #: CPU depthwise gradients over whole runs of the phase buffers (off: row by row over the
    #: columns outputs hold, as for non-finite values; A/B timing and the tests)
    conv_depthwise_whole_runs: bool = True
    #: CPU depthwise forward and filter gradient sum a 3x3 filter's nine taps, or a 5-wide filter
    #: row's five, in one pass (off: one pass per tap)
    conv_depthwise_fused_taps: bool = True
    #: cap on the CUDA implicit filter gradient's per-(sample, piece) partial products, in bytes:
    #: the batch is taken in chunks of samples under it (at least one sample, unsplit, per launch)
    conv_partials_bytes: int = 64 << 20

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> "Config":
        """The configuration ``env`` (default ``os.environ``) asks for."""
        env = os.environ if env is None else env
        return cls(
            conv_fused=_flag(env, "NUMLIN_CONV_FUSED"),
            conv_workspace_bytes=_mib(env, "NUMLIN_CONV_WORKSPACE_MB", 64.0),
            cpu_pool_bytes=_mib(env, "NUMLIN_CPU_POOL_MB", 512.0, zero=True),
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
