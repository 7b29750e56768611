"""Expert placement: the busiest expert-parallel GPU's load, by hand and in the step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from superscale import load_scenario
from superscale.errors import SpecError
from superscale.parallelism import resolve
from superscale.parallelism.experts import gpu_loads, imbalance, replicas_per_expert
from superscale.parallelism.plan import expert_imbalance
from superscale.pipeline import simulate

HOT = [4.0, 1, 1, 1, 1, 1, 1, 1]  # one expert gets four times the others' tokens


def test_contiguous_and_packed_by_hand() -> None:
    # contiguous: GPU 0 holds experts 0 and 1, 5 of the 11 units; the mean is 11/4
    assert gpu_loads(HOT, 4, placement="contiguous") == [5, 2, 2, 2]
    assert imbalance(HOT, 4, placement="contiguous") == pytest.approx(5 / 2.75)
    # packing alone cannot split the hot expert: it still shares a GPU with one other
    assert imbalance(HOT, 4, placement="eplb") == pytest.approx(5 / 2.75)


def test_redundant_replicas_split_the_hot_expert_by_hand() -> None:
    # four replicas: the hot expert's tokens per replica go 4 -> 2 -> 1.33 -> 1, then a tie
    # at 1.0 gives the fifth copy to it again (lowest index): 5 copies of 0.8
    assert replicas_per_expert(HOT, 4) == [5, 1, 1, 1, 1, 1, 1, 1]
    # 12 replicas, 3 slots a GPU: the seven 1.0s go round (2, 2, 2, 1), then the 0.8s fill
    # the lightest GPU with room: 1.8, 2.6, then 2.8, 2.8, 2.8
    assert gpu_loads(HOT, 4, redundant=4) == pytest.approx([2.8, 2.8, 2.8, 2.6])
    assert imbalance(HOT, 4, redundant=4) == pytest.approx(2.8 / 2.75)


def test_uniform_loads_are_balanced() -> None:
    assert imbalance([1.0] * 64, 8, placement="contiguous") == pytest.approx(1.0)
    assert imbalance([1.0] * 64, 8, redundant=8) == pytest.approx(1.0)


def _moe(**parallel: Any) -> dict[str, Any]:
    loads = [8.0, *[1.0] * 127]  # Qwen3-30B-A3B's 128 experts, one hot
    return {
        "model": "qwen3-30b-a3b",
        "cluster": {"system": "dgx-h100", "count": 1},
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {
            "ep": 8,
            "expert_loads": loads,
            "cuda_graphs": ["full_iteration"],
            **parallel,
        },
    }


def test_the_plan_takes_its_imbalance_from_the_loads() -> None:
    contiguous = resolve(load_scenario(_moe()))
    # GPU 0 holds experts 0-15: 8 + 15 = 23 of 135 units, against a mean of 135 / 8
    assert contiguous.expert_imbalance == pytest.approx(23 / (135 / 8))
    balanced = resolve(load_scenario(_moe(redundant_experts=8)))
    assert 1.0 <= balanced.expert_imbalance < contiguous.expert_imbalance


def test_balancing_shortens_the_step() -> None:
    contiguous = simulate(load_scenario(_moe())).breakdown_s
    balanced = simulate(load_scenario(_moe(redundant_experts=8))).breakdown_s
    assert balanced["compute"] < contiguous["compute"]
    assert balanced["ep_comm"] < contiguous["ep_comm"]


def test_a_batch_gets_one_imbalance_per_plan() -> None:
    scenario = load_scenario(_moe())
    ep = np.array([1, 2, 8, 8])
    out = expert_imbalance(scenario, ep)
    assert out[0] == 1.0
    assert out[2] == out[3] == pytest.approx(resolve(scenario).expert_imbalance)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expert_loads": [1.0, 2.0]}, "2 numbers given, the model has 128"),
        ({"expert_loads": [0.0] * 128}, "every load is 0"),
        ({"expert_imbalance": 1.5}, "not both"),
        ({"expert_placement": "contiguous", "redundant_experts": 8}, "use eplb"),
        ({"expert_placement": "random"}, "expert_placement"),
    ],
)
def test_bad_loads_are_one_clear_error(change: dict[str, Any], message: str) -> None:
    data = _moe()
    data["parallel"] = {**data["parallel"], **change}
    with pytest.raises(SpecError, match=message):
        load_scenario(data)
