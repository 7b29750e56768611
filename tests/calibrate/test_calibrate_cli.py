"""`superscale calibrate` end to end on the CPU (--quick): it writes a profile, the simulator
loads it, and `--check` prints measured and predicted step time with the error. Bad input
exits 2 with one line. Wall-clock figures are not asserted here (benchmarks/ does that)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from superscale.calibrate.check import apply_profile
from superscale.cli import main
from superscale.hardware.profile import load_profile
from superscale.pipeline import simulate
from superscale.scenario import load_scenario

torch = pytest.importorskip("torch", reason="calibrate needs the [torch] extra (make test has it)")


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calibrate") / "cpu.yaml"
    assert main(["calibrate", "--device", "cpu", "--quick", "--out", str(out)]) == 0
    return out


def test_calibrate_writes_a_profile_the_simulator_loads(quick_profile: Path) -> None:
    profile = load_profile(quick_profile)
    assert profile.device.kind == "cpu"
    assert profile.device.software["torch"] == torch.__version__
    assert profile.device.date and profile.device.host
    assert profile.matmul["bf16"] and profile.memory and profile.attention["bf16"]
    assert all(p.tflops > 0 for p in profile.matmul["bf16"])
    scenario = load_scenario(
        {
            "model": {
                "name": "t",
                "layers": 2,
                "hidden": 256,
                "heads": 4,
                "ffn_hidden": 704,
                "vocab": 1000,
            },
            "cluster": {"system": "dgx-h100", "count": 1},
            "training": {"seq_len": 256, "global_batch": 8},
        }
    )
    result = simulate(apply_profile(scenario, profile))
    assert result.step_time_s > 0
    assert result.step_time_s != simulate(scenario).step_time_s


def test_check_prints_measured_predicted_and_error(
    quick_profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "calibrate",
            "--check",
            "--quick",
            "--profile",
            str(quick_profile),
            "--steps",
            "2",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["measured_step_s"] > 0 and report["predicted_step_s"] > 0
    expected = 100 * (report["predicted_step_s"] - report["measured_step_s"])
    assert report["error_pct"] == pytest.approx(expected / report["measured_step_s"])
    assert report["measured_peak_gib"] >= 0 and report["predicted_peak_gib"] > 0
    assert report["model"]["params"] > 1e6


def test_check_table(quick_profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["calibrate", "--check", "--quick", "--profile", str(quick_profile), "--steps", "1"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "step time" in out and "measured" in out and "predicted" in out and "%" in out


def test_timer_uses_fresh_inputs_and_the_median() -> None:
    from superscale.calibrate.bench import Timer

    made: list[int] = []

    def make() -> int:
        made.append(len(made))
        return made[-1]

    seen: list[int] = []
    timer = Timer(torch.device("cpu"), warmup=2, repeats=5)
    assert timer.median_s(make, seen.append) >= 0
    assert made == list(range(7)) and seen == list(range(7))


def test_collectives_on_two_cpu_processes() -> None:
    from superscale.calibrate.collective import measure_collectives

    points = measure_collectives(
        torch.device("cpu"), ranks=2, sizes=(4096, 65536), warmup=1, repeats=2
    )
    assert {p["collective"] for p in points} == {"all_reduce", "all_gather"}
    assert all(p["ranks"] == 2 and p["bus_gb_per_s"] > 0 for p in points)


def _bad_profile(tmp: Path) -> list[str]:
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump({"format": "superscale-profile/1", "matmul": {}}))
    return ["calibrate", "--check", "--profile", str(path)]


@pytest.mark.parametrize(
    ("args", "keyword"),
    [
        (lambda t: ["calibrate", "--device", "tpu"], "unknown device 'tpu'"),
        (lambda t: ["calibrate", "--device", "cuda:7"], "cuda"),
        (lambda t: ["calibrate", "--device", "cpu:3"], "one device"),
        (_bad_profile, "bad.yaml"),
        (lambda t: ["calibrate", "--check", "--profile", str(t / "none.yaml")], "cannot read"),
        (lambda t: ["calibrate", "--profile", str(t / "x.yaml")], "--check"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: object, keyword: str
) -> None:
    assert callable(args)
    if keyword == "cuda" and torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert main(args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert keyword in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_core_import_is_torch_free() -> None:
    code = (
        "import sys, superscale, superscale.cli, superscale.costs.compute, "
        "superscale.hardware.profile, superscale.calibrate; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
