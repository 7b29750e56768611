"""The whole serving flow: scenario → deployment → requests → simulation → metrics.

Metrics follow the serving benchmarks (sglang.bench_serving, vLLM benchmark_serving, MLPerf
LoadGen): time to first token (TTFT) from arrival to the first output token; time per
output token (TPOT) = (end − first token) / (output tokens − 1) per request; end-to-end
latency; throughput over the span from the first arrival to the last completion, in input
and output tokens per second, in total and per GPU; goodput = requests per second that meet
every SLO (DistServe, Zhong et al. 2024), and the output tokens they carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superscale.inference.deploy import Deployment, engine_configs, resolve
from superscale.inference.kv import max_batch_that_fits
from superscale.inference.sim import Outcome, simulate
from superscale.inference.spec import SloSpec
from superscale.inference.workload import Requests, generate
from superscale.scenario import Scenario

PERCENTILES = (50, 90, 99)


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"mean": None, **{f"p{q}": None for q in PERCENTILES}}
    qs = np.percentile(values, PERCENTILES)
    return {
        "mean": float(values.mean()),
        **{f"p{q}": float(v) for q, v in zip(PERCENTILES, qs, strict=True)},
    }


def summarize_outcome(
    requests: Requests, outcome: Outcome, *, gpus: int, slo: SloSpec
) -> dict[str, Any]:
    """Latency percentiles, throughput and goodput of one simulated run."""
    ok = ~outcome.rejected
    arrival = requests.arrival_s[ok]
    first, finish = outcome.first_token_s[ok], outcome.finish_s[ok]
    prompt, output = requests.prompt_tokens[ok], requests.output_tokens[ok]
    ttft = first - arrival
    e2e = finish - arrival
    multi = output > 1
    tpot = (finish[multi] - first[multi]) / (output[multi] - 1)
    tpot_all = np.zeros_like(ttft)
    tpot_all[multi] = tpot
    span = float(finish.max() - requests.arrival_s.min()) if finish.size else 0.0
    rate = 1.0 / span if span > 0 else 0.0
    good = np.ones_like(ttft, dtype=bool)
    if slo.ttft_p99_s is not None:
        good &= ttft <= slo.ttft_p99_s
    if slo.tpot_p99_s is not None:
        good &= tpot_all <= slo.tpot_p99_s
    inp, out = float(prompt.sum()) * rate, float(output.sum()) * rate
    return {
        "requests": len(requests),
        "completed": int(ok.sum()),
        "rejected": int(outcome.rejected.sum()),
        "duration_s": span,
        "throughput": {
            "requests_per_s": float(ok.sum()) * rate,
            "input_tokens_per_s": inp,
            "output_tokens_per_s": out,
            "tokens_per_s": inp + out,
            "input_tokens_per_s_per_gpu": inp / gpus,
            "output_tokens_per_s_per_gpu": out / gpus,
            "tokens_per_s_per_gpu": (inp + out) / gpus,
        },
        "latency_s": {"ttft": _stats(ttft), "tpot": _stats(tpot), "e2e": _stats(e2e)},
        "goodput": {
            "ttft_p99_s": slo.ttft_p99_s,
            "tpot_p99_s": slo.tpot_p99_s,
            "requests_per_s": float(good.sum()) * rate,
            "output_tokens_per_s": float(output[good].sum()) * rate,
            "attainment": float(good.mean()) if good.size else 0.0,
        },
        "slo_met": _slo_met(ttft, tpot, slo) if ok.all() else False,
        "events": outcome.events,
    }


def _slo_met(ttft: np.ndarray, tpot: np.ndarray, slo: SloSpec) -> bool:
    if slo.ttft_p99_s is not None and ttft.size and np.percentile(ttft, 99) > slo.ttft_p99_s:
        return False
    return not (
        slo.tpot_p99_s is not None and tpot.size and np.percentile(tpot, 99) > slo.tpot_p99_s
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeResult:
    """What `superscale serve` reports: the deployment, its memory, and the run's metrics."""

    name: str
    model: str
    cluster: str
    chip: str
    deployment: Deployment
    mean_context_tokens: float
    metrics: dict[str, Any] | None  # None when the model does not fit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return self.deployment.fits

    def to_json(self) -> dict[str, Any]:
        dep = self.deployment
        pools = []
        for p in dep.pools:
            budget = p.budget
            pools.append(
                {
                    "role": p.role,
                    "plan": {
                        "tp": p.plan.tp,
                        "pp": p.plan.pp,
                        "ep": p.plan.ep,
                        "attention_dp": p.plan.attention_dp,
                        "dp": p.instances,
                    },
                    "gpus": p.gpus,
                    "memory": budget.to_json(),
                    "max_batch_that_fits": max_batch_that_fits(budget, self.mean_context_tokens),
                }
            )
        data: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "cluster": self.cluster,
            "chip": self.chip,
            "gpus": dep.gpus,
            "precision": dep.precision,
            "kv_precision": dep.kv_precision,
            "disaggregated": dep.disaggregated,
            "fits": dep.fits,
            "pools": pools,
            "warnings": list(dep.warnings),
        }
        if self.metrics is not None:
            data.update(self.metrics)
        data.update(self.extra)
        return data


def run_deployment(dep: Deployment, requests: Requests, slo: SloSpec) -> dict[str, Any]:
    """Simulate `requests` on a deployment that fits and summarize the run."""
    engines = engine_configs(dep)
    outcome = simulate(requests, engines, transfer=dep.transfer)
    metrics = summarize_outcome(requests, outcome, gpus=dep.gpus, slo=slo)
    span = metrics["duration_s"]
    metrics["utilization"] = min(1.0, outcome.busy_s / (len(engines) * span)) if span else 0.0
    return metrics


def serve(scenario: Scenario, *, requests: Requests | None = None, name: str = "") -> ServeResult:
    """Simulate a scenario's serving section.

    Args:
        requests: the requests to serve (a parsed trace); default: drawn from the workload.
    Raises:
        SpecError: the serving plan does not suit the model or cluster.
        InfeasiblePlan: the chip lacks the asked precision.
    """
    dep = resolve(scenario)
    serving = scenario.serving
    assert serving is not None  # resolve checked
    if requests is None:
        requests = generate(serving.workload)
    mean_context = float(requests.prompt_tokens.mean() + requests.output_tokens.mean())
    metrics = run_deployment(dep, requests, serving.slo) if dep.fits else None
    return ServeResult(
        name=name,
        model=scenario.model.display_name or scenario.model.name,
        cluster=scenario.cluster.display_name or scenario.cluster.system.display_name,
        chip=scenario.cluster.chip.display_name,
        deployment=dep,
        mean_context_tokens=mean_context,
        metrics=metrics,
    )
