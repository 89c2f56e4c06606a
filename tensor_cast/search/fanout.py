"""Running many independent tasks: in this process, a local process pool, or Ray.

`fan_out(fn, tasks, jobs=, ray_address=, desc=)` yields `fn(task)` results in the order of
`tasks` (so every backend returns the same list), with a progress bar (tqdm, on stderr, silent
when stderr is not a terminal). Tasks should be coarse (the search passes one trace's worth of
simulations per task) so a worker traces once.

- jobs = 1: in this process.
- jobs > 1: a process pool (fork: workers inherit this process's traced models).
- ray_address: Ray tasks (`ray.init(address=...)`; "local" starts a local Ray), needs the `ray`
  extra. Results are the same values whichever backend ran them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import InvalidArgumentError


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False,
                unit="task", dynamic_ncols=True)


def fan_out(fn: Callable[[Any], Any], tasks: Sequence[Any], *, jobs: int = 1, ray_address: str | None = None,
            desc: str = "search", weights: Sequence[int] | None = None) -> list[Any]:
    """`[fn(t) for t in tasks]`, run on the chosen backend with a progress bar (weights: the
    units of work each task counts for on the bar)."""
    weights = list(weights) if weights is not None else [1] * len(tasks)
    with progress(sum(weights), desc) as bar:
        if ray_address is not None:
            return _ray(fn, tasks, ray_address, bar, weights)
        if jobs <= 1 or len(tasks) <= 1:
            out = []
            for task, w in zip(tasks, weights):
                out.append(fn(task))
                bar.update(w)
            return out
        return list(_pool(fn, tasks, jobs, bar, weights))


def _pool(fn: Callable[[Any], Any], tasks: Sequence[Any], jobs: int, bar: Any, weights: list[int]) -> Iterator[Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
        futures = [pool.submit(fn, t) for t in tasks]
        for future, w in zip(futures, weights):
            result = future.result()
            bar.update(w)
            yield result


def _ray(fn: Callable[[Any], Any], tasks: Sequence[Any], address: str, bar: Any, weights: list[int]) -> list[Any]:
    try:
        import ray
    except ImportError:
        raise InvalidArgumentError("--ray needs Ray: pip install 'tensor-cast[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True,
                 log_to_driver=False)
    remote = ray.remote(fn)
    refs = [remote.remote(t) for t in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[index[ref]] = ray.get(ref)
            bar.update(weights[index[ref]])
    return results
