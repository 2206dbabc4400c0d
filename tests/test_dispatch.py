"""Host/device dispatch rules (no GPU needed: device operands are stand-ins exposing the CUDA
array interface and a device, as CuPy arrays and PyTorch CUDA tensors do)."""
from __future__ import annotations

import numpy as np
import pytest

import numlin as nl
from numlin._dispatch import backend, backend_named, device_id, device_of


class _FakeDevice:
    def __init__(self, i):
        self.id = i


class _FakeCupy:
    def __init__(self, i, shape=(2, 2)):
        self.device = _FakeDevice(i)
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f8", "data": (0, False), "version": 3}


def test_host_operands_run_on_the_cpu():
    assert device_of("t", a=np.ones(2), b=[1.0], c=None) == "cpu"
    assert backend("t", a=np.ones(2)) is backend_named("cpu")
    assert backend_named("cpu").gemm.__name__ == "numlin.kernels.cpu.gemm"


def test_device_operands_on_one_gpu_run_on_cuda():
    assert device_of("t", a=_FakeCupy(0), b=_FakeCupy(0)) == "cuda"
    assert backend("t", a=_FakeCupy(0)).name == "cuda"
    assert device_id(_FakeCupy(3)) == 3


def test_operands_on_different_gpus_are_an_error():
    with pytest.raises(ValueError, match="different GPUs.*a on cuda:0.*b on cuda:1"):
        device_of("matmul", a=_FakeCupy(0), b=_FakeCupy(1))
    with pytest.raises(ValueError, match="different GPUs"):
        nl.matmul(_FakeCupy(0), _FakeCupy(1))


def test_host_and_device_mixed_is_a_type_error():
    with pytest.raises(TypeError, match="a are on the GPU but b on the host"):
        device_of("matmul", a=_FakeCupy(0), b=np.ones((2, 2)))


def test_backend_names_its_missing_kernel_modules_and_devices():
    with pytest.raises(AttributeError, match="cpu backend has no kernel module 'nonesuch'"):
        backend_named("cpu").nonesuch
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend_named("tpu")
