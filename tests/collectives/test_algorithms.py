"""Properties of the collective algorithms on real topologies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from superscale.collectives import COLLECTIVES, CommModel, algorithms, costs_for
from superscale.collectives.base import LAUNCH_S
from superscale.hardware.catalog import clusters, systems
from superscale.hardware.spec import Cluster, ScaleOut
from superscale.parallelism.plan import GroupShape
from superscale.topology import Topology, groups_of

GIB = 2**30


def _cluster(system: str, count: int, **scale_out: object) -> Cluster:
    return Cluster(
        system=systems().get(system), count=count, scale_out=ScaleOut.model_validate(scale_out)
    )


@pytest.mark.parametrize("name", sorted(algorithms()))
@pytest.mark.parametrize("collective", COLLECTIVES)
def test_contract_every_algorithm(name: str, collective: str) -> None:
    """Each registered algorithm either declines or gives a positive, increasing cost."""
    topo = Topology(cluster=_cluster("dgx-h100", 4))
    for size, stride in ((8, 1), (4, 8), (32, 1)):
        cost = algorithms()[name].cost(collective, groups_of(size, stride, 32), topo)
        if cost is None:
            continue
        assert cost.fixed_s > 0 and cost.per_byte_s > 0
        assert cost.time_s(2 * GIB) > cost.time_s(GIB)


def test_ring_reductions_are_linear_and_the_broadcast_chain_fills() -> None:
    """A ring's ranks all start at once and forward each step's delivery at the next, so
    all-reduce, reduce-scatter and all-gather cost the steps' latency plus the bytes, with
    no chunk-pipeline fill: time is exactly linear in S. The broadcast chain streams its
    payload through n − 1 hops and does pay a fill."""
    model = CommModel(_cluster("dgx-h100", 4))
    for collective in ("all_reduce", "reduce_scatter", "all_gather"):
        ring = model.costs(collective, 32, 1)["ring"]
        assert ring.fills == ()

        def time(s: float, op: str = collective) -> float:
            return model.best(op, s, 32, 1, algorithm="ring")[1]

        sizes = (2**20, 2**24, GIB, 4 * GIB)
        slopes = [(time(b) - time(a)) / (b - a) for a, b in itertools.pairwise(sizes)]
        assert slopes == pytest.approx([ring.per_byte_s] * 3, rel=1e-9)
        assert time(GIB) == pytest.approx(ring.fixed_s + ring.per_byte_s * GIB, rel=1e-12)
    broadcast = model.costs("broadcast", 32, 1)["ring"]
    assert len(broadcast.fills) == 1 and broadcast.fill_s(GIB) > 0


def test_multi_node_ring_all_gather_against_nccl_tests() -> None:
    """AWS p5 nccl-tests (components/collectives.csv): 256 H100s on 32 nodes, all-gather
    at 32 MiB 12.4 GB/s busbw and at 2 GiB 262.8. The steps' latency (255 of them at the
    network's fitted 8 µs) is what holds the small one down; the bytes, the large one."""
    model = CommModel(_cluster("dgx-h100", 32))
    for size, measured in ((32 * 2**20, 12.4), (2 * GIB, 262.8)):
        seconds = model.best("all_gather", size, 256, 1)[1]
        busbw = size * 255 / 256 / seconds / 1e9
        assert busbw == pytest.approx(measured, rel=0.20)


def test_batched_times_are_the_costs_in_both_fill_regimes() -> None:
    """The tuner's vectorized time (a batch of plans) is each layout's fastest
    `LinearCost.time_s`, below and past the sizes where the fills saturate, for
    algorithms with several fills (hierarchical, multi-system NVLS) too. (The model
    alone: `test_measured.py` covers groups a profile's measured curve prices.)"""
    model = CommModel(_cluster("dgx-h100", 4), measured=False)
    sizes = np.array([2**10, 2**20, 16 * 2**20, 256 * 2**20, GIB, 8 * GIB], dtype=np.float64)
    for collective in ("all_reduce", "all_gather"):
        for size, stride in ((8, 1), (32, 1), (4, 8), (16, 2)):
            shape = GroupShape(size=np.full(sizes.size, size), stride=np.full(sizes.size, stride))
            batched = model.time_s(collective, sizes, shape)
            table = model.costs(collective, size, stride)
            several = any(len(c.fills) > 1 for c in table.values())
            assert several or size < 16 or collective == "all_gather"  # hierarchical: AR only
            expected = [min(c.time_s(float(s)) for c in table.values()) for s in sizes]
            assert batched == pytest.approx(expected, rel=1e-12)


def test_ring_latency_term_grows_with_group_size() -> None:
    model = CommModel(clusters().get("h100-16k"))
    fixed = [model.costs("all_reduce", n, 8)["ring"].fixed_s for n in (2, 16, 128, 1024)]
    assert fixed == sorted(fixed) and fixed[-1] > 10 * fixed[0]
    # small messages are latency-bound: per-rank bytes barely matter, and past the one
    # launch the time goes as the 2(n−1) steps
    tiny = [model.best("all_reduce", 8, n, 8, algorithm="ring")[1] - LAUNCH_S for n in (16, 128)]
    assert tiny[1] / tiny[0] == pytest.approx(127 / 15, rel=0.05)


