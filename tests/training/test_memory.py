"""Memory model checks against Korthikanti et al. 2022 (Sec. 4, Tables 2 and 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from superscale import load_scenario
from superscale.models.catalog import models
from superscale.pipeline import simulate
from superscale.training.layer import Shard
from superscale.training.memory import layer_activation_bytes

# (model, t, micro-batch) of Korthikanti et al. Table 3: 22B on 8 GPUs, 175B with t=8
CONFIGS = [("gpt-22b", 8, 4), ("gpt3-175b", 8, 1)]


def _shard(tp: int, b: int, *, sp: bool) -> Shard:
    return Shard(
        micro_batch=b,
        seq_len=2048,
        tp=tp,
        sequence_parallel=sp,
        flash_attention=False,
        dropout=True,
    )


@pytest.mark.parametrize(("name", "tp", "b"), CONFIGS)
def test_activation_bytes_per_layer_match_korthikanti(name: str, tp: int, b: int) -> None:
    m = models().get(name)
    s, h, a = 2048, m.hidden, m.heads
    sbh = s * b * h
    cases = [  # (sequence parallel, recompute, Korthikanti's bytes per layer)
        (False, "none", sbh * (10 + 24 / tp + 5 * a * s / (h * tp))),  # tensor parallel
        (True, "none", sbh / tp * (34 + 5 * a * s / h)),  # + sequence parallel
        (True, "selective", sbh / tp * 34),  # + selective recomputation
        (True, "full", 2 * sbh / tp),  # full recomputation keeps the layer input
    ]
    for sp, recompute, expected in cases:
        got = layer_activation_bytes(m, _shard(tp, b, sp=sp), moe_layer=False, recompute=recompute)
        assert got == pytest.approx(expected, rel=1e-9), (sp, recompute)


def test_flash_attention_drops_the_score_term() -> None:
    m = models().get("gpt3-175b")
    fused = Shard(
        micro_batch=1,
        seq_len=2048,
        tp=8,
        sequence_parallel=True,
        flash_attention=True,
        dropout=True,
    )
    got = layer_activation_bytes(m, fused, moe_layer=False, recompute="none")
    sbh = 2048 * m.hidden
    # 34·sbh/t plus the fp32 log-sum-exp per head and query (tiny)
    assert got == pytest.approx(sbh / 8 * 34 + 4 * m.heads / 8 * 2048, rel=1e-9)


def _llama_scenario(**parallel: Any) -> dict[str, Any]:
    return {
        "model": "llama3-70b",
        "cluster": {"system": "dgx-h100", "count": 8},
        "training": {"seq_len": 8192, "global_batch": 128},
        "parallel": {"tp": 8, "pp": 4, **parallel},
    }


def test_zero_stages_shard_progressively() -> None:
    mems = [simulate(load_scenario(_llama_scenario(zero=z))).memory for z in (0, 1, 2, 3)]
    assert mems[1].optimizer_bytes == pytest.approx(mems[0].optimizer_bytes / 2)
    assert mems[2].grads_bytes == pytest.approx(mems[1].grads_bytes / 2)
    # ZeRO-3 also holds two gathered layers (the one computing and the one prefetched)
    m = models().get("llama3-70b")
    gathered = 2 * 2 * (m.attention_params + m.dense_mlp_params) / 8  # bf16, two layers, tp 8
    assert mems[3].params_bytes == pytest.approx(mems[2].params_bytes / 2 + gathered)
    assert mems[0].peak_bytes > mems[1].peak_bytes > mems[2].peak_bytes > mems[3].peak_bytes


def test_recompute_lowers_activations_and_costs_time() -> None:
    none = simulate(load_scenario(_llama_scenario(recompute="none")))
    full = simulate(load_scenario(_llama_scenario(recompute="full")))
    assert full.memory.activations_bytes < none.memory.activations_bytes / 10
    assert full.step_time_s > none.step_time_s


def test_plan_that_does_not_fit_says_by_how_much() -> None:
    result = simulate(
        load_scenario({**_llama_scenario(), "parallel": {"tp": 2, "pp": 1, "zero": 0}})
    )
    data = result.to_json()
    assert data["fits"] is False
    assert data["memory"]["over_by_gib"] == pytest.approx(
        data["memory"]["peak_gib_per_gpu"] - data["memory"]["hbm_gib"]
    )


def test_zero3_prefetch_costs_some_time_but_saves_memory() -> None:
    z1 = simulate(load_scenario(_llama_scenario(zero=1)))
    z3 = simulate(load_scenario(_llama_scenario(zero=3)))
    assert z3.memory.peak_bytes < z1.memory.peak_bytes
    assert z3.step_time_s >= z1.step_time_s


# ---- MoE memory as DeepSeek-V3 ran it -------------------------------------------------
DEEPSEEK_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deepseek-v3-2048xh800.yaml"


def _deepseek(**changes: Any) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(DEEPSEEK_EXAMPLE.read_text(encoding="utf-8"))
    for section, fields in changes.items():
        data[section] = {**data[section], **fields}
        data[section] = {k: v for k, v in data[section].items() if v is not None}
    return data


def test_deepseek_v3_published_plan_fits_in_80_gb() -> None:
    result = simulate(load_scenario(_deepseek())).to_json()
    assert result["fits"], result["memory"]
    assert result["memory"]["peak_gib_per_gpu"] <= 80.0


def test_deepseek_v3_needs_its_memory_techniques() -> None:
    # the same plan without recomputation, fp8 storage and bf16 moments overfills the GPU
    plain = _deepseek(
        training={"fp8_activations": None, "adam_moments": None},
        parallel={"recompute": None, "recompute_modules": None},
    )
    assert not simulate(load_scenario(plain)).to_json()["fits"]


@pytest.mark.parametrize("module", ["layernorm", "mla_up_proj", "moe_act", "moe"])
def test_each_recomputed_module_trades_memory_for_time(module: str) -> None:
    base = _deepseek(parallel={"recompute_modules": ["core_attn"]})
    named = _deepseek(parallel={"recompute_modules": ["core_attn", module]})
    before, after = (simulate(load_scenario(d)).to_json() for d in (base, named))
    assert after["memory"]["activations_gib"] < before["memory"]["activations_gib"]
    # the module runs again before its backward: a longer step (the critical rank's compute
    # alone can fall when another DualPipe rank becomes critical), and more hardware FLOPs
    # where it holds GEMMs (norms and activations count none)
    work = [r["hardware_tflops_per_gpu"] * r["step_time_s"] for r in (before, after)]
    if module in {"mla_up_proj", "moe"}:
        assert work[1] > work[0] * (1 + 1e-6)
    else:
        assert work[1] == pytest.approx(work[0], rel=1e-12)
    assert after["step_time_s"] > before["step_time_s"]


def test_fp8_storage_halves_the_kept_expert_inputs() -> None:
    model, sh = models().get("deepseek-v3"), Shard(micro_batch=1, seq_len=4096, ep=64)
    fp8 = Shard(micro_batch=1, seq_len=4096, ep=64, fp8_activations=True)
    bf16_bytes = layer_activation_bytes(model, sh, moe_layer=True, recompute="none")
    fp8_bytes = layer_activation_bytes(model, fp8, moe_layer=True, recompute="none")
    # per routed copy: h + 2·ffn inputs at 2 B -> 1 B (out-proj input too), SwiGLU output stays
    moe, h, tok = model.moe, model.hidden, 4096
    assert moe is not None
    saved = tok * moe.top_k * (h + 2 * moe.expert_ffn_hidden)
    saved += tok * moe.shared_experts * 2 * moe.shared_ffn + tok * model.heads * 128
    assert bf16_bytes - fp8_bytes == pytest.approx(saved)


def test_bf16_moments_take_8_of_12_optimizer_bytes() -> None:
    fp32 = simulate(load_scenario(_deepseek(training={"adam_moments": "fp32"}))).to_json()
    bf16 = simulate(load_scenario(_deepseek())).to_json()
    ratio = bf16["memory"]["optimizer_gib"] / fp32["memory"]["optimizer_gib"]
    assert ratio == pytest.approx(8 / 12)


def test_fp8_storage_needs_fp8_training() -> None:
    from superscale.errors import SpecError

    with pytest.raises(SpecError, match="fp8_activations needs precision fp8"):
        load_scenario(_deepseek(training={"precision": "bf16"}))
    # the modules count only under selective recomputation, as in Megatron
    none = simulate(load_scenario(_deepseek(parallel={"recompute": "none"}))).to_json()
    plain = _deepseek(parallel={"recompute": "none", "recompute_modules": None})
    assert none["memory"] == simulate(load_scenario(plain)).to_json()["memory"]


def test_gradients_are_kept_in_the_dtype_they_are_reduced_in() -> None:
    """Megatron's DDP accumulates main gradients in one buffer of the reduce dtype: fp32
    (Megatron-LM's default for bf16) is 4 B/param, bf16 (--grad-reduce-in-bf16, the
    Megatron-Bridge presets) 2 B; nothing else in memory moves."""

    def memory(dtype: str) -> dict[str, float]:
        data = {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-h100", "count": 1},
            "training": {"seq_len": 4096, "global_batch": 16},
            "parallel": {"tp": 8, "zero": 1, "grad_reduce_dtype": dtype},
        }
        return dict(simulate(load_scenario(data)).to_json()["memory"])

    fp32, bf16 = memory("fp32"), memory("bf16")
    assert bf16["grads_gib"] == pytest.approx(fp32["grads_gib"] / 2)
    for key in ("params_gib", "optimizer_gib", "activations_gib"):
        assert bf16[key] == pytest.approx(fp32[key])
    default = {
        "model": "llama3-8b",
        "cluster": {"system": "dgx-h100", "count": 1},
        "training": {"seq_len": 4096, "global_batch": 16},
    }
    assert load_scenario(default).parallel.grad_reduce_dtype == "fp32"
