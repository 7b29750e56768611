"""Torus scale-out: dimension-order minimal routes over neighbour links."""

from __future__ import annotations

import math

import pytest

from superscale.collectives import BUS_FACTOR, CommModel
from superscale.collectives.base import LAUNCH_S, STEP_S
from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster, ScaleOut
from superscale.parallelism.plan import GroupShape

GIB = 2**30
# dgx-h100: 8 NICs x 50 GB/s split over 6 links (+/- of 3 axes), x 0.90 achieved
LINK = 8 * 50e9 / 6 * 0.90


def _model(*, count: int = 64, **scale_out: object) -> CommModel:
    so = ScaleOut.model_validate(scale_out)
    return CommModel(Cluster(system=systems().get("dgx-h100"), count=count, scale_out=so))


def test_ring_along_an_axis_shares_the_forward_link() -> None:
    """Hand computation: 4-system rings along x (stride 8 GPUs), one per GPU of a system:
    the 8 rings all use each system's +x link, so each gets LINK / 8 of busbw. At 1 GiB the
    latency and the pipeline fill (2·√(steps·α·β·S), about 1%) take a little of it."""
    model = _model(topology="torus", torus_dims=[4, 4, 4])
    assert model.topology.capacity["torus"] == pytest.approx(LINK)
    ring = model.costs("all_reduce", 4, 8)["ring"]
    assert BUS_FACTOR["all_reduce"](4) / ring.per_byte_s == pytest.approx(LINK / 8, rel=1e-12)
    busbw = GIB / ring.time_s(GIB) * BUS_FACTOR["all_reduce"](4)
    assert 0.97 * LINK / 8 < busbw < LINK / 8
    flat = _model(topology="fat-tree").costs("all_reduce", 4, 8)["ring"]
    assert ring.per_byte_s > flat.per_byte_s  # one NIC per GPU on the fat-tree


def test_two_hops_share_links_with_the_neighbours_flows() -> None:
    """Pairs two systems apart along x cross two links, each also carrying the next pair's
    flows: twice the per-byte time of neighbour pairs."""
    model = _model(topology="torus", torus_dims=[4, 4, 4])
    near = model.costs("send_recv", 2, 8)["p2p"].per_byte_s
    far = model.costs("send_recv", 2, 16)["p2p"].per_byte_s
    assert near == pytest.approx(8 / LINK)
    assert far == pytest.approx(2 * near)


def test_given_link_rate_and_hypercube() -> None:
    """A hypercube is a torus of 2s; torus_link_gb_per_s sets each link."""
    model = _model(topology="torus", torus_dims=[2] * 6, torus_link_gb_per_s=100)
    assert model.topology.capacity["torus"] == pytest.approx(100e9 * 0.90)


def test_torus_dims_must_hold_the_systems() -> None:
    with pytest.raises(ValueError, match="torus_dims"):
        _model(topology="torus", torus_dims=[4, 4, 2])
    with pytest.raises(ValueError, match="torus_dims"):
        ScaleOut.model_validate({"topology": "torus"})


HOP_S = 0.25e-6  # topology.graph


def _torus(dims: list[int]) -> CommModel:
    return _model(topology="torus", torus_dims=dims, count=math.prod(dims))


@pytest.mark.parametrize("dims", [[4, 4, 4], [2, 2, 2]])
def test_all_reduce_over_every_system_of_a_3d_torus(dims: list[int]) -> None:
    """Hand computation: one GPU of each of the n systems (stride 8), the 8 such groups at
    once, all-reduce by ring in rank order, system i = x + X·y + X·Y·z. A step sends S/n
    from each system to system i + 1: one +x hop, and where x wraps (the short way round
    is forward) a +y hop too, and +z where y wraps as well. So each system's +x link
    carries its own flow and every +y or +z link at most one wrap flow per ring: with 8
    rings the busiest link is a +x link with 8 chunks (each NIC sends one, 45 GB/s >
    60/8). Per step 8·(S/n)/LINK, 2(n−1) steps: per_byte = 2(n−1)·8/(n·LINK), busbw
    LINK/8 — one of a system's six links, as a ring along one axis. The slowest step
    wraps every axis (x, y and z: 3 hops), so each step's latency is the NIC's plus three
    router hops plus the step overhead. Reducing per dimension instead (x, then y on the
    1/X shard, then z) moves 2(1 − 1/X)(1 + 1/X + 1/X²)·S = 2(n−1)/n·S over one link at a
    time: the same bandwidth term. Only running the six directions at once (bidirectional
    or per-axis rings on split data) would be faster, which no modelled algorithm does."""
    n = math.prod(dims)
    model = _torus(dims)
    ring = model.costs("all_reduce", n, 8)["ring"]
    assert ring.per_byte_s == pytest.approx(2 * (n - 1) * 8 / (n * LINK), rel=1e-12)
    step_latency = model.cluster.nic.latency_s + 3 * HOP_S + STEP_S
    assert ring.fixed_s == pytest.approx(LAUNCH_S + 2 * (n - 1) * step_latency, rel=1e-12)
    assert ring.fills == ()  # a ring's steps do not chain (collectives/ring.py)
    assert BUS_FACTOR["all_reduce"](n) / ring.per_byte_s == pytest.approx(LINK / 8, rel=1e-12)
    # the tuner takes the ring at bandwidth-bound sizes (the double binary tree is slower)
    group = GroupShape(size=n, stride=8)
    assert model.time_s("all_reduce", GIB, group) == pytest.approx(ring.time_s(GIB))


def test_whole_torus_all_reduce_has_no_switch_to_reduce_in() -> None:
    """All 512 GPUs: NCCL's 8 ring channels each leave a system at a different GPU, so a
    step puts 8 flows of S/(512·8) on each +x link: S/512 per step, 2·511 steps, per_byte
    = 2·511/(512·LINK). ConnectX-7's SHARP reduces in IB switches, which a torus lacks:
    in-network reduction is not offered there (it was, at 4.6x the ring's busbw),
    but is on a fat-tree."""
    model = _torus([4, 4, 4])
    costs = model.costs("all_reduce", 512, 1)
    assert costs["ring"].per_byte_s == pytest.approx(2 * 511 / (512 * LINK), rel=1e-12)
    assert "nvls" not in costs
    assert "nvls" in _model(topology="fat-tree").costs("all_reduce", 512, 1)
