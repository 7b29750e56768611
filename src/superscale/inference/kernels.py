"""Measured serving kernels: FlashMLA decode, fp8 attention, low-latency MoE dispatch.

The rates live in `kernels.yaml`, each entry copied from rows of
shared/reference/components/ (attention.csv, moe_dispatch.csv) with its source, and names
the chips it serves. A chip without an entry keeps the catalog's generic rates: these
tables only replace a figure where a kernel was measured.

- MLA decode (FlashMLA README): time per context token = max(bytes / (HBM · memory
  share), FLOPs · padding / (bf16 peak · compute share)); the shares are the measured rates
  over the measuring chip's datasheet figures, and the padding rounds the query rows
  (heads · query tokens) up to the kernel's 64-row blocks (FlashMLA source).
- fp8 attention (FlashAttention-3 paper): the chip's bf16 attention rate times the FP8/FP16
  forward ratio measured on the same chip.
- Low-latency dispatch (DeepEP docs): bandwidth against EP size, interpolated in log EP and
  held flat beyond the measured range; time = max(one-token latency, bytes a rank sends /
  bandwidth) for dispatch and for combine, the one-token latency from pplx-kernels' rows
  (the only one-token measurement; DeepEP's rows all run 128 tokens per rank).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TypeVar

import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator

from superscale.spec import Spec, spec_error_from


class _Kernel(Spec):
    name: str = Field(description="Kernel family.")
    chips: tuple[str, ...] = Field(description="Catalog chips the entry serves.")
    measured_on: str = Field(description="The chip the rows were measured on.")
    source: str = Field(description="Rows of shared/reference/components/ and their source.")
    transfer: str = Field("", description="Why the rates carry over to the other chips.")


class MlaDecodeKernel(_Kernel):
    """FlashMLA dense decode rates as shares of the measuring chip's datasheet."""

    compute_tflops: float = Field(gt=0, description="Compute-bound rate, TFLOP/s.")
    peak_tflops: float = Field(gt=0, description="Dense bf16 peak of the measuring chip.")
    memory_gbps: float = Field(gt=0, description="Memory-bound rate, GB/s.")
    hbm_gbps: float = Field(gt=0, description="HBM bandwidth of the measuring chip, GB/s.")
    query_rows_per_block: int = Field(gt=0, description="Query rows one block computes.")
    block_source: str = Field(description="Where the block size is stated.")

    def padding(self, query_rows: float) -> float:
        """Work done over work asked for `query_rows` = heads·query tokens per KV head: a
        block computes its full rows whether or not they hold queries."""
        block = self.query_rows_per_block
        return float(np.ceil(query_rows / block) * block / query_rows)

    @property
    def compute_share(self) -> float:
        return self.compute_tflops / self.peak_tflops

    @property
    def memory_share(self) -> float:
        return self.memory_gbps / self.hbm_gbps


class Fp8AttentionKernel(_Kernel):
    """FP8 against FP16 forward attention on one chip."""

    fp8_tflops: float = Field(gt=0, description="FP8 forward rate, TFLOP/s.")
    bf16_tflops: float = Field(gt=0, description="FP16/BF16 forward rate, TFLOP/s.")

    @property
    def speedup(self) -> float:
        return self.fp8_tflops / self.bf16_tflops


class LowLatencyDispatch(_Kernel):
    """Low-latency dispatch/combine bandwidth against EP size."""

    nic_gbps_per_gpu: float = Field(gt=0, description="NIC rate per GPU of the rows, GB/s.")
    tokens_per_rank: int = Field(gt=0, description="Tokens per rank of the rows.")
    ep: tuple[int, ...] = Field(description="EP sizes measured.")
    dispatch_gbps: tuple[float, ...] = Field(description="Dispatch bandwidth per EP size.")
    combine_gbps: tuple[float, ...] = Field(description="Combine bandwidth per EP size.")
    floor_ep: tuple[int, ...] = Field(description="EP sizes of the one-token latency rows.")
    dispatch_floor_us: tuple[float, ...] = Field(description="One-token dispatch time, µs.")
    combine_floor_us: tuple[float, ...] = Field(description="One-token combine time, µs.")
    floor_source: str = Field(description="Rows of the one-token latencies and their source.")

    @model_validator(mode="after")
    def _same_length(self) -> LowLatencyDispatch:
        if not len(self.ep) == len(self.dispatch_gbps) == len(self.combine_gbps) > 0:
            raise ValueError("ep, dispatch_gbps and combine_gbps need one value per EP size")
        if not len(self.floor_ep) == len(self.dispatch_floor_us) == len(self.combine_floor_us):
            raise ValueError("floor_ep and the floor latencies need one value per EP size")
        return self

    def floor_s(self, op: str, ep: int) -> float:
        """Time of `op` (dispatch|combine) for one token per rank at `ep`, s."""
        table = self.dispatch_floor_us if op == "dispatch" else self.combine_floor_us
        return float(np.interp(np.log(ep), np.log(self.floor_ep), table)) * 1e-6

    def bandwidth_bytes_per_s(self, op: str, ep: int, nic_bytes_per_s_per_gpu: float) -> float:
        """Achieved bandwidth of `op` (dispatch|combine) at `ep`, on the given NIC rate."""
        table = self.dispatch_gbps if op == "dispatch" else self.combine_gbps
        gbps = float(np.interp(np.log(ep), np.log(self.ep), table))
        return gbps * 1e9 * nic_bytes_per_s_per_gpu / (self.nic_gbps_per_gpu * 1e9)


class KernelTables(Spec):
    """Every measured serving kernel, by family."""

    mla_decode: tuple[MlaDecodeKernel, ...] = ()
    fp8_attention: tuple[Fp8AttentionKernel, ...] = ()
    low_latency_dispatch: tuple[LowLatencyDispatch, ...] = ()


@cache
def kernel_tables() -> KernelTables:
    """The shipped `kernels.yaml`, validated."""
    text = resources.files(__package__).joinpath("kernels.yaml").read_text(encoding="utf-8")
    try:
        return KernelTables.model_validate(yaml.safe_load(text))
    except ValidationError as exc:  # a broken package file, named by its path
        raise spec_error_from(exc, prefix="inference/kernels.yaml") from None


K = TypeVar("K", bound=_Kernel)


def _for_chip(entries: tuple[K, ...], chip: str) -> K | None:
    return next((k for k in entries if chip in k.chips), None)


def mla_decode_kernel(chip: str) -> MlaDecodeKernel | None:
    """FlashMLA decode rates for `chip`, or None where none was measured."""
    return _for_chip(kernel_tables().mla_decode, chip)


def fp8_attention_kernel(chip: str) -> Fp8AttentionKernel | None:
    """fp8 attention speedup for `chip`, or None where none was measured."""
    return _for_chip(kernel_tables().fp8_attention, chip)


def low_latency_dispatch(chip: str) -> LowLatencyDispatch | None:
    """Low-latency MoE dispatch kernels for `chip`, or None where none were measured."""
    return _for_chip(kernel_tables().low_latency_dispatch, chip)
