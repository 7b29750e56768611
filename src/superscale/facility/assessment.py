"""One call that turns a simulated workload into facility, reliability and cost sections.

`assess` is what `simulate` (training) and `serve` (serving) call: given the scenario, how
many GPUs run, how busy they are, and how many tokens flow per unit of time, it sizes the
fabric (fabric.py), power (power.py), cabinets and floor (space.py), failures, checkpoints
and goodput (reliability.py) and money (cost.py), and returns JSON-ready sections with
stable keys. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from superscale.errors import SpecError
from superscale.facility import cost as cost_model
from superscale.facility import reliability as rel
from superscale.facility.catalog import systems as system_facts
from superscale.facility.fabric import estimate_fabric
from superscale.facility.power import estimate_power
from superscale.facility.space import estimate_space
from superscale.hardware.spec import System
from superscale.units import GIB

if TYPE_CHECKING:
    from superscale.scenario import Scenario

# A super-node's GPUs per host (CPU board) when the facility catalog gives none.
SUPER_NODE_GPUS_PER_HOST = 8
# A serving replica reloads only bf16 weights after a failure.
WEIGHT_BYTES_PER_PARAM = 2


def hosts_of(system: System, gpus: int) -> int:
    """Hosts (CPU boards) carrying `gpus` GPUs of this system."""
    catalog = system_facts()
    per_host = catalog.get(system.name).gpus_per_host if system.name in catalog else None
    if per_host is None:
        per_host = system.gpus if system.kind != "super-node" else SUPER_NODE_GPUS_PER_HOST
    return math.ceil(gpus / min(per_host, system.gpus))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def assess(
    scenario: Scenario,
    *,
    utilization: float,
    seconds_per_unit: float,
    tokens_per_unit: float,
    gpus: int | None = None,
    kind: Literal["training", "serving"] = "training",
    run_tokens: float | None = None,
) -> dict[str, Any]:
    """Facility, reliability and cost of running a workload on the scenario's cluster.

    Args:
        scenario: model, cluster and `facility` site assumptions.
        utilization: busy share of GPU time in [0, 1] (training: compute / step time).
        seconds_per_unit: seconds of one unit of work (training: one step), s.
        tokens_per_unit: tokens processed (trained or served) in one unit.
        gpus: GPUs that run (default: the whole cluster); whole systems are powered.
        kind: "training" checkpoints and restarts from the last checkpoint; "serving"
            only restarts (reloads weights) and reports availability.
        run_tokens: tokens of the whole run (default: training.tokens for training), for
            time, energy and cost to train or serve them.

    Returns:
        {"facility": {...}, "reliability": {...}, "cost": {...}, "warnings": [...]}.

    Raises:
        SpecError: a non-positive time, negative tokens, or gpus outside the cluster.
    """
    cluster, facility = scenario.cluster, scenario.facility
    if not seconds_per_unit > 0:
        raise SpecError(f"seconds_per_unit must be > 0, got {seconds_per_unit}")
    if tokens_per_unit < 0:
        raise SpecError(f"tokens_per_unit must be >= 0, got {tokens_per_unit}")
    n_gpus = cluster.gpus if gpus is None else gpus
    if not 0 < n_gpus <= cluster.gpus:
        raise SpecError(f"gpus must be in 1..{cluster.gpus} (the cluster's), got {n_gpus}")
    if run_tokens is None and kind == "training" and scenario.training is not None:
        run_tokens = scenario.training.tokens
    system = cluster.system
    n_systems = math.ceil(n_gpus / system.gpus)
    fabric = estimate_fabric(cluster, systems=n_systems)
    power = estimate_power(system, fabric, facility, systems=n_systems, utilization=utilization)
    space = estimate_space(
        system,
        fabric,
        facility,
        systems=n_systems,
        system_max_w=power.system_max_w,
        system_w=power.system_w,
    )
    warnings = [*fabric.warnings, *power.warnings]
    if space.over_limit:
        warnings.append(
            f"cabinet power {space.cabinet_max_kw:.1f} kW exceeds the {system.cooling}-cooled "
            f"cabinet limit of {space.cabinet_limit_kw:.0f} kW (facility.cabinet_power_limit_kw_"
            f"{system.cooling}): this design cannot be built as specified"
        )

    # Reliability: failures of every component the job runs on.
    parts = rel.Components(
        gpus=n_gpus, hosts=hosts_of(system, n_gpus), links=fabric.links, switches=fabric.switches
    )
    rates = rel.default_rates().scaled(facility.failure_rate_multiplier)
    per_hour = rel.interruptions_per_hour(rates, parts)
    mtbf_s = 3600.0 / per_hour if per_hour > 0 else math.inf
    bandwidth_gb_per_s = facility.storage_write_gb_per_s or (
        facility.storage_write_gb_per_s_per_gpu * n_gpus
    )
    bandwidth = bandwidth_gb_per_s * 1e9
    params = scenario.model.params
    tokens_per_s = tokens_per_unit / seconds_per_unit
    reliability: dict[str, Any] = {
        "rates_per_hour": {
            "gpu": rates.gpu_per_hour,
            "host": rates.host_per_hour,
            "link": rates.link_per_hour,
            "switch": rates.switch_per_hour,
            "software_per_gpu": rates.software_per_gpu_hour,
        },
        "components": {
            "gpus": parts.gpus,
            "hosts": parts.hosts,
            "links": parts.links,
            "switches": parts.switches,
        },
        "interruptions_per_day": per_hour * rel.HOURS_PER_DAY,
        "mtbf_h": _finite(mtbf_s / 3600.0),
        "storage_write_gb_per_s": bandwidth_gb_per_s,
    }
    if kind == "training":
        size = rel.checkpoint_bytes(params)
        write_s = size / bandwidth
        restart_s = facility.restart_overhead_s + write_s  # reload at the write bandwidth
        interval_s = rel.daly_interval_s(write_s, mtbf_s) if math.isfinite(mtbf_s) else math.inf
        kept = rel.goodput(
            interval_s=interval_s, checkpoint_s=write_s, restart_s=restart_s, mtbf_s=mtbf_s
        )
        reliability |= {
            "checkpoint_gib": size / GIB,
            "checkpoint_write_s": write_s,
            "restart_s": restart_s,
            "checkpoint_interval_s": _finite(interval_s),
            "young_interval_s": _finite(rel.young_interval_s(write_s, mtbf_s)),
            "goodput": kept,
        }
    else:
        restart_s = facility.restart_overhead_s + params * WEIGHT_BYTES_PER_PARAM / bandwidth
        kept = rel.availability(restart_s=restart_s, mtbf_s=mtbf_s)
        reliability |= {"restart_s": restart_s, "availability": kept}
    if kept <= 0:
        warnings.append(
            "failures arrive faster than checkpoints and restarts can keep up: no progress "
            f"(mean time between failures {mtbf_s / 3600:.2f} h, restart {restart_s:.0f} s)"
        )
    useful_s = run_tokens / tokens_per_s if run_tokens and tokens_per_s > 0 else None
    wall_s = useful_s / kept if useful_s is not None and kept > 0 else None
    reliability |= {
        "run_tokens": run_tokens,
        "useful_days": None if useful_s is None else useful_s / 86400.0,
        "wall_clock_days": None if wall_s is None else wall_s / 86400.0,
        "interruptions_during_run": None if wall_s is None else per_hour * wall_s / 3600.0,
    }

    # Energy and money.
    kept_tokens_per_hour = tokens_per_s * 3600.0 * kept
    facility_kwh_per_hour = power.facility_w / 1e3
    capital = cost_model.estimate_capital(system, fabric, facility, systems=n_systems)
    energy_usd_h = cost_model.energy_usd_per_hour(
        power.facility_w, facility.electricity_usd_per_kwh
    )
    total = capital.total_usd
    amortized_h = (
        None if total is None else cost_model.amortized_usd_per_hour(total, facility.lifetime_years)
    )
    usd_h = None if amortized_h is None else amortized_h + energy_usd_h
    if total is None:
        warnings.append(
            f"no price for system '{system.name}' in the facility catalog: capital cost omitted "
            "(set facility.system_price_usd)"
        )
    wall_h = None if wall_s is None else wall_s / 3600.0

    def per_m_tokens(per_h: float | None) -> float | None:
        if per_h is None:
            return None
        return cost_model.usd_per_million_tokens(per_h, kept_tokens_per_hour)

    energy_kwh_per_m = (
        None if kept_tokens_per_hour <= 0 else facility_kwh_per_hour / kept_tokens_per_hour * 1e6
    )

    facility_json = {
        "gpus": n_gpus,
        "systems": n_systems,
        "cooling": power.cooling,
        "pue": power.pue,
        "utilization": power.utilization,
        "power": {
            "gpu_w": power.gpu_w,
            "gpu_tdp_w": power.gpu_tdp_w,
            "gpu_idle_w": power.gpu_idle_w,
            "system_w": power.system_w,
            "system_max_w": power.system_max_w,
            "system_host_max_w": power.system_host_max_w,
            "cabinet_kw": space.cabinet_kw,
            "compute_kw": power.compute_w / 1e3,
            "network_kw": power.network_w / 1e3,
            "it_kw": power.it_w / 1e3,
            "facility_kw": power.facility_w / 1e3,
            "facility_w_per_gpu": power.facility_w / n_gpus,
        },
        "space": {
            "systems_per_cabinet": space.systems_per_cabinet,
            "gpus_per_cabinet": space.gpus_per_cabinet,
            "compute_cabinets": space.compute_cabinets,
            "network_cabinets": space.network_cabinets,
            "cabinets": space.cabinets,
            "cabinet_max_kw": space.cabinet_max_kw,
            "cabinet_limit_kw": space.cabinet_limit_kw,
            "limited_by": space.limited_by,
            "over_limit": space.over_limit,
            "floor_m2": space.floor_m2,
        },
        "fabric": {
            "switch": fabric.switch.name,
            "tiers": fabric.tiers,
            "switches": fabric.switches,
            "links": fabric.links,
        },
        "energy": {
            "kwh_per_step": power.facility_w * seconds_per_unit / 3.6e6,
            "kwh_per_million_tokens": energy_kwh_per_m,
            "run_mwh": None if wall_h is None else facility_kwh_per_hour * wall_h / 1e3,
        },
    }
    cost_json = {
        "system_price_usd": capital.system_price_usd,
        "price_estimate": capital.price_estimate,
        "capital_usd": total,
        "systems_usd": capital.systems_usd,
        "network_usd": capital.network_usd,
        "lifetime_years": facility.lifetime_years,
        "electricity_usd_per_kwh": facility.electricity_usd_per_kwh,
        "amortized_usd_per_hour": amortized_h,
        "energy_usd_per_hour": energy_usd_h,
        "usd_per_hour": usd_h,
        "usd_per_million_tokens": per_m_tokens(usd_h),
        "energy_usd_per_million_tokens": per_m_tokens(energy_usd_h),
        "run_usd": None if usd_h is None or wall_h is None else usd_h * wall_h,
        "run_energy_usd": None if wall_h is None else energy_usd_h * wall_h,
    }
    return {
        "facility": facility_json,
        "reliability": reliability,
        "cost": cost_json,
        "warnings": warnings,
    }
