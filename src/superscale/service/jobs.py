"""Long requests (plan search, serve-plan) as jobs: start, progress, cancel, result.

A `JobRunner` owns a thread pool of `Settings.job_workers` and the registry of its jobs; it
lives on the app (`app.state.jobs`), never at module level. A job beyond the running ones
waits in the queue; past `queue_limit` waiting, a new job is refused with a 429. Work calls
`JobControl.progress(done, total)` between sweep batches, which is where a cancel or the
time limit stops it (`JobCancelled`). A job still running past its time limit (in a part
of its work that reports no progress) is marked cancelled when it is next read, and its
result is dropped when it lands.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from superscale.errors import InfeasiblePlan, SpecError
from superscale.service.errors import ApiError, cap_exceeded, from_library

ACTIVE = ("queued", "running")


class JobCancelled(Exception):
    """Raised inside a job's work to stop it (a cancel, or its time limit)."""


@dataclass(slots=True, kw_only=True)
class Job:
    """One job's state; mutated only under its runner's lock."""

    id: str
    kind: str
    timeout_s: float
    state: str = "queued"
    message: str = ""
    created_s: float = field(default_factory=time.monotonic)
    started_s: float | None = None
    finished_s: float | None = None
    done: int = 0
    total: int = 0
    progress_start_s: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self, now_s: float) -> dict[str, Any]:
        elapsed = 0.0 if self.started_s is None else (self.finished_s or now_s) - self.started_s
        sweep = None if self.progress_start_s is None else (self.finished_s or now_s)
        rate = 0.0
        if sweep is not None and self.progress_start_s is not None:
            span = sweep - self.progress_start_s
            rate = self.done / span if span > 0 else 0.0
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "message": self.message,
            "elapsed_s": elapsed,
            "timeout_s": self.timeout_s,
            "progress": {"done": self.done, "total": self.total, "plans_per_s": rate},
            "result": self.result,
            "error": self.error,
        }


class JobControl:
    """What a job's work sees: progress reports, and the check that stops it."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner = runner
        self._job = job

    def check(self) -> None:
        """Raise `JobCancelled` if the job was cancelled or ran past its time limit."""
        job = self._job
        if job.cancel.is_set():
            raise JobCancelled(job.message or "cancelled")
        if job.started_s is not None and time.monotonic() - job.started_s > job.timeout_s:
            self._runner.expire(job)
            raise JobCancelled(job.message)

    def progress(self, done: int, total: int) -> None:
        """Record `done` of `total` units (plans) and stop here if asked to."""
        with self._runner.lock:
            job = self._job
            if job.progress_start_s is None:
                job.progress_start_s = time.monotonic()
            job.done, job.total = done, total
        self.check()


Work = Callable[[JobControl], dict[str, Any]]


class JobRunner:
    """A bounded pool of job threads and the registry of their jobs."""

    def __init__(
        self, *, workers: int, queue_limit: int, timeout_s: float, keep_finished: int
    ) -> None:
        self.lock = threading.Lock()
        self._pool: cf.ThreadPoolExecutor | None = None
        self._workers = workers
        self._queue_limit = queue_limit
        self._timeout_s = timeout_s
        self._keep = keep_finished
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._ids = itertools.count(1)

    def submit(self, kind: str, work: Work) -> Job:
        """Queue `work` as a job; ApiError 429 when the queue is full."""
        with self.lock:
            active = sum(1 for j in self._jobs.values() if j.state in ACTIVE)
            if active >= self._workers + self._queue_limit:
                error = cap_exceeded(
                    "queue_limit",
                    self._queue_limit,
                    active - self._workers + 1,
                    f"jobs waiting ({self._workers} running)",
                )
                error.status = 429
                raise error
            job = Job(id=f"{kind}-{next(self._ids)}", kind=kind, timeout_s=self._timeout_s)
            self._jobs[job.id] = job
            self._forget_old()
            if self._pool is None:  # first job, or the first since a shutdown
                self._pool = cf.ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="job"
                )
            self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's JSON (state, progress, result); ApiError 404 if unknown."""
        with self.lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ApiError(404, f"no job '{job_id[:80]}' (finished jobs are kept a while)")
            now = time.monotonic()
            if (
                job.state == "running"
                and job.started_s is not None
                and now - job.started_s > job.timeout_s
            ):
                self._expire_locked(job)
            return job.to_json(now)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop; a queued job never starts. ApiError 404 if unknown."""
        with self.lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ApiError(404, f"no job '{job_id[:80]}' (finished jobs are kept a while)")
            if job.state in ACTIVE:
                job.cancel.set()
                job.state = "cancelled"
                job.message = "cancelled by request"
                job.finished_s = time.monotonic()
        return self.get(job_id)

    def expire(self, job: Job) -> None:
        with self.lock:
            self._expire_locked(job)

    def _expire_locked(self, job: Job) -> None:
        if job.state in ACTIVE:
            job.cancel.set()
            job.state = "cancelled"
            job.message = f"cancelled: exceeded {job.timeout_s:g} s (superscale web --job-timeout)"
            job.finished_s = time.monotonic()

    def shutdown(self) -> None:
        """Cancel every job and stop the pool (running work stops at its next check); a
        later submit starts a new pool."""
        with self.lock:
            for job in self._jobs.values():
                if job.state in ACTIVE:
                    self._expire_locked(job)
                    job.message = "cancelled: the server stopped"
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state not in ACTIVE]
        for job_id in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job_id]

    def _run(self, job: Job, work: Work) -> None:
        with self.lock:
            if job.state != "queued":
                return  # cancelled while waiting
            job.state = "running"
            job.started_s = time.monotonic()
        control = JobControl(self, job)
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        message = ""
        try:
            result = work(control)
            state = "done"
        except JobCancelled:
            state = "cancelled"
        except (SpecError, InfeasiblePlan) as exc:
            state, error = "failed", from_library(exc).body
        except ApiError as exc:
            state, error = "failed", exc.body
        except (ArithmeticError, RecursionError, MemoryError) as exc:
            state, error = "failed", {"error": f"numbers out of range: {exc}", "field": ""}
        except Exception as exc:  # never a traceback to the client; the kind is enough
            state, message = "failed", f"internal error ({type(exc).__name__})"
            error = {"error": message, "field": ""}
        with self.lock:
            if job.state != "running":
                return  # cancelled or expired meanwhile: its message stands, result dropped
            job.state, job.result, job.error = state, result, error
            job.message = message or (error or {}).get("error", "") or state
            job.finished_s = time.monotonic()
