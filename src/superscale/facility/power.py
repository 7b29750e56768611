"""Power drawn by a cluster while it works: per GPU, per system, per cluster and at the meter.

A GPU draws its TDP while it computes and its idle power while it waits (communication,
pipeline bubble): P = idle + (TDP − idle)·u, with u the busy share of the step. Large
training GEMMs run at the power limit, and Llama 3 reports the whole cluster's draw swinging
by tens of megawatts when every GPU waits at once (Dubey et al. 2024, Sec. 3.3.4), so both
ends are real operating points. The rest of a system (CPUs, NICs, fans, scale-up switches,
PSU losses) is its catalog maximum `power_kw` less its GPUs' TDP, drawn at a constant share
(`facility.host_power_fraction`). Scale-out switches draw their rated power with optics.
Facility power = IT power × PUE, by the system's cooling (air or liquid).
"""

from __future__ import annotations

from dataclasses import dataclass

from superscale.facility.catalog import chip_power
from superscale.facility.fabric import Fabric
from superscale.hardware.spec import IDLE_SHARE_OF_TDP, System
from superscale.scenario.facility import FacilitySpec

# When a system has no power_kw: non-GPU power as a share of GPU TDP (DGX H100: 4.6/5.6 kW).
HOST_SHARE_OF_GPU_POWER = 0.8


@dataclass(frozen=True, slots=True, kw_only=True)
class Power:
    """Power at the run's utilization, W unless named otherwise."""

    utilization: float
    cooling: str
    pue: float
    gpu_tdp_w: float
    gpu_idle_w: float
    gpu_w: float
    system_max_w: float
    system_host_max_w: float
    system_w: float
    systems: int
    switches: int
    network_w: float
    warnings: tuple[str, ...] = ()

    @property
    def compute_w(self) -> float:
        return self.systems * self.system_w

    @property
    def it_w(self) -> float:
        return self.compute_w + self.network_w

    @property
    def facility_w(self) -> float:
        return self.it_w * self.pue


def gpu_power_w(tdp_w: float, idle_w: float, utilization: float) -> float:
    """One GPU's average power: idle + (TDP − idle)·utilization, W."""
    u = min(1.0, max(0.0, utilization))
    return idle_w + (tdp_w - idle_w) * u


def pue_of(cooling: str, facility: FacilitySpec) -> float:
    """The site's PUE for a system with this cooling."""
    if facility.pue is not None:
        return facility.pue
    return facility.pue_liquid if cooling == "liquid" else facility.pue_air


def chip_watts(system: System) -> tuple[float, float, tuple[str, ...]]:
    """(TDP, idle) of the system's chip, W, with warnings for figures that had to be assumed."""
    chip = system.chip
    warnings: list[str] = []
    if chip.tdp_w is not None:
        tdp = chip.tdp_w
    elif system.power_kw is not None:
        tdp = system.power_kw * 1e3 / (1 + HOST_SHARE_OF_GPU_POWER) / system.gpus
        warnings.append(f"chip '{chip.name}' has no tdp_w; {tdp:.0f} W taken from system power")
    else:
        tdp = 700.0
        warnings.append(f"chip '{chip.name}' has no tdp_w and its system no power_kw; 700 W")
    catalog = chip_power()
    idle = catalog.get(chip.name).idle_w if chip.name in catalog else IDLE_SHARE_OF_TDP * tdp
    return tdp, min(idle, tdp), tuple(warnings)


def system_max_w(system: System, tdp_w: float) -> float:
    """A system's maximum power, W: its catalog power_kw, else GPUs + an assumed host share."""
    if system.power_kw is not None:
        return max(system.power_kw * 1e3, system.gpus * tdp_w)
    return system.gpus * tdp_w * (1 + HOST_SHARE_OF_GPU_POWER)


def estimate_power(
    system: System,
    fabric: Fabric,
    facility: FacilitySpec,
    *,
    systems: int,
    utilization: float,
) -> Power:
    """Power of `systems` systems and their fabric at a GPU utilization in [0, 1].

    Args:
        system: the server or super-node.
        fabric: the scale-out fabric joining them (switch count and type).
        facility: site assumptions (PUE, host power share).
        systems: how many systems draw power.
        utilization: busy share of the GPUs' time (compute / step time).

    Returns:
        A `Power` whose properties give compute, IT and facility power, W.
    """
    tdp, idle, warnings = chip_watts(system)
    maximum = system_max_w(system, tdp)
    host_max = maximum - system.gpus * tdp
    gpu = gpu_power_w(tdp, idle, utilization)
    return Power(
        utilization=min(1.0, max(0.0, utilization)),
        cooling=system.cooling,
        pue=pue_of(system.cooling, facility),
        gpu_tdp_w=tdp,
        gpu_idle_w=idle,
        gpu_w=gpu,
        system_max_w=maximum,
        system_host_max_w=host_max,
        system_w=system.gpus * gpu + host_max * facility.host_power_fraction,
        systems=systems,
        switches=fabric.switches,
        network_w=fabric.switches * fabric.switch.power_w,
        warnings=warnings,
    )
