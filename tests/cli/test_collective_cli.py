"""`superscale collective` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superscale.cli import main


def test_sweep_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "collective",
        "--system",
        "dgx-h100",
        "--min-bytes",
        "1M",
        "--max-bytes",
        "1G",
        "-f",
        "4",
        "--json",
    ]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    sizes = [r["size_bytes"] for r in data["rows"]]
    assert sizes[0] == 2**20 and sizes[-1] == 2**30 and len(sizes) == 6
    assert {"ring", "nvls"} <= set(data["algorithms"])
    big = data["rows"][-1]["algos"]["ring"]
    assert big["busbw_gb_per_s"] == pytest.approx(big["algbw_gb_per_s"] * 2 * 7 / 8)


def test_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "busbw.png"
    args = [
        "collective",
        "--system",
        "metax-cube-128",
        "--op",
        "all_to_all",
        "--min-bytes",
        "1K",
        "--max-bytes",
        "64M",
        "-f",
        "16",
        "--plot",
        str(png),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "busbw" in out and "load_store" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--system", "dgx-h10"], "did you mean 'dgx-h100'"),
        (["--system", "dgx-h100", "--op", "allreduce"], "all_reduce"),
        (["--system", "dgx-h100", "--algo", "magic"], "allowed: auto"),
        (["--system", "dgx-h100", "--max-bytes", "lots"], "not a size"),
        (["--system", "dgx-h100", "--gpus", "3"], "--gpus"),
        (["--system", "dgx-h100", "--min-bytes", "1G", "--max-bytes", "1M"], "exceeds"),
        ([], "--system"),
    ],
)
def test_bad_options(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collective", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
