"""Cabinets and floor area of a cluster, and whether every cabinet stays within its power.

Servers are packed into cabinets up to the lesser of the cabinet's height
(`facility.cabinet_rack_units` / the server's `rack_units`) and its power limit (the limit /
the server's maximum power, so a valid design never exceeds it). A super-node fills its own
`cabinets`; its maximum power per cabinet is checked against the limit for its cooling
(air or liquid) and reported over the limit, not silently split. Scale-out switches go into
network cabinets. Floor area = cabinets × area per cabinet including aisles
(`facility.floor_m2_per_cabinet`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from superscale.facility.fabric import Fabric
from superscale.hardware.spec import System
from superscale.scenario.facility import FacilitySpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Space:
    """Cabinets, floor area and cabinet power of a cluster."""

    systems_per_cabinet: float
    gpus_per_cabinet: float
    compute_cabinets: int
    network_cabinets: int
    cabinet_limit_kw: float
    cabinet_max_kw: float
    cabinet_kw: float
    limited_by: Literal["power", "height", "super-node"]
    over_limit: bool
    floor_m2: float

    @property
    def cabinets(self) -> int:
        return self.compute_cabinets + self.network_cabinets


def cabinet_limit_kw(system: System, facility: FacilitySpec) -> float:
    """The power one cabinet of this cooling can take, kW."""
    if system.cooling == "liquid":
        return facility.cabinet_power_limit_kw_liquid
    return facility.cabinet_power_limit_kw_air


def servers_per_cabinet(
    server_max_kw: float, rack_units: int | None, *, limit_kw: float, cabinet_rack_units: int
) -> tuple[int, Literal["power", "height"]]:
    """How many servers one cabinet holds, and what limits it (0 if one exceeds the power)."""
    by_power = math.floor(limit_kw / server_max_kw + 1e-9)
    by_height = cabinet_rack_units // rack_units if rack_units else by_power
    return (by_power, "power") if by_power <= by_height else (by_height, "height")


def estimate_space(
    system: System,
    fabric: Fabric,
    facility: FacilitySpec,
    *,
    systems: int,
    system_max_w: float,
    system_w: float,
) -> Space:
    """Cabinets and floor area for `systems` systems and their fabric.

    Args:
        system: the server or super-node.
        fabric: the scale-out fabric (switch count and height).
        facility: cabinet limits and floor area per cabinet.
        systems: how many systems.
        system_max_w: one system's maximum power, W (the design check).
        system_w: one system's power at the run's utilization, W.
    """
    limit = cabinet_limit_kw(system, facility)
    max_kw = system_max_w / 1e3
    over = False
    limited_by: Literal["power", "height", "super-node"]
    if system.kind == "super-node" or system.cabinets is not None:
        per_system = system.cabinets or 1.0
        per_cabinet = 1.0 / per_system
        compute = math.ceil(systems * per_system - 1e-9)
        cabinet_max = max_kw / per_system
        over = cabinet_max > limit + 1e-9
        limited_by = "super-node"
    else:
        n, limited_by = servers_per_cabinet(
            max_kw,
            system.rack_units,
            limit_kw=limit,
            cabinet_rack_units=facility.cabinet_rack_units,
        )
        if n == 0:  # one server alone exceeds the cabinet: report it, one per cabinet
            n, over = 1, True
        per_cabinet = float(min(n, systems))
        compute = math.ceil(systems / n)
        cabinet_max = per_cabinet * max_kw
    switch_units = fabric.switches * fabric.switch.rack_units
    network = math.ceil(switch_units / facility.cabinet_rack_units)
    return Space(
        systems_per_cabinet=per_cabinet,
        gpus_per_cabinet=per_cabinet * system.gpus,
        compute_cabinets=compute,
        network_cabinets=network,
        cabinet_limit_kw=limit,
        cabinet_max_kw=cabinet_max,
        cabinet_kw=per_cabinet * system_w / 1e3,
        limited_by=limited_by,
        over_limit=over,
        floor_m2=(compute + network) * facility.floor_m2_per_cabinet,
    )


def footprint_ratio(a: Space, b: Space) -> float:
    """Floor area of design `a` over design `b` (>1: `a` needs more floor)."""
    return a.floor_m2 / b.floor_m2
