"""The `facility:` section of a scenario: the site a cluster is built in and run from.

Every field has a default so that a scenario without a `facility:` section still gets power,
space, reliability and cost figures; each default names where it comes from. Units are in
the field names (kW, m², GB/s, USD, hours, years).
"""

from __future__ import annotations

from pydantic import Field

from superscale.spec import Spec


class FacilitySpec(Spec):
    """Site assumptions: electricity, cooling overhead, cabinets, storage, lifetime."""

    electricity_usd_per_kwh: float = Field(
        0.08,
        ge=0,
        description="Electricity price, USD/kWh (US industrial average ~0.08, EIA 2024).",
    )
    pue_air: float = Field(
        1.4,
        ge=1,
        description="Power usage effectiveness of an air-cooled hall (Uptime Institute 2023 "
        "survey average ~1.58; newer air-cooled AI halls ~1.3-1.5).",
    )
    pue_liquid: float = Field(
        1.15,
        ge=1,
        description="Power usage effectiveness with direct liquid cooling (vendors quote "
        "1.1-1.2 for cold-plate halls).",
    )
    pue: float | None = Field(
        None, ge=1, description="One PUE for the whole site; overrides pue_air and pue_liquid."
    )
    cabinet_power_limit_kw_air: float = Field(
        40.0,
        gt=0,
        description="Power one air-cooled cabinet can feed and cool, kW (the high end of air "
        "cooling with rear-door or hot-aisle containment; NVIDIA's DGX H100 SuperPOD reference "
        "plans ~40 kW racks, many colocation halls allow only 15-20 kW).",
    )
    cabinet_power_limit_kw_liquid: float = Field(
        140.0,
        gt=0,
        description="Power one liquid-cooled cabinet can feed and cool, kW (GB200 NVL72 "
        "racks are built for ~120-132 kW).",
    )
    cabinet_rack_units: int = Field(
        42, gt=0, description="Usable height of a cabinet for servers, U (standard 42U rack)."
    )
    floor_m2_per_cabinet: float = Field(
        2.5,
        gt=0,
        description="Floor area per cabinet including its share of hot/cold aisles and "
        "clearance, m² (a 600x1200 mm cabinet is 0.72 m²; planning guides use 2.5-3 m²).",
    )
    host_power_fraction: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Share of a system's non-GPU maximum power (CPUs, NICs, fans, scale-up "
        "switches, PSU losses) drawn while training; an estimate.",
    )
    storage_write_gb_per_s_per_gpu: float = Field(
        0.12,
        gt=0,
        description="Checkpoint storage bandwidth per GPU, GB/s (Llama 3: Tectonic sustains "
        "2 TB/s for 16,384 GPUs, Dubey et al. 2024 Sec. 3.3.1).",
    )
    storage_write_gb_per_s: float | None = Field(
        None, gt=0, description="Aggregate checkpoint write bandwidth, GB/s; overrides per GPU."
    )
    restart_overhead_s: float = Field(
        600.0,
        ge=0,
        description="Fixed cost of one restart besides reloading the checkpoint: detection, "
        "rescheduling, process-group and NCCL initialisation, s (an estimate: minutes at "
        "thousands of GPUs).",
    )
    failure_rate_multiplier: float = Field(
        1.0,
        gt=0,
        description="Scales every default failure rate (1 = the rates of the Llama 3 run).",
    )
    lifetime_years: float = Field(
        4.0, gt=0, description="Years over which the hardware's capital cost is amortized."
    )
    system_price_usd: float | None = Field(
        None,
        gt=0,
        description="Price of one system (server or super-node), USD; overrides "
        "the facility catalog.",
    )
