"""The whole serving flow: scenario → deployment → requests → simulation → metrics.

Metrics follow the serving benchmarks (sglang.bench_serving, vLLM benchmark_serving, MLPerf
LoadGen): time to first token (TTFT) from arrival to the first output token; time per
output token (TPOT) = (end − first token) / (output tokens − 1) per request; end-to-end
latency; throughput over the span from the first arrival to the last completion, in input
and output tokens per second, in total and per GPU, and in the steady state (between the
10th and 90th percentile completions, without warm-up or drain: `steady_state`); goodput =
requests per second that meet every SLO (DistServe, Zhong et al. 2024), and the output
tokens they carry.

Each pool (mixed, or prefill and decode) also gets its own figures: the share of its
engines' time spent in iterations (utilization), the tokens it processed per second (input
for prefill, output for decode), its latency (TTFT for prefill, TPOT for decode), and where
its engines' time went: the step model's parts (compute, tensor/expert/pipeline traffic,
all-to-all exposed and hidden under two-batch overlap, host overhead) summed over the
iterations it ran, the drafter's passes, and attention and sampling (the rest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superscale.inference.deploy import Deployment, Pool, engine_configs, resolve
from superscale.inference.kv import max_batch_that_fits
from superscale.inference.sim import Outcome, simulate
from superscale.inference.step import PARTS
from superscale.inference.workload import Requests, generate
from superscale.scenario import Scenario
from superscale.scenario.serving import SloSpec

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
    origin = float(requests.arrival_s.min()) if len(requests) else 0.0
    span = float(finish.max() - origin) if finish.size else 0.0
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
        "steady_state": steady_state(finish, prompt, output, origin_s=origin),
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


# The steady-state window: from the 10th to the 90th percentile completion, which leaves
# out the warm-up (the first requests' latency, before completions flow) and the drain
# (the tail finishing after arrivals stop).
STEADY_QUANTILES = (0.1, 0.9)
_STEADY_MIN_REQUESTS = 20


def steady_state(
    finish_s: np.ndarray,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    *,
    origin_s: float = 0.0,
) -> dict[str, Any] | None:
    """Throughput in the steady state: completions between the 10th and 90th percentile
    completion times over that window (k gaps between k + 1 completions over their span),
    with the tokens of the requests completing in it. Below saturation it is the offered
    rate, whatever the warm-up and the drain; above, the deployment's capacity.

    Args:
        finish_s, prompt_tokens, output_tokens: the completed requests'.
        origin_s: where the reported window's clock starts (the first arrival, as for
            `duration_s`).

    Returns:
        None with fewer than 20 completions or a window of no length; else the window
        (`window_s`: [start, end] in s from `origin_s`), the `requests` it counts, and
        `requests_per_s`, `input_tokens_per_s`, `output_tokens_per_s`.
    """
    n = len(finish_s)
    if n < _STEADY_MIN_REQUESTS:
        return None
    order = np.argsort(finish_s, kind="stable")
    first = int(np.floor(STEADY_QUANTILES[0] * (n - 1)))
    last = int(np.ceil(STEADY_QUANTILES[1] * (n - 1)))
    start, end = float(finish_s[order[first]]), float(finish_s[order[last]])
    if end <= start:
        return None
    inside = order[first + 1 : last + 1]  # the completions after the window's first
    width = end - start
    return {
        "window_s": [start - origin_s, end - origin_s],
        "requests": last - first,
        "requests_per_s": (last - first) / width,
        "input_tokens_per_s": float(prompt_tokens[inside].sum()) / width,
        "output_tokens_per_s": float(output_tokens[inside].sum()) / width,
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
        per_pool = (self.metrics or {}).get("per_pool", [{}] * len(dep.pools))
        pools = []
        for p, run in zip(dep.pools, per_pool, strict=True):
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
                        "redundant_experts": p.plan.redundant_experts,
                        "two_batch_overlap": p.plan.two_batch_overlap,
                        "moe_dispatch": p.dispatch,
                        "ffn_gpus": p.plan.ffn_gpus,
                    },
                    "gpus": p.gpus,
                    "memory": budget.to_json(),
                    "max_batch_that_fits": max_batch_that_fits(budget, self.mean_context_tokens),
                    "kernels": _kernels(p),
                    **run,
                }
            )
        data: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "cluster": self.cluster,
            "chip": self.chip,
            "gpus": dep.gpus,
            "precision": dep.precision,
            "weights": dep.weight_format,
            "bytes_per_weight": dep.weight_bytes,
            "kv_precision": dep.kv_precision,
            "attention_precision": dep.attention_precision,
            "speculative": _speculative(dep),
            "disaggregated": dep.disaggregated,
            "fits": dep.fits,
            "pools": pools,
            "warnings": list(dep.warnings),
        }
        if self.metrics is not None:
            data.update({k: v for k, v in self.metrics.items() if k != "per_pool"})
        data.update(self.extra)
        return data


def _kernels(pool: Pool) -> dict[str, Any]:
    step = pool.step
    if step is None:
        return {}
    return {
        "attention_precision": step.attention_precision,
        "mla_decode_tflops": step.mla_decode_tflops,
        "moe_dispatch": step.dispatch,
        "query_tokens_per_request": step.query_tokens,
        "accepted_tokens_per_iteration": step.accepted_tokens,
    }


def _speculative(dep: Deployment) -> dict[str, Any] | None:
    spec = dep.speculation
    if spec is None:
        return None
    return {
        "method": spec.method,
        "draft_tokens": spec.draft_tokens,
        "acceptance_rate": spec.acceptance_rate,
        "accepted_tokens_per_iteration": spec.accepted_tokens,
        "draft_model": spec.draft_model.name if spec.draft_model is not None else None,
    }


def pool_time_s(pool: Pool, outcome: Outcome) -> dict[str, float]:
    """Where one pool's engine time went, seconds per engine over the run."""
    step = pool.step
    assert step is not None
    engines = pool.instances * pool.plan.pp
    counts = outcome.iterations_by_role.get(pool.role, {})
    busy = outcome.busy_s_by_role.get(pool.role, 0.0)
    totals = step.parts_total(counts)
    out = {name: totals[name] / engines for name in (*PARTS, "ep_comm_hidden")}
    out["draft"] = outcome.draft_s_by_role.get(pool.role, 0.0) / engines
    spent = sum(out[name] for name in PARTS) + out["draft"]
    out["attention_and_sampling"] = max(0.0, busy / engines - spent)
    out["busy"] = busy / engines
    return out


