"""The HTTP API: one endpoint per CLI verb, each calling the library function that verb calls.

Bodies are parsed by `inputs.parse` (the library's specs), work is bounded by the caps of
`Settings` before any runs, and the library's errors become 422s with its own words
(`errors.from_library`). Responses are the JSON the CLI prints with `--json`; `simulate`
adds where the groups land (`placement`, as `check --json`) and the cluster's hierarchy
for the page's picture, and, with `trace`, the Chrome trace. Search and serve-plan run as
jobs (`jobs.JobRunner`): POST starts one (202), GET reads its progress and result,
DELETE cancels it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from superscale.cli.catalog import CATALOGS, _check_json, _derived
from superscale.cli.collective import DTYPES, sweep
from superscale.cli.facility import _entry_json
from superscale.collectives import COLLECTIVES, CommModel
from superscale.errors import InfeasiblePlan, SpecError, unknown_name_message
from superscale.facility.comparison import cluster_value, parse_clusters
from superscale.facility.comparison import compare as compare_clusters
from superscale.hardware import catalog as hardware_catalog
from superscale.hardware.spec import Cluster
from superscale.parallelism import resolve
from superscale.pipeline import simulate_timeline
from superscale.scenario import Scenario
from superscale.service.errors import ApiError, cap_exceeded, from_library
from superscale.service.inputs import (
    CollectiveRequest,
    CompareRequest,
    HfConfigRequest,
    ScenarioRequest,
    SearchRequest,
    ServePlanRequest,
    ServeRequest,
    SimulateRequest,
    SpecT,
    forbid_files,
    parse,
)
from superscale.service.jobs import JobControl, JobRunner
from superscale.service.settings import Settings
from superscale.simulate.trace import chrome_trace
from superscale.units import parse_bytes

T = TypeVar("T")
MAX_JSON_INT = 2**53  # beyond this JSON numbers lose precision in the page, and numpy overflows
DEFAULT_SERVE_REQUESTS = 2000  # inference.workload's default when neither count is given

router = APIRouter(prefix="/api")


class SafeJSONResponse(JSONResponse):
    """JSON with non-finite floats as null and numpy scalars as numbers (never a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            _finite(content), ensure_ascii=False, allow_nan=False, default=_plain
        ).encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        out = item()
        return out if not isinstance(out, float) or math.isfinite(out) else None
    return str(value)


def _reject_constant(name: str) -> Any:
    raise ApiError(422, f"the request body holds {name}; numbers must be finite", field="")


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(422, f"the number {text[:40]} is out of range", field="")
    return value


def _integer(text: str) -> int:
    if len(text) > 20 or abs(int(text)) > MAX_JSON_INT:
        raise ApiError(422, f"the integer {text[:40]} exceeds ±2^53", field="")
    return int(text)


async def read_json(request: Request) -> Any:
    """The body decoded as JSON, refused past `max_body_bytes` (413) or malformed (422)."""
    limit = _settings(request).max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        raise ApiError(422, "the request body is empty; send a JSON object", field="")
    try:
        text = data.decode("utf-8")
        return json.loads(
            text, parse_constant=_reject_constant, parse_float=_number, parse_int=_integer
        )
    except UnicodeDecodeError:
        raise ApiError(422, "the request body is not UTF-8 text", field="") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, f"the request body is not valid JSON: {exc.msg} (line {exc.lineno})", field=""
        ) from None
    except RecursionError:
        raise ApiError(422, "the request body nests too deeply", field="") from None


def _too_large(limit: int) -> ApiError:
    error = cap_exceeded("max_body_bytes", limit, limit + 1, "request body (bytes)")
    error.body["error"] = (
        f"request body exceeds this server's cap of {limit:,} bytes; start it with "
        "`superscale web --max-body-bytes N` to raise it"
    )
    error.status = 413
    return error


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _jobs(request: Request) -> JobRunner:
    jobs: JobRunner = request.app.state.jobs
    return jobs


