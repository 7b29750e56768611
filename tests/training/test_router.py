"""The router's score, top-k and load-balancing kernels are priced (training/layer.py)."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.costs.compute import compute_time_s
from superscale.parallelism import resolve
from superscale.training.layer import ROUTER_BYTES_PER_SCORE, ROUTER_KERNELS
from superscale.training.lower import layer_pieces

SCENARIO: dict[str, Any] = {
    "model": "qwen3-30b-a3b",  # 128 experts, top 8, hidden 2048
    "cluster": {"system": "dgx-h100", "count": 1},
    "training": {"seq_len": 4096, "global_batch": 8, "precision": "bf16"},
    "parallel": {"tp": 1, "ep": 8, "micro_batch": 1, "zero": 1, "sequence_parallel": False},
}


def _router_ops() -> tuple[Any, Any, Any]:
    scenario = load_scenario(SCENARIO)
    pieces = layer_pieces(scenario, resolve(scenario))
    (fwd,) = [op for op in pieces.moe_fwd if op.name == "router_topk"]
    (bwd,) = [op for op in pieces.moe_bwd if op.name == "router_topk.bwd"]
    return scenario, fwd, bwd


def test_router_kernels_read_and_write_every_score_by_hand() -> None:
    _, fwd, bwd = _router_ops()
    scores = 4096 * 128  # one micro-batch of 4096 tokens against 128 experts
    assert fwd.kind == "elementwise"
    assert fwd.hbm_bytes == pytest.approx(ROUTER_BYTES_PER_SCORE * scores)
    assert fwd.kernels == ROUTER_KERNELS
    assert bwd.hbm_bytes == pytest.approx(fwd.hbm_bytes)  # about as many bytes back


def test_router_kernels_cost_their_bytes_and_launches() -> None:
    scenario, fwd, _ = _router_ops()
    chip = scenario.cluster.chip
    eff = chip.efficiency
    expected = fwd.hbm_bytes / (chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction)
    expected += ROUTER_KERNELS * eff.kernel_overhead_us * 1e-6
    assert compute_time_s(fwd, chip, "bf16") == pytest.approx(expected, rel=1e-9)


def test_dense_layers_have_no_router() -> None:
    scenario = load_scenario({**SCENARIO, "model": "llama3-8b", "parallel": {"tp": 1}})
    pieces = layer_pieces(scenario, resolve(scenario))
    assert not any(op.name.startswith("router_topk") for op in pieces.dense_fwd)
