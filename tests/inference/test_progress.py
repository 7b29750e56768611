"""Serving's progress callbacks: the simulator reports requests settled, validate rows."""

from __future__ import annotations

from pathlib import Path

from superscale import load_scenario
from superscale.inference.serve import serve

EXAMPLE = Path(__file__).parents[2] / "examples" / "serve-llama2-70b-h200.yaml"


def test_serve_reports_settled_requests_up_to_all_of_them() -> None:
    calls: list[tuple[int, int]] = []
    result = serve(load_scenario(EXAMPLE), progress=lambda d, t: calls.append((d, t)))
    assert result.metrics is not None
    total = calls[-1][1]
    assert calls[-1] == (total, total)  # the last call says every request settled
    assert total == result.metrics["requests"]
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) <= 201  # monotone, about 200 reports


def test_validate_inference_calls_back_once_per_row() -> None:
    from superscale.validate.inference import compare_all, reference_rows

    calls: list[tuple[int, int]] = []
    rows = compare_all(lambda d, t: calls.append((d, t)))
    n = len(reference_rows())
    assert len(rows) == n and calls == [(i, n) for i in range(1, n + 1)]
