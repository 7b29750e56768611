"""Direct reduce-scatter, all-gather and all-reduce over a full-mesh scale-up domain.

On a point-to-point mesh (AMD xGMI, 8-GPU MetaXLink, Gaudi's on-chip RoCE) each GPU has
its own link to every peer, so a single ring uses only one of its n−1 links. RCCL and
MCCL run one ring channel per link instead; the bytes per link are those of the direct
pattern priced here: in each phase every rank sends its S/n shard to each peer at once,
so all-reduce moves 2·S/n per link and busbw = (n−1)·link rate. stas00/ml-engineering
network/README.md gives MI300X 7 xGMI links of 64 GB/s and measures 313 GB/s all-reduce
busbw on 8 GPUs against 48 GB/s on 2 (one link between them).
Applies only when every member of a group shares one full-mesh domain.
"""

from __future__ import annotations

from superscale.collectives.alltoall import PER_PEER_S, pairwise
from superscale.collectives.base import LinearCost, launch_s, register, step_s
from superscale.topology.graph import IntArray, Topology

PHASES = {"all_reduce": 2, "reduce_scatter": 1, "all_gather": 1}


def mesh_cost(collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
    """The direct pattern's cost, or None off a full mesh or outside one domain."""
    n = groups.shape[1]
    if collective not in PHASES or n < 2:
        return None
    if topo.cluster.system.scale_up.topology != "full-mesh":
        return None
    domains = groups // topo.domain
    if not (domains == domains[:, :1]).all():
        return None
    src, dst = pairwise(groups)
    per_phase, latency = topo.flow_cost(src, dst, 1.0 / n)
    phases = PHASES[collective]
    step = latency + step_s(topo) + (n - 1) * PER_PEER_S
    return LinearCost(launch_s(topo) + phases * step, phases * per_phase)


@register("mesh")
class Mesh:
    """Every rank exchanges its shards with all peers at once, one link per peer."""

    name = "mesh"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        return mesh_cost(collective, groups, topo)
