"""Pick the fastest registered algorithm for a collective, as NCCL's tuner does, and price
collectives on a parallel group's placement for the training and serving models.

A `CommModel` owns one cluster's topology and caches each (collective, group layout)'s
linear costs, so a training step with hundreds of collectives routes each layout once.
"""

from __future__ import annotations

from superscale.collectives.base import COLLECTIVES, LinearCost, algorithms
from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupPlacement
from superscale.topology.graph import IntArray, Topology, groups_of


class CommModel:
    """Collective times on one cluster; create one per simulation and reuse it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.topology = Topology(cluster=cluster)
        self._costs: dict[tuple[str, int, int], dict[str, LinearCost]] = {}

    def costs(self, collective: str, size: int, stride: int) -> dict[str, LinearCost]:
        """Every applicable algorithm's cost for all groups of (size, stride) at once."""
        key = (collective, size, stride)
        if key not in self._costs:
            groups = groups_of(size, stride, self.cluster.gpus)
            self._costs[key] = costs_for(collective, groups, self.topology)
        return self._costs[key]

    def best(
        self, collective: str, nbytes: float, size: int, stride: int, algorithm: str = "auto"
    ) -> tuple[str, float]:
        """(algorithm, seconds) of the fastest algorithm, or of `algorithm` if named."""
        if size <= 1:
            return "none", 0.0
        table = self.costs(collective, size, stride)
        if algorithm != "auto":
            if algorithm not in table:
                allowed = ", ".join(["auto", *sorted(table)])
                raise SpecError(
                    f"algorithm '{algorithm}' does not run {collective} on this "
                    f"group (allowed: {allowed})"
                )
            return algorithm, table[algorithm].time_s(nbytes)
        name = min(table, key=lambda a: table[a].time_s(nbytes))
        return name, table[name].time_s(nbytes)

    def time_s(self, collective: str, nbytes: float, group: GroupPlacement) -> float:
        """Seconds for `collective` of nccl-tests size `nbytes` on every group like `group`."""
        return self.best(collective, nbytes, group.size, group.stride)[1]


def costs_for(collective: str, groups: IntArray, topo: Topology) -> dict[str, LinearCost]:
    """Linear costs of every registered algorithm that runs `collective` on `groups`."""
    if collective not in COLLECTIVES:
        raise SpecError(f"unknown collective '{collective}' (allowed: {', '.join(COLLECTIVES)})")
    table = {}
    for name, algo in algorithms().items():
        cost = algo.cost(collective, groups, topo)
        if cost is not None:
            table[name] = cost
    if not table:
        raise SpecError(f"no algorithm runs {collective} on groups of {groups.shape[1]}")
    return table


def collective_time_s(
    collective: str, payload_bytes: float, group: GroupPlacement, cluster: Cluster
) -> float:
    """One-off convenience: the fastest algorithm's time. Hold a CommModel to reuse routes."""
    return CommModel(cluster).time_s(collective, payload_bytes, group)
