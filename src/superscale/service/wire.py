"""JSON in and out of the service: strict decoding, capped bodies, finite numbers.

Requests are read as a stream and refused past `max_body_bytes` (413); JSON is decoded
strictly (no NaN or Infinity, integers within ±2^53, no runaway nesting), so the library
never sees a value the page could not have sent. Responses turn non-finite floats into
null and numpy scalars into numbers. Library errors raised while working become 422s
(`guarded`), and work runs off the event loop (`call`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from superscale.errors import InfeasiblePlan, SpecError
from superscale.service.errors import ApiError, cap_exceeded, from_library
from superscale.service.inputs import (
    SpecT,
    parse,
)
from superscale.service.jobs import JobRunner
from superscale.service.settings import Settings

T = TypeVar("T")
MAX_JSON_INT = 2**53  # beyond this JSON numbers lose precision in the page, and numpy overflows


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
    limit = settings_of(request).max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
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


def too_large(limit: int) -> ApiError:
    error = cap_exceeded("max_body_bytes", limit, limit + 1, "request body (bytes)")
    error.body["error"] = (
        f"request body exceeds this server's cap of {limit:,} bytes; start it with "
        "`superscale web --max-body-bytes N` to raise it"
    )
    error.status = 413
    return error


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def jobs_of(request: Request) -> JobRunner:
    jobs: JobRunner = request.app.state.jobs
    return jobs


def guarded(fn: Callable[[], T], prefix: str = "") -> T:
    try:
        return fn()
    except (SpecError, InfeasiblePlan) as exc:
        raise from_library(exc, prefix=prefix) from None
    except (ArithmeticError, RecursionError) as exc:
        raise ApiError(422, f"numbers out of range for the model: {exc}", field="") from None


async def call(fn: Callable[[], T], prefix: str = "") -> T:
    """Run library work off the event loop, its errors as 422s."""
    return await run_in_threadpool(guarded, fn, prefix)


async def body_of(request: Request, model: type[SpecT]) -> SpecT:
    raw = await read_json(request)
    return await run_in_threadpool(parse, model, raw)


def ok(content: Any, status: int = 200) -> SafeJSONResponse:
    return SafeJSONResponse(content, status_code=status)


def check_gpus(settings: Settings, gpus: int, what: str) -> None:
    if gpus > settings.max_gpus:
        raise cap_exceeded("max_gpus", settings.max_gpus, gpus, f"{what} GPUs")
