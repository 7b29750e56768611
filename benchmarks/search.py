"""Plan-search speed on 16,384 GPUs: vectorized evaluation against a plain per-plan loop.

For Llama-3-405B (dense) and DeepSeek-V3 (MoE, MLA) on the h100-16k cluster: enumerate
every valid plan into a plan table, evaluate the whole table with the vectorized analytical
engine in this process (one process = one core; once cold to route the cluster's
collectives, then warm, median of three), and evaluate a random sample of the same plans
one by one through the scalar engine (the plain loop), in the same run, sharing the routed
collectives so only evaluation is timed. Evaluation yields every plan's step time,
throughput, MFU, peak memory and fit; turning them into keyed JSON records (what a results
store holds) is timed apart. Then the whole search for the 405B case, timed end to end
through `run_search`: enumerate, prune, evaluate, key and rank, refine the top 10 with the
event engine. Ends with one line of JSON.
Usage: python benchmarks/search.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from superscale.collectives import CommModel
from superscale.hardware.catalog import clusters
from superscale.parallelism import resolve
from superscale.scenario import load_scenario
from superscale.search.evaluate import evaluate_table
from superscale.search.executors import table_keys
from superscale.search.run import run_search
from superscale.search.space import enumerate_plans
from superscale.simulate.analytical import estimate_step
from superscale.training.lower import lower
from superscale.training.memory import estimate_memory

CASES = {
    "llama3-405b": {
        "model": "llama3-405b",
        "cluster": "h100-16k",
        "training": {"seq_len": 8192, "global_batch": 2048},
        "parallel": {"tp_comm_overlap": True},
    },
    "deepseek-v3": {
        "model": "deepseek-v3",
        "cluster": "h100-16k",
        "training": {"seq_len": 4096, "global_batch": 4096},
        "parallel": {"tp_comm_overlap": True},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loop sample")
    sample = 60 if parser.parse_args().quick else 300
    cluster = clusters().get("h100-16k")
    figures: dict[str, Any] = {}
    for name, base in CASES.items():
        start = time.perf_counter()
        space = enumerate_plans(base, clusters=[cluster])
        enumerate_s = time.perf_counter() - start
        (table,) = space.tables
        n = len(table)
        start = time.perf_counter()
        evaluate_table(table)
        cold = time.perf_counter() - start
        warm_runs = []
        for _ in range(3):
            start = time.perf_counter()
            evaluated = evaluate_table(table)
            warm_runs.append(time.perf_counter() - start)
        warm = statistics.median(warm_runs)
        start = time.perf_counter()
        evaluated.records(keys=table_keys(table))
        records_s = time.perf_counter() - start
        picks = random.Random(0).sample(range(n), sample)
        comm = CommModel(cluster)
        _plain_loop([table.candidate(i) for i in picks[:2]], comm)  # route once, as warm
        loop_plans = [table.candidate(i) for i in picks]
        start = time.perf_counter()
        _plain_loop(loop_plans, comm)
        loop_rate = sample / (time.perf_counter() - start)
        fits = int(evaluated.fits.sum())
        rate = n / warm
        print(
            f"{name}: {n:,} plans ({fits:,} fit), enumerated in {enumerate_s:.2f} s; "
            f"vectorized {rate:,.0f} plans/s per core (cold {n / cold:,.0f}); plain loop "
            f"{loop_rate:,.0f} plans/s; {rate / loop_rate:.0f}x; keyed records "
            f"{n / records_s:,.0f} plans/s ({n / (warm + records_s):,.0f} with evaluation)"
        )
        figures[name] = {
            "plans": n,
            "fit": fits,
            "enumerate_s": round(enumerate_s, 3),
            "plans_per_s": round(rate),
            "plans_per_s_cold": round(n / cold),
            "records_per_s": round(n / records_s),
            "plans_per_s_with_records": round(n / (warm + records_s)),
            "loop_plans_per_s": round(loop_rate, 1),
            "speedup_vs_loop": round(rate / loop_rate, 1),
        }

    # the whole search in a fresh comm-model cache: enumerate, prune, evaluate, rank, refine
    from superscale.search import evaluate as evaluate_module

    evaluate_module._COMM_MODELS.clear()
    start = time.perf_counter()
    result = run_search(CASES["llama3-405b"], top=10)
    search_s = time.perf_counter() - start
    best = result.top[0]
    print(
        f"whole search, llama3-405b on 16,384 GPUs: {search_s:.1f} s "
        f"({result.candidates:,} plans, top 10 refined with the event engine); best "
        f"{_plan_text(best['parallel'])} at {best['event']['tokens_per_s']:,.0f} tokens/s "
        f"(event engine; analytical {best['tokens_per_s']:,.0f})"
    )
    print(
        json.dumps(
            {
                **figures,
                "search_wall_s_405b_16k": round(search_s, 2),
                "plans_per_s": min(f["plans_per_s"] for f in figures.values()),
                "speedup_vs_loop": min(f["speedup_vs_loop"] for f in figures.values()),
            }
        )
    )


def _plan_text(parallel: dict[str, Any]) -> str:
    keys = ("tp", "pp", "virtual_stages", "cp", "micro_batch", "zero", "recompute", "schedule")
    return " ".join(f"{k}={parallel[k]}" for k in keys)


def _plain_loop(candidates: list[dict[str, Any]], comm: CommModel) -> None:
    """The plain per-plan loop: validate, resolve, lower, price and size each plan in turn
    through the scalar engine (sharing one routed comm model, so routing is not counted)."""
    for candidate in candidates:
        scenario = load_scenario(candidate)
        plan = resolve(scenario)
        program = lower(scenario, plan)
        precision = scenario.require_training().precision
        estimate_step(program, plan, scenario.cluster, precision, comm_model=comm)
        estimate_memory(scenario, plan, program)


if __name__ == "__main__":
    main()