def pool_metrics(
    dep: Deployment, requests: Requests, outcome: Outcome, *, span: float
) -> list[dict[str, Any]]:
    """Utilization, throughput, latency and time split of each pool."""
    ok = ~outcome.rejected
    prompt = float(requests.prompt_tokens[ok].sum())
    output = float(requests.output_tokens[ok].sum())
    ttft = outcome.first_token_s[ok] - requests.arrival_s[ok]
    multi = requests.output_tokens[ok] > 1
    finish, first = outcome.finish_s[ok][multi], outcome.first_token_s[ok][multi]
    tpot = (finish - first) / (requests.output_tokens[ok][multi] - 1)
    rate = 1.0 / span if span > 0 else 0.0
    out = []
    for pool in dep.pools:
        engines = pool.instances * pool.plan.pp
        busy = outcome.busy_s_by_role.get(pool.role, 0.0)
        inp = prompt * rate if pool.role != "decode" else 0.0
        gen = output * rate if pool.role != "prefill" else 0.0
        latency: dict[str, Any] = {}
        if pool.role != "decode":
            latency["ttft"] = _stats(ttft)
        if pool.role != "prefill":
            latency["tpot"] = _stats(tpot)
        batch = outcome.decode_batch_s_by_role.get(pool.role, 0.0)
        out.append(
            {
                "utilization": min(1.0, busy / (engines * span)) if span else 0.0,
                "throughput": {
                    "input_tokens_per_s": inp,
                    "output_tokens_per_s": gen,
                    "input_tokens_per_s_per_gpu": inp / pool.gpus,
                    "output_tokens_per_s_per_gpu": gen / pool.gpus,
                },
                "latency_s": latency,
                "mean_decode_batch_per_engine": batch / busy if busy else 0.0,
                "time_s": pool_time_s(pool, outcome),
            }
        )
    return out


def run_deployment(
    dep: Deployment,
    requests: Requests,
    slo: SloSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Simulate `requests` on a deployment that fits and summarize the run (`progress`:
    the simulator's (settled, total) callback)."""
    engines = engine_configs(dep)
    outcome = simulate(requests, engines, transfer=dep.transfer, progress=progress)
    if outcome.arrival_s is not None:  # a closed loop: the clients' actual send times
        requests = dataclasses.replace(requests, arrival_s=outcome.arrival_s)
    metrics = summarize_outcome(requests, outcome, gpus=dep.gpus, slo=slo)
    span = metrics["duration_s"]
    metrics["utilization"] = min(1.0, outcome.busy_s / (len(engines) * span)) if span else 0.0
    metrics["per_pool"] = pool_metrics(dep, requests, outcome, span=span)
    return metrics


def serve(
    scenario: Scenario,
    *,
    requests: Requests | None = None,
    name: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> ServeResult:
    """Simulate a scenario's serving section.

    Args:
        requests: the requests to serve (a parsed trace); default: drawn from the workload.
        progress: called with (requests settled, requests) as the simulation runs.
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
    metrics = run_deployment(dep, requests, serving.slo, progress=progress) if dep.fits else None
    return ServeResult(
        name=name,
        model=scenario.model.display_name or scenario.model.name,
        cluster=scenario.cluster.display_name or scenario.cluster.system.display_name,
        chip=scenario.cluster.chip.display_name,
        deployment=dep,
        mean_context_tokens=mean_context,
        metrics=metrics,
    )
