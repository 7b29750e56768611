"""A server started with `--backend ray` runs its searches' sweeps on Ray, with the same
answer as the local backend."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import pytest

pytest.importorskip("fastapi")

from service_support import SMALL, make_client

from superscale.service import Settings


def _search(settings: Settings, scenario: dict[str, Any]) -> dict[str, Any]:
    with make_client(settings) as client:
        job = client.post("/api/search", json={"scenario": scenario, "top": 2}).json()
        deadline = time.monotonic() + 120
        while job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done", job
    return dict(job["result"])


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_backend_finds_the_local_answer(training: dict[str, Any]) -> None:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        remote = _search(Settings(backend="ray", max_top=SMALL.max_top), training)
    finally:
        ray.shutdown()
    local = _search(SMALL, training)
    assert [r["key"] for r in remote["top"]] == [r["key"] for r in local["top"]]
    assert remote["candidates"] == local["candidates"]
