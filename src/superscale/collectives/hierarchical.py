"""Hierarchical all-reduce (and, under HCCL, all-gather and reduce-scatter) across systems.

Reduce-scatter among a group's members inside each system (fast fabric), then all-reduce
of the 1/k shard among members at the same position across systems (the k position-groups
run at once, each on its own NIC rail), then all-gather inside the system (Jia et al.
2018; the structure NCCL's ring and tree channels approximate). The phases inside a
system run as rings, or as the direct pattern on a full mesh (`mesh.py`), which uses
every peer link.

All-gather and reduce-scatter too only under Huawei's HCCL, which is two-level by design
(a level-0 algorithm inside the server, a level-1 one between servers, HCCL_ALGO; CANN
"Collective Communication Algorithms"). NCCL, and RCCL and MetaX's MCCL, which follow
it, have no hierarchical all-gather or reduce-scatter: those run as rings across systems
(NVLS inside one, PAT at one rank per system: NVIDIA/nccl src/device/all_gather.h,
reduce_scatter.h), and a ring's n − 1 steps are what the nccl-tests sweeps show: on
4-32 AWS p5 nodes, 32-64 MiB all-gathers fall from 84 to 12 GB/s busbw as the group
grows, where the hierarchical form, with n/k − 1 steps, kept 64-120
(components/collectives.csv; the 37 all-gather and reduce-scatter rows' mean busbw error
falls from 47% to 18% without it).
"""

from __future__ import annotations

from superscale.collectives.base import LinearCost, launch_s, register, subgroups
from superscale.collectives.mesh import mesh_cost
from superscale.collectives.ring import Ring
from superscale.topology.graph import IntArray, Topology

_RING = Ring()
_PHASED = ("all_reduce", "reduce_scatter", "all_gather")
# chip vendors whose collective library runs all-gather and reduce-scatter in two levels
TWO_LEVEL_VENDORS = frozenset({"Huawei"})


def inner_cost(collective: str, intra: IntArray, topo: Topology) -> LinearCost:
    """A phase inside each system: the ring, or the mesh's direct pattern where it moves
    the bytes faster (the bandwidth-bound sizes hierarchical algorithms are for)."""
    ring = _RING.cost(collective, intra, topo)
    assert ring is not None  # intra groups have k > 1 members
    mesh = mesh_cost(collective, intra, topo)
    return mesh if mesh is not None and mesh.per_byte_s < ring.per_byte_s else ring


@register("hierarchical")
class Hierarchical:
    """Intra-system reduce-scatter → inter-system all-reduce → intra-system all-gather
    (all-gather and reduce-scatter too under HCCL; see the module docstring)."""

    name = "hierarchical"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        split = subgroups(groups, topo)
        runs = _PHASED if topo.cluster.chip.vendor in TWO_LEVEL_VENDORS else ("all_reduce",)
        if split is None or collective not in runs:
            return None
        intra, inter = split
        k = intra.shape[1]
        inner_rs = inner_cost("reduce_scatter", intra, topo)
        inner_ag = inner_cost("all_gather", intra, topo)
        outer = _RING.cost(collective, inter, topo)
        assert outer is not None
        outer = outer.scaled(1.0 / k)  # each position-group carries the 1/k shard
        launch = LinearCost(-2 * launch_s(topo), 0.0)  # one launch, not three
        if collective == "all_reduce":
            return inner_rs + outer + inner_ag + launch
        if collective == "reduce_scatter":
            return inner_rs + outer + LinearCost(-launch_s(topo), 0.0)
        return outer + inner_ag + LinearCost(-launch_s(topo), 0.0)
