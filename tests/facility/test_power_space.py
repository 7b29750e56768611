"""Power per GPU, system and cabinet; cabinets, floor area and the cabinet power limit."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.facility import assess
from superscale.facility.catalog import switches
from superscale.facility.fabric import size_fabric
from superscale.facility.power import gpu_power_w
from superscale.facility.space import footprint_ratio, servers_per_cabinet
from superscale.hardware.catalog import systems

TINY: dict[str, Any] = {
    "model": {
        "name": "tiny",
        "layers": 2,
        "hidden": 256,
        "heads": 4,
        "ffn_hidden": 1024,
        "vocab": 1000,
    },
    "training": {"seq_len": 512, "global_batch": 9216},  # divisible by every dp below
}


def _assess(cluster: Any, **facility: Any) -> dict[str, Any]:
    scenario = load_scenario({**TINY, "cluster": cluster, "facility": facility})
    return assess(scenario, utilization=0.8, seconds_per_unit=1.0, tokens_per_unit=1e6)


def test_gpu_power_runs_from_idle_to_tdp() -> None:
    assert gpu_power_w(700, 75, 0.0) == 75
    assert gpu_power_w(700, 75, 1.0) == 700
    assert gpu_power_w(700, 75, 0.5) == pytest.approx(387.5)
    assert gpu_power_w(700, 75, 3.0) == 700  # clipped


def test_power_at_the_meter_is_it_power_times_pue() -> None:
    out = _assess({"system": "dgx-h100", "count": 16})["facility"]
    p = out["power"]
    assert out["pue"] == 1.4  # air-cooled default
    assert p["facility_kw"] == pytest.approx(p["it_kw"] * 1.4)
    assert p["it_kw"] == pytest.approx(p["compute_kw"] + p["network_kw"])
    assert p["network_kw"] > 0
    liquid = _assess({"system": "metax-cube-128", "count": 2})["facility"]
    assert liquid["pue"] == 1.15


@pytest.mark.parametrize("system", [s.name for s in systems()])
@pytest.mark.parametrize("limit_kw", [8.0, 20.0, 40.0, 140.0])
def test_cabinet_power_never_exceeds_the_limit_in_a_valid_design(
    system: str, limit_kw: float
) -> None:
    facility = {"cabinet_power_limit_kw_air": limit_kw, "cabinet_power_limit_kw_liquid": limit_kw}
    space = _assess({"system": system, "count": 8}, **facility)["facility"]["space"]
    if not space["over_limit"]:
        assert space["cabinet_max_kw"] <= limit_kw + 1e-9
    else:
        assert space["cabinet_max_kw"] > limit_kw


def test_an_over_limit_design_is_reported() -> None:
    out = _assess({"system": "metax-cube-128", "count": 2}, cabinet_power_limit_kw_liquid=60)
    assert out["facility"]["space"]["over_limit"] is True
    assert any("exceeds" in w and "60 kW" in w for w in out["warnings"])
    server = _assess({"system": "dgx-h100", "count": 2}, cabinet_power_limit_kw_air=8)
    assert server["facility"]["space"]["over_limit"] is True
    assert server["facility"]["space"]["systems_per_cabinet"] == 1


def test_servers_per_cabinet_by_power_and_height() -> None:
    assert servers_per_cabinet(10.2, 8, limit_kw=40, cabinet_rack_units=42) == (3, "power")
    assert servers_per_cabinet(4.5, 8, limit_kw=40, cabinet_rack_units=42) == (5, "height")
    assert servers_per_cabinet(50, 8, limit_kw=40, cabinet_rack_units=42)[0] == 0


def test_super_node_cabinets_against_air_cooled_servers() -> None:
    """1,024 GPUs: 8 liquid-cooled 128-GPU cabinets vs 128 air-cooled 8-GPU C550 servers."""
    cube = _assess("metax-cube-1k")["facility"]["space"]
    servers = _assess({"system": "metax-c550-8x", "count": 128})["facility"]["space"]
    assert cube["compute_cabinets"] == 8 and cube["gpus_per_cabinet"] == 128
    # 8U, 6 kW servers in 42U / 40 kW cabinets: 5 per cabinet, 26 cabinets.
    assert servers["compute_cabinets"] == 26 and servers["gpus_per_cabinet"] == 40
    from superscale.facility.space import Space

    ratio = footprint_ratio(Space(**_fields(servers)), Space(**_fields(cube)))
    assert ratio == pytest.approx(servers["floor_m2"] / cube["floor_m2"])
    assert 2.5 < ratio < 3.5


def _fields(space: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in space.items() if k not in {"cabinets"}}
    return {**keep, "cabinet_kw": 0.0}


@pytest.mark.parametrize(("nics", "tiers"), [(2048, 2), (8192, 3), (65536, 3)])
def test_non_blocking_fat_tree_switch_counts(nics: int, tiers: int) -> None:
    """Al-Fares et al. 2008: 3N/k switches for two tiers, 5N/k for three (k = 64 here)."""
    switch = switches().get("ib-ndr-400g")
    got_tiers, n_switches, links = size_fabric(nics, switch)
    assert got_tiers == tiers
    assert n_switches == (3 if tiers == 2 else 5) * nics // switch.ports
    assert links == tiers * nics  # NIC links + one set of uplinks per tier above the leaf
    assert size_fabric(48, switch) == (1, 1, 48)
