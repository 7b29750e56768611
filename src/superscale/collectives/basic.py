"""Latency-bandwidth time of collectives on a placed group, hierarchical across levels.

A group with k1 members per scale-up domain, k2 per system and N = n/k2 systems runs an
all-reduce as reduce-scatter inside the domain, across domains inside the system and across
systems, then all-gather back (the hierarchical scheme NCCL's ring/tree approximate):

  t = Σ_level 2·(r_l − 1)/r_l · S_l / B_l + 2·(r_l − 1)·α_l

with r_l the ring size at that level, S_l the bytes each member still holds there (S, S/k1,
S/k2) and B_l the bandwidth per member: the chip's scale-up rate, the domain link, or the
member's share of its system's NICs (every GPU of a system communicates at once in a
training step, so each gets NICs·rate/GPUs). Reduce-scatter and all-gather cost half an
all-reduce; all-to-all sends (n−1)/n of the payload, split by where the peers sit. Achieved
fractions of link bandwidth (`LINK_EFFICIENCY`) follow nccl-tests bus bandwidths (e.g. 8×H100
ring all-reduce 367 GB/s of 450; hardware.csv row 5). Sources: Thakur et al. 2005 (ring
costs); Patarasuk & Yuan 2009.
"""

from __future__ import annotations

from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupPlacement

LINK_EFFICIENCY = {"scale-up": 0.80, "host": 0.80, "scale-out": 0.90}


def _levels(group: GroupPlacement, cluster: Cluster) -> list[tuple[int, float, float]]:
    """(ring size, bandwidth per member in bytes/s, latency s) for each level crossed."""
    system = cluster.system
    n = group.size
    k1 = max(1, min(group.per_domain, n))
    k2 = max(k1, min(group.per_system, n))
    up = system.scale_up.link
    levels = [(k1, system.scale_up_bytes_per_s * LINK_EFFICIENCY[up.kind], up.latency_s)]
    if k2 > k1 and system.domain_link is not None:
        dl = system.domain_link
        levels.append((k2 // k1, dl.bandwidth_bytes_per_s * LINK_EFFICIENCY[dl.kind], dl.latency_s))
    if n > k2:
        nic = cluster.nic
        share = cluster.nic_bytes_per_s_per_system / system.gpus
        if cluster.scale_out.oversubscription > 1 and n // k2 > 1:
            share /= cluster.scale_out.oversubscription
        levels.append((n // k2, share * LINK_EFFICIENCY[nic.kind], nic.latency_s))
    return levels


def all_reduce_time_s(payload_bytes: float, group: GroupPlacement, cluster: Cluster) -> float:
    if group.size == 1:
        return 0.0
    t, held = 0.0, payload_bytes
    for ring, bw, lat in _levels(group, cluster):
        if ring > 1:
            t += 2 * (ring - 1) / ring * held / bw + 2 * (ring - 1) * lat
        held /= ring
    return t


def collective_time_s(
    collective: str, payload_bytes: float, group: GroupPlacement, cluster: Cluster
) -> float:
    """Time of one collective of nccl-tests size `payload_bytes` on `group`, seconds."""
    if group.size == 1:
        return 0.0
    if collective == "all_reduce":
        return all_reduce_time_s(payload_bytes, group, cluster)
    if collective in {"all_gather", "reduce_scatter"}:
        return 0.5 * all_reduce_time_s(payload_bytes, group, cluster)
    levels = _levels(group, cluster)
    if collective == "send_recv":
        _, bw, lat = levels[-1]
        return payload_bytes / bw + lat
    if collective == "all_to_all":
        n = group.size
        t, inner = 0.0, 1
        for ring, bw, lat in levels:
            reach = inner * ring  # members reachable at this level and below
            share = (reach - inner) / n  # payload share whose peers first differ here
            t = max(t, share * payload_bytes / bw + (ring - 1) * lat)
            inner = reach
        return t
    raise ValueError(f"unknown collective '{collective}'")
