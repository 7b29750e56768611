"""The scale-out fabric's size: switches, tiers and links for a cluster's NICs.

A folded-Clos (fat-tree) of k-port switches: each leaf gives d = k·o/(1+o) ports to NICs and
the rest to uplinks (o = leaf oversubscription, 1 = non-blocking). One switch serves up to k
NICs; two tiers serve up to d·k (k²/2 non-blocking); beyond that a third tier of aggregation
and core switches carries the leaf uplinks U non-blocking: 2U/k aggregation + U/k core
switches (Al-Fares et al. 2008, "A Scalable, Commodity Data Center Network Architecture";
non-blocking totals are 3N/k for two tiers and 5N/k for three). Rail-optimized fabrics use
the same switch count (the rails partition the leaves). Scale-up switches (NVSwitch,
MetaXLink switches) sit inside the system and its `power_kw`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from superscale.facility.catalog import Switch, switches
from superscale.hardware.spec import Cluster

# Used when a NIC type has no entry in facility/catalog/switches.yaml.
FALLBACK_SWITCH = "roce-400g"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fabric:
    """Switches and links of the scale-out network of `systems` systems."""

    switch: Switch
    nics: int
    tiers: int
    switches: int
    links: int
    warnings: tuple[str, ...] = ()


def size_fabric(
    nics: int, switch: Switch, *, oversubscription: float = 1.0
) -> tuple[int, int, int]:
    """Tiers, switches and links of a fat-tree joining `nics` NIC ports.

    Args:
        nics: NIC ports to connect.
        switch: the switch type (its `ports` is the radix k).
        oversubscription: leaf downlink:uplink ratio (>= 1).

    Returns:
        (tiers, switches, links), links counting NIC links and inter-switch links.
    """
    k = switch.ports
    if nics <= 1:
        return 0, 0, nics
    if nics <= k:
        return 1, 1, nics
    down = max(1, math.floor(k * oversubscription / (1 + oversubscription)))
    leaves = math.ceil(nics / down)
    uplinks = leaves * (k - down)
    if leaves <= k:  # every spine reaches every leaf
        return 2, leaves + math.ceil(uplinks / k), nics + uplinks
    # Three tiers: aggregation (k/2 down, k/2 up) and core (Al-Fares et al. 2008).
    aggregation = math.ceil(uplinks / (k / 2))
    core = math.ceil(uplinks / k)
    return 3, leaves + aggregation + core, nics + 2 * uplinks


def estimate_fabric(cluster: Cluster, *, systems: int | None = None) -> Fabric:
    """The scale-out fabric of `systems` of the cluster's systems (default: all of them)."""
    count = cluster.count if systems is None else systems
    name = cluster.nic.name
    catalog = switches()
    warnings: tuple[str, ...] = ()
    if name not in catalog:
        warnings = (
            f"no switch for NIC type '{name}' in the facility catalog; "
            f"'{FALLBACK_SWITCH}' switches assumed",
        )
        name = FALLBACK_SWITCH
    switch = catalog.get(name)
    nics = count * cluster.system.nics.count
    if count <= 1:
        # One system needs no scale-out switch for training traffic.
        return Fabric(switch=switch, nics=nics, tiers=0, switches=0, links=0, warnings=warnings)
    tiers, n_switches, links = size_fabric(
        nics, switch, oversubscription=cluster.scale_out.oversubscription
    )
    return Fabric(
        switch=switch, nics=nics, tiers=tiers, switches=n_switches, links=links, warnings=warnings
    )
