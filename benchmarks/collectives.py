"""Speed of the collective models on a 16,384-GPU cluster.

Reports (1) how long pricing one collective takes on the h100-16k cluster, cold (routing
every concurrent group's flows over the topology) and warm (the cached linear cost), for a
data-parallel all-reduce (128 groups of 128) and an expert all-to-all (256 groups of 64);
(2) a sweep of 30 sizes × 5 algorithms, with its time against re-pricing each point from
scratch (the baseline a per-size simulator would pay). Ends with one line of JSON.
Usage: python benchmarks/collectives.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

from superscale.collectives import CommModel, costs_for
from superscale.hardware.catalog import clusters
from superscale.topology import groups_of


def _timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    repeats = 2 if parser.parse_args().quick else 5
    cluster = clusters().get("h100-16k")

    def cold_all_reduce() -> None:
        CommModel(cluster).time_s("all_reduce", 2**30, _placement(128, 8))

    def cold_all_to_all() -> None:
        CommModel(cluster).time_s("all_to_all", 2**26, _placement(64, 1))

    warm = CommModel(cluster)
    warm.time_s("all_reduce", 2**30, _placement(128, 8))
    cold_ar = _timed(cold_all_reduce, repeats)
    cold_a2a = _timed(cold_all_to_all, repeats)
    warm_ar = _timed(lambda: warm.time_s("all_reduce", 2**29, _placement(128, 8)), repeats * 100)

    # sweep: 30 sizes × 5 algorithms, each on a typical layout of its collective
    model = CommModel(cluster)
    sizes = [2**i for i in range(3, 33)]
    cases = {  # algorithm: (collective, group size, stride)
        "ring": ("all_reduce", 2048, 1),
        "tree": ("all_reduce", 2048, 1),
        "hierarchical": ("all_reduce", 2048, 1),
        "direct": ("all_to_all", 64, 1),
        "p2p": ("send_recv", 16, 1024),
    }

    def sweep() -> int:
        points = 0
        for algo, (op, size, stride) in cases.items():
            for nbytes in sizes:
                model.best(op, nbytes, size, stride, algorithm=algo)
                points += 1
        return points

    start = time.perf_counter()
    points = sweep()
    sweep_s = time.perf_counter() - start
    start = time.perf_counter()
    for op, size, stride in cases.values():  # baseline: route once per point, not per layout
        costs_for(op, groups_of(size, stride, cluster.gpus), model.topology)
    baseline_s = (time.perf_counter() - start) * len(sizes)

    print(f"cluster h100-16k: {cluster.gpus} GPUs")
    print(
        f"all-reduce, 128 concurrent groups of 128: cold {cold_ar * 1e3:.1f} ms, "
        f"warm {warm_ar * 1e6:.1f} us"
    )
    print(f"all-to-all, 256 concurrent groups of 64: cold {cold_a2a * 1e3:.1f} ms")
    print(
        f"sweep {points} points (30 sizes x 5 algorithms): {sweep_s * 1e3:.1f} ms; "
        f"re-routing every point: {baseline_s * 1e3:.0f} ms"
    )
    print(
        json.dumps(
            {
                "gpus": cluster.gpus,
                "all_reduce_cold_ms": round(cold_ar * 1e3, 3),
                "all_reduce_warm_us": round(warm_ar * 1e6, 3),
                "all_to_all_cold_ms": round(cold_a2a * 1e3, 3),
                "sweep_points": points,
                "sweep_ms": round(sweep_s * 1e3, 3),
                "reroute_baseline_ms_per_layout_x30": round(baseline_s * 1e3, 3),
                "speedup_vs_reroute": round(baseline_s / sweep_s, 1),
            }
        )
    )


def _placement(size: int, stride: int):  # type: ignore[no-untyped-def]
    from superscale.parallelism import place_group

    return place_group("dp", size, stride, clusters().get("h100-16k"))


if __name__ == "__main__":
    main()
