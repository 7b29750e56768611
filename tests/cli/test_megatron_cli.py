"""`superscale simulate --from-megatron` in-process: the Megatron command line is the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superscale.cli import main

LLAMA3_8B = (
    "--num-layers 32 --hidden-size 4096 --ffn-hidden-size 14336 --num-attention-heads 32 "
    "--group-query-attention --num-query-groups 8 --kv-channels 128 --seq-length 8192 "
    "--position-embedding-type rope --normalization RMSNorm --swiglu "
    "--untie-embeddings-and-output-weights --disable-bias-linear --vocab-size 128256 --bf16 "
    "--tensor-model-parallel-size 1 --pipeline-model-parallel-size 1 --micro-batch-size 1 "
    "--global-batch-size 16384 --use-distributed-optimizer --overlap-grad-reduce "
    "--some-future-flag 7"
)
RESULT_KEYS = {"step_time_s", "tokens_per_s", "mfu", "memory", "breakdown_s", "fits", "gpus"}


def test_simulate_from_megatron_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--from-megatron", LLAMA3_8B, "--cluster", "h100-16k", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert set(data) >= RESULT_KEYS and data["gpus"] == 16384
    assert data["plan"]["zero"] == 1 and data["plan"]["dp"] == 16384
    assert "--some-future-flag 7" in captured.err  # ignored flags: a note on stderr


def test_system_and_count(capsys: pytest.CaptureFixture[str]) -> None:
    args = LLAMA3_8B.replace("16384", "64")
    code = main(["simulate", f"--from-megatron={args}", "--system", "dgx-h100", "--count", "8"])
    assert code == 0, capsys.readouterr().err
    assert "step time" in capsys.readouterr().out


def test_scenario_file_is_the_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(
        "model: llama3-8b\ncluster: {system: dgx-h100, count: 4}\n"
        "training: {seq_len: 4096, global_batch: 64}\n",
        encoding="utf-8",
    )
    args = "--tensor-model-parallel-size 2 --micro-batch-size 2 --bf16"
    assert main(["simulate", str(path), "--from-megatron", args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"] == 32 and data["plan"]["tp"] == 2 and data["plan"]["dp"] == 16


def test_bad_value_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = LLAMA3_8B.replace("--tensor-model-parallel-size 1", "--tensor-model-parallel-size eight")
    assert main(["simulate", "--from-megatron", args, "--cluster", "h100-16k"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--tensor-model-parallel-size" in err and "eight" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate"], "--from-megatron"),
        (["simulate", "--from-megatron", LLAMA3_8B], "--cluster"),
        (["simulate", "--cluster", "h100-16k", "x.yaml"], "--from-megatron"),
        (["simulate", "--from-megatron", LLAMA3_8B, "--count", "2"], "--system"),
    ],
)
def test_missing_pieces_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
