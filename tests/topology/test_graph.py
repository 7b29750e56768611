"""Routes and link loads of the cluster graph."""

from __future__ import annotations

import numpy as np
import pytest

from superscale.hardware.catalog import clusters, systems
from superscale.hardware.spec import Cluster, ScaleOut
from superscale.topology import Topology, groups_of


def _links(topo: Topology, a: int, b: int) -> list[str]:
    return [h.link for h in topo.route(a, b)]


def test_routes_by_level() -> None:
    topo = Topology(cluster=clusters().get("h100-16k"))
    assert _links(topo, 0, 1) == ["up_tx", "up_rx"]  # NVSwitch inside a server
    assert _links(topo, 0, 8) == ["nic_tx", "nic_rx"]  # next server, same leaf (16 GPUs/ToR)
    assert _links(topo, 0, 8 * 10) == ["nic_tx", "nic_rx", "leaf_up", "leaf_down"]
    assert _links(topo, 0, 8 * 2000) == [
        "nic_tx",
        "nic_rx",
        "leaf_up",
        "leaf_down",
        "pod_up",
        "pod_down",
    ]


def test_c500_server_crosses_pcie_between_its_metaxlink_groups() -> None:
    topo = Topology(cluster=Cluster(system=systems().get("metax-c500-8x"), count=1))
    assert _links(topo, 0, 3) == ["mesh"]  # full mesh inside a 4-GPU MetaXLink group
    assert _links(topo, 0, 4) == ["host_tx", "host_rx"]


def test_rail_optimized_keeps_same_rail_traffic_on_one_leaf() -> None:
    cluster = Cluster(
        system=systems().get("dgx-h100"), count=16, scale_out=ScaleOut(topology="rail-optimized")
    )
    topo = Topology(cluster=cluster)
    assert _links(topo, 3, 8 * 15 + 3) == ["nic_tx", "nic_rx"]  # rail 3 to rail 3
    assert "leaf_up" in _links(topo, 3, 8 * 15 + 4)  # rail 3 to rail 4: via the spine


def test_loads_count_flows_sharing_a_link() -> None:
    topo = Topology(cluster=Cluster(system=systems().get("dgx-h100"), count=4))
    src = np.array([0, 0, 0])
    dst = np.array([8, 16, 24])  # three flows leave GPU 0's NIC
    loads = topo.loads(src, dst, 1.0)
    assert loads.bytes["nic_tx"].max() == 3
    assert loads.bytes["nic_rx"].max() == 1


def test_latency_grows_with_switch_tiers() -> None:
    topo = Topology(cluster=clusters().get("h100-16k"))
    lat = topo.latency_s(np.zeros(3, dtype=np.int64), np.array([1, 8 * 10, 8 * 2000]))
    assert lat[0] < lat[1] < lat[2]


@pytest.mark.parametrize(("size", "stride"), [(8, 1), (4, 8), (16, 32)])
def test_groups_tile_the_cluster(size: int, stride: int) -> None:
    groups = groups_of(size, stride, 1024)
    assert groups.shape == (1024 // size, size)
    assert sorted(groups.reshape(-1).tolist()) == list(range(1024))
    assert np.all(np.diff(groups, axis=1) == stride)
