"""The collective-algorithm protocol, its registry, and linear time models.

An algorithm turns (collective, concurrent groups, topology) into a `LinearCost`: time =
fixed_s + per_byte_s · payload, where the payload is nccl-tests' size (the all-reduce
buffer, the all-gather output, the reduce-scatter input, the bytes one rank sends in an
all-to-all). Per-byte time comes from the busiest link when every concurrent group runs the
algorithm's flows at once, so shared NICs and uplinks slow it; fixed time counts
launches and per-step latencies (Thakur et al. 2005 for ring and tree step counts).
Adding an algorithm = one module with a class implementing `Algorithm` and an
`@register("name")` line; contract tests run over the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from superscale.registry import Registry
from superscale.topology.graph import IntArray, Topology

COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "all_to_all", "send_recv")
LAUNCH_S = 5e-6  # kernel launch + protocol setup of one library collective (NCCL-class)
STEP_S = 0.5e-6  # per-step synchronisation overhead on top of link latency
# nccl-tests bus-bandwidth factors (NVIDIA nccl-tests doc/PERFORMANCE.md)
BUS_FACTOR: dict[str, Callable[[int], float]] = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "send_recv": lambda n: 1.0,
}


@dataclass(frozen=True, slots=True)
class LinearCost:
    """time(S) = fixed_s + per_byte_s · S."""

    fixed_s: float
    per_byte_s: float

    def time_s(self, nbytes: float) -> float:
        return self.fixed_s + self.per_byte_s * nbytes

    def __add__(self, other: LinearCost) -> LinearCost:
        return LinearCost(self.fixed_s + other.fixed_s, self.per_byte_s + other.per_byte_s)

    def scaled(self, bytes_factor: float) -> LinearCost:
        """The cost of a phase that moves `bytes_factor` of the payload."""
        return LinearCost(self.fixed_s, self.per_byte_s * bytes_factor)


class Algorithm(Protocol):
    """A way to run collectives; `cost` returns None when it does not apply."""

    name: str

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None: ...


_REGISTRY: Registry[Algorithm] = Registry()
register = _REGISTRY.register


def algorithms() -> dict[str, Algorithm]:
    """Registered algorithms by name (importing the package registers the built-ins)."""
    return _REGISTRY.all()


# ---- shared flow patterns ----------------------------------------------------------
def ring_step(groups: IntArray, topo: Topology) -> tuple[float, float]:
    """(seconds per byte of chunk, latency) of one ring step over every group at once.

    Groups spanning several systems run one ring per member of a system (NCCL channels),
    each crossing system boundaries at a different member, so every NIC a group can
    reach carries a share; each channel carries 1/channels of the chunk.
    """
    n = groups.shape[1]
    per_system = _members_per_system(groups, topo)
    channels = per_system if per_system < n else 1
    srcs, dsts = [], []
    for c in range(channels):
        order = _rotate_within_systems(groups, per_system, c) if channels > 1 else groups
        srcs.append(order.reshape(-1))
        dsts.append(np.roll(order, -1, axis=1).reshape(-1))
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    per_byte, latency = topo.flow_cost(src, dst, 1.0 / channels)
    latency += STEP_S
    return per_byte, latency


def _members_per_system(groups: IntArray, topo: Topology) -> int:
    systems = groups[0] // topo.per_system
    return int(np.sum(systems == systems[0]))


def _rotate_within_systems(groups: IntArray, k: int, shift: int) -> IntArray:
    g, n = groups.shape
    if n % k:
        return groups
    blocks = groups.reshape(g, n // k, k)
    return np.roll(blocks, -shift, axis=2).reshape(g, n)


def subgroups(groups: IntArray, topo: Topology) -> tuple[IntArray, IntArray] | None:
    """Split regular groups into (members inside one system, same position across systems).

    Returns None unless every group has the same number k > 1 of members in each of
    several systems (the precondition of hierarchical algorithms).
    """
    n = groups.shape[1]
    k = _members_per_system(groups, topo)
    if k <= 1 or k >= n or n % k:
        return None
    blocks = groups.reshape(groups.shape[0], n // k, k)
    systems = blocks // topo.per_system
    if not np.all(systems == systems[:, :, :1]):
        return None
    intra = blocks.reshape(-1, k)
    inter = blocks.transpose(0, 2, 1).reshape(-1, n // k)
    return intra, inter
