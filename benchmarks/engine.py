"""Wall time and peak memory of the event engine on 1k, 4k and 16k-GPU training steps.

Scenarios: Llama-3-70B on 1,024 H100 (tp 8, pp 4, dp 32), Llama-3-405B on 4,096 H100 (tp 8,
pp 16, dp 32) and Llama-3-405B on the 16,384-GPU h100-16k cluster (tp 8, pp 16, dp 128; the
Llama 3 plan). Each is simulated with one rank per stage (the symmetry reduction) and with
spans recorded for a trace; the 1k case is also run with every rank simulated, the
baseline the reduction is measured against. Peak memory is Python's traced allocation peak
during the run. Ends with one line of JSON. Usage: python benchmarks/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from typing import Any

from superscale import load_scenario
from superscale.parallelism import resolve
from superscale.simulate.analytical import estimate_step
from superscale.simulate.event import simulate_events
from superscale.training.lower import lower

CASES = {
    "1k": {
        "model": "llama3-70b",
        "cluster": {"system": "dgx-h100", "count": 128},
        "training": {"seq_len": 8192, "global_batch": 1024},
        "parallel": {"tp": 8, "pp": 4, "tp_comm_overlap": True},
    },
    "4k": {
        "model": "llama3-405b",
        "cluster": {"system": "dgx-h100", "count": 512},
        "training": {"seq_len": 8192, "global_batch": 1024},
        "parallel": {"tp": 8, "pp": 16, "zero": 1, "tp_comm_overlap": True},
    },
    "16k": {
        "model": "llama3-405b",
        "cluster": "h100-16k",
        "training": {"seq_len": 8192, "global_batch": 2048},
        "parallel": {"tp": 8, "pp": 16, "zero": 1, "tp_comm_overlap": True},
    },
}


def _measure(fn: Any) -> tuple[Any, float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, wall, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the full-rank baseline")
    quick = parser.parse_args().quick
    figures: dict[str, Any] = {}
    for name, spec in CASES.items():
        scenario = load_scenario(spec)
        plan = resolve(scenario)
        program = lower(scenario, plan)
        cluster = scenario.cluster

        def run(record: bool, program=program, plan=plan, cluster=cluster) -> Any:  # type: ignore[no-untyped-def]
            return simulate_events(program, plan, cluster, "bf16", record=record)

        timeline, wall, peak = _measure(lambda run=run: run(False))
        traced, wall_trace, peak_trace = _measure(lambda run=run: run(True))
        start = time.perf_counter()
        analytical = estimate_step(program, plan, cluster, "bf16")
        wall_analytical = time.perf_counter() - start
        print(
            f"{name:>4}: {cluster.gpus:,} GPUs, tp {plan.tp} pp {plan.pp} dp {plan.dp}, "
            f"{plan.micro_batches} micro-batches: event {wall:.2f} s ({peak:.0f} MiB), "
            f"with trace {wall_trace:.2f} s ({peak_trace:.0f} MiB, "
            f"{len(traced.spans):,} spans), analytical {wall_analytical * 1e3:.0f} ms; "
            f"step {timeline.step.step_time_s:.2f} s (analytical "
            f"{analytical.step_time_s:.2f} s)"
        )
        figures[name] = {
            "gpus": cluster.gpus,
            "wall_s": round(wall, 3),
            "peak_mib": round(peak, 1),
            "trace_wall_s": round(wall_trace, 3),
            "trace_peak_mib": round(peak_trace, 1),
            "spans": len(traced.spans),
            "step_time_s": round(timeline.step.step_time_s, 4),
            "analytical_step_time_s": round(analytical.step_time_s, 4),
        }
    if not quick:
        scenario = load_scenario(CASES["1k"])
        plan = resolve(scenario)
        program = lower(scenario, plan)
        full, wall_full, peak_full = _measure(
            lambda: simulate_events(
                program, plan, scenario.cluster, "bf16", ranks="all", record=False
            )
        )
        ratio = wall_full / figures["1k"]["wall_s"]
        print(
            f"  1k with every rank simulated: {wall_full:.2f} s ({peak_full:.0f} MiB), "
            f"{ratio:.0f}x the one-rank-per-stage run; same step time: "
            f"{full.step.step_time_s:.4f} s"
        )
        figures["1k"]["full_rank_wall_s"] = round(wall_full, 3)
        figures["1k"]["symmetry_speedup"] = round(ratio, 1)
    print(
        json.dumps(
            {
                "engine": figures,
                "max_wall_s": max(f["wall_s"] for f in figures.values()),
                "max_peak_mib": max(f["peak_mib"] for f in figures.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
