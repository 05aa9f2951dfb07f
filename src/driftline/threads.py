"""Native thread pools (OpenMP, BLAS) sized per worker process.

scikit-learn's histogram gradient boosting predicts with OpenMP and NumPy/SciPy call BLAS; each
pool starts one thread per core. With several worker processes on one machine, every worker
runs a full pool at once and the cores thrash (two ``hgb`` workers on two cores served a few
requests per second instead of ~800). So each worker gets ``cores ÷ workers`` native threads
(at least one), or ``DRIFTLINE_THREADS_PER_WORKER``:

* before workers are spawned, ``driftline serve`` exports ``OMP_NUM_THREADS`` and its kin
  (:func:`native_thread_env`), which the native runtimes read when they load, so every thread of
  a worker starts with the budget;
* each worker also applies it with threadpoolctl (:func:`limit_native_threads`) at start-up, on
  its model thread and in every background job, which also covers a worker started by another
  process manager. OpenMP's limit is per calling thread, hence the three places.

"Cores" are the CPUs this process may use (affinity and cgroup quota, as joblib counts them).
"""

from __future__ import annotations

from typing import Any

import joblib
from threadpoolctl import threadpool_info, threadpool_limits

from driftline.errors import ConfigurationError

__all__ = [
    "NATIVE_THREAD_VARIABLES",
    "available_cores",
    "limit_native_threads",
    "native_thread_env",
    "native_thread_pools",
    "threads_per_worker",
]

#: Environment variables that size the native pools when their runtime loads.
NATIVE_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cores() -> int:
    """CPUs this process may use: affinity mask and cgroup CPU quota included (joblib)."""
    return max(1, int(joblib.cpu_count()))


def threads_per_worker(
    workers: int, override: int | None = None, *, cores: int | None = None
) -> int:
    """Native threads each of ``workers`` processes gets: ``override`` if set, else
    ``cores // workers`` and at least 1.

    >>> [threads_per_worker(w, cores=c) for w, c in [(2, 2), (4, 2), (1, 8), (3, 8)]]
    [1, 1, 8, 2]
    >>> threads_per_worker(2, 3, cores=2)
    3
    """
    if override is not None:
        if override < 1:
            raise ConfigurationError(f"threads per worker must be at least 1, got {override}")
        return override
    if workers < 1:
        raise ConfigurationError(f"workers must be at least 1, got {workers}")
    return max(1, (cores if cores is not None else available_cores()) // workers)


def model_thread_budget(override: int | None = None) -> int:
    """OpenMP threads of the thread that calls the model on requests: ``override``, else 1.

    Micro-batches hold a few to a few hundred rows, too few for a team of threads to pay off,
    and the team shares the cores with the event loop, the writer and (on one machine) the
    clients: measured with ``benchmarks/serving.py`` on 2 cores, gradient boosting with a team of
    2 on one worker had a p99 of ~1.1 s at every concurrency, and 2.6-2.9k req/s with p99
    10-35 ms on one thread. Background jobs (training) keep the worker's whole budget.

    >>> model_thread_budget(), model_thread_budget(4)
    (1, 4)
    """
    if override is not None and override < 1:
        raise ConfigurationError(f"model threads must be at least 1, got {override}")
    return 1 if override is None else override


def native_thread_env(threads: int) -> dict[str, str]:
    """The environment that gives every native pool of a new process ``threads`` threads.

    >>> native_thread_env(1)["OMP_NUM_THREADS"]
    '1'
    """
    return {name: str(threads) for name in NATIVE_THREAD_VARIABLES}


def limit_native_threads(threads: int, *, openmp_only: bool = False) -> None:
    """Limit the loaded native pools to ``threads``: BLAS for the whole process (unless
    ``openmp_only``), OpenMP for the calling thread (and the threads it starts)."""
    threadpool_limits(limits=threads, user_api="openmp" if openmp_only else None)


def native_thread_pools() -> list[dict[str, Any]]:
    """What threadpoolctl sees from the calling thread: one entry per loaded native pool."""
    return [
        {
            "api": str(info.get("internal_api", "")),
            "library": str(info.get("prefix", "")),
            "num_threads": int(info.get("num_threads", 0)),
        }
        for info in threadpool_info()
    ]
