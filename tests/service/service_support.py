"""The service tests' shared pieces: small caps and an in-process client (httpx)."""

from __future__ import annotations

import warnings

from superscale.service import Settings, create_app

with warnings.catch_warnings():
    # Starlette 1.x deprecates its TestClient's httpx backend in favour of httpx2, which is
    # not on PyPI's stable line yet; the client itself works unchanged.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SMALL = Settings(
    max_gpus=4096,
    max_plans=50_000,
    max_requests=5_000,
    max_spans=100_000,
    max_top=10,
    job_workers=1,
    queue_limit=1,
    job_timeout_s=30.0,
)


def make_client(settings: Settings = SMALL) -> TestClient:
    """A client of a fresh app (its own job pool and caches)."""
    return TestClient(create_app(settings))
