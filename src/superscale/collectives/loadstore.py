"""Direct load/store over a fabric with unified memory addressing (a super-node's
MetaXLink switch fabric, NVLink within NVL72, Huawei UB).

Kernels read and write peers' memory as their own, with no library protocol, proxy thread
or per-step handshake: a one-shot pattern costs one hop of latency and a microsecond-class
launch instead of the ring's 2(n−1) steps. Bandwidth is that of the same direct pattern
over the fabric. Applies only when every member of a group shares one such domain.
"""

from __future__ import annotations

from superscale.collectives.alltoall import direct_cost, pairwise
from superscale.collectives.base import LinearCost, register, step_s
from superscale.topology.graph import IntArray, Topology

LOADSTORE_LAUNCH_S = 1e-6


@register("load_store")
class LoadStore:
    """One-shot collectives by direct access to peers' memory."""

    name = "load_store"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        link = topo.cluster.system.scale_up.link
        n = groups.shape[1]
        domains = groups // topo.domain
        if not link.unified_memory or n < 2 or not (domains == domains[:, :1]).all():
            return None
        if collective == "all_to_all":
            return direct_cost(groups, topo, launch=LOADSTORE_LAUNCH_S, per_peer_s=0.0)
        src, dst = pairwise(groups)
        # each rank reads (or writes) its 1/n shard of every peer: (n−1)/n·S per phase
        per_phase, latency = topo.flow_cost(src, dst, 1.0 / n)
        latency += step_s(topo)
        phases = {"all_reduce": 2, "reduce_scatter": 1, "all_gather": 1, "broadcast": 1}
        if collective not in phases:
            return None
        p = phases[collective]
        if collective == "broadcast":  # every rank reads the root's buffer
            return LinearCost(LOADSTORE_LAUNCH_S + latency, per_phase * n / (n - 1))
        return LinearCost(LOADSTORE_LAUNCH_S + p * latency, p * per_phase)