def test_moe_all_to_all_slows_as_more_traffic_leaves_the_super_node() -> None:
    model = CommModel(_cluster("metax-cube-128", 4))
    times = []
    for stride in (1, 2, 4):  # 128-member groups over 1, 2, 4 cabinets
        times.append(model.best("all_to_all", 256 * 2**20, 128, stride)[1])
    assert times[0] < times[1] < times[2]


def test_super_node_all_to_all_beats_eight_gpu_servers() -> None:
    cube = CommModel(_cluster("metax-cube-128", 1))
    servers = CommModel(_cluster("metax-c550-8x", 16, network="roce-400g"))
    size = 64 * 2**20
    t_cube = cube.best("all_to_all", size, 128, 1)[1]
    t_servers = servers.best("all_to_all", size, 128, 1)[1]
    factor = t_servers / t_cube
    print(
        f"128-GPU all-to-all of {size >> 20} MiB: metax-cube-128 {t_cube * 1e3:.2f} ms, "
        f"16x metax-c550-8x over 400G RoCE {t_servers * 1e3:.2f} ms: {factor:.1f}x faster"
    )
    assert factor > 2


def test_oversubscribed_fat_tree_slows_cross_rack_all_reduce() -> None:
    """Groups with one member per rack (leaf), all running at once: every ring flow crosses
    the leaf uplinks, which 4:1 oversubscription cuts to a quarter (same 32-port leaves)."""
    flat = CommModel(
        _cluster("dgx-h100", 64, topology="fat-tree", oversubscription=1.0, leaf_radix=64)
    )
    thin = CommModel(
        _cluster("dgx-h100", 64, topology="fat-tree", oversubscription=4.0, leaf_radix=40)
    )
    assert flat.topology.systems_per_leaf == thin.topology.systems_per_leaf == 4
    t_flat = flat.best("all_reduce", GIB, 16, 32)[1]  # stride 32 GPUs = one leaf
    t_thin = thin.best("all_reduce", GIB, 16, 32)[1]
    assert t_thin > 2.5 * t_flat
    # inside one server nothing crosses the leaf uplinks
    assert flat.best("all_reduce", GIB, 8, 1)[1] == pytest.approx(
        thin.best("all_reduce", GIB, 8, 1)[1]
    )


def test_concurrent_groups_share_nics() -> None:
    """All 8 data-parallel groups of a tp=8 job share each server's NICs; one group alone
    (the other 7 idle) would get more of them when it has fewer members per server."""
    cluster = _cluster("dgx-h100", 16)
    topo = Topology(cluster=cluster)
    everyone = groups_of(16, 8, cluster.gpus)
    alone = everyone[:1]
    t_all = costs_for("all_reduce", everyone, topo)["ring"].time_s(GIB)
    t_one = costs_for("all_reduce", alone, topo)["ring"].time_s(GIB)
    assert t_all >= t_one


def test_load_store_only_on_unified_memory_fabrics() -> None:
    cube = Topology(cluster=_cluster("metax-cube-128", 1))
    h100 = Topology(cluster=_cluster("dgx-h100", 1))
    g = np.arange(8, dtype=np.int64).reshape(1, 8)
    assert "load_store" in costs_for("all_to_all", g, cube)
    assert "load_store" not in costs_for("all_to_all", g, h100)
    table = costs_for("all_to_all", g, cube)
    assert table["load_store"].fixed_s < table["direct"].fixed_s


def test_all_gather_and_reduce_scatter_across_systems_run_as_rings() -> None:
    """NCCL has no hierarchical all-gather or reduce-scatter: across systems both are
    rings, whose n − 1 steps make a mid-size message slow on many nodes (AWS p5 nccl-tests,
    32 MiB all-gather: 84 GB/s busbw on 4 nodes, 12 on 32)."""
    for nodes in (4, 32):
        model = CommModel(_cluster("dgx-h100", nodes))
        for collective in ("all_gather", "reduce_scatter"):
            assert "hierarchical" not in model.costs(collective, 8 * nodes, 1)
        assert "hierarchical" in model.costs("all_reduce", 8 * nodes, 1)
    # Huawei's HCCL is two-level by design: its all-gather keeps the hierarchical form
    ascend = CommModel(_cluster("atlas-800t-a2", 4))
    assert "hierarchical" in ascend.costs("all_gather", 32, 1)
    assert "hierarchical" in ascend.costs("reduce_scatter", 32, 1)
    size = 32 * 2**20
    seconds = [
        CommModel(_cluster("dgx-h100", n // 8)).best("all_gather", size, n, 1)[1] for n in (32, 256)
    ]
    busbw = [size * (n - 1) / n / t for n, t in zip((32, 256), seconds, strict=True)]
    assert busbw[1] < busbw[0] / 3
