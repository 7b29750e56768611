"""Ring algorithms: bandwidth-optimal, latency linear in the group size.

All-reduce = reduce-scatter + all-gather, 2(n−1) steps of S/n each; reduce-scatter and
all-gather n−1 steps; broadcast a pipelined chain (Patarasuk & Yuan 2009; NCCL). NCCL
streams each in chunks, so each pays the pipeline fill (`base.pipelined`); with NCCL's
fixed chunk the fill is one slice per channel through every step (a ring moves
RING_SLICE_BYTES per channel per hop; a broadcast chain one NCCL step).
"""

from __future__ import annotations

from superscale.collectives.base import (
    NCCL_STEP_BYTES,
    RING_SLICE_BYTES,
    LinearCost,
    launch_s,
    pipelined,
    register,
    ring_step,
)
from superscale.topology.graph import IntArray, Topology

_STEPS = {"all_reduce": 2, "reduce_scatter": 1, "all_gather": 1}


@register("ring")
class Ring:
    """Bandwidth-optimal ring; 2(n−1)/n·S per rank for all-reduce."""

    name = "ring"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        n = groups.shape[1]
        if n < 2:
            return None
        per_byte, latency, channels = ring_step(groups, topo)
        if collective in _STEPS:
            steps = _STEPS[collective] * (n - 1)
            chunk_fill = steps * per_byte * channels * RING_SLICE_BYTES
            return pipelined(
                launch_s(topo), steps * latency, steps * per_byte / n, chunk_fill_s=chunk_fill
            )
        if collective == "broadcast":  # pipelined chain: the payload streams through
            chunk_fill = (n - 1) * per_byte * channels * NCCL_STEP_BYTES
            return pipelined(launch_s(topo), (n - 1) * latency, per_byte, chunk_fill_s=chunk_fill)
        return None
