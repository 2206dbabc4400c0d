"""nl.matmul and nl.gemm on the CPU against float64 references (tests/reference.py)."""
from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numlin as nl
from numlin._config import override
from numlin.kernels.cpu.blocking import blocking
from tests.reference import assert_matmul_close, matmul_ref

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True, params=["direct", "packed"])
def gemm_path(request):
    """Every test twice: as shipped (products up to ``config.gemm_direct_mnk`` FMAs read B and C
    in place when their columns are unit-stride; a vector operand runs ``gemv``), and with packing
    forced for every size and shape, so that the packed path's block edges stay covered at test sizes."""
    if request.param == "packed":
        with override(gemm_direct_mnk={4: 0, 8: 0}, gemm_gemv=False):
            yield request.param
    else:
        yield request.param


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- shapes
SHAPES = [
    (1, 1, 1), (1, 7, 5), (7, 1, 5), (5, 7, 1), (3, 5, 2), (16, 16, 16), (17, 33, 9),
    (6, 32, 256), (7, 33, 257), (64, 64, 64), (100, 37, 300), (191, 193, 129),
    (300, 257, 513), (1, 1000, 600), (1000, 1, 600), (520, 530, 70),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matmul_2d_shapes(rng, dtype, m, n, k):
    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    c = nl.matmul(a, b)
    assert c.dtype == dtype and c.shape == (m, n)
    assert_matmul_close(c, a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_straddles_every_block_edge(rng, dtype):
    bl = blocking(dtype)
    m = bl.mc + bl.mr + 1
    n = 2 * bl.nr + 3
    k = bl.kc + 5
    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    assert_matmul_close(nl.matmul(a, b), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(0, 4, 3), (4, 0, 3), (0, 0, 0), (3, 4, 0), (0, 3, 0), (300, 400, 0)])
def test_matmul_zero_size(rng, dtype, m, n, k):
    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    c = nl.matmul(a, b)
    assert c.shape == (m, n) and c.dtype == dtype
    np.testing.assert_array_equal(c, np.zeros((m, n), dtype))


# --------------------------------------------------------------------------- layouts
def _layouts(x):
    """The same matrix in several memory layouts (all views or fresh copies, same values)."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    rev = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    return {
        "C": np.ascontiguousarray(x),
        "F": np.asfortranarray(x),
        "transposed": np.ascontiguousarray(x.T).T,
        "strided": big[::2, ::3],
        "negative": rev,
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("la", ["C", "F", "transposed", "strided", "negative"])
@pytest.mark.parametrize("lb", ["C", "F", "strided", "negative"])
def test_matmul_any_layout(rng, dtype, la, lb):
    a0, b0 = _rand(rng, (67, 45), dtype), _rand(rng, (45, 71), dtype)
    a, b = _layouts(a0)[la], _layouts(b0)[lb]
    np.testing.assert_array_equal(a, a0)
    assert_matmul_close(nl.matmul(a, b), a0, b0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k", [(1, 1), (1, 900), (7, 300), (300, 7), (130, 1000), (1000, 130), (700, 1400)])
def test_matrix_vector_products_any_layout(rng, dtype, m, k):
    """A vector on either side (``gemv``: four-row dot products over contiguous rows, axpy sweeps
    over contiguous columns, strided dots otherwise; 700 x 1400 runs in parallel) for every
    layout of the matrix, with strided vectors; a column-vector ``b`` and ``c`` through nl.gemm
    with alpha and beta, and a NaN-filled ``c`` at beta = 0 (never read)."""
    a0 = _rand(rng, (m, k), dtype)
    xs = _rand(rng, (2 * k,), dtype)[::2]  # stride 2
    us = _rand(rng, (3 * m,), dtype)[::-3]  # negative stride
    for (name, a), x, u in itertools.product(_layouts(a0).items(), (xs, xs.copy()), (us, us.copy())):
        assert_matmul_close(nl.matmul(a, x), a0, x)
        assert_matmul_close(nl.matmul(u, a), u, a0)
        col = x[:, None]
        c0 = _rand(rng, (m, 1), dtype)
        c = c0.copy()
        nl.gemm(a, col, c, alpha=-1.5, beta=0.5)
        assert_matmul_close(c, a0, col, c0=c0, alpha=-1.5, beta=0.5)
        c = np.full((m, 1), np.nan, dtype)
        nl.gemm(a, col, c, alpha=2.0, beta=0.0)
        assert_matmul_close(c, a0, col, alpha=2.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_large_any_layout_parallel_path(rng, dtype):
    a0, b0 = _rand(rng, (300, 260), dtype), _rand(rng, (260, 290), dtype)
    for la, a in _layouts(a0).items():
        b = _layouts(b0)["F" if la == "C" else "C"]
        assert_matmul_close(nl.matmul(a, b), a0, b0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_broadcast_zero_stride_operand(rng, dtype):
    row = _rand(rng, (1, 40), dtype)
    a = np.broadcast_to(row, (30, 40))  # zero row stride
    b = _rand(rng, (40, 20), dtype)
    assert_matmul_close(nl.matmul(a, b), np.array(a), b)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_matmul_out_any_layout(rng, layout):
    a, b = _rand(rng, (50, 30), np.float64), _rand(rng, (30, 40), np.float64)
    out = {"C": np.empty((50, 40)), "F": np.empty((50, 40), order="F"),
           "strided": np.empty((100, 120))[::2, ::3]}[layout]
    res = nl.matmul(a, b, out=out)
    assert res is out
    assert_matmul_close(out, a, b)


# --------------------------------------------------------------------------- 1-D and batched
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb", [
    ((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((2, 3, 5), (5,)), ((5,), (2, 5, 3)),
    ((4, 3, 5), (4, 5, 2)), ((1, 3, 5), (4, 5, 2)), ((4, 3, 5), (5, 2)), ((3, 5), (2, 4, 5, 6)),
    ((2, 1, 3, 5), (1, 4, 5, 2)), ((0, 3, 5), (5, 2)), ((2, 0, 5), (2, 5, 3)),
])
def test_matmul_batched_and_vectors_match_numpy(rng, dtype, sa, sb):
    a, b = _rand(rng, sa, dtype), _rand(rng, sb, dtype)
    got = nl.matmul(a, b)
    want = np.matmul(a, b)
    assert np.shape(got) == want.shape
    assert np.asarray(got).dtype == want.dtype
    if want.size:
        assert_matmul_close(got, a, b)


def test_matmul_two_vectors_give_a_scalar(rng):
    a, b = _rand(rng, (7,), np.float64), _rand(rng, (7,), np.float64)
    got = nl.matmul(a, b)
    assert np.ndim(got) == 0
    assert got == pytest.approx(float(a @ b), rel=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,m,n,k", [(10_000, 8, 8, 8), (257, 3, 5, 7), (64, 40, 40, 40), (3, 200, 150, 120)])
def test_matmul_many_matrices(rng, dtype, batch, m, n, k):
    a, b = _rand(rng, (batch, m, k), dtype), _rand(rng, (batch, k, n), dtype)
    assert_matmul_close(nl.matmul(a, b), a, b, ref=np.matmul(a.astype(np.float64), b.astype(np.float64)))


def test_matmul_batched_transposed_views(rng):
    a = _rand(rng, (6, 20, 30), np.float32).transpose(0, 2, 1)  # (6, 30, 20), m contiguous
    b = _rand(rng, (20, 6, 25), np.float32).transpose(1, 0, 2)  # batch axis not outermost in memory
    assert_matmul_close(nl.matmul(a, b), a, b)


def test_matmul_batched_out(rng):
    a, b = _rand(rng, (3, 4, 5), np.float64), _rand(rng, (5, 6), np.float64)
    out = np.full((3, 4, 6), np.nan)
    assert nl.matmul(a, b, out=out) is out
    assert_matmul_close(out, a, b)


# --------------------------------------------------------------------------- dtypes, NaN, Inf
def test_matmul_mixed_precision_promotes_like_numpy(rng):
    a, b = _rand(rng, (20, 30), np.float32), _rand(rng, (30, 10), np.float64)
    c = nl.matmul(a, b)
    assert c.dtype == np.float64
    assert_matmul_close(c, a.astype(np.float64), b)


def test_matmul_accepts_array_likes():
    got = nl.matmul([[1.0, 2.0], [3.0, 4.0]], np.eye(2))
    np.testing.assert_array_equal(got, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [5, 70])
def test_matmul_nan_inf_follow_numpy(rng, dtype, size):
    a, b = _rand(rng, (size, size), dtype), _rand(rng, (size, size), dtype)
    a[1, 2] = np.nan
    a[3, :] = np.inf
    b[:, 4] = 0.0  # inf * 0 -> nan in column 4 of row 3
    b[0, 0] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    got = nl.matmul(a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))


# --------------------------------------------------------------------------- gemm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("m,n,k", [(4, 3, 5), (70, 90, 260), (260, 250, 30)])
def test_gemm_alpha_beta_transposes(rng, dtype, ta, tb, m, n, k):
    a = _rand(rng, (k, m) if ta else (m, k), dtype)
    b = _rand(rng, (n, k) if tb else (k, n), dtype)
    c0 = _rand(rng, (m, n), dtype)
    c = c0.copy()
    out = nl.gemm(a, b, c, alpha=-1.5, beta=0.75, trans_a=ta, trans_b=tb)
    assert out is c
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    assert_matmul_close(c, opa, opb, c0=c0, alpha=-1.5, beta=0.75)


@pytest.mark.parametrize("m,n,k", [(5, 6, 7), (130, 140, 150)])
def test_gemm_beta_zero_does_not_read_c(rng, m, n, k):
    a, b = _rand(rng, (m, k), np.float64), _rand(rng, (k, n), np.float64)
    c = np.full((m, n), np.nan)
    nl.gemm(a, b, c, alpha=2.0, beta=0.0)
    assert_matmul_close(c, a, b, alpha=2.0)


@pytest.mark.parametrize("m,n,k", [(5, 6, 0), (200, 300, 0)])
def test_gemm_k_zero_scales_c(rng, m, n, k):
    a, b = np.empty((m, k)), np.empty((k, n))
    c0 = _rand(rng, (m, n), np.float64)
    c = c0.copy()
    nl.gemm(a, b, c, beta=3.0)
    np.testing.assert_allclose(c, 3.0 * c0, rtol=1e-15)
    c[:] = np.nan
    nl.gemm(a, b, c, beta=0.0)
    np.testing.assert_array_equal(c, 0.0)


def test_gemm_alpha_zero_scales_c_only(rng):
    a, b = _rand(rng, (30, 40), np.float32), _rand(rng, (40, 20), np.float32)
    c0 = _rand(rng, (30, 20), np.float32)
    c = c0.copy()
    nl.gemm(a, b, c, alpha=0.0, beta=2.0)
    np.testing.assert_allclose(c, 2 * c0, rtol=1e-6)


@pytest.mark.parametrize("a_shape, b_shape, trans_a", [
    ((30, 40), (40, 20), False),       # the direct (unpacked) path
    ((300, 200), (200, 260), False),   # packed, blocks per thread
    ((500, 400), (400, 1), False),     # matrix x vector
    ((200, 300), (200, 260), True),    # a transposed operand
])
def test_gemm_alpha_zero_reads_neither_operand(rng, a_shape, b_shape, trans_a):
    """BLAS: with ``alpha == 0``, C = beta * C and A, B are not read, so their NaN and Inf stay out
    of C on every path (the direct and matrix-vector paths used to compute ``0 * NaN``)."""
    a, b = np.full(a_shape, np.nan), np.full(b_shape, np.inf)
    c0 = _rand(rng, (a_shape[1] if trans_a else a_shape[0], b_shape[1]), np.float64)
    c = c0.copy()
    nl.gemm(a, b, c, alpha=0.0, beta=2.0, trans_a=trans_a)
    np.testing.assert_array_equal(c, 2 * c0)


@pytest.mark.parametrize("order", ["F", "strided"])
def test_gemm_c_any_layout(rng, order):
    a, b = _rand(rng, (70, 300), np.float64), _rand(rng, (300, 65), np.float64)
    c0 = _rand(rng, (70, 65), np.float64)
    c = np.asfortranarray(c0) if order == "F" else np.zeros((140, 130))[::2, ::2]
    c[...] = c0
    nl.gemm(a, b, c, alpha=0.5, beta=-2.0)
    assert_matmul_close(c, a, b, c0=c0, alpha=0.5, beta=-2.0)


def test_gemm_without_c_allocates(rng):
    a, b = _rand(rng, (8, 9), np.float32), _rand(rng, (9, 10), np.float32)
    c = nl.gemm(a, b, alpha=3.0)
    assert c.dtype == np.float32
    assert_matmul_close(c, a, b, alpha=3.0)


# --------------------------------------------------------------------------- errors
def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        nl.matmul(np.ones((3, 4)), np.ones((5, 2)))


def test_matmul_batch_mismatch():
    with pytest.raises(ValueError, match="broadcast"):
        nl.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2)))


@pytest.mark.parametrize("a,b", [(np.float64(2.0), np.ones(3)), (np.ones(3), np.array(1.0))])
def test_matmul_rejects_0d(a, b):
    with pytest.raises(ValueError, match="0-d"):
        nl.matmul(a, b)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.complex128, np.float16])
def test_matmul_rejects_other_dtypes(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nl.matmul(np.ones((2, 2), dtype), np.ones((2, 2)))


def test_matmul_rejects_objects():
    with pytest.raises(TypeError):
        nl.matmul([["a", "b"]], np.ones((2, 2)))
    with pytest.raises(TypeError):
        nl.matmul(None, np.ones((2, 2)))


def test_matmul_out_errors():
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*expected \(3, 5\)"):
        nl.matmul(a, b, out=np.empty((3, 4)))
    with pytest.raises(TypeError, match="float32"):
        nl.matmul(a, b, out=np.empty((3, 5), np.float32))
    ro = np.empty((3, 5))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        nl.matmul(a, b, out=ro)
    with pytest.raises(TypeError, match="ndarray"):
        nl.matmul(a, b, out=[[0.0] * 5] * 3)


def test_matmul_out_overlapping_input_is_an_error():
    x = np.ones((4, 4))
    with pytest.raises(ValueError, match="overlaps input a"):
        nl.matmul(x, np.eye(4), out=x)
    buf = np.ones((8, 4))
    with pytest.raises(ValueError, match="overlaps input b"):
        nl.matmul(np.eye(4), buf[:4], out=buf[2:6])
    # disjoint halves of one buffer are fine
    nl.matmul(np.eye(4), buf[:4], out=buf[4:])


def test_gemm_errors():
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError, match="2-D"):
        nl.gemm(np.ones(4), b)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 4\)"):
        nl.gemm(a, b, trans_b=True)
    with pytest.raises(ValueError, match="beta"):
        nl.gemm(a, b, beta=1.0)
    with pytest.raises(ValueError, match="shape"):
        nl.gemm(a, b, np.zeros((5, 3)))
    with pytest.raises(TypeError, match="alpha"):
        nl.gemm(a, b, alpha=1j)
    with pytest.raises(TypeError, match="beta"):
        nl.gemm(a, b, beta="0")
    with pytest.raises(TypeError, match="trans_a"):
        nl.gemm(a, b, trans_a="T")
    with pytest.raises(TypeError, match="dtype"):
        nl.gemm(a, b, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="overlaps"):
        nl.gemm(a, np.ones((4, 3)), a[:, :3])


# --------------------------------------------------------------------------- property test
@st.composite
def _operands(draw):
    m, n, k = (draw(st.integers(0, 40)) for _ in range(3))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mats = []
    for shape in ((m, k), (k, n)):
        x = rng.standard_normal(shape).astype(dtype)
        view = draw(st.sampled_from(["C", "F", "T", "step", "rev"]))
        if view == "F":
            x = np.asfortranarray(x)
        elif view == "T":
            x = np.ascontiguousarray(x.T).T
        elif view == "step":
            big = np.zeros((shape[0] * 2 + 1, shape[1] * 2 + 1), dtype)
            big[1::2, 1::2] = x
            x = big[1::2, 1::2]
        elif view == "rev":
            x = np.ascontiguousarray(x[::-1])[::-1]
        mats.append(x)
    return mats


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_operands())
def test_matmul_property_any_shape_and_layout(ops):
    a, b = ops
    got = nl.matmul(a, b)
    ref = matmul_ref(a, b)
    assert got.shape == ref.shape
    if ref.size:
        assert_matmul_close(got, a, b, ref=ref)


# --------------------------------------------------------------------------- threads
def test_concurrent_python_threads_get_correct_results(rng):
    import numba

    jobs = []
    for i in range(8):
        n = 150 + 37 * i
        jobs.append((_rand(rng, (n, n + 3), np.float32), _rand(rng, (n + 3, n - 5), np.float32)))
    results, errors = [None] * len(jobs), []

    def work(i):
        try:
            for _ in range(3):
                results[i] = nl.matmul(*jobs[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (a, b), got in zip(jobs, results):
        assert_matmul_close(got, a, b)
    assert numba.threading_layer() in ("tbb", "omp", "workqueue")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_sharing_one_b(rng, dtype, threads):
    """A batch against one B (a filter against per-sample columns) packs B once per thread;
    k spans several KC panels, the batch does not split evenly, B is read transposed, and the
    swap to Cᵀ = Bᵀ Aᵀ (n = 16 against wide register tiles) is exercised too."""
    import numba

    k = 2 * blocking(dtype).kc + 7
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for ash, b in (((7, 40, k), rng.standard_normal((50, k)).T), ((9, 1, 33, k), rng.standard_normal((k, 16)))):
            a = rng.standard_normal(ash).astype(dtype)
            b = np.asarray(b, dtype)
            assert_matmul_close(nl.matmul(a, b), a, b)
            out = np.full(np.broadcast_shapes(a.shape[:-1] + (1,), (1, b.shape[1])), np.nan, dtype)
            nl.matmul(a, b, out=out)  # beta = 0: the NaNs in out are never read
            assert_matmul_close(out, a, b)
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mnk", [(64, 288, 16), (16, 64, 300), (5, 7, 3)])
def test_matmul_sum_into_reduces_over_the_batch(rng, dtype, threads, mnk):
    """``C = beta C + sum_t A_t B_t`` per group (the conv filter gradient), with the threads'
    partial sums, the Cᵀ = Σ Bᵀ Aᵀ swap (n = 16) and beta = 0 / 1."""
    import numba

    from numlin.kernels.cpu import gemm as cg

    m, n, k = mnk
    nb, G = 9, 2
    a = rng.standard_normal((nb, G, m, k)).astype(dtype)
    b = rng.standard_normal((nb, G, n, k)).astype(dtype).swapaxes(-1, -2)  # read transposed
    ref = np.einsum("tgmk,tgkn->gmn", a.astype(np.float64), b.astype(np.float64))
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for beta in (0.0, 1.0):
            c0 = rng.standard_normal((G, m, n)).astype(dtype)
            c = np.where(beta == 0, np.nan, c0).astype(dtype)
            cg.matmul_sum_into(cg.strided(a, writable=False), cg.strided(b, writable=False),
                               cg.strided(c, writable=True), beta)
            want = ref + (c0 if beta else 0)
            tol = 8 * nb * k * np.finfo(dtype).eps * (np.abs(a).max() * np.abs(b).max() + 1)
            np.testing.assert_allclose(c, want, rtol=0, atol=tol)
    finally:
        numba.set_num_threads(old)


# --------------------------------------------------------------------------- issue 16: outputs numpy writes
def _odd_strided(shape, fill=0.0):
    """A float64 view with byte strides that are not multiples of 8: field 'a' of a packed
    structured array (12-byte records)."""
    n = int(np.prod(shape))
    rec = np.zeros(n, dtype=[("a", "f8"), ("b", "f4")])
    view = rec["a"].reshape(shape)
    view[...] = fill
    assert any(s % 8 for s in view.strides)
    return view


@pytest.mark.parametrize("shape_a,shape_b", [((4, 3), (3, 5)), ((2, 4, 3), (3, 5)), ((3,), (3, 5)), ((4, 3), (3,))])
def test_matmul_out_with_odd_byte_strides_is_written(shape_a, shape_b, rng):
    """numpy writes the product into such an out; numlin used to write a copy and return out untouched."""
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    want = a @ b
    out = _odd_strided(want.shape, np.nan)
    got = nl.matmul(a, b, out=out)
    assert got is out
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_gemm_c_with_odd_byte_strides_is_written(beta, rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    c = _odd_strided((4, 5), 1.5)
    got = nl.gemm(a, b, c, alpha=0.5, beta=beta, trans_b=True)
    assert got is c
    np.testing.assert_allclose(c, 0.5 * a @ b.T + beta * 1.5, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_np_matrix_operands_and_out(rng):
    """np.matrix operands are read as the ndarrays they wrap (results are ndarrays); an np.matrix
    out= receives the product and is returned, as numpy does."""
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    got = nl.matmul(np.matrix(a), np.matrix(b))
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, a @ b, rtol=1e-12)
    got = nl.gemm(np.matrix(a), np.matrix(b.T), trans_b=True)
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, a @ b, rtol=1e-12)
    out = np.matrix(np.zeros((4, 5)))
    assert nl.matmul(a, b, out=out) is out
    np.testing.assert_allclose(np.asarray(out), a @ b, rtol=1e-12)
    c = np.matrix(np.ones((4, 5)))
    assert nl.gemm(a, b, c, beta=1.0) is c
    np.testing.assert_allclose(np.asarray(c), a @ b + 1, rtol=1e-12)


# --------------------------------------------------------------------------- issue 16: bad-input sweep
_A = np.ones((3, 4))
_B = np.ones((4, 2))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nl.matmul(None, _B), TypeError, "a is None"),
    (lambda: nl.matmul(_A, None), TypeError, "b is None"),
    (lambda: nl.matmul("abc", _B), TypeError, "a"),
    (lambda: nl.matmul(_A, [[object()]]), TypeError, "b"),
    (lambda: nl.matmul(_A.astype(np.int64), _B), TypeError, "int64"),
    (lambda: nl.matmul(_A, _B.astype(bool)), TypeError, "bool"),
    (lambda: nl.matmul(_A, _B.astype(np.complex128)), TypeError, "complex128"),
    (lambda: nl.matmul(_A, _B.astype(np.float16)), TypeError, "float16"),
    (lambda: nl.matmul(np.float64(1.0), _B), ValueError, "0-d"),
    (lambda: nl.matmul(_A, _A), ValueError, "core dimension"),
    (lambda: nl.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2))), ValueError, "batch dimensions"),
    (lambda: nl.matmul(_A, _B, out=np.zeros((3, 3))), ValueError, "out has shape"),
    (lambda: nl.matmul(_A, _B, out=np.zeros((3, 2), np.float32)), TypeError, "out has dtype"),
    (lambda: nl.matmul(_A, _B, out=[[0.0] * 2] * 3), TypeError, "out must be a numpy.ndarray"),
    (lambda: nl.gemm(np.ones(3), _B), ValueError, "a must be 2-D"),
    (lambda: nl.gemm(_A, _B, alpha="2"), TypeError, "alpha"),
    (lambda: nl.gemm(_A, _B, beta=True), TypeError, "beta"),
    (lambda: nl.gemm(_A, _B, alpha=1j), TypeError, "alpha"),
    (lambda: nl.gemm(_A, _B, beta=1.0), ValueError, "beta"),
    (lambda: nl.gemm(_A, _B, trans_a=1), TypeError, "trans_a"),
    (lambda: nl.gemm(_A, _B, trans_b="yes"), TypeError, "trans_b"),
    (lambda: nl.gemm(_A, _B, trans_a=True), ValueError, "inner dimensions"),
    (lambda: nl.gemm(_A, _B, np.zeros((2, 3))), ValueError, "c has shape"),
    (lambda: nl.gemm(_A, _B, c=np.zeros((3, 2), np.float32)), TypeError, "c has dtype"),
    (lambda: nl.gemm(_A, _B, c=np.zeros((3, 2)).tolist()), TypeError, "c must be a numpy.ndarray"),
])
def test_bad_input_sweep(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_read_only_and_overlapping_outputs_are_refused():
    out = np.zeros((3, 2))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        nl.matmul(_A, _B, out=out)
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="overlaps input a"):
        nl.matmul(a, np.ones((3, 3)), out=a)
    with pytest.raises(ValueError, match="c overlaps input b"):
        nl.gemm(np.ones((3, 3)), a, a, beta=1.0)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.integers(-2, 3), min_size=1, max_size=3), st.lists(st.integers(-2, 3), min_size=1, max_size=3),
       st.sampled_from([np.float32, np.float64, np.int32, np.bool_]))
def test_matmul_random_shapes_never_crash(sa, sb, dtype):
    """Any shapes (negative sizes are refused by numpy itself), any dtype: numpy's answer or a
    TypeError/ValueError, never a crash."""
    try:
        a, b = np.ones(sa, dtype), np.ones(sb, dtype)
    except ValueError:
        return
    try:
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    except ValueError:
        with pytest.raises((ValueError, TypeError)):
            nl.matmul(a, b)
        return
    if np.dtype(dtype) not in (np.float32, np.float64):
        with pytest.raises(TypeError, match=np.dtype(dtype).name):
            nl.matmul(a, b)
        return
    np.testing.assert_allclose(nl.matmul(a, b), want)
