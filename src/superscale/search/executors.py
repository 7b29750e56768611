"""Run a sweep: evaluate candidate plans in batches, in-process, on local processes, or on Ray.

The unit of work is a batch of candidates handed to an evaluator (`evaluate_batch` by
default), which returns one JSON record per candidate. Batches whose keys are all in the
results store are skipped; each finished batch is written to the store as it completes, so
a killed sweep resumes where it stopped. The records returned are sorted by key, so the
backend and the number of workers never change the answer (Calculon's `mp.Pool` over plan
tuples, calling the model directly rather than shelling out).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from superscale.errors import SpecError
from superscale.search.evaluate import base_digest, evaluate_batch, plan_key
from superscale.search.store import ResultsStore

BACKENDS = ("local", "ray")
# A vectorized evaluator costs plans sharing a pipeline shape together: large batches are
# several times faster than small ones, and a kill loses at most one (well under a second).
DEFAULT_BATCH_SIZE = 2048

Evaluator = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
Progress = Callable[[int, int], None]


def plan_keys(candidates: Sequence[dict[str, Any]]) -> list[str]:
    """`plan_key` of each candidate, hashing each shared model/cluster/training part once.

    Candidates from `enumerate_plans` share those parts as the same objects, so they are
    recognized by identity (valid while `candidates` holds them).
    """
    digests: dict[tuple[int, ...], str] = {}
    out: list[str] = []
    for c in candidates:
        ids = tuple([id(v) for k, v in c.items() if k != "parallel"])
        digest = digests.get(ids)
        if digest is None:
            digest = digests[ids] = base_digest(c)
        out.append(plan_key(c, base_digest=digest))
    return out


def _batches(items: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def run_sweep(
    candidates: Sequence[dict[str, Any]],
    *,
    evaluate: Evaluator = evaluate_batch,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    store: ResultsStore | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every candidate not already in `store`; return all records, sorted by key.

    Args:
        candidates: scenario mappings (duplicates, by `plan_key`, are evaluated once).
        evaluate: batch evaluator; must be a picklable module-level function for
            workers > 1 or Ray.
        workers: local processes (1: in this process). With Ray: the most batches in
            flight at once (1: twice the cluster's CPUs).
        backend: "local" or "ray".
        address: Ray cluster address (None: start a local Ray instance).
        store: results store to skip finished keys and write each batch to as it lands.
        batch_size: candidates per unit of work (smaller with several workers, so that
            each gets at least two).
        progress: called as progress(done, total) with the plans evaluated so far out of
            those to evaluate now (stored ones excluded), once at the start and after
            each batch.

    Returns:
        One record per distinct candidate key, stored ones included, sorted by key.

    Raises:
        SpecError: a bad backend, workers or batch size, or Ray missing or unreachable.
    """
    if backend not in BACKENDS:
        raise SpecError(f"--backend: unknown backend '{backend}' (allowed: local, ray)")
    if workers < 1:
        raise SpecError(f"--workers must be >= 1, got {workers}")
    if batch_size < 1:
        raise SpecError(f"batch size must be >= 1, got {batch_size}")
    if address is not None and backend != "ray":
        raise SpecError("--address needs --backend ray")
    by_key: dict[str, dict[str, Any]] = {}
    for key, c in zip(plan_keys(candidates), candidates, strict=True):
        by_key.setdefault(key, c)
    todo_keys = set(by_key) if store is None else store.missing(by_key)
    # Enumeration order: neighbours share a pipeline shape, which a vectorized evaluator
    # costs together. The answer does not depend on it (records are sorted by key).
    todo = [c for k, c in by_key.items() if k in todo_keys]
    fresh: list[dict[str, Any]] = []
    done = 0
    if progress is not None:
        progress(0, len(todo))

    def land(records: list[dict[str, Any]]) -> None:
        nonlocal done
        if store is not None:
            store.add(records)
        fresh.extend(records)
        done += len(records)
        if progress is not None:
            progress(done, len(todo))

    parallel = backend == "ray" or workers > 1
    if parallel:
        # Enough batches to keep every worker busy (with Ray, `workers` may be 1).
        batch_size = max(1, min(batch_size, -(-len(todo) // (2 * max(workers, 4)))))
    batches = list(_batches(todo, batch_size))
    if backend == "ray":
        _run_ray(batches, evaluate, land, address=address, in_flight=workers)
    elif workers == 1 or len(batches) <= 1:
        for batch in batches:
            land(evaluate(batch))
    else:
        _run_processes(batches, evaluate, land, workers=workers)
    records = {r["key"]: r for r in fresh}
    stored_keys = set(by_key) - todo_keys
    if store is not None and stored_keys:
        records.update({r["key"]: r for r in store.get(stored_keys)})
    return [records[k] for k in sorted(records)]


def _run_processes(
    batches: list[list[dict[str, Any]]],
    evaluate: Evaluator,
    land: Callable[[list[dict[str, Any]]], None],
    *,
    workers: int,
) -> None:
    # forkserver: workers start from a clean process, not a fork of one that may hold
    # threads (a progress bar, a Ray driver), and preload the model once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["superscale.search.evaluate"])
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(evaluate, batch) for batch in batches]
        try:
            for future in cf.as_completed(futures):
                land(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_ray(
    batches: list[list[dict[str, Any]]],
    evaluate: Evaluator,
    land: Callable[[list[dict[str, Any]]], None],
    *,
    address: str | None,
    in_flight: int,
) -> None:
    try:
        import ray  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SpecError(
            "--backend ray needs Ray: pip install 'superscale[ray]' (or pip install ray)"
        ) from None
    started = False
    if not ray.is_initialized():
        try:
            if address is None:
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a local instance"
            raise SpecError(f"--backend ray: cannot start or reach Ray at {where}: {exc}") from None
        started = True
    try:
        if in_flight <= 1:
            cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call,unused-ignore]
            in_flight = max(2, 2 * int(cpus))
        task = ray.remote(evaluate)
        pending: list[Any] = []
        queue = iter(batches)
        for batch in queue:
            pending.append(task.remote(batch))
            if len(pending) >= in_flight:
                break
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                land(ray.get(ref))
            for batch in queue:
                pending.append(task.remote(batch))
                break
    finally:
        if started:
            ray.shutdown()
