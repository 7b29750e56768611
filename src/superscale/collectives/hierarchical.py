"""Hierarchical all-reduce, reduce-scatter and all-gather across systems.

All-reduce: reduce-scatter among a group's members inside each system (fast fabric), then
all-reduce of the 1/k shard among members at the same position across systems (the k
position-groups run at once, each on its own NIC rail), then all-gather inside the system
(Jia et al. 2018; the structure NCCL's ring and tree channels approximate).
"""

from __future__ import annotations

from superscale.collectives.base import LAUNCH_S, LinearCost, register, subgroups
from superscale.collectives.ring import Ring
from superscale.topology.graph import IntArray, Topology

_RING = Ring()


@register("hierarchical")
class Hierarchical:
    """Intra-system reduce-scatter → inter-system all-reduce → intra-system all-gather."""

    name = "hierarchical"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        split = subgroups(groups, topo)
        if split is None or collective not in {"all_reduce", "reduce_scatter", "all_gather"}:
            return None
        intra, inter = split
        k = intra.shape[1]
        inner_rs = _RING.cost("reduce_scatter", intra, topo)
        inner_ag = _RING.cost("all_gather", intra, topo)
        outer = _RING.cost(collective, inter, topo)
        assert inner_rs is not None and inner_ag is not None and outer is not None
        outer = outer.scaled(1.0 / k)  # each position-group carries the 1/k shard
        launch = LinearCost(-2 * LAUNCH_S, 0.0)  # one launch, not three
        if collective == "all_reduce":
            return inner_rs + outer + inner_ag + launch
        if collective == "reduce_scatter":
            return inner_rs + outer + LinearCost(-LAUNCH_S, 0.0)
        return outer + inner_ag + LinearCost(-LAUNCH_S, 0.0)
