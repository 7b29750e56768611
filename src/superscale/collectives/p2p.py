"""Point-to-point send/receive between consecutive members of each group (pipeline
stages hand activations on), all pairs at once so shared NICs count."""

from __future__ import annotations

from superscale.collectives.base import LinearCost, launch_s, register, step_s
from superscale.topology.graph import IntArray, Topology


@register("p2p")
class SendRecv:
    """Each member sends the payload to the next member of its group."""

    name = "p2p"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        if collective != "send_recv" or groups.shape[1] < 2:
            return None
        src = groups[:, :-1].reshape(-1)
        dst = groups[:, 1:].reshape(-1)
        per_byte, latency = topo.flow_cost(src, dst, 1.0)
        return LinearCost(launch_s(topo) + latency + step_s(topo), per_byte)
