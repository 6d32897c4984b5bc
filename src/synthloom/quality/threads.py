"""A thread limit for the numeric libraries (OpenMP, BLAS) under a global step.

scikit-learn's k-means and numpy's matmul start one OpenMP/BLAS thread per core, and those
threads busy-wait between tasks. Beside a run's other work (the process pool, LLM I/O, other
helpers on a shared machine) they spin instead of computing: ``cluster_topics`` on 800 rows took
235 s at load 50 on 2 cores, 3.6 s with one thread. The limit is set with ``threadpoolctl``
in the worker thread that does the numeric work, for the duration of that work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: What a step's ``threads: null`` means (the docs name it).
DEFAULT_SHARE = 0.5


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The step's CPU share: half the usable CPUs (at least 1). The other half is left to
    the rest of the run (its process pool and event loop) and the machine's other users."""
    return max(1, int(usable_cpus() * DEFAULT_SHARE))


def resolve_threads(threads: int | None) -> int:
    return default_threads() if threads is None else max(1, threads)


@contextlib.contextmanager
def limited(threads: int | None) -> Iterator[int]:
    """Hold OpenMP and BLAS pools to ``threads`` (None: ``default_threads()``) inside the
    block; yields the limit (also what to pass to usearch)."""
    n = resolve_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it; without both nothing numeric spins
        yield n
        return
    with threadpool_limits(limits=n):
        yield n


def run_limited(threads: int | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` under ``limited(threads)``: for ``asyncio.to_thread`` (the limit must be
    set in the thread that computes: OpenMP's is per thread)."""
    with limited(threads):
        return fn(*args)
