"""The shared cost layer (costs/roofline.py): skinny GEMMs, and training and serving alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from superscale import load_scenario
from superscale.collectives.tuner import CommModel
from superscale.costs import roofline
from superscale.costs.compute import compute_time_s
from superscale.hardware.catalog import chips
from superscale.hardware.profile import fitted_profile_path, named_profile, with_profile
from superscale.inference.deploy import resolve
from superscale.inference.layers import LayerCosts
from superscale.models.catalog import models
from superscale.program.ops import ComputeOp
from superscale.scenario.serving import PlanSpec


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


def test_profile_prices_rows_below_its_ridge_at_the_ridge_rate_padded_to_a_tile() -> None:
    h100 = chips().get("h100-sxm")
    chip = with_profile(h100, named_profile("fitted", "h100-sxm", None))
    profile = roofline.profile_for(chip, "gemm", "bf16")
    assert profile is not None
    # H100 bf16 on its fitted profile: best GEMM over best copy rate, 2 bytes an element
    ridge = profile.peak_tflops["bf16"] * 1e12 * 2.0 / (2.0 * profile.best_memory_bytes_per_s)
    assert roofline.ridge_rows(profile, "bf16") == pytest.approx(ridge)
    assert 200 < ridge < 300
    shape = (8192, 8192)

    def seconds(m: float) -> float:
        return float(2.0 * m * shape[0] * shape[1] / roofline.gemm_flops_per_s(
            chip, "bf16", (m, *shape), profile=profile
        ))  # fmt: skip

    # an m = 1 GEMM computes the 16-row tile, at the rate the profile has at the ridge
    at_ridge = profile.gemm_flops_per_s("bf16", (ridge, *shape))
    assert at_ridge is not None
    assert seconds(1) == pytest.approx(seconds(16))
    assert seconds(16) == pytest.approx(2.0 * 16 * 8192 * 8192 / (at_ridge * 0.8))
    times = [seconds(m) for m in (1, 2, 4, 8, 16, 32, 64, 256, 1024)]
    assert times == sorted(times)

    # so a decode GEMM is memory-bound on the bytes the caller stores: int4 weights (0.52 B)
    # save their bytes under bf16 math, as on the catalog formulas
    def decode_s(width: float) -> float:
        return float(roofline.gemm_time_s(chip, "bf16", (1, *shape), hbm_bytes=8192**2 * width))

    for width in (0.52, 2.0):
        stream = roofline.memory_bytes_per_s(chip, 8192**2 * width, profile=profile)
        assert decode_s(width) == pytest.approx(8192**2 * width / stream)
    assert decode_s(0.52) < 0.35 * decode_s(2.0)
    # the array path (serving's curves) agrees with the scalar one
    ms = np.array([1.0, 4.0, 16.0, 64.0])
    many = roofline.gemm_flops_per_s(chip, "bf16", (ms, 8192.0, 8192.0), profile=profile)
    one = [float(roofline.gemm_flops_per_s(chip, "bf16", (m, 8192, 8192), profile=profile))
           for m in ms]  # fmt: skip
    assert np.asarray(many) == pytest.approx(one)


@pytest.mark.parametrize("tokens", [1, 16, 300, 8192])
def test_serving_and_training_price_one_gemm_shape_the_same(tokens: int) -> None:
    # Llama 3 8B at tp 1: a serving layer's weights as one bf16 GEMM over `tokens` rows, and
    # the training op of the same shape, work and bytes
    scenario = load_scenario(
        {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-h100", "count": 1},
            "serving": {"precision": "bf16", "plan": {"tp": 1, "dp": 1}},
        }
    )
    layers = LayerCosts(
        model=models().get("llama3-8b"),
        plan=PlanSpec(tp=1),
        cluster=scenario.cluster,
        comm=CommModel(scenario.cluster),
        precision="bf16",
        dispatch="none",
    )
    elements = 4096.0 * 14336
    serving = float(layers.linear(elements, np.array([float(tokens)]), kernels=1)[0])
    op = ComputeOp(
        name="mlp_up",
        kind="gemm",
        flops=2.0 * tokens * elements,
        hbm_bytes=2.0 * elements,
        shape=(tokens, 4096, 4096),
        kernels=1,
    )
    training = float(compute_time_s(op, scenario.cluster.chip, "bf16"))
    assert serving == pytest.approx(training, rel=1e-12)


def _faster_profile(tmp_path: Path, chip: str, factor: float) -> Path:
    """The chip's fitted profile with every GEMM, copy and attention rate × `factor`."""
    path = fitted_profile_path(chip)
    assert path is not None
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for points in data["matmul"].values():
        for p in points:
            p["tflops"] *= factor
    for p in data["memory"]:
        p["gb_per_s"] *= factor
    for points in data.get("attention", {}).values():
        for p in points:
            p["tflops"] *= factor
    out = tmp_path / f"{chip}-faster.yaml"
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


def test_serving_reads_the_scenario_profile(tmp_path: Path) -> None:
    def decode_iteration_s(profile: str | None) -> float:
        cluster: dict[str, Any] = {"system": "dgx-h100", "count": 1}
        if profile is not None:
            cluster["profile"] = profile
        spec = {
            "model": "llama3-8b",
            "cluster": cluster,
            "serving": {"precision": "bf16", "plan": {"tp": 1, "dp": 1}},
        }
        step = resolve(load_scenario(spec)).pools[0].step
        assert step is not None
        # 32 decoding requests with 1,000 tokens of context each: one output token apiece
        return step.iteration_s(32, sampled=32, context=32_000)

    fitted = decode_iteration_s("fitted")
    faster = decode_iteration_s(str(_faster_profile(tmp_path, "h100-sxm", 2.0)))
    assert fitted != pytest.approx(decode_iteration_s(None))  # the profile is read
    assert faster < 0.7 * fitted  # twice the rates: the GPU share of the step about halves
