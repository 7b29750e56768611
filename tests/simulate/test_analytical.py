"""Analytical engine: pipeline bubble, overlap and communication properties."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superscale import load_scenario
from superscale.collectives import CommModel
from superscale.hardware.catalog import clusters
from superscale.parallelism import place_group, resolve
from superscale.pipeline import simulate
from superscale.program.ops import ComputeOp
from superscale.simulate.analytical import estimate_step
from superscale.training.lower import Program, StageProgram


def _uniform_program(stages: int, micro_batches: int) -> Program:
    op = ComputeOp(
        name="work", kind="gemm", flops=1e12, counted_flops=1e12, shape=(8192, 8192, 8192)
    )
    stage_programs = tuple(
        StageProgram(
            index=i,
            layers=1,
            moe_layers=0,
            forward=(op,),
            backward=(op.backward(),),
            step=(),
            dense_params=0.0,
            expert_params=0.0,
        )
        for i in range(stages)
    )
    return Program(
        stages=stage_programs,
        virtual=stage_programs,
        micro_batches=micro_batches,
        tokens_per_step=1,
    )


def _plan(pp: int, m: int, v: int = 1) -> Any:
    scenario = load_scenario(
        {
            "model": "gpt-1t",
            "cluster": {"system": "dgx-h100", "count": pp},
            "training": {"seq_len": 2048, "global_batch": m},
            "parallel": {
                "tp": 8,
                "pp": pp,
                "virtual_stages": v,
                "schedule": "interleaved" if v > 1 else "1f1b",
            },
        }
    )
    return scenario, resolve(scenario)


@pytest.mark.parametrize(("p", "m"), [(4, 8), (8, 32), (16, 16)])
def test_1f1b_bubble_fraction(p: int, m: int) -> None:
    scenario, plan = _plan(p, m)
    step = estimate_step(_uniform_program(p, m), plan, scenario.cluster, "bf16")
    bubble = step.breakdown_s["pp_bubble"] / step.step_time_s
    assert bubble == pytest.approx((p - 1) / (m + p - 1), rel=1e-9)


def test_interleaving_divides_the_bubble_by_v() -> None:
    scenario, plan1 = _plan(8, 32)
    _, plan4 = _plan(8, 32, v=4)
    one = estimate_step(_uniform_program(8, 32), plan1, scenario.cluster, "bf16")
    four = estimate_step(_uniform_program(8, 32), plan4, scenario.cluster, "bf16")
    assert four.breakdown_s["pp_bubble"] == pytest.approx(one.breakdown_s["pp_bubble"] / 4)


def test_breakdown_adds_up_to_step_time() -> None:
    result = simulate(
        load_scenario(
            {
                "model": "llama3-70b",
                "cluster": "h100-16k",
                "training": {"seq_len": 8192, "global_batch": 2048},
                "parallel": {"tp": 8, "pp": 4, "zero": 1, "dp_comm_overlap": False},
            }
        )
    )
    b = result.breakdown_s
    parts = sum(v for k, v in b.items() if k != "exposed_comm")
    assert parts == pytest.approx(result.step_time_s, rel=1e-9)
    assert b["dp_comm"] > 0  # not overlapped: gradient sync shows


def test_dp_overlap_hides_gradient_sync() -> None:
    base = {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 4},
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {"tp": 1},
    }
    exposed = simulate(load_scenario({**base, "parallel": {"dp_comm_overlap": False}}))
    hidden = simulate(load_scenario({**base, "parallel": {"dp_comm_overlap": True}}))
    assert hidden.breakdown_s["dp_comm"] < exposed.breakdown_s["dp_comm"]


def test_tp_across_servers_is_slower_than_inside() -> None:
    base = {
        "model": "llama3-70b",
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {"tp": 8},
    }
    inside = simulate(load_scenario({**base, "cluster": {"system": "dgx-h100", "count": 2}}))
    across = simulate(load_scenario({**base, "cluster": {"system": "metax-c500-8x", "count": 2}}))
    assert inside.breakdown_s["tp_comm"] < across.breakdown_s["tp_comm"]


@settings(max_examples=40, deadline=None)
@given(
    small=st.floats(1e3, 1e9),
    factor=st.floats(1.01, 100),
    collective=st.sampled_from(
        ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"]
    ),
    size=st.sampled_from([2, 8, 64, 1024]),
)
def test_collective_time_is_monotone_in_bytes(
    small: float, factor: float, collective: str, size: int
) -> None:
    model = _comm_model()
    group = place_group("dp", size, 8, model.cluster)
    t1 = model.time_s(collective, small, group)
    t2 = model.time_s(collective, small * factor, group)
    assert t2 > t1 > 0


@cache
def _comm_model() -> CommModel:
    """One routed model of the 16k cluster for every example (routes are cached in it)."""
    return CommModel(clusters().get("h100-16k"))


@pytest.mark.parametrize(
    ("model", "parallel"),
    [
        ("llama3-70b", {"tp": 8, "pp": 4, "zero": 1, "dp_comm_overlap": True}),
        ("llama3-70b", {"tp": 4, "pp": 8, "zero": 0, "dp_comm_overlap": False}),
        ("qwen3-235b-a22b", {"tp": 4, "pp": 8, "ep": 8, "zero": 1, "schedule": "dualpipe"}),
    ],
)
def test_distinct_stages_price_like_every_stage(model: str, parallel: dict[str, Any]) -> None:
    """Pricing the first stage of each signature (and counting its twins) gives the step and
    peak memory that pricing every stage on its own gives."""
    from dataclasses import replace

    from superscale.training.lower import lower
    from superscale.training.memory import estimate_memory

    scenario = load_scenario(
        {
            "model": model,
            "cluster": {"system": "dgx-h100", "count": 32},
            "training": {"seq_len": 4096, "global_batch": 256},
            "parallel": {"micro_batch": 1, **parallel},
        }
    )
    plan = resolve(scenario)
    program = lower(scenario, plan)
    assert len(program.distinct_stages()) < len(program.stages)  # twins exist
    unsigned = replace(
        program,
        stages=tuple(replace(s, signature=(0, 0, False, False)) for s in program.stages),
    )
    assert len(unsigned.distinct_stages()) == len(program.stages)
    precision = scenario.require_training().precision
    fast = estimate_step(program, plan, scenario.cluster, precision)
    every = estimate_step(unsigned, plan, scenario.cluster, precision)
    assert fast.step_time_s == pytest.approx(every.step_time_s, rel=1e-12)
    # twins are interchangeable: the critical stage is one of the same layer mix and place
    assert program.stages[fast.critical_stage].key == program.stages[every.critical_stage].key
    for key, value in every.breakdown_s.items():
        assert fast.breakdown_s[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert fast.model_flops_per_gpu == pytest.approx(every.model_flops_per_gpu, rel=1e-12)
    memory, memory_every = (estimate_memory(scenario, plan, p) for p in (program, unsigned))
    assert memory.peak_bytes == pytest.approx(memory_every.peak_bytes, rel=1e-12)
    assert memory.stage == memory_every.stage
