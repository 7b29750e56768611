"""A quantized GEMM reads its operands at its own width (costs/compute.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from superscale.costs.compute import OPERAND_BYTES, compute_time_s
from superscale.hardware.catalog import chips
from superscale.training.layer import grouped_gemm


def _memory_bound_expert_gemm():  # type: ignore[no-untyped-def]
    # 64 tokens over 8 local experts of 2048x1536 weights: the weight read dominates
    return grouped_gemm("expert_up", 64, 1536, 2048, groups=8, fused=True)


def test_fp8_operands_are_one_byte_and_the_output_two() -> None:
    chip = chips().get("h100-sxm")
    op = replace(_memory_bound_expert_gemm(), cast_bytes_per_input=0.0)
    rows, n, k, groups = 64, 1536, 2048, 8
    operands_fp8 = rows * k + groups * k * n  # 1 B each
    output = 2 * rows * n
    assert op.operand_bytes == 2 * operands_fp8
    assert op.hbm_bytes == 2 * operands_fp8 + output
    bandwidth = chip.hbm_bandwidth_bytes_per_s * chip.efficiency.memory_fraction
    overhead = chip.efficiency.kernel_overhead_us * 1e-6
    expected = (operands_fp8 + output) / bandwidth + overhead
    assert compute_time_s(op, chip, "fp8") == pytest.approx(expected, rel=1e-9)


def test_a_memory_bound_gemm_speeds_up_by_the_byte_ratio_under_fp8() -> None:
    chip = chips().get("h100-sxm")
    op = replace(_memory_bound_expert_gemm(), cast_bytes_per_input=0.0)
    overhead = chip.efficiency.kernel_overhead_us * 1e-6
    bf16 = compute_time_s(op, chip, "bf16") - overhead
    fp8 = compute_time_s(op, chip, "fp8") - overhead
    ratio = (op.hbm_bytes - op.operand_bytes / 2) / op.hbm_bytes
    assert fp8 / bf16 == pytest.approx(ratio, rel=1e-9)
    assert ratio < 0.6


def test_nvfp4_operands_carry_their_block_scales() -> None:
    assert OPERAND_BYTES["fp4"] == pytest.approx(0.5 + 1 / 16)
    chip = chips().get("b200")
    op = replace(_memory_bound_expert_gemm(), cast_bytes_per_input=0.0, low_dtype="fp4")
    assert compute_time_s(op, chip, "fp8") < compute_time_s(
        replace(op, low_dtype="fp8"), chip, "fp8"
    )


def test_quantize_kernels_add_to_a_compute_bound_gemm() -> None:
    """Forward: the input (m·k) is quantized; backward: the output's gradient (m·n), once
    for dgrad and wgrad. Their traffic adds to the GEMM's time instead of hiding under its
    FLOPs (Transformer Engine runs them before the GEMM, or in the norm before it)."""
    from superscale.training.layer import FP8_CAST_BYTES, _gemm

    chip = chips().get("h100-sxm")
    m, n, k = 8192.0, 14336.0, 4096.0  # compute-bound
    fwd = replace(_gemm("mlp_up", m, n, k), cast_bytes_per_input=FP8_CAST_BYTES["current"])
    bwd = fwd.backward()
    assert (fwd.cast_elements, bwd.cast_elements) == (m * k, m * n)
    bandwidth = chip.hbm_bandwidth_bytes_per_s * chip.efficiency.memory_fraction
    overhead = chip.efficiency.kernel_overhead_us * 1e-6
    for op, passes, elements in ((fwd, 1, m * k), (bwd, 2, m * n)):
        bare = replace(op, cast_bytes_per_input=0.0)  # the GEMM alone, no quantize kernels
        cast_s = FP8_CAST_BYTES["current"] * elements / bandwidth
        priced = compute_time_s(op, chip, "fp8")
        assert priced == pytest.approx(
            compute_time_s(bare, chip, "fp8") + cast_s + 2 * passes * overhead, rel=1e-9
        )


def test_fused_attention_is_priced_at_its_head_size() -> None:
    """The profile's measured FlashAttention rows run head size 64 slower than 128 at the
    same FLOPs; the op's shape carries its head size, so the cost layer reads that row."""
    from superscale.program.ops import ComputeOp
    from superscale.validate.components import fitted_chip

    chip = fitted_chip("h100-sxm")
    flops = 1e12

    def attention(head_dim: int) -> ComputeOp:
        return ComputeOp(
            name="core_attention", kind="attention", flops=flops, shape=(4096, 4096, head_dim)
        )

    narrow, wide = (compute_time_s(attention(d), chip, "bf16") for d in (64, 128))
    assert narrow > wide
    # the profile's own points at 4096 keys (fitted h100-sxm: FlashAttention-2 fwd+bwd)
    rates = {p.head_dim: p.tflops for p in chip.profile.attention["bf16"] if p.seq_len == 4096}
    clock = chip.efficiency.sustained_clock_fraction
    assert narrow == pytest.approx(flops / (rates[64] * 1e12 * clock), rel=1e-9)
    assert wide == pytest.approx(flops / (rates[128] * 1e12 * clock), rel=1e-9)


def test_a_batched_gemm_pays_one_kernels_fixed_time_under_a_profile() -> None:
    """The unfused attention's per-head GEMMs run as one strided-batched kernel: under a
    fitted profile (whose rates include each GEMM kernel's fixed time) the batch costs what
    one GEMM of the instances stacked along m does, not `batch` small GEMMs' worth."""
    from superscale.training.layer import _gemm
    from superscale.validate.components import fitted_chip

    chip = fitted_chip("a100-sxm-80g")
    heads, seq, head_dim = 24, 2048, 96
    batched = _gemm("attn_scores", seq, seq, head_dim, batch=heads)
    single = _gemm("attn_scores", seq, seq, head_dim)
    stacked = _gemm("attn_scores", seq * heads, seq, head_dim)
    t_batched = compute_time_s(batched, chip, "fp16")
    assert t_batched < heads * compute_time_s(single, chip, "fp16")
    # same FLOPs and rate as the stacked GEMM; the batch reads each head's keys, so it
    # moves more bytes, and where those bind it is not faster than the stacked one
    assert batched.flops == stacked.flops
    assert t_batched >= compute_time_s(stacked, chip, "fp16")
    # the catalog formulas charge one kernel overhead either way: batching changes nothing
    catalog = chips().get("a100-sxm-80g")
    assert compute_time_s(batched, catalog, "fp16") == pytest.approx(
        compute_time_s(replace(batched, batch=1.0), catalog, "fp16"), rel=1e-12
    )
