"""Serving predictions against published results (shared/reference/inference-published.csv)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from superscale.validate.inference import compare_all, reference_rows, summarize_errors

SHARED_CSV = (
    Path(__file__).resolve().parents[3] / "shared" / "reference" / "inference-published.csv"
)


def test_shipped_copy_matches_shared_reference() -> None:
    if not SHARED_CSV.exists():
        pytest.skip("shared/reference is not beside this checkout")
    shipped = (
        resources.files("superscale.validate")
        .joinpath("data/inference-published.csv")
        .read_text(encoding="utf-8")
    )
    assert shipped == SHARED_CSV.read_text(encoding="utf-8")


def test_throughput_error_within_20_percent() -> None:
    rows = compare_all()
    assert len(rows) == len(reference_rows())
    assert all(r.predicted is not None for r in rows), [r.skipped for r in rows if r.skipped]
    stats = summarize_errors(rows)
    assert stats["throughput"]["rows"] == 11
    assert stats["throughput"]["mean_abs_error_pct"] <= 20.0
    assert stats["latency"]["rows"] == 8
    assert stats["latency"]["mean_abs_error_pct"] <= 30.0
