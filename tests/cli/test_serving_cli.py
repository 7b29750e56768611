"""`superscale serve`, `serve-plan` and `validate --inference` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superscale.cli import main
from superscale.cli.app import console

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("serve-*.yaml"))
SMALL = """
model: llama3-8b
cluster: {system: dgx-h100, count: 1}
serving:
  plan: {tp: 1, dp: 1}
  workload: {arrival: poisson, rate_per_s: 5, requests: 200, prompt_tokens: 300,
             output_tokens: 50}
  slo: {ttft_p99_s: 1.0, tpot_p99_s: 0.05}
"""


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_serve_every_example(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(example), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] and data["completed"] > 0
    assert {"ttft", "tpot", "e2e"} <= set(data["latency_s"])
    assert {"p50", "p90", "p99"} <= set(data["latency_s"]["ttft"])
    assert data["throughput"]["output_tokens_per_s_per_gpu"] > 0


def test_serve_shows_steady_state_beside_the_offered_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SMALL)
    assert main(["serve", str(path), "--json"]) == 0
    steady = json.loads(capsys.readouterr().out)["steady_state"]
    # 200 completions: the 20th to the 180th (indices 19 and 180 of 0..199), 161 gaps
    assert steady["requests"] == 161
    assert steady["requests_per_s"] == pytest.approx(5, rel=0.25)  # Poisson at 5/s
    assert main(["serve", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "steady " in out and "offered 5.00 req/s" in out
    assert "the 10th to 90th percentile completion" in out


def test_serve_table_and_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reqs.csv").write_text(
        "arrival_s,prompt_tokens,output_tokens\n0,100,10\n0.1,200,20\n0.2,50,5\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        SMALL.replace(
            "{arrival: poisson, rate_per_s: 5, requests: 200, prompt_tokens: 300,\n"
            "             output_tokens: 50}",
            "{arrival: trace, trace: reqs.csv}",
        )
    )
    assert main(["serve", str(path)]) == 0
    out = capsys.readouterr().out
    assert "time to first token" in out and "3 requests" in out


def test_serve_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SMALL)
    args = ["serve-plan", str(path), "--rate", "20", "--ttft-p99", "1", "--tpot-p99", "0.05"]
    assert main([*args, "--requests", "200", "--no-disaggregation", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"]["total_gpus"] >= 1 and data["pareto_front"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (SMALL.replace("tp: 1, dp: 1", "tp: 3"), "heads"),
        (SMALL.replace("rate_per_s: 5, ", ""), "rate_per_s"),
        (SMALL.replace("plan:", "plam:"), "plan"),
        (SMALL.replace("llama3-8b", "llama3-405b"), "does not fit"),
        (SMALL.replace("arrival: poisson", "arrival: trace, trace: nope.csv"), "nope.csv"),
    ],
)
def test_bad_serving_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code = main(["serve", str(path)])
    captured = capsys.readouterr()
    if words == "does not fit":
        assert code == 0 and words in captured.out
        return
    assert code == 2
    assert words in captured.err and "Traceback" not in captured.err


def test_serve_plan_needs_an_slo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The scenario's serving.slo is the default; with none there and no flag, an error.
    path = tmp_path / "s.yaml"
    path.write_text(SMALL.replace("  slo: {ttft_p99_s: 1.0, tpot_p99_s: 0.05}\n", ""))
    assert main(["serve-plan", str(path), "--rate", "2"]) == 2
    assert "SLO" in capsys.readouterr().err


def test_fp8_on_a100_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        SMALL.replace("dgx-h100", "dgx-a100").replace("serving:", "serving:\n  precision: fp8")
    )
    assert main(["serve", str(path)]) == 2
    err = capsys.readouterr().err
    assert "fp8" in err and "a100" in err


def test_validate_inference_tables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table per source (the model and unit in its title when the source has one),
    each row's figures uncropped in an 80-column terminal, then the error summary."""
    monkeypatch.setattr(console, "width", 80)
    assert main(["validate", "--inference"]) == 0
    out = capsys.readouterr().out
    assert "mlperf_inf_v41, Llama 2 70B, tokens/s per system: predicted vs published" in out
    assert "sglang_vs_vllm060: predicted vs published" in out
    assert "throughput rows" in out and "latency rows" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert all("%" in line for line in out.splitlines() if line.startswith("│  2"))


def test_validate_inference_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--inference", "--json", "--source", "sglang_vs_vllm060"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["rows"]) == 12 and data["summary"]["throughput"]["rows"] == 4
