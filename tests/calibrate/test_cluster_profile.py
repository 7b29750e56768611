"""`cluster.profile`: a scenario prices its chip from a fitted or a calibrated profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.calibrate.conftest import profile_dict

from superscale.errors import SpecError
from superscale.hardware.profile import ProfiledChip, efficiency_source
from superscale.pipeline import simulate
from superscale.scenario import load_scenario

BASE: dict[str, Any] = {
    "model": "llama3-8b",
    "cluster": {"system": "dgx-h100", "count": 1},
    "training": {"seq_len": 4096, "global_batch": 16, "precision": "bf16"},
    "parallel": {"tp": 1, "micro_batch": 1, "zero": 1, "recompute": "full"},
}


def _with_profile(profile: str) -> dict[str, Any]:
    return {**BASE, "cluster": {**BASE["cluster"], "profile": profile}}


def test_fitted_profile_is_swapped_in_and_named_by_check() -> None:
    scenario = load_scenario(_with_profile("fitted"))
    chip = scenario.cluster.chip
    assert isinstance(chip, ProfiledChip) and chip.profile.device.kind == "fitted"
    assert (
        chip.name == "h100-sxm" and chip.peak_tflops == load_scenario(BASE).cluster.chip.peak_tflops
    )
    assert "fitted from component measurements" in efficiency_source(chip)
    assert scenario.cluster.profile == "fitted"


def test_a_calibrated_profile_file_prices_the_step(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast.yaml", tmp_path / "slow.yaml"
    fast.write_text(yaml.safe_dump(profile_dict()), encoding="utf-8")
    slow.write_text(yaml.safe_dump(profile_dict(matmul_scale=0.5)), encoding="utf-8")
    scenario_path = tmp_path / "run.yaml"
    t_fast, t_slow = [], []
    for profile, times in ((fast, t_fast), (slow, t_slow)):
        scenario_path.write_text(yaml.safe_dump(_with_profile(profile.name)), encoding="utf-8")
        times.append(simulate(load_scenario(scenario_path)).to_json()["breakdown_s"]["compute"])
    # Half the measured GEMM rate: the GEMM-bound compute takes between 1.5 and 2 times as long.
    assert 1.5 * t_fast[0] < t_slow[0] <= 2.0 * t_fast[0] * 1.001


def test_fitted_profile_changes_the_prediction_from_the_catalog_defaults() -> None:
    catalog = simulate(load_scenario(BASE)).step_time_s
    fitted = simulate(load_scenario(_with_profile("fitted"))).step_time_s
    assert fitted != pytest.approx(catalog, rel=1e-3)


@pytest.mark.parametrize(
    ("profile", "words"),
    [("missing.yaml", "cannot read"), ("fitted", "no fitted profile for chip")],
)
def test_bad_profiles_are_one_clear_error(tmp_path: Path, profile: str, words: str) -> None:
    data = _with_profile(profile)
    if profile == "fitted":  # an inline chip the catalog has never fitted
        from superscale.hardware.catalog import systems

        system = systems().get("dgx-h100").model_dump(mode="json")
        system["chip"] = {**system["chip"], "name": "my-chip"}
        data = {**data, "cluster": {**data["cluster"], "system": system}}
    with pytest.raises(SpecError, match=words) as info:
        load_scenario(data)
    assert "cluster" in str(info.value) and "\n" not in str(info.value)


def test_a_fitted_profile_keeps_only_the_power_caps_clock() -> None:
    from superscale.hardware.catalog import chips
    from superscale.hardware.spec import capped_chip

    listed = chips().get("h100-sxm")
    assert listed.efficiency.sustained_clock_fraction < 1.0  # the catalog's derate
    fitted = load_scenario(_with_profile("fitted")).cluster.chip
    assert fitted.efficiency.sustained_clock_fraction == 1.0
    capped = {**BASE["cluster"], "profile": "fitted", "power_limit_w": 500}
    chip = load_scenario({**BASE, "cluster": capped}).cluster.chip
    cube_law = capped_chip(listed, 500.0).efficiency.sustained_clock_fraction
    assert chip.efficiency.sustained_clock_fraction == pytest.approx(
        cube_law / listed.efficiency.sustained_clock_fraction
    )
    assert chip.efficiency.sustained_clock_fraction < 1.0
