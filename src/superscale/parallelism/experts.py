"""Where routed experts live, and the load of the busiest expert-parallel GPU.

Given the router's load statistics (relative tokens per expert), a placement puts the
experts and their redundant replicas on the `ep` GPUs of an expert-parallel group:

- `contiguous`: Megatron-Core's layout, experts in index order, experts / ep per GPU;
- `eplb`: DeepSeek's expert-parallel load balancer (github deepseek-ai/EPLB): give each
  redundant replica to the expert whose tokens per replica are highest, then pack the
  replicas (each carrying its expert's load over its replica count) onto the GPUs heaviest
  first, each to the least loaded GPU with a free slot.

The busiest GPU's load over the mean is the plan's `expert_imbalance`: it sets the pace of
expert compute and of the all-to-all (`training/layer.py`).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Literal

Placement = Literal["contiguous", "eplb"]


def replicas_per_expert(loads: Sequence[float], redundant: int) -> list[int]:
    """EPLB's replication: each extra replica goes to the expert with the most tokens per
    replica (the lowest index on ties)."""
    counts = [1] * len(loads)
    heap = [(-load, index) for index, load in enumerate(loads)]
    heapq.heapify(heap)
    for _ in range(redundant):
        _, index = heapq.heappop(heap)
        counts[index] += 1
        heapq.heappush(heap, (-loads[index] / counts[index], index))
    return counts


def gpu_loads(
    loads: Sequence[float], ep: int, *, redundant: int = 0, placement: Placement = "eplb"
) -> list[float]:
    """Tokens each GPU of the expert-parallel group receives, in the loads' units."""
    slots = (len(loads) + redundant) // ep
    if placement == "contiguous":
        per_gpu = len(loads) // ep
        return [sum(loads[g * per_gpu : (g + 1) * per_gpu]) for g in range(ep)]
    counts = replicas_per_expert(loads, redundant)
    pieces = sorted(
        (loads[e] / counts[e] for e in range(len(loads)) for _ in range(counts[e])),
        reverse=True,
    )
    totals = [0.0] * ep
    filled = [0] * ep
    for piece in pieces:
        target = min((g for g in range(ep) if filled[g] < slots), key=lambda g: totals[g])
        totals[target] += piece
        filled[target] += 1
    return totals


def imbalance(
    loads: Sequence[float], ep: int, *, redundant: int = 0, placement: Placement = "eplb"
) -> float:
    """The busiest GPU's routed tokens over the mean (1 = perfectly balanced)."""
    per_gpu = gpu_loads(loads, ep, redundant=redundant, placement=placement)
    mean = sum(per_gpu) / ep
    return max(per_gpu) / mean if mean > 0 else 1.0
