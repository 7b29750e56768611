"""Fitting efficiency parameters from the component measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from superscale.calibrate.fit import fit_all, fit_gemm, main
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


def test_a_best_shape_alone_is_the_plateau() -> None:
    (bf16,) = [f for f in fit_gemm(chips().get("b200")) if f.precision == "bf16"]
    assert bf16.rows == 1
    assert bf16.fitted["large_gemm_fraction"] == pytest.approx(1745.0 / 2250.0, abs=1e-4)


def test_cli_writes_yaml_and_refuses_unknown_chips(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "fits.yaml"
    assert main(["--chip", "h100-sxm", "--out", str(out)]) == 0
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert {f["component"] for f in written} == {"gemm", "attention", "memory"}
    assert "h100-sxm" in capsys.readouterr().out
    assert main(["--chip", "h100-sxmm"]) == 2
    assert "did you mean 'h100-sxm'" in capsys.readouterr().err
