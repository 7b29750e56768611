"""A synthetic profile: a full (m, n, k) grid whose rates follow a known formula."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

DIMS = (128, 1024, 8192)


def profile_dict(
    *, matmul_scale: float = 1.0, memory_scale: float = 1.0, attention_scale: float = 1.0
) -> dict[str, Any]:
    def rate(m: int, n: int, k: int) -> float:
        shape = 1.0
        for d in (m, n, k):
            shape *= d / (d + 256)
        return 800.0 * shape * matmul_scale

    return {
        "format": "superscale-profile/1",
        "device": {
            "name": "Test Accelerator",
            "kind": "cuda",
            "index": 0,
            "count": 1,
            "memory_gib": 80,
            "host": "testhost",
            "date": "2026-01-01T00:00:00+00:00",
            "software": {"torch": "2.13.0"},
        },
        "matmul": {
            "bf16": [
                {"m": m, "n": n, "k": k, "tflops": rate(m, n, k)}
                for m in DIMS
                for n in DIMS
                for k in DIMS
            ]
        },
        "memory": [
            {"bytes": 2**p, "gb_per_s": min(3000.0, 2**p / 2**14 * 10) * memory_scale}
            for p in range(14, 32, 2)
        ],
        "attention": {
            "bf16": [
                {
                    "seq_len": s,
                    "head_dim": d,
                    "tflops": (300.0 if d == 128 else 250.0) * s / (s + 1024) * attention_scale,
                }
                for s in (512, 2048, 8192)
                for d in (64, 128)
            ]
        },
        "collectives": [
            {"collective": "all_reduce", "bytes": 2**p, "ranks": 8, "bus_gb_per_s": 2**p / 2**24}
            for p in range(20, 31, 5)
        ],
    }


@pytest.fixture
def make_profile() -> Callable[..., dict[str, Any]]:
    return profile_dict
