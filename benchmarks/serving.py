"""Speed of the request-level serving simulation: simulated requests per wall-second.

Runs a Llama-2-70B deployment (8×H200, eight tp=1 instances, MLPerf-like lengths) and a
DeepSeek-V3 deployment (32×H200, attention-dp 8 × ep 8 instances) under Poisson load near
capacity, on one core, and times the simulation (deployment resolution, step tables and
request generation timed apart). Ends with one line of JSON of its figures.
Usage: python benchmarks/serving.py [--quick]   (--quick: fewer requests, under a minute)
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from superscale import load_scenario
from superscale.inference.deploy import engine_configs, resolve
from superscale.inference.sim import simulate
from superscale.inference.workload import generate

CASES: dict[str, dict[str, Any]] = {
    "llama2_70b_8xh200": {
        "model": "llama2-70b",
        "cluster": {"system": "hgx-h200", "count": 1},
        "serving": {
            "plan": {"tp": 1},
            "scheduler": {"max_batch": 1024, "max_batch_tokens": 8192},
            "workload": {
                "arrival": "poisson",
                "rate_per_s": 80,
                "prompt_tokens": {"distribution": "lognormal", "mean": 294, "max": 1024},
                "output_tokens": {"distribution": "lognormal", "mean": 300, "max": 1024},
            },
        },
    },
    "deepseek_v3_32xh200": {
        "model": "deepseek-v3",
        "cluster": {"system": "hgx-h200", "count": 4},
        "serving": {
            "plan": {"tp": 1, "attention_dp": 8, "ep": 8},
            "scheduler": {"max_batch": 512, "max_batch_tokens": 16384},
            "workload": {
                "arrival": "poisson",
                "rate_per_s": 40,
                "prompt_tokens": {"distribution": "lognormal", "mean": 2000, "max": 8192},
                "output_tokens": {"distribution": "lognormal", "mean": 400, "max": 2048},
            },
        },
    },
}


def _bench(spec: dict[str, Any], requests: int) -> dict[str, float]:
    t0 = time.perf_counter()
    scenario = load_scenario(spec)
    engines = engine_configs(resolve(scenario))
    reqs = generate(scenario.serving.workload, requests=requests)  # type: ignore[union-attr]
    t1 = time.perf_counter()
    outcome = simulate(reqs, engines)
    t2 = time.perf_counter()
    return {
        "requests": requests,
        "setup_s": t1 - t0,
        "simulate_s": t2 - t1,
        "requests_per_s": requests / (t2 - t1),
        "events": outcome.events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (under a minute)")
    args = parser.parse_args()
    requests = 20_000 if args.quick else 200_000
    figures: dict[str, Any] = {}
    for name, spec in CASES.items():
        r = _bench(spec, requests)
        print(
            f"{name:<22} {r['requests']:>8,} requests  simulated in {r['simulate_s']:6.2f} s "
            f"({r['requests_per_s']:>9,.0f} requests/s, {r['events']:,} events; setup "
            f"{r['setup_s']:.2f} s)"
        )
        figures[f"{name}_requests_per_s"] = round(r["requests_per_s"], 1)
    figures["min_requests_per_s"] = min(v for k, v in figures.items() if k.endswith("_per_s"))
    figures["target_requests_per_s"] = 2000
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
