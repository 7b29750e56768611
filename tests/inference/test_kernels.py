"""The serving kernel table holds the figures of the component rows it cites."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from superscale.inference.kernels import kernel_tables

COMPONENTS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "components"


def _rows(name: str) -> list[dict[str, str]]:
    path = COMPONENTS / name
    if not path.exists():
        pytest.skip("shared/reference/components is not beside this checkout")
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_flashmla_and_fp8_attention_match_attention_csv() -> None:
    rows = [r for r in _rows("attention.csv") if r["chip"] == "H800"]
    dense = [r for r in rows if r["kernel"].startswith("FlashMLA dense decode")]
    tflops = {float(r["achieved_tflops"]) for r in dense if r["achieved_tflops"]}
    gbps = {float(r["achieved_mem_GBps"]) for r in dense if r["achieved_mem_GBps"]}
    (mla,) = kernel_tables().mla_decode
    assert mla.compute_tflops in tflops and mla.memory_gbps in gbps
    assert mla.peak_tflops == 989
    fa3 = [
        r
        for r in _rows("attention.csv")
        if r["kernel"] == "FlashAttention-3" and r["chip"] == "H100 SXM" and not r["seq_len"]
    ]
    by_dtype = {r["dtype"]: float(r["achieved_tflops"]) for r in fa3}
    (fp8,) = kernel_tables().fp8_attention
    assert (fp8.fp8_tflops, fp8.bf16_tflops) == (by_dtype["fp8_e4m3"], by_dtype["fp16"])


def test_low_latency_dispatch_matches_moe_dispatch_csv() -> None:
    rows = _rows("moe_dispatch.csv")
    (ll,) = kernel_tables().low_latency_dispatch
    deepep = {
        (r["op"], int(r["ep_size"])): float(r["bandwidth_GBps"])
        for r in rows
        if r["library"] == "DeepEP V1" and r["kernel_mode"] == "low-latency"
    }
    for ep, d, c in zip(ll.ep, ll.dispatch_gbps, ll.combine_gbps, strict=True):
        assert deepep[("dispatch", ep)] == d and deepep[("combine", ep)] == c
    pplx = {
        (r["op"], int(r["ep_size"])): float(r["latency_us"])
        for r in rows
        if r["library"] == "pplx-kernels"
        and r["tokens_per_rank"] == "1"
        and r["kernel_mode"] in ("transport NVLINK", "transport IBGDA")
    }
    for ep, d, c in zip(ll.floor_ep, ll.dispatch_floor_us, ll.combine_floor_us, strict=True):
        assert pplx[("dispatch", ep)] == d and pplx[("combine", ep)] == c
