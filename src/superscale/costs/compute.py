"""Roofline time of one training op, priced through the shared kernel rates (roofline.py).

time = max(FLOPs / GEMM or attention rate, HBM bytes / memory rate) + kernels · overhead

The rates (`costs/roofline.py`) read the chip's profile where it measured the op's kind and
precision (a `ProfiledChip`, a `cluster.profile`, or a catalog file
`catalog/profiles/<chip>.yaml`), and the catalog formulas otherwise: GEMMs at
peak · matmul_fraction · the Hockney shape factor over (m, n, k), fused attention at
`attention_fraction` of the 16-bit peak (no fp8 attention in the modelled stacks), memory
at HBM bandwidth · memory_fraction, plus the catalog's per-kernel overhead (none with a
profile: measured times include launch and tail). An op whose precision the profile did
not measure is priced wholly by the formulas. Serving prices its GEMMs through the same
functions (`inference/layers.py`).

Training-specific here: under fp8, each GEMM also quantizes its 16-bit input forward and
its output's gradient backward (read 2 B, write 1 B per element, plus the transposed copy
wgrad needs; the op's `cast_bytes_per_input` × `cast_elements`, which the lowering sets
from the fp8 recipe; Transformer Engine's recipes). Those kernels run before the GEMM, so
their time adds to it. The GEMM then reads its operands at the low dtype's width
(`OPERAND_BYTES`; its output stays 16-bit: DeepGEMM's per-shape memory bandwidths count
the bytes so), and the output layer stays in 16 bits (`HIGH_PRECISION_GEMMS`). Under the NVFP4
recipe a transformer layer's GEMMs run at the chip's fp4 peak (the op's `low_dtype`) with
the same quantize traffic, priced by the recipe's cast bytes. Elementwise kernels are
memory-bound.
"""

from __future__ import annotations

from superscale import vec
from superscale.costs.roofline import (
    REFERENCE_DIM,
    attention_flops_per_s,
    gemm_efficiency,
    gemm_flops_per_s,
    kernel_overhead_s,
    memory_bytes_per_s,
    profile_for,
    shape_factor,
)
from superscale.hardware.profile import EfficiencyProfile, profile_of
from superscale.hardware.spec import Chip
from superscale.program.ops import ComputeOp

__all__ = [
    "HIGH_PRECISION_GEMMS",
    "REFERENCE_DIM",
    "attention_head_dim",
    "attention_key_len",
    "compute_time_s",
    "gemm_efficiency",
    "shape_factor",
]

_16BIT = {"bf16", "fp16"}
_QUANTIZED = {"fp8", "fp4"}  # GEMM inputs cast from 16 bits before each GEMM
# Bytes per input element a quantized GEMM reads: fp8 one byte (its per-block scales are
# 1/128 B, left out); NVFP4 half a byte plus an E4M3 scale per 16 elements
OPERAND_BYTES = {"fp8": 1.0, "fp4": 0.5 + 1 / 16}
HIGH_PRECISION_GEMMS = frozenset({"logits", "router"})


def compute_time_s(op: ComputeOp, chip: Chip, precision: str) -> vec.Num:
    """Time of all `op.repeat` instances of `op` on one GPU, seconds.

    Uses the chip's measured profile when it measured this op's kind and precision, else
    the documented formulas (`costs/roofline.py`).
    """
    return _time_s(op, chip, precision, _pricing_profile(op, chip, precision))


def _gemm_precision(op: ComputeOp, precision: str) -> str:
    """The dtype a GEMM runs in: 16 bits for the output layer and router, the op's own
    low-precision dtype under fp8 training (fp4 under NVFP4), else the run's."""
    if precision not in _16BIT and op.name.split(".")[0] in HIGH_PRECISION_GEMMS:
        return "bf16"
    if precision == "fp8":
        return op.low_dtype
    return precision


def _attention_precision(precision: str) -> str:
    return precision if precision in _16BIT else "bf16"


def attention_key_len(op: ComputeOp) -> float:
    """Key length of a fused attention op: its shape is (queries, keys, head size)."""
    return float(op.shape[1]) if op.shape is not None else 1.0


