"""Root pytest configuration: keep files that must not be imported out of doctest collection,
and run the suite with one native thread per process.

The suite is meant to pass beside other work (``stress-ng --cpu 2``, see the README's
Development section). An OpenMP team wider than the cores that are actually free stalls at
every barrier: training the ``hgb`` model took 158.6 s with two threads and 14.8 s with one on
two busy cores. So the tests' own process, the servers they start and every in-process worker
use one native thread (set here, before NumPy or scikit-learn load their runtimes). Thread
sizing itself is tested with explicit values (tests/test_threads.py, tests/service/test_workers.py).
"""

import os

for _name in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "DRIFTLINE_THREADS_PER_WORKER",
):
    os.environ.setdefault(_name, "1")

collect_ignore_glob = ["src/driftline/store/migrations/*", "benchmarks/*"]
