"""Request bodies, and the checks every body passes before the library sees it.

Bodies are frozen specs (`superscale.spec.Spec`: unknown keys are errors that suggest the
nearest key) whose `scenario` field is the library's own `Scenario`, so the OpenAPI schema
documents the scenario format. A scenario may also be sent as YAML text; it is parsed with
the same alias limit as a scenario file.

Scenarios come inline: no request may name a file on the server. `model.hf_config` (a path)
is refused; a Hugging Face `config.json` is pasted into `POST /api/hf-config`, whose model
is then inlined. A serving trace comes as `trace_csv` text, never as a path, and an inline
chip's name may not hold a path separator (the compute model looks its measured profile up
by name).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, WithJsonSchema

from superscale.errors import SpecError
from superscale.scenario import Scenario, _check_yaml_limits
from superscale.service.errors import ApiError
from superscale.spec import Spec, spec_error_from

SpecT = TypeVar("SpecT", bound=Spec)

# A search replaces the scenario's plan, so its scenario is validated by the search itself
# (a plan that would not divide the cluster is not an error there); the schema is Scenario's.
ScenarioMapping = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "x-scenario": True,  # app._openapi points this at the Scenario schema
            "description": "A scenario; its parallel section is what the search replaces.",
        }
    ),
]


class ScenarioRequest(Spec):
    """A scenario (model, cluster, training or serving, parallel, facility)."""

    scenario: Scenario = Field(description="The scenario, as a mapping or its YAML text.")
    name: str = Field("web", max_length=200, description="The run's name in the result.")


class SimulateRequest(ScenarioRequest):
    """`superscale simulate`: one training step."""

    engine: Literal["analytical", "event"] = Field(
        "analytical", description="analytical (closed form) or event (discrete events)."
    )
    ranks: Literal["stage", "all"] = Field(
        "stage", description="Event engine: one rank per stage, or every GPU."
    )
    trace: bool = Field(False, description="Event engine: return a Chrome/Perfetto trace.")


class SearchRequest(Spec):
    """`superscale search`: the fastest plans that fit."""

    scenario: ScenarioMapping
    gpus: str | None = Field(
        None, max_length=40, description="N or A..B (powers of two); default the cluster's."
    )
    systems: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None, max_length=32, description="Catalog systems to try; default the cluster's."
    )
    top: int = Field(10, ge=1, description="How many of the fastest plans to refine and show.")


class CompareRequest(ScenarioRequest):
    """`superscale compare`: one training workload on several clusters."""

    clusters: list[Annotated[str, Field(max_length=100)]] = Field(
        min_length=1, max_length=64, description="Catalog clusters or SYSTEM:COUNT."
    )
    tokens: float | None = Field(None, description="Tokens to train (overrides training.tokens).")


class CollectiveRequest(Spec):
    """`superscale collective`: an nccl-tests-style sweep."""

    system: str | None = Field(None, max_length=100, description="Catalog system.")
    count: int = Field(1, ge=1, description="How many systems.")
    cluster: str | None = Field(None, max_length=100, description="Catalog cluster instead.")
    op: str = Field("all_reduce", max_length=40, description="The collective.")
    gpus: int | None = Field(None, description="Group size; default every GPU.")
    min_bytes: str = Field("8", max_length=20, description="Smallest size (8, 1K, 64M, ...).")
    max_bytes: str = Field("8G", max_length=20, description="Largest size.")
    step_factor: int = Field(2, ge=2, le=1024, description="Size multiplier per row.")
    algo: str = Field("auto", max_length=40, description="auto or one algorithm.")
    dtype: str = Field("float", max_length=20, description="Element type for the count.")


class ServeRequest(ScenarioRequest):
    """`superscale serve`: simulate a deployment."""

    trace_csv: str | None = Field(
        None,
        description="With serving.workload.arrival 'trace': the CSV (arrival_s, "
        "prompt_tokens, output_tokens) itself; the service reads no files.",
    )


class ServePlanRequest(ScenarioRequest):
    """`superscale serve-plan`: fewest GPUs serving a rate within SLOs."""

    rate_per_s: float = Field(gt=0, description="Requests per second to serve.")
    ttft_p99_s: float | None = Field(None, gt=0, description="TTFT p99 target, s.")
    tpot_p99_s: float | None = Field(None, gt=0, description="TPOT p99 target, s.")
    requests: int = Field(1500, ge=100, description="Requests per capacity simulation.")
    disaggregation: bool = Field(True, description="Also try prefill/decode pools.")


class HfConfigRequest(Spec):
    """A pasted Hugging Face `config.json`, to become an inline model."""

    config: dict[str, Any] = Field(description="The JSON object of a config.json.")
    name: str = Field("hf-model", max_length=100, description="The model's name.")


_SEPARATORS = re.compile(r"[/\\\x00]")


def _scenario_from_text(text: str) -> Any:
    try:
        _check_yaml_limits(text, "scenario")
    except SpecError as exc:
        raise ApiError(422, str(exc), field="scenario", kind="spec") from None
    data = yaml.safe_load(text)
    if data is None:
        raise ApiError(
            422, "scenario is empty; a scenario needs model, cluster and training", field="scenario"
        )
    return data


def forbid_files(scenario: Any) -> None:
    """Refuse the scenario fields that would make the server read a file."""
    if not isinstance(scenario, dict):
        return
    model = scenario.get("model")
    if isinstance(model, dict) and "hf_config" in model:
        raise ApiError(
            422,
            "the service reads no files on the server: paste the config.json into "
            "POST /api/hf-config and put the model it returns inline",
            field="scenario.model.hf_config",
            kind="spec",
        )
    cluster = scenario.get("cluster")
    system = cluster.get("system") if isinstance(cluster, dict) else None
    chip = system.get("chip") if isinstance(system, dict) else None
    name = chip.get("name") if isinstance(chip, dict) else None
    if isinstance(name, str) and _SEPARATORS.search(name):
        raise ApiError(
            422,
            f"chip name '{name[:60]}' may not contain '/' or '\\'",
            field="scenario.cluster.system.chip.name",
            kind="spec",
        )


def validation_error(exc: ValidationError) -> ApiError:
    """A pydantic error as a 422 with the library's words, its path and allowed values."""
    spec = spec_error_from(exc)
    extra: dict[str, Any] = {}
    first = exc.errors(include_url=False)[0]
    if first["type"] == "literal_error":
        expected = str((first.get("ctx") or {}).get("expected", ""))
        extra["allowed"] = re.findall(r"'([^']*)'", expected) or re.findall(r"\w+", expected)
    return ApiError(422, spec.message, field=spec.path, kind="spec", **extra)


def parse(model: type[SpecT], raw: Any) -> SpecT:
    """Validate a decoded JSON body into `model` (ApiError 422 naming the field if not)."""
    if not isinstance(raw, dict):
        raise ApiError(
            422, f"the request body must be a JSON object, got {type(raw).__name__}", field=""
        )
    body = dict(raw)
    if isinstance(body.get("scenario"), str):
        body["scenario"] = _scenario_from_text(body["scenario"])
    if "scenario" in body:
        scenario = body["scenario"]
        if scenario is not None and not isinstance(scenario, dict):
            raise ApiError(
                422,
                "a scenario must be a mapping with keys model, cluster, training, parallel; "
                f"got {type(scenario).__name__}",
                field="scenario",
                kind="spec",
            )
        forbid_files(scenario)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    except SpecError as exc:  # a validator that raised the library's error directly
        raise ApiError(422, exc.message, field=exc.path, kind="spec") from None
