"""Multi-plane fabrics: independent leaf-spine planes, cross-plane flows through PXN."""

from __future__ import annotations

import numpy as np
import pytest

from superscale.errors import SpecError
from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster, ScaleOut
from superscale.scenario import load_scenario
from superscale.topology import Topology


def _topology(planes: int, count: int = 2, topology: str = "rail-optimized") -> Topology:
    system = systems().get("dgx-h100")  # 8 GPUs, 8 NICs: GPU i on rail i
    scale_out = ScaleOut(topology=topology, planes=planes)  # type: ignore[arg-type]
    return Topology(cluster=Cluster(system=system, count=count, scale_out=scale_out))


def _links(topo: Topology, a: int, b: int) -> list[str]:
    return [h.link for h in topo.route(a, b)]


def test_cross_plane_flow_goes_through_the_scale_up_fabric_first() -> None:
    one, eight = _topology(1), _topology(8)
    # GPU 0 (rail 0) of server 0 to GPU 1 (rail 1) of server 1
    assert _links(one, 0, 9) == ["nic_tx", "nic_rx", "leaf_up", "leaf_down"]  # via spine
    assert _links(eight, 0, 9) == ["up_tx", "up_rx", "nic_tx", "nic_rx"]  # PXN, one leaf
    assert _links(eight, 0, 8) == ["nic_tx", "nic_rx"]  # same plane: as before
    extra = systems().get("dgx-h100").scale_up.link.latency_s
    lat_one = one.latency_s(np.array([0]), np.array([9]))[0]
    lat_eight = eight.latency_s(np.array([0]), np.array([9]))[0]
    assert lat_eight == pytest.approx(lat_one - 2 * 0.25e-6 + extra)  # no leaf-spine hops


def test_pxn_loads_by_hand() -> None:
    topo = _topology(8)
    src = np.zeros(8, dtype=np.int64)  # GPU 0 of server 0 ...
    dst = np.arange(8, 16)  # ... to every GPU of server 1, one byte each
    loads = topo.loads(src, dst).bytes
    assert loads["up_tx"][0] == 7  # seven flows leave for other planes over NVLink
    assert list(loads["up_rx"][1:8]) == [1] * 7  # one at each proxy GPU
    assert list(loads["nic_tx"][:8]) == [1] * 8  # then each leaves by its own rail's NIC
    assert "leaf_up" not in loads  # each plane's pair of NICs shares one leaf


def test_a_plane_spine_block_reaches_planes_times_the_systems() -> None:
    # radix 64 non-blocking: 32 systems per rail leaf; a spine block of 32 leaf ports per
    # leaf joins 32 leaves: 4 groups of the 8 rails' leaves, or 32 of one plane's
    assert _topology(1, count=2048).systems_per_pod == 32 * (32 // 8)
    assert _topology(8, count=2048).systems_per_pod == 32 * 32
    assert _topology(2, count=2048).systems_per_pod == 32 * (32 // 4)


def test_planes_must_divide_the_nics_and_need_a_fat_tree() -> None:
    base = {
        "model": "llama3-8b",
        "training": {"seq_len": 4096, "global_batch": 16},
        "parallel": {"micro_batch": 1},
    }
    with pytest.raises(SpecError, match="must divide the system's NICs"):
        load_scenario(
            {**base, "cluster": {"system": "dgx-h100", "count": 2, "scale_out": {"planes": 3}}}
        )
    torus = {"topology": "torus", "torus_dims": [2], "planes": 2}
    with pytest.raises(SpecError, match="planes"):
        load_scenario({**base, "cluster": {"system": "dgx-h100", "count": 2, "scale_out": torus}})


def test_check_names_the_network_shape() -> None:
    from superscale.report.check import network_words

    topo = _topology(8)
    assert network_words(topo.cluster) == "rail-optimized, 8 planes"
    fat = Cluster(
        system=systems().get("dgx-h100"),
        count=2,
        scale_out=ScaleOut(topology="fat-tree", oversubscription=2.0),
    )
    assert network_words(fat) == "fat-tree, 2:1 at the leaves"
    torus = Cluster(
        system=systems().get("dgx-h100"),
        count=8,
        scale_out=ScaleOut(topology="torus", torus_dims=(2, 2, 2)),
    )
    assert network_words(torus) == "torus 2×2×2"
