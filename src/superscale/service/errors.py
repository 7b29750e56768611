"""JSON errors: every failure a client can cause is a 4xx with one line, never a traceback.

The body is `{"error": message, "field": dotted path, "allowed": [...], ...}`. The message
is the library's own `SpecError` / `InfeasiblePlan` text (the words the CLI prints), the
field its path in the request body, and `allowed` the choices the message lists, when it
lists any ("(allowed: a, b)", "(known: ...)"). A work cap adds `cap`, `limit` and the
`superscale web` flag that raises it.
"""

from __future__ import annotations

import re
from typing import Any

from superscale.errors import InfeasiblePlan, SpecError
from superscale.service.settings import CAP_FLAGS

_LISTED = re.compile(r"\((?:allowed|known|supports|it supports): ([^()]*)\)")


class ApiError(Exception):
    """A client error: HTTP status and the JSON body to send."""

    def __init__(self, status: int, message: str, *, field: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, "field": field, **extra}
        allowed = allowed_values(message)
        if allowed and "allowed" not in self.body:
            self.body["allowed"] = allowed


def allowed_values(message: str) -> list[str]:
    """The choices a library message lists ("(allowed: a, b)"), without a trailing "..."."""
    match = _LISTED.search(message)
    if not match:
        return []
    return [v.strip() for v in match.group(1).split(",") if v.strip() and v.strip() != "..."]


def from_library(exc: SpecError | InfeasiblePlan, *, prefix: str = "") -> ApiError:
    """A library error as a 422, its field path placed under `prefix` in the body."""
    if isinstance(exc, SpecError):
        path = ".".join(p for p in (prefix, exc.path) if p)
        message = exc.message if exc.path else str(exc)
        return ApiError(422, message, field=path, kind="spec")
    return ApiError(422, str(exc), field=prefix, kind="infeasible")


def cap_exceeded(cap: str, limit: float, asked: float, what: str) -> ApiError:
    """A 422 naming the cap, its limit, what was asked, and how to raise it."""
    flag = CAP_FLAGS[cap]
    shown = f"{limit:,.0f}" if float(limit).is_integer() else f"{limit:g}"
    asked_text = f"{asked:,.0f}" if float(asked).is_integer() else f"{asked:g}"
    return ApiError(
        422,
        f"{what}: {asked_text} exceeds this server's cap of {shown}; start it with "
        f"`superscale web {flag} N` to raise it",
        field="",
        kind="cap",
        cap=cap,
        limit=limit,
        flag=flag,
    )
