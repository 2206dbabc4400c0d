"""``Module``: the base of numlin's layers and of a user's own models (PyTorch's ``nn.Module`` face).

A module's state is found from its attributes, with no registration: every attribute that is a
:class:`~numlin.Variable` (a parameter), a ``Module`` (a sub-module), or a list, tuple or dict
holding them (nested) counts, so a subclass whose ``__init__`` never calls
``super().__init__()`` works too. Layers with non-trainable state (BatchNorm's running
statistics) name those attributes in ``_buffer_names``; :meth:`Module.state_dict` saves them
and :meth:`Module.to` moves them with the parameters.

State-dict keys are PyTorch's dotted paths: an attribute's name, a list or tuple index, a dict
key, joined by dots (``"conv1.weight"``, ``"layer1.0.bn1.running_mean"``); a
:class:`~numlin.nn.Sequential`'s layers are ``"0"``, ``"1"``, ... as in PyTorch.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator, NamedTuple

import numpy as np

from .._dispatch import is_device_array
from ..autodiff.tensor import Tensor, Variable

__all__ = ["Module", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` found: keys the module has that the dict lacks, and
    keys of the dict the module does not have (PyTorch's ``_IncompatibleKeys``)."""

    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class: ``__call__`` runs ``forward``; ``parameters()`` lists every Variable the module
    and its sub-modules hold, in definition order.

    Attributes
    ----------
    training : bool
        True (the default, a class attribute) in training mode; set for the whole tree by
        :meth:`train` and :meth:`eval`. BatchNorm and Dropout behave differently in each.
    """

    training: bool = True
    #: attributes holding non-trainable state (numpy or device arrays, or ints), saved by
    #: :meth:`state_dict` after the parameters and moved by :meth:`to`
    _buffer_names: tuple = ()
    #: parameters held transposed from PyTorch's layout (``Linear.weight`` is ``(in, out)``):
    #: :meth:`state_dict` saves them in PyTorch's layout and :meth:`load_state_dict` transposes back
    _state_transposed: tuple = ()

    def forward(self, x: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.forward(*args, **kwargs)

    # ----------------------------------------------------------------- traversal
    def parameters(self) -> list[Variable]:
        """The trainable Variables, each once."""
        seen: dict[int, Variable] = {}
        for p in self._walk():
            seen.setdefault(id(p), p)
        return list(seen.values())

    def _walk(self) -> Iterator[Variable]:
        for v in vars(self).values():
            yield from _params_in(v)

    def named_parameters(self) -> list[tuple[str, Variable]]:
        """``(dotted name, Variable)`` of each parameter, each Variable once (its first name)."""
        seen: set[int] = set()
        out = []
        for key, kind, target in self._state_items(""):
            if kind != "buffer" and id(target) not in seen:
                seen.add(id(target))
                out.append((key, target))
        return out

    def _named_children(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of the attributes that may hold parameters or sub-modules."""
        return iter(vars(self).items())

    def _state_items(self, prefix: str) -> Iterator[tuple[str, str, Any]]:
        """``(key, "param", Variable)``, ``(key, "param_t", Variable)`` (kept transposed from
        PyTorch's layout: :attr:`_state_transposed`) and ``(key, "buffer", (module, attribute))``,
        in order."""
        for name, v in self._named_children():
            if name in self._buffer_names:
                continue
            if name in self._state_transposed and isinstance(v, Variable):
                yield prefix + str(name), "param_t", v
                continue
            yield from _state_in(v, prefix + str(name))
        for name in self._buffer_names:
            if getattr(self, name, None) is not None:
                yield prefix + name, "buffer", (self, name)

    def modules(self) -> list["Module"]:
        """This module and every sub-module below it (in lists, tuples and dicts too), each once."""
        seen: dict[int, Module] = {}
        stack: list[Any] = [self]
        while stack:
            v = stack.pop()
            if isinstance(v, Module):
                if id(v) in seen:
                    continue
                seen[id(v)] = v
                stack.extend(reversed(list(vars(v).values())))
            elif isinstance(v, (list, tuple)):
                stack.extend(reversed(v))
            elif isinstance(v, dict):
                stack.extend(reversed(list(v.values())))
        return list(seen.values())

    # ----------------------------------------------------------------- modes and devices
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (``mode=True``) or eval mode on this module and every sub-module;
        returns the module."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"train: mode must be True or False, got {mode!r}")
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Eval mode (``train(False)``): BatchNorm uses its running statistics, Dropout passes its
        input through. Returns the module."""
        return self.train(False)

    def to(self, device: str) -> "Module":
        """Move every parameter's value (and every buffer, such as BatchNorm's running statistics)
        to ``device`` ("cpu" or "cuda") in place: the same Variable objects (earlier
        ``parameters()`` lists and optimizer state stay valid); returns the module."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"to: device must be 'cpu' or 'cuda', got {device!r}")
        for p in self.parameters():
            p._move(device)
        for m in self.modules():
            for name in m._buffer_names:
                v = getattr(m, name, None)
                if isinstance(v, np.ndarray) or is_device_array(v):
                    setattr(m, name, _array_to(v, device))
        return self

    # ----------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters and buffers as a plain dict of numpy arrays (copies), keyed by dotted
        names as PyTorch's (``"0.weight"``, ``"bn1.running_mean"``). ``np.savez(f, **sd)`` then
        ``load_state_dict(dict(np.load(f)))`` restores them."""
        out: dict[str, np.ndarray] = {}
        for key, kind, target in self._state_items(""):
            if kind == "param":
                out[key] = target.numpy()
            elif kind == "param_t":  # PyTorch's layout, so that its state dicts and numlin's agree
                out[key] = np.ascontiguousarray(target.numpy().T)
            else:
                v = getattr(*target)
                out[key] = v.copy_to_host() if is_device_array(v) else np.array(v)
        return out

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s values into this module's parameters and buffers, in place (the
        same Variable objects: optimizers stay valid; values cast to each one's dtype and copied to
        its device).

        Parameters
        ----------
        state_dict : mapping of str to array_like
            As :meth:`state_dict` returns (numpy arrays, Tensors or anything ``np.asarray`` takes).
        strict : bool
            Raise KeyError when a key is missing or unexpected (PyTorch's default); with False,
            load the keys both sides have and report the others.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``.

        Raises
        ------
        KeyError
            ``strict`` and keys missing or unexpected (all listed).
        ValueError
            A value whose shape differs from the module's (naming the key and both shapes).
        TypeError
            ``state_dict`` not a mapping, or a value that is not numeric.

        Nothing is copied unless every check passes.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"load_state_dict: strict must be True or False, got {strict!r}")
        expected: dict[str, tuple[str, Any]] = {}
        for key, kind, target in self._state_items(""):
            expected.setdefault(key, (kind, target))
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if strict and (missing or unexpected):
            parts = ([f"missing key(s) {missing}"] if missing else []) + \
                    ([f"unexpected key(s) {unexpected}"] if unexpected else [])
            raise KeyError(f"load_state_dict ({type(self).__name__}): " + "; ".join(parts))
        plan = []
        for key, (kind, target) in expected.items():
            if key not in state_dict:
                continue
            value = _host_value(key, state_dict[key])
            current = target if kind != "buffer" else getattr(*target)
            shape = tuple(current.shape) if hasattr(current, "shape") else ()
            if kind == "param_t":
                shape = shape[::-1]
            if value.shape != shape:
                raise ValueError(f"load_state_dict: {key!r} has shape {value.shape} in the state dict but "
                                 f"{shape} in the module")
            if kind == "buffer" and isinstance(current, (int, np.integer)):  # a count (num_batches_tracked)
                if value.dtype.kind not in "iub" and not (value.dtype.kind == "f" and float(value) == int(value)):
                    raise TypeError(f"load_state_dict: {key!r} must be an integer count, got {value!r}")
                if int(value) < 0:
                    raise ValueError(f"load_state_dict: {key!r} must be a count >= 0, got {int(value)}")
            plan.append((kind, target, current, value))
        for kind, target, current, value in plan:
            if kind == "param":
                target.assign(value)
            elif kind == "param_t":
                target.assign(np.ascontiguousarray(value.T))
            elif is_device_array(current):
                current.copy_to_device(np.ascontiguousarray(value, current.dtype))
            elif isinstance(current, np.ndarray):
                current[...] = value
            else:  # a scalar buffer (BatchNorm's num_batches_tracked)
                setattr(*target, type(current)(int(value)))
        return IncompatibleKeys(missing, unexpected)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _params_in(v: Any) -> Iterator[Variable]:
    """Variables held by an attribute: directly, in sub-modules, or in lists/tuples/dicts of them."""
    if isinstance(v, Variable):
        yield v
    elif isinstance(v, Module):
        yield from v._walk()
    elif isinstance(v, (list, tuple)):
        for item in v:
            yield from _params_in(item)
    elif isinstance(v, dict):
        for item in v.values():
            yield from _params_in(item)


def _state_in(v: Any, key: str) -> Iterator[tuple[str, str, Any]]:
    """:meth:`Module._state_items` of an attribute value named ``key``."""
    if isinstance(v, Variable):
        yield key, "param", v
    elif isinstance(v, Module):
        yield from v._state_items(key + ".")
    elif isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            yield from _state_in(item, f"{key}.{i}")
    elif isinstance(v, dict):
        for k, item in v.items():
            yield from _state_in(item, f"{key}.{k}")


def _host_value(key: str, value: Any) -> np.ndarray:
    """A state-dict value as a numeric numpy array."""
    if isinstance(value, Tensor):
        value = value.numpy()
    elif is_device_array(value) and hasattr(value, "copy_to_host"):
        value = value.copy_to_host()
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise TypeError(f"load_state_dict: {key!r} is not an array ({type(value).__name__}: {exc})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"load_state_dict: {key!r} has dtype {arr.dtype}, not a real number type")
    return arr


def _array_to(a: Any, device: str) -> Any:
    """Array ``a`` (numpy or device) on ``device``: itself if already there, else a copy."""
    on_device = is_device_array(a)
    if device == "cuda" and not on_device:
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(a))
    if device == "cpu" and on_device:
        return a.copy_to_host()
    return a
