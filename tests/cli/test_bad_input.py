"""Every kind of bad scenario file fails the same way: exit 2, one line on stderr, no traceback.

Table-driven: each case writes a file (or a directory, or nothing) into tmp_path and runs the
CLI in-process through `superscale.cli.main`. The line must name the problem (a keyword per
case), so a user can fix the file without reading code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from superscale.cli import app, main
from superscale.hardware.catalog import systems

BASE: dict[str, Any] = {
    "model": "llama3-70b",
    "cluster": {"system": "dgx-h100", "count": 2},
    "training": {"seq_len": 4096, "global_batch": 16, "precision": "bf16"},
    "parallel": {"tp": 8, "pp": 2},
}


def _registered_commands() -> set[str]:
    command = get_command(app)
    return set(getattr(command, "commands", {}))


# `simulate` is added by another module; run the bad inputs through it too once it exists.
VERBS = ["check"] + (["simulate"] if "simulate" in _registered_commands() else [])


def _scenario(**patch: Any) -> str:
    data = {**BASE, **patch}
    return yaml.safe_dump(data, sort_keys=False)


def _alias_bomb() -> str:
    # Billion laughs: 9 · 7^11 ≈ 18 billion strings if every alias were expanded.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 7) + "]")
    return "\n".join(lines) + "\n"


def _write(text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "scenario.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def _huge(tmp: Path) -> Path:
    path = tmp / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB on paper, nothing on disk
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "no-such-file.yaml"


def _directory(tmp: Path) -> Path:
    path = tmp / "a-directory.yaml"
    path.mkdir()
    return path


CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("unknown key", _write(_scenario(parallel={"tpp": 8, "pp": 2})), "did you mean 'tp'"),
    (
        "wrong type",
        _write(_scenario(training={"seq_len": "long", "global_batch": 16})),
        "training.seq_len",
    ),
    ("negative size", _write(_scenario(cluster={"system": "dgx-h100", "count": -2})), "count"),
    ("zero size", _write(_scenario(parallel={"tp": 0})), "parallel.tp"),
    (
        "tp·pp·cp does not divide the GPUs",
        _write(_scenario(parallel={"tp": 8, "pp": 3})),
        "does not divide",
    ),
    ("unknown model", _write(_scenario(model="llama3-70")), "did you mean 'llama3-70b'"),
    (
        "unknown system",
        _write(_scenario(cluster={"system": "dgx-h10", "count": 2})),
        "did you mean 'dgx-h100'",
    ),
    ("unknown cluster", _write(_scenario(cluster="h100-16")), "did you mean 'h100-16k'"),
    ("malformed YAML", _write("model: [llama3-70b\ncluster: {system: dgx-h100\n"), "malformed"),
    ("empty file", _write(""), "empty"),
    ("50 MB file", _huge, "MB"),
    ("alias bomb", _write(_alias_bomb()), "alias"),
    ("list instead of mapping", _write("- model\n- cluster\n"), "mapping"),
    ("missing file", _missing, "cannot read"),
    ("directory", _directory, "directory"),
]


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize(("case", "make", "keyword"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    verb: str,
    case: str,
    make: Callable[[Path], Path],
    keyword: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make(tmp_path)
    code = main([verb, str(path)])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{case}: exit {code}\n{err}"
    assert len(lines) == 1, f"{case}: expected one line on stderr, got:\n{err}"
    assert keyword.lower() in lines[0].lower(), f"{case}: {keyword!r} not in {lines[0]!r}"
    assert "Traceback" not in out + err


def test_tp_across_servers_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tp 16 on 8-GPU servers is valid but unwise: tensor-parallel traffic leaves NVLink.
    path = _write(_scenario(parallel={"tp": 16, "pp": 1}))(tmp_path)
    nic = systems().get("dgx-h100").nics.link.display_name
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    flat = " ".join(out.split())  # rich wraps long lines at the console width
    assert "warning: tp=16" in flat
    assert f"crosses {nic}" in flat
    assert not err.strip()
    assert main(["check", "--json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["groups"]["tp"]["level"] == "scale-out"
    assert any(nic in w and "tp=16" in w for w in report["warnings"])
