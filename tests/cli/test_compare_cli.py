"""`superscale compare` in-process: its numbers are `simulate`'s, cluster by cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from superscale.cli import main
from superscale.compare import cluster_value

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama3-70b-metax-1k-compare.yaml"
CLUSTERS = ["metax-cube-1k", "metax-c550-8x:128", "metax-c500-1k"]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_equals_simulate_for_each_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _json(capsys, ["compare", str(EXAMPLE), "--clusters", ",".join(CLUSTERS), "--json"])
    assert [c["cluster"] for c in data["clusters"]] == CLUSTERS
    raw = yaml.safe_load(EXAMPLE.read_text())
    for column in data["clusters"]:
        assert column["error"] is None
        path = tmp_path / EXAMPLE.name  # same stem, so the same run name
        path.write_text(yaml.safe_dump({**raw, "cluster": cluster_value(column["cluster"])}))
        assert column["result"] == _json(capsys, ["simulate", str(path), "--json"])
    first, servers = data["clusters"][0], data["clusters"][1]
    assert first["floor_ratio"] == 1.0 and servers["floor_ratio"] > 2  # 128-GPU cabinets win
    for key in ("facility", "reliability", "cost"):
        assert key in first["result"]
    assert first["result"]["reliability"]["wall_clock_days"] > 0  # training.tokens is set


def test_a_plan_that_does_not_divide_a_cluster_is_reported_in_its_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["compare", str(EXAMPLE), "--clusters", "metax-cube-1k,dgx-h100:3"]
    data = _json(capsys, [*argv, "--json"])
    bad = data["clusters"][1]
    assert bad["result"] is None and "does not divide" in bad["error"]
    assert data["clusters"][0]["result"] is not None
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # the error wraps inside its cell
    assert "does not divide" in out and "floor area" in out and "interruptions/day" in out


@pytest.mark.parametrize(
    ("clusters", "needle"),
    [
        ("metax-cube-2k", "unknown cluster"),
        ("dgx-h10:8", "unknown system"),
        ("dgx-h100:zero", "positive integer"),
        (",", "at least one cluster"),
    ],
)
def test_bad_cluster_names_fail_in_one_line(
    clusters: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(EXAMPLE), "--clusters", clusters]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_tokens_and_missing_file_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(EXAMPLE), "--clusters", "metax-cube-1k", "--tokens", "-1"]) == 2
    assert main(["compare", str(tmp_path / "nope.yaml"), "--clusters", "metax-cube-1k"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp.png"
    argv = ["compare", str(EXAMPLE), "--clusters", "metax-cube-1k,metax-c500-1k"]
    assert main([*argv, "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bar chart written" in capsys.readouterr().out


def test_plot_without_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["compare", str(EXAMPLE), "--clusters", "metax-cube-1k", "--plot"]
    assert main([*argv, str(tmp_path / "x.png")]) == 2
    assert "needs matplotlib" in capsys.readouterr().err


def test_simulate_prints_the_facility_block(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "facility, reliability and cost" in out
    assert "interruptions/day" in out and "goodput" in out and "days to train" in out


def test_cluster_names_catalog_system_count_or_one_system() -> None:
    assert cluster_value("metax-cube-1k") == "metax-cube-1k"
    assert cluster_value("metax-c550-8x:128")["count"] == 128
    assert cluster_value("metax-cube-128") == {
        "name": "metax-cube-128",
        "system": "metax-cube-128",
        "count": 1,
    }
