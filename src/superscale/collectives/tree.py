"""Double binary tree all-reduce (Sanders et al. 2009; NCCL 2.4+).

Two complementary binary trees each reduce half the buffer to a root and broadcast it
back, pipelined in chunks: per-rank traffic about S each way per phase, but only
2·⌈log2 n⌉ latency steps, so trees win at small sizes and large n.
"""

from __future__ import annotations

import math

import numpy as np

from superscale.collectives.base import LAUNCH_S, STEP_S, LinearCost, register
from superscale.topology.graph import IntArray, Topology


@register("tree")
class DoubleBinaryTree:
    """Two mirrored binary trees, each carrying half the data."""

    name = "tree"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        n = groups.shape[1]
        if collective != "all_reduce" or n < 3:
            return None
        idx = np.arange(1, n)
        parent = (idx - 1) // 2
        srcs, dsts = [], []
        for shift in (0, 1):  # the second tree is the first shifted by one rank
            order = np.roll(groups, -shift, axis=1)
            srcs.append(order[:, idx].reshape(-1))
            dsts.append(order[:, parent].reshape(-1))
        src, dst = np.concatenate(srcs), np.concatenate(dsts)
        per_byte, latency = topo.flow_cost(src, dst, 0.5)
        latency += STEP_S
        depth = math.ceil(math.log2(n))
        # reduce up, then broadcast down: the same links in reverse
        return LinearCost(LAUNCH_S + 2 * depth * latency, 2 * per_byte)
