"""Run a sweep: evaluate plan tables in batches, in-process, on local processes, or on Ray.

The unit of work is a row slice of a `PlanTable` handed to an evaluator (`evaluate_table`
by default), which returns the slice's figures as columns; this process keys them
(`plan_key`) and turns them into JSON records. Plans whose keys are in the results store
are skipped; each finished batch is written to the store as it completes, so a killed
sweep resumes where it stopped. The records returned are sorted by key, so the backend and
the number of workers never change the answer.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from superscale.errors import SpecError
from superscale.search.evaluate import Evaluated, base_digest, evaluate_table, plan_key
from superscale.search.space import PlanTable
from superscale.search.store import ResultsStore

BACKENDS = ("local", "ray")
# A vectorized evaluator costs plans sharing a pipeline shape together: large batches are
# several times faster than small ones, and a kill loses at most one (well under a second).
DEFAULT_BATCH_SIZE = 4096

Evaluator = Callable[[PlanTable], Evaluated]
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


def table_keys(table: PlanTable) -> list[str]:
    """`plan_key` of each plan of `table`, in row order (the scenario hashed once)."""
    digest = base_digest({**table.base, "parallel": None})
    names = tuple(sorted(table.parallel(0))) if len(table) else ()
    return [
        plan_key({"parallel": table.parallel(i)}, base_digest=digest, fields=names)
        for i in range(len(table))
    ]


def _batches(
    tables: Sequence[PlanTable], keys: Sequence[list[str]], size: int
) -> Iterator[tuple[PlanTable, list[str]]]:
    for table, table_keys_ in zip(tables, keys, strict=True):
        for start in range(0, len(table), size):
            rows = slice(start, start + size)
            yield table.take(rows), table_keys_[rows]


def run_sweep(
    tables: Sequence[PlanTable],
    *,
    evaluate: Evaluator = evaluate_table,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    store: ResultsStore | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every plan of `tables` not already in `store`; return all records, sorted
    by key.

    Units of work are row slices of a table: a worker receives the scenario once per batch
    and the plans as a few integer columns, and sends back columns; this process keys them
    and turns them into records.

    Args:
        tables: plan tables (`enumerate_plans(...).tables`); plans repeated by key are
            evaluated once.
        evaluate: table evaluator; must be a picklable module-level function for
            workers > 1 or Ray.
        workers: local processes (1: in this process). With Ray: the most batches in
            flight at once (1: twice the cluster's CPUs).
        backend: "local" or "ray".
        address: Ray cluster address (None: start a local Ray instance).
        store: results store to skip finished keys and write each batch to as it lands.
        batch_size: plans per unit of work (smaller with several workers, so that each
            gets at least two).
        progress: called as progress(done, total) with the plans evaluated so far out of
            those to evaluate now (stored ones excluded), once at the start and after
            each batch.

    Returns:
        One record per distinct plan key, stored ones included, sorted by key.

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
    todo_tables: list[PlanTable] = []
    todo_keys: list[list[str]] = []
    seen: set[str] = set()
    for table in tables:
        keys = table_keys(table)
        fresh_rows = [i for i, k in enumerate(keys) if k not in seen]
        seen.update(keys)
        todo_tables.append(table.take(np.array(fresh_rows, dtype=np.int64)))
        todo_keys.append([keys[i] for i in fresh_rows])
    if store is not None:
        missing = store.missing(seen)
        for n, (table, keys) in enumerate(zip(todo_tables, todo_keys, strict=True)):
            rows = [i for i, k in enumerate(keys) if k in missing]
            todo_tables[n] = table.take(np.array(rows, dtype=np.int64))
            todo_keys[n] = [keys[i] for i in rows]
    total = sum(len(keys) for keys in todo_keys)
    fresh: list[dict[str, Any]] = []
    done = 0
    if progress is not None:
        progress(0, total)

    def land(evaluated: Evaluated, keys: list[str]) -> None:
        nonlocal done
        records = evaluated.records(keys=keys)
        if store is not None:
            store.add(records)
        fresh.extend(records)
        done += len(records)
        if progress is not None:
            progress(done, total)

    parallel = backend == "ray" or workers > 1
    if parallel:
        # Enough batches to keep every worker busy (with Ray, `workers` may be 1).
        batch_size = max(1, min(batch_size, -(-total // (2 * max(workers, 4)))))
    batches = [b for b in _batches(todo_tables, todo_keys, batch_size) if len(b[0])]
    if backend == "ray":
        _run_ray(batches, evaluate, land, address=address, in_flight=workers)
    elif workers == 1 or len(batches) <= 1:
        for table, keys in batches:
            land(evaluate(table), keys)
    else:
        _run_processes(batches, evaluate, land, workers=workers)
    records = {r["key"]: r for r in fresh}
    stored_keys = seen - set(records)
    if store is not None and stored_keys:
        records.update({r["key"]: r for r in store.get(stored_keys)})
    return [records[k] for k in sorted(records)]


Batch = tuple[PlanTable, list[str]]
Land = Callable[[Evaluated, list[str]], None]


def _run_processes(
    batches: list[Batch],
    evaluate: Evaluator,
    land: Land,
    *,
    workers: int,
) -> None:
    # forkserver: workers start from a clean process, not a fork of one that may hold
    # threads (a progress bar, a Ray driver), and preload the model once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["superscale.search.evaluate"])
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(evaluate, table): keys for table, keys in batches}
        try:
            for future in cf.as_completed(futures):
                land(future.result(), futures[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_ray(
    batches: list[Batch],
    evaluate: Evaluator,
    land: Land,
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
        pending: dict[Any, list[str]] = {}
        queue = iter(batches)
        for table, keys in queue:
            pending[task.remote(table)] = keys
            if len(pending) >= in_flight:
                break
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                land(ray.get(ref), pending.pop(ref))
            for table, keys in queue:
                pending[task.remote(table)] = keys
                break
    finally:
        if started:
            ray.shutdown()
