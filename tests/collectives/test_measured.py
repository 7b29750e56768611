"""Collectives priced from a profile's measured bus bandwidths (`collectives/measured.py`)."""

from __future__ import annotations

import numpy as np
import pytest

from superscale.collectives import BUS_FACTOR, CommModel
from superscale.collectives.measured import MIN_POINTS, MeasuredCost, measured_costs
from superscale.hardware.catalog import systems
from superscale.hardware.profile import FITTED, CollectivePoint, named_profile, with_profile
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupShape

MIB = 2**20
# A made-up 8-rank all-reduce curve with a mid-size dip no linear model has
CURVE = {1 * MIB: 30.0, 16 * MIB: 90.0, 256 * MIB: 200.0, 1024 * MIB: 220.0}


def _points(curve: dict[int, float], ranks: int = 8) -> tuple[CollectivePoint, ...]:
    return tuple(
        CollectivePoint(collective="all_reduce", bytes=size, ranks=ranks, bus_gb_per_s=bw)
        for size, bw in curve.items()
    )


def _seconds(size: float, busbw_gb_per_s: float, ranks: int = 8) -> float:
    return size * BUS_FACTOR["all_reduce"](ranks) / (busbw_gb_per_s * 1e9)


def _cluster(count: int, curve: dict[int, float] | None) -> Cluster:
    """`count` DGX H100s whose chip's profile measured `curve` (None: no collectives)."""
    system = systems().get("dgx-h100")
    profile = named_profile(FITTED, "h100-sxm", None)
    points = _points(curve) if curve is not None else ()
    chip = with_profile(system.chip, profile.model_copy(update={"collectives": points}))
    return Cluster(system=system.model_copy(update={"chip": chip}), count=count)


def test_curve_reads_the_measured_times_and_interpolates_in_log_log() -> None:
    (cost,) = measured_costs(_points(CURVE)).values()
    for size, bw in CURVE.items():
        assert cost.time_s(size) == pytest.approx(_seconds(size, bw), rel=1e-12)
    # halfway (in log) between 1 and 16 MiB: the geometric mean of the two times
    mid = 4 * MIB
    expected = (_seconds(1 * MIB, 30.0) * _seconds(16 * MIB, 90.0)) ** 0.5
    assert cost.time_s(mid) == pytest.approx(expected, rel=1e-9)
    # below the smallest size the latency floor holds; above the largest, the bytes grow
    assert cost.time_s(1024) == pytest.approx(cost.time_s(1 * MIB))
    assert cost.time_s(4096 * MIB) == pytest.approx(4 * cost.time_s(1024 * MIB))
    # an array answers element by element, as the batched engines ask
    sizes = np.array([1024.0, mid, 4096.0 * MIB])
    assert cost.time_s(sizes) == pytest.approx([cost.time_s(float(s)) for s in sizes])
    # the event engine's split: link time at the largest size's rate, the rest latency
    assert cost.per_byte_s * 16 * MIB + cost.fill_s(16 * MIB) == pytest.approx(
        cost.time_s(16 * MIB)
    )
    assert cost.fill_s(16 * MIB) > 0 and cost.fixed_s == 0


def test_curves_with_too_few_sizes_price_nothing() -> None:
    few = dict(list(CURVE.items())[: MIN_POINTS - 1])
    assert measured_costs(_points(few)) == {}
    assert set(measured_costs(_points(CURVE))) == {("all_reduce", 8)}


def test_a_group_inside_one_system_of_the_measured_size_is_priced_by_the_curve() -> None:
    """8 GPUs of one DGX: the measured curve, whatever the model says; 16 GPUs over two
    systems, or 4 of one, were not measured: the model prices them."""
    measured = CommModel(_cluster(2, CURVE))
    model = CommModel(_cluster(2, None), measured=False)
    name, seconds = measured.best("all_reduce", 16 * MIB, 8, 1)
    assert name == "measured" and seconds == pytest.approx(_seconds(16 * MIB, 90.0))
    assert seconds > model.best("all_reduce", 16 * MIB, 8, 1)[1] * 1.5  # the dip shows
    for size, stride in ((16, 1), (4, 1), (2, 8)):  # across systems, or another size
        assert measured.best("all_reduce", 16 * MIB, size, stride) == model.best(
            "all_reduce", 16 * MIB, size, stride
        )
    # a named algorithm is still the model's, for comparison
    assert measured.best("all_reduce", 16 * MIB, 8, 1, algorithm="ring") == model.best(
        "all_reduce", 16 * MIB, 8, 1, algorithm="ring"
    )


def test_batched_times_and_the_event_engine_read_the_same_curve() -> None:
    comm = CommModel(_cluster(2, CURVE))
    sizes = np.array([64 * 1024, 16 * MIB, 300 * MIB, 2048 * MIB], dtype=np.float64)
    for size, stride in ((8, 1), (16, 1), (2, 8)):
        shape = GroupShape(size=np.full(sizes.size, size), stride=np.full(sizes.size, stride))
        batched = comm.time_s("all_reduce", sizes, shape)
        one_by_one = [comm.best("all_reduce", float(s), size, stride)[1] for s in sizes]
        assert batched == pytest.approx(one_by_one, rel=1e-12)
        table = comm.costs("all_reduce", size, stride)
        for s in sizes:
            _, chosen = comm.chosen(table, float(s))
            assert chosen.time_s(float(s)) == pytest.approx(
                comm.best("all_reduce", float(s), size, stride)[1], rel=1e-12
            )
    assert isinstance(comm.chosen(comm.costs("all_reduce", 8, 1), MIB)[1], MeasuredCost)


def test_without_a_profile_the_fitted_nccl_tests_rows_price_a_whole_node() -> None:
    """No scenario profile: the chip's shipped fitted profile carries the nccl-tests rows
    of an 8-GPU node (A100: Azure ND A100 v4, 109.22 GB/s busbw at 16 MiB), and those
    price an 8-GPU group of a DGX A100; the component check still compares the model."""
    cluster = Cluster(system=systems().get("dgx-a100"), count=1)
    name, seconds = CommModel(cluster).best("all_reduce", 16 * MIB, 8, 1)
    assert name == "measured"
    assert 16 * MIB * BUS_FACTOR["all_reduce"](8) / seconds / 1e9 == pytest.approx(109.22)
    assert CommModel(cluster, measured=False).best("all_reduce", 16 * MIB, 8, 1)[0] != name


def test_a_profile_that_measured_collectives_replaces_the_fitted_rows() -> None:
    own = CommModel(_cluster(1, CURVE))
    fitted = CommModel(Cluster(system=systems().get("dgx-h100"), count=1))
    mid = 16 * MIB
    assert own.best("all_reduce", mid, 8, 1)[1] == pytest.approx(_seconds(mid, 90.0))
    assert fitted.best("all_reduce", mid, 8, 1)[1] != pytest.approx(_seconds(mid, 90.0))
