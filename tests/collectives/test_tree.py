"""Double binary trees: their shape, and NCCL's chain-and-tree channels across systems."""

from __future__ import annotations

import numpy as np
import pytest

from superscale.collectives import BUS_FACTOR, CommModel
from superscale.collectives.tree import _parents
from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster

GIB = 2**30


@pytest.mark.parametrize("n", [2, 3, 5, 8, 16, 31, 128])
def test_each_rank_is_interior_in_at_most_one_tree(n: int) -> None:
    first, second = _parents(n, second=False), _parents(n, second=True)
    for parents in (first, second):
        assert int(np.sum(parents < 0)) == 1  # one root, every other rank has a parent
    inner_first = set(first[first >= 0].tolist())
    inner_second = set(second[second >= 0].tolist())
    assert not inner_first & inner_second


def test_tree_on_two_dgx_h100_uses_every_rail() -> None:
    """Hand computation for 2 × 8 GPUs: per channel (one per GPU) the chain carries S/8
    up and down through each GPU's NVLink port, 2·7/8·S per port in all, and each NIC S/8
    each way; the busiest of the two sets the time."""
    model = CommModel(Cluster(system=systems().get("dgx-h100"), count=2))
    cap = model.topology.capacity
    expected = max(2 * 7 / 8 / cap["up_tx"], 1 / 8 / cap["nic_tx"])
    tree = model.costs("all_reduce", 16, 1)["tree"]
    assert tree.per_byte_s == pytest.approx(expected, rel=1e-9)
    size = 4 * GIB
    busbw = size / tree.time_s(size) * BUS_FACTOR["all_reduce"](16) / 1e9
    ring = model.costs("all_reduce", 16, 1)["ring"]
    ring_busbw = size / ring.time_s(size) * BUS_FACTOR["all_reduce"](16) / 1e9
    assert busbw > 0.9 * ring_busbw  # was 21 GB/s against the ring's 358 on one rail's tree
    # collectives.csv: H100 multi-node default all-reduce 370-380 GB/s (8x 400G per node)
    assert busbw == pytest.approx(375, rel=0.15)


def test_tree_latency_beats_ring_on_many_systems() -> None:
    model = CommModel(Cluster(system=systems().get("dgx-h100"), count=16))
    costs = model.costs("all_reduce", 128, 1)
    assert costs["tree"].fixed_s < costs["ring"].fixed_s / 3
    assert model.best("all_reduce", 2**24, 128, 1)[0] != "ring"
