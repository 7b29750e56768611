"""Search over a base scenario's HSDP plan (`parallel.fsdp.shard_group` kept, the rest
enumerated): plans the shard group cannot split are pruned by the plan rules, and the
vectorized cost of the others is `simulate`'s."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster
from superscale.parallelism import resolve
from superscale.pipeline import simulate
from superscale.scenario import load_scenario
from superscale.scenario.rules import hsdp_problem
from superscale.search.evaluate import evaluate_batch
from superscale.search.space import Enumeration, enumerate_plans
from superscale.training.lower import lower
from superscale.training.memory import WEIGHT_BYTES

SHARD = {"llama3-8b": 8, "qwen3-30b-a3b": 4}  # one DGX; half of one (experts inside it)


def _base(model: str, fsdp: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "cluster": "dgx-h100",
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {"fsdp": fsdp},
    }


@cache
def _space(model: str, hsdp: bool) -> Enumeration:
    fsdp = {"shard_group": SHARD[model]} if hsdp else {}
    cluster = Cluster(system=systems().get("dgx-h100"), count=4)  # 32 GPUs
    return enumerate_plans(_base(model, fsdp), clusters=[cluster])


@cache
def _records(model: str, hsdp: bool) -> tuple[dict[str, Any], ...]:
    return tuple(evaluate_batch(_space(model, hsdp).candidates, prune_memory=False))


def _dp_cp(parallel: dict[str, Any]) -> int:
    return 32 // (parallel["tp"] * parallel["pp"])


@pytest.mark.parametrize("model", sorted(SHARD))
def test_the_shard_group_is_kept_and_what_it_cannot_split_pruned(model: str) -> None:
    space = _space(model, True)
    shard = SHARD[model]
    candidates = space.candidates
    assert candidates  # no refusal: HSDP plans are searched
    assert all(c["parallel"]["fsdp"] == {"shard_group": shard} for c in candidates)
    assert all(c["parallel"]["zero"] == 3 for c in candidates)
    for c in candidates:
        p = c["parallel"]
        dp = _dp_cp(p) // p["cp"]
        assert hsdp_problem(shard, tp=p["tp"], cp=p["cp"], ep=p["ep"], dp=dp) is None
    # the rules' own words count what was pruned: dp·cp below the shard group (and for
    # experts, a shard group too small to hold an expert-parallel group)
    pruned = [reason for reason in space.pruned if "shard_group" in reason]
    assert all(r.startswith(f"parallel.fsdp.shard_group ({shard})") for r in pruned)
    assert any(f"({shard}) must divide dp·cp" in r for r in pruned)
    replicas = {_dp_cp(c["parallel"]) // shard for c in candidates}
    assert {1, 2} <= replicas  # plans with and without a replica all-reduce


@pytest.mark.parametrize("model", sorted(SHARD))
def test_search_cost_is_simulate_of_the_same_plan(model: str) -> None:
    """Every 40th plan (a spread of tp, pp, cp, ep and replica counts): step time and
    peak memory as `superscale.pipeline.simulate` gives them, to 1e-6."""
    candidates, records = _space(model, True).candidates, _records(model, True)
    picked = range(0, len(candidates), 40)
    assert {_dp_cp(candidates[i]["parallel"]) // SHARD[model] for i in picked} >= {1, 2}
    for i in picked:
        result = simulate(load_scenario(candidates[i]))
        record = records[i]
        assert record["error"] is None
        assert record["step_time_s"] == pytest.approx(result.step_time_s, rel=1e-6)
        assert record["peak_gib_per_gpu"] == pytest.approx(
            result.memory.peak_bytes / 2**30, rel=1e-6
        )


def test_hsdp_shards_the_state_over_its_group_only() -> None:
    """tp 1, pp 1, dp 32 of llama3-8b: full sharding splits its 16-bit weights, fp32
    gradients and optimizer states (2 + 4 + 12 B a parameter) over 32 GPUs, HSDP's
    8-GPU group over 8, so HSDP holds 18·P·(1/8 − 1/32) bytes more per GPU; and its
    gathers and reduce-scatter stay inside one DGX, so the step differs too."""
    plan = {"tp": 1, "pp": 1, "cp": 1, "micro_batch": 1, "recompute": "none", "schedule": "1f1b"}

    def candidates(hsdp: bool) -> list[dict[str, Any]]:
        return _space("llama3-8b", hsdp).candidates

    def row(hsdp: bool) -> dict[str, Any]:
        for c, r in zip(candidates(hsdp), _records("llama3-8b", hsdp), strict=True):
            if all(c["parallel"][k] == v for k, v in plan.items()):
                return r
        raise AssertionError("plan not enumerated")

    scenario = load_scenario(
        {**_base("llama3-8b", {}), "cluster": {"system": "dgx-h100", "count": 4}, "parallel": {}}
    )  # pp 1: the one stage holds every parameter
    params = lower(scenario, resolve(scenario)).stages[0].dense_params
    per_param = WEIGHT_BYTES + 4 + 12  # fp32 gradients (the default), master weights, moments
    extra = per_param * params * (1 / 8 - 1 / 32)
    hsdp, full = row(True), row(False)
    assert (hsdp["peak_gib_per_gpu"] - full["peak_gib_per_gpu"]) * 2**30 == pytest.approx(
        extra, rel=1e-9
    )
    assert hsdp["step_time_s"] != pytest.approx(full["step_time_s"], rel=1e-3)
