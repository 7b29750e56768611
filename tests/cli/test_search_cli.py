"""`superscale search` and `results`: JSON and tables, bad input, and kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from superscale.cli import main

TINY = """\
model: {name: tiny, layers: 2, hidden: 256, heads: 4, ffn_hidden: 1024, vocab: 1000}
cluster: {system: dgx-h100, count: 1}
training: {seq_len: 512, global_batch: 16}
"""
OTHER = TINY.replace("seq_len: 512", "seq_len: 1024")
MEGATRON = (
    "torchrun --nproc_per_node 8 pretrain_gpt.py --num-layers 2 --hidden-size 256 "
    "--num-attention-heads 4 --seq-length 512 --global-batch-size 16 --micro-batch-size 1 "
    "--bf16 --vocab-size 1000"
)
# Runs the CLI with each batch slowed down, so that a sweep can be killed part-way.
SLOW_CLI = """\
import sys, time
import superscale.search.evaluate as evaluate
fast = evaluate.evaluate_table
def slow(batch):
    time.sleep(0.15)
    return fast(batch)
evaluate.evaluate_table = slow
from superscale.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _search(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_search_json(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _search(capsys, str(tiny), "--top", "3")
    assert data["candidates"] == data["evaluated"] == data["evaluated_now"] > 100
    assert data["reused"] == 0
    assert data["pruned"]["tp does not divide the heads"] == 1
    assert len(data["top"]) == 3
    best = data["top"][0]
    assert best["fits"] and best["event"]["step_time_s"] > 0
    assert best["event"]["tokens_per_s"] >= data["top"][-1]["event"]["tokens_per_s"]
    gpus = [p["gpus"] for p in data["pareto"]]
    assert gpus == sorted(set(gpus)) == [8]


def test_search_range_of_systems(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _search(
        capsys, str(tiny), "--gpus", "8..16", "--systems", "dgx-h100,gb200-nvl72", "--top", "2"
    )
    assert data["clusters"] == ["1x dgx-h100", "2x dgx-h100"]
    assert any("gb200-nvl72" in note for note in data["notes"])
    tokens = [p["tokens_per_s"] for p in data["pareto"]]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_search_tables_and_results(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sweep.sqlite"
    assert main(["search", str(tiny), "--top", "2", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    for text in ("top 2 plans", "where each group lands", "pruned plans by reason", "Pareto"):
        assert text in out
    again = _search(capsys, str(tiny), "--db", str(db))
    assert again["evaluated_now"] == 0 and again["reused"] == again["candidates"]
    assert main(["results", str(db), "--top", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["records"] == again["candidates"] and data["model"]["name"] == "tiny"
    assert [r["key"] for r in data["top"]][:1] == [again["pareto"][-1]["key"]]
    assert main(["results", str(db)]) == 0
    assert "plans stored" in capsys.readouterr().out


def test_from_megatron(capsys: pytest.CaptureFixture[str]) -> None:
    data = _search(capsys, "--from-megatron", MEGATRON, "--top", "1")
    assert data["clusters"] == ["1x dgx-h100"] and data["top"][0]["fits"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "8..abc"], "--gpus"),
        (["--gpus", "64..8"], "--gpus"),
        (["--systems", "dgx-h10"], "did you mean 'dgx-h100'"),
        (["--backend", "slurm"], "unknown backend"),
        (["--top", "0"], "--top"),
    ],
)
def test_bad_input(
    tiny: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", str(tiny), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_databases(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "sweep.sqlite"
    _search(capsys, str(tiny), "--db", str(db), "--top", "1")
    other = tmp_path / "other.yaml"
    other.write_text(OTHER)
    assert main(["search", str(other), "--db", str(db)]) == 2
    assert "different scenario" in capsys.readouterr().err
    assert main(["results", str(tiny)]) == 2
    assert "not a superscale results database" in capsys.readouterr().err
    assert main(["results", str(tmp_path / "none.sqlite")]) == 2
    assert "No such file" in capsys.readouterr().err


def _stored_keys(db: Path) -> set[str]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {r[0] for r in conn.execute("SELECT key FROM results")}
    except sqlite3.Error:  # not created yet
        return set()


def _records(db: Path) -> dict[bytes, tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        columns = "step_time_s, tokens_per_s, mfu, peak_gib, fits, gpus, plan"
        return {r[0]: tuple(r[1:]) for r in conn.execute(f"SELECT key, {columns} FROM results")}


def test_kill_and_resume(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A clean run, through `python -m superscale` (the __main__ module).
    clean_db = tmp_path / "clean.sqlite"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = ["search", str(tiny), "--json", "--db", str(clean_db), "--top", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "superscale", *command],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    total = json.loads(done.stdout)["candidates"]
    assert len(_stored_keys(clean_db)) == total

    # The same sweep, slowed to 100-plan batches, killed with SIGKILL part-way.
    db = tmp_path / "sweep.sqlite"
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    args = ["search", str(tiny), "--json", "--db", str(db), "--top", "1", "--batch-size", "100"]
    proc = subprocess.Popen([sys.executable, str(script), *args], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(_stored_keys(db)) < 300:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    before = _records(db)
    assert 300 <= len(before) < total and len(before) % 100 == 0  # whole batches only

    # Run again: only the missing plans are evaluated, nothing is lost or duplicated.
    again = _search(capsys, str(tiny), "--db", str(db), "--top", "1")
    assert again["reused"] == len(before)
    assert again["evaluated_now"] == total - len(before)
    after = _records(db)
    assert after.items() >= before.items()  # what was stored is kept as it was
    assert after == _records(clean_db)  # the union is exactly a clean run's records
