"""Fixtures for the service: an app with small caps, an in-process client, tiny scenarios.

The service needs the `[web]` extra; without FastAPI its tests are skipped (each module
asks for it first), as the core install has no service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def training() -> dict[str, Any]:
    """Llama 3 8B on two DGX H100 (16 GPUs): a real model, a small cluster."""
    return {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 2},
        "training": {"seq_len": 4096, "global_batch": 32, "precision": "bf16"},
        "parallel": {"tp": 8, "pp": 2, "micro_batch": 1, "recompute": "selective"},
    }


@pytest.fixture
def serving() -> dict[str, Any]:
    """Llama 3 8B served on one DGX H100, 400 Poisson requests."""
    return {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 1},
        "serving": {
            "plan": {"tp": 1},
            "workload": {"arrival": "poisson", "rate_per_s": 20, "requests": 400, "seed": 0},
            "slo": {"ttft_p99_s": 2.0, "tpot_p99_s": 0.1},
        },
    }


@pytest.fixture
def client() -> Iterator[Any]:
    """An in-process client (httpx) of an app with small caps; needs the [web] extra."""
    pytest.importorskip("fastapi")
    from service_support import make_client

    with make_client() as c:
        yield c
