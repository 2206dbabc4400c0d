"""asv benchmarks for randomized SVD: numlin vs scikit-learn's randomized_svd (time, paired
ratio, accuracy err/σ_{k+1}, peak memory)."""
import numpy as np

import numlin as nl
from numlin._bench import paired


class RandomizedSVD:
    params = (["2000x2000", "20000x1000"], ["float32", "float64"])
    param_names = ["shape", "dtype"]
    timeout = 600

    def setup(self, shape, dtype):
        from sklearn.datasets import make_low_rank_matrix

        m, n = map(int, shape.split("x"))
        self.A64 = make_low_rank_matrix(m, n, effective_rank=50, tail_strength=0.3, random_state=0)
        self.A = self.A64.astype(dtype)
        self.k = 20
        nl.linalg.rsvd(self.A, self.k, random_state=0)  # compile outside the timings

    def time_numlin(self, shape, dtype):
        nl.linalg.rsvd(self.A, self.k, random_state=0)

    def time_sklearn(self, shape, dtype):
        from sklearn.utils.extmath import randomized_svd

        randomized_svd(self.A, self.k, random_state=0)

    def peakmem_numlin(self, shape, dtype):
        nl.linalg.rsvd(self.A, self.k, random_state=0)

    def track_ratio(self, shape, dtype):
        from sklearn.utils.extmath import randomized_svd

        return paired(lambda: nl.linalg.rsvd(self.A, self.k, random_state=0),
                      lambda: randomized_svd(self.A, self.k, random_state=0), rounds=3, reps=2, pause=0.1)[2]

    track_ratio.unit = "sklearn time / numlin time"

    def track_error_ratio(self, shape, dtype):
        """err/σ_{k+1} of numlin (spectral norm), with default settings."""
        U, S, Vt = nl.linalg.rsvd(self.A, self.k, random_state=0)
        s = np.linalg.svd(self.A64, compute_uv=False)
        return float(np.linalg.norm(self.A64 - (U * S) @ Vt, 2) / s[self.k])

    track_error_ratio.unit = "err / sigma_k+1"
