"""In-network reduction: NVLink SHARP (NVLS) inside a switched domain, IB SHARP across.

With NVLS each GPU pushes its buffer into the switch, which reduces it, and multicast
returns the result: per GPU about S(1 + 1/n) each way instead of 2(n−1)/n·S, and no
per-step latency chain (NVIDIA, NVLink SHARP in NCCL 2.17+). Across systems whose NICs
support SHARP, the inter-system all-reduce of the shard is done in the switches likewise
(not on a torus, whose systems route through each other with no switch to reduce in).
Achieved rates use the link's `in_network_reduction_efficiency`. The switch reduces in
NCCL's NVLS chunks, so these pay the pipeline fill (`base.pipelined`).
"""

from __future__ import annotations

from superscale.collectives.base import (
    NVLS_CHANNELS,
    NVLS_CHUNK_BYTES,
    LinearCost,
    launch_s,
    pipelined,
    register,
    step_s,
    subgroups,
)
from superscale.topology.graph import IntArray, Topology


@register("nvls")
class InNetworkReduction:
    """Switch-side all-reduce where the fabric reduces (NVLS, SHARP)."""

    name = "nvls"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        if collective != "all_reduce":
            return None
        system = topo.cluster.system
        link = system.scale_up.link
        if not link.in_network_reduction or system.scale_up.topology != "switch":
            return None
        n = groups.shape[1]
        rate = system.scale_up_bytes_per_s * link.in_network_reduction_efficiency
        domains = groups // topo.domain
        if (domains == domains[:, :1]).all():  # the whole group inside one domain
            step = 2 * (link.latency_s + step_s(topo))
            per_byte = (1 + 1 / n) / rate
            return pipelined(
                launch_s(topo), step, per_byte, chunk_fill_s=_chunk_fill_s(per_byte, heads=n)
            )
        split = subgroups(groups, topo)
        nic = topo.cluster.nic
        if split is None or not nic.in_network_reduction or topo.domain < topo.per_system:
            return None
        if topo.torus_dims is not None:  # SHARP reduces in switches; a torus has none
            return None
        k = split[0].shape[1]
        per_byte = (1 + 1 / k) / rate
        inside = pipelined(
            0.0,
            2 * (link.latency_s + step_s(topo)),
            per_byte,
            chunk_fill_s=_chunk_fill_s(per_byte, heads=k),
        )
        # SHARP: each position-group sends its 1/k shard up and receives it back once
        nic_rate = nic.bandwidth_bytes_per_s * nic.in_network_reduction_efficiency
        per_byte = 1.0 / (k * nic_rate)
        across = pipelined(
            0.0, 2 * nic.latency_s, per_byte, chunk_fill_s=_chunk_fill_s(per_byte, heads=k)
        )
        return LinearCost(launch_s(topo), 0.0) + inside + across


def _chunk_fill_s(per_byte: float, *, heads: int) -> float:
    """The fill of NCCL's fixed NVLS chunk: a loop step moves NVLS_CHUNK_BYTES per head
    (each GPU of the domain) on each of NVLS_CHANNELS channels, up into the switch and
    back down (two stages)."""
    return 2 * per_byte * NVLS_CHANNELS * heads * NVLS_CHUNK_BYTES
