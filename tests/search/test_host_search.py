"""Search keeps the base's CUDA-graph scopes and host launch time, and prices the host's
wait as `simulate` does."""

from __future__ import annotations

import pytest

from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster
from superscale.pipeline import simulate
from superscale.scenario import load_scenario
from superscale.search.evaluate import evaluate_batch
from superscale.search.space import enumerate_plans


@pytest.mark.parametrize("graphs", [[], ["moe_router", "moe_preprocess"]])
def test_search_prices_the_host_like_simulate(graphs: list[str]) -> None:
    base = {
        "model": "qwen3-30b-a3b",
        "cluster": "dgx-b200",
        "training": {"seq_len": 4096, "global_batch": 64, "precision": "fp8"},
        "parallel": {"cuda_graphs": graphs, "host_launch_us": 40.0},
    }
    cluster = Cluster(system=systems().get("dgx-b200"), count=1)
    space = enumerate_plans(base, clusters=[cluster])
    candidates = space.candidates[:: max(1, len(space.candidates) // 24)]
    assert candidates
    assert all(c["parallel"]["cuda_graphs"] == graphs for c in candidates)
    assert all(c["parallel"]["host_launch_us"] == 40.0 for c in candidates)
    records = evaluate_batch(candidates, prune_memory=False)
    waited = 0
    for candidate, record in zip(candidates, records, strict=True):
        result = simulate(load_scenario(candidate))
        assert record["step_time_s"] == pytest.approx(result.step_time_s, rel=1e-6)
        waited += result.breakdown_s["host"] > 0
    assert waited  # some of these plans do wait on the host
