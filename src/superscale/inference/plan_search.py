"""SLO capacity planning: the fewest GPUs, and the plan, that serve a request rate.

For each candidate unit (one aggregated instance, or a disaggregated group of prefill and
decode instances in a given ratio) the largest Poisson rate whose TTFT p99 and TPOT p99
meet the SLOs is found by bisection on simulated runs (the same requests, re-timed; rates
are monotone in load for a fixed request set, up to sampling noise). The rate then needs
ceil(rate / unit rate) units. The plan with the fewest GPUs wins; ties go to the higher
goodput per GPU. Every (plan, batch cap) point evaluated also lands on a Pareto front of
output tokens/s per GPU against output tokens/s per user (1 / median TPOT), the trade-off
of NVIDIA's and SemiAnalysis's serving plots: bigger batches raise the first and lower the
second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from superscale.errors import InfeasiblePlan, SpecError
from superscale.inference.deploy import Deployment, resolve
from superscale.inference.serve import run_deployment
from superscale.inference.workload import Requests, generate, with_rate
from superscale.scenario import Scenario
from superscale.scenario.serving import DisaggregationSpec, PlanSpec, SloSpec

BISECTION_STEPS = 7
CAPACITY_REQUESTS = 1500
BATCH_CAPS = (32, 256)
DISAGG_RATIOS = ((1, 1), (1, 2), (2, 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """The largest rate a deployment serves within the SLOs, and its metrics there."""

    rate_per_s: float
    metrics: dict[str, Any] | None


def max_rate(dep: Deployment, requests: Requests, slo: SloSpec, *, seed: int = 0) -> Capacity:
    """Bisection for the largest Poisson rate meeting `slo` (p99 TTFT and TPOT).

    The upper bound is the deployment's offline throughput (all requests at t=0).
    """
    offline = run_deployment(dep, with_rate(requests, 1e12, seed), slo)
    hi = offline["throughput"]["requests_per_s"] * 1.05
    lo, best = 0.0, None
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2 if lo > 0 else hi / 2
        metrics = run_deployment(dep, with_rate(requests, mid, seed), slo)
        if metrics["slo_met"]:
            lo, best = mid, metrics
        else:
            hi = mid
        if lo > 0 and hi / lo < 1.02:
            break
    return Capacity(rate_per_s=lo, metrics=best)


def _variant(
    scenario: Scenario,
    plan: PlanSpec,
    dis: DisaggregationSpec | None,
    max_batch: int | None,
) -> Scenario:
    serving = scenario.serving
    assert serving is not None
    gpus = plan.instance_gpus if dis is None else dis.prefill_gpus + dis.decode_gpus
    per_system = scenario.cluster.system.gpus
    cluster = scenario.cluster.model_copy(update={"count": max(1, math.ceil(gpus / per_system))})
    sched = serving.scheduler
    if max_batch is not None:
        sched = sched.model_copy(update={"max_batch": max_batch})
    new = serving.model_copy(
        update={
            "plan": plan.model_copy(update={"dp": 1}),
            "disaggregation": dis,
            "scheduler": sched,
        }
    )
    return scenario.model_copy(update={"serving": new, "cluster": cluster})


def candidate_plans(scenario: Scenario) -> list[PlanSpec]:
    """Aggregated instance plans worth trying: tp within the scale-up domain, pp 1-2,
    expert parallelism over the stage for MoE, attention-dp for latent attention."""
    model, domain = scenario.model, scenario.cluster.system.scale_up.gpus
    plans = []
    tp = 1
    while tp <= domain:
        if model.heads % tp == 0:
            plans.append(PlanSpec(tp=tp))
            if model.moe is not None and tp > 1:
                plans.append(PlanSpec(tp=tp, ep=tp))
                if model.mla is not None:
                    plans.append(PlanSpec(tp=1, ep=tp, attention_dp=tp))
        tp *= 2
    plans.append(PlanSpec(tp=domain, pp=2))  # for models too big for one domain
    return plans


def _point(label: str, dep: Deployment, cap: Capacity) -> dict[str, Any]:
    m = cap.metrics or {}
    out_per_s = m.get("throughput", {}).get("output_tokens_per_s", 0.0)
    tpot = (m.get("latency_s", {}).get("tpot", {}) or {}).get("p50")
    return {
        "plan": label,
        "gpus": dep.gpus,
        "rate_per_s": cap.rate_per_s,
        "output_tokens_per_s_per_gpu": out_per_s / dep.gpus if dep.gpus else 0.0,
        "output_tokens_per_s_per_user": 1.0 / tpot if tpot else None,
        "ttft_p99_s": (m.get("latency_s", {}).get("ttft", {}) or {}).get("p99"),
        "tpot_p99_s": (m.get("latency_s", {}).get("tpot", {}) or {}).get("p99"),
    }


def _label(plan: PlanSpec, dis: tuple[int, int] | None) -> str:
    base = f"tp{plan.tp}·pp{plan.pp}"
    if plan.ep > 1:
        base += f"·ep{plan.ep}"
    if plan.attention_dp > 1:
        base += f"·adp{plan.attention_dp}"
    if dis is None:
        return f"aggregated {base}"
    return f"disaggregated {dis[0]}P:{dis[1]}D {base}"


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point beats on both tokens/s per GPU and tokens/s per user."""
    valid = [p for p in points if p["output_tokens_per_s_per_user"] and p["rate_per_s"] > 0]
    front = []
    for p in valid:
        a, b = p["output_tokens_per_s_per_gpu"], p["output_tokens_per_s_per_user"]
        dominated = any(
            q is not p
            and q["output_tokens_per_s_per_gpu"] >= a
            and q["output_tokens_per_s_per_user"] >= b
            and (q["output_tokens_per_s_per_gpu"] > a or q["output_tokens_per_s_per_user"] > b)
            for q in valid
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p["output_tokens_per_s_per_user"])


