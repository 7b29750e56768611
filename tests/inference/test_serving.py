"""Serving model: KV cache, iteration time, simulation, disaggregation, capacity planning."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from superscale import InfeasiblePlan, SpecError, load_scenario
from superscale.inference.deploy import resolve
from superscale.inference.kv import kv_bytes_per_token
from superscale.inference.plan_search import pareto_front, plan_capacity
from superscale.inference.serve import serve
from superscale.inference.workload import generate, parse_trace
from superscale.models.catalog import models
from superscale.scenario.serving import SloSpec


def _scenario(**serving: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 1},
        "serving": {"plan": {"tp": 1, "dp": 2}},
    }
    base["serving"].update(serving)
    return base


def test_kv_bytes_per_token_gqa_and_mla() -> None:
    llama = models().get("llama2-70b")
    # 2 (K, V) · 8 kv heads · 128 · 80 layers · 2 bytes = 327,680 B (bf16)
    assert kv_bytes_per_token(llama, "bf16") == 2 * 8 * 128 * 80 * 2
    v3 = models().get("deepseek-v3")
    # (512 latent + 64 rope) · 61 layers · 1 byte (fp8)
    assert kv_bytes_per_token(v3, "fp8") == (512 + 64) * 61


def test_decode_step_grows_with_batch_until_compute_bound() -> None:
    dep = resolve(load_scenario(_scenario()))
    step = dep.pools[0].step
    assert step is not None
    times = np.array([step.iteration_s(b, sampled=b, context=b * 1000) for b in range(1, 2049)])
    assert np.all(np.diff(times) >= 0)  # more requests never make a step faster
    # small batches are memory-bound: 1 → 16 requests costs little more than one
    assert times[15] < 1.3 * times[0]
    # large batches are compute-bound: the marginal cost per request levels off
    marginal_mid = (times[1023] - times[511]) / 512
    marginal_big = (times[2047] - times[1535]) / 512
    assert marginal_big == pytest.approx(marginal_mid, rel=0.25)
    assert times[2047] / 2048 < times[0] / 10  # batching amortizes the weights


def test_model_that_does_not_fit_reports_so() -> None:
    sc = load_scenario(
        {
            "model": "llama3-405b",
            "cluster": {"system": "dgx-h100", "count": 1},
            "serving": {"precision": "bf16", "plan": {"tp": 8}},
        }
    )
    result = serve(sc)
    data = result.to_json()
    assert not result.fits and data["fits"] is False
    assert data["pools"][0]["memory"]["over_by_gib"] > 0
    assert "throughput" not in data


def test_fp8_on_a_chip_without_it_is_an_error() -> None:
    sc = load_scenario(
        {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-a100", "count": 1},
            "serving": {"precision": "fp8"},
        }
    )
    with pytest.raises(InfeasiblePlan, match="fp8"):
        resolve(sc)
    auto = load_scenario({**_scenario(), "cluster": {"system": "dgx-a100", "count": 1}})
    assert resolve(auto).precision == "bf16"


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        ({"tp": 3}, "heads"),
        ({"tp": 8, "dp": 2}, "exceeds"),
        ({"tp": 1, "ep": 2, "attention_dp": 2}, "mixture-of-experts"),
        ({"tp": 2, "ep": 4}, r"ep \(4\) must divide"),
    ],
)
def test_plan_checks_name_the_problem(plan: dict[str, int], words: str) -> None:
    with pytest.raises(SpecError, match=words):
        resolve(load_scenario(_scenario(plan=plan)))


def test_simulation_is_deterministic_for_a_seed() -> None:
    workload = {"arrival": "poisson", "rate_per_s": 20, "requests": 400, "seed": 7,
                "prompt_tokens": {"distribution": "lognormal", "mean": 300},
                "output_tokens": {"distribution": "exponential", "mean": 100}}  # fmt: skip
    a = serve(load_scenario(_scenario(workload=workload))).to_json()
    b = serve(load_scenario(_scenario(workload=workload))).to_json()
    assert a == b
    other = serve(load_scenario(_scenario(workload={**workload, "seed": 8}))).to_json()
    assert other["latency_s"] != a["latency_s"]
    assert a["completed"] == 400 and a["latency_s"]["ttft"]["p99"] > 0


def test_disaggregation_lowers_ttft_p99_at_high_load() -> None:
    # Long decodes keep every aggregated engine's batch full, so a small chunked-prefill
    # budget leaves few tokens for new prompts; a separate prefill pool with a large budget
    # starts them at once (DistServe's prefill-decode interference).
    lengths = {"distribution": "lognormal", "mean": 1000, "sigma": 0.5}
    workload = {"arrival": "poisson", "rate_per_s": 40, "requests": 3000, "seed": 3,
                "prompt_tokens": lengths, "output_tokens": lengths}  # fmt: skip
    sched = {"chunked_prefill": True, "max_batch": 64, "max_batch_tokens": 80}
    serving = {"plan": {"tp": 1}, "workload": workload, "scheduler": sched}
    common = {"model": "llama3-8b", "cluster": {"system": "dgx-h100", "count": 1}}
    agg = load_scenario({**common, "serving": serving})
    dis = load_scenario(
        {
            **common,
            "serving": {
                **serving,
                "disaggregation": {
                    "prefill_gpus": 2,
                    "decode_gpus": 6,
                    "prefill_max_batch_tokens": 8192,
                },
            },
        }
    )
    a, d = serve(agg).to_json(), serve(dis).to_json()
    assert d["disaggregated"] and not a["disaggregated"]
    assert d["completed"] == a["completed"] == 3000
    assert d["latency_s"]["ttft"]["p99"] < 0.5 * a["latency_s"]["ttft"]["p99"]


def test_offline_throughput_and_prefix_cache() -> None:
    workload = {"arrival": "offline", "requests": 2000, "prompt_tokens": 2000,
                "output_tokens": 50}  # fmt: skip
    plain = serve(load_scenario(_scenario(workload=workload))).to_json()
    cached = serve(
        load_scenario(_scenario(workload=workload, scheduler={"prefix_cache_hit_rate": 0.9}))
    ).to_json()
    assert cached["throughput"]["output_tokens_per_s"] > plain["throughput"][
        "output_tokens_per_s"]  # fmt: skip
    t = plain["throughput"]
    assert t["input_tokens_per_s"] == pytest.approx(40 * t["output_tokens_per_s"])
    assert t["output_tokens_per_s_per_gpu"] == pytest.approx(t["output_tokens_per_s"] / 2)


def test_trace_parsing() -> None:
    reqs = parse_trace("arrival_s,prompt_tokens,output_tokens\n0.5,10,3\n0.1,20,4\n")
    assert reqs.arrival_s.tolist() == [0.1, 0.5] and reqs.prompt_tokens.tolist() == [20, 10]
    with pytest.raises(SpecError, match="line 2"):
        parse_trace("arrival_s,prompt_tokens,output_tokens\nx,1,1\n")
    with pytest.raises(SpecError, match="missing column"):
        parse_trace("arrival,prompt_tokens\n1,2\n")


def test_length_distribution_means() -> None:
    sc = load_scenario(
        _scenario(
            workload={
                "arrival": "offline",
                "requests": 20000,
                "prompt_tokens": {"distribution": "lognormal", "mean": 500, "sigma": 0.5},
                "output_tokens": {"distribution": "uniform", "mean": 100, "min": 1},
            }
        )
    )
    reqs = generate(sc.serving.workload)  # type: ignore[union-attr]
    assert reqs.prompt_tokens.mean() == pytest.approx(500, rel=0.03)
    assert reqs.output_tokens.mean() == pytest.approx(100, rel=0.03)


def test_moe_latent_attention_plan() -> None:
    sc = load_scenario(
        {
            "model": "deepseek-v3",
            "cluster": {"system": "hgx-h200", "count": 2},
            "serving": {"plan": {"tp": 1, "attention_dp": 8, "ep": 8}},
        }
    )
    dep = resolve(sc)
    pool = dep.pools[0]
    assert pool.instances == 2 and dep.fits and dep.precision == "fp8"
    assert pool.step is not None and pool.step.iteration_s(64, sampled=64) > 0


def test_serve_plan_finds_fewest_gpus_and_a_front() -> None:
    sc = load_scenario(_scenario(workload={"arrival": "offline", "prompt_tokens": 500,
                                           "output_tokens": 100}))  # fmt: skip
    out = plan_capacity(
        sc, rate_per_s=50, slo=SloSpec(ttft_p99_s=1.0, tpot_p99_s=0.05), requests=300,
        batch_caps=(32,), disaggregation=False,
    )  # fmt: skip
    best = out["best"]
    assert best is not None and best["total_gpus"] >= 1
    assert best["total_gpus"] == min(c["total_gpus"] for c in out["candidates"])
    assert out["pareto_front"] == pareto_front(out["pareto_front"])


def test_clipped_lognormal_mean_matches_the_draws() -> None:
    # LengthSpec.mean is the unclipped mean; the closed form says what the clipped draws
    # average, and lognormal_mean_for inverts it for a source's stated mean
    import numpy as np

    from superscale.inference.workload import (
        clipped_lognormal_mean,
        lognormal_mean_for,
        sample_lengths,
    )
    from superscale.scenario.serving import LengthSpec

    rng = np.random.default_rng(3)
    spec = LengthSpec(distribution="lognormal", mean=300, sigma=0.8, max=1024)
    drawn = sample_lengths(spec, 400_000, rng).mean()
    assert drawn < 290  # the cap cuts the tail: 300 stated, fewer drawn
    assert clipped_lognormal_mean(300, 0.8, 1, 1024) == pytest.approx(drawn, rel=0.005)
    unclipped = lognormal_mean_for(224, 1.0, 4, 1024)
    assert unclipped > 224
    spec = LengthSpec(distribution="lognormal", mean=unclipped, sigma=1.0, min=4, max=1024)
    assert sample_lengths(spec, 400_000, rng).mean() == pytest.approx(224, rel=0.005)
    with pytest.raises(ValueError, match="not inside"):
        lognormal_mean_for(2000, 1.0, 4, 1024)
