"""The facility catalogs: idle power per chip, prices per system, switches per NIC type, and
the failure counts of the Llama 3 run, read from `catalog/*.yaml`.

Keyed by the hardware catalog's names; every figure carries `source:` and, where it is not
published, `estimate: true` with a reason. Adding a price or a switch is a YAML entry.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field

from superscale.catalog import Catalog, read_catalog_yaml
from superscale.hardware.spec import Sourced

_PKG = __name__


class ChipPower(Sourced):
    """Power figures of one accelerator that the hardware catalog does not hold."""

    name: str
    idle_w: float = Field(gt=0, description="Board power with nothing running, W.")


class SystemFacts(Sourced):
    """Purchase price of one server or super-node, and how many hosts (CPU boards) it has."""

    name: str
    price_usd: float = Field(gt=0, description="Hardware price of one system, USD.")
    gpus_per_host: int | None = Field(
        None, gt=0, description="GPUs per host; default: a server is one host, a super-node 8."
    )


class Switch(Sourced):
    """The scale-out switch and cabling used with one NIC type."""

    name: str
    ports: int = Field(gt=1, description="Ports per switch at the NIC's speed.")
    power_w: float = Field(gt=0, description="Switch power with optics, W.")
    rack_units: int = Field(gt=0, description="Switch height, U.")
    price_usd: float = Field(gt=0, description="Price of one switch, USD.")
    link_price_usd: float = Field(ge=0, description="Price of one link (optics + fibre), USD.")


class FailureCause(Sourced):
    """One row of Llama 3 Table 5: a root cause and its interruption count."""

    name: str
    component: Literal["gpu", "host", "network", "software"] = Field(
        description="What the rate is counted per (GPU, host, network, job GPU)."
    )
    interruptions: int = Field(ge=0, description="Unexpected interruptions in the 54 days.")


@cache
def chip_power() -> Catalog[ChipPower]:
    return Catalog("chip", read_catalog_yaml(_PKG, "chips.yaml"), ChipPower.model_validate)


@cache
def systems() -> Catalog[SystemFacts]:
    return Catalog("system", read_catalog_yaml(_PKG, "systems.yaml"), SystemFacts.model_validate)


@cache
def switches() -> Catalog[Switch]:
    return Catalog("switch", read_catalog_yaml(_PKG, "switches.yaml"), Switch.model_validate)


@cache
def failure_causes() -> Catalog[FailureCause]:
    return Catalog(
        "failure cause", read_catalog_yaml(_PKG, "failures.yaml"), FailureCause.model_validate
    )
