"""Run a sweep: evaluate plan tables in batches, in-process, on local processes, or on Ray.

The unit of work is a row slice of a `PlanTable` handed to an evaluator (`evaluate_table`
by default), which returns the slice's figures as columns; this process keys them
(`plan_key`) and turns them into JSON records. With a results store, the rows of each
table already stored are read back in one scan by the table's digest (`table_digest`) and
skipped before any plan is keyed; each finished batch is written to the store as it
completes, so a killed sweep resumes where it stopped at the cost of its remaining plans.
The records returned are sorted by key, so the backend and the number of workers never
change the answer.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
from superscale.search.space import CODES, COLUMNS, PlanTable
from superscale.search.store import ResultsStore

BACKENDS = ("local", "ray")
# A vectorized evaluator costs plans sharing a pipeline shape together: large batches are
# several times faster than small ones, and a kill loses at most one (well under a second
# warm: ~0.3 s at 100k+ plans/s).
DEFAULT_BATCH_SIZE = 32768

_POLL_S = 0.2  # how often a sweep looks for plans another sweep is costing
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

Evaluator = Callable[[PlanTable], Evaluated]
Progress = Callable[[int, int], None]


def table_keys(table: PlanTable) -> list[str]:
    """`plan_key` of each plan of `table`, in row order (the scenario hashed once)."""
    return plan_keys_of(table.parallels(), base_digest({**table.base, "parallel": None}))


def table_digest(table: PlanTable) -> str:
    """Hash of a whole plan table: its scenario, its kept switches, the column layout and
    codes, and every row. Two sweeps that enumerate the same table agree on it, so a row
    index names the same plan in both (`ResultsStore.stored_slots`)."""
    head = json.dumps(
        [base_digest(table.base), table.stack, list(COLUMNS), CODES],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    digest = hashlib.sha256(head.encode())
    for name in COLUMNS:
        digest.update(np.ascontiguousarray(table.columns[name], dtype=np.int64).tobytes())
    return digest.hexdigest()


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

    def fill_stored(self, rows: list[int], figures: list[tuple[Any, ...]]) -> None:
        """Rows read back from the store (`ResultsStore.figures` tuples, in row order)."""
        if not rows:
            return
        nan = float("nan")
        index = np.asarray(rows, dtype=np.int64)
        step, rate, mfu, peak, fits, gpus, errors = zip(*figures, strict=True)

        def column(values: tuple[Any, ...], scale: float = 1.0) -> np.ndarray:
            return np.array([nan if v is None else v * scale for v in values], dtype=float)

        self.arrays["step_time_s"][index] = column(step)
        self.arrays["tokens_per_s"][index] = column(rate)
        self.arrays["mfu"][index] = column(mfu)
        self.arrays["peak_bytes"][index] = column(peak, 2.0**30)
        self.fits[index] = np.array(fits, dtype=bool)
        self.costed[index] = np.array([s is not None for s in step], dtype=bool)
        self.gpus = self.gpus if self.gpus is not None else next((g for g in gpus if g), None)
        error = next((e for e in errors if e and e != DOES_NOT_FIT), None)
        self.error = self.error or error

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
    stored, and plans already stored are read back (their figures only) rather than
    evaluated. Each batch is claimed in the store before it is sent, so sweeps sharing a
    store cost each plan once: plans another live sweep claimed are waited for and read
    back; a dead sweep's claims are taken over. At most two batches per worker are in
    flight, so memory does not grow with the sweep.

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
    # With a store: each table's id there, the digest its plans are keyed with, and the
    # keys of the rows keyed so far (only rows to cost are ever keyed).
    tabs: list[int] = []
    digests: list[str] = []
    keys: list[dict[int, str]] = []
    todo: list[np.ndarray] = []
    for index, table in enumerate(tables):
        if store is None:
            todo.append(np.arange(len(table)))
            continue
        tabs.append(store.table_id(table_digest(table)))
        digests.append(base_digest({**table.base, "parallel": None}))
        keys.append({})
        slots, figures = store.stored_slots(tabs[-1])
        n = len(table)
        kept = [(i, f) for i, f in zip(slots, figures, strict=True) if 0 <= i < n]
        stored = [i for i, _ in kept]
        columns[index].fill_stored(stored, [f for _, f in kept])
        rest = np.ones(len(table), dtype=bool)
        rest[np.asarray(stored, dtype=np.int64)] = False
        todo.append(np.flatnonzero(rest))
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
            landed = [keys[index].pop(i) for i in rows.tolist()]
            store.add(evaluated.records(keys=landed), tab=tabs[index], slots=rows.tolist())
        done += len(rows)
        if progress is not None:
            progress(done, total)

    parallel = backend == "ray" or workers > 1
    if parallel:
        # Enough batches to keep every worker busy (with Ray, `workers` may be 1).
        batch_size = max(1, min(batch_size, -(-total // (2 * max(workers, 4)))))
    left: list[list[int]] = [[] for _ in tables]  # rows another sweep claimed

    def batches() -> Iterator[Batch]:
        for index, rows in enumerate(todo):
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                if store is not None:
                    named = _keyed(tables[index], chunk, digests[index], keys[index])
                    mine = store.claim(named)
                    claimed = np.array([k in mine for k in named], dtype=bool)
                    left[index] += chunk[~claimed].tolist()
                    chunk = chunk[claimed]
                if len(chunk):
                    yield tables[index].take(chunk), (index, chunk)

    def run(units: Iterator[Batch]) -> None:
        if backend == "ray":
            _run_ray(units, evaluate, land, address=address, in_flight=workers)
        elif workers == 1:
            for table, unit in units:
                land(evaluate(table), unit)
        else:
            _run_processes(units, evaluate, land, workers=workers)

    run(batches())
    # Plans another sweep claimed: read back what it stored, take over what a dead sweep
    # left, and wait for the rest.
    while store is not None and any(left):
        for index, rows in enumerate(left):
            waiting = _read_back(store, columns[index], keys[index], np.array(rows, dtype=int))
            done += len(rows) - len(waiting)
            left[index] = []
            todo[index] = waiting
        if progress is not None:
            progress(done, total)
        run(batches())
        if any(left):
            time.sleep(_POLL_S)
    return [c.evaluated() for c in columns]


def _keyed(table: PlanTable, rows: np.ndarray, digest: str, keys: dict[int, str]) -> list[str]:
    """`plan_key` of each of `rows`, computed once per row and remembered in `keys`."""
    new = [i for i in rows.tolist() if i not in keys]
    if new:
        keys.update(zip(new, plan_keys_of(table.parallels(np.array(new)), digest), strict=True))
    return [keys[i] for i in rows.tolist()]


def _read_back(
    store: ResultsStore, columns: _Columns, keys: dict[int, str], rows: np.ndarray
) -> np.ndarray:
    """Fill `columns` with the stored figures of `rows`; return the rows not stored."""
    found = store.figures([keys[i] for i in rows.tolist()])
    stored = [i for i in rows.tolist() if keys[i] in found]
    columns.fill_stored(stored, [found[keys[i]] for i in stored])
    return np.array([i for i in rows.tolist() if keys[i] not in found], dtype=np.int64)


def _by_shape(table: PlanTable, rows: np.ndarray) -> np.ndarray:
    """Order of `rows` grouping plans of one pipeline shape (pp, virtual stages)."""
    shape = table.columns["pp"][rows] * 1024 + table.columns["virtual_stages"][rows]
    return np.argsort(shape, kind="stable")


Unit = tuple[int, np.ndarray]  # (table index, rows of that table)
Batch = tuple[PlanTable, Unit]
Land = Callable[[Evaluated, Unit], None]


def _die_with_parent(sweep_pid: int) -> None:
    """Worker initializer: end this worker when the sweep that started it is gone.

    A forkserver worker is the forkserver's child, not the sweep's, and holds both ends of
    its queue pipes and the forkserver's keep-alive pipe, so nothing it reads ever ends
    when the sweep is SIGKILLed: it would wait for ever, keeping the forkserver, the
    resource tracker and whoever reads the sweep's output pipe waiting too. A daemon
    thread watches the sweep's pid and exits the process when it disappears; on Linux the
    kernel also kills the worker if the forkserver dies. SIGINT is ignored: the sweep
    stops its workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    threading.Thread(target=_watch, args=(sweep_pid,), daemon=True).start()


