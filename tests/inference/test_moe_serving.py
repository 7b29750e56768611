"""Mixture-of-experts serving: FlashMLA decode, fp8 attention, large EP, two-batch overlap,
low-latency dispatch, asymmetric disaggregated pools, speculative decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from superscale import SpecError, load_scenario
from superscale.cli import main
from superscale.inference.deploy import resolve
from superscale.inference.kernels import low_latency_dispatch, mla_decode_kernel
from superscale.inference.kv import (
    kv_budget,
    logits_bytes_per_gpu,
    low_latency_buffer_bytes,
    weight_bytes_per_gpu,
)
from superscale.inference.layers import attention_costs
from superscale.inference.serve import serve
from superscale.inference.step import PARTS, Speculation, StepModel
from superscale.scenario.serving import PlanSpec, SchedulerSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FOUR_NINE = EXAMPLES / "serve-deepseek-v3-4p9d-h800.yaml"


def _v3(system: str = "hgx-h200", count: int = 1, **serving: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"plan": {"tp": 1, "attention_dp": 8, "ep": 8}}
    base.update(serving)
    return {"model": "deepseek-v3", "cluster": {"system": system, "count": count}, "serving": base}


def _step(scenario: dict[str, Any], pool: int = -1) -> StepModel:
    step = resolve(load_scenario(scenario)).pools[pool].step
    assert step is not None
    return step


def test_mla_decode_priced_from_flashmla_rows() -> None:
    sc = load_scenario(_v3())
    kernel = mla_decode_kernel("h200-sxm")  # the H800 rows carried to the same SM90 chip
    assert kernel is not None and kernel.compute_tflops == 660 and kernel.memory_gbps == 3000
    step = _step(_v3())
    assert step.mla_decode_tflops == pytest.approx(660.0)
    # Today's generic rate: bf16 peak · attention_fraction · clock, about 300 TFLOP/s
    chip = sc.cluster.chip
    eff = chip.efficiency
    generic = chip.peak_tflops["bf16"] * eff.attention_fraction * eff.sustained_clock_fraction
    assert 250 < generic < 350
    unmeasured = sc.cluster.model_copy(
        update={
            "system": sc.cluster.system.model_copy(
                update={"chip": chip.model_copy(update={"name": "no-flashmla"})}
            )
        }
    )
    plan = sc.serving.plan  # type: ignore[union-attr]
    before, _, none = attention_costs(
        sc.model,
        plan,
        unmeasured,
        kv_precision="fp8",
        attention_precision="bf16",
        query_tokens=1,
    )
    after, _, _ = attention_costs(
        sc.model,
        plan,
        sc.cluster,
        kv_precision="fp8",
        attention_precision="bf16",
        query_tokens=1,
    )
    assert none is None and after < 0.6 * before  # FlashMLA decode is faster than today's


def test_flashmla_pads_query_rows_to_its_64_row_blocks() -> None:
    kernel = mla_decode_kernel("h200-sxm")
    assert kernel is not None
    assert kernel.padding(16) == 4 and kernel.padding(128) == 1 and kernel.padding(96) == 128 / 96
    sc = load_scenario(_v3())

    def cost(tp: int, q: int) -> float:
        plan = PlanSpec(tp=tp, attention_dp=8 // tp, ep=8)
        kv_s, _, _ = attention_costs(
            sc.model,
            plan,
            sc.cluster,
            kv_precision="fp8",
            attention_precision="bf16",
            query_tokens=q,
        )
        return kv_s * plan.attention_dp  # per attention rank

    # 128 heads per GPU: compute-bound, a second query token doubles the work
    assert cost(1, 2) == pytest.approx(2 * cost(1, 1))
    # 16 heads per GPU: 16 or 32 query rows both fill one padded 64-row block
    assert cost(8, 2) == pytest.approx(cost(8, 1))


def test_fp8_attention_where_the_chip_has_it() -> None:
    common = {"model": "llama3-8b", "cluster": {"system": "dgx-h100", "count": 1}}
    fp8 = resolve(load_scenario({**common, "serving": {"precision": "fp8"}}))
    bf16 = resolve(
        load_scenario({**common, "serving": {"precision": "fp8", "attention_precision": "bf16"}})
    )
    assert fp8.attention_precision == "fp8" and bf16.attention_precision == "bf16"
    a, b = fp8.pools[0].step, bf16.pools[0].step
    assert a is not None and b is not None
    assert a.prefill_s_per_pair == pytest.approx(b.prefill_s_per_pair / (1200 / 740))
    # B200 has fp8 tensor cores but no measured fp8 attention kernel in the component rows
    b200 = {"model": "llama3-8b", "cluster": {"system": "dgx-b200", "count": 1}}
    assert resolve(load_scenario({**b200, "serving": {}})).attention_precision == "bf16"
    with pytest.raises(SpecError, match=r"serving\.attention_precision.*no measured kernel"):
        resolve(load_scenario({**b200, "serving": {"attention_precision": "fp8"}}))


def test_logits_under_attention_dp_shrink_with_the_per_gpu_batch() -> None:
    sc = load_scenario(_v3("gb200-nvl72"))
    sched = SchedulerSpec(max_batch=72 * 256)
    wide = PlanSpec(tp=1, attention_dp=72, ep=72, redundant_experts=32)
    one = PlanSpec(tp=1, attention_dp=1)
    gib = 2**30
    assert logits_bytes_per_gpu(sc.model, one, sched) / gib == pytest.approx(8.88, abs=0.01)
    assert logits_bytes_per_gpu(sc.model, wide, sched) / gib == pytest.approx(0.123, abs=0.001)
    budget = kv_budget(
        sc.model, wide, sc.cluster.chip, precision="fp8", kv_precision="fp8", scheduler=sched
    )
    whole = logits_bytes_per_gpu(sc.model, one, sched)  # the old reserve: the instance's batch
    old_kv = budget.kv_bytes - whole + budget.logits_bytes
    assert budget.kv_bytes - old_kv > 8.7 * gib  # 8.8 GiB more KV per GPU, more requests fit
    assert budget.fits


def test_low_latency_buffer_follows_deepep_layout() -> None:
    # 128 tokens per rank, hidden 7168, 256 experts: 2 x (send + receive) of 256·128
    # combine messages of 14,560 bytes (DeepEP csrc/config.hpp LowLatencyLayout)
    msg = 7168 * 2 + 56 * 4
    expected = 2 * (256 * 128 * msg + 256 * 128 * msg)
    assert low_latency_buffer_bytes(7168, 256, 128) == expected
    assert low_latency_buffer_bytes(7168, 256, 256) == 2 * expected


def test_large_ep_needs_redundant_experts_and_counts_them() -> None:
    with pytest.raises(SpecError, match=r"serving\.plan.*256 experts plus.*= 256"):
        resolve(load_scenario(_v3("gb200-nvl72", plan={"tp": 1, "attention_dp": 72, "ep": 72})))
    for system, count, ep, extra, per_gpu in (
        ("gb200-nvl72", 1, 72, 32, 4),
        ("gb200-nvl72", 2, 144, 32, 2),
        ("hgx-h800", 40, 320, 64, 1),
    ):
        plan = {"tp": 1, "attention_dp": ep, "ep": ep, "redundant_experts": extra}
        dep = resolve(load_scenario(_v3(system, count, plan=plan)))
        pool = dep.pools[0]
        assert dep.fits and pool.instances == 1 and pool.step is not None
        sc = load_scenario(_v3(system, count, plan=plan))
        base = PlanSpec(tp=1, attention_dp=ep, ep=ep)
        extra_bytes = weight_bytes_per_gpu(sc.model, pool.plan, "fp8") - weight_bytes_per_gpu(
            sc.model, base, "fp8"
        )
        expert = sc.model.expert_params * sc.model.moe_layers  # one expert in every layer
        assert (256 + extra) // ep == per_gpu
        assert extra_bytes == pytest.approx(extra / ep * expert)


def test_a_pool_inside_one_system_is_placed_on_its_slice() -> None:
    # 16 GPUs of a 72-GPU NVLink rack: groups of 16 need not tile the whole rack
    plan = {"tp": 1, "attention_dp": 16, "ep": 16, "dp": 1}
    pool = resolve(load_scenario(_v3("gb200-nvl72", plan=plan))).pools[0]
    assert pool.cluster.gpus == 16 and pool.cluster.system.scale_up.gpus == 16
    assert pool.step is not None and pool.step.part("ep_comm", 16 * 128) > 0


def test_two_batch_overlap_hides_all_to_all_at_large_batches() -> None:
    plain = _step(_v3("hgx-h800", 4, plan={"tp": 1, "attention_dp": 32, "ep": 32}))
    tbo = _step(
        _v3("hgx-h800", 4, plan={"tp": 1, "attention_dp": 32, "ep": 32, "two_batch_overlap": True})
    )
    big = 32 * 256
    assert plain.part("ep_comm_hidden", big) == 0
    assert tbo.part("ep_comm", big) < 0.6 * plain.part("ep_comm", big)  # exposed
    assert tbo.part("ep_comm_hidden", big) > 0
    assert tbo.base(big) < plain.base(big)
    assert tbo.base(1) == plain.base(1)  # one request cannot be split
    # at a few tokens per GPU each half re-reads the weights: overlap loses
    assert tbo.base(64) > plain.base(64)
    for s in (plain, tbo):
        total = sum(s.parts_s[p] for p in PARTS)
        assert np.allclose(total, s.base_s)


def test_low_latency_dispatch_priced_from_deepep_rows() -> None:
    kernel = low_latency_dispatch("h800-sxm")
    assert kernel is not None
    plan = {"tp": 1, "attention_dp": 32, "ep": 32}
    step = _step(_v3("hgx-h800", 4, plan={**plan, "moe_dispatch": "low_latency"}))
    assert step.dispatch == "low_latency"
    tokens = 32 * 128  # DeepEP's decode setting: 128 tokens per rank
    per_layer = step.part("ep_comm", tokens) / 58  # DeepSeek-V3's 58 MoE layers
    # components/moe_dispatch.csv, DeepEP V1 low-latency, EP 32: 155 + 273 µs
    assert per_layer == pytest.approx((155 + 273) * 1e-6, rel=0.08)
    # one token per rank: the pplx-kernels one-token latencies at EP 32 (115.7 + 55.4 µs)
    assert step.part("ep_comm", 32) / 58 == pytest.approx((115.7 + 55.4) * 1e-6, rel=1e-6)
    # a mixed pool takes the faster kernels per iteration size (SGLang's auto mode)
    mixed = _step(_v3("hgx-h800", 4, plan=plan))
    a2a = _step(_v3("hgx-h800", 4, plan={**plan, "moe_dispatch": "all_to_all"}))
    assert mixed.dispatch == "per_batch" and a2a.dispatch == "all_to_all"
    for t in (32, tokens, 32 * 4096):
        fastest = min(step.part("ep_comm", t), a2a.part("ep_comm", t))
        assert mixed.part("ep_comm", t) == pytest.approx(fastest)
    with pytest.raises(SpecError, match=r"moe_dispatch.*needs ep = tp·attention_dp = 32"):
        resolve(
            load_scenario(
                _v3(
                    "hgx-h800",
                    4,
                    plan={"tp": 2, "attention_dp": 16, "ep": 16, "moe_dispatch": "low_latency"},
                )
            )
        )
    expert_tp = _step(_v3("hgx-h800", 4, plan={"tp": 2, "attention_dp": 16, "ep": 16}))
    assert expert_tp.dispatch == "all_to_all"
    inside = _step(_v3())  # EP 8 inside one NVLink server: the collective
    assert inside.dispatch == "all_to_all"
    with pytest.raises(SpecError, match=r"moe_dispatch.*low_latency.*b200"):
        resolve(
            load_scenario(
                _v3(
                    "dgx-b200",
                    plan={"tp": 1, "attention_dp": 8, "ep": 8, "moe_dispatch": "low_latency"},
                )
            )
        )


def test_four_prefill_nine_decode_nodes_with_per_pool_figures() -> None:
    sc = load_scenario(FOUR_NINE)
    dep = resolve(sc)
    prefill, decode = dep.pools
    assert (prefill.gpus, decode.gpus) == (32, 72)
    assert (prefill.cluster.count, decode.cluster.count) == (4, 9)
    assert prefill.plan.ep == 32 and decode.plan.ep == 72
    assert prefill.dispatch == "all_to_all" and decode.dispatch == "low_latency"
    # prefill runs the MTP layer over prompts (draft extend); only decode verifies drafts
    assert prefill.speculation is not None and decode.speculation is not None
    assert prefill.step is not None and decode.step is not None
    assert prefill.step.query_tokens == 1 and decode.step.query_tokens == 2
    assert prefill.step.prompt_draft_s_per_token > 0 and prefill.step.draft(64) == 0
    data = serve(sc).to_json()
    assert data["fits"] and data["completed"] == data["requests"]
    p, d = data["pools"]
    assert p["throughput"]["input_tokens_per_s"] > 0 and p["throughput"]["output_tokens_per_s"] == 0
    assert d["throughput"]["output_tokens_per_s"] == pytest.approx(
        data["throughput"]["output_tokens_per_s"]
    )
    assert "ttft" in p["latency_s"] and "tpot" in d["latency_s"]
    # DeepEP's low-latency buffer for 128 tokens per rank and 288 physical experts
    assert d["memory"]["dispatch_buffer_gib"] == pytest.approx(2.0, abs=0.01)
    assert p["memory"]["dispatch_buffer_gib"] == 0.0
    for pool in (p, d):
        t = pool["time_s"]
        assert 0 < pool["utilization"] <= 1
        assert sum(t[k] for k in PARTS) + t["draft"] <= t["busy"] * (1 + 1e-9)
        assert t["ep_comm_hidden"] > 0  # both pools overlap their all-to-all
    assert d["time_s"]["draft"] > 0 and p["time_s"]["draft"] > 0


def test_per_pool_lines_in_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(FOUR_NINE)]) == 0
    out = capsys.readouterr().out
    assert "prefill pool" in out and "decode  pool" in out and "hidden" in out


def test_accepted_tokens_per_iteration() -> None:
    assert Speculation(method="mtp", draft_tokens=1, acceptance_rate=0.85).accepted_tokens == (
        pytest.approx(1.85)
    )
    assert Speculation(method="eagle", draft_tokens=3, acceptance_rate=0.5).accepted_tokens == (
        pytest.approx(1.875)
    )
    assert Speculation(method="eagle", draft_tokens=3, acceptance_rate=1.0).accepted_tokens == 4


def _decode_run(speculative: dict[str, Any] | None) -> dict[str, Any]:
    workload = {
        "arrival": "poisson",
        "rate_per_s": 4,
        "requests": 300,
        "seed": 2,
        "prompt_tokens": 500,
        "output_tokens": 300,
    }
    sc = _v3("hgx-h200", workload=workload, scheduler={"max_batch": 128}, speculative=speculative)
    return serve(load_scenario(sc)).to_json()


def test_speculative_decoding_raises_tokens_per_request_and_lowers_tpot() -> None:
    none = _decode_run(None)
    mtp = _decode_run({"method": "mtp", "draft_tokens": 1})
    rejected = _decode_run({"method": "mtp", "draft_tokens": 1, "acceptance_rate": 0.0})
    tpot = {
        k: r["latency_s"]["tpot"]["mean"]
        for k, r in (("none", none), ("mtp", mtp), ("zero", rejected))
    }
    assert tpot["mtp"] < 0.75 * tpot["none"]  # 1.85 tokens per iteration, a little dearer
    assert 1 / tpot["mtp"] > 1 / tpot["none"]  # decode tokens/s per request
    assert tpot["zero"] > tpot["none"]  # nothing accepted: only the drafter's cost
    assert mtp["speculative"]["accepted_tokens_per_iteration"] == pytest.approx(1.85)
    assert mtp["pools"][0]["kernels"]["query_tokens_per_request"] == 2
    assert mtp["completed"] == none["completed"] == 300


def test_eagle_and_draft_model_decode() -> None:
    # a small batch: memory-bound decode, where verifying 4 tokens costs about one
    workload = {"arrival": "offline", "requests": 16, "prompt_tokens": 200, "output_tokens": 200}
    base = {"model": "llama3.1-70b", "cluster": {"system": "hgx-h200", "count": 1}}
    plain = {"plan": {"tp": 8}, "workload": workload}
    none = serve(load_scenario({**base, "serving": plain})).to_json()
    for spec in (
        {"method": "eagle", "draft_tokens": 3, "acceptance_rate": 0.7},
        {
            "method": "draft",
            "draft_tokens": 3,
            "acceptance_rate": 0.7,
            "draft_model": "llama3.1-8b",
        },
    ):
        run = serve(load_scenario({**base, "serving": {**plain, "speculative": spec}})).to_json()
        assert run["latency_s"]["tpot"]["mean"] < none["latency_s"]["tpot"]["mean"]
        weights = run["pools"][0]["memory"]["weights_gib"]
        assert weights > none["pools"][0]["memory"]["weights_gib"]  # the drafter's weights


@pytest.mark.parametrize(
    ("speculative", "model", "words"),
    [
        ({"method": "eagle"}, "deepseek-v3", r"speculative.*needs acceptance_rate"),
        ({"method": "mtp"}, "llama3-8b", r"speculative\.method.*multi-token"),
        ({"method": "draft", "acceptance_rate": 0.5}, "llama3-8b", "needs draft_model"),
        (
            {"method": "draft", "acceptance_rate": 0.5, "draft_model": "llama2-7b"},
            "llama3-8b",
            r"draft_model.*vocabulary",
        ),
        (
            {"method": "draft", "acceptance_rate": 0.5, "draft_model": "lama3-8b"},
            "llama3-8b",
            r"draft_model.*llama3-8b",
        ),
        ({"method": "mtp", "acceptance_rate": 1.5}, "deepseek-v3", "acceptance_rate"),
    ],
)
def test_speculative_input_errors_name_the_field(
    speculative: dict[str, Any], model: str, words: str
) -> None:
    sc = {
        "model": model,
        "cluster": {"system": "hgx-h200", "count": 1},
        "serving": {"plan": {"tp": 8}, "speculative": speculative},
    }
    with pytest.raises(SpecError, match=words):
        resolve(load_scenario(sc))
