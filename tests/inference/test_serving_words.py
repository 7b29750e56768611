"""Serving words of issue 15: quantised weights, W8A8, sub-8-bit KV, closed loops, AF split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from superscale import SpecError, load_scenario
from superscale.cli import main
from superscale.collectives.tuner import CommModel
from superscale.inference.deploy import Deployment, resolve
from superscale.inference.kv import bytes_per_weight, kv_bytes_per_token, kv_format
from superscale.inference.layers import LayerCosts
from superscale.inference.serve import serve
from superscale.models.catalog import models
from superscale.parallelism.plan import place_group
from superscale.scenario.serving import PlanSpec, QuantizationSpec
from superscale.units import GIB

# Llama 3 8B by hand: q and o 4096², k and v 4096·1024, gate/up/down 3·4096·14336.
LLAMA3_8B_LINEAR = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336  # per layer
H100_STREAM = 3.35e12 * 0.80  # datasheet HBM × the catalog's streaming fraction
C550_STREAM = 1.8e12 * 0.80  # FlagPerf: 1.39-1.50 of 1.8 TB/s (catalog memory_fraction)


def _deploy(system: str = "dgx-h100", **serving: Any) -> Deployment:
    spec: dict[str, Any] = {"precision": "bf16", "plan": {"tp": 1, "dp": 1}, **serving}
    return resolve(
        load_scenario(
            {"model": "llama3-8b", "cluster": {"system": system, "count": 1}, "serving": spec}
        )
    )


def test_bytes_per_weight_by_hand() -> None:
    # int4 + one fp16 scale and a 4-bit zero point per 128 weights (GPTQ/AWQ default)
    assert bytes_per_weight("bf16", QuantizationSpec(weights="int4")) == 0.5 + 2.5 / 128
    sym = QuantizationSpec(weights="int8", zero_point=False, group_size=64)
    assert bytes_per_weight("bf16", sym) == 1.0 + 2.0 / 64
    assert bytes_per_weight("bf16", QuantizationSpec(weights="int4", group_size=0)) == 0.5
    assert bytes_per_weight("int8") == 1.0


def test_weight_only_int4_speeds_decode_by_the_byte_ratio_not_prefill() -> None:
    c550 = "metax-c550-8x"
    bf16, int4 = _deploy(c550), _deploy(c550, quantization={"weights": "int4"})
    assert int4.weight_format == "int4 g128" and int4.precision == "bf16"
    s16, s4 = bf16.pools[0].step, int4.pools[0].step
    assert s16 is not None and s4 is not None
    # one decode token streams every linear weight once: the saving is the bytes not read
    saved = 32 * LLAMA3_8B_LINEAR * (2.0 - (0.5 + 2.5 / 128)) / C550_STREAM
    delta = s16.part("compute", 1) - s4.part("compute", 1)
    assert delta == pytest.approx(saved, rel=1e-3)
    assert s4.part("compute", 1) < 0.4 * s16.part("compute", 1)
    # prefill is compute-bound at the bf16 GEMM rate either way
    assert s4.part("compute", 8192) == pytest.approx(s16.part("compute", 8192), rel=1e-9)
    # the weights shrink by the same bytes, so more KV fits (the 16-bit head stays)
    b16, b4 = bf16.pools[0].budget, int4.pools[0].budget
    assert b16.weights_bytes / GIB == pytest.approx(14.96, abs=0.01)
    freed = 32 * LLAMA3_8B_LINEAR * (2.0 - (0.5 + 2.5 / 128))
    assert b16.weights_bytes - b4.weights_bytes == pytest.approx(freed, rel=1e-3)
    assert b4.kv_tokens_per_instance > b16.kv_tokens_per_instance


def test_w8a8_int8_runs_prefill_at_the_int8_peak() -> None:
    bf16, w8a8 = _deploy(), _deploy(precision="int8")  # H100: both decode GEMMs stream
    assert w8a8.weight_format == "int8" and w8a8.weight_bytes == 1.0
    s16, s8 = bf16.pools[0].step, w8a8.pools[0].step
    assert s16 is not None and s8 is not None
    # H100: int8 1979 TOPS against bf16 989 TFLOP/s: the GEMM-bound prefill about halves,
    # at each precision's large-GEMM fraction (the cost layer's: bf16 measured 0.80, int8
    # unmeasured, the catalog's 0.75); the memory-bound norms and residuals do not speed up
    h100 = bf16.pools[0].cluster.chip
    gemms = 989 * h100.matmul_fraction("bf16") / (1979 * h100.matmul_fraction("int8"))
    assert h100.matmul_fraction("int8") == 0.75
    ratio = s8.part("compute", 8192) / s16.part("compute", 8192)
    assert gemms < ratio < gemms + 0.05
    saved = 32 * LLAMA3_8B_LINEAR * 1.0 / H100_STREAM  # and decode reads half the bytes
    assert s16.part("compute", 16) - s8.part("compute", 16) == pytest.approx(saved, rel=1e-3)
    freed = bf16.pools[0].budget.weights_bytes - w8a8.pools[0].budget.weights_bytes
    assert freed / GIB == pytest.approx(32 * LLAMA3_8B_LINEAR / GIB, rel=1e-3)


def test_quantization_errors_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"serving\.quantization\.weights.*narrower"):
        _deploy(precision="int8", quantization={"weights": "int8"})
    with pytest.raises(SpecError, match="quantization"):
        _deploy(quantization={"weights": "int3"})


def test_int4_example_serves_more_than_bf16() -> None:
    base = {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 1},
        "serving": {
            "precision": "bf16",
            "plan": {"tp": 1, "dp": 1},
            "workload": {
                "arrival": "offline",
                "requests": 200,
                "prompt_tokens": 256,
                "output_tokens": 256,
            },
            "scheduler": {"max_batch": 8},
        },
    }
    a = serve(load_scenario(base)).to_json()
    base["serving"]["quantization"] = {"weights": "int4"}
    b = serve(load_scenario(base)).to_json()
    # at 8 requests per engine decode streams the weights: int4 is faster per token
    assert b["latency_s"]["tpot"]["p50"] < 0.75 * a["latency_s"]["tpot"]["p50"]


def test_check_shows_the_serving_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "examples/serve-llama3-70b-int4-metax-c550.yaml"]) == 0
    out = capsys.readouterr().out
    assert "int4 g128 weights" in out and "bf16 GEMMs" in out and "valid" in out
    assert main(["check", "examples/serve-llama3-70b-int4-metax-c550.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["weights"] == "int4 g128" and data["bytes_per_weight"] == 0.5 + 2.5 / 128


def test_check_names_where_a_serving_chip_s_rates_come_from(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the same "efficiency" words a training scenario's check prints (efficiency_source)
    assert main(["check", "examples/serve-llama2-70b-h200.yaml"]) == 0
    out = capsys.readouterr().out
    assert "efficiency documented defaults (catalog `efficiency:`" in out
    scenario = yaml.safe_load(Path("examples/serve-llama2-70b-h200.yaml").read_text("utf-8"))
    scenario["cluster"]["profile"] = "fitted"
    path = tmp_path / "fitted.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    assert main(["check", str(path)]) == 0
    assert "efficiency profile fitted from component measurements" in capsys.readouterr().out
    assert main(["check", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profile"] == "fitted"
    assert data["efficiency"].startswith("profile fitted from component measurements")


def test_sub_8_bit_kv_by_hand() -> None:
    llama = models().get("llama3-8b")
    # 2 (K, V) · 8 kv heads · 128 · 32 layers elements per token
    elements = 2 * 8 * 128 * 32
    assert kv_bytes_per_token(llama, "bf16") == elements * 2
    assert kv_bytes_per_token(llama, "int2-g32") == elements * (0.25 + 4 / 32)  # KIVI-2
    assert kv_bytes_per_token(llama, "int4-g128") == elements * (0.5 + 4 / 128)
    assert kv_bytes_per_token(llama, "fp4") == elements * (0.5 + 1 / 16)  # NVFP4
    assert kv_format("int2", 32) == "int2-g32" and kv_format("fp8", 32) == "fp8"


def test_sub_8_bit_kv_holds_more_tokens_and_reads_fewer_bytes() -> None:
    bf16, int2 = _deploy(), _deploy(kv_precision="int2")
    assert int2.kv_precision == "int2-g32"
    b16, b2 = bf16.pools[0].budget, int2.pools[0].budget
    # same weights and workspace, so the same KV bytes hold 2 / 0.375 times the tokens
    assert b2.kv_bytes == b16.kv_bytes
    ratio = b2.kv_tokens_per_instance / b16.kv_tokens_per_instance
    assert ratio == pytest.approx(2.0 / 0.375, rel=1e-4)
    s16, s2 = bf16.pools[0].step, int2.pools[0].step
    assert s16 is not None and s2 is not None
    # decode attention streams the cache: per context token 32 · 2048 · 0.375 B / HBM rate
    assert s2.kv_s_per_token == pytest.approx(32 * 2048 * 0.375 / H100_STREAM, rel=1e-9)
    assert s2.kv_s_per_token == pytest.approx(s16.kv_s_per_token * 0.375 / 2.0, rel=1e-9)


def test_fp4_kv_needs_an_fp4_chip() -> None:
    with pytest.raises(SpecError, match=r"serving\.kv_precision.*fp4"):
        _deploy(kv_precision="fp4")
    assert _deploy("dgx-b200", kv_precision="fp4").kv_precision == "fp4"


def _closed(users: int, *, think_s: float = 0.5, max_batch: int = 256) -> dict[str, Any]:
    workload = {"arrival": "closed", "users": users, "think_time_s": think_s,
                "requests": 40 * users, "prompt_tokens": 256, "output_tokens": 128}  # fmt: skip
    sc = load_scenario(
        {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-h100", "count": 1},
            "serving": {
                "precision": "bf16",
                "plan": {"tp": 1, "dp": 1},
                "workload": workload,
                "scheduler": {"max_batch": max_batch},
            },
        }
    )
    return serve(sc).to_json()


def test_closed_loop_obeys_littles_law_and_saturates() -> None:
    runs = {n: _closed(n) for n in (1, 4, 16)}
    for n, run in runs.items():
        x, r = run["throughput"]["requests_per_s"], run["latency_s"]["e2e"]["mean"]
        assert run["completed"] == 40 * n
        assert x * (r + 0.5) == pytest.approx(n, rel=0.03)  # N = X·(R + Z)
    x = [runs[n]["throughput"]["requests_per_s"] for n in (1, 4, 16)]
    assert x[0] < x[1] < x[2]
    # one client never queues: its TTFT is one prefill iteration of its prompt
    step = resolve(load_scenario(_closed_scenario())).pools[0].step
    assert step is not None
    prefill = step.iteration_s(256, sampled=1, pairs=256 * 128, prompt=256)
    assert runs[1]["latency_s"]["ttft"]["p50"] == pytest.approx(prefill, rel=1e-6)
    # without think time 8 clients fill an engine of max_batch 8: 4x the clients queue
    small, big = _closed(8, think_s=0, max_batch=8), _closed(32, think_s=0, max_batch=8)
    ratio = big["throughput"]["requests_per_s"] / small["throughput"]["requests_per_s"]
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert big["latency_s"]["ttft"]["mean"] > 5 * small["latency_s"]["ttft"]["mean"]


def _closed_scenario() -> dict[str, Any]:
    return {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 1},
        "serving": {"precision": "bf16", "plan": {"tp": 1, "dp": 1}},
    }


@pytest.mark.parametrize(
    ("workload", "words"),
    [
        ({"arrival": "closed"}, "needs users"),
        ({"arrival": "offline", "users": 4}, "for arrival 'closed'"),
        ({"arrival": "closed", "users": 4, "think_time_s": -1}, "think_time_s"),
        ({"arrival": "closed", "users": 4, "rate_per_s": 3}, "rate_per_s is for arrival"),
    ],
)
def test_closed_loop_errors_name_the_field(workload: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words):
        load_scenario({**_closed_scenario(), "serving": {"workload": workload}})


def _af(ffn: dict[str, int] | None, *, attention_dp: int = 16, ep: int = 16) -> Deployment:
    plan: dict[str, Any] = {"tp": 1, "attention_dp": attention_dp, "ep": ep, "dp": 1}
    if ffn is not None:
        plan["ffn_disaggregation"] = ffn
    return resolve(
        load_scenario(
            {
                "model": "deepseek-v3",
                "cluster": {"system": "cloudmatrix-384", "count": 1},
                "serving": {"precision": "int8", "kv_precision": "int8", "plan": plan},
            }
        )
    )


def test_attention_ffn_transfer_by_hand() -> None:
    dep = _af({"ffn_gpus": 16, "micro_batches": 1})
    pool = dep.pools[0]
    assert pool.gpus == 32 and pool.dispatch == "attention_ffn"
    step = pool.step
    assert step is not None
    # 256 tokens · top-8 · hidden 7168 cross each way per MoE layer, int8 there, bf16 back;
    # 16 attention and 16 expert GPUs: each moves 1/16 of it over the UB fabric
    there_bytes = 256 * 8 * 7168 * 1 / 16
    back_bytes = 256 * 8 * 7168 * 2 / 16
    comm = CommModel(pool.cluster)
    group = place_group("ffn", 2, 16, pool.cluster)
    hop = comm.time_s("send_recv", there_bytes, group) + comm.time_s("send_recv", back_bytes, group)
    # one micro-batch overlaps nothing: all 58 MoE layers' transfers are exposed
    assert step.part("ep_comm", 256) == pytest.approx(58 * hop, rel=1e-9)
    assert step.part("ep_comm_hidden", 256) == 0.0
    # two ping-pong micro-batches hide the transfers behind the other's compute
    two = _af({"ffn_gpus": 16, "micro_batches": 2}).pools[0].step
    assert two is not None
    assert two.part("ep_comm", 256) < 0.1 * step.part("ep_comm", 256)
    assert two.part("ep_comm_hidden", 256) > 0.5 * step.part("ep_comm", 256)


def test_attention_ffn_moves_the_experts_and_scales_each_side() -> None:
    colo = _af(None, attention_dp=32, ep=32).pools[0].budget
    af = _af({"ffn_gpus": 16}).pools[0].budget
    # routed experts leave the attention GPUs: 58 layers · 256 experts / 32 GPUs there,
    # 256 / 16 per expert GPU, int8 (1 byte)
    expert = 44_040_192
    assert colo.weights_bytes - af.weights_bytes == pytest.approx(58 * 8 * expert, rel=1e-9)
    assert af.ffn_weights_bytes == 58 * 16 * expert
    assert af.fits and colo.ffn_weights_bytes == 0
    # too few expert GPUs cannot hold the experts
    assert not _af({"ffn_gpus": 4}, ep=4).pools[0].budget.fits
    # more expert GPUs for the same attention side: a faster iteration
    small = _af({"ffn_gpus": 8}, ep=8).pools[0].step
    big = _af({"ffn_gpus": 32}, ep=32).pools[0].step
    assert small is not None and big is not None
    assert big.base(2048) < small.base(2048)


def test_attention_ffn_errors_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"must equal ffn_disaggregation\.ffn_gpus"):
        _af({"ffn_gpus": 16}, ep=8)
    with pytest.raises(SpecError, match="mixture-of-experts"):
        _deploy(plan={"tp": 1, "ep": 2, "ffn_disaggregation": {"ffn_gpus": 2}})


def test_w8a8_gemm_rate_is_the_measured_int8_rate() -> None:
    # Ascend 910B: FlagPerf torch.mm 8192³ reaches 608.6 int8 TOPS and 304.3 bf16 TFLOP/s
    # (components/gemm.csv); a prefill-sized GEMM of Llama 3 8B's layer runs near them
    cluster = {"system": "atlas-800t-a2", "count": 1}
    sc = load_scenario({"model": "llama3-8b", "cluster": cluster, "serving": {"plan": {"tp": 1}}})
    tokens = np.array([8192.0])
    for precision, measured in (("int8", 608.6e12), ("bf16", 304.3e12)):
        layers = LayerCosts(
            model=sc.model,
            plan=PlanSpec(),
            cluster=sc.cluster,
            comm=CommModel(sc.cluster),
            precision=precision,
            dispatch="none",
        )
        hand = 2 * 8192 * LLAMA3_8B_LINEAR / measured
        assert float(layers.linear(LLAMA3_8B_LINEAR, tokens)[0]) == pytest.approx(hand, rel=0.03)
