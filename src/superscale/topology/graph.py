"""The link graph of a cluster, with vectorized routing and per-link load counting.

A GPU is addressed by coordinates: system, scale-up domain inside it, local index. The
links a flow crosses follow from those coordinates, so a 16,384-GPU cluster needs no
explicit edge list and routing a million flows is a few numpy operations:

- inside one domain: the sender's scale-up port (`up_tx`) and the receiver's (`up_rx`) on a
  switched fabric (NVSwitch, MetaXLink switch, UB); on a full mesh the pair's own link
  (`mesh`, the GPU's scale-up rate split over its D−1 peers, as xGMI and 8-GPU MetaXLink);
- between domains of one system: each GPU's domain link (`host_tx`/`host_rx`, e.g. PCIe);
- between systems: the sender's NIC (`nic_tx`), its leaf switch's aggregate uplink
  (`leaf_up`) unless both NICs share a leaf, the pod uplinks (`pod_up`/`pod_down`) when
  the leaves sit in different pods, the receiver's leaf downlink (`leaf_down`) and NIC
  (`nic_rx`).

Leaves have `leaf_radix` ports split between NIC-facing downlinks and uplinks by the
oversubscription ratio; ECMP spreads a leaf's cross-leaf traffic evenly over its uplinks,
so they act as one aggregate link (Al-Fares et al. 2008). Rail-optimized fabrics put NIC
i of every server on rail i's leaves (NVIDIA DGX SuperPOD reference architecture), so same-rail
traffic stays one switch away; a fat-tree puts all NICs of a server on one leaf.
A dragonfly (Kim et al. 2008; HPE Slingshot) groups `dragonfly_group_systems` systems,
non-blocking inside a group, and joins every pair of groups by an equal share of each
group's global links; minimal routing sends group-crossing traffic over that pair's
links (`global`), so flows between two groups share them.
A torus (`torus_dims`, TPU/Ascend-style) puts systems on a wrap-around grid with one link
per direction of each axis (`torus`); flows take dimension-order minimal routes (the
shorter way round each ring), and every link on a route carries the flow.
A multi-plane fabric (`planes` P > 1; DeepSeek-V3's eight-plane fat-tree) splits each
system's NICs evenly over P independent leaf-spine fabrics, NIC rails r·P/k.. on plane
r·P // k: a spine block serves one plane's leaves only, so a two-tier plane reaches P
times as many systems, and a flow bound for a NIC on another plane first crosses the
scale-up fabric to the sender-side GPU on the receiver's rail (PXN), then leaves by that
GPU's NIC.
Capacities are per direction, times each link's achieved protocol efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from superscale.hardware.spec import Cluster

SWITCH_HOP_S = 0.25e-6  # port-to-port latency of one switch traversal (IB NDR class)
LINK_CLASSES = (
    "up_tx",
    "up_rx",
    "mesh",
    "host_tx",
    "host_rx",
    "nic_tx",
    "nic_rx",
    "leaf_up",
    "leaf_down",
    "pod_up",
    "pod_down",
    "global",
    "torus",
)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """One link on a route, for people and tests."""

    link: str  # class name
    index: int
    capacity_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkLoads:
    """Bytes each link carries, per link class (arrays indexed by link id)."""

    bytes: dict[str, FloatArray]

    def busiest(self, capacity: dict[str, float]) -> tuple[str, int, float]:
        """(class, link id, seconds) of the link that takes longest to drain."""
        best = ("", -1, 0.0)
        for name, load in self.bytes.items():
            if load.size == 0:
                continue
            i = int(np.argmax(load))
            t = float(load[i]) / capacity[name]
            if t > best[2]:
                best = (name, i, t)
        return best

    def flows_per_link(self) -> dict[str, int]:
        """Largest load on any link of each class (in the unit of `bytes`)."""
        return {k: int(v.max()) for k, v in self.bytes.items() if v.size}


@dataclass(frozen=True, kw_only=True)
class Topology:
    """The link structure of a cluster.

    `launch_s` and `step_s` override the collective library's fixed latencies
    (`collectives.base.LAUNCH_S`, `STEP_S`; None keeps them), so a fit can vary them.
    """

    cluster: Cluster
    launch_s: float | None = None
    step_s: float | None = None

    # ---- sizes ----------------------------------------------------------------------
    @property
    def gpus(self) -> int:
        return self.cluster.gpus

    @property
    def per_system(self) -> int:
        return self.cluster.system.gpus

    @property
    def domain(self) -> int:
        return self.cluster.system.scale_up.gpus

    @property
    def nics_per_system(self) -> int:
        return self.cluster.system.nics.count

    @property
    def dragonfly(self) -> bool:
        return self.cluster.scale_out.topology == "dragonfly"

    @property
    def torus_dims(self) -> tuple[int, ...] | None:
        so = self.cluster.scale_out
        return so.torus_dims if so.topology == "torus" else None

    @property
    def dragonfly_groups(self) -> int:
        return -(-self.cluster.count // self.cluster.scale_out.dragonfly_group_systems)

    @property
    def planes(self) -> int:
        return self.cluster.scale_out.planes

    @property
    def rail_optimized(self) -> bool:
        return self.cluster.scale_out.topology in {"rail-optimized", "rail-fat-tree"}

    @cached_property
    def leaf_downlinks(self) -> int:
        o = self.cluster.scale_out.oversubscription
        return max(1, int(self.cluster.scale_out.leaf_radix * o / (1 + o)))

    @cached_property
    def systems_per_leaf(self) -> int:
        if self.rail_optimized:
            return self.leaf_downlinks  # one NIC per system on each rail's leaf
        return max(1, self.leaf_downlinks // (self.nics_per_system // self.planes))

    @cached_property
    def systems_per_pod(self) -> int:
        """Systems under one spine block (radix/2 leaves, or leaf groups on rails)."""
        if self.cluster.scale_out.pod_gpus is not None:
            return max(1, self.cluster.scale_out.pod_gpus // self.per_system)
        leaves_per_group = self.nics_per_system // self.planes if self.rail_optimized else 1
        groups = max(1, (self.cluster.scale_out.leaf_radix // 2) // leaves_per_group)
        return self.systems_per_leaf * groups

    # ---- capacities and latencies ---------------------------------------------------
    @cached_property
    def capacity(self) -> dict[str, float]:
        """Achieved bytes/s per direction of one link of each class."""
        system, so = self.cluster.system, self.cluster.scale_out
        up = system.scale_up_bytes_per_s * system.scale_up.link.efficiency
        nic = self.cluster.nic.bandwidth_bytes_per_s * self.cluster.nic.efficiency
        host = up
        if system.domain_link is not None:
            host = system.domain_link.bandwidth_bytes_per_s * system.domain_link.efficiency
        leaf_up = self.leaf_downlinks * nic / so.oversubscription
        pod_up = (
            leaf_up
            * (self.systems_per_pod // self.systems_per_leaf)
            * (self.nics_per_system // self.planes if self.rail_optimized else 1)
            / so.pod_oversubscription
        )
        group_nics = min(so.dragonfly_group_systems, self.cluster.count) * self.nics_per_system
        global_links = so.global_links_per_group or group_nics
        # each group's global links spread evenly over the other groups (minimal routing)
        pair = global_links * nic / max(1, self.dragonfly_groups - 1)
        torus = self.cluster.nic.bandwidth_bytes_per_s * self.nics_per_system
        torus /= 2 * len(so.torus_dims or (1,))
        if so.torus_link_gb_per_s is not None:
            torus = so.torus_link_gb_per_s * 1e9
        return {
            "torus": torus * self.cluster.nic.efficiency,
            "global": pair,
            "up_tx": up,
            "up_rx": up,
            "mesh": up / max(1, self.domain - 1),
            "host_tx": host,
            "host_rx": host,
            "nic_tx": nic,
            "nic_rx": nic,
            "leaf_up": leaf_up,
            "leaf_down": leaf_up,
            "pod_up": pod_up,
            "pod_down": pod_up,
        }

    @property
    def mesh(self) -> bool:
        return self.cluster.system.scale_up.topology != "switch"

    # ---- coordinates ----------------------------------------------------------------
    def _coords(self, g: IntArray) -> dict[str, IntArray]:
        p, d, k = self.per_system, self.domain, self.nics_per_system
        if self.gpus < 2**31 // max(k, 1):  # 32-bit integer division is ~4x faster
            g = g.astype(np.int32)
        system, local = g // p, g % p
        rail = local * k // p
        nic = system * k + rail
        leaf_block = system // self.systems_per_leaf
        plane = rail * self.planes // k
        if self.rail_optimized:
            blocks = -(-self.cluster.count // self.systems_per_leaf)
            leaf = rail * blocks + leaf_block
        else:  # a fat-tree's leaves: one per block of systems on each plane
            leaf = leaf_block * self.planes + plane
        pods = -(-self.cluster.count // self.systems_per_pod)
        return {
            "system": system,
            "local": local,
            "domain": system * (p // d) + local // d,
            "nic": nic,
            "rail": rail,
            "leaf": leaf,
            "pod": plane * pods + system // self.systems_per_pod,
            "plane": plane,
            "group": system // self.cluster.scale_out.dragonfly_group_systems,
        }

    # ---- routing --------------------------------------------------------------------
    def loads(self, src: IntArray, dst: IntArray, nbytes: float | FloatArray = 1.0) -> LinkLoads:
        """Bytes on every link when each flow src[i] → dst[i] carries nbytes[i]."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        return self._loads(src, dst, self._coords(src), self._coords(dst), nbytes)

    def _loads(
        self,
        src: IntArray,
        dst: IntArray,
        s: dict[str, IntArray],
        t: dict[str, IntArray],
        nbytes: float | FloatArray,
    ) -> LinkLoads:
        w = np.broadcast_to(np.asarray(nbytes, dtype=np.float64), src.shape)
        same_domain = s["domain"] == t["domain"]
        same_system = s["system"] == t["system"]
        out: dict[str, FloatArray] = {}

        def add(name: str, mask: NDArray[np.bool_], index: IntArray, size: int) -> None:
            if mask.any():
                counts = np.asarray(
                    np.bincount(index[mask], weights=w[mask], minlength=size), dtype=np.float64
                )
                out[name] = out[name] + counts if name in out else counts

        inner = same_domain & (src != dst)
        if self.mesh:
            d = self.domain
            add("mesh", inner, src * d + t["local"] % d, self.gpus * d)
        else:
            add("up_tx", inner, src, self.gpus)
            add("up_rx", inner, dst, self.gpus)
        across_domains = same_system & ~same_domain
        add("host_tx", across_domains, src, self.gpus)
        add("host_rx", across_domains, dst, self.gpus)
        net = ~same_system
        if net.any() and self.planes > 1:  # PXN: to the sender-side GPU on the far rail
            other, proxy, c = self._pxn(net, s, t)
            near = other & (c["domain"] == s["domain"]) & (proxy != src)
            if self.mesh:
                d = self.domain
                add("mesh", near, src * d + c["local"] % d, self.gpus * d)
            else:
                add("up_tx", near, src, self.gpus)
                add("up_rx", near, proxy, self.gpus)
            far = other & (c["domain"] != s["domain"])
            add("host_tx", far, src, self.gpus)
            add("host_rx", far, proxy, self.gpus)
            s = {**s, **{key: np.where(other, c[key], s[key]) for key in ("nic", "leaf", "pod")}}
        if net.any():
            nics = self.cluster.count * self.nics_per_system
            add("nic_tx", net, s["nic"], nics)
            add("nic_rx", net, t["nic"], nics)
            if self.torus_dims is not None:
                hops = self._torus_hops(s["system"][net], t["system"][net])
                size = self.cluster.count * 2 * len(self.torus_dims)
                torus = np.zeros(size)
                w_net = w[net]
                for link, flow in hops:
                    torus += np.bincount(link, weights=w_net[flow], minlength=size)
                out["torus"] = torus
                return LinkLoads(bytes=out)
            if self.dragonfly:
                groups = self.dragonfly_groups
                cross = net & (s["group"] != t["group"])
                add("global", cross, s["group"] * groups + t["group"], groups * groups)
                return LinkLoads(bytes=out)
            cross_leaf = net & (s["leaf"] != t["leaf"])
            leaves = int(max(s["leaf"].max(), t["leaf"].max())) + 1
            add("leaf_up", cross_leaf, s["leaf"], leaves)
            add("leaf_down", cross_leaf, t["leaf"], leaves)
            cross_pod = net & (s["pod"] != t["pod"])
            pods = int(max(s["pod"].max(), t["pod"].max())) + 1
            add("pod_up", cross_pod, s["pod"], pods)
            add("pod_down", cross_pod, t["pod"], pods)
        return LinkLoads(bytes=out)

    def _pxn(
        self, net: NDArray[np.bool_], s: dict[str, IntArray], t: dict[str, IntArray]
    ) -> tuple[NDArray[np.bool_], IntArray, dict[str, IntArray]]:
        """Flows bound for another plane, their proxies (the sender-side GPU on the
        receiver's rail) and the proxies' coordinates."""
        other = net & (s["plane"] != t["plane"])
        per_rail = max(1, self.per_system // self.nics_per_system)
        proxy = s["system"] * self.per_system + t["rail"] * per_rail + s["local"] % per_rail
        return other, proxy, self._coords(proxy)

    def _torus_hops(self, a: IntArray, b: IntArray) -> list[tuple[IntArray, IntArray]]:
        """(link ids, flow indices) of every hop of dimension-order minimal routes from
        system a[i] to b[i]; link id = system · 2D + 2·axis + (0 forward, 1 back)."""
        dims = self.torus_dims
        assert dims is not None
        strides = np.cumprod((1, *dims[:-1]))
        here = np.asarray(a, dtype=np.int64).copy()
        b = np.asarray(b, dtype=np.int64)
        hops: list[tuple[IntArray, IntArray]] = []
        for axis, (k, stride) in enumerate(zip(dims, strides, strict=True)):
            delta = (b // stride % k - here // stride % k) % k
            back = delta > k // 2  # the shorter way round (ties go forward)
            steps = np.where(back, k - delta, delta)
            for step in range(int(steps.max(initial=0))):
                moving = np.nonzero(steps > step)[0]
                node = here[moving]
                link = node * 2 * len(dims) + 2 * axis + back[moving]
                hops.append((link, moving))
                pos = node // stride % k
                new = np.where(back[moving], (pos - 1) % k, (pos + 1) % k)
                here[moving] = node + (new - pos) * stride
        return hops

    def _torus_distance(self, a: IntArray, b: IntArray) -> IntArray:
        dims = self.torus_dims
        assert dims is not None
        total = np.zeros(np.shape(a), dtype=np.int64)
        stride = 1
        for k in dims:
            delta = (b // stride % k - a // stride % k) % k
            total += np.minimum(delta, k - delta)
            stride *= k
        return total

    def latency_s(self, src: IntArray, dst: IntArray) -> FloatArray:
        """One-way latency of each flow: link latencies plus switch traversals."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        return self._latency(src, dst, self._coords(src), self._coords(dst))

    def _latency(
        self, src: IntArray, dst: IntArray, s: dict[str, IntArray], t: dict[str, IntArray]
    ) -> FloatArray:
        system = self.cluster.system
        lat = np.full(src.shape, system.scale_up.link.latency_s)
        across = (s["system"] == t["system"]) & (s["domain"] != t["domain"])
        if system.domain_link is not None:
            lat = np.where(across, system.domain_link.latency_s, lat)
        net = s["system"] != t["system"]
        other = np.zeros(src.shape, dtype=bool)
        if self.planes > 1:  # hops counted from the proxy, after a scale-up hop to it
            other, _, c = self._pxn(net, s, t)
            s = {**s, **{key: np.where(other, c[key], s[key]) for key in ("leaf", "pod")}}
        if self.torus_dims is not None:  # each hop through a system's router
            hops = np.maximum(1, self._torus_distance(s["system"], t["system"]))
        elif self.dragonfly:  # local hop, then global and the far group's local hop
            hops = 1 + 2 * (s["group"] != t["group"])
        else:
            hops = 1 + 2 * (s["leaf"] != t["leaf"]) + 2 * (s["pod"] != t["pod"])
        lat = np.where(net, self.cluster.nic.latency_s + hops * SWITCH_HOP_S, lat)
        lat = lat + np.where(other, system.scale_up.link.latency_s, 0.0)
        return np.where(src == dst, 0.0, lat)

    def flow_cost(
        self, src: IntArray, dst: IntArray, nbytes: float | FloatArray = 1.0
    ) -> tuple[float, float]:
        """(seconds per unit of `nbytes` until every flow has drained, the slowest flow's
        latency): what a collective's step costs, with the flows' coordinates found once."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        s, t = self._coords(src), self._coords(dst)
        per_byte = self._loads(src, dst, s, t, nbytes).busiest(self.capacity)[2]
        return per_byte, float(np.max(self._latency(src, dst, s, t)))

    def route(self, src: int, dst: int) -> list[Hop]:
        """The links one flow crosses, in order."""
        loads = self.loads(np.array([src]), np.array([dst]))
        order = [c for c in LINK_CLASSES if c in loads.bytes]
        latency = float(self.latency_s(np.array([src]), np.array([dst]))[0])
        return [
            Hop(
                link=c,
                index=int(np.argmax(loads.bytes[c])),
                capacity_bytes_per_s=self.capacity[c],
                latency_s=latency / max(1, len(order)),
            )
            for c in order
        ]


def groups_of(size: int, stride: int, gpus: int) -> IntArray:
    """All groups of `size` ranks spaced `stride` apart, one group per row (rank order
    tp fastest: the layout of parallelism.plan)."""
    block = size * stride
    if gpus % block:
        raise ValueError(f"groups of {size}×stride {stride} do not tile {gpus} GPUs")
    ranks = np.arange(gpus, dtype=np.int64).reshape(gpus // block, size, stride)
    return ranks.transpose(0, 2, 1).reshape(-1, size)
