"""The event engine: schedules, overlap, link sharing, symmetry and agreement with the
analytical engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from superscale import load_scenario
from superscale.parallelism import resolve
from superscale.program.ops import ComputeOp
from superscale.simulate.analytical import estimate_step
from superscale.simulate.event import simulate_events
from superscale.simulate.kernel import Environment, FluidLink
from superscale.simulate.trace import chrome_trace
from superscale.training.lower import Program, StageProgram, lower


def _plan(pp: int, m: int, *, v: int = 1, schedule: str = "1f1b") -> tuple[Any, Any]:
    scenario = load_scenario(
        {
            "model": "gpt-1t",
            "cluster": {"system": "dgx-h100", "count": pp},
            "training": {"seq_len": 2048, "global_batch": m},
            "parallel": {"tp": 8, "pp": pp, "virtual_stages": v, "schedule": schedule},
        }
    )
    return scenario, resolve(scenario)


def _uniform(p: int, m: int, v: int = 1) -> Program:
    """p·v identical chunks of pure GEMM work, nothing else."""
    op = ComputeOp(
        name="work", kind="gemm", flops=1e12 / v, counted_flops=1e12 / v, shape=(8192, 8192, 8192)
    )

    def stage(i: int, scale: int) -> StageProgram:
        work = op.times(scale)
        return StageProgram(
            index=i,
            layers=scale,
            moe_layers=0,
            forward=(work,),
            backward=(work.backward(),),
            step=(),
            dense_params=0.0,
            expert_params=0.0,
        )

    return Program(
        stages=tuple(stage(i, v) for i in range(p)),
        virtual=tuple(stage(k, 1) for k in range(p * v)),
        micro_batches=m,
        tokens_per_step=1,
    )


@pytest.mark.parametrize(("p", "m"), [(4, 8), (8, 16), (4, 4)])
def test_1f1b_bubble_fraction(p: int, m: int) -> None:
    scenario, plan = _plan(p, m)
    t = simulate_events(_uniform(p, m), plan, scenario.cluster, "bf16", record=False)
    bubble = t.step.breakdown_s["pp_bubble"] / t.step.step_time_s
    assert bubble == pytest.approx((p - 1) / (m + p - 1), rel=1e-6)


def test_interleaving_divides_the_bubble_by_v() -> None:
    s1, plan1 = _plan(4, 16)
    s2, plan2 = _plan(4, 16, v=2, schedule="interleaved")
    one = simulate_events(_uniform(4, 16), plan1, s1.cluster, "bf16", record=False)
    two = simulate_events(_uniform(4, 16, v=2), plan2, s2.cluster, "bf16", record=False)
    # exact but for one extra kernel launch per chunk (4 µs against ~3.5 ms of work)
    assert two.step.breakdown_s["pp_bubble"] == pytest.approx(
        one.step.breakdown_s["pp_bubble"] / 2, rel=0.005
    )


def test_zero_bubble_h1_beats_1f1b() -> None:
    s1, plan1 = _plan(4, 8)
    s2, plan2 = _plan(4, 8, schedule="zb-h1")
    base = simulate_events(_uniform(4, 8), plan1, s1.cluster, "bf16", record=False)
    zb = simulate_events(_uniform(4, 8), plan2, s2.cluster, "bf16", record=False)
    assert zb.step.step_time_s < base.step.step_time_s
    assert zb.step.breakdown_s["pp_bubble"] < 0.7 * base.step.breakdown_s["pp_bubble"]


def _moe(schedule: str) -> float:
    scenario = load_scenario(
        {
            "model": "qwen3-235b-a22b",
            "cluster": {"system": "dgx-h100", "count": 16},
            "training": {"seq_len": 4096, "global_batch": 256},
            "parallel": {
                "tp": 1,
                "pp": 4,
                "ep": 16,
                "schedule": schedule,
                "recompute": "full",
                "zero": 1,
            },
        }
    )
    plan = resolve(scenario)
    assert plan.groups["ep"].level == "scale-out"  # the all-to-all crosses servers
    return simulate_events(
        lower(scenario, plan), plan, scenario.cluster, "bf16", record=False
    ).step.step_time_s


def test_dualpipe_beats_1f1b_on_moe_with_expert_all_to_all() -> None:
    assert _moe("dualpipe") < _moe("1f1b")


def test_two_transfers_sharing_a_link_get_half_each() -> None:
    env = Environment()
    link = FluidLink(env=env, name="nic")
    finish: dict[str, float] = {}

    def start(name: str, work: float, at: float) -> None:
        def proc():  # type: ignore[no-untyped-def]
            yield env.timeout(at)
            yield link.transfer(work, name)
            finish[name] = env.now

        env.process(proc())

    start("a", 1.0, 0.0)
    start("b", 2.0, 0.0)
    start("c", 1.0, 10.0)  # alone later: full rate
    env.run()
    assert finish["a"] == pytest.approx(2.0)  # half rate while b runs
    assert finish["b"] == pytest.approx(3.0)  # half rate for 2 s, then alone
    assert finish["c"] == pytest.approx(11.0)


NO_OVERLAP = [
    {
        "model": "llama3-70b",
        "cluster": {"system": "dgx-h100", "count": 8},
        "training": {"seq_len": 8192, "global_batch": 128},
        "parallel": {"tp": 8, "pp": 4, "recompute": "selective"},
    },
    {
        "model": "gpt3-175b",
        "cluster": {"system": "dgx-a100", "count": 8},
        "training": {"seq_len": 2048, "global_batch": 64, "precision": "fp16", "dropout": True},
        "parallel": {
            "tp": 8,
            "pp": 8,
            "recompute": "full",
            "flash_attention": False,
            "sequence_parallel": False,
            "zero": 0,
        },
    },
    {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 4},
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {"tp": 2, "pp": 2},
    },
]


@pytest.mark.parametrize("spec", NO_OVERLAP, ids=lambda s: s["model"])
def test_agrees_with_analytical_without_overlap(spec: dict[str, Any]) -> None:
    spec = {
        **spec,
        "parallel": {**spec["parallel"], "tp_comm_overlap": False, "dp_comm_overlap": False},
    }
    scenario = load_scenario(spec)
    plan = resolve(scenario)
    program = lower(scenario, plan)
    precision = scenario.require_training().precision
    analytical = estimate_step(program, plan, scenario.cluster, precision).step_time_s
    event = simulate_events(
        program, plan, scenario.cluster, precision, record=False
    ).step.step_time_s
    assert event == pytest.approx(analytical, rel=0.03)


def test_full_rank_mode_matches_one_rank_per_stage() -> None:
    scenario = load_scenario(
        {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-h100", "count": 2},
            "training": {"seq_len": 4096, "global_batch": 32},
            "parallel": {"tp": 2, "pp": 2, "tp_comm_overlap": True},
        }
    )
    plan = resolve(scenario)
    program = lower(scenario, plan)
    stage = simulate_events(program, plan, scenario.cluster, "bf16", record=False)
    every = simulate_events(program, plan, scenario.cluster, "bf16", ranks="all", record=False)
    assert every.ranks == 16 and stage.ranks == 2
    assert every.step.step_time_s == pytest.approx(stage.step.step_time_s, rel=1e-9)
    for key, value in stage.step.breakdown_s.items():
        assert every.step.breakdown_s[key] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_breakdown_adds_up_and_runs_are_deterministic() -> None:
    scenario = load_scenario(
        {**NO_OVERLAP[0], "parallel": {"tp": 8, "pp": 4, "tp_comm_overlap": True}}
    )
    plan = resolve(scenario)
    program = lower(scenario, plan)
    a = simulate_events(program, plan, scenario.cluster, "bf16")
    b = simulate_events(program, plan, scenario.cluster, "bf16")
    assert a.step.step_time_s == b.step.step_time_s and a.spans == b.spans
    parts = sum(v for k, v in a.step.breakdown_s.items() if k != "exposed_comm")
    assert parts == pytest.approx(a.step.step_time_s, rel=1e-9)


def test_chrome_trace_format(tmp_path: Path) -> None:
    scenario = load_scenario(
        {**NO_OVERLAP[2], "parallel": {"tp": 2, "pp": 2, "tp_comm_overlap": True}}
    )
    plan = resolve(scenario)
    timeline = simulate_events(lower(scenario, plan), plan, scenario.cluster, "bf16")
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(chrome_trace(timeline)))
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    step_us = timeline.step.step_time_s * 1e6
    slices = [e for e in events if e["ph"] == "X"]
    assert slices
    last: dict[tuple[int, int], float] = {}
    for e in slices:
        assert {"name", "ph", "ts", "dur", "pid", "tid", "args"} <= set(e)
        assert e["dur"] >= 0 and e["ts"] >= -1e-6 and e["ts"] + e["dur"] <= step_us * (1 + 1e-9)
        track = (e["pid"], e["tid"])
        assert e["ts"] >= last.get(track, 0.0) - 1e-9  # monotonic per track
        assert e["ts"] + 1e-6 >= last.get(track, 0.0)
        last[track] = e["ts"] + e["dur"]  # no overlap on a track
    named = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in slices} <= named
    starts = {e["id"] for e in events if e["ph"] == "s"}
    finishes = {e["id"] for e in events if e["ph"] == "f"}
    assert starts and finishes <= starts  # every arrow ends at a send that began
    assert any(e["args"]["flops"] > 0 for e in slices)


def test_a_collective_pays_its_pipeline_fill_as_latency_not_link_work() -> None:
    """The event engine charges the whole `LinearCost.time_s` (the analytical engine's
    time), with the chunk pipeline's fill beside the fixed latency: only per_byte·S
    occupies the link, so sharing it does not stretch the fill."""
    from superscale.collectives import CommModel
    from superscale.program.ops import CommOp
    from superscale.simulate.event import _Pricer

    scenario, plan = _plan(2, 4)
    comm = CommModel(scenario.cluster)
    pricer = _Pricer(plan, comm, "bf16", schedule="1f1b")
    op = CommOp(name="ar", group="tp", collective="all_reduce", payload_bytes=64 * 2**20)
    fixed, work, _ = pricer.comm_parts(op.times(3))
    group = plan.groups["tp"]
    table = comm.costs("all_reduce", group.size, group.stride)
    best = min(table.values(), key=lambda c: c.time_s(op.payload_bytes))
    assert best.fill_s(op.payload_bytes) > 0.1 * best.fixed_s  # a mid-size message
    assert fixed + work == pytest.approx(3 * comm.time_s("all_reduce", op.payload_bytes, group))
    assert work == pytest.approx(3 * best.per_byte_s * op.payload_bytes)
