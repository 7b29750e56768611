"""NVFP4 training (`training.fp8_recipe: nvfp4`): transformer-layer GEMMs at the chip's fp4
peak, their quantize traffic by hand, and the refusal on chips without fp4."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.costs.compute import compute_time_s
from superscale.errors import SpecError
from superscale.hardware.catalog import chips
from superscale.parallelism import resolve
from superscale.pipeline import simulate
from superscale.program.ops import ComputeOp
from superscale.training.layer import FP8_CAST_BYTES
from superscale.training.lower import lower


def _scenario(recipe: str, system: str = "dgx-b200") -> dict[str, Any]:
    return {
        "model": "llama3-8b",
        "cluster": {"system": system, "count": 1},
        "training": {"seq_len": 4096, "global_batch": 8, "precision": "fp8", "fp8_recipe": recipe},
        "parallel": {"tp": 1},
    }


def test_cast_bytes_by_hand() -> None:
    """Per input element: amax read (2 B) for the per-tensor scale, read 2 B, write the
    E2M1 copy and its transpose (0.5 B each) with an E4M3 scale per 16 elements."""
    assert FP8_CAST_BYTES["nvfp4"] == pytest.approx(2 + 2 + 0.5 + 0.5 + 1 / 16 + 1 / 16)
    scenario = load_scenario(_scenario("nvfp4"))
    forward = lower(scenario, resolve(scenario)).stages[0].forward
    gemms = [op for op in forward if isinstance(op, ComputeOp) and op.kind == "gemm"]
    layer = [op for op in gemms if op.name in {"qkv", "mlp_up", "mlp_down", "attn_out"}]
    assert layer and all(op.low_dtype == "fp4" for op in layer)
    assert all(op.cast_bytes_per_input == pytest.approx(5.125) for op in layer)
    logits = next(op for op in gemms if op.name == "logits")
    assert logits.low_dtype == "fp8"  # priced in 16 bits as under every fp8 recipe


def test_gemm_runs_at_the_fp4_peak_plus_its_casts() -> None:
    """A large GEMM's time on B200 by hand: flops at fp4 peak · 0.75 (no measured fp4
    MAMF: the documented default) · shape factor · clock, plus its kernels' overheads;
    the cast bytes are hidden under the math at this size."""
    chip = chips().get("b200")
    m = n = k = 16384
    gemm = ComputeOp(
        name="mlp_up",
        kind="gemm",
        flops=2.0 * m * n * k,
        counted_flops=2.0 * m * n * k,
        hbm_bytes=2.0 * (m * k + k * n + m * n),
        shape=(m, n, k),
        cast_bytes_per_input=FP8_CAST_BYTES["nvfp4"],
        low_dtype="fp4",
    )
    eff = chip.efficiency
    half = eff.matmul_half_dim
    shape = ((16384 / (16384 + half)) / (8192 / (8192 + half))) ** 3
    flops_s = 2.0 * m * n * k / (9000e12 * 0.75 * min(1.0, shape) * eff.sustained_clock_fraction)
    hbm = chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction
    mem_s = (2.0 * (m * k + k * n + m * n) + 5.125 * m * k) / hbm
    expected = max(flops_s, mem_s) + 3 * eff.kernel_overhead_us * 1e-6
    assert compute_time_s(gemm, chip, "fp8") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_nvfp4_is_faster_than_mxfp8_on_b200(engine: str) -> None:
    mx = simulate(load_scenario(_scenario("mxfp8")), engine=engine)
    fp4 = simulate(load_scenario(_scenario("nvfp4")), engine=engine)
    assert fp4.step_time_s < mx.step_time_s
    # only GEMMs speed up (attention, elementwise, logits stay): well short of 2×
    assert mx.step_time_s / fp4.step_time_s < 2.0
    assert fp4.breakdown_s["compute"] < mx.breakdown_s["compute"]


def test_refused_on_a_chip_without_fp4() -> None:
    with pytest.raises(SpecError, match="nvfp4' needs a chip with fp4 tensor cores"):
        load_scenario(_scenario("nvfp4", system="dgx-h100"))
