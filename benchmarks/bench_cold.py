"""asv tracks of the first call: each of benchmarks/cold_start.py's five workloads in a fresh
process, with an empty Numba cache ("cold") and with the cache it left ("cached"), seconds."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from cold_start import WORKLOADS, run_one  # noqa: E402


class FirstCall:
    params = (sorted(WORKLOADS), ["cold", "cached"])
    param_names = ["workload", "cache"]
    timeout = 600
    unit = "seconds"
    number = 1
    repeat = 1

    def track_first_call(self, workload, cache):
        with tempfile.TemporaryDirectory() as d:
            seconds = run_one(WORKLOADS[workload], d)
            if cache == "cached":
                seconds = run_one(WORKLOADS[workload], d)
        return seconds

    track_first_call.unit = "seconds"
