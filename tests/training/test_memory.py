"""Memory model checks against Korthikanti et al. 2022 (Sec. 4, Tables 2 and 3)."""

from __future__ import annotations

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
    assert mems[3].params_bytes == pytest.approx(mems[2].params_bytes / 2)
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
