"""`GET /api/validate`: predicted against published rows, as `superscale validate --json`.

Every row is predicted once per server and engine (about 1 s analytical, 7 s serving,
50 s on the event engine), as a job the first time; later requests filter the kept rows
by source and summarize them with the library's own `summarize_errors`.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from fastapi import APIRouter, Request

from superscale.service.errors import ApiError
from superscale.service.jobs import JobControl
from superscale.service.wire import SafeJSONResponse, jobs_of, ok

router = APIRouter(prefix="/api")


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
    jobs = jobs_of(request)
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
                return ok(state, 202)
            held = cache[key]
    return ok(_validate_view(held, inference, source[:80] or None))
