"""Ring algorithms: bandwidth-optimal, latency linear in the group size.

All-reduce = reduce-scatter + all-gather, 2(n−1) steps of S/n each; reduce-scatter and
all-gather n−1 steps; broadcast a pipelined chain (Patarasuk & Yuan 2009; NCCL).

A ring's steps do not chain: every rank starts on its own block at once, and at each step
forwards what the previous step delivered, so the links stay busy from the first slice to
the last and the time is the steps' latency plus the bytes (no chunk-pipeline fill). The
nccl-tests rows say so: on 16-256 H100s across AWS p5 nodes, ring all-gathers' time
beyond that bytes' term stays flat from 32 MiB to 2 GiB (~1.5 ms at 256 GPUs, ~0.7 ms at
128, ~0.3 ms at 64: about 6 µs a step), where a chained fill (one slice per step) grew
to 4.8 ms at 256 GPUs and 2 GiB, pricing those rows up to 44% slow. The broadcast chain
does fill: the payload streams through it, one NCCL step per hop (`base.pipelined`).
"""

from __future__ import annotations

from superscale.collectives.base import (
    NCCL_STEP_BYTES,
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
            return LinearCost(launch_s(topo) + steps * latency, steps * per_byte / n)
        if collective == "broadcast":  # pipelined chain: the payload streams through
            chunk_fill = (n - 1) * per_byte * channels * NCCL_STEP_BYTES
            return pipelined(launch_s(topo), (n - 1) * latency, per_byte, chunk_fill_s=chunk_fill)
        return None
