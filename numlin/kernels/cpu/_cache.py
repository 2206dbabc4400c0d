"""Where numlin's compiled CPU kernels are cached, and telling the user when they compile.

Numba keys a cached kernel on its source file and signature, not on numlin's tuning: the
register tile (``mr``/``nr``/``vw`` from :func:`.blocking.blocking`, ``NUMLIN_BLOCKING``
included) is compiled into the GEMM and convolution kernels. :class:`TiledLocator` therefore
keeps numlin's kernels in a sub-folder named after the tiles of both dtypes, beside wherever
Numba would have put them (``NUMBA_CACHE_DIR``, the package's ``__pycache__``, or the user-wide
cache): processes with different tiles never read each other's kernels, even on one cache.

Where no location is writable (a read-only install, no writable ``HOME`` nor
``NUMBA_CACHE_DIR``), kernels go to a temporary folder removed at exit, with one warning: numlin
computes, and compiles again in the next process.

:func:`install` also logs, on the ``numlin`` logger, a kernel whose compilation has lasted a
second (the CLI prints these), so a long first call does not look like a hang.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import warnings

from numba.core import caching, event

from .blocking import blocking

__all__ = ["TiledLocator", "install", "tile_tag"]

#: Numba's cache implementation base (``_CacheImpl`` before Numba 0.68)
_CACHE_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")

log = logging.getLogger("numlin")

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # .../numlin


def tile_tag() -> str:
    """The register tiles compiled into the kernels, e.g. ``"tiles-8x32x16-6x16x8"``."""
    parts = []
    for dt in ("float32", "float64"):
        b = blocking(dt)
        parts.append(f"{b.mr}x{b.nr}x{b.vw}")
    return "tiles-" + "-".join(parts)


class _TempLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """A per-process temporary folder, for when no cache location is writable."""

    _dir: str | None = None
    _lock = threading.Lock()

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(self._root(), self.get_suitable_cache_subpath(py_file))

    @classmethod
    def _root(cls) -> str:
        with cls._lock:
            if cls._dir is None:
                cls._dir = tempfile.mkdtemp(prefix="numlin-kernels-")
                atexit.register(shutil.rmtree, cls._dir, True)
                warnings.warn(
                    "numlin: no writable cache location for its compiled kernels (the package folder, "
                    "NUMBA_CACHE_DIR and the user cache under HOME are not writable); kernels compile "
                    "in every new process, which is slow. Set NUMBA_CACHE_DIR to a writable folder to "
                    "keep them.", RuntimeWarning, stacklevel=2)
        return cls._dir

    def get_cache_path(self):
        return self._cache_path


class TiledLocator(caching._CacheLocator):
    """The location Numba would choose for a numlin source file, plus a tile-named sub-folder."""

    def __init__(self, inner: caching._CacheLocator):
        self._inner = inner
        self._path = os.path.join(inner.get_cache_path(), tile_tag())

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return self._inner.get_source_stamp()

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.abspath(py_file).startswith(_PACKAGE + os.sep):
            return None  # not numlin's: Numba's own locators decide
        for loc in _CACHE_IMPL._locator_classes:
            if loc is cls:
                continue
            inner = loc.from_function(py_func, py_file)
            if inner is None:
                continue
            self = cls(inner)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            return self
        self = cls(_TempLocator(py_func, py_file))
        self.ensure_cache_path()
        return self


class _CompileNotice(event.Listener):
    """Logs a numlin kernel whose compilation has run for ``after`` seconds."""

    def __init__(self, after: float = 1.0):
        self.after = after
        self._timers: dict = {}

    def on_start(self, ev):
        disp = ev.data["dispatcher"]
        func = getattr(disp, "py_func", None)
        if func is None or not (func.__module__ or "").startswith("numlin."):
            return
        key = (threading.get_ident(), id(disp), str(ev.data["args"]))
        if any(k[0] == key[0] for k in self._timers):
            return  # nested in a numlin compile already announced (or about to be)
        name = f"{func.__module__.removeprefix('numlin.kernels.')}.{func.__name__}"
        dtypes = sorted({str(a.dtype) for a in ev.data["args"] if str(getattr(a, "dtype", "")).startswith("float")})
        what = f"{name} ({', '.join(dtypes)})" if dtypes else name
        timer = threading.Timer(self.after, log.info, (
            "compiling %s on first use; it is cached for next time", what))
        timer.daemon = True
        self._timers[key] = timer
        timer.start()

    def on_end(self, ev):
        disp = ev.data["dispatcher"]
        key = (threading.get_ident(), id(disp), str(ev.data["args"]))
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()


_installed = False


def install() -> None:
    """Put :class:`TiledLocator` first in Numba's locators and start the compile notices (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    _CACHE_IMPL._locator_classes.insert(0, TiledLocator)
    event.register("numba:compile", _CompileNotice())
