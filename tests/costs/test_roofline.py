"""The shared cost layer (costs/roofline.py): skinny GEMMs, and training and serving alike."""

from __future__ import annotations

import numpy as np
import pytest

from superscale.costs import roofline
from superscale.hardware.catalog import chips
from superscale.hardware.profile import named_profile, with_profile


def test_one_token_bf16_decode_gemm_by_hand() -> None:
    # H100: 3.35 TB/s × the catalog's 0.80 streaming fraction, 4 µs per kernel. A (1, 4096,
    # 4096) bf16 GEMM reads 32 MiB of weights; its 16-row tile computes in ~0.4 µs, so it
    # is the weight stream plus one kernel's overhead
    h100 = chips().get("h100-sxm")
    weights = 4096 * 4096 * 2.0
    seconds = roofline.gemm_time_s(h100, "bf16", (1, 4096, 4096), hbm_bytes=weights)
    assert seconds == pytest.approx(weights / (3.35e12 * 0.80) + 4e-6, rel=1e-9)


def test_rows_below_a_tile_cost_the_tile_and_above_it_nothing() -> None:
    h100 = chips().get("h100-sxm")

    def rate(m: float) -> float:
        return float(roofline.gemm_flops_per_s(h100, "bf16", (m, 8192, 8192), profile=None))

    # fewer rows than the 16-row tile: the tile's time, so the rate falls with the rows
    assert rate(1) == pytest.approx(rate(16) / 16)
    assert rate(8) == pytest.approx(rate(16) / 2)
    # from a tile up the rows do not slow the tensor-core rate (no half-performance in m)
    assert rate(16) == pytest.approx(rate(8192))
    assert rate(64) == pytest.approx(rate(8192))
    # n and k keep the Hockney factor of the catalog's d½ = 256
    narrow = float(roofline.gemm_flops_per_s(h100, "bf16", (8192, 256, 8192), profile=None))
    ref = 8192 / (8192 + 256)
    assert narrow / rate(8192) == pytest.approx(0.5 / ref)


def test_profile_prices_fewer_rows_than_measured_as_the_smallest_measured_gemm() -> None:
    h100 = chips().get("h100-sxm")
    chip = with_profile(h100, named_profile("fitted", "h100-sxm", None))
    profile = roofline.profile_for(chip, "gemm", "bf16")
    assert profile is not None and profile.smallest_m("bf16") == 16
    shape = (8192, 8192)

    def seconds(m: float) -> float:
        return float(2.0 * m * shape[0] * shape[1] / roofline.gemm_flops_per_s(
            chip, "bf16", (m, *shape), profile=profile
        ))  # fmt: skip

    # an m = 1 GEMM takes the measured m = 16 GEMM's time, not 1/16 of it
    assert seconds(1) == pytest.approx(seconds(16))
    times = [seconds(m) for m in (1, 2, 4, 8, 16, 32, 64)]
    assert times == sorted(times)
    # the array path (serving's curves) agrees with the scalar one
    ms = np.array([1.0, 4.0, 16.0, 64.0])
    many = roofline.gemm_flops_per_s(chip, "bf16", (ms, 8192.0, 8192.0), profile=profile)
    one = [float(roofline.gemm_flops_per_s(chip, "bf16", (m, 8192, 8192), profile=profile))
           for m in ms]  # fmt: skip
    assert np.asarray(many) == pytest.approx(one)
