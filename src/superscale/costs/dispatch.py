"""Expert-parallel dispatch and combine: how many copies of a token cross the network.

Megatron-LM's all-to-all dispatcher sends one copy of a token to every GPU holding one of
its top-k experts, so k copies leave a GPU and the (N−1)/N of them bound for the other N−1
nodes of the expert-parallel group cross the scale-out network. DeepEP and Hybrid-EP
(DeepSeek-AI 2025, DeepEP README; Megatron-Core's flex dispatcher) send one copy per
destination node over RDMA and forward it to the experts' GPUs over the scale-up fabric,
and combine reduces inside the node before the one copy returns. Node-limited routing
(DeepSeek-V3 Sec. 2.1.2: each token's experts lie on at most M = 4 nodes) bounds the nodes
a token reaches.

With E experts spread evenly over N nodes (g = E/N each) and a token's k experts drawn
uniformly among the M·g experts of its M nodes, a node is hit with probability
1 − C(M·g − g, k) / C(M·g, k), so a token reaches on average
M · (1 − Π_{i<k} (M·g − g − i) / (M·g − i)) nodes. Routing is taken as balanced; a node is
a scale-up domain (a server, or a whole super-node).

Each DeepEP or Hybrid-EP call also prepares its layout and metadata (the routing map's
per-rank counts and offsets) before its kernels move data: `DISPATCH_PREPARATION_S`, the
median over the 33 Hybrid-EP rows of `moe_dispatch.csv` that give both times (B200 and
GB200 NVL72, EP 8-36, fp8 and bf16, dispatch and combine) of torch-API time minus
kernel-only time: 0.16-0.31 ms, median 0.20 ms, measured at 4,096 tokens per rank.
"""

from __future__ import annotations

import numpy as np

from superscale import vec
from superscale.models.spec import MoE

DISPATCH_PREPARATION_S = 2.0e-4  # per DeepEP/Hybrid-EP call (module docstring)


def expected_nodes_per_token(moe: MoE, nodes: vec.Num) -> vec.Num:
    """Nodes a token's top-k experts lie on, on average, over `nodes` nodes (≥ 1)."""
    n = np.asarray(nodes, dtype=float)
    limit = moe.max_nodes_per_token
    m = n if limit is None else np.minimum(n, float(limit))
    per_node = moe.experts / n
    pool = m * per_node  # the experts of the token's m nodes
    miss = np.ones_like(n)
    for i in range(moe.top_k):  # P(no expert on a given node of the m)
        miss = miss * np.clip((pool - per_node - i) / (pool - i), 0.0, 1.0)
    reached = m * (1.0 - miss)
    return reached if vec.is_array(nodes) else float(reached)


def remote_copies_per_token(moe: MoE, nodes: vec.Num, *, dedup: vec.Num) -> vec.Num:
    """Copies of one token a GPU sends to other nodes: k·(N−1)/N plainly, or one per
    remote node reached when `dedup` (DeepEP, Hybrid-EP)."""
    n = vec.maximum(nodes, 1.0)
    remote_share = (n - 1.0) / n
    plain = moe.top_k * remote_share
    once = expected_nodes_per_token(moe, n) * remote_share
    return vec.where(dedup, once, plain)


def payload_factor(moe: MoE, nodes: vec.Num, *, dedup: vec.Num) -> vec.Num:
    """The share of the k-copy all-to-all payload that crosses the scale-out network under
    deduplication (1 without, or inside one node where every copy stays on the fabric)."""
    n = vec.maximum(nodes, 1.0)
    across = vec.where(n > 1.0, 1.0, 0.0)
    ratio = expected_nodes_per_token(moe, n) / moe.top_k
    return vec.where(dedup, across * ratio + (1.0 - across), 1.0)