def _watch(pid: int) -> None:
    while not _gone(pid):
        time.sleep(_POLL_S)
    os._exit(1)


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended: absent, or a zombie not yet reaped (Linux)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
        except OSError:
            return True
    try:  # no /proc: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _run_processes(
    batches: Iterator[Batch],
    evaluate: Evaluator,
    land: Land,
    *,
    workers: int,
) -> None:
    # forkserver: workers start from a clean process, not a fork of one that may hold
    # threads (a progress bar, a Ray driver), and preload the model once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["superscale.search.evaluate"])
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    pending: dict[cf.Future[Evaluated], Unit] = {}
    try:
        for table, unit in batches:
            with _termination_deferred():
                pending[pool.submit(evaluate, table)] = unit
            while len(pending) >= 2 * workers:
                _land_one(pending, land)
        while pending:
            _land_one(pending, land)
    except BaseException:
        # Stop at once: drop queued work and end the workers rather than letting them
        # finish their batches (a SIGTERM or Ctrl-C must not wait on minutes of work).
        for future in pending:
            future.cancel()
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _termination_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT while a submit may be starting a worker: the forkserver's
    handshake, cut half-way, leaves the forkserver printing an EOFError traceback.

    The handlers are swapped for a recorder, not the signals masked: the first spawn
    starts multiprocessing's resource tracker, which blocks and then *unblocks* SIGINT
    and SIGTERM around its own start, lifting any mask between the forkserver connect
    and the file descriptors sent after it (the race CI hit). What was caught is raised
    again, to the restored handlers, when the submit returns.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    caught: list[int] = []

    def record(signum: int, frame: object) -> None:
        if signum not in caught:
            caught.append(signum)

    held = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, record) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():  # None: set outside Python; default it
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for number in caught:
            signal.raise_signal(number)


def _land_one(pending: dict[cf.Future[Evaluated], Unit], land: Land) -> None:
    finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
    for future in finished:
        land(future.result(), pending.pop(future))


def _run_ray(
    batches: Iterator[Batch],
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
