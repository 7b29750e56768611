"""Expert dispatch and combine: token copies on the network, by hand and in the lowering."""

from __future__ import annotations

from math import comb
from typing import Any

import pytest

from superscale import load_scenario
from superscale.costs.dispatch import expected_nodes_per_token, remote_copies_per_token
from superscale.models.catalog import models
from superscale.parallelism import resolve
from superscale.pipeline import simulate
from superscale.program.ops import CommOp
from superscale.training.lower import lower


def _deepseek(dispatch: str, *, system: str = "hgx-h800", count: int = 16) -> dict[str, Any]:
    return {
        "model": "deepseek-v3",
        "cluster": {"system": system, "count": count},
        "training": {"seq_len": 4096, "global_batch": 256, "precision": "fp8"},
        "parallel": {"pp": 2, "ep": 64, "ep_dispatch": dispatch, "recompute": "full"},
    }


def test_node_limited_routing_by_hand() -> None:
    moe = models().get("deepseek-v3").moe
    assert moe is not None and moe.max_nodes_per_token == 4
    # 256 experts on 8 nodes, 32 each; a token's 8 experts among the 128 of its 4 nodes
    hit = 1 - comb(128 - 32, 8) / comb(128, 8)
    assert expected_nodes_per_token(moe, 8) == pytest.approx(4 * hit)
    # a GPU sends one fp8 copy per remote node reached: 7/8 of the nodes are remote
    per_token = remote_copies_per_token(moe, 8, dedup=True) * 7168 * 1
    assert per_token == pytest.approx(4 * hit * 7 / 8 * 7168)
    assert remote_copies_per_token(moe, 8, dedup=False) == pytest.approx(8 * 7 / 8)


def test_lowered_dispatch_bytes_match_the_hand_computation() -> None:
    scenario = load_scenario(_deepseek("deepep"))
    program = lower(scenario, resolve(scenario))
    ops = {op.name: op for op in program.stages[0].forward if isinstance(op, CommOp)}
    dispatch, combine = ops["moe_dispatch"], ops["moe_combine"]
    hit = 1 - comb(96, 8) / comb(128, 8)
    copies = 4096 * 4 * hit  # tokens of a micro-batch times nodes reached
    assert dispatch.payload_bytes == pytest.approx(copies * 7168 * 1)  # fp8 dispatch
    assert combine.payload_bytes == pytest.approx(copies * 7168 * 2)  # bf16 combine


def test_deduplication_lowers_expert_traffic() -> None:
    plain = simulate(load_scenario(_deepseek("all_to_all"))).to_json()
    dedup = simulate(load_scenario(_deepseek("deepep"))).to_json()
    assert dedup["breakdown_s"]["ep_comm"] < 0.6 * plain["breakdown_s"]["ep_comm"]


def test_whole_ep_scale_up_domain_beats_servers_of_the_same_chips() -> None:
    def run(system: str, count: int) -> dict[str, Any]:
        data = {
            "model": "qwen3-235b-a22b",
            "cluster": {"system": system, "count": count},
            "training": {"seq_len": 4096, "global_batch": 512},
            "parallel": {"tp": 4, "pp": 4, "ep": 32, "recompute": "full", "zero": 1},
        }
        return simulate(load_scenario(data)).to_json()

    cube = run("metax-cube-128", 1)  # EP 32 on one MetaXLink switch
    servers = run("metax-c550-8x", 16)  # the same 128 C550 as 8-GPU servers over RoCE
    assert cube["breakdown_s"]["ep_comm"] < servers["breakdown_s"]["ep_comm"] / 3
    assert cube["step_time_s"] < servers["step_time_s"]


def test_expert_imbalance_raises_expert_time_and_traffic() -> None:
    def run(imbalance: float) -> dict[str, Any]:
        data = _deepseek("deepep")
        data["parallel"]["expert_imbalance"] = imbalance
        return simulate(load_scenario(data)).to_json()

    balanced, skewed = run(1.0), run(1.3)
    assert skewed["breakdown_s"]["compute"] > balanced["breakdown_s"]["compute"]
    assert skewed["breakdown_s"]["ep_comm"] == pytest.approx(
        1.3 * balanced["breakdown_s"]["ep_comm"], rel=0.05
    )
    assert skewed["memory"]["activations_gib"] > balanced["memory"]["activations_gib"]


