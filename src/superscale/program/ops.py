"""The operations of a lowered per-device program: compute kernels and communication.

Ops are frozen values: what is done (FLOPs, HBM bytes, collective payloads), never how long
it takes; cost models turn them into time. `flops` is the work the kernel does (a causal
flash-attention kernel skips the masked half); `counted_flops` is the conventional count of
published MFU/HFU figures (full s² attention; Narayanan et al. 2021 eq. 3). Recomputation
ops count towards hardware FLOPs (HFU) but not model FLOPs (MFU). `repeat` stands for
identical instances (one per layer), so a stage of 30 layers is one op with repeat=30.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from superscale import vec

ComputeKind = Literal["gemm", "attention", "elementwise"]
Collective = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"]
# dpr/edpr: HSDP's replica groups, which all-reduce the gradient shards
GroupKind = Literal["tp", "cp", "ep", "pp", "dp", "edp", "dpr", "edpr"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeOp:
    """One kernel (or a fused group of kernels) on one GPU, per micro-batch."""

    name: str
    kind: ComputeKind
    flops: float = 0.0
    counted_flops: float = 0.0
    hbm_bytes: float = 0.0
    # GEMMs: the input operands' share of hbm_bytes, counted at 16 bits; a quantized GEMM
    # (fp8, fp4) reads them at its own width (`costs/compute.py`)
    operand_bytes: float = 0.0
    shape: tuple[int, int, int] | None = None  # (m, n, k) for GEMMs
    # GEMMs: instances of `shape` one strided-batched kernel computes (the unfused
    # attention's per-head score and value GEMMs), which pay one kernel's fixed time
    batch: float = 1.0
    kernels: float = 1  # launches (a per-expert GEMM launches once per local expert)
    recompute: bool = False
    repeat: int = 1
    backward_bytes_factor: float = 2.0  # HBM traffic of the gradient kernel / forward's
    cast_bytes_per_input: float = 4.0  # fp8 GEMMs: quantize traffic per input element
    # fp8 GEMMs: the elements quantized before this op runs (its input forward; backward,
    # the output's gradient dY, whose fp8 copy and transpose serve dgrad and wgrad), and
    # those its gradient will quantize
    cast_elements: float = 0.0
    grad_cast_elements: float = 0.0
    low_dtype: str = "fp8"  # a GEMM's dtype under fp8 training: fp8, or fp4 under NVFP4
    # the run of work the op belongs to (one dense or MoE layer, the head, the tail, a
    # send): the host's launches are waited on per run (`costs/host.py`)
    unit: str = ""

    @property
    def model_flops(self) -> float:
        """Conventional FLOPs counted in MFU (all instances); recomputation excluded."""
        return 0.0 if self.recompute else self.counted_flops * self.repeat

    @property
    def hardware_flops(self) -> float:
        """Conventional FLOPs counted in HFU (all instances); recomputation included."""
        return self.counted_flops * self.repeat

    def backward(
        self, *, flops_factor: float = 2.0, bytes_factor: float | None = None
    ) -> ComputeOp:
        """The gradient of this op: dgrad + wgrad for GEMMs (2× the forward work)."""
        factor = self.backward_bytes_factor if bytes_factor is None else bytes_factor
        return replace(
            self,
            name=f"{self.name}.bwd",
            flops=self.flops * flops_factor,
            counted_flops=self.counted_flops * 2.0,
            hbm_bytes=self.hbm_bytes * factor,
            operand_bytes=self.operand_bytes * factor,
            cast_elements=self.grad_cast_elements,
            grad_cast_elements=0.0,
            kernels=self.kernels * 2,
        )

    def recomputed(self) -> ComputeOp:
        return replace(self, name=f"{self.name}.recompute", recompute=True)

    def times(self, repeat: int) -> ComputeOp:
        return replace(self, repeat=self.repeat * repeat)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommOp:
    """One collective on one parallel group; `payload_bytes` is nccl-tests' size."""

    name: str
    group: GroupKind
    collective: Collective
    payload_bytes: float
    overlappable: bool = False  # may hide behind compute when the plan enables overlap
    recompute: bool = False
    repeat: int = 1
    # fixed time of each call beside its transfer: a dispatcher's layout and metadata
    # preparation (`costs/dispatch.py`)
    setup_s: float = 0.0
    unit: str = ""  # as ComputeOp.unit

    def recomputed(self) -> CommOp:
        return replace(self, name=f"{self.name}.recompute", recompute=True)

    def times(self, repeat: int) -> CommOp:
        return replace(self, repeat=self.repeat * repeat)


Op = ComputeOp | CommOp


def gated(op: Op, *masks: Any) -> list[Op]:
    """[op] if every mask holds, [] if one fails; array masks (a batch of plans) scale the
    op's work by their product, so plans where it does not apply pay nothing for it."""
    scale: Any = None
    for mask in masks:
        keep = vec.gate(mask)
        if keep is False:
            return []
        if keep is None:
            scale = mask if scale is None else scale * mask
    if scale is None:
        return [op]
    if isinstance(op, CommOp):
        return [replace(op, payload_bytes=op.payload_bytes * scale, setup_s=op.setup_s * scale)]
    return [
        replace(
            op,
            flops=op.flops * scale,
            counted_flops=op.counted_flops * scale,
            hbm_bytes=op.hbm_bytes * scale,
            operand_bytes=op.operand_bytes * scale,
            cast_elements=op.cast_elements * scale,
            grad_cast_elements=op.grad_cast_elements * scale,
            kernels=op.kernels * scale,
        )
    ]
