"""FSDP2 as TorchTitan runs it (`parallel.fsdp`): the collectives each variant lowers to,
its memory, and its time in both engines, checked by hand."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.errors import SpecError
from superscale.parallelism import resolve
from superscale.parallelism.plan import recipe_words
from superscale.pipeline import simulate
from superscale.program.ops import CommOp
from superscale.scenario import Scenario
from superscale.training.lower import lower
from superscale.training.memory import estimate_memory


def _scenario(model: str = "llama3-8b", **parallel: Any) -> Scenario:
    """64 H100s (8 servers), one stage, one micro-batch per replica."""
    return load_scenario(
        {
            "model": model,
            "cluster": {"system": "dgx-h100", "count": 8},
            "training": {"seq_len": 4096, "global_batch": 64},
            "parallel": {"tp": 1, "pp": 1, **parallel},
        }
    )


def _comms(ops: Any, collective: str) -> list[CommOp]:
    return [op for op in ops if isinstance(op, CommOp) and op.collective == collective]


def test_fsdp_means_zero3_and_refuses_another_stage() -> None:
    assert _scenario(fsdp={}).parallel.zero == 3
    with pytest.raises(SpecError, match=r"parallel\.fsdp is full sharding"):
        _scenario(fsdp={}, zero=1)
    with pytest.raises(SpecError, match=r"shard_group \(5\) must divide dp·cp = 64"):
        _scenario(fsdp={"shard_group": 5})
    with pytest.raises(SpecError, match="must be a multiple of ep"):
        _scenario("qwen3-30b-a3b", ep=8, fsdp={"shard_group": 4})


def test_reshard_after_forward_gathers_twice_per_micro_batch() -> None:
    """FSDP2's default: 2 all-gathers of the 16-bit weights and 1 reduce-scatter of the
    gradients per layer per step; without resharding, 1 and 1."""
    for reshard, gathers in ((True, 2), (False, 1)):
        scenario = _scenario(fsdp={"reshard_after_forward": reshard})
        stage = lower(scenario, resolve(scenario)).stages[0]
        weights = scenario.model.params  # one stage, tp 1: every parameter
        assert stage.dense_params == pytest.approx(weights)
        passes = list(stage.forward) + list(stage.backward)
        assert sum(op.payload_bytes for op in _comms(passes, "all_gather")) == pytest.approx(
            gathers * 2 * weights
        )
        (scatter,) = _comms(stage.step, "reduce_scatter")
        assert scatter.payload_bytes == pytest.approx(4 * weights)  # fp32 gradients (default)
        assert not _comms(stage.step, "all_gather")  # ZeRO-3: no step gather


def test_hsdp_reduces_inside_the_shard_group_and_all_reduces_its_shard() -> None:
    scenario = _scenario(fsdp={"shard_group": 8})
    plan = resolve(scenario)
    assert (plan.dp_shard, plan.replicas) == (8, 8)
    replicas = plan.groups["dpr"]
    assert (replicas.size, replicas.stride, replicas.level) == (8, 8, "scale-out")
    stage = lower(scenario, plan).stages[0]
    (reduce,) = _comms(stage.step, "all_reduce")
    assert reduce.group == "dpr"
    assert reduce.payload_bytes == pytest.approx(4 * scenario.model.params / 8)  # fp32
    assert "FSDP2 HSDP: shard over 8, 8 replicas, reshard after forward, prefetch 1" in (
        recipe_words(scenario, plan)
    )


def test_memory_holds_prefetch_plus_one_gathered_layers() -> None:
    model = _scenario().model
    weights = model.params
    layer = model.attention_params + model.dense_mlp_params  # one llama layer, tp 1
    cases = [  # (fsdp, params bytes, grads bytes) by hand
        ({}, 2 * weights / 64 + 2 * 2 * layer, 4 * weights / 64),
        ({"prefetch": 3}, 2 * weights / 64 + 4 * 2 * layer, 4 * weights / 64),
        ({"reshard_after_forward": False}, 2 * weights / 64 + 2 * weights, 4 * weights / 64),
        ({"shard_group": 8}, 2 * weights / 8 + 2 * 2 * layer, 4 * weights / 8),
    ]
    for fsdp, params, grads in cases:
        scenario = _scenario(fsdp=fsdp)
        plan = resolve(scenario)
        memory = estimate_memory(scenario, plan, lower(scenario, plan))
        assert memory.params_bytes == pytest.approx(params), fsdp
        assert memory.grads_bytes == pytest.approx(grads), fsdp


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_each_word_moves_time_and_memory_the_right_way(engine: str) -> None:
    def run(**fsdp: Any) -> Any:
        return simulate(_scenario(fsdp=fsdp), engine=engine)

    default, kept, waiting = run(), run(reshard_after_forward=False), run(prefetch=0)
    # keeping the weights drops the backward gather and holds the stage's weights
    assert kept.step_time_s < default.step_time_s
    assert kept.memory.peak_bytes > default.memory.peak_bytes
    # without prefetch each gather waits in the open
    assert waiting.step_time_s > default.step_time_s
    assert waiting.breakdown_s["dp_comm"] > default.breakdown_s["dp_comm"]
    assert waiting.memory.params_bytes < default.memory.params_bytes
    # HSDP: an 8-GPU shard group inside the server, replicas across: more memory
    hybrid = run(shard_group=8)
    assert hybrid.memory.peak_bytes > default.memory.peak_bytes


def test_hsdp_gathers_stay_inside_the_server() -> None:
    """The shard group's gathers use NVLink, not the NICs: the forward's raw weight gather
    is faster than over all 64 GPUs."""
    from superscale.collectives.tuner import CommModel
    from superscale.simulate.analytical import pass_sums

    times = []
    for fsdp in ({}, {"shard_group": 8}):
        scenario = _scenario(fsdp=fsdp)
        plan = resolve(scenario)
        stage = lower(scenario, plan).stages[0]
        gathers = _comms(stage.forward, "all_gather")
        sums = pass_sums(gathers, plan, CommModel(scenario.cluster), "bf16")
        times.append(sums.comm_s["dp"])
    assert times[1] < times[0]


VARIANTS = [
    ("llama3-8b", {"tp": 1, "pp": 1}, {}),
    ("llama3-8b", {"tp": 1, "pp": 1}, {"reshard_after_forward": False}),
    ("llama3-8b", {"tp": 1, "pp": 1}, {"prefetch": 0}),
    ("llama3-8b", {"tp": 1, "pp": 2}, {"prefetch": 0}),
    ("llama3-8b", {"tp": 1, "pp": 1}, {"shard_group": 8}),
    ("llama3-8b", {"tp": 2, "pp": 2}, {"shard_group": 4, "reshard_after_forward": False}),
    ("qwen3-30b-a3b", {"tp": 2, "pp": 2, "ep": 4}, {"shard_group": 8}),
]


@pytest.mark.parametrize(("model", "parallel", "fsdp"), VARIANTS)
def test_engines_agree_on_fsdp(
    model: str, parallel: dict[str, Any], fsdp: Any, engines_agree: Any
) -> None:
    scenario = load_scenario(
        {
            "model": model,
            "cluster": {"system": "dgx-h100", "count": 8},
            "training": {"seq_len": 4096, "global_batch": 128},
            "parallel": {**parallel, "fsdp": fsdp},
        }
    )
    analytical, event = engines_agree(scenario)
    assert event["memory"] == analytical["memory"]


def test_search_keeps_fsdp_words_and_prices_them_as_simulate_does() -> None:
    from superscale.hardware.catalog import systems
    from superscale.hardware.spec import Cluster
    from superscale.search.evaluate import evaluate_batch, evaluate_one
    from superscale.search.space import enumerate_plans

    base = {
        "model": "llama3-8b",
        "cluster": "dgx-h100",
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {"fsdp": {"reshard_after_forward": False, "prefetch": 0}},
    }
    cluster = Cluster(system=systems().get("dgx-h100"), count=2)
    space = enumerate_plans(base, clusters=[cluster])
    (table,) = space.tables
    assert set(table.values("zero").tolist()) == {3}  # FSDP2 is full sharding
    batch = evaluate_batch(space.candidates, prune_memory=False)
    for i in range(0, len(table), len(table) // 12):
        scalar = evaluate_one(table.candidate(i))
        assert scalar["error"] is None, scalar["error"]
        assert batch[i]["step_time_s"] == pytest.approx(scalar["step_time_s"], rel=1e-9)
        assert batch[i]["peak_gib_per_gpu"] == pytest.approx(scalar["peak_gib_per_gpu"], rel=1e-9)
    # HSDP is searched with its shard group kept (tests/search/test_hsdp.py)
    hsdp = enumerate_plans({**base, "parallel": {"fsdp": {"shard_group": 8}}}, clusters=[cluster])
    assert {c["parallel"]["fsdp"]["shard_group"] for c in hsdp.candidates} == {8}
