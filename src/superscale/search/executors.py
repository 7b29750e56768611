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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from superscale.errors import SpecError
from superscale.search.evaluate import (
    DOES_NOT_FIT,
    Evaluated,
    base_digest,
    evaluate_table,
    plan_keys_of,
)
from superscale.search.space import PlanTable
from superscale.search.store import ResultsStore

BACKENDS = ("local", "ray")
# A vectorized evaluator costs plans sharing a pipeline shape together: large batches are
# several times faster than small ones, and a kill loses at most one (well under a second
# warm: ~0.3 s at 100k+ plans/s).
DEFAULT_BATCH_SIZE = 32768

Evaluator = Callable[[PlanTable], Evaluated]
Progress = Callable[[int, int], None]


def table_keys(table: PlanTable) -> list[str]:
    """`plan_key` of each plan of `table`, in row order (the scenario hashed once)."""
    return plan_keys_of(table.parallels(), base_digest({**table.base, "parallel": None}))


def sweep_records(results: Sequence[Evaluated]) -> list[dict[str, Any]]:
    """Every plan of a sweep's results as a keyed JSON record, sorted by key."""
    records = [r for e in results for r in e.records(keys=table_keys(e.table))]
    return sorted(records, key=lambda r: r["key"])


class _Columns:
    """A table's figures as a sweep fills them in, from batches and from the store."""

    def __init__(self, table: PlanTable) -> None:
        n = len(table)
        self.table = table
        self.gpus: int | None = None
        self.error: str | None = None
        self.arrays = {
            name: np.full(n, np.nan)
            for name in ("step_time_s", "tokens_per_s", "mfu", "peak_bytes")
        }
        self.fits = np.zeros(n, dtype=bool)
        self.costed = np.zeros(n, dtype=bool)

    def fill(self, rows: np.ndarray, done: Evaluated) -> None:
        for name, array in self.arrays.items():
            array[rows] = getattr(done, name)
        self.fits[rows] = done.fits
        self.costed[rows] = done.costed
        self.gpus = self.gpus if done.gpus is None else done.gpus
        self.error = self.error or done.error

    def fill_records(self, rows: np.ndarray, records: list[dict[str, Any]]) -> None:
        """Rows read back from the store (records in the order of `rows`)."""
        nan = float("nan")
        for row, r in zip(rows.tolist(), records, strict=True):
            costed = r["step_time_s"] is not None
            self.arrays["step_time_s"][row] = r["step_time_s"] if costed else nan
            self.arrays["tokens_per_s"][row] = r["tokens_per_s"] if costed else nan
            self.arrays["mfu"][row] = r["mfu"] if costed else nan
            peak = r["peak_gib_per_gpu"]
            self.arrays["peak_bytes"][row] = nan if peak is None else peak * 2**30
            self.fits[row] = r["fits"]
            self.costed[row] = costed
            self.gpus = self.gpus if r["gpus"] is None else r["gpus"]
            if r["error"] and r["error"] != DOES_NOT_FIT:
                self.error = self.error or r["error"]

    def evaluated(self) -> Evaluated:
        return Evaluated(
            table=self.table,
            gpus=self.gpus,
            fits=self.fits,
            costed=self.costed,
            error=self.error,
            **self.arrays,
        )


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
) -> list[Evaluated]:
    """Evaluate every plan of `tables` not already in `store`; return each table's
    figures as columns (`Evaluated`, in table order), stored plans included.

    Units of work are row slices of a table: a worker receives the scenario once per batch
    and the plans as a few integer columns, and sends back columns. Without a store no
    plan is keyed or turned into a record here: callers build records for the rows they
    keep (`Evaluated.records`, `sweep_records`). With one, each landed batch is keyed and
    stored, and plans already stored are read back rather than evaluated.

    Args:
        tables: plan tables (`enumerate_plans(...).tables`).
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
    columns = [_Columns(table) for table in tables]
    keys: list[list[str]] = []
    todo: list[np.ndarray] = []
    for index, table in enumerate(tables):
        if store is None:
            todo.append(np.arange(len(table)))
            continue
        table_keys_ = table_keys(table)
        missing = store.missing(table_keys_)
        fresh = np.array([k in missing for k in table_keys_], dtype=bool)
        keys.append(table_keys_)
        todo.append(np.flatnonzero(fresh))
        stored = np.flatnonzero(~fresh)
        if len(stored):
            found = {r["key"]: r for r in store.get([table_keys_[i] for i in stored.tolist()])}
            columns[index].fill_records(stored, [found[table_keys_[i]] for i in stored.tolist()])
    # batches of one pipeline shape where possible: each shape is lowered once per batch
    todo = [rows[_by_shape(table, rows)] for table, rows in zip(tables, todo, strict=True)]
    total = sum(len(rows) for rows in todo)
    done = 0
    if progress is not None:
        progress(0, total)

    def land(evaluated: Evaluated, unit: Unit) -> None:
        nonlocal done
        index, rows = unit
        columns[index].fill(rows, evaluated)
        if store is not None:
            store.add(evaluated.records(keys=[keys[index][i] for i in rows.tolist()]))
        done += len(rows)
        if progress is not None:
            progress(done, total)

    parallel = backend == "ray" or workers > 1
    if parallel:
        # Enough batches to keep every worker busy (with Ray, `workers` may be 1).
        batch_size = max(1, min(batch_size, -(-total // (2 * max(workers, 4)))))
    batches = [
        (
            tables[index].take(rows[start : start + batch_size]),
            (index, rows[start : start + batch_size]),
        )
        for index, rows in enumerate(todo)
        for start in range(0, len(rows), batch_size)
    ]
    if backend == "ray":
        _run_ray(batches, evaluate, land, address=address, in_flight=workers)
    elif workers == 1 or len(batches) <= 1:
        for table, unit in batches:
            land(evaluate(table), unit)
    else:
        _run_processes(batches, evaluate, land, workers=workers)
    return [c.evaluated() for c in columns]


def _by_shape(table: PlanTable, rows: np.ndarray) -> np.ndarray:
    """Order of `rows` grouping plans of one pipeline shape (pp, virtual stages)."""
    shape = table.columns["pp"][rows] * 1024 + table.columns["virtual_stages"][rows]
    return np.argsort(shape, kind="stable")


Unit = tuple[int, np.ndarray]  # (table index, rows of that table)
Batch = tuple[PlanTable, Unit]
Land = Callable[[Evaluated, Unit], None]


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
        futures = {pool.submit(evaluate, table): unit for table, unit in batches}
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
        pending: dict[Any, Unit] = {}
        queue = iter(batches)
        for table, unit in queue:
            pending[task.remote(table)] = unit
            if len(pending) >= in_flight:
                break
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                land(ray.get(ref), pending.pop(ref))
            for table, unit in queue:
                pending[task.remote(table)] = unit
                break
    finally:
        if started:
            ray.shutdown()
