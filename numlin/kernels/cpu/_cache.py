"""Where numlin's compiled CPU kernels are cached, and telling the user when they compile.

Numba keys a cached kernel on its source file and signature, not on numlin's tuning: the
register tile (``mr``/``nr``/``vw`` from :func:`.blocking.blocking`, ``NUMLIN_BLOCKING``
included) is compiled into the GEMM and convolution kernels. :class:`TiledLocator` therefore
keeps numlin's kernels in a sub-folder named after the tiles of both dtypes, beside wherever
Numba would have put them (``NUMBA_CACHE_DIR``, the package's ``__pycache__``, or the user-wide
cache): processes with different tiles never read each other's kernels, even on one cache.

Numba also stamps a cached kernel with its own source file only, while numlin's kernels link in
code from other files: the micro-kernel intrinsics are inlined into the GEMM loops, the small
paths and the convolutions, and called kernels are linked into their callers. An edit to such a
file would leave its callers' cached kernels stale. :class:`TiledLocator` therefore stamps each
file's kernels with the files of this folder it imports, directly or through another, that hold
compiled code or constants compiled in (:func:`linked_sources`): an edit to any of them
recompiles the kernels that may contain it.

Where no location is writable (a read-only install, no writable ``HOME`` nor
``NUMBA_CACHE_DIR``), kernels go to a temporary folder removed at exit, with one warning: numlin
computes, and compiles again in the next process.

:func:`install` also logs, on the ``numlin`` logger, a kernel whose compilation has lasted a
second (the CLI prints these), so a long first call does not look like a hang.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings

from numba.core import caching, event

from .blocking import blocking

__all__ = ["TiledLocator", "install", "linked_sources", "load_lowering_builtins", "tile_tag"]

#: Numba's cache implementation base (``_CacheImpl`` before Numba 0.68)
_CACHE_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")

log = logging.getLogger("numlin")

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # .../numlin
_KERNELS = os.path.dirname(os.path.abspath(__file__))  # .../numlin/kernels/cpu: imports are followed inside it

#: files of this folder whose constants are compiled into other files' kernels (DIRECT_MR), though
#: they define no kernel; the tiles themselves are covered by :func:`tile_tag`
_COMPILED_IN = frozenset({os.path.join(_KERNELS, "blocking.py")})
#: a decorator that makes compiled code
_JITTED = re.compile(r"^[ \t]*@(?:numba\.)?(?:njit|jit|intrinsic|overload\w*|register_jitable)\b", re.M)


def tile_tag() -> str:
    """The register tiles compiled into the kernels, e.g. ``"tiles-8x32x16-6x16x8"``."""
    parts = []
    for dt in ("float32", "float64"):
        b = blocking(dt)
        parts.append(f"{b.mr}x{b.nr}x{b.vw}")
    return "tiles-" + "-".join(parts)


def _module_file(path: str) -> str | None:
    """``path`` (a module's path without ``.py``) as a source file, module or package."""
    for f in (path + ".py", os.path.join(path, "__init__.py")):
        if os.path.isfile(f):
            return f
    return None


#: ``from <dots><module> import <names>`` (names in parentheses may span lines) and ``import numlin...``,
#: at any indentation; a regular expression rather than a parse keeps ``import numlin`` fast
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)"
                     r"|import[ \t]+(numlin(?:\.\w+)*))", re.M)


@functools.lru_cache(maxsize=None)
def _imported_files(py_file: str) -> frozenset:
    """The files of this folder that ``py_file`` imports, at module level or inside functions
    (a submodule imported by name is that file, not its package's ``__init__``)."""
    try:
        with open(py_file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError):
        return frozenset()
    root = os.path.dirname(_PACKAGE)
    found = set()
    for dots, module, names, absolute in _IMPORT.findall(text):
        if absolute:
            found.add(_module_file(os.path.join(root, *absolute.split("."))))
            continue
        if dots:
            base = os.path.dirname(py_file)
            for _ in range(len(dots) - 1):
                base = os.path.dirname(base)
        elif module.split(".")[0] == "numlin":
            base = root
        else:
            continue
        mod = os.path.join(base, *filter(None, module.split(".")))
        for item in re.sub(r"#[^\n]*", "", names).strip("() \t\n").split(","):
            words = item.split()  # "name" or "name as alias"
            if words:
                found.add(_module_file(os.path.join(mod, words[0])) or _module_file(mod))
    return frozenset(os.path.abspath(f) for f in found if f and os.path.abspath(f).startswith(_KERNELS + os.sep))


