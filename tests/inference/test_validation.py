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


def _summary(profile: str | None) -> dict[str, dict[str, float]]:
    rows = compare_all(profile=profile)
    assert len(rows) == len(reference_rows())
    assert all(r.predicted is not None for r in rows), [r.skipped for r in rows if r.skipped]
    stats = summarize_errors(rows)
    assert stats["throughput"]["rows"] == 11
    assert stats["latency"]["rows"] == 8
    return stats


def test_throughput_error_with_the_catalog_rates() -> None:
    # Serving prices through the cost layer training uses (issue 13). MI300X fp8 GEMMs run
    # at the catalog's measured fp8 rate (Azure's hipBLASLt sweep, gemm.csv: 1,223 TFLOP/s,
    # 0.47 of peak); at the 0.75 default the MLPerf MI300X rows came out 70-80% high.
    # (14.4% and 9.7% at this writing: the target is 15%)
    stats = _summary(None)
    assert stats["throughput"]["mean_abs_error_pct"] <= 15.0
    assert stats["latency"]["mean_abs_error_pct"] <= 11.0


def test_throughput_error_within_11_percent_with_fitted_profiles() -> None:
    # every chip priced by the profile fitted to its component rows (cluster.profile);
    # 9.9% and 8.0% at this writing
    stats = _summary("fitted")
    assert stats["throughput"]["mean_abs_error_pct"] <= 11.0
    assert stats["latency"]["mean_abs_error_pct"] <= 9.0


def test_validate_inference_refuses_a_missing_profile_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from superscale.cli import main

    missing = tmp_path / "none.yaml"
    assert main(["validate", "--inference", "--profile", str(missing)]) == 2
    assert "none.yaml" in capsys.readouterr().err


def test_every_python_scheduler_pays_the_per_request_host_time() -> None:
    """The per-request host time is one value for every Python scheduler (SGLang v0.3,
    vLLM v0.6, the vLLM-based MLPerf SUT); TensorRT-LLM's C++ executor pays none."""
    from superscale.validate.inference import PYTHON_REQUEST_OVERHEAD_US, STACKS

    python = {name for name in STACKS if name.startswith(("SGLang", "vLLM"))}
    assert python == {"SGLang", "vLLM", "vLLM-based (PySUT)"}
    assert all(STACKS[n]["request_overhead_us"] == PYTHON_REQUEST_OVERHEAD_US for n in python)
    assert "request_overhead_us" not in STACKS["TensorRT-LLM"]


@pytest.mark.parametrize("system", ["H100", "H200", "B200", "MI300X"])
def test_mlperf_requests_average_what_each_submission_generated(system: str) -> None:
    # the drawn lengths, clipped to the dataset's 1,024-token cap, average the mean output
    # the submission's own log implies (tokens/s over samples/s) and the ~294-token input
    import numpy as np

    from superscale.inference.workload import sample_lengths
    from superscale.scenario.serving import LengthSpec
    from superscale.validate.inference import MLPERF_OUTPUT_TOKENS, openorca

    lengths = openorca(MLPERF_OUTPUT_TOKENS[system])
    rng = np.random.default_rng(7)
    outputs = sample_lengths(LengthSpec(**lengths["output_tokens"]), 200_000, rng)
    prompts = sample_lengths(LengthSpec(**lengths["prompt_tokens"]), 200_000, rng)
    assert outputs.max() <= 1024
    assert outputs.mean() == pytest.approx(MLPERF_OUTPUT_TOKENS[system], rel=0.01)
    assert prompts.mean() == pytest.approx(294, rel=0.01)


def test_mlperf_log_figures_cover_every_mlperf_row() -> None:
    from superscale.validate.inference import MLPERF_OUTPUT_TOKENS, MLPERF_QUERY_SAMPLES

    assert set(MLPERF_QUERY_SAMPLES) == set(MLPERF_OUTPUT_TOKENS)
    for row in reference_rows():
        if row["source_key"].startswith("mlperf"):
            assert sum(k in row["hardware"] for k in MLPERF_OUTPUT_TOKENS) == 1, row["hardware"]
