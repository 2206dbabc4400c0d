"""nl.matmul / nl.gemm on device arrays: the CUDA kernels (simulator here, real sizes on a GPU)."""
from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import numlin as nl
from tests.conftest import HAS_GPU
from tests.reference import assert_matmul_close

DTYPES = [np.float32, np.float64]
# the simulator runs every GPU thread as a Python thread: keep its problems tiny
SMALL = [(5, 7, 3), (33, 20, 17), (70, 9, 10)]
REAL = [(1, 1, 1), (129, 257, 65), (1000, 1000, 1000), (4097, 130, 515)]
SHAPES = REAL if HAS_GPU else SMALL


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _host(x):
    return x.copy_to_host() if hasattr(x, "copy_to_host") else np.asarray(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_device_matmul_matches_reference(rng, dtype, m, n, k):
    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    c = nl.matmul(cuda.to_device(a), cuda.to_device(b))
    assert type(c).__module__.startswith("numba.cuda")  # stays on the device
    assert c.dtype == dtype and tuple(c.shape) == (m, n)
    assert_matmul_close(_host(c), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("la,lb", [("F", "C"), ("C", "F"), ("F", "F"), ("strided", "C")])
def test_device_matmul_layouts(rng, dtype, la, lb):
    m, n, k = (300, 200, 150) if HAS_GPU else (9, 6, 11)

    def lay(x, how):
        if how == "F":
            return cuda.to_device(np.asfortranarray(x))
        if how == "strided":
            big = cuda.to_device(np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype))
            view = big[:, ::2]
            big.copy_to_device(np.repeat(x, 2, axis=1))
            return view
        return cuda.to_device(x)

    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    assert_matmul_close(_host(nl.matmul(lay(a, la), lay(b, lb))), a, b)


@pytest.mark.parametrize("sa,sb", [((3, 5, 4), (4, 6)), ((2, 1, 4, 3), (5, 3, 2)), ((4,), (4, 3)), ((3, 4), (4,))])
def test_device_matmul_batched_and_vectors(rng, sa, sb):
    a, b = _rand(rng, sa, np.float64), _rand(rng, sb, np.float64)
    got = _host(nl.matmul(cuda.to_device(a), cuda.to_device(b)))
    assert got.shape == np.matmul(a, b).shape
    assert_matmul_close(got, a, b)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_device_gemm_alpha_beta_transposes(rng, ta, tb):
    m, n, k = (700, 500, 300) if HAS_GPU else (6, 5, 9)
    a = _rand(rng, (k, m) if ta else (m, k), np.float32)
    b = _rand(rng, (n, k) if tb else (k, n), np.float32)
    c0 = _rand(rng, (m, n), np.float32)
    dc = cuda.to_device(c0)
    out = nl.gemm(cuda.to_device(a), cuda.to_device(b), dc, alpha=0.5, beta=-2.0, trans_a=ta, trans_b=tb)
    assert out is dc
    assert_matmul_close(_host(dc), a.T if ta else a, b.T if tb else b, c0=c0, alpha=0.5, beta=-2.0)


def test_device_gemm_beta_zero_ignores_nan_and_k_zero_scales(rng):
    a, b = _rand(rng, (4, 3), np.float64), _rand(rng, (3, 5), np.float64)
    dc = cuda.to_device(np.full((4, 5), np.nan))
    nl.gemm(cuda.to_device(a), cuda.to_device(b), dc)
    assert_matmul_close(_host(dc), a, b)
    c0 = _rand(rng, (4, 5), np.float64)
    dc = cuda.to_device(c0)
    nl.gemm(cuda.to_device(np.ones((4, 0))), cuda.to_device(np.ones((0, 5))), dc, beta=2.0)
    np.testing.assert_allclose(_host(dc), 2 * c0)


def test_device_matmul_more_row_tiles_than_the_grid_takes(rng):
    """Past CUDA's 65 535 row tiles per grid the product runs as launches over row ranges
    (forced here with a limit of 1 tile: 2 launches for 150 rows of 128-row tiles), batched and
    with beta."""
    from numlin._config import override

    with override(cuda_gemm_max_grid_y=1):
        a, b = _rand(rng, (2, 150, 7), np.float64), _rand(rng, (7, 5), np.float64)
        assert_matmul_close(_host(nl.matmul(cuda.to_device(a), cuda.to_device(b))), a, b)
        c0 = _rand(rng, (150, 5), np.float64)
        dc = cuda.to_device(c0)
        nl.gemm(cuda.to_device(a[0]), cuda.to_device(b), dc, alpha=2.0, beta=0.5)
        np.testing.assert_allclose(_host(dc), 2.0 * a[0] @ b + 0.5 * c0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_device_matmul_sum_into_split_k(rng, beta):
    """sum_t A[t] @ B[t] with the reduction axis cut into pieces (split-K, chosen when the grid
    would leave SMs idle): 2 x 3 products of 3 x 192 @ 192 x 5 (k = 192 -> 3 pieces of 64), a
    transposed B, accumulation with beta = 1."""
    from numlin._strided import Strided
    from numlin.kernels.cuda import gemm as cg

    assert cg._split_k(1, 192, 16) == 3 and cg._split_k(10_000, 192, 16) == 1 and cg._split_k(1, 61, 16) == 1
    a = _rand(rng, (2, 3, 3, 192), np.float64)
    bt = _rand(rng, (2, 3, 5, 192), np.float64)  # B = btᵀ: unit stride along k
    c0 = _rand(rng, (3, 3, 5), np.float64)
    da, db, dc = (cuda.to_device(v.ravel()) for v in (a, bt, c0))  # descriptors take flat buffers
    A = Strided(da, 0, a.shape, tuple(st // 8 for st in a.strides))
    B = Strided(db, 0, (2, 3, 192, 5), (3 * 5 * 192, 5 * 192, 1, 192))
    cg.matmul_sum_into(A, B, Strided(dc, 0, c0.shape, tuple(st // 8 for st in c0.strides)), beta)
    want = np.einsum("tgmk,tgnk->gmn", a, bt) + beta * c0
    np.testing.assert_allclose(dc.copy_to_host().reshape(c0.shape), want, rtol=1e-12, atol=1e-12)


def test_device_mixed_dtypes_promote(rng):
    a, b = _rand(rng, (5, 4), np.float32), _rand(rng, (4, 3), np.float64)
    c = nl.matmul(cuda.to_device(a), cuda.to_device(b))
    assert c.dtype == np.float64
    assert_matmul_close(_host(c), a.astype(np.float64), b)


def test_mixing_host_and_device_is_an_error():
    with pytest.raises(TypeError, match="GPU.*host"):
        nl.matmul(cuda.to_device(np.ones((2, 2))), np.ones((2, 2)))
    with pytest.raises(TypeError, match="GPU.*host"):
        nl.gemm(np.ones((2, 2)), np.ones((2, 2)), cuda.to_device(np.ones((2, 2))))


def test_device_out_checks():
    a = cuda.to_device(np.ones((3, 3)))
    with pytest.raises(ValueError, match="overlaps input a"):
        nl.matmul(a, cuda.to_device(np.eye(3)), out=a)
    with pytest.raises(ValueError, match="shape"):
        nl.matmul(a, a, out=cuda.device_array((2, 3)))
    with pytest.raises(TypeError, match="dtype"):
        nl.matmul(a, a, out=cuda.device_array((3, 3), np.float32))
    with pytest.raises(TypeError, match="int64"):
        nl.matmul(cuda.to_device(np.ones((2, 2), np.int64)), cuda.to_device(np.ones((2, 2), np.int64)))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_cuda_array_interface_inputs(rng, dtype):
    cupy = pytest.importorskip("cupy")
    a, b = _rand(rng, (513, 300), dtype), _rand(rng, (300, 257), dtype)
    c = nl.matmul(cupy.asarray(a), cupy.asarray(b))
    assert_matmul_close(c.copy_to_host(), a, b)
    torch = pytest.importorskip("torch")
    ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
    assert_matmul_close(nl.matmul(ta, tb.T.contiguous().T).copy_to_host(), a, b)


@pytest.mark.gpu
def test_gpu_many_small_matrices(rng):
    a, b = _rand(rng, (10_000, 8, 8), np.float32), _rand(rng, (10_000, 8, 8), np.float32)
    got = nl.matmul(cuda.to_device(a), cuda.to_device(b)).copy_to_host()
    assert_matmul_close(got, a, b, ref=np.matmul(a.astype(np.float64), b.astype(np.float64)))
