"""asv benchmarks for rsvd and matmul on Dask arrays (threaded scheduler): numlin vs
``dask.array.linalg.svd_compressed`` at equal accuracy (its ``n_power_iter`` raised until its
err/σ_{k+1} is at most numlin's; paired ratio), and nl.matmul vs Dask's own matmul.

The larger comparison (100000 x 1000, a LocalCluster too) is benchmarks/dask_vs_svd_compressed.py;
the out-of-core run benchmarks/dask_out_of_core.py (see benchmarks/README.md, "Dask")."""
import numpy as np

import numlin as nl
from numlin._bench import paired


def _err(A64, U, S, Vt):
    E = A64 - (np.asarray(U, np.float64) * S) @ Vt
    return float(np.sqrt(np.linalg.eigvalsh(E.T @ E)[-1]))


class DaskRandomizedSVD:
    params = (["20000x1000"], ["float32", "float64"])
    param_names = ["shape", "dtype"]
    timeout = 900

    def setup(self, shape, dtype):
        import dask.array as da
        from sklearn.datasets import make_low_rank_matrix
        from threadpoolctl import threadpool_limits

        m, n = map(int, shape.split("x"))
        self.A64 = make_low_rank_matrix(m, n, effective_rank=50, tail_strength=0.3, random_state=0)
        self.s = np.sqrt(np.maximum(np.linalg.eigvalsh(self.A64.T @ self.A64)[::-1], 0))
        self.A = da.from_array(self.A64.astype(dtype), chunks=(m // 8, n)).persist()
        self.k = 20
        with threadpool_limits(1, "blas"):
            e_nl = _err(self.A64, *self._numlin())
            self.p = 16
            for p in range(4, 17):  # smallest n_power_iter at least as accurate as numlin
                if _err(self.A64, *self._dask(p)) <= e_nl:
                    self.p = p
                    break

    def _numlin(self):
        U, S, Vt = nl.linalg.rsvd(self.A, self.k, random_state=0)
        return U.compute(), S, Vt

    def _dask(self, p):
        import dask
        import dask.array as da

        return dask.compute(*da.linalg.svd_compressed(self.A, self.k, n_power_iter=p, seed=0))

    def time_numlin(self, shape, dtype):
        self._numlin()

    def time_svd_compressed(self, shape, dtype):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            self._dask(self.p)

    def track_ratio(self, shape, dtype):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            return paired(self._numlin, lambda: self._dask(self.p), rounds=3, reps=1, pause=0.1)[2]

    track_ratio.unit = "svd_compressed time / numlin time (equal accuracy)"

    def track_error_ratio(self, shape, dtype):
        """err/σ_{k+1} of numlin (defaults)."""
        return _err(self.A64, *self._numlin()) / self.s[self.k]

    track_error_ratio.unit = "err / sigma_k+1"

    def track_svd_compressed_power_iters(self, shape, dtype):
        """The n_power_iter svd_compressed needs for numlin's accuracy."""
        return self.p

    track_svd_compressed_power_iters.unit = "n_power_iter"


class DaskMatmul:
    params = (["float32", "float64"],)
    param_names = ["dtype"]
    timeout = 600

    def setup(self, dtype):
        import dask.array as da

        rng = np.random.default_rng(0)
        self.a = da.from_array(rng.standard_normal((8192, 2048)).astype(dtype), chunks=(1024, 1024)).persist()
        self.b = da.from_array(rng.standard_normal((2048, 1024)).astype(dtype), chunks=(1024, 512)).persist()
        nl.matmul(self.a, self.b).compute()

    def time_numlin(self, dtype):
        nl.matmul(self.a, self.b).compute()

    def time_dask(self, dtype):
        (self.a @ self.b).compute()

    def track_ratio(self, dtype):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            return paired(lambda: nl.matmul(self.a, self.b).compute(), lambda: (self.a @ self.b).compute(),
                          rounds=3, reps=2, pause=0.1)[2]

    track_ratio.unit = "dask (numpy per block) time / numlin time"
