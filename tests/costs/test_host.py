"""Host time: launches counted by hand, CUDA-graph scopes, and the stall in both engines."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.collectives.tuner import CommModel
from superscale.costs.host import HOST_LAUNCH_S, eager, pass_host_s
from superscale.errors import SpecError
from superscale.parallelism import resolve
from superscale.pipeline import simulate
from superscale.program.ops import CommOp, ComputeOp
from superscale.simulate.analytical import pass_sums
from superscale.training.lower import lower


def _moe(micro_batch: int = 1, **parallel: Any) -> dict[str, Any]:
    """Qwen3-30B-A3B on one B200 server, EP 8: 16 small experts a GPU."""
    return {
        "model": "qwen3-30b-a3b",
        "cluster": {"system": "dgx-b200", "count": 1},
        "training": {"seq_len": 4096, "global_batch": 64, "precision": "fp8"},
        "parallel": {"ep": 8, "micro_batch": micro_batch, **parallel},
    }


def test_which_ops_the_host_launches() -> None:
    assert eager("expert_up", "moe", ())
    assert eager("router.bwd", "moe", ("attn",))
    assert not eager("router.bwd", "moe", ("moe_router",))
    assert not eager("qkv.recompute", "dense", ("attn",))
    assert not eager("expert_up", "moe", ("full_iteration",))
    assert not eager("pp_send", "send", ())  # issued beside the layers' launches
    assert not eager("dp_gather", "", ())


def test_the_scenario_offers_exactly_the_scopes_the_cost_layer_knows() -> None:
    from typing import get_args

    from superscale.costs.host import GRAPH_SCOPES
    from superscale.scenario import CudaGraphScope

    assert set(get_args(CudaGraphScope)) == {*GRAPH_SCOPES, "full_iteration"}


def test_a_run_waits_only_for_launches_beyond_its_compute() -> None:
    assert pass_host_s({"moe": 3.0, "head": 0.5}, {"moe": 2.0, "head": 1.0}) == pytest.approx(1.0)
    assert pass_host_s({}, {"moe": 2.0}) == 0.0


def test_a_moe_layers_launches_by_hand() -> None:
    scenario = load_scenario(_moe())
    plan = resolve(scenario)
    stage = lower(scenario, plan).stages[0]
    moe_ops = [op for op in stage.forward if op.unit == "moe"]
    # every kernel of the layer's compute ops, and one launch per collective that moves
    # data (the EP group has 8 GPUs; TP is 1, so its collectives are gone)
    kernels = sum(op.kernels * op.repeat for op in moe_ops if isinstance(op, ComputeOp))
    calls = sum(op.repeat for op in moe_ops if isinstance(op, CommOp) and op.group == "ep")
    layers = scenario.model.layers
    assert calls == 2 * layers  # dispatch and combine
    sums = pass_sums(stage.forward, plan, CommModel(scenario.cluster), "fp8")
    assert sums.host_s["moe"] == pytest.approx((kernels + calls) * HOST_LAUNCH_S)
    # 16 local experts: each of the two expert GEMMs launches once per expert
    per_layer = [op for op in moe_ops if op.name in {"expert_up", "expert_down"}]
    assert all(op.kernels == 16 for op in per_layer)


def test_cuda_graphs_cut_the_wait_and_full_capture_removes_it() -> None:
    eager_step = simulate(load_scenario(_moe())).to_json()
    graphed = simulate(load_scenario(_moe(cuda_graphs=["moe_router", "moe_preprocess"])))
    full = simulate(load_scenario(_moe(cuda_graphs=["full_iteration"]))).to_json()
    assert eager_step["breakdown_s"]["host"] > 0
    assert 0 < graphed.breakdown_s["host"] < eager_step["breakdown_s"]["host"]
    assert full["breakdown_s"]["host"] == 0.0
    assert full["step_time_s"] < graphed.step_time_s < eager_step["step_time_s"]
    # the device's work is the same in all three
    assert full["breakdown_s"]["compute"] == pytest.approx(eager_step["breakdown_s"]["compute"])


def test_larger_micro_batches_hide_the_host() -> None:
    def host_share(micro_batch: int) -> float:
        r = simulate(load_scenario(_moe(micro_batch))).to_json()
        return float(r["breakdown_s"]["host"] / r["step_time_s"])

    assert host_share(4) < host_share(1)


def test_a_stacks_own_launch_time_replaces_the_global_figure() -> None:
    fast = simulate(load_scenario(_moe(host_launch_us=5.0))).to_json()
    default = simulate(load_scenario(_moe())).to_json()
    assert fast["breakdown_s"]["host"] < default["breakdown_s"]["host"]


@pytest.mark.parametrize("schedule", ["1f1b", "interleaved", "zb-h1", "dualpipe"])
def test_both_engines_wait_on_the_host_alike(schedule: str) -> None:
    data = _moe()
    data["cluster"] = {"system": "dgx-b200", "count": 4}
    data["training"] = {**data["training"], "global_batch": 128}
    data["parallel"] = {
        **data["parallel"],
        "pp": 4,
        "schedule": schedule,
        "virtual_stages": 2 if schedule == "interleaved" else 1,
    }
    scenario = load_scenario(data)
    analytical = simulate(scenario, engine="analytical")
    event = simulate(scenario, engine="event")
    assert analytical.breakdown_s["host"] > 0
    assert event.step_time_s == pytest.approx(analytical.step_time_s, rel=0.03)
    assert event.breakdown_s["host"] == pytest.approx(
        analytical.breakdown_s["host"], abs=0.05 * analytical.step_time_s
    )


def test_an_unknown_graph_scope_is_one_clear_error() -> None:
    with pytest.raises(SpecError, match="cuda_graphs") as info:
        load_scenario(_moe(cuda_graphs=["attention"]))
    assert "full_iteration" in str(info.value)


def test_check_names_the_captured_scopes() -> None:
    from superscale.parallelism.plan import recipe_words

    scenario = load_scenario(_moe(cuda_graphs=["attn", "moe_router"], host_launch_us=20.0))
    words = recipe_words(scenario, resolve(scenario))
    assert "CUDA graphs: attn, moe_router" in words
    assert "host 20 us per kernel launch" in words
