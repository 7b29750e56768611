"""`superscale simulate` and `validate` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superscale.cli import main
from superscale.cli.app import console
from superscale.report.result import BREAKDOWN_KEYS

EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")
    if not p.name.startswith("serve-")  # serving scenarios: tests/cli/test_serving_cli.py
)
RESULT_KEYS = {
    "step_time_s",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "model_tflops_per_gpu",
    "hardware_tflops_per_gpu",
    "mfu",
    "hfu",
    "gpus",
    "fits",
    "memory",
    "breakdown_s",
}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_simulate_every_example(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(example), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= RESULT_KEYS
    assert set(BREAKDOWN_KEYS) == set(data["breakdown_s"])
    assert {
        "peak_gib_per_gpu",
        "params_gib",
        "grads_gib",
        "optimizer_gib",
        "activations_gib",
    } <= set(data["memory"])
    assert 0 < data["mfu"] < 1 and data["step_time_s"] > 0


def test_simulate_table_shows_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(EXAMPLES[0])]) == 0
    out = capsys.readouterr().out
    assert "where the step goes" in out and "pipeline bubble" in out and "MFU" in out


def test_plan_that_does_not_fit_is_a_clear_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(
        "model: llama3-405b\ncluster: {system: dgx-h100, count: 1}\n"
        "training: {seq_len: 8192, global_batch: 8}\nparallel: {tp: 8}\n"
    )
    assert main(["simulate", str(path)]) == 0
    assert "does not fit" in capsys.readouterr().out


def test_precision_the_chip_lacks_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fp8.yaml"
    path.write_text(
        "model: llama3-8b\ncluster: {system: metax-c500-8x, count: 1}\n"
        "training: {seq_len: 4096, global_batch: 8, precision: fp8}\n"
    )
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "c500" in err and "fp8" in err and "Traceback" not in err


def test_unknown_engine_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(EXAMPLES[0]), "--engine", "magic"]) == 2
    assert "analytical" in capsys.readouterr().err


def test_validate_json_reports_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", "--source", "korthikanti22_t5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["overall"]["rows"] == 8
    assert all(r["error_pct"] is not None for r in data["rows"])


def test_validate_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "mean |error|" in out and "megatron_sc21_t1" in out


def test_validate_tables_fit_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One table per source, each row's GPU named, skipped rows listed with their reason,
    and nothing cropped or wider than an 80-column terminal."""
    monkeypatch.setattr(console, "width", 80)
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for source in ("megatron_sc21_t1", "nemo_2407", "megatron_bridge_25.11"):
        assert f"{source}: predicted vs published" in out
    assert "8 GB300" in out and "A100-80GB" in out  # the Bridge and Korthikanti GPUs
    assert "row 19 (530B (MT-NLG)) skipped: plan not published" in " ".join(out.split())
    assert main(["validate", "--engine", "both", "--source", "megatron_bridge_25.11"]) == 0
    both = capsys.readouterr().out
    assert "event err" in both and "+107.2%" in both  # the widest error, uncropped
    assert max(len(line) for line in both.splitlines()) <= 80


def test_validate_unknown_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--source", "nope"]) == 2
    assert "nemo_2407" in capsys.readouterr().err


def test_event_engine_and_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "step.json"
    assert (
        main(["simulate", str(EXAMPLES[0]), "--engine", "event", "--trace", str(trace), "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["engine"] == "event" and set(data) >= RESULT_KEYS
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" for e in events) and any(e["ph"] == "s" for e in events)


def test_trace_needs_the_event_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(EXAMPLES[0]), "--trace", str(tmp_path / "t.json")]) == 2
    assert "--engine event" in capsys.readouterr().err


def test_validate_with_event_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--engine", "event", "--source", "mcore_r080_weak", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["overall"]["rows"] == 9


def test_validate_both_engines_reports_each_apart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", "--engine", "both", "--source", "korthikanti22_t5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"analytical", "event"}
    for engine in data.values():
        assert engine["summary"]["overall"]["rows"] == 8
        assert (
            engine["summary"]["tuned"]["rows"] == 8 and engine["summary"]["held_out"]["rows"] == 0
        )
