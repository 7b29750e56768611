"""Rates of one chip's kernels: the one place compute and memory traffic are priced.

Training's op pricing (`costs/compute.py`) and serving's layer curves
(`inference/layers.py`) both call these functions, so a GEMM of one shape, a memory-bound
kernel of one size and a fused attention of one key length cost the same in both.

- GEMM rate of (m, n, k) at a precision. With a profile: the rate it measured (or was
  fitted) for that shape and precision (`hardware/profile.py`, inverse-distance weighting
  over the measured shapes). A GEMM of fewer rows than the profile's ridge (`ridge_rows`:
  where its GEMMs turn compute-bound) reads the rate at the ridge, its rows padded to a
  tile: a measured skinny GEMM is memory-bound at the precision's width, so its rate would
  charge an int4-weight GEMM for bf16 bytes, and a rate clamped at the smallest measured
  m made an m = 1 GEMM 16x faster than the m = 16 one. Without a profile:
  peak · matmul_fraction · min(1, m / GEMM_TILE_M) · Π_{n,k} g(d) / g(8192), with the
  Hockney half-performance form g(d) = d / (d + d½) on n and k (a dimension far above d½
  runs at the large-shape rate, one near d½ halves it). The row dimension m is padded to
  the tile instead: a skinny GEMM (decode, GEMV, Marlin int4) computes a full 16-row tile
  and is memory-bound on its operands. The dense component rows (gemm.csv) favour it:
  DeepGEMM's H800 m = 64 and 128 decode shapes come within 5-36% (median 12%), where a
  Hockney factor on m put them 23-49% low (median 38%), and the mean |log error| over the
  98 dense rows with a shape falls from 0.24 to 0.19. Both paths scale by the
  sustained-clock fraction.
- Memory-bound kernels: B bytes in K kernels take B / rate(B / K) + K · overhead. With a
  profile the rate is the one measured for a kernel moving B / K bytes and the overhead is 0
  (the measured times include launch and tail); without, HBM bandwidth · memory_fraction
  and the catalog's per-kernel overhead (Williams et al. 2009 roofline).
- Fused attention: the profile's rate at the key length (and head size), or
  peak · attention_fraction, scaled by the sustained clock.

A profile prices a kind of kernel only at the precisions it measured (`profile_for`): a
GEMM or attention precision missing from its tables is priced by the catalog formulas,
memory traffic included, so an op is priced by one source.

Every function takes Python scalars or numpy arrays (search batches plans, serving
tabulates a layer over every token count).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from superscale import vec
from superscale.hardware.profile import EfficiencyProfile, profile_of
from superscale.hardware.spec import Chip

REFERENCE_DIM = 8192  # GEMM size at which MAMF-style measurements reach their maximum
# Fewest rows a tensor-core GEMM tile computes whatever the GEMM's m: the 16-row MMA
# (mma.sync m16n8k16; Marlin's int4 kernels pad the batch to 16 rows, Frantar et al. 2024;
# cuBLAS's skinny kernels swap operands to put the batch on the 8-wide side). Fewer rows
# are padded to it; at 16 rows and above a GEMM runs at its large-m rate.
GEMM_TILE_M = 16.0
# Bytes of a GEMM operand element at each math precision (weights at that width).
OPERAND_BYTES = {"fp4": 0.5, "fp8": 1.0, "int8": 1.0, "bf16": 2.0, "fp16": 2.0, "tf32": 4.0,
                 "fp32": 4.0}  # fmt: skip
Kind = Literal["gemm", "attention", "memory"]
Shape = tuple[vec.Num, vec.Num, vec.Num]


def row_factor(m: vec.Num, tile: float = GEMM_TILE_M) -> vec.Num:
    """Useful share of the rows a GEMM of m rows computes: min(1, m / tile) (padding)."""
    return vec.minimum(1.0, vec.maximum(m, 1.0) / tile)


def shape_factor(shape: Shape, half_dim: float) -> vec.Num:
    """Relative GEMM rate of (m, n, k) against a large reference GEMM, in (0, 1]: m's rows
    padded to a tile (`row_factor`), n and k by the Hockney half-performance form."""
    m, n, k = shape
    factor = row_factor(m)
    if half_dim <= 0:
        return factor
    ref = REFERENCE_DIM / (REFERENCE_DIM + half_dim)
    for d in (n, k):
        factor *= vec.minimum(1.0, (d / (d + half_dim)) / ref)
    return factor


def gemm_efficiency(chip: Chip, precision: str, shape: Shape | None) -> vec.Num:
    """Fraction of the dense peak at `precision` a GEMM of this shape reaches (formulas)."""
    base = chip.matmul_fraction(precision)
    if shape is None:
        return base
    return base * shape_factor(shape, chip.efficiency.matmul_half_dim)


def profile_for(chip: Chip, kind: Kind, precision: str = "") -> EfficiencyProfile | None:
    """The profile that prices a `kind` kernel at `precision` on `chip`: the chip's own (or
    its catalog file) where it measured that kind at that precision, else None (formulas)."""
    profile = profile_of(chip)
    if profile is None:
        return None
    if kind == "gemm" and precision not in profile.matmul:
        return None
    if kind == "attention" and precision not in profile.attention:
        return None
    return profile


def gemm_flops_per_s(
    chip: Chip, precision: str, shape: Shape | None, *, profile: EfficiencyProfile | None
) -> vec.Num:
    """FLOP/s a GEMM of `shape` (m, n, k; None: a large one) sustains at `precision`.

    Args:
        profile: what prices it (`profile_for(chip, "gemm", precision)`), None: formulas.
    """
    clock = chip.efficiency.sustained_clock_fraction
    if profile is None:
        return chip.peak_flops(precision) * gemm_efficiency(chip, precision, shape) * clock
    if shape is None:
        return profile.peak_tflops[precision] * 1e12 * clock
    if precision not in profile.matmul:
        raise ValueError(f"profile has no {precision} GEMMs; price it with profile=None")
    m, n, k = shape
    # below the ridge a measured GEMM is memory-bound at the precision's width: its rate
    # says how fast the weights streamed, not how fast the tiles compute. Read the rate
    # where the rows make it compute-bound and pad the rows to a tile, so the caller's
    # bytes (at their stored width: int4 weights under bf16 math) set the memory side
    rows = vec.maximum(m, ridge_rows(profile, precision))
    rate: vec.Num | None
    if vec.is_array(*shape):
        rate = profile.gemm_flops_per_s_array(precision, rows, n, k)
    else:
        rate = profile.gemm_flops_per_s(precision, (rows, n, k))
    assert rate is not None
    return rate * row_factor(m) * clock


def ridge_rows(profile: EfficiencyProfile, precision: str) -> float:
    """Rows m at which a GEMM of large n, k turns compute-bound on the profile: its best
    rate at `precision` against its best copy rate, 2·m·n·k / rate = n·k·bytes / HBM."""
    width = OPERAND_BYTES.get(precision)
    if width is None:
        return 1.0
    return profile.peak_tflops[precision] * 1e12 * width / (2.0 * profile.best_memory_bytes_per_s)


def memory_bytes_per_s(
    chip: Chip, transfer_bytes: vec.Num, *, profile: EfficiencyProfile | None
) -> vec.Num:
    """Bandwidth a memory-bound kernel moving `transfer_bytes` (read + write) reaches, B/s."""
    if profile is None:
        return chip.hbm_bandwidth_bytes_per_s * chip.efficiency.memory_fraction
    if vec.is_array(transfer_bytes):
        return profile.memory_bytes_per_s_array(transfer_bytes)
    return profile.memory_bytes_per_s(transfer_bytes)


def attention_flops_per_s(
    chip: Chip,
    precision: str,
    key_len: float,
    *,
    head_dim: int | None = None,
    profile: EfficiencyProfile | None,
) -> float:
    """FLOP/s of fused attention (work done) at `precision` over `key_len` keys.

    Args:
        head_dim: per-head width the profile is read at; None: its mean over head sizes.
        profile: what prices it (`profile_for(chip, "attention", precision)`).
    """
    clock = chip.efficiency.sustained_clock_fraction
    if profile is None:
        return chip.peak_flops(precision) * chip.efficiency.attention_fraction * clock
    rate = profile.attention_flops_per_s(precision, key_len, head_dim)
    if rate is None:
        raise ValueError(f"profile has no {precision} attention; price it with profile=None")
    return rate * clock


def kernel_overhead_s(chip: Chip, *, profile: EfficiencyProfile | None) -> float:
    """Fixed launch and tail time per kernel: 0 with a profile (its times include it)."""
    return 0.0 if profile is not None else chip.efficiency.kernel_overhead_us * 1e-6


def gemm_time_s(
    chip: Chip,
    precision: str,
    shape: Shape,
    *,
    hbm_bytes: vec.Num,
    flops: vec.Num | None = None,
    kernels: float = 1.0,
) -> vec.Num:
    """Seconds of a GEMM: max(FLOPs / rate(shape), bytes / memory rate) + kernel overhead.

    Args:
        shape: (m, n, k) the kernel's tiles see (dimensions below 1 count as 1).
        hbm_bytes: bytes it reads and writes (weights at their stored width, activations).
        flops: its work; default 2·m·n·k (a grouped GEMM passes all its groups' work).
        kernels: kernel launches it takes.
    """
    profile = profile_for(chip, "gemm", precision)
    m, n, k = shape
    work = 2.0 * m * n * k if flops is None else flops
    tiles = (vec.maximum(m, 1.0), vec.maximum(n, 1.0), vec.maximum(k, 1.0))
    compute_s = work / gemm_flops_per_s(chip, precision, tiles, profile=profile)
    per_kernel = hbm_bytes / max(kernels, 1.0)
    memory_s = hbm_bytes / memory_bytes_per_s(chip, per_kernel, profile=profile)
    return vec.maximum(compute_s, memory_s) + kernels * kernel_overhead_s(chip, profile=profile)


def memory_time_s(chip: Chip, hbm_bytes: vec.Num, *, kernels: float = 1.0) -> vec.Num:
    """Seconds of `kernels` memory-bound kernels moving `hbm_bytes` between them."""
    profile = profile_for(chip, "memory")
    per_kernel = hbm_bytes / max(kernels, 1.0)
    rate = memory_bytes_per_s(chip, per_kernel, profile=profile)
    return hbm_bytes / rate + kernels * kernel_overhead_s(chip, profile=profile)


def stream_bytes_per_s(chip: Chip, transfer_bytes: float) -> float:
    """Bandwidth of one long streaming read of `transfer_bytes` (a decode step's KV)."""
    return float(memory_bytes_per_s(chip, transfer_bytes, profile=profile_for(chip, "memory")))


def as_array(x: vec.Num) -> np.ndarray:
    """`x` as a float64 array (serving's curves are arrays over the token count)."""
    out: np.ndarray = np.asarray(x, dtype=np.float64)
    return out
