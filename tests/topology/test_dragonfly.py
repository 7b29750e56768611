"""Dragonfly scale-out: group-crossing traffic shares the pair's global links."""

from __future__ import annotations

import numpy as np
import pytest

from superscale.collectives import CommModel
from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster, ScaleOut
from superscale.topology import Topology


def _cluster(**scale_out: object) -> Cluster:
    return Cluster(
        system=systems().get("dgx-h100"), count=8, scale_out=ScaleOut.model_validate(scale_out)
    )


NIC = 400e9 / 8 * 0.90  # one 400G NIC's achieved rate, bytes/s


def test_balanced_dragonfly_is_nic_bound() -> None:
    """Default: one global link per NIC, so 32 pairs across 2 groups of 4 DGX H100 each
    run at their NICs' rate, as on a fat-tree."""
    flat = CommModel(_cluster(topology="fat-tree")).costs("send_recv", 2, 32)["p2p"]
    fly = CommModel(_cluster(topology="dragonfly", dragonfly_group_systems=4))
    cost = fly.costs("send_recv", 2, 32)["p2p"]
    assert cost.per_byte_s == pytest.approx(1 / NIC) == pytest.approx(flat.per_byte_s)


def test_tapered_global_links_are_shared() -> None:
    """Hand computation: 8 global links per group, 2 groups: the 32 flows from one group to
    the other share 8 links of 45 GB/s, so each moves at 45 × 8 / 32 GB/s: 4x slower."""
    model = CommModel(
        _cluster(topology="dragonfly", dragonfly_group_systems=4, global_links_per_group=8)
    )
    cost = model.costs("send_recv", 2, 32)["p2p"]
    assert cost.per_byte_s == pytest.approx(32 / (8 * NIC))
    # flows inside a group never touch the global links
    inside = model.costs("send_recv", 2, 8)["p2p"]
    assert inside.per_byte_s == pytest.approx(1 / NIC)


def test_more_groups_split_the_global_links() -> None:
    """4 groups of 2 systems, 16 global links each: a pair of groups gets 16/3 links."""
    topo = Topology(
        cluster=_cluster(topology="dragonfly", dragonfly_group_systems=2, global_links_per_group=16)
    )
    assert topo.capacity["global"] == pytest.approx(16 * NIC / 3)
    src, dst = np.array([0]), np.array([63])
    assert [h.link for h in topo.route(0, 63)] == ["nic_tx", "nic_rx", "global"]
    near = float(topo.latency_s(src, np.array([8]))[0])  # the next system, same group
    far = float(topo.latency_s(src, dst)[0])
    assert far > near  # the global hop and the far group's local hop


def test_bad_group_size_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="dragonfly_group_systems"):
        ScaleOut.model_validate({"topology": "dragonfly", "dragonfly_group_systems": 0})
