"""Every endpoint through httpx in-process: the same numbers as the library, JSON errors
with the field path and the allowed values, and every work cap naming its flag."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from service_support import SMALL, make_client

from superscale import load_scenario
from superscale.pipeline import simulate
from superscale.service import Settings

EXAMPLES = Path(__file__).parents[2] / "examples"


def wait(client: Any, job: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def test_catalog_show_and_health(client: Any) -> None:
    counts = client.get("/api/catalog").json()
    assert {"chips", "links", "systems", "clusters", "models"} <= set(counts)
    chips = client.get("/api/catalog/chips").json()
    assert any(c["name"] == "h100-sxm" for c in chips)
    shown = client.get("/api/show/dgx-h100").json()
    assert shown["kind"] == "system" and shown["derived"]["gpus"] == 8
    bad = client.get("/api/show/dgx-h10")
    assert bad.status_code == 404 and "did you mean 'dgx-h100'" in bad.json()["error"]
    wrong = client.get("/api/catalog/chipz").json()
    assert "chips" in wrong["allowed"]
    health = client.get("/api/health").json()
    assert health["settings"]["max_plans"] == SMALL.max_plans


def test_simulate_matches_the_library(client: Any, training: dict[str, Any]) -> None:
    got = client.post("/api/simulate", json={"scenario": training}).json()
    want = simulate(load_scenario(training), name="web").to_json()
    for key in ("step_time_s", "tokens_per_s", "mfu", "hfu", "gpus", "fits"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["breakdown_s"] == pytest.approx(want["breakdown_s"])
    assert got["placement"]["tp"]["size"] == 8
    assert got["hierarchy"]["gpus_per_system"] == 8


def test_simulate_accepts_yaml_text_and_returns_a_trace(
    client: Any, training: dict[str, Any]
) -> None:
    body = {"scenario": yaml.safe_dump(training), "engine": "event", "trace": True}
    got = client.post("/api/simulate", json=body).json()
    assert got["engine"] == "event"
    events = got["trace"]["traceEvents"]
    assert any(e["ph"] == "X" for e in events) and any(e["ph"] == "M" for e in events)


def test_check_and_hf_config(client: Any, training: dict[str, Any]) -> None:
    check = client.post("/api/check", json={"scenario": training}).json()
    assert check["dp"] == 1 and check["groups"]["tp"]["where"].startswith("inside")
    config = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 1024,
        "vocab_size": 1000,
    }
    model = client.post("/api/hf-config", json={"config": config, "name": "tiny"}).json()["model"]
    inline = {**training, "model": model, "parallel": {"tp": 4, "pp": 2}}
    assert client.post("/api/simulate", json={"scenario": inline}).status_code == 200
    bad = client.post("/api/hf-config", json={"config": {"model_type": "gpt9"}})
    assert bad.status_code == 422 and "model_type" in bad.json()["field"] + bad.json()["error"]


def test_search_job_progress_and_result(client: Any, training: dict[str, Any]) -> None:
    start = client.post("/api/search", json={"scenario": training, "top": 3})
    assert start.status_code == 202
    job = wait(client, start.json())
    assert job["state"] == "done", job
    result = job["result"]
    assert job["progress"]["done"] == job["progress"]["total"] > 0
    assert job["progress"]["plans_per_s"] > 0
    assert len(result["top"]) == 3 and result["top"][0]["event"]["step_time_s"] > 0
    assert result["pareto"]


def test_search_cancel_and_time_limit(training: dict[str, Any]) -> None:
    slow = Settings(job_workers=1, queue_limit=4, job_timeout_s=0.05, search_batch_size=64)
    with make_client(slow) as client:
        job = wait(client, client.post("/api/search", json={"scenario": training}).json())
        assert job["state"] == "cancelled"
        assert "exceeded 0.05 s" in job["message"] and "--job-timeout" in job["message"]
    with make_client(Settings(job_workers=1, search_batch_size=64)) as client:
        job = client.post("/api/search", json={"scenario": training}).json()
        cancelled = client.delete(f"/api/jobs/{job['id']}").json()
        assert cancelled["state"] == "cancelled" and cancelled["result"] is None
        assert client.get("/api/jobs/nope").status_code == 404


def test_queue_limit_is_a_429(training: dict[str, Any]) -> None:
    with make_client(Settings(job_workers=1, queue_limit=0, search_batch_size=64)) as client:
        first = client.post("/api/search", json={"scenario": training}).json()
        second = client.post("/api/search", json={"scenario": training})
        client.delete(f"/api/jobs/{first['id']}")
        assert second.status_code == 429
        assert second.json()["cap"] == "queue_limit" and "--queue-limit" in second.json()["error"]


def test_compare_collective_serve_and_validate(
    client: Any, training: dict[str, Any], serving: dict[str, Any]
) -> None:
    body = {"scenario": training, "clusters": ["dgx-h100:2", "hgx-h200:2", "dgx-h100:3"]}
    columns = client.post("/api/compare", json=body).json()["clusters"]
    assert columns[0]["result"]["step_time_s"] > 0 and columns[1]["result"] is not None
    assert "does not divide" in columns[2]["error"]
    sweep = client.post(
        "/api/collective", json={"system": "dgx-h100", "min_bytes": "1M", "max_bytes": "16M"}
    ).json()
    assert len(sweep["rows"]) == 5 and sweep["gpus"] == 8
    served = client.post("/api/serve", json={"scenario": serving}).json()
    assert served["completed"] == 400 and served["latency_s"]["ttft"]["p99"] > 0
    plan = {"scenario": serving, "rate_per_s": 10, "ttft_p99_s": 2, "requests": 200}
    job = wait(client, client.post("/api/serve-plan", json=plan).json(), 60)
    assert job["state"] == "done" and job["result"]["best"]["total_gpus"] >= 1
    first = client.get("/api/validate?source=megatron_sc21_t1")
    assert first.status_code == 202  # predicted once per server, as a job
    assert wait(client, first.json())["state"] == "done"
    rows = client.get("/api/validate?source=megatron_sc21_t1").json()["rows"]
    assert rows and all("error_pct" in r for r in rows)
    assert {r["source_key"] for r in rows} == {"megatron_sc21_t1"}
    unknown = client.get("/api/validate?source=nope").json()
    assert "megatron_sc21_t1" in unknown["allowed"]


def test_serve_trace_comes_inline(client: Any, serving: dict[str, Any]) -> None:
    workload = {"arrival": "trace", "trace": "requests.csv"}
    scenario = {**serving, "serving": {**serving["serving"], "workload": workload}}
    refused = client.post("/api/serve", json={"scenario": scenario}).json()
    assert "reads no files" in refused["error"] and refused["field"].endswith("workload.trace")
    csv = "arrival_s,prompt_tokens,output_tokens\n0,100,20\n0.1,200,30\n"
    served = client.post("/api/serve", json={"scenario": scenario, "trace_csv": csv}).json()
    assert served["completed"] == 2


def _scenario(base: dict[str, Any], **patch: Any) -> dict[str, Any]:
    return {**base, **patch}


# The CLI's bad-input table (tests/cli/test_bad_input.py), as request bodies.
BAD = [
    ("unknown key", {"parallel": {"tpp": 8}}, "did you mean 'tp'", "scenario.parallel"),
    ("wrong type", {"training": {"seq_len": "long", "global_batch": 16}}, "", "seq_len"),
    ("negative size", {"cluster": {"system": "dgx-h100", "count": -2}}, "", "count"),
    ("zero size", {"parallel": {"tp": 0}}, "", "parallel.tp"),
    ("does not divide", {"parallel": {"tp": 8, "pp": 3}}, "does not divide", "scenario"),
    ("unknown model", {"model": "llama3-8"}, "did you mean 'llama3-8b'", "scenario.model"),
    ("unknown system", {"cluster": {"system": "dgx-h10", "count": 2}}, "dgx-h100", "system"),
    ("unknown cluster", {"cluster": "h100-16"}, "did you mean 'h100-16k'", "scenario.cluster"),
    ("a file on the server", {"model": {"hf_config": "/etc/passwd"}}, "reads no files", "hf"),
    ("a path as chip name", {"cluster": {"system": {"chip": {"name": "../x"}}}}, "'/'", "chip"),
]


@pytest.mark.parametrize(("case", "patch", "words", "field"), BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("path", ["/api/check", "/api/simulate"])
def test_bad_scenarios_are_422_with_the_field(
    client: Any,
    training: dict[str, Any],
    path: str,
    case: str,
    patch: dict[str, Any],
    words: str,
    field: str,
) -> None:
    response = client.post(path, json={"scenario": _scenario(training, **patch)})
    assert response.status_code == 422, response.text
    body = response.json()
    assert words.lower() in body["error"].lower() and field in body["field"], body
    assert "Traceback" not in response.text


def _alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 7) + "]")
    return "\n".join(lines) + "\n"


RAW = [
    (
        "malformed YAML",
        {"scenario": "model: [llama3-70b\ncluster: {system: dgx-h100\n"},
        "malformed",
    ),
    ("empty YAML", {"scenario": ""}, "empty"),
    ("alias bomb", {"scenario": _alias_bomb()}, "alias"),
    ("list instead of mapping", {"scenario": ["model", "cluster"]}, "mapping"),
    ("engine", {"engine": "quantum"}, "analytical"),
    ("unknown body key", {"enginee": "event"}, "did you mean 'engine'"),
]


@pytest.mark.parametrize(("case", "patch", "words"), RAW, ids=[r[0] for r in RAW])
def test_bad_bodies(
    client: Any, training: dict[str, Any], case: str, patch: Any, words: str
) -> None:
    response = client.post("/api/simulate", json={"scenario": training, **patch})
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]


def test_malformed_json_huge_bodies_and_numbers(client: Any) -> None:
    for content, words in (
        (b"{", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "empty"),
        (b'{"scenario": NaN}', "finite"),
        (b'{"scenario": 1e999}', "out of range"),
        (b"[" * 50_000 + b"]" * 50_000, "nests too deeply"),
    ):
        response = client.post("/api/simulate", content=content)
        assert response.status_code == 422 and words in response.json()["error"], content[:20]
    huge = client.post("/api/simulate", content=b" " * (SMALL.max_body_bytes + 1))
    assert huge.status_code == 413 and "--max-body-bytes" in huge.json()["error"]


def test_caps_name_their_flag(
    client: Any, training: dict[str, Any], serving: dict[str, Any]
) -> None:
    big = _scenario(
        training,
        cluster={"system": "dgx-h100", "count": 1024},
        training={"seq_len": 4096, "global_batch": 512},
    )
    cases = [
        ("/api/simulate", {"scenario": big}, "max_gpus"),
        ("/api/search", {"scenario": training, "top": 11}, "max_top"),
        ("/api/search", {"scenario": training, "gpus": "16..2048"}, "max_plans"),
        (
            "/api/search",
            {"scenario": _scenario(training, training={"seq_len": 4096, "global_batch": 10**5})},
            "max_spans",
        ),
        (
            "/api/simulate",
            {"scenario": _scenario(training, training={"seq_len": 4096, "global_batch": 10**6}),
             "engine": "event"},
            "max_spans",
        ),
        (
            "/api/serve",
            {"scenario": {**serving, "serving": {**serving["serving"], "workload": {
                "arrival": "offline", "requests": 10**6}}}},
            "max_requests",
        ),
        (
            "/api/serve",
            {"scenario": {**serving, "serving": {**serving["serving"],
                "scheduler": {"max_batch_tokens": 1}, "workload": {
                    "arrival": "offline", "requests": 1000, "prompt_tokens": 100_000}}}},
            "max_requests",  # prefill iterations: a hang in chunks of one token
        ),
    ]  # fmt: skip
    for path, body, cap in cases:
        response = client.post(path, json=body)
        data = response.json()
        assert response.status_code == 422 and data["cap"] == cap, (path, data)
        assert f"superscale web --{cap.replace('_', '-')} N" in data["error"]


def test_openapi_documents_the_scenario(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert {"Scenario", "ModelSpec", "Cluster", "SimulateRequest", "Error"} <= set(components)
    model = components["Scenario"]["properties"]["model"]
    assert {"type": "string", "description": "A catalog name."} in model["anyOf"]
    ref = schema["paths"]["/api/simulate"]["post"]["requestBody"]["content"]
    assert ref["application/json"]["schema"]["$ref"].endswith("/SimulateRequest")


def test_the_page_is_served_and_self_contained(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "superscale" in page.text
    for name in ("app.js", "charts.js", "style.css"):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text and "cdn" not in text.lower()
    assert "https://" not in page.text and "http://" not in page.text


def test_results_are_json_even_with_non_finite_numbers(
    client: Any, training: dict[str, Any]
) -> None:
    # A plan that does not fit still answers with plain JSON numbers (never NaN / inf).
    scenario = _scenario(training, parallel={"tp": 1, "pp": 1, "micro_batch": 2})
    response = client.post("/api/simulate", json={"scenario": scenario})
    assert response.status_code == 200
    json.loads(response.text)  # strict: no NaN or Infinity tokens
