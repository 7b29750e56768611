"""Plan-search speed on 16,384 GPUs: vectorized evaluation against a plain per-plan loop.

For Llama-3-405B (dense) and DeepSeek-V3 (MoE, MLA) on the h100-16k cluster: enumerate
every valid plan, evaluate them all with the vectorized analytical engine (one process =
one core; once cold to route the cluster's collectives, then warm), and evaluate a random
sample of the same plans one by one through the scalar engine (the plain loop), on the
same core in the same run, sharing the routed collectives so only evaluation is timed.
Then the whole search for the 405B case, timed end to end: enumerate, prune what does not
fit, evaluate, refine the top 10 with the event engine. Ends with one line of JSON.
Usage: python benchmarks/search.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from superscale.collectives import CommModel
from superscale.hardware.catalog import clusters
from superscale.parallelism import resolve
from superscale.scenario import load_scenario
from superscale.search.evaluate import evaluate_batch, evaluate_one
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
        space = enumerate_plans(base, clusters=[cluster])
        n = len(space.candidates)
        start = time.perf_counter()
        records = evaluate_batch(space.candidates)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        evaluate_batch(space.candidates)
        warm = time.perf_counter() - start
        picks = random.Random(0).sample(space.candidates, sample)
        comm = CommModel(cluster)
        _plain_loop(picks[:2], comm)  # route the collectives once, as the warm batch had
        start = time.perf_counter()
        _plain_loop(picks, comm)
        loop_rate = sample / (time.perf_counter() - start)
        fits = sum(r["fits"] for r in records)
        rate = n / warm
        print(
            f"{name}: {n:,} plans ({fits:,} fit); vectorized {rate:,.0f} plans/s per core "
            f"(cold {n / cold:,.0f}); plain loop {loop_rate:,.0f} plans/s; "
            f"{rate / loop_rate:.0f}x"
        )
        figures[name] = {
            "plans": n,
            "fit": fits,
            "plans_per_s": round(rate),
            "plans_per_s_cold": round(n / cold),
            "loop_plans_per_s": round(loop_rate, 1),
            "speedup_vs_loop": round(rate / loop_rate, 1),
        }

    # the whole search, fresh process state aside: enumerate, prune, evaluate, refine top 10
    start = time.perf_counter()
    base = CASES["llama3-405b"]
    space = enumerate_plans(base, clusters=[cluster])
    records = evaluate_batch(space.candidates)
    top = sorted((r for r in records if r["fits"]), key=lambda r: -r["tokens_per_s"])[:10]
    by_key = {r["key"]: r for r in top}
    refined = [
        evaluate_one(c, engine="event")
        for c in space.candidates
        if c["parallel"] and records and _key_in(c, by_key)
    ]
    search_s = time.perf_counter() - start
    best = max(refined, key=lambda r: r["tokens_per_s"] or 0.0)
    print(
        f"whole search, llama3-405b on 16,384 GPUs: {search_s:.1f} s "
        f"({len(space.candidates):,} plans, top 10 refined with the event engine); best "
        f"{best['parallel']} at {best['tokens_per_s']:,.0f} tokens/s"
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


def _key_in(candidate: dict[str, Any], by_key: dict[str, Any]) -> bool:
    from superscale.search.evaluate import plan_key

    return plan_key(candidate) in by_key


if __name__ == "__main__":
    main()