def test_redundant_experts_take_memory_and_must_tile_the_ep_group() -> None:
    from superscale.errors import SpecError

    def memory(redundant: int) -> dict[str, Any]:
        data = _deepseek("deepep")
        data["parallel"]["redundant_experts"] = redundant
        return simulate(load_scenario(data)).to_json()["memory"]

    base, eplb = memory(0), memory(64)  # 256 + 64 experts over ep 64: 5 per GPU, not 4
    assert eplb["params_gib"] > base["params_gib"]
    data = _deepseek("deepep")
    data["parallel"]["redundant_experts"] = 32  # 288 slots do not tile 64 ranks
    with pytest.raises(SpecError, match="must divide the 256 experts plus 32 redundant"):
        load_scenario(data)


def test_dispatch_preparation_is_the_median_of_hybrid_ep_api_minus_kernel_time() -> None:
    import statistics

    from superscale.calibrate.components import component_rows
    from superscale.costs.dispatch import DISPATCH_PREPARATION_S
    from superscale.validate.components import kernel_only_gbps

    gaps = []
    for row in component_rows("moe_dispatch"):
        kernel_gbps = kernel_only_gbps(row["notes"])
        if kernel_gbps is None:
            continue
        ep = int(row["ep_size"])
        dtype = row["dispatch_dtype"] if row["op"] == "dispatch" else row["combine_dtype"]
        size = {"fp8": 1, "bf16": 2}[dtype]
        nbytes = int(row["tokens_per_rank"]) * int(row["topk"]) * int(row["hidden"]) * size
        nbytes *= (ep - 1) / ep
        api_s = nbytes / (float(row["bandwidth_GBps"]) * 1e9)
        gaps.append(api_s - nbytes / (kernel_gbps * 1e9))
    assert len(gaps) == 33
    assert all(gap > 0 for gap in gaps)  # every torch-API call is slower than its kernels
    assert statistics.median(gaps) == pytest.approx(DISPATCH_PREPARATION_S, abs=5e-6)


def test_deepep_calls_pay_their_preparation_and_all_to_all_does_not() -> None:
    from superscale.costs.dispatch import DISPATCH_PREPARATION_S

    def dispatch_ops(dispatch: str) -> list[CommOp]:
        scenario = load_scenario(_deepseek(dispatch))
        program = lower(scenario, resolve(scenario))
        ops = [*program.stages[0].forward, *program.stages[0].backward]
        return [op for op in ops if isinstance(op, CommOp) and op.group == "ep"]

    deepep, plain = dispatch_ops("deepep"), dispatch_ops("all_to_all")
    assert deepep and plain
    assert all(op.setup_s == DISPATCH_PREPARATION_S for op in deepep)  # forward and backward
    assert all(op.setup_s == 0.0 for op in plain)


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_preparation_adds_its_time_per_call_in_both_engines(engine: str) -> None:
    from dataclasses import replace

    from superscale.costs.dispatch import DISPATCH_PREPARATION_S
    from superscale.simulate.analytical import estimate_step
    from superscale.simulate.event import simulate_events

    scenario = load_scenario(_deepseek("deepep"))
    plan = resolve(scenario)
    program = lower(scenario, plan)

    def bare_stages(stages: Any) -> tuple[Any, ...]:
        return tuple(
            replace(
                stage,
                forward=tuple(_without_setup(op) for op in stage.forward),
                backward=tuple(_without_setup(op) for op in stage.backward),
            )
            for stage in stages
        )

    bare = replace(
        program, stages=bare_stages(program.stages), virtual=bare_stages(program.virtual)
    )
    cluster, precision = scenario.cluster, "fp8"

    def ep_s(prog: Any) -> float:
        if engine == "analytical":
            step = estimate_step(prog, plan, cluster, precision)
        else:
            step = simulate_events(prog, plan, cluster, precision, record=False).step
        return float(step.breakdown_s["ep_comm"])

    calls = max(  # the busiest stage's (it holds the most MoE layers)
        sum(
            op.repeat
            for op in (*stage.forward, *stage.backward)
            if isinstance(op, CommOp) and op.group == "ep"
        )
        for stage in program.stages
    )
    expected = program.micro_batches * calls * DISPATCH_PREPARATION_S  # blocking all-to-all
    with_setup, without = ep_s(program), ep_s(bare)
    assert with_setup - without == pytest.approx(expected, rel=1e-6)


def _without_setup(op: Any) -> Any:
    from dataclasses import replace

    return replace(op, setup_s=0.0) if isinstance(op, CommOp) else op
