"""The service's limits and where it listens: one frozen value built by `superscale web`.

Every cap bounds the work one request may ask for, so that a shared server stays
responsive: GPUs in any cluster, plans a search may enumerate, requests a serving
simulation may draw, spans a trace may hold, and the request body itself. A request over a
cap gets a 4xx naming the cap and the `superscale web` flag that raises it (`CAP_FLAGS`).
Search and serve-plan jobs run in a pool of `job_workers` threads with at most
`queue_limit` waiting; a job running longer than `job_timeout_s` is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass

# Cap field → the `superscale web` flag that raises it (the words every cap error uses).
CAP_FLAGS = {
    "max_body_bytes": "--max-body-bytes",
    "max_gpus": "--max-gpus",
    "max_plans": "--max-plans",
    "max_requests": "--max-requests",
    "max_spans": "--max-spans",
    "max_top": "--max-top",
    "job_timeout_s": "--job-timeout",
    "queue_limit": "--queue-limit",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where the service listens and what one request may ask of it.

    Attributes:
        host, port: the listening address (127.0.0.1 unless told otherwise).
        backend: search sweeps run "local" (in the job's thread) or on "ray".
        ray_address: Ray cluster address (None: a local Ray instance).
        max_body_bytes: largest request body, bytes.
        max_gpus: most GPUs of any cluster a request names.
        max_plans: most candidate plans one search may enumerate.
        max_requests: most requests one serving simulation may draw (serve-plan: per
            capacity simulation).
        max_spans: most timeline spans one simulate-with-trace may return.
        max_top: most top plans a search may refine and return.
        job_workers: search / serve-plan jobs running at once.
        queue_limit: jobs waiting beyond those running before a 429.
        job_timeout_s: a running job is cancelled after this many seconds.
        finished_jobs: finished jobs kept for their results (oldest dropped first).
        search_batch_size: plans per sweep batch: cancellation takes effect between
            batches, so smaller batches stop sooner.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "local"
    ray_address: str | None = None
    max_body_bytes: int = 1_000_000
    max_gpus: int = 32_768
    max_plans: int = 300_000
    max_requests: int = 20_000
    max_spans: int = 200_000
    max_top: int = 50
    job_workers: int = 2
    queue_limit: int = 8
    job_timeout_s: float = 120.0
    finished_jobs: int = 64
    search_batch_size: int = 4096
