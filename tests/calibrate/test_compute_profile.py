"""Predictions follow the measured profile, not wall-clock figures: half the matmul rate
gives slower compute, and a chip without a profile predicts exactly as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from superscale import load_scenario
from superscale.calibrate.check import apply_profile
from superscale.costs.compute import _time_s, attention_key_len, compute_time_s
from superscale.hardware.profile import parse_profile
from superscale.parallelism.plan import resolve
from superscale.pipeline import simulate
from superscale.program.ops import ComputeOp
from superscale.training.lower import lower

Make = Callable[..., dict[str, Any]]

SCENARIO: dict[str, Any] = {
    "model": {
        "name": "m",
        "layers": 4,
        "hidden": 2048,
        "heads": 16,
        "ffn_hidden": 5632,
        "vocab": 32000,
    },
    "cluster": {"system": "dgx-h100", "count": 1},
    "training": {"seq_len": 2048, "global_batch": 8},
    # a 4-layer model at tp 8 would wait on the host's launches, which no profile changes:
    # the whole step is captured, so the step follows the device's rates
    "parallel": {"tp": 8, "cuda_graphs": ["full_iteration"]},
}


def _ops(scenario: Any) -> list[ComputeOp]:
    program = lower(scenario, resolve(scenario))
    stage = program.stages[0]
    return [op for op in (*stage.forward, *stage.backward) if isinstance(op, ComputeOp)]


def test_no_profile_is_the_formula_exactly() -> None:
    scenario = load_scenario(SCENARIO)
    chip = scenario.cluster.chip
    for op in _ops(scenario):
        assert compute_time_s(op, chip, "bf16") == _time_s(op, chip, "bf16", None)


def test_half_the_matmul_rate_doubles_gemm_time(make_profile: Make) -> None:
    scenario = load_scenario(SCENARIO)
    fast = apply_profile(scenario, parse_profile(make_profile()))
    slow = apply_profile(scenario, parse_profile(make_profile(matmul_scale=0.5)))
    gemms = [op for op in _ops(scenario) if op.kind == "gemm"]
    assert gemms
    for op in gemms:
        t_fast = compute_time_s(op, fast.cluster.chip, "bf16")
        t_slow = compute_time_s(op, slow.cluster.chip, "bf16")
        assert t_fast < t_slow <= 2.0 * t_fast * (1 + 1e-12)
    assert simulate(slow).breakdown_s["compute"] > simulate(fast).breakdown_s["compute"]
    assert simulate(slow).step_time_s > simulate(fast).step_time_s


def test_memory_and_attention_tables_drive_their_ops(make_profile: Make) -> None:
    scenario = load_scenario(SCENARIO)
    base = apply_profile(scenario, parse_profile(make_profile()))
    slow_mem = apply_profile(scenario, parse_profile(make_profile(memory_scale=0.5)))
    slow_attn = apply_profile(scenario, parse_profile(make_profile(attention_scale=0.5)))
    for op in _ops(scenario):
        t = compute_time_s(op, base.cluster.chip, "bf16")
        if op.kind == "elementwise" and op.hbm_bytes:
            assert compute_time_s(op, slow_mem.cluster.chip, "bf16") == pytest.approx(2 * t)
        if op.kind == "attention":
            assert compute_time_s(op, slow_attn.cluster.chip, "bf16") == pytest.approx(2 * t)


def test_profile_changes_the_prediction_of_a_catalog_chip(make_profile: Make) -> None:
    scenario = load_scenario(SCENARIO)
    default = simulate(scenario).step_time_s
    profiled = simulate(apply_profile(scenario, parse_profile(make_profile()))).step_time_s
    assert profiled != default
    assert simulate(scenario).step_time_s == default  # the original scenario is untouched


def test_unmeasured_precision_falls_back_to_the_formula(make_profile: Make) -> None:
    scenario = load_scenario({**SCENARIO, "training": {**SCENARIO["training"], "precision": "fp8"}})
    profiled = apply_profile(scenario, parse_profile(make_profile()))
    chip, plain = profiled.cluster.chip, scenario.cluster.chip
    gemm = next(op for op in _ops(scenario) if op.kind == "gemm" and op.name == "qkv")
    assert compute_time_s(gemm, chip, "fp8") == _time_s(gemm, plain, "fp8", None)


@pytest.mark.parametrize("seq_len", [512, 2048, 8192])
def test_attention_key_length_is_recovered_from_lowered_ops(seq_len: int) -> None:
    scenario = load_scenario({**SCENARIO, "training": {"seq_len": seq_len, "global_batch": 8}})
    attention = [op for op in _ops(scenario) if op.kind == "attention"]
    assert len(attention) == 2  # forward and backward
    for op in attention:
        assert attention_key_len(op) == pytest.approx(seq_len)
