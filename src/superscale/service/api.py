"""The HTTP API: one endpoint per CLI verb, each calling the library function that verb calls.

Bodies are parsed by `inputs.parse` (the library's specs), work is bounded by the caps of
`Settings` before any runs, and the library's errors become 422s with its own words
(`errors.from_library`). Responses are the JSON the CLI prints with `--json`; `simulate`
adds where the groups land (`placement`, as `check --json`) and the cluster's hierarchy
for the page's picture, and, with `trace`, the Chrome trace. Search runs as a job
(`jobs.JobRunner`): POST starts one (202), GET reads its progress and result, DELETE
cancels it. Serving endpoints are in `serving.py`, validate in `validation.py`, the JSON
wire format in `wire.py`.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from superscale.collectives import COLLECTIVES, CommModel
from superscale.collectives.sweep import DTYPES, sweep
from superscale.compare import cluster_value, entry_json, parse_clusters
from superscale.compare import compare as compare_clusters
from superscale.errors import unknown_name_message
from superscale.hardware import catalog as hardware_catalog
from superscale.hardware.spec import Cluster
from superscale.parallelism import resolve
from superscale.pipeline import simulate_timeline
from superscale.report.catalog import CATALOGS, derived_figures
from superscale.report.check import check_json
from superscale.scenario import Scenario
from superscale.service.errors import ApiError, cap_exceeded
from superscale.service.inputs import (
    CollectiveRequest,
    CompareRequest,
    HfConfigRequest,
    ScenarioRequest,
    SearchRequest,
    SimulateRequest,
    forbid_files,
)
from superscale.service.jobs import JobControl
from superscale.service.settings import Settings
from superscale.service.wire import (
    SafeJSONResponse,
    body_of,
    call,
    check_gpus,
    guarded,
    jobs_of,
    ok,
    settings_of,
)
from superscale.simulate.trace import chrome_trace
from superscale.units import parse_bytes

router = APIRouter(prefix="/api")


# --- catalog, show, hf-config -------------------------------------------------------------


@router.get("/health", summary="Liveness and this server's caps")
def health(request: Request) -> dict[str, Any]:
    return {"ok": True, "settings": dataclasses.asdict(settings_of(request))}


@router.get("/catalog", summary="Names in each catalog (superscale catalog --json)")
def catalog_counts() -> dict[str, list[str]]:
    return {plural: load().names() for plural, (_, load) in CATALOGS.items()}


@router.get("/catalog/{kind}", summary="Every entry of one catalog (superscale catalog KIND)")
def catalog_kind(kind: str) -> SafeJSONResponse:
    if kind not in CATALOGS:
        raise ApiError(
            404, unknown_name_message("catalog", kind[:80], CATALOGS), field="kind", kind="spec"
        )
    return ok([entry.model_dump(mode="json") for entry in CATALOGS[kind][1]()])


@router.get("/show/{name}", summary="One catalog entry with derived figures (superscale show)")
def show(name: str) -> SafeJSONResponse:
    everything: list[str] = []
    for kind, load in CATALOGS.values():
        entries = load()
        everything.extend(entries.names())
        if name in entries:
            entry = entries.get(name)
            return ok(
                {**entry.model_dump(mode="json"), "derived": derived_figures(entry), "kind": kind}
            )
    raise ApiError(404, unknown_name_message("name", name[:80], everything), field="name")


@router.post("/hf-config", summary="A pasted Hugging Face config.json as an inline model")
async def hf_config(request: Request) -> SafeJSONResponse:
    from superscale.models.hf import from_hf_config

    body = await body_of(request, HfConfigRequest)
    spec = await call(lambda: from_hf_config(body.config, name=body.name))
    return ok({"model": spec.model_dump(mode="json"), "derived": derived_figures(spec)})


# --- training: check, simulate, compare ---------------------------------------------------


def _hierarchy(cluster: Cluster) -> dict[str, Any]:
    system = cluster.system
    return {
        "system": system.name,
        "system_kind": system.kind,
        "systems": cluster.count,
        "gpus_per_system": system.gpus,
        "domain_gpus": system.scale_up.gpus,
        "gpus": cluster.gpus,
        "network": cluster.nic.name,
        "topology": cluster.scale_out.topology,
    }


@router.post("/check", summary="Validate a scenario; where each group lands (superscale check)")
async def check(request: Request) -> SafeJSONResponse:
    body = await body_of(request, ScenarioRequest)
    check_gpus(settings_of(request), body.scenario.cluster.gpus, "cluster")
    scenario = body.scenario
    out = await call(lambda: check_json(scenario, resolve(scenario)), "scenario")
    return ok({**out, "hierarchy": _hierarchy(scenario.cluster)})


def _event_work(settings: Settings, scenario: Scenario, ranks: str) -> None:
    plan = guarded(lambda: resolve(scenario), "scenario")
    simulated = plan.pp if ranks == "stage" else plan.gpus
    tasks = plan.micro_batches * plan.virtual_stages * simulated
    if tasks > settings.max_spans:
        raise cap_exceeded(
            "max_spans",
            settings.max_spans,
            tasks,
            "event engine tasks (micro-batches × virtual stages × simulated ranks)",
        )


def _simulate(settings: Settings, body: SimulateRequest) -> dict[str, Any]:
    scenario = body.scenario
    if body.trace and body.engine != "event":
        raise ApiError(
            422,
            "trace needs engine 'event' (the analytical engine has no timeline)",
            field="trace",
        )
    if body.engine == "event":
        _event_work(settings, scenario, body.ranks)

    def run() -> dict[str, Any]:
        result, timeline = simulate_timeline(
            scenario, name=body.name, engine=body.engine, ranks=body.ranks, spans=body.trace
        )
        out = result.to_json()
        out["placement"] = check_json(scenario, resolve(scenario))["groups"]
        out["hierarchy"] = _hierarchy(scenario.cluster)
        if body.trace and timeline is not None:
            if len(timeline.spans) > settings.max_spans:
                raise cap_exceeded("max_spans", settings.max_spans, len(timeline.spans), "spans")
            out["trace"] = chrome_trace(timeline, title=body.name)
        return out

    return guarded(run, "scenario")


@router.post("/simulate", summary="One training step (superscale simulate --json)")
async def simulate(request: Request) -> SafeJSONResponse:
    settings = settings_of(request)
    body = await body_of(request, SimulateRequest)
    check_gpus(settings, body.scenario.cluster.gpus, "cluster")
    if body.ranks == "all" and body.scenario.cluster.gpus > settings.max_gpus // 16:
        raise cap_exceeded(
            "max_gpus", settings.max_gpus // 16, body.scenario.cluster.gpus, "ranks 'all' (1/16)"
        )
    return ok(await run_in_threadpool(_simulate, settings, body))


def _cluster_gpus(name: str) -> int:
    value = cluster_value(name)
    if isinstance(value, str):
        return hardware_catalog.clusters().get(value).gpus
    system = hardware_catalog.systems().get(value["system"])
    return int(system.gpus) * int(value["count"])


@router.post("/compare", summary="One workload on several clusters (superscale compare)")
async def compare(request: Request) -> SafeJSONResponse:
    settings = settings_of(request)
    body = await body_of(request, CompareRequest)
    names = guarded(lambda: parse_clusters(",".join(body.clusters)), "clusters")
    for name in names:
        check_gpus(settings, guarded(partial(_cluster_gpus, name), "clusters"), name)

    def run() -> dict[str, Any]:
        entries = compare_clusters(body.scenario, names, name=body.name, tokens=body.tokens)
        first = next((e.result for e in entries if e.result is not None), None)
        floor = None if first is None or first.facility is None else first.facility["space"]
        first_floor = None if floor is None else floor["floor_m2"]
        return {"scenario": body.name, "clusters": [entry_json(e, first_floor) for e in entries]}

    return ok(await call(run, "scenario"))


# --- collectives --------------------------------------------------------------------------


def _collective_cluster(body: CollectiveRequest) -> Cluster:
    if body.cluster is not None:
        if body.system is not None:
            raise ApiError(422, "give cluster or system, not both", field="cluster")
        return hardware_catalog.clusters().get(body.cluster)
    if body.system is None:
        raise ApiError(
            422, "system (a catalog server or super-node) or cluster is required", field="system"
        )
    return Cluster(system=hardware_catalog.systems().get(body.system), count=body.count)


def _size(field: str, text: str) -> int:
    try:
        value = parse_bytes(text)
    except (ValueError, OverflowError):
        raise ApiError(
            422, f"'{text}' is not a size (examples: 8, 64K, 1M, 8G)", field=field
        ) from None
    if value < 1 or value > 2**50:
        raise ApiError(422, f"must be between 1 byte and 1P, got '{text}'", field=field)
    return value


@router.post("/collective", summary="Predicted nccl-tests sweep (superscale collective)")
async def collective(request: Request) -> SafeJSONResponse:
    settings = settings_of(request)
    body = await body_of(request, CollectiveRequest)
    if body.op not in COLLECTIVES:
        raise ApiError(
            422,
            f"unknown collective '{body.op}' (allowed: {', '.join(COLLECTIVES)})",
            field="op",
        )
    if body.dtype not in DTYPES:
        raise ApiError(
            422, f"unknown type '{body.dtype}' (allowed: {', '.join(DTYPES)})", field="dtype"
        )
    if body.system is not None and body.count > settings.max_gpus:
        raise cap_exceeded("max_gpus", settings.max_gpus, body.count, "cluster systems")
    target = guarded(lambda: _collective_cluster(body), "system")
    check_gpus(settings, target.gpus, "cluster")
    group = target.gpus if body.gpus is None else body.gpus
    if group < 2 or target.gpus % group:
        raise ApiError(
            422,
            f"{group} must be at least 2 and divide the cluster's {target.gpus} GPUs",
            field="gpus",
        )
    lo, hi = _size("min_bytes", body.min_bytes), _size("max_bytes", body.max_bytes)
    if lo > hi:
        raise ApiError(
            422,
            f"min_bytes ({body.min_bytes}) exceeds max_bytes ({body.max_bytes})",
            field="min_bytes",
        )

    def run() -> dict[str, Any]:
        out = sweep(
            CommModel(target),
            body.op,
            gpus=group,
            min_bytes=lo,
            max_bytes=hi,
            factor=body.step_factor,
            algorithm=body.algo,
            elem_bytes=DTYPES[body.dtype],
        )
        out["cluster"] = target.name or f"{target.count}x {target.system.name}"
        out["dtype"] = body.dtype
        return out

    return ok(await call(run))


# --- search jobs --------------------------------------------------------------------------


def _prepare_search(settings: Settings, body: SearchRequest) -> None:
    from superscale.search.run import build_clusters
    from superscale.search.space import enumerate_plans

    if body.top > settings.max_top:
        raise cap_exceeded("max_top", settings.max_top, body.top, "top plans")
    forbid_files(body.scenario)
    # The top plans are re-simulated by the event engine, whose work grows with the
    # micro-batches per step (up to global_batch): bound it before the job starts.
    training = body.scenario.get("training")
    batch = training.get("global_batch") if isinstance(training, dict) else None
    if isinstance(batch, int) and batch > settings.max_spans // 16:
        raise cap_exceeded(
            "max_spans",
            settings.max_spans // 16,
            batch,
            "training.global_batch of a search (its top plans run on the event engine; "
            "1/16 of the span cap)",
        )

    def count() -> None:
        clusters, _ = build_clusters(body.scenario, gpus=body.gpus, systems=body.systems)
        for cluster in clusters:
            check_gpus(settings, cluster.gpus, "searched cluster")
        plans = enumerate_plans(body.scenario, clusters=clusters).plans
        if plans > settings.max_plans:
            raise cap_exceeded("max_plans", settings.max_plans, plans, "candidate plans")

    guarded(count, "scenario")


@router.post("/search", status_code=202, summary="Start a plan search job (superscale search)")
async def search(request: Request) -> SafeJSONResponse:
    from superscale.search.run import run_search

    settings = settings_of(request)
    body = await body_of(request, SearchRequest)
    await run_in_threadpool(_prepare_search, settings, body)

    def work(control: JobControl) -> dict[str, Any]:
        result = run_search(
            body.scenario,
            gpus=body.gpus,
            systems=body.systems,
            top=body.top,
            backend=settings.backend,
            address=settings.ray_address,
            batch_size=settings.search_batch_size,
            progress=control.progress,
        )
        return result.to_json()

    job = jobs_of(request).submit("search", work)
    return ok(jobs_of(request).get(job.id), 202)


@router.get("/jobs/{job_id}", summary="A job's state, progress (plans/s) and result")
def job_status(request: Request, job_id: str) -> SafeJSONResponse:
    return ok(jobs_of(request).get(job_id))


@router.delete("/jobs/{job_id}", summary="Cancel a job")
def job_cancel(request: Request, job_id: str) -> SafeJSONResponse:
    return ok(jobs_of(request).cancel(job_id))
