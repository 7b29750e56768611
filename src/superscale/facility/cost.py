"""Money: capital cost of the hardware, its amortization, energy, and cost per token.

Capital = systems × system price (facility/catalog/systems.yaml, mostly estimates with their
sources, or `facility.system_price_usd`) + scale-out switches × switch price + fabric links ×
link price (optics and fibre; switches.yaml). It is amortized straight-line over
`facility.lifetime_years` of continuous use (8,766 h a year). Energy cost = facility power
(IT × PUE) × electricity price. Cost per million tokens = cost per hour / tokens per hour
actually kept, i.e. after goodput. Buildings, staff, software and financing are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from superscale.facility.catalog import systems as system_facts
from superscale.facility.fabric import Fabric
from superscale.hardware.spec import System
from superscale.scenario.facility import FacilitySpec

HOURS_PER_YEAR = 8766.0  # 365.25 days


@dataclass(frozen=True, slots=True, kw_only=True)
class Capital:
    """What the hardware costs to buy, USD; None where no price is known."""

    system_price_usd: float | None
    price_estimate: bool
    systems_usd: float | None
    network_usd: float

    @property
    def total_usd(self) -> float | None:
        return None if self.systems_usd is None else self.systems_usd + self.network_usd


def system_price(system: System, facility: FacilitySpec) -> tuple[float | None, bool]:
    """(price of one system in USD or None, whether it is an estimate)."""
    if facility.system_price_usd is not None:
        return facility.system_price_usd, False
    catalog = system_facts()
    if system.name not in catalog:
        return None, True
    entry = catalog.get(system.name)
    return entry.price_usd, entry.estimate


def estimate_capital(
    system: System, fabric: Fabric, facility: FacilitySpec, *, systems: int
) -> Capital:
    """Capital cost of `systems` systems and their fabric."""
    price, estimate = system_price(system, facility)
    network = (
        fabric.switches * fabric.switch.price_usd + fabric.links * fabric.switch.link_price_usd
    )
    return Capital(
        system_price_usd=price,
        price_estimate=estimate or fabric.switch.estimate,
        systems_usd=None if price is None else price * systems,
        network_usd=network,
    )


def amortized_usd_per_hour(capital_usd: float, lifetime_years: float) -> float:
    """Straight-line amortization of a capital cost over its lifetime, USD per hour."""
    return capital_usd / (lifetime_years * HOURS_PER_YEAR)


def energy_usd_per_hour(facility_w: float, usd_per_kwh: float) -> float:
    """Electricity cost of a constant draw, USD per hour."""
    return facility_w / 1e3 * usd_per_kwh


def usd_per_million_tokens(usd_per_hour: float, tokens_per_hour: float) -> float | None:
    """Cost of a million tokens at a rate, USD (None when no tokens flow)."""
    return None if tokens_per_hour <= 0 else usd_per_hour / tokens_per_hour * 1e6
