"""The FastAPI application: `create_app(settings)` builds the API, the page and their state.

Everything the app holds (settings, the job runner, the validate cache) lives on
`app.state`, created here; nothing is module-level. The page is the static folder
`static/` shipped with the package (every script and style is ours: it works offline).
The OpenAPI schema documents the request bodies as the library's specs (`inputs.py`), a
catalog name being allowed wherever the library accepts one in place of an entry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from superscale.scenario import Scenario
from superscale.service import api, inputs, serving, validation
from superscale.service.errors import ApiError
from superscale.service.jobs import JobRunner
from superscale.service.settings import Settings
from superscale.service.wire import SafeJSONResponse, too_large

log = logging.getLogger("superscale.service")

# Request bodies by path, documented from their specs.
BODIES: dict[str, type[BaseModel]] = {
    "/api/check": inputs.ScenarioRequest,
    "/api/simulate": inputs.SimulateRequest,
    "/api/compare": inputs.CompareRequest,
    "/api/collective": inputs.CollectiveRequest,
    "/api/serve": inputs.ServeRequest,
    "/api/serve-plan": inputs.ServePlanRequest,
    "/api/search": inputs.SearchRequest,
    "/api/hf-config": inputs.HfConfigRequest,
}
# Specs the library also accepts as a catalog name (a string) in place of the entry.
NAMED = {"ModelSpec", "Cluster", "System", "Chip", "Link"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "field"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, in the CLI's words."},
        "field": {"type": "string", "description": "Dotted path of the field in the body."},
        "allowed": {"type": "array", "items": {"type": "string"}},
        "cap": {"type": "string", "description": "The work cap exceeded, if any."},
        "flag": {"type": "string", "description": "The superscale web flag raising it."},
    },
}


def static_dir() -> Path:
    """The page's folder inside the installed package."""
    return Path(str(resources.files("superscale.service").joinpath("static")))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API and the page, with their state on `app.state`."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.backend == "ray":
            _start_ray(settings)
        yield
        app.state.jobs.shutdown()

    app = FastAPI(
        title="superscale",
        version="0.1.0",
        summary="Training step time and serving latency of large models on GPU clusters.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        # FastAPI's /docs and /redoc load their scripts from a CDN; the schema is enough.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.jobs = JobRunner(
        workers=settings.job_workers,
        queue_limit=settings.queue_limit,
        timeout_s=settings.job_timeout_s,
        keep_finished=settings.finished_jobs,
    )
    app.state.validate_cache = {}
    app.state.validate_lock = threading.Lock()
    for module in (api, serving, validation):
        app.include_router(module.router)
    _add_errors(app)
    _add_body_limit(app, settings.max_body_bytes)
    folder = static_dir()
    app.mount("/static", StaticFiles(directory=folder), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(folder / "index.html", media_type="text/html")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _start_ray(settings: Settings) -> None:
    """Start (or join) Ray once for the server's life, so jobs do not each start it."""
    from superscale.errors import SpecError

    try:
        import ray  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SpecError("--backend ray needs Ray: pip install 'superscale[ray]'") from None
    if not ray.is_initialized():
        if settings.ray_address is None:
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=settings.ray_address, log_to_driver=False)


def _add_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return SafeJSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def query_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        message = str(first.get("msg", "invalid request"))
        return SafeJSONResponse({"error": message, "field": ".".join(loc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return SafeJSONResponse(
            {"error": str(exc.detail), "field": ""}, status_code=exc.status_code
        )

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return SafeJSONResponse(
            {"error": f"internal error ({type(exc).__name__}); see the server log", "field": ""},
            status_code=500,
        )


def _add_body_limit(app: FastAPI, limit: int) -> None:
    @app.middleware("http")
    async def body_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            error = too_large(limit)
            return SafeJSONResponse(error.body, status_code=error.status)
        return await call_next(request)


def _allow_names(node: Any) -> Any:
    """Where a schema refers to a spec that may be a catalog name, allow a string too."""
    if isinstance(node, dict):
        if node.get("x-scenario"):
            return {"allOf": [{"$ref": "#/components/schemas/Scenario"}], **node}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in NAMED:
            return {"anyOf": [{"type": "string", "description": "A catalog name."}, node]}
        return {k: _allow_names(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_allow_names(v) for v in node]
    return node


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    template = "#/components/schemas/{model}"
    models: list[type[BaseModel]] = [*BODIES.values(), Scenario]
    for model in models:
        doc = model.model_json_schema(ref_template=template)
        for name, sub in doc.pop("$defs", {}).items():
            components[name] = _allow_names(sub)
        components[model.__name__] = _allow_names(doc)
    components["Error"] = ERROR_SCHEMA
    error_ref = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    }
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["422"] = {"description": "Bad input or a work cap", **error_ref}
            if path in BODIES:
                responses["413"] = {"description": "Request body too large", **error_ref}
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": template.format(model=BODIES[path].__name__)}
                        }
                    },
                }
            if "{job_id}" in path or path.startswith("/api/show") or "{kind}" in path:
                responses["404"] = {"description": "Unknown name or job", **error_ref}
            if path in ("/api/search", "/api/serve-plan"):
                responses["429"] = {"description": "Job queue full", **error_ref}
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
