"""The profile loader and its interpolation: exact at measured points, clamped outside,
monotone between neighbours, and clear errors for malformed files."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from superscale.errors import SpecError
from superscale.hardware.catalog import chips
from superscale.hardware.profile import (
    EfficiencyProfile,
    ProfiledChip,
    efficiency_source,
    load_profile,
    parse_profile,
    profile_of,
    with_profile,
)

Make = Callable[..., dict[str, Any]]


def _write(tmp_path: Path, data: Any, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def test_round_trip_through_yaml(tmp_path: Path, make_profile: Make) -> None:
    profile = load_profile(_write(tmp_path, make_profile()))
    assert isinstance(profile, EfficiencyProfile)
    again = load_profile(_write(tmp_path, profile.model_dump(mode="json"), "q.yaml"))
    assert again == profile
    assert profile.peak_tflops["bf16"] == pytest.approx(800 * (8192 / (8192 + 256)) ** 3)


def test_gemm_rate_is_exact_at_a_measured_shape(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    point = next(p for p in profile.matmul["bf16"] if (p.m, p.n, p.k) == (1024, 128, 8192))
    assert profile.gemm_flops_per_s("bf16", (1024, 128, 8192)) == pytest.approx(point.tflops * 1e12)


def test_gemm_rate_between_points_lies_between_neighbours(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    low = profile.gemm_flops_per_s("bf16", (1024, 1024, 1024))
    high = profile.gemm_flops_per_s("bf16", (8192, 8192, 8192))
    mid = profile.gemm_flops_per_s("bf16", (3000, 3000, 3000))
    assert low is not None and high is not None and mid is not None
    assert low < mid < high


def test_out_of_range_shapes_clamp_to_the_measured_edge(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    top = profile.gemm_flops_per_s("bf16", (8192, 8192, 8192))
    assert profile.gemm_flops_per_s("bf16", (10**6, 10**6, 10**6)) == pytest.approx(top)
    bottom = profile.gemm_flops_per_s("bf16", (128, 128, 128))
    assert profile.gemm_flops_per_s("bf16", (1, 1, 1)) == pytest.approx(bottom)
    assert profile.memory_bytes_per_s(1) == pytest.approx(profile.memory_bytes_per_s(2**14))
    assert profile.memory_bytes_per_s(2**40) == pytest.approx(profile.best_memory_bytes_per_s)


def test_missing_points_still_interpolate(make_profile: Make) -> None:
    data = make_profile()
    full = parse_profile(data)
    # Keep a sparse, irregular subset: no longer a Cartesian grid.
    data["matmul"]["bf16"] = data["matmul"]["bf16"][::4]
    sparse = parse_profile(data)
    rates = [p.tflops * 1e12 for p in sparse.matmul["bf16"]]
    for shape in [(2000, 500, 4000), (128, 8192, 700), (5000, 5000, 200)]:
        value = sparse.gemm_flops_per_s("bf16", shape)
        assert value is not None and min(rates) <= value <= max(rates)
        reference = full.gemm_flops_per_s("bf16", shape)
        assert reference is not None and abs(math.log(value / reference)) < math.log(4)


def test_unmeasured_precision_gives_none(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    assert profile.gemm_flops_per_s("fp8", (1024, 1024, 1024)) is None
    assert profile.attention_flops_per_s("fp8", 2048) is None


def test_attention_by_seq_len_and_head_dim(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    d128 = profile.attention_flops_per_s("bf16", 2048, head_dim=128)
    d64 = profile.attention_flops_per_s("bf16", 2048, head_dim=64)
    either = profile.attention_flops_per_s("bf16", 2048)
    assert d128 == pytest.approx(300e12 * 2048 / 3072)
    assert d64 is not None and d128 is not None and either is not None
    assert d64 < either < d128
    assert profile.attention_flops_per_s("bf16", 10**6, head_dim=128) == pytest.approx(
        300e12 * 8192 / (8192 + 1024)
    )


def test_collective_lookup(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    assert profile.collective_bus_bytes_per_s("all_reduce", 2**25, 8) == pytest.approx(2e9)
    assert profile.collective_bus_bytes_per_s("all_gather", 2**25, 8) is None


@pytest.mark.parametrize(
    ("patch", "keyword"),
    [
        (lambda d: d.pop("matmul"), "matmul"),
        (lambda d: d.update(matmul={}), "at least one measured GEMM"),
        (lambda d: d.update(matmul={"bf16": []}), "matmul.bf16"),
        (lambda d: d.update(memory=[]), "memory"),
        (lambda d: d["matmul"]["bf16"].append(dict(d["matmul"]["bf16"][0])), "measured twice"),
        (lambda d: d["matmul"]["bf16"][0].update(tflops=-1), "greater than 0"),
        (lambda d: d["matmul"]["bf16"][0].update(mm=3), "unknown key 'mm'"),
        (lambda d: d["matmul"].update(bf32=d["matmul"]["bf16"]), "bf32"),
        (lambda d: d.update(format="superscale-profile/9"), "format must be"),
        (lambda d: d["device"].pop("date"), "date"),
        (lambda d: d["device"].update(kind="tpu"), "kind"),
    ],
)
def test_malformed_profiles_name_the_problem(
    tmp_path: Path, make_profile: Make, patch: Callable[[dict[str, Any]], Any], keyword: str
) -> None:
    data = make_profile()
    patch(data)
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_profile(path)
    assert keyword in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("matmul: [unclosed\n", "malformed YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("", "empty"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, keyword: str) -> None:
    with pytest.raises(SpecError, match=keyword):
        load_profile(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_profile(tmp_path / "nope.yaml")


def test_to_chip_describes_the_device(make_profile: Make) -> None:
    profile = parse_profile(make_profile())
    chip = profile.to_chip()
    assert isinstance(chip, ProfiledChip)
    assert chip.name == "cuda-test-accelerator"
    assert chip.peak_tflops["bf16"] == pytest.approx(profile.peak_tflops["bf16"], rel=1e-6)
    assert chip.hbm_gib == 80
    assert chip.hbm_bandwidth_bytes_per_s == pytest.approx(profile.best_memory_bytes_per_s)
    assert profile_of(chip) is profile
    assert "measured profile" in efficiency_source(chip)


def test_catalog_chips_use_the_documented_defaults(make_profile: Make) -> None:
    h100 = chips().get("h100-sxm")
    assert profile_of(h100) is None
    assert "documented defaults" in efficiency_source(h100)
    calibrated = with_profile(h100, parse_profile(make_profile()))
    assert calibrated.peak_tflops == h100.peak_tflops
    assert profile_of(calibrated) is not None


def test_profile_path_takes_catalog_names_only() -> None:
    from superscale.hardware.profile import profile_path

    for name in ("../../etc/passwd", "/etc/passwd", "a/b", "H100", "..", "x" * 100):
        assert profile_path(name) is None
