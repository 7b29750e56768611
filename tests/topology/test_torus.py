"""Torus scale-out: dimension-order minimal routes over neighbour links."""

from __future__ import annotations

import pytest

from superscale.collectives import BUS_FACTOR, CommModel
from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster, ScaleOut

GIB = 2**30
# dgx-h100: 8 NICs x 50 GB/s split over 6 links (+/- of 3 axes), x 0.90 achieved
LINK = 8 * 50e9 / 6 * 0.90


def _model(**scale_out: object) -> CommModel:
    so = ScaleOut.model_validate(scale_out)
    return CommModel(Cluster(system=systems().get("dgx-h100"), count=64, scale_out=so))


def test_ring_along_an_axis_shares_the_forward_link() -> None:
    """Hand computation: 4-system rings along x (stride 8 GPUs), one per GPU of a system:
    the 8 rings all use each system's +x link, so each gets LINK / 8 of busbw."""
    model = _model(topology="torus", torus_dims=[4, 4, 4])
    assert model.topology.capacity["torus"] == pytest.approx(LINK)
    ring = model.costs("all_reduce", 4, 8)["ring"]
    busbw = GIB / ring.time_s(GIB) * BUS_FACTOR["all_reduce"](4)
    assert busbw == pytest.approx(LINK / 8, rel=0.01)
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