def _guarded(fn: Callable[[], T], prefix: str = "") -> T:
    try:
        return fn()
    except (SpecError, InfeasiblePlan) as exc:
        raise from_library(exc, prefix=prefix) from None
    except (ArithmeticError, RecursionError) as exc:
        raise ApiError(422, f"numbers out of range for the model: {exc}", field="") from None


async def _call(fn: Callable[[], T], prefix: str = "") -> T:
    """Run library work off the event loop, its errors as 422s."""
    return await run_in_threadpool(_guarded, fn, prefix)


async def _body(request: Request, model: type[SpecT]) -> SpecT:
    raw = await read_json(request)
    return await run_in_threadpool(parse, model, raw)


def _ok(content: Any, status: int = 200) -> SafeJSONResponse:
    return SafeJSONResponse(content, status_code=status)


def _check_gpus(settings: Settings, gpus: int, what: str) -> None:
    if gpus > settings.max_gpus:
        raise cap_exceeded("max_gpus", settings.max_gpus, gpus, f"{what} GPUs")


# --- catalog, show, hf-config -------------------------------------------------------------


@router.get("/health", summary="Liveness and this server's caps")
def health(request: Request) -> dict[str, Any]:
    return {"ok": True, "settings": dataclasses.asdict(_settings(request))}


@router.get("/catalog", summary="Names in each catalog (superscale catalog --json)")
def catalog_counts() -> dict[str, list[str]]:
    return {plural: load().names() for plural, (_, load) in CATALOGS.items()}


@router.get("/catalog/{kind}", summary="Every entry of one catalog (superscale catalog KIND)")
def catalog_kind(kind: str) -> SafeJSONResponse:
    if kind not in CATALOGS:
        raise ApiError(
            404, unknown_name_message("catalog", kind[:80], CATALOGS), field="kind", kind="spec"
        )
    return _ok([entry.model_dump(mode="json") for entry in CATALOGS[kind][1]()])


@router.get("/show/{name}", summary="One catalog entry with derived figures (superscale show)")
def show(name: str) -> SafeJSONResponse:
    everything: list[str] = []
    for kind, load in CATALOGS.values():
        entries = load()
        everything.extend(entries.names())
        if name in entries:
            entry = entries.get(name)
            return _ok({**entry.model_dump(mode="json"), "derived": _derived(entry), "kind": kind})
    raise ApiError(404, unknown_name_message("name", name[:80], everything), field="name")


@router.post("/hf-config", summary="A pasted Hugging Face config.json as an inline model")
async def hf_config(request: Request) -> SafeJSONResponse:
    from superscale.models.hf import from_hf_config

    body = await _body(request, HfConfigRequest)
    spec = await _call(lambda: from_hf_config(body.config, name=body.name))
    return _ok({"model": spec.model_dump(mode="json"), "derived": _derived(spec)})


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
    body = await _body(request, ScenarioRequest)
    _check_gpus(_settings(request), body.scenario.cluster.gpus, "cluster")
    scenario = body.scenario
    out = await _call(lambda: _check_json(scenario, resolve(scenario)), "scenario")
    return _ok({**out, "hierarchy": _hierarchy(scenario.cluster)})


def _event_work(settings: Settings, scenario: Scenario, ranks: str) -> None:
    plan = _guarded(lambda: resolve(scenario), "scenario")
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
        out["placement"] = _check_json(scenario, resolve(scenario))["groups"]
        out["hierarchy"] = _hierarchy(scenario.cluster)
        if body.trace and timeline is not None:
            if len(timeline.spans) > settings.max_spans:
                raise cap_exceeded("max_spans", settings.max_spans, len(timeline.spans), "spans")
            out["trace"] = chrome_trace(timeline, title=body.name)
        return out

    return _guarded(run, "scenario")


@router.post("/simulate", summary="One training step (superscale simulate --json)")
async def simulate(request: Request) -> SafeJSONResponse:
    settings = _settings(request)
    body = await _body(request, SimulateRequest)
    _check_gpus(settings, body.scenario.cluster.gpus, "cluster")
    if body.ranks == "all" and body.scenario.cluster.gpus > settings.max_gpus // 16:
        raise cap_exceeded(
            "max_gpus", settings.max_gpus // 16, body.scenario.cluster.gpus, "ranks 'all' (1/16)"
        )
    return _ok(await run_in_threadpool(_simulate, settings, body))


