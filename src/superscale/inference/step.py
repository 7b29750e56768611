"""Time of one serving iteration: prefill and decode tokens batched together.

An iteration runs T tokens (decode tokens of the running requests plus prefill chunks)
through every layer of an instance. Per GPU and layer, each weight matrix is a GEMM of
(T, n, k): it reads its weights once whatever T is, and does 2·T·n·k FLOPs, so

  t_linear(T) = max(2·T·N / (peak · matmul_fraction · g(T) · clock), N·bytes / (HBM · mem))

with N the weight elements on the GPU and g the shape factor of costs/compute.py (Hockney
half-performance, Williams et al. 2009 roofline): small-batch decode is memory-bound (it
streams the weights), large batches and prefill are compute-bound. Mixture-of-experts layers
read only the experts the batch activates: with T tokens choosing top_k of E experts
uniformly, an expert is hit with probability 1 − (1 − k/E)^T. Attention is linear in the
context: a decode token reads the KV cache of its request (memory-bound for grouped-query
attention, compute-heavier for absorbed latent attention), a prefill chunk of c tokens
after p cached ones does 2·heads·c·(p + c/2)·(d_qk + d_v) FLOPs (causal). Tensor
parallelism costs two all-reduces per layer (Megatron-LM, Shoeybi et al. 2019), expert
parallelism a dispatch and a combine all-to-all per MoE layer (DeepSeek-AI 2024, Sec. 3.4),
pipeline parallelism a send/recv per stage boundary; their times come from
`collectives.basic.collective_time_s` on the placed groups, latency included.

The result is affine in the context and the prefill attention work, so an engine can sum
many decode iterations in closed form: time = base(T) + sample·n_sampled + kv·context +
prefill·pairs. base(T) is tabulated once per engine with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superscale.collectives.basic import collective_time_s
from superscale.costs.compute import REFERENCE_DIM, shape_factor
from superscale.errors import SpecError
from superscale.hardware.spec import Chip, Cluster
from superscale.inference.kv import (
    ACT_BYTES,
    BYTES_PER_ELEMENT,
    HEAD_BYTES,
    kv_bytes_per_token_layer_per_gpu,
)
from superscale.inference.spec import PlanSpec
from superscale.models.spec import ModelSpec
from superscale.parallelism.plan import place_group

KERNELS_PER_DENSE_LAYER = 10  # norms, qkv, rope, attention, out, gate/up, act, down, residuals
KERNELS_PER_MOE_LAYER = 16  # + router, top-k, permute, grouped GEMMs, unpermute
# Serving GEMMs put the batch on the MMA's 64-row (Hopper warpgroup) side, or swap operands
# for skinny decode GEMMs, so the batch dimension is quantized at a quarter of the tile
# size the training GEMMs' half-performance dimension reflects.
M_HALF_DIM_FRACTION = 0.25
_GRID_POINTS = 48


@dataclass(frozen=True, slots=True, kw_only=True)
class StepModel:
    """Iteration time of one engine (an instance, or one pipeline micro-batch slot of it)."""

    base_s: np.ndarray  # [T] weights, GEMMs, collectives, kernels, host overhead
    sample_s: float  # per sampled token (output-head GEMM)
    kv_s_per_token: float  # decode attention, per context token of the batch
    prefill_s_per_pair: float  # prefill attention, per causal (query, key) pair

    def base(self, tokens: int) -> float:
        table = self.base_s
        if tokens < len(table):
            return float(table[tokens])
        # beyond the table the time is linear in T (compute-bound): extrapolate
        slope = float(table[-1] - table[-2])
        return float(table[-1]) + slope * (tokens - len(table) + 1)

    def iteration_s(
        self, tokens: int, *, sampled: int = 0, context: float = 0.0, pairs: float = 0.0
    ) -> float:
        """Seconds of one iteration of `tokens` tokens (decode + prefill)."""
        return (
            self.base(tokens)
            + self.sample_s * sampled
            + self.kv_s_per_token * context
            + self.prefill_s_per_pair * pairs
        )


def matmul_fraction(chip: Chip, precision: str) -> float:
    """Large-GEMM fraction of peak at `precision`; where that precision was never measured
    but another was, the measured ratio of the other stands in (the catalog's 0.75 default
    is for chips with no measurement at all)."""
    if chip.efficiency.matmul_fraction is None and precision not in chip.measured_matmul_tflops:
        for other, measured in chip.measured_matmul_tflops.items():
            peak = chip.peak_tflops.get(other)
            if peak:
                return float(min(1.0, measured / peak))
    return chip.matmul_fraction(precision)


def _m_factor(m: np.ndarray, half_dim: float) -> np.ndarray:
    """The m-dimension part of the shape factor, vectorized."""
    if half_dim <= 0:
        return np.ones_like(m)
    ref = REFERENCE_DIM / (REFERENCE_DIM + half_dim)
    m = np.maximum(m, 1.0)
    out: np.ndarray = np.minimum(1.0, (m / (m + half_dim)) / ref)
    return out


def _comm_curve(
    collective: str, bytes_per_token: float, group: object, cluster: Cluster, tokens: np.ndarray
) -> np.ndarray:
    """Collective time as a function of tokens, sampled on a geometric grid."""
    top = max(float(tokens[-1]), 2.0)
    grid = np.unique(np.geomspace(1.0, top, _GRID_POINTS).round())
    try:
        times = [collective_time_s(collective, g * bytes_per_token, group, cluster) for g in grid]  # type: ignore[arg-type]
    except ValueError as exc:
        raise SpecError(
            f"serving plan: {collective} group does not fit the cluster: {exc}"
        ) from None
    out: np.ndarray = np.interp(tokens, grid, times)
    out[tokens == 0] = 0.0
    return out


def build_step_model(
    model: ModelSpec,
    plan: PlanSpec,
    cluster: Cluster,
    *,
    precision: str,
    kv_precision: str,
    max_tokens: int,
    iteration_overhead_s: float,
    request_overhead_s: float = 0.0,
) -> StepModel:
    """Tabulate the iteration time of one engine for 0..max_tokens tokens.

    Args:
        precision: weight/GEMM precision (the chip must support it).
        kv_precision: KV-cache precision.
        max_tokens: largest iteration the table covers (larger ones extrapolate).
        iteration_overhead_s: host time per iteration not hidden behind the GPU.
        request_overhead_s: host time per sampled request per iteration.
    """
    chip = cluster.chip
    eff = chip.efficiency
    tp, adp, pp = plan.tp, plan.attention_dp, plan.pp
    wb = BYTES_PER_ELEMENT[precision]
    hbm = chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction
    clock = eff.sustained_clock_fraction
    peak = chip.peak_flops(precision) * matmul_fraction(chip, precision) * clock
    h = model.hidden
    nk = shape_factor((REFERENCE_DIM, h, max(h // tp, 1)), eff.matmul_half_dim)
    attn_rate = chip.peak_flops("bf16") * eff.attention_fraction * clock

    m_half = eff.matmul_half_dim * M_HALF_DIM_FRACTION
    tokens = np.arange(max_tokens + 1, dtype=np.float64)
    ta = tokens / adp  # tokens per attention-dp rank
    rate_dense = peak * nk * _m_factor(ta, m_half)

    def linear(elements: float, m_tokens: np.ndarray, rate: np.ndarray) -> np.ndarray:
        flops_s = 2.0 * m_tokens * elements / rate
        out: np.ndarray = np.maximum(flops_s, elements * wb / hbm)
        return out

    attn = (model.attention_params - h) / tp
    elementwise = (10 * h + 3 * model.ffn_hidden / tp) * ACT_BYTES * ta / hbm
    dense_layer = linear(attn + (model.dense_mlp_params - h) / tp, ta, rate_dense) + elementwise
    dense_layer += KERNELS_PER_DENSE_LAYER * eff.kernel_overhead_us * 1e-6
    total = model.dense_layers * dense_layer

    tp_group = place_group("tp", tp, 1, cluster)
    all_reduce = _comm_curve("all_reduce", h * ACT_BYTES / adp, tp_group, cluster, tokens)
    total += model.layers * 2 * all_reduce

    if model.moe is not None and model.moe_layers:
        moe = model.moe
        e, k = moe.experts, moe.top_k
        stage = tp * adp
        ep = plan.ep
        etp = stage // ep
        shared = moe.shared_experts * model._mlp_params(moe.shared_ffn) / tp
        moe_layer = linear(attn + shared, ta, rate_dense) + 10 * h * ACT_BYTES * ta / hbm
        expert = model.expert_params / etp
        hit = 1.0 - np.power(1.0 - k / e, tokens)
        expert_bytes = (e / ep) * hit * expert * wb
        rows = tokens * k / e  # tokens per expert: the m of each grouped GEMM
        rate_expert = peak * nk * _m_factor(rows, m_half)
        expert_flops_s = 2.0 * (tokens * k / ep) * expert / rate_expert
        moe_layer += np.maximum(expert_flops_s, expert_bytes / hbm)
        moe_layer += (tokens * k / ep) * 4 * h * ACT_BYTES / hbm  # permute / unpermute
        moe_layer += KERNELS_PER_MOE_LAYER * eff.kernel_overhead_us * 1e-6
        if stage > 1:
            ep_group = place_group("ep", ep if ep > 1 else stage, etp if ep > 1 else 1, cluster)
            per_token = k * h / stage  # each GPU sends its 1/tp share of its rank's tokens
            dispatch = _comm_curve("all_to_all", per_token * wb, ep_group, cluster, tokens)
            combine = _comm_curve("all_to_all", per_token * ACT_BYTES, ep_group, cluster, tokens)
            moe_layer += dispatch + combine
        total += model.moe_layers * moe_layer

    if pp > 1:
        pp_group = place_group("pp", pp, tp * adp, cluster)
        hop = _comm_curve("send_recv", h * ACT_BYTES / adp, pp_group, cluster, tokens)
        total += (pp - 1) * hop
    head_bytes = model.vocab * h / tp * HEAD_BYTES
    total += np.where(tokens > 0, head_bytes / hbm + iteration_overhead_s, 0.0)

    head_rate = chip.peak_flops("bf16") * matmul_fraction(chip, "bf16") * clock
    sample_s = 2.0 * model.vocab * h / tp / head_rate / adp + request_overhead_s

    kv_bytes = kv_bytes_per_token_layer_per_gpu(model, tp, kv_precision)
    heads = model.heads / tp
    if model.mla is not None:
        m = model.mla
        kv_flops = 2.0 * heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)  # absorbed MLA
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
    else:
        kv_flops = 4.0 * heads * model.d_head
        d_qk = d_v = model.d_head
    kv_s = model.layers * max(kv_bytes / hbm, kv_flops / attn_rate) / adp
    pair_s = model.layers * 2.0 * heads * (d_qk + d_v) / attn_rate / adp
    return StepModel(
        base_s=total, sample_s=sample_s, kv_s_per_token=kv_s, prefill_s_per_pair=pair_s
    )
