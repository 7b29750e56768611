"""The collective-algorithm protocol, its registry, and the cost every algorithm returns.

An algorithm turns (collective, concurrent groups, topology) into a `LinearCost`: time =
fixed_s + fill(S) + per_byte_s · S, where the payload S is nccl-tests'
size (the all-reduce buffer, the all-gather output, the reduce-scatter input, the bytes one
rank sends in an all-to-all). Per-byte time comes from the busiest link when every
concurrent group runs the algorithm's flows at once, so shared NICs and uplinks slow it;
fixed time counts launches and per-step latencies (Thakur et al. 2005 for ring and tree
step counts). Chained algorithms (tree, NVLS, the broadcast chain) also pay the chunk
pipeline's fill (`pipelined`): 2·√(steps·α·β·S) while the best chunk fits NCCL's buffer,
then the fixed fill of NCCL's chunk (its NCCL_BUFFSIZE / NCCL_STEPS constants), no
fitted parameter; a ring's reductions do not chain (`ring.py`).
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
# The library's fixed latencies, fitted (`python -m superscale.calibrate.latency`) to the 33
# nccl-tests all-reduce rows of 1 KiB-1 MiB on whole 8-GPU ND A100 v4, ND H100 v5 and ND
# H200 v5 nodes (collectives.csv, Azure AI Benchmarking Guide): priced with the links
# catalog's latencies, the tuner's algorithm and the chain algorithms' pipeline fill,
# they give those rows a median error of 9.1%. Only single-node 8-GPU rows are that
# small, so the per-step figure is set by NVLS's 2 steps against the tree's 6 and the
# ring's 14.
LAUNCH_S = 25.95e-6  # launch + protocol setup of one library collective (NCCL-class)
STEP_S = 0.85e-6  # per-step synchronisation on top of the link's latency
# nccl-tests bus-bandwidth factors (NVIDIA nccl-tests doc/PERFORMANCE.md)
BUS_FACTOR: dict[str, Callable[[int], float]] = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "send_recv": lambda n: 1.0,
}


# NCCL's Simple protocol streams through a per-channel buffer of NCCL_BUFFSIZE (default
# 4 MiB: DEFAULT_BUFFSIZE in NVIDIA/nccl src/init.cc @5067397c; NCCL_BUFFSIZE in
# docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html)
# split in NCCL_STEPS = 8 slots (src/include/device.h), so one step moves 512 KiB per
# channel. Rings move a slice of NCCL_STEPS/4 = 2 steps (1 MiB) per hop
# (ALLREDUCE/ALLGATHER/REDUCESCATTER_SLICESTEPS, src/include/collectives.h); trees and
# chains one step (chunkSteps = sliceSteps = 1 off the ring, calcCollChunking in
# src/enqueue.cc); NVLS a chunk of NCCL_NVLS_CHUNKSIZE (128 KiB, src/transport/nvls.cc)
# per head on each of its 16 channels (NVLS_NCHANNELS_SM90) — calcCollChunking's NVLS loop
# moves nChannels·nHeads chunks.
NCCL_BUFFSIZE_BYTES = 4 * 2**20
NCCL_STEPS = 8
NCCL_STEP_BYTES = NCCL_BUFFSIZE_BYTES // NCCL_STEPS
RING_SLICE_BYTES = NCCL_STEP_BYTES * (NCCL_STEPS // 4)
NVLS_CHUNK_BYTES = 128 * 2**10
NVLS_CHANNELS = 16


@dataclass(frozen=True, slots=True)
class LinearCost:
    """time(S) = fixed_s + per_byte_s · S + Σ min(a · √S, b) over the pipeline fills (a, b).

    Linear in S but for the chunk pipelines' fills (none for unpipelined patterns): each
    grows as √S (the best chunk's, for small messages) until it reaches b, the fill of
    the fixed chunk NCCL streams large ones in, and stays there (`pipelined`).
    """

    fixed_s: float
    per_byte_s: float
    fills: tuple[tuple[float, float], ...] = ()

    @property
    def fill_s_per_sqrt_byte(self) -> float:
        """The fills' √S coefficient below their saturation (a of every fill, summed)."""
        return sum(a for a, _ in self.fills)

    def fill_s(self, nbytes: float) -> float:
        """Seconds the chunk pipelines spend filling and draining for `nbytes`."""
        root = float(nbytes) ** 0.5
        return float(sum(min(a * root, b) for a, b in self.fills))

    def time_s(self, nbytes: float) -> float:
        return self.fixed_s + self.fill_s(nbytes) + self.per_byte_s * nbytes

    def __add__(self, other: LinearCost) -> LinearCost:
        return LinearCost(
            self.fixed_s + other.fixed_s,
            self.per_byte_s + other.per_byte_s,
            self.fills + other.fills,
        )

    def scaled(self, bytes_factor: float) -> LinearCost:
        """The cost of a phase that moves `bytes_factor` of the payload: the √S fill goes
        as the square root of the per-byte time, so by √factor; a fixed chunk's fill (its
        chunk is the same) not at all."""
        return LinearCost(
            self.fixed_s,
            self.per_byte_s * bytes_factor,
            tuple((a * bytes_factor**0.5, b) for a, b in self.fills),
        )


def pipelined(
    launch_s: float, steps_latency_s: float, per_byte_s: float, *, chunk_fill_s: float
) -> LinearCost:
    """A collective that streams its payload in chunks through a chain of latency steps.

    With k chunks the last one is done after k + steps − 1 stages of α + β·S/k (α the
    per-step latency, β·S the per-byte time through the busiest link), ≈ steps·α + β·S +
    k·α + steps·β·S/k; the best k = √(steps·β·S/α) gives (√(steps·α) + √(β·S))²: a fill
    of 2·√(steps·α·β·S) on top of the linear terms (van de Geijn's pipelined broadcast).
    NCCL's chunk cannot outgrow its buffer's slot: once a message spans many fixed chunks,
    the NCCL_STEPS slots in flight hide α behind the transfers and the fill is the steps'
    transfer of one chunk, `chunk_fill_s`, whatever the size. The cost takes the smaller
    of the two (the √S form is the latency-bound one of small messages).
    `steps_latency_s` is steps·α and `per_byte_s` is β.
    """
    fill = 2.0 * (max(steps_latency_s, 0.0) * per_byte_s) ** 0.5
    return LinearCost(launch_s + steps_latency_s, per_byte_s, ((fill, chunk_fill_s),))


class Algorithm(Protocol):
    """A way to run collectives; `cost` returns None when it does not apply."""

    name: str

    def cost(self, collective: str, groups: IntArray, topo: Topology) -> LinearCost | None: ...


_REGISTRY: Registry[Algorithm] = Registry()
register = _REGISTRY.register


def algorithms() -> dict[str, Algorithm]:
    """Registered algorithms by name (importing the package registers the built-ins)."""
    return _REGISTRY.all()


def launch_s(topo: Topology) -> float:
    """The library's launch latency on `topo` (LAUNCH_S unless the topology overrides it)."""
    return LAUNCH_S if topo.launch_s is None else topo.launch_s


def step_s(topo: Topology) -> float:
    """The library's per-step latency on `topo` (STEP_S unless the topology overrides it)."""
    return STEP_S if topo.step_s is None else topo.step_s


# ---- shared flow patterns ----------------------------------------------------------
def ring_step(groups: IntArray, topo: Topology) -> tuple[float, float, int]:
    """(seconds per byte of chunk, latency, channels) of one ring step over every group
    at once.

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
    latency += step_s(topo)
    return per_byte, latency, channels


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
