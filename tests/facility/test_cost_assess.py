"""Capital, energy and token cost; the `assess` API the serving model calls; facility specs."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import SpecError, load_scenario
from superscale.facility import assess
from superscale.facility.cost import HOURS_PER_YEAR, amortized_usd_per_hour, energy_usd_per_hour

BASE: dict[str, Any] = {
    "model": "llama3-70b",
    "cluster": {"system": "dgx-h100", "count": 8},
    "training": {"seq_len": 8192, "global_batch": 128, "tokens": 1e12},
    "parallel": {"tp": 8, "pp": 4},
}


def _run(**patch: Any) -> dict[str, Any]:
    return assess(
        load_scenario({**BASE, **patch}),
        utilization=0.75,
        seconds_per_unit=10.0,
        tokens_per_unit=1_048_576,
    )


def test_amortization_and_energy_closed_forms() -> None:
    assert amortized_usd_per_hour(HOURS_PER_YEAR * 4, 4) == pytest.approx(1.0)
    assert energy_usd_per_hour(1e6, 0.1) == pytest.approx(100.0)  # 1 MW at $0.10/kWh


def test_cost_sections_are_consistent() -> None:
    out = _run()
    c, r, f = out["cost"], out["reliability"], out["facility"]
    assert c["capital_usd"] == pytest.approx(c["systems_usd"] + c["network_usd"])
    assert c["systems_usd"] == pytest.approx(8 * 373_000)
    assert c["usd_per_hour"] == pytest.approx(
        c["amortized_usd_per_hour"] + c["energy_usd_per_hour"]
    )
    assert c["energy_usd_per_hour"] == pytest.approx(f["power"]["facility_kw"] * 0.08)
    tokens_per_hour = 1_048_576 / 10.0 * 3600 * r["goodput"]
    assert c["usd_per_million_tokens"] == pytest.approx(c["usd_per_hour"] / tokens_per_hour * 1e6)
    assert c["run_usd"] == pytest.approx(c["usd_per_hour"] * r["wall_clock_days"] * 24)
    assert f["energy"]["run_mwh"] == pytest.approx(
        f["power"]["facility_kw"] * r["wall_clock_days"] * 24 / 1e3
    )


def test_site_assumptions_change_the_answer() -> None:
    cheap = _run(facility={"electricity_usd_per_kwh": 0.04, "lifetime_years": 8, "pue": 1.1})
    base = _run()
    assert cheap["facility"]["pue"] == 1.1
    assert cheap["cost"]["usd_per_hour"] < base["cost"]["usd_per_hour"]
    priced = _run(facility={"system_price_usd": 100_000})
    assert priced["cost"]["systems_usd"] == 800_000


def test_unknown_system_price_is_omitted_with_a_warning() -> None:
    inline = {
        "name": "custom-8x",
        "display_name": "custom",
        "kind": "server",
        "chip": "h100-sxm",
        "gpus": 8,
        "scale_up": {"link": "nvlink4", "topology": "switch", "gpus": 8},
        "nics": {"link": "ib-ndr-400g", "count": 8},
        "cooling": "air",
        "rack_units": 8,
        "power_kw": 10.2,
        "source": "test",
    }
    out = _run(cluster={"system": inline, "count": 8})
    assert out["cost"]["capital_usd"] is None and out["cost"]["usd_per_million_tokens"] is None
    assert any("no price" in w for w in out["warnings"])


def test_serving_assessment_reports_availability_not_checkpoints() -> None:
    scenario = load_scenario(BASE)
    out = assess(
        scenario,
        gpus=16,
        utilization=0.5,
        seconds_per_unit=1.0,
        tokens_per_unit=5000,
        kind="serving",
        run_tokens=1e9,
    )
    rel = out["reliability"]
    assert "goodput" not in rel and 0.99 < rel["availability"] < 1
    assert out["facility"]["gpus"] == 16 and out["facility"]["systems"] == 2
    assert rel["useful_days"] == pytest.approx(1e9 / 5000 / 86400)
    assert out["cost"]["usd_per_million_tokens"] > 0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"seconds_per_unit": 0.0}, "seconds_per_unit"),
        ({"tokens_per_unit": -1.0}, "tokens_per_unit"),
        ({"gpus": 65}, "gpus"),
    ],
)
def test_assess_rejects_bad_arguments(kwargs: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"utilization": 0.5, "seconds_per_unit": 1.0, "tokens_per_unit": 1.0}
    with pytest.raises(SpecError, match=needle):
        assess(load_scenario(BASE), **{**args, **kwargs})


@pytest.mark.parametrize(
    ("facility", "needle"),
    [
        ({"pue_air": 0.9}, "facility.pue_air"),
        ({"electricty_usd_per_kwh": 0.1}, "did you mean 'electricity_usd_per_kwh'"),
        ({"lifetime_years": 0}, "facility.lifetime_years"),
    ],
)
def test_bad_facility_section_is_a_spec_error(facility: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        load_scenario({**BASE, "facility": facility})
