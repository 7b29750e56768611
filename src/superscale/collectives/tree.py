"""Double binary tree all-reduce (Sanders et al. 2009; NCCL 2.4+).

Two complementary binary trees each reduce half the buffer to a root and broadcast it
back, pipelined in chunks: per-rank traffic about S each way per phase, but only
2·⌈log2 n⌉ latency steps, so trees win at small sizes and large n.

A group with k > 1 members in each of several systems runs as NCCL builds its tree
channels: one channel per member, each a chain through the system's k GPUs whose head
joins a double binary tree of the systems (Jeaugey, "Massively scale your deep learning
training with NCCL 2.4", NVIDIA 2019) on its own NIC, carrying S/k. Reduction up and
broadcast down stream through chains and trees at once, so the per-byte time is the
busiest link under all of those flows together, and each NIC carries S/k each way where
a ring crossing systems carries 2(n−1)/n·S/k. Off the ring NCCL's chunk is one step's
slot of its buffer (NCCL_STEP_BYTES), which sets the fixed-chunk fill (`base.pipelined`).
"""

from __future__ import annotations

import math

import numpy as np

from superscale.collectives.base import (
    NCCL_STEP_BYTES,
    LinearCost,
    launch_s,
    pipelined,
    register,
    step_s,
    subgroups,
)
from superscale.topology.graph import IntArray, Topology


def _parents(n: int, *, second: bool) -> IntArray:
    """Parent rank of each rank in an in-order binary tree (−1 at the root).

    Position x = rank + 1 sits at the level of its lowest set bit, so odd positions are
    leaves. The second tree mirrors the ranks (even n) or shifts them by one (odd n), so
    every rank is interior in at most one tree (Sanders et al. 2009, as NCCL builds them).
    """
    ranks = np.arange(n)
    position = (n - ranks) if second and n % 2 == 0 else ((ranks + 1) % n if second else ranks) + 1
    rank_at = np.empty(n + 1, dtype=np.int64)
    rank_at[position] = ranks
    root = 1 << (n.bit_length() - 1)
    parent = np.full(n, -1, dtype=np.int64)
    for x in range(1, n + 1):
        p = x
        while p != root:
            low = p & -p
            p = p + low if (p // low) % 4 == 1 else p - low
            if p <= n:
                break
        if x != root:
            parent[rank_at[x]] = rank_at[p]
    return parent


def _tree_edges(groups: IntArray) -> tuple[IntArray, IntArray]:
    """(child, parent) of both trees of every group."""
    n = groups.shape[1]
    children, parents = [], []
    for second in (False, True):
        parent = _parents(n, second=second)
        idx = np.nonzero(parent >= 0)[0]
        children.append(groups[:, idx].reshape(-1))
        parents.append(groups[:, parent[idx]].reshape(-1))
    return np.concatenate(children), np.concatenate(parents)


def _flat(groups: IntArray, topo: Topology) -> LinearCost:
    child, parent = _tree_edges(groups)
    # each tree carries half the buffer up (reduce) and down (broadcast), pipelined
    per_byte = topo.loads(
        np.concatenate([child, parent]), np.concatenate([parent, child]), 0.5
    ).busiest(topo.capacity)[2]
    latency = float(np.max(topo.latency_s(child, parent)))
    depth = math.ceil(math.log2(groups.shape[1]))
    chunk_fill = _chunk_fill_s(2 * depth, per_byte, pipelines=2)
    return pipelined(
        launch_s(topo), 2 * depth * (latency + step_s(topo)), per_byte, chunk_fill_s=chunk_fill
    )


def _chunk_fill_s(hops: int, per_byte: float, *, pipelines: int) -> float:
    """The fill of NCCL's fixed chunk: one step's slot (NCCL_STEP_BYTES) on each of the
    `pipelines` trees at once moves through every hop up and down."""
    return hops * per_byte * pipelines * NCCL_STEP_BYTES


def _chains_and_trees(intra: IntArray, inter: IntArray, topo: Topology) -> LinearCost:
    """NCCL's multi-system tree: per channel a chain in each system and a tree across."""
    k, systems = intra.shape[1], inter.shape[1]
    srcs, dsts, weights = [], [], []
    for c in range(k):  # channel c: chain starting at member c, head = member c
        chain = np.roll(intra, -c, axis=1)
        up_src, up_dst = chain[:, 1:].reshape(-1), chain[:, :-1].reshape(-1)
        srcs += [up_src, up_dst]  # reduce toward the head, broadcast back out
        dsts += [up_dst, up_src]
        weights += [np.full(2 * up_src.size, 1.0 / k)]
    chain_latency = float(np.max(topo.latency_s(np.concatenate(srcs), np.concatenate(dsts))))
    child, parent = _tree_edges(inter)  # inter row j: member j of every system (rail j)
    srcs += [child, parent]
    dsts += [parent, child]
    weights += [np.full(2 * child.size, 0.5 / k)]  # each tree carries half a channel
    tree_latency = float(np.max(topo.latency_s(child, parent)))
    per_byte = topo.loads(
        np.concatenate(srcs), np.concatenate(dsts), np.concatenate(weights)
    ).busiest(topo.capacity)[2]
    depth = math.ceil(math.log2(systems))
    step = step_s(topo)
    hops = (k - 1) * (chain_latency + step) + depth * (tree_latency + step)
    chunk_fill = _chunk_fill_s(2 * (k - 1 + depth), per_byte, pipelines=2 * k)
    return pipelined(launch_s(topo), 2 * hops, per_byte, chunk_fill_s=chunk_fill)


@register("tree")
class DoubleBinaryTree:
    """Two mirrored binary trees, each carrying half the data."""

    name = "tree"

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None:
        n = groups.shape[1]
        if collective != "all_reduce" or n < 3:
            return None
        split = subgroups(groups, topo)
        if split is not None:
            return _chains_and_trees(*split, topo)
        return _flat(groups, topo)