def _cluster_gpus(name: str) -> int:
    value = cluster_value(name)
    if isinstance(value, str):
        return hardware_catalog.clusters().get(value).gpus
    system = hardware_catalog.systems().get(value["system"])
    return int(system.gpus) * int(value["count"])


@router.post("/compare", summary="One workload on several clusters (superscale compare)")
async def compare(request: Request) -> SafeJSONResponse:
    settings = _settings(request)
    body = await _body(request, CompareRequest)
    names = _guarded(lambda: parse_clusters(",".join(body.clusters)), "clusters")
    for name in names:
        _check_gpus(settings, _guarded(partial(_cluster_gpus, name), "clusters"), name)

    def run() -> dict[str, Any]:
        entries = compare_clusters(body.scenario, names, name=body.name, tokens=body.tokens)
        first = next((e.result for e in entries if e.result is not None), None)
        floor = None if first is None or first.facility is None else first.facility["space"]
        first_floor = None if floor is None else floor["floor_m2"]
        return {"scenario": body.name, "clusters": [_entry_json(e, first_floor) for e in entries]}

    return _ok(await _call(run, "scenario"))


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
    settings = _settings(request)
    body = await _body(request, CollectiveRequest)
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
    target = _guarded(lambda: _collective_cluster(body), "system")
    _check_gpus(settings, target.gpus, "cluster")
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

    return _ok(await _call(run))


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
    from superscale.cli.serving import _facility_hook
    from superscale.inference.serve import serve as run_serve
    from superscale.inference.workload import parse_trace

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
        requests = _guarded(lambda: parse_trace(body.trace_csv or "", origin="trace_csv"))
    elif body.trace_csv is not None:
        raise ApiError(422, "trace_csv needs serving.workload.arrival 'trace'", field="trace_csv")
    asked = _serve_requests(scenario, None if requests is None else len(requests))
    if asked > settings.max_requests:
        raise cap_exceeded("max_requests", settings.max_requests, asked, "simulated requests")
    _check_prefill_work(settings, scenario, asked)

    def run() -> dict[str, Any]:
        data = run_serve(scenario, requests=requests, name=body.name).to_json()
        facility = _facility_hook(scenario, data)
        if facility is not None:
            warnings = [*data["warnings"], *facility.pop("warnings", [])]
            data.update(facility)
            data["warnings"] = warnings
        return data

    return _guarded(run, "scenario")


@router.post("/serve", summary="Simulate a deployment (superscale serve --json)")
async def serve(request: Request) -> SafeJSONResponse:
    settings = _settings(request)
    body = await _body(request, ServeRequest)
    _check_gpus(settings, body.scenario.cluster.gpus, "cluster")
    return _ok(await run_in_threadpool(_serve, settings, body))


@router.post(
    "/serve-plan",
    status_code=202,
    summary="Start a serve-plan job: fewest GPUs for a rate within SLOs",
)
async def serve_plan(request: Request) -> SafeJSONResponse:
    from superscale.inference.plan_search import plan_capacity
    from superscale.inference.spec import SloSpec

    settings = _settings(request)
    body = await _body(request, ServePlanRequest)
    _check_gpus(settings, body.scenario.cluster.gpus, "cluster")
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

    job = _jobs(request).submit("serve-plan", work)
    return _ok(_jobs(request).get(job.id), 202)


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
            _check_gpus(settings, cluster.gpus, "searched cluster")
        plans = enumerate_plans(body.scenario, clusters=clusters).plans
        if plans > settings.max_plans:
            raise cap_exceeded("max_plans", settings.max_plans, plans, "candidate plans")

    _guarded(count, "scenario")


@router.post("/search", status_code=202, summary="Start a plan search job (superscale search)")
async def search(request: Request) -> SafeJSONResponse:
    from superscale.search.run import run_search

    settings = _settings(request)
    body = await _body(request, SearchRequest)
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

    job = _jobs(request).submit("search", work)
    return _ok(_jobs(request).get(job.id), 202)


