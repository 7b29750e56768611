"""Roofline time of a compute op with a shape-aware efficiency (per chip, from the catalog).

time = max(FLOPs / (peak · efficiency · sustained_clock_fraction),
           HBM bytes / (bandwidth · memory_fraction)) + kernels · kernel_overhead

GEMM efficiency = matmul_fraction · Π_d g(d) / g(8192) over (m, n, k), with the Hockney
half-performance form g(d) = d / (d + d_½): a dimension far above d_½ runs at the
large-shape rate (the measured maximum achievable matmul throughput, MAMF, is taken at such
shapes), one near d_½ halves it (tile quantisation, low arithmetic intensity). Fused
attention runs at `attention_fraction` of the 16-bit peak (no fp8 attention in the modelled
stacks). Under fp8, each GEMM also quantizes its 16-bit inputs (read 2 B, write 1 B per
element, plus the transposed copy backward needs; the op's `cast_bytes_per_input`, which
the lowering sets from the fp8 recipe; Transformer Engine's recipes), and the
output layer stays in 16 bits (`HIGH_PRECISION_GEMMS`). Under the NVFP4 recipe a
transformer layer's GEMMs run at the chip's fp4 peak (the op's `low_dtype`) with the
same quantize traffic, priced by the recipe's cast bytes. Elementwise kernels are
memory-bound. All parameters live in the chip's catalog entry (`efficiency:`).

A chip with a measured profile (hardware/profile.py: a `ProfiledChip`, or a catalog file
`catalog/profiles/<chip>.yaml`) replaces these formulas by its measurements: a GEMM runs at
the rate measured for its shape and precision, attention at the rate measured for its key
length, and memory traffic at the bandwidth measured for its transfer size per kernel. The
measured times include launch and tail costs, so no per-kernel overhead is added; a
precision the profile did not measure falls back to the formulas above for that op.
"""

from __future__ import annotations

from superscale import vec
from superscale.hardware.profile import EfficiencyProfile, profile_of
from superscale.hardware.spec import Chip
from superscale.training.ops import ComputeOp

REFERENCE_DIM = 8192  # GEMM size at which MAMF-style measurements reach their maximum
_16BIT = {"bf16", "fp16"}
_QUANTIZED = {"fp8", "fp4"}  # GEMM inputs cast from 16 bits before each GEMM
HIGH_PRECISION_GEMMS = frozenset({"logits", "router"})


def shape_factor(shape: tuple[int, int, int], half_dim: float) -> float:
    """Relative GEMM rate of (m, n, k) against a large reference GEMM, in (0, 1]."""
    if half_dim <= 0:
        return 1.0
    ref = REFERENCE_DIM / (REFERENCE_DIM + half_dim)
    factor = 1.0
    for d in shape:
        factor *= vec.minimum(1.0, (d / (d + half_dim)) / ref)
    return factor


def gemm_efficiency(chip: Chip, precision: str, shape: tuple[int, int, int] | None) -> float:
    """Fraction of the dense peak at `precision` a GEMM of this shape reaches."""
    base = chip.matmul_fraction(precision)
    if shape is None:
        return base
    return base * shape_factor(shape, chip.efficiency.matmul_half_dim)


def compute_time_s(op: ComputeOp, chip: Chip, precision: str) -> vec.Num:
    """Time of all `op.repeat` instances of `op` on one GPU, seconds.

    Uses the chip's measured profile when it has one, else the documented formulas.
    """
    profile = profile_of(chip)
    if profile is not None:
        return _profiled_time_s(op, chip, precision, profile)
    return _formula_time_s(op, chip, precision)


def _gemm_precision(op: ComputeOp, precision: str) -> str:
    """The dtype a GEMM runs in: 16 bits for the output layer and router, the op's own
    low-precision dtype under fp8 training (fp4 under NVFP4), else the run's."""
    if precision not in _16BIT and op.name.split(".")[0] in HIGH_PRECISION_GEMMS:
        return "bf16"
    if precision == "fp8":
        return op.low_dtype
    return precision


def attention_key_len(op: ComputeOp) -> float:
    """Key length of a fused attention op: its shape is (queries, keys, head size)."""
    return float(op.shape[1]) if op.shape is not None else 1.0


def _profiled_time_s(
    op: ComputeOp, chip: Chip, precision: str, profile: EfficiencyProfile
) -> vec.Num:
    eff = chip.efficiency
    per_kernel = op.hbm_bytes / max(op.kernels, 1)
    hbm_rate = profile.memory_bytes_per_s(per_kernel)
    mem_s = op.hbm_bytes / hbm_rate
    flops_s = 0.0
    if op.kind == "gemm" and op.flops:
        gemm_precision = _gemm_precision(op, precision)
        if op.shape is None:
            rate = profile.peak_tflops.get(gemm_precision)
            rate = rate * 1e12 if rate is not None else None
        else:
            rate = profile.gemm_flops_per_s(gemm_precision, op.shape)
        if rate is None:
            return _formula_time_s(op, chip, precision)
        flops_s = op.flops / (rate * eff.sustained_clock_fraction)
        if gemm_precision in _QUANTIZED and op.shape is not None:
            m, n, k = op.shape
            passes = op.flops / (2.0 * m * n * k)
            cast_bytes = op.cast_bytes_per_input * m * k
            mem_s += passes * cast_bytes / profile.memory_bytes_per_s(cast_bytes)
    elif op.kind == "attention" and op.flops:
        attn_precision = precision if precision in _16BIT else "bf16"
        rate = profile.attention_flops_per_s(attn_precision, attention_key_len(op))
        if rate is None:
            return _formula_time_s(op, chip, precision)
        flops_s = op.flops / (rate * eff.sustained_clock_fraction)
    return max(flops_s, mem_s) * op.repeat


def _formula_time_s(op: ComputeOp, chip: Chip, precision: str) -> vec.Num:
    eff = chip.efficiency
    hbm_rate = chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction
    mem_s = op.hbm_bytes / hbm_rate
    kernels = op.kernels * 1.0
    flops_s = 0.0
    if op.kind == "gemm" and vec.any_nonzero(op.flops):
        gemm_precision = _gemm_precision(op, precision)
        rate = chip.peak_flops(gemm_precision) * gemm_efficiency(chip, gemm_precision, op.shape)
        flops_s = op.flops / (rate * eff.sustained_clock_fraction)
        if gemm_precision in _QUANTIZED and op.shape is not None:
            m, n, k = op.shape
            passes = op.flops / (2.0 * m * n * k)  # 1 forward, 2 for its backward
            mem_s += passes * op.cast_bytes_per_input * m * k / hbm_rate
            kernels += 2 * passes  # amax/scale and cast(+transpose) kernels per input
    elif op.kind == "attention" and vec.any_nonzero(op.flops):
        attn_precision = precision if precision in _16BIT else "bf16"
        rate = chip.peak_flops(attn_precision) * eff.attention_fraction
        flops_s = op.flops / (rate * eff.sustained_clock_fraction)
    one = vec.maximum(flops_s, mem_s) + kernels * eff.kernel_overhead_us * 1e-6
    return one * op.repeat