@functools.lru_cache(maxsize=None)
def _compiles(py_file: str) -> bool:
    """Whether ``py_file`` holds code or constants that another file's kernels may compile in."""
    if py_file in _COMPILED_IN:
        return True
    try:
        with open(py_file, encoding="utf-8") as f:
            return _JITTED.search(f.read()) is not None
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def linked_sources(py_file: str) -> tuple:
    """The files other than ``py_file`` whose code its kernels may contain: those of this folder
    that it imports, directly or through another file, holding compiled code (``@njit``,
    ``@intrinsic``, ...) or constants compiled in."""
    py_file = os.path.abspath(py_file)
    seen: set = set()
    todo = [py_file]
    while todo:
        for f in _imported_files(todo.pop()):
            if f not in seen:
                seen.add(f)
                todo.append(f)
    seen.discard(py_file)
    return tuple(sorted(f for f in seen if _compiles(f)))


@functools.lru_cache(maxsize=None)
def _linked_stamp(py_file: str) -> tuple:
    """Modification time and size of each of :func:`linked_sources` (Numba's own stamp of a file)."""
    out = []
    for f in linked_sources(py_file):
        st = os.stat(f)
        out.append((os.path.relpath(f, _KERNELS), st.st_mtime, st.st_size))
    return tuple(out)


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
    """The location Numba would choose for a numlin source file, plus a tile-named sub-folder;
    the source stamp also covers the files whose code the file's kernels link in."""

    def __init__(self, inner: caching._CacheLocator, py_file: str):
        self._inner = inner
        self._py_file = py_file
        self._path = os.path.join(inner.get_cache_path(), tile_tag())

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return self._inner.get_source_stamp(), _linked_stamp(os.path.abspath(self._py_file))

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
            self = cls(inner, py_file)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            return self
        self = cls(_TempLocator(py_func, py_file), py_file)
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


def _load_without_refresh(load):
    """Numba's ``Cache.load_overload``, for numlin's kernels without its ``target_context.refresh()``.

    Numba refreshes the target context before every cache load: on the first, that imports all
    of its typing and lowering registries (``numba.np.arraymath`` among them, which imports
    ``scipy.linalg`` to look for a BLAS), ~0.3 s of every process's first kernel that a cached
    kernel does not need: the registries serve type inference and lowering, which a compile
    refreshes for itself (``compiler.compile_extra``). A loaded kernel needs only what the
    context's ``init`` registers (math, helper and exception symbols) and Numba's runtime (NRT),
    whose symbols and atomics :func:`rtsys.initialize` installs (without them the kernel's calls
    into NRT jump to address 0). numlin's kernels call nothing else from Numba's C side (no
    BLAS through ``np.dot``, no hashing, no random state, no object mode); a test checks that a
    process loading the kernels of a training step, convolutions, GEMM and rsvd computes what
    it computes when they load Numba's way. Ufuncs build their loop's wrapper at load, which
    needs the lowering of constants: :func:`load_lowering_builtins` installs that registry alone
    first. Other functions' caches load as Numba does."""
    from numba.core.cpu import CPUContext
    from numba.core.runtime import rtsys

    @functools.wraps(load)
    def load_overload(self, sig, target_context):
        if not (isinstance(getattr(self._impl, "locator", None), TiledLocator)
                and isinstance(target_context, CPUContext)):
            return load(self, sig, target_context)
        rtsys.initialize(target_context)  # once; then a flag test
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    load_overload.numlin = True
    return load_overload


def load_lowering_builtins() -> None:
    """The part of Numba's lowering registries that a ufunc's loop wrapper needs: a ufunc
    (``vectorize``) builds that wrapper in the process even when the rule's code comes from the
    cache, and the build asks the target context for constants (``get_constant(intp, i)``), whose
    lowerings are in ``numba.core.imputils.builtin_registry`` (filled by ``numba.cpython``'s
    modules, which ``import numba`` has imported). Installing that one registry is what Numba's
    own ``refresh`` does last, after importing every other registry (``numba.np.arraymath`` and,
    through it, ``scipy.linalg``: ~0.3 s); the registry's loader hands out only new entries, so a
    later full refresh (a compile) installs the rest as usual. Under Numba's compiler lock, as
    its own refreshes run (ufuncs may be built by several threads at once)."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.imputils import builtin_registry
    from numba.core.registry import cpu_target
    from numba.cpython import builtins, numbers  # noqa: F401  (their lowerings fill builtin_registry)

    with global_compiler_lock:
        cpu_target.target_context.install_registry(builtin_registry)


def load_registries():
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    with global_compiler_lock:
        cpu_target.target_context.refresh()


_installed = False


def install() -> None:
    """Put :class:`TiledLocator` first in Numba's locators, load numlin's cached kernels without
    Numba's registry refresh (:func:`_load_without_refresh`) and start the compile notices (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    _CACHE_IMPL._locator_classes.insert(0, TiledLocator)
    if not getattr(caching.Cache.load_overload, "numlin", False) and hasattr(caching.Cache, "_load_overload"):
        caching.Cache.load_overload = _load_without_refresh(caching.Cache.load_overload)
    event.register("numba:compile", _CompileNotice())
