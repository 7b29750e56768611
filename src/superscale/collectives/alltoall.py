"""All-to-all: direct pairwise exchange, and a rail-aligned hierarchical variant.

Direct: every rank sends S/n to each peer at once; time is set by the busiest link with all
concurrent groups' flows on it (MoE dispatch and combine). Hierarchical (DeepSeek-AI 2024,
DeepEP): first cross systems only between members at the same position (same NIC rail),
carrying everything bound for that system, then redistribute inside the system over the
scale-up fabric: fewer, larger network messages and no cross-rail traffic.
"""

from __future__ import annotations

import numpy as np

from superscale.collectives.base import LinearCost, launch_s, register, step_s, subgroups
from superscale.topology.graph import IntArray, Topology

PER_PEER_S = 0.2e-6  # issue cost per destination of an all-to-all (NCCL grouped send/recv)


def pairwise(groups: IntArray) -> tuple[IntArray, IntArray]:
    """All ordered pairs (i, j), i ≠ j, of every group."""
    n = groups.shape[1]
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return groups[:, i].reshape(-1), groups[:, j].reshape(-1)


def direct_cost(
    groups: IntArray, topo: Topology, *, launch: float, per_peer_s: float
) -> LinearCost:
    n = groups.shape[1]
    src, dst = pairwise(groups)
    per_byte, latency = topo.flow_cost(src, dst, 1.0 / n)
    fixed = launch + latency + step_s(topo) + (n - 1) * per_peer_s
    return LinearCost(fixed, per_byte)


@register("direct")
class Direct:
    """Pairwise all-to-all: S/n to each of n−1 peers, all at once."""

    name = "direct"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        if collective != "all_to_all" or groups.shape[1] < 2:
            return None
        return direct_cost(groups, topo, launch=launch_s(topo), per_peer_s=PER_PEER_S)


@register("hierarchical_a2a")
class HierarchicalAllToAll:
    """Same-rail exchange across systems, then redistribution inside each system."""

    name = "hierarchical_a2a"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        if collective != "all_to_all":
            return None
        split = subgroups(groups, topo)
        if split is None:
            return None
        intra, inter = split
        n, k = groups.shape[1], intra.shape[1]
        systems = inter.shape[1]
        # phase 1: to each other system, the k/n share bound for it, on one's own rail
        src, dst = pairwise(inter)
        net, net_lat = topo.flow_cost(src, dst, k / n)
        # phase 2: forward to the local owner: (k−1)/k of what arrived (systems·k/n · ...)
        src2, dst2 = pairwise(intra)
        local, local_lat = topo.flow_cost(src2, dst2, systems / n)
        peers = (systems + k - 2) * PER_PEER_S
        fixed = launch_s(topo) + net_lat + local_lat + 2 * step_s(topo) + peers
        return LinearCost(fixed, net + local)