def plan_capacity(
    scenario: Scenario,
    *,
    rate_per_s: float,
    slo: SloSpec,
    requests: int = CAPACITY_REQUESTS,
    batch_caps: tuple[int, ...] = BATCH_CAPS,
    disaggregation: bool = True,
) -> dict[str, Any]:
    """The fewest GPUs and the best plan serving `rate_per_s` within `slo`.

    Returns:
        {"best": {...}, "candidates": [...], "pareto_front": [...]}; best is None when no
        candidate meets the SLOs at any rate.
    Raises:
        SpecError: the scenario has no serving section, or no SLO is given.
    """
    if scenario.serving is None:
        raise SpecError("this scenario has no serving section; see 'superscale serve'")
    if slo.ttft_p99_s is None and slo.tpot_p99_s is None:
        raise SpecError("give at least one SLO: --ttft-p99 or --tpot-p99")
    workload = scenario.serving.workload
    if workload.arrival == "trace":
        workload = workload.model_copy(update={"arrival": "offline", "trace": None})
    base = generate(workload.model_copy(update={"duration_s": None}), requests=requests)
    units: list[tuple[str, PlanSpec, DisaggregationSpec | None, tuple[int, int] | None]] = []
    for plan in candidate_plans(scenario):
        units.append((_label(plan, None), plan, None, None))
        if disaggregation:
            size = plan.instance_gpus
            for n_p, n_d in DISAGG_RATIOS:
                pair = DisaggregationSpec(
                    prefill_gpus=n_p * size,
                    decode_gpus=n_d * size,
                    prefill_plan=plan,
                    decode_plan=plan,
                )
                units.append((_label(plan, (n_p, n_d)), plan, pair, (n_p, n_d)))
    candidates, points = [], []
    for label, plan, dis, _ in units:
        best_for_unit = None
        caps = (None, *batch_caps) if dis is None else (None,)
        for cap_batch in caps:
            try:
                dep = resolve(_variant(scenario, plan, dis, cap_batch))
            except (SpecError, InfeasiblePlan):
                break
            if not dep.fits:
                break
            cap = max_rate(dep, base, slo, seed=workload.seed)
            tag = label if cap_batch is None else f"{label} max_batch={cap_batch}"
            points.append(_point(tag, dep, cap))
            if cap.rate_per_s <= 0:
                continue
            n_units = math.ceil(rate_per_s / cap.rate_per_s)
            entry = {
                **_point(tag, dep, cap),
                "units": n_units,
                "total_gpus": n_units * dep.gpus,
                "disaggregated": dis is not None,
            }
            if best_for_unit is None or entry["total_gpus"] < best_for_unit["total_gpus"]:
                best_for_unit = entry
        if best_for_unit is not None:
            candidates.append(best_for_unit)
    candidates.sort(key=lambda c: (c["total_gpus"], -c["output_tokens_per_s_per_gpu"]))
    return {
        "rate_per_s": rate_per_s,
        "slo": {"ttft_p99_s": slo.ttft_p99_s, "tpot_p99_s": slo.tpot_p99_s},
        "best": candidates[0] if candidates else None,
        "candidates": candidates,
        "pareto_front": pareto_front(points),
    }
