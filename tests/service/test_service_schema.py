"""Schemathesis against the OpenAPI schema: no generated body, path or query gets a 5xx
(or hangs). Bounded: a fixed number of examples per operation, so CI stays fast."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from service_support import SMALL  # noqa: E402

from superscale.service import create_app  # noqa: E402

EXAMPLES_PER_OPERATION = 25

APP = create_app(SMALL)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    # Fuzzing only: the coverage phase alone sends ~2,500 requests per operation here.
    CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
    SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        case.call_and_validate(checks=[not_a_server_error])
