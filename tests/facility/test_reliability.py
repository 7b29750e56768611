"""Failure rates, checkpoint intervals and goodput against published figures and closed forms."""

from __future__ import annotations

import math
from typing import Any

import pytest

from superscale import load_scenario
from superscale.facility import assess
from superscale.facility import reliability as rel
from superscale.facility.catalog import failure_causes

LLAMA3: dict[str, Any] = {
    "model": "llama3-405b",
    "cluster": "h100-16k",
    "training": {"seq_len": 8192, "global_batch": 2048},
    "parallel": {"tp": 8, "pp": 16},
}


def test_table5_counts_sum_to_419() -> None:
    assert sum(c.interruptions for c in failure_causes()) == rel.REFERENCE_INTERRUPTIONS


def test_default_rates_reproduce_llama3_interruptions() -> None:
    """Dubey et al. 2024 Table 5: 419 unexpected interruptions in 54 days on 16,384 GPUs."""
    out = assess(load_scenario(LLAMA3), utilization=0.8, seconds_per_unit=10, tokens_per_unit=1e7)
    predicted = out["reliability"]["interruptions_per_day"] * rel.REFERENCE_DAYS
    assert out["reliability"]["components"]["gpus"] == 16_384
    assert out["reliability"]["components"]["hosts"] == 2_048
    assert predicted == pytest.approx(419, rel=0.10)
    # About one interruption every 3 hours (reliability.md: cluster MTBF ~3.1 h).
    assert out["reliability"]["mtbf_h"] == pytest.approx(3.1, rel=0.05)


def test_interruptions_scale_with_the_cluster() -> None:
    small = {**LLAMA3, "cluster": {"system": "dgx-h100", "count": 128}}
    big = assess(load_scenario(LLAMA3), utilization=1, seconds_per_unit=1, tokens_per_unit=1)
    out = assess(load_scenario(small), utilization=1, seconds_per_unit=1, tokens_per_unit=1)
    ratio = (
        big["reliability"]["interruptions_per_day"] / out["reliability"]["interruptions_per_day"]
    )
    assert 14 < ratio < 18  # 16x the GPUs and hosts, a deeper fabric


def test_failure_rate_multiplier_scales_interruptions() -> None:
    doubled = {**LLAMA3, "facility": {"failure_rate_multiplier": 2.0}}
    base = assess(load_scenario(LLAMA3), utilization=1, seconds_per_unit=1, tokens_per_unit=1)
    out = assess(load_scenario(doubled), utilization=1, seconds_per_unit=1, tokens_per_unit=1)
    assert out["reliability"]["interruptions_per_day"] == pytest.approx(
        2 * base["reliability"]["interruptions_per_day"]
    )


@pytest.mark.parametrize(("delta", "mtbf"), [(30.0, 11_000.0), (120.0, 3600.0), (5.0, 1e6)])
def test_young_interval_is_its_closed_form(delta: float, mtbf: float) -> None:
    assert rel.young_interval_s(delta, mtbf) == pytest.approx(math.sqrt(2 * delta * mtbf))


@pytest.mark.parametrize(("delta", "mtbf"), [(30.0, 11_000.0), (120.0, 3600.0), (5.0, 1e6)])
def test_daly_interval_is_its_closed_form(delta: float, mtbf: float) -> None:
    """Daly 2006 eq. 37: √(2δM)·[1 + ⅓√(δ/2M) + (δ/2M)/9] − δ."""
    x = delta / (2 * mtbf)
    expected = math.sqrt(2 * delta * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - delta
    assert rel.daly_interval_s(delta, mtbf) == pytest.approx(expected)
    # Young's first-order form is the leading term: close when δ << M.
    assert rel.daly_interval_s(delta, mtbf) == pytest.approx(
        rel.young_interval_s(delta, mtbf), rel=0.05 + math.sqrt(x)
    )


def test_daly_interval_is_the_mtbf_when_checkpoints_are_too_slow() -> None:
    assert rel.daly_interval_s(5000.0, 2000.0) == 2000.0


def test_daly_interval_maximises_goodput() -> None:
    delta, mtbf, restart = 60.0, 10_800.0, 600.0
    best = rel.daly_interval_s(delta, mtbf)

    def kept(tau: float) -> float:
        return rel.goodput(interval_s=tau, checkpoint_s=delta, restart_s=restart, mtbf_s=mtbf)

    assert kept(best) >= kept(0.7 * best) and kept(best) >= kept(1.4 * best)


def test_goodput_closed_form() -> None:
    # (1 - (R + (τ+δ)/2)/M) / (1 + δ/τ) with τ=1000, δ=100, R=500, M=10000.
    value = rel.goodput(interval_s=1000, checkpoint_s=100, restart_s=500, mtbf_s=10_000)
    assert value == pytest.approx((1 - (500 + 550) / 10_000) / 1.1)
    assert rel.goodput(interval_s=10, checkpoint_s=10, restart_s=1e6, mtbf_s=100) == 0.0


def test_checkpoint_holds_weights_and_adam_states() -> None:
    assert rel.checkpoint_bytes(1e9) == 14e9  # 2 B bf16 + 12 B fp32 master, m, v


def test_llama3_goodput_is_above_90_percent() -> None:
    """Llama 3 reports more than 90 % effective training time (Dubey et al. 2024)."""
    out = assess(load_scenario(LLAMA3), utilization=0.8, seconds_per_unit=10, tokens_per_unit=1e7)
    assert 0.90 < out["reliability"]["goodput"] < 1.0


def test_wall_clock_time_to_train_includes_goodput() -> None:
    run = {**LLAMA3, "training": {**LLAMA3["training"], "tokens": 15.6e12}}
    out = assess(load_scenario(run), utilization=0.8, seconds_per_unit=10, tokens_per_unit=1.6e7)
    r = out["reliability"]
    assert r["useful_days"] == pytest.approx(15.6e12 / 1.6e6 / 86400)
    assert r["wall_clock_days"] == pytest.approx(r["useful_days"] / r["goodput"])