def attention_head_dim(op: ComputeOp) -> int | None:
    """Per-head query/key width of a fused attention op (its shape's third entry): the
    measured kernels run head size 64 slower than 128 (FlashAttention-2/3, cuDNN rows)."""
    return int(op.shape[2]) if op.shape is not None else None


def _pricing_profile(op: ComputeOp, chip: Chip, precision: str) -> EfficiencyProfile | None:
    """The chip's profile, unless it lacks this op's GEMM or attention precision (then the
    whole op, memory traffic included, is priced by the formulas)."""
    if op.kind == "gemm" and vec.any_nonzero(op.flops):
        return profile_for(chip, "gemm", _gemm_precision(op, precision))
    if op.kind == "attention" and vec.any_nonzero(op.flops):
        return profile_for(chip, "attention", _attention_precision(precision))
    return profile_of(chip)


def _kernel_shape(op: ComputeOp) -> tuple[vec.Num, vec.Num, vec.Num] | None:
    """The (m, n, k) one kernel of the op computes: a strided-batched GEMM of `batch`
    instances schedules all their tiles in one launch, so it runs like one GEMM with the
    instances stacked along m. A profile's rate at a shape includes the kernel's fixed
    time (`calibrate.fit`: t0 per GEMM kernel), which the batch pays once, not per
    instance; the tile shape (n, k) and the op's own HBM bytes stay as they are."""
    if op.shape is None or (not vec.is_array(op.batch) and op.batch == 1.0):
        return op.shape
    m, n, k = op.shape
    return (m * op.batch, n, k)


def _hbm_bytes(op: ComputeOp, gemm_precision: str) -> vec.Num:
    """The op's HBM traffic, its GEMM operands at the width the GEMM reads them."""
    width = OPERAND_BYTES.get(gemm_precision)
    if op.kind != "gemm" or width is None:
        return op.hbm_bytes
    return op.hbm_bytes - op.operand_bytes * (1.0 - width / 2.0)


def _time_s(
    op: ComputeOp, chip: Chip, precision: str, profile: EfficiencyProfile | None
) -> vec.Num:
    gemm_precision = _gemm_precision(op, precision)
    hbm_bytes = _hbm_bytes(op, gemm_precision)
    per_kernel = hbm_bytes / vec.maximum(op.kernels, 1)
    mem_s = hbm_bytes / memory_bytes_per_s(chip, per_kernel, profile=profile)
    kernels = op.kernels * 1.0
    flops_s: vec.Num = 0.0
    cast_s: vec.Num = 0.0
    if op.kind == "gemm" and vec.any_nonzero(op.flops):
        flops_s = op.flops / gemm_flops_per_s(
            chip, gemm_precision, _kernel_shape(op), profile=profile
        )
        if gemm_precision in _QUANTIZED and op.shape is not None and op.cast_bytes_per_input:
            m, n, k = op.shape
            passes = op.flops / (2.0 * m * n * k)  # 1 forward, 2 for its backward
            cast_bytes = op.cast_bytes_per_input * op.cast_elements
            per_cast = cast_bytes / vec.maximum(passes, 1.0)
            cast_s = cast_bytes / memory_bytes_per_s(chip, per_cast, profile=profile)
            # amax/scale and cast(+transpose) kernels, two a pass, so the event engine's
            # dgrad and wgrad halves launch as many as the analytical backward
            kernels += 2 * passes
    elif op.kind == "attention" and vec.any_nonzero(op.flops):
        rate = attention_flops_per_s(
            chip,
            _attention_precision(precision),
            attention_key_len(op),
            head_dim=attention_head_dim(op),
            profile=profile,
        )
        flops_s = op.flops / rate
    # the quantize kernels run before the GEMM (or inside the norm or activation before
    # it), so their traffic adds to the GEMM's time rather than hiding under its FLOPs
    one = vec.maximum(flops_s, mem_s) + cast_s + kernels * kernel_overhead_s(chip, profile=profile)
    return one * op.repeat
