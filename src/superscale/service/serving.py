"""Serving endpoints: `serve` (a deployment, request by request) and `serve-plan` (a job:
the fewest GPUs for a rate within SLOs), as `superscale serve` and `serve-plan` call them.

Besides the request cap, a workload whose prompts would split into too many prefill
chunks (requests × prompt tokens / token budget) is refused before it runs: prefill is
simulated iteration by iteration, so a one-token budget would otherwise run for hours.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from superscale.scenario import Scenario
from superscale.service.errors import ApiError, cap_exceeded
from superscale.service.inputs import (
    ServePlanRequest,
    ServeRequest,
)
from superscale.service.jobs import JobControl
from superscale.service.settings import Settings
from superscale.service.wire import (
    SafeJSONResponse,
    body_of,
    check_gpus,
    guarded,
    jobs_of,
    ok,
    settings_of,
)

DEFAULT_SERVE_REQUESTS = 2000  # inference.workload's default when neither count is given
router = APIRouter(prefix="/api")


# --- serving ------------------------------------------------------------------------------


def _serve_requests(scenario: Scenario, trace_rows: int | None) -> float:
    assert scenario.serving is not None
    workload = scenario.serving.workload
    if trace_rows is not None:
        return trace_rows
    if workload.duration_s is not None and workload.rate_per_s is not None:
        return workload.duration_s * workload.rate_per_s
    return workload.requests or DEFAULT_SERVE_REQUESTS


PREFILL_CHUNKS_PER_REQUEST = 64  # iterations one allowed request may cost on average


def _check_prefill_work(settings: Settings, scenario: Scenario, requests: float) -> None:
    """Refuse workloads whose prefill alone would take too many iterations (each prompt is
    split into chunks of the token budget; decode stretches are skipped in closed form)."""
    assert scenario.serving is not None
    serving = scenario.serving
    prompt = serving.workload.prompt_tokens
    tokens = prompt.mean if prompt.max is None else min(prompt.mean, prompt.max)
    budget = serving.scheduler.max_batch_tokens
    dis = serving.disaggregation
    if dis is not None and dis.prefill_max_batch_tokens is not None:
        budget = min(budget, dis.prefill_max_batch_tokens)
    chunks = requests * math.ceil(max(1.0, tokens) / budget)
    limit = settings.max_requests * PREFILL_CHUNKS_PER_REQUEST
    if chunks > limit:
        raise cap_exceeded(
            "max_requests",
            limit,
            chunks,
            f"prefill iterations (requests × prompt tokens / max_batch_tokens; "
            f"{PREFILL_CHUNKS_PER_REQUEST} per allowed request)",
        )


def _serve(settings: Settings, body: ServeRequest) -> dict[str, Any]:
    from superscale.inference.serve import serve as run_serve
    from superscale.inference.workload import parse_trace
    from superscale.report.serving import serving_facility

    scenario = body.scenario
    if scenario.serving is None:
        raise ApiError(
            422,
            "this scenario has no serving section (serving: {plan, workload, ...}); see "
            "'superscale serve'",
            field="scenario.serving",
        )
    requests = None
    if scenario.serving.workload.arrival == "trace":
        if body.trace_csv is None:
            raise ApiError(
                422,
                "the service reads no files on the server: send the trace CSV inline as trace_csv",
                field="scenario.serving.workload.trace",
            )
        requests = guarded(lambda: parse_trace(body.trace_csv or "", origin="trace_csv"))
    elif body.trace_csv is not None:
        raise ApiError(422, "trace_csv needs serving.workload.arrival 'trace'", field="trace_csv")
    asked = _serve_requests(scenario, None if requests is None else len(requests))
    if asked > settings.max_requests:
        raise cap_exceeded("max_requests", settings.max_requests, asked, "simulated requests")
    _check_prefill_work(settings, scenario, asked)

    def run() -> dict[str, Any]:
        data = run_serve(scenario, requests=requests, name=body.name).to_json()
        facility = serving_facility(scenario, data)
        if facility is not None:
            warnings = [*data["warnings"], *facility.pop("warnings", [])]
            data.update(facility)
            data["warnings"] = warnings
        return data

    return guarded(run, "scenario")


@router.post("/serve", summary="Simulate a deployment (superscale serve --json)")
async def serve(request: Request) -> SafeJSONResponse:
    settings = settings_of(request)
    body = await body_of(request, ServeRequest)
    check_gpus(settings, body.scenario.cluster.gpus, "cluster")
    return ok(await run_in_threadpool(_serve, settings, body))


@router.post(
    "/serve-plan",
    status_code=202,
    summary="Start a serve-plan job: fewest GPUs for a rate within SLOs",
)
async def serve_plan(request: Request) -> SafeJSONResponse:
    from superscale.inference.plan_search import plan_capacity
    from superscale.scenario.serving import SloSpec

    settings = settings_of(request)
    body = await body_of(request, ServePlanRequest)
    check_gpus(settings, body.scenario.cluster.gpus, "cluster")
    if body.scenario.serving is None:
        raise ApiError(
            422,
            "this scenario has no serving section; see 'superscale serve'",
            field="scenario.serving",
        )
    if body.ttft_p99_s is None and body.tpot_p99_s is None:
        raise ApiError(422, "give at least one SLO: ttft_p99_s or tpot_p99_s", field="ttft_p99_s")
    if body.requests > settings.max_requests:
        raise cap_exceeded(
            "max_requests", settings.max_requests, body.requests, "requests per simulation"
        )
    _check_prefill_work(settings, body.scenario, body.requests)
    slo = SloSpec(ttft_p99_s=body.ttft_p99_s, tpot_p99_s=body.tpot_p99_s)

    def work(control: JobControl) -> dict[str, Any]:
        control.check()
        return plan_capacity(
            body.scenario,
            rate_per_s=body.rate_per_s,
            slo=slo,
            requests=body.requests,
            disaggregation=body.disaggregation,
        )

    job = jobs_of(request).submit("serve-plan", work)
    return ok(jobs_of(request).get(job.id), 202)
