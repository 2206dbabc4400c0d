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


def _spectrum_matrix(m, n, spectrum, seed=0):
    """A = U diag(s) Vᵀ: "fast" σ_i = 0.7^i, "slow" σ_i = 0.9^i, "lowrank" scikit-learn's
    make_low_rank_matrix (effective rank 50, tail 0.3), "flat" a Gaussian matrix."""
    rng = np.random.default_rng(seed)
    if spectrum == "flat":
        return rng.standard_normal((m, n))
    if spectrum == "lowrank":
        from sklearn.datasets import make_low_rank_matrix

        return make_low_rank_matrix(m, n, effective_rank=50, tail_strength=0.3, random_state=seed)
    r = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, r)))
    V, _ = np.linalg.qr(rng.standard_normal((n, r)))
    return (U * ({"fast": 0.7, "slow": 0.9}[spectrum] ** np.arange(r))) @ V.T


class RandomizedSVDSpectra:
    """Default settings of both on fast, slow, scikit-learn low-rank and flat spectra (issue 16):
    speed ratio and the ratio of the largest relative singular-value errors (numlin / sklearn;
    below 1 means numlin is more accurate)."""

    params = (["fast", "slow", "lowrank", "flat"], ["float32", "float64"])
    param_names = ["spectrum", "dtype"]
    timeout = 600

    def setup(self, spectrum, dtype):
        self.A64 = _spectrum_matrix(2000, 1000, spectrum)
        self.A = self.A64.astype(dtype)
        self.k = 20
        self.s = np.linalg.svd(self.A64, compute_uv=False)[: self.k]
        nl.linalg.rsvd(self.A, self.k, random_state=0)

    def track_ratio(self, spectrum, dtype):
        from sklearn.utils.extmath import randomized_svd

        return paired(lambda: nl.linalg.rsvd(self.A, self.k, random_state=0),
                      lambda: randomized_svd(self.A, self.k, random_state=0), rounds=5, reps=1, pause=0.05)[2]

    track_ratio.unit = "sklearn time / numlin time"

    def track_sv_error_ratio(self, spectrum, dtype):
        from sklearn.utils.extmath import randomized_svd

        def err(S):
            return float(np.max(np.abs(S - self.s) / self.s))

        ours = [err(nl.linalg.rsvd(self.A, self.k, random_state=r)[1]) for r in range(3)]
        theirs = [err(randomized_svd(self.A, self.k, random_state=r)[1]) for r in range(3)]
        return float(np.median(ours) / max(np.median(theirs), 1e-300))

    track_sv_error_ratio.unit = "numlin sv error / sklearn sv error"


if __name__ == "__main__":  # python benchmarks/bench_rsvd.py: the spectra table, paired, in one process
    import threadpoolctl  # noqa: F401

    b = RandomizedSVDSpectra()
    for spectrum in b.params[0]:
        for dtype in b.params[1]:
            b.setup(spectrum, dtype)
            print(f"{spectrum:8s} {dtype}: speed sklearn/numlin {b.track_ratio(spectrum, dtype):5.2f}   "
                  f"sv error numlin/sklearn {b.track_sv_error_ratio(spectrum, dtype):.2e}", flush=True)
