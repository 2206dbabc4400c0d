"""Host or device: where the data lives decides which kernel runs.

numpy arrays (and anything ``numpy.asarray`` accepts) run the ``kernels.cpu`` kernels; numba
device arrays (the CUDA simulator's included) and any object exposing
``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors) run the ``kernels.cuda`` kernels.

The CPU kernels do not use Numba's threading layer: they are serial ``nogil`` kernels that
``numlin.kernels.cpu._threads.launch`` runs on Python threads, so numlin is safe to call from
several threads with any layer.
"""
from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

from ._validate import is_device_array

__all__ = ["Backend", "backend", "backend_named", "device_of", "is_device_array", "is_dask_array", "holds_tensor",
           "device_id", "blas_single_thread"]


def is_dask_array(x: Any) -> bool:
    """True for Dask collections, told by the type's module so that Dask is never imported here
    (``import numlin`` stays light; Dask is an optional dependency)."""
    return (type(x).__module__ or "").startswith("dask")


def holds_tensor(x: Any) -> bool:
    """True for a :class:`numlin.Tensor` or a (nested) list/tuple holding one: an operand that
    goes on the autodiff tape (told by the classes' names, subclasses included: autodiff is not
    imported here)."""
    if isinstance(x, (list, tuple)):
        return any(holds_tensor(i) for i in x)
    return any(c.__module__ == "numlin.autodiff.tensor" and c.__name__ == "Tensor" for c in type(x).__mro__)


def device_id(x: Any) -> int | None:
    """The GPU ordinal a device array lives on, where the object says so (CuPy ``.device.id``,
    PyTorch ``.device.index``, numba's context device); None when it cannot tell."""
    dev = getattr(x, "device", None)
    for attr in ("id", "index"):
        v = getattr(dev, attr, None)
        if isinstance(v, int):
            return v
    try:
        return int(x.gpu_data.context.device.id)  # numba DeviceNDArray
    except Exception:
        return None


def device_of(op: str, **operands: Any) -> str:
    """``"cuda"`` if every non-None operand is on the device, ``"cpu"`` if none is.

    Raises
    ------
    TypeError
        When host and device operands are mixed (numlin never moves data implicitly).
    ValueError
        When device operands live on different GPUs.
    """
    where = {name: is_device_array(x) for name, x in operands.items() if x is not None}
    if all(where.values()):
        if not where:
            return "cpu"
        ids = {name: device_id(x) for name, x in operands.items() if x is not None}
        known = {name: i for name, i in ids.items() if i is not None}
        if len(set(known.values())) > 1:
            placed = ", ".join(f"{name} on cuda:{i}" for name, i in known.items())
            raise ValueError(f"{op}: operands live on different GPUs ({placed}); copy them to one device first")
        return "cuda"
    if not any(where.values()):
        return "cpu"
    dev = [n for n, d in where.items() if d]
    host = [n for n, d in where.items() if not d]
    raise TypeError(
        f"{op}: operands {', '.join(dev)} are on the GPU but {', '.join(host)} on the host; move them "
        "to one place first (numba.cuda.to_device(x) or x.copy_to_host())"
    )


class Backend:
    """The kernels of one device, each kernel module imported on first use (so ``import numlin``
    stays light and a CPU-only process never imports CUDA).

    ``backend.name`` is ``"cpu"`` or ``"cuda"``; ``backend.arrays`` is the device's array façade
    (``as_array``, ``cast``, ``empty``, ``contiguous``, ``check_out``, ``strided``, ...), and every
    other attribute is the kernel module of that name (``backend.gemm``, ``backend.elementwise``,
    ``backend.pool``, ...). The front-ends reach the kernels only through it (the CLI's tooling
    reads ``kernels.cpu.blocking`` and ``_threads`` directly).
    """

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attr: str):
        """Called once per kernel module: the module then becomes a plain instance attribute, so
        later reads (autodiff ops read one per call) skip this method."""
        if attr.startswith("__"):
            raise AttributeError(attr)
        path = f"numlin.kernels.{self.name}" + ("" if attr == "arrays" else f".{attr}")
        try:
            mod = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
            raise AttributeError(f"the {self.name} backend has no kernel module {attr!r}") from None
        setattr(self, attr, mod)
        return mod

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


_BACKENDS = {"cpu": Backend("cpu"), "cuda": Backend("cuda")}


def backend_named(name: str) -> Backend:
    """The :class:`Backend` called ``name`` (``"cpu"`` or ``"cuda"``, e.g. a Tensor's ``device``)."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; numlin runs on 'cpu' and 'cuda'") from None


def backend(op: str, **operands: Any) -> Backend:
    """The :class:`Backend` where ``operands`` live (see :func:`device_of` for the errors)."""
    return _BACKENDS[device_of(op, **operands)]


_blas_controller = None
_blas_lock = threading.Lock()
_blas_depth = 0  # how many blas_single_thread blocks are open, in all threads
_blas_limiter = None  # threadpoolctl's limiter of the outermost block: it restores the original


@contextlib.contextmanager
def blas_single_thread():
    """Run numpy/scipy's BLAS and LAPACK on one thread inside the block.

    numlin mixes its own parallel kernels with small LAPACK calls (QR of an m x l sketch, SVD
    of an l x n matrix). OpenBLAS's idle workers spin after each call and take a core from the
    next numlin kernel: on 2 cores that halved randomized SVD's speed. The small factorizations
    lose nothing on one thread.

    The limit is process-wide (threadpoolctl), so blocks entered from several Python threads
    share it: reference-counted under a lock, the first block to enter sets 1 thread and the
    last to leave restores the limits found on entry (nested and overlapping blocks included).

    The controller knows the BLAS libraries loaded when it is made, so scipy's LAPACK (its own
    OpenBLAS, which the factorizations call) is loaded first: made before it, the controller left
    scipy's OpenBLAS on every core (rsvd 2000 x 1000's second call 0.09-0.12 s against 0.05-0.06).
    """
    global _blas_controller, _blas_depth, _blas_limiter
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    if _blas_controller is None:
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS/LAPACK before the controller scans)
    with _blas_lock:
        if _blas_controller is None:
            _blas_controller = ThreadpoolController()
        if _blas_depth == 0:
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                limiter, _blas_limiter = _blas_limiter, None
                limiter.restore_original_limits()


_pool = None


def recycling():
    """A block in which large CPU results reuse the memory of dropped ones
    (``numlin.kernels.cpu._pool``; the autodiff tape opens it)."""
    global _pool
    if _pool is None:
        _pool = importlib.import_module("numlin.kernels.cpu._pool")
    return _pool.recycling()