@router.get("/jobs/{job_id}", summary="A job's state, progress (plans/s) and result")
def job_status(request: Request, job_id: str) -> SafeJSONResponse:
    return _ok(_jobs(request).get(job_id))


@router.delete("/jobs/{job_id}", summary="Cancel a job")
def job_cancel(request: Request, job_id: str) -> SafeJSONResponse:
    return _ok(_jobs(request).cancel(job_id))


# --- validate -----------------------------------------------------------------------------


def _validate_rows(inference: bool, engine: str) -> list[dict[str, Any]]:
    """Every reference row predicted (the work `superscale validate` does), as JSON rows."""
    if inference:
        from superscale.validate.inference import compare_all as serving_rows

        rows: list[Any] = serving_rows()
    else:
        from superscale.validate.training import compare_all

        rows = compare_all(engine=engine)
    out = []
    for r in rows:
        row = dataclasses.asdict(r)
        row["error_pct"] = r.error_pct  # a property, as the CLI's --json prints it
        row["skipped"] = row.get("skipped") or None
        out.append(row)
    return out


def _validate_view(
    rows: list[dict[str, Any]], inference: bool, source: str | None
) -> dict[str, Any]:
    """Rows of one source (all if None) and their error summary, as `validate --json`."""
    if source is not None:
        known = sorted({r["source_key"] for r in rows})
        if source not in known:
            raise ApiError(
                422, f"unknown source '{source}' (known: {', '.join(known)})", field="source"
            )
        rows = [r for r in rows if r["source_key"] == source]
    if inference:
        from superscale.validate.inference import Comparison as ServingRow
        from superscale.validate.inference import summarize_errors as serving_summary

        fields = {f.name for f in dataclasses.fields(ServingRow)}
        typed: list[Any] = [
            ServingRow(
                **{k: v for k, v in r.items() if k in fields} | {"skipped": r["skipped"] or ""}
            )
            for r in rows
        ]
        return {"rows": rows, "summary": serving_summary(typed)}
    from superscale.validate.training import Comparison, summarize_errors

    fields = {f.name for f in dataclasses.fields(Comparison)}
    typed = [
        Comparison(**{k: v for k, v in r.items() if k in fields} | {"skipped": r["skipped"] or ""})
        for r in rows
    ]
    return {"rows": rows, "summary": summarize_errors(typed)}


@router.get(
    "/validate",
    summary="Predicted vs published rows (superscale validate --json); a job the first time",
)
def validate(
    request: Request, inference: bool = False, engine: str = "analytical", source: str = ""
) -> SafeJSONResponse:
    """The rows once computed (200); until then the job computing them (202, poll it).

    Every row is predicted once per server and engine, as `superscale validate` does.
    """
    if engine not in ("analytical", "event"):
        raise ApiError(
            422, f"unknown engine '{engine[:40]}' (allowed: analytical, event)", field="engine"
        )
    key = (inference, "analytical" if inference else engine)
    cache: dict[tuple[bool, str], Any] = request.app.state.validate_cache
    lock: threading.Lock = request.app.state.validate_lock
    jobs = _jobs(request)
    with lock:
        held = cache.get(key)
        if held is None or isinstance(held, str):
            job_id = held if isinstance(held, str) else None
            state = None
            if job_id is not None:
                try:
                    state = jobs.get(job_id)
                except ApiError:  # forgotten after finishing: compute again
                    state = None
            if state is None or state["state"] in ("failed", "cancelled"):

                def work(control: JobControl) -> dict[str, Any]:
                    rows = _validate_rows(*key)
                    with lock:
                        cache[key] = rows
                    return _validate_view(rows, inference, source or None)

                state = jobs.get(jobs.submit("validate", work).id)
                cache[key] = state["id"]
            if state["state"] != "done":
                return _ok(state, 202)
            held = cache[key]
    return _ok(_validate_view(held, inference, source[:80] or None))
