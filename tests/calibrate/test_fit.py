"""Fitting efficiency parameters from the component measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from superscale.calibrate.fit import fit_all, fit_gemm, main, sustained_fraction
from superscale.hardware.catalog import chips


def test_a100_gemm_sweep_fits_the_shape_model() -> None:
    (fp16,) = [f for f in fit_gemm(chips().get("a100-sxm-80g")) if f.precision == "fp16"]
    assert fp16.rows >= 8  # the cuBLASLt size sweep and the FlagPerf rows
    assert fp16.median_abs_error_pct < 5.0
    assert 0.7 < fp16.fitted["large_gemm_fraction"] <= 1.0
    assert fp16.sources  # every fit names where its rows come from


def test_every_fit_has_rows_an_error_and_the_catalog_value() -> None:
    fits = fit_all()
    assert {f.component for f in fits} == {"gemm", "attention", "memory"}
    for f in fits:
        assert f.rows >= 1 and f.median_abs_error_pct >= 0
        assert set(f.fitted) == set(f.catalog)


def test_a_best_shape_alone_is_the_plateau_at_sustained_clocks() -> None:
    """B200 has one MAMF row per precision (a short run); GB200's fp8 rows pair a MAMF best
    shape (3,615.6 TFLOP/s) with Azure's 10,000-warm-up sweep (best 2,906.9): B200 takes
    that sustained fraction."""
    (bf16,) = [f for f in fit_gemm(chips().get("b200")) if f.precision == "bf16"]
    assert bf16.rows == 1
    sustained = 1745.0e12 * (2906.9 / 3615.6)  # at MAMF's best shape (1792, 16128, 3072)
    flops = 2.0 * 1792 * 16128 * 3072
    compute_s = flops / sustained - 4e-6  # less the catalog's 4 us per kernel
    expected = flops / compute_s / 2250e12
    assert bf16.fitted["large_gemm_fraction"] == pytest.approx(expected, abs=1e-4)
    assert "gb200" in bf16.note


def test_sustained_rows_replace_short_runs_where_both_exist() -> None:
    """H100 fp8: the MAMF best shape (1,402.6) is left out beside Azure's nine sustained
    sweep rows; with no sustained pair (MI300X bf16) the short run stands as measured."""
    (fp8,) = [f for f in fit_gemm(chips().get("h100-sxm")) if f.precision == "fp8"]
    assert fp8.rows == 9 and not fp8.note
    assert sustained_fraction(chips().get("h100-sxm"))[0] == pytest.approx(1382.2 / 1402.6)
    (bf16,) = [f for f in fit_gemm(chips().get("mi300x")) if f.precision == "bf16"]
    assert bf16.fitted["large_gemm_fraction"] == pytest.approx(668.4 / 1300.0, abs=2e-3)
    assert "as measured" in bf16.note


def test_cli_writes_yaml_and_refuses_unknown_chips(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "fits.yaml"
    assert main(["--chip", "h100-sxm", "--out", str(out)]) == 0
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert {f["component"] for f in written} == {"gemm", "attention", "memory"}
    assert "h100-sxm" in capsys.readouterr().out
    assert main(["--chip", "h100-sxmm"]) == 2
    assert "did you mean 'h100-sxm'" in capsys.readouterr().err


# --- fitted profiles --------------------------------------------------------------------------


def _fitted(chip_name: str):  # type: ignore[no-untyped-def]
    from superscale.calibrate.fit import ANALOGUES, fitted_profile

    names = [chip_name] + ([ANALOGUES[chip_name]] if chip_name in ANALOGUES else [])
    return fitted_profile(chips().get(chip_name), fit_all(names), date="2026-12-02")


def test_fitted_profile_reproduces_the_gemm_fit_on_its_grid() -> None:
    from superscale.calibrate.fit import gemm_model

    chip = chips().get("a100-sxm-80g")
    (fp16,) = [f for f in fit_gemm(chip) if f.precision == "fp16"]
    profile = _fitted("a100-sxm-80g")
    model = gemm_model(chip, fp16)
    for shape in ((16384, 4096, 1024), (64, 16384, 16384), (256, 256, 256)):
        expected = model.flops_per_s(shape)
        assert profile.gemm_flops_per_s("fp16", shape) == pytest.approx(expected, rel=1e-4)
    (gemm,) = [p for p in profile.provenance if p.component == "gemm" and p.precision == "fp16"]
    assert gemm.rows == fp16.rows and gemm.median_abs_error_pct == fp16.median_abs_error_pct
    assert not gemm.estimate and gemm.sources


def test_gemm_model_is_the_plateau_the_memory_roofline_and_a_fixed_time() -> None:
    """Hand computation on H100 fp8 (peak 1979 TFLOP/s, HBM 3.35 TB/s x its fitted memory
    fraction): a large GEMM runs at peak·f less t0's share, a (802816, 192, 768) one is
    memory-bound (operands at 1 B, output at 2 B), a 1024³ one is mostly t0."""
    from superscale.calibrate.fit import _hbm_bytes_per_s, gemm_model

    chip = chips().get("h100-sxm")
    (fp8,) = [f for f in fit_gemm(chip) if f.precision == "fp8"]
    f, t0 = fp8.fitted["large_gemm_fraction"], fp8.fitted["gemm_overhead_us"] * 1e-6
    model = gemm_model(chip, fp8)
    flops = 2.0 * 8192**3
    assert model.flops_per_s((8192, 8192, 8192)) == pytest.approx(
        flops / (flops / (1979e12 * f) + t0)
    )
    m, n, k = 802816, 192, 768
    moved = (m * k + k * n) * 1.0 + m * n * 2.0
    expected = 2.0 * m * n * k / (moved / _hbm_bytes_per_s(chip) + t0)
    assert model.flops_per_s((m, n, k)) == pytest.approx(expected)
    small = model.flops_per_s((1024, 1024, 1024))
    assert t0 > 0.5 * 2.0 * 1024**3 / small  # more than half its time is the fixed part
    # the sweep itself: 1024³ measured at 274.1, 2048³ at 1,011.3 TFLOP/s (Azure, H100 fp8)
    assert small / 1e12 == pytest.approx(274.1, rel=0.15)
    assert model.flops_per_s((2048, 2048, 2048)) / 1e12 == pytest.approx(1011.3, rel=0.15)


def test_fitted_profile_memory_is_the_fraction_plus_the_kernel_overhead() -> None:
    chip = chips().get("h100-sxm")
    (memory,) = [f for f in fit_all(["h100-sxm"]) if f.component == "memory"]
    profile = _fitted("h100-sxm")
    rate = chip.hbm_bandwidth_bytes_per_s * memory.fitted["memory_fraction"]
    size = 2**30
    expected = size / (size / rate + chip.efficiency.kernel_overhead_us * 1e-6)
    assert profile.memory_bytes_per_s(size) == pytest.approx(expected, rel=1e-4)
    assert profile.memory_bytes_per_s(4096) < 0.1 * rate  # a tiny kernel is launch-bound


def test_fitted_attention_points_are_the_best_measured_kernel() -> None:
    from superscale.calibrate.components import component_rows

    profile = _fitted("h100-sxm")
    best = max(
        float(r["achieved_tflops"])
        for r in component_rows("attention")
        if r["chip"].startswith("H100")
        and r["pass"] == "fwd+bwd"
        and r["causal"] == "True"
        and r["seq_len"] == "16384"
        and r["head_dim"] == "128"
    )
    measured = profile.attention_flops_per_s("bf16", 16384, 128)
    assert measured == pytest.approx(best * 1e12, rel=1e-9)


def test_blackwell_attention_is_the_b200_headline_pair_by_the_flash_convention() -> None:
    """B200's dense-prefill kernel: 1,460 TFLOP/s forward, 1,000 backward (backward doing
    2.5x the forward's work): 3.5 / (1/1460 + 2.5/1000) forward + backward. GB200 takes that
    fraction of its own 16-bit peak, marked estimate."""
    from superscale.calibrate.fit import headline_attention

    expected = 3.5 / (1 / 1460 + 2.5 / 1000)
    found = headline_attention("b200")
    assert found is not None and found[0] == pytest.approx(expected)
    b200, gb200 = _fitted("b200"), _fitted("gb200")
    assert b200.attention_flops_per_s("bf16", 4096, 128) == pytest.approx(expected * 1e12, rel=1e-3)
    scale = chips().get("gb200").peak_tflops["bf16"] / chips().get("b200").peak_tflops["bf16"]
    assert gb200.attention_flops_per_s("bf16", 4096, 128) == pytest.approx(
        expected * scale * 1e12, rel=1e-3
    )
    own = [p for p in b200.provenance if p.component == "attention"]
    borrowed = [p for p in gb200.provenance if p.component == "attention"]
    assert not own[0].estimate and borrowed[0].estimate and "b200" in borrowed[0].method


def test_fitted_collectives_are_the_whole_node_nccl_tests_rows() -> None:
    """A100: Azure ND A100 v4's 24 all-reduce sizes on 8 GPUs (and FlagPerf's 4 GiB row,
    the same size as one of them: the best kept), with a provenance entry; H200 leaves out
    the rows that forced NVLS off, and its single-size 4-7 GPU rows price nothing."""
    a100 = _fitted("a100-sxm-80g")
    points = [p for p in a100.collectives if (p.collective, p.ranks) == ("all_reduce", 8)]
    assert len(points) == 24 == len({p.bytes for p in points})
    sixteen = next(p for p in points if p.bytes == 16 * 2**20)
    assert sixteen.bus_gb_per_s == pytest.approx(109.22)
    (entry,) = [p for p in a100.provenance if p.component == "collective"]
    assert entry.precision == "all_reduce x8" and entry.rows == 24 and not entry.estimate
    h200 = _fitted("h200-sxm")
    assert {p.ranks for p in h200.collectives} == {8}
    big = [p for p in h200.collectives if p.collective == "all_reduce" and p.bytes == 8 * 2**30]
    assert len(big) == 1 and big[0].bus_gb_per_s > 400  # NVLS, not the forced ring's ~370
    assert _fitted("c600").collectives == ()  # no rows of its own


def test_a_chip_without_rows_borrows_its_analogue_marked_estimate() -> None:
    h800 = _fitted("h800-sxm")  # H100 silicon: bf16 GEMM rows exist for the H100 only
    (gemm,) = [p for p in h800.provenance if p.component == "gemm" and p.precision == "bf16"]
    assert gemm.estimate and gemm.rows == 0 and "h100-sxm" in gemm.method
    (own,) = [p for p in h800.provenance if p.component == "gemm" and p.precision == "fp8"]
    assert not own.estimate and own.rows > 0  # its own DeepGEMM rows
    c600 = _fitted("c600")  # no GEMM rows for any MetaX part
    assert all(p.estimate for p in c600.provenance if p.component == "gemm")


def test_shipped_fitted_profiles_are_what_the_fit_writes(tmp_path: Path) -> None:
    from importlib import resources

    shipped = Path(str(resources.files("superscale.hardware.catalog").joinpath("fitted")))
    assert main(["--profiles", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert names == sorted(p.name for p in shipped.glob("*.yaml"))
    assert len(names) == len(list(chips().names()))  # one per catalog chip
    for name in names:
        fresh = yaml.safe_load((tmp_path / name).read_text(encoding="utf-8"))
        kept = yaml.safe_load((shipped / name).read_text(encoding="utf-8"))
        fresh["device"].pop("date"), kept["device"].pop("date")
        assert fresh == kept, f"{name}: rerun python -m superscale.calibrate.fit --profiles"


def test_profiles_dir_that_cannot_be_written_is_one_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    assert main(["--chip", "h100-sxm", "--profiles", str(blocker / "sub")]) == 2
    assert "--profiles" in capsys.readouterr().err
