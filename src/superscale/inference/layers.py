"""Per-layer time curves of one model on one serving plan, as functions of the tokens.

Every kernel is priced by the shared cost layer (`costs/roofline.py`), the one training
uses, so a GEMM of one shape costs the same in both and a scenario's `cluster.profile`
(or a catalog profile) prices serving too. Per GPU and layer, the weight matrices of a
block are GEMMs of (T, n, k): they read their weights once whatever T is and do 2·T·N
FLOPs (N the weight elements on the GPU), so

  t_linear(T) = max(2·T·N / rate(T, n, k), N·bytes / memory rate) + kernels · overhead

with the row dimension padded to a tile (a decode GEMM of T = 1 computes a 16-row tile
and streams its weights: memory-bound). The bytes are the stored format's: weight-only
int4 streams about a quarter of bf16's bytes while its math stays at the GEMM precision
(the dequantising kernel is assumed to keep pace with the HBM stream; no dequantisation
cost is charged). Small-batch decode is memory-bound, large batches and prefill
compute-bound. Norms, residuals, permutes and the head read are memory-bound kernels.
Mixture-of-experts layers read only the experts the batch activates: with T tokens
choosing top_k of the E physical experts (routed plus EPLB's redundant copies, load
spread evenly), an expert is hit with probability 1 − (1 − k/E)^T; each expert's GEMM
sees its own rows (T·k/E), padded to a tile.

Attention is linear in the context. A decode token reads the KV cache of its request:
memory-bound for grouped-query attention, compute-heavier for absorbed latent attention,
whose rate comes from the FlashMLA rows where a chip has them (`kernels.py`); q query tokens
of one request (speculative verification) share one read of its cache, and FlashMLA pads
fewer than 64 query rows (heads · query tokens) to a full block. A prefill chunk of c
tokens after p cached ones does 2·heads·c·(p + c/2)·(d_qk + d_v) FLOPs (causal), at the bf16
attention rate (the cost layer's, at `PREFILL_KEY_LEN` keys) or, with fp8 attention, that
rate times FlashAttention-3's FP8/FP16 ratio.

Tensor parallelism costs two all-reduces per layer (Megatron-LM, Shoeybi et al. 2019),
expert parallelism a dispatch and a combine per MoE layer (DeepSeek-AI 2024, Sec. 3.4),
pipeline parallelism a send/recv per stage boundary; their times come from the topology's
`CommModel` on the placed groups, or, for DeepEP's low-latency decode kernels, from their
measured bandwidth against EP size (at least their one-token latency). With two-batch
overlap (SGLang's TBO) each layer runs two half batches, and one half's dispatch/combine
runs under the other's compute:
t_layer = max(2·compute(T/2), 2·a2a(T/2)); exposed all-to-all = max(0, 2·a2a − 2·compute),
the rest hidden. Halving the batch re-reads the weights, so TBO can lose at small batches.
Attention/FFN disaggregation (MegaScale-Infer, Zhu et al. 2025) moves the routed experts to
GPUs of their own and pipelines m micro-batches through attention, transfer, experts and
transfer back (`LayerCosts._ffn_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superscale.collectives.tuner import CommModel
from superscale.costs import roofline
from superscale.errors import SpecError
from superscale.hardware.spec import Chip, Cluster
from superscale.inference.kernels import (
    fp8_attention_kernel,
    low_latency_dispatch,
    mla_decode_kernel,
)
from superscale.inference.kv import (
    ACT_BYTES,
    BYTES_PER_ELEMENT,
    HEAD_BYTES,
    kv_bytes_per_token_layer_per_gpu,
)
from superscale.models.spec import ModelSpec
from superscale.parallelism.plan import GroupPlacement, place_group
from superscale.scenario.serving import PlanSpec

KERNELS_PER_DENSE_LAYER = 10  # norms, qkv, rope, attention, out, gate/up, act, down, residuals
KERNELS_PER_MOE_LAYER = 16  # + router, top-k, permute, grouped GEMMs, unpermute
GEMMS_PER_BLOCK = 4  # qkv, out, gate/up, down (of the 10 or 16 kernels above)
EXPERT_GEMMS = 2  # grouped gate/up and down
# Key length the prefill attention rate is read at from a profile (the model is affine in
# the causal pairs, so one rate serves a prompt; profiles vary little beyond 2k keys).
PREFILL_KEY_LEN = 4096.0
# A decode step's KV read per layer, whose streaming rate a profile is read at: tens to
# hundreds of MB at serving batches, where measured copy rates have long reached plateau.
DECODE_KV_READ_BYTES = 64.0 * 2**20


def resolve_dispatch(plan: PlanSpec, cluster: Cluster, *, role: str) -> str:
    """The MoE dispatch kernels a pool uses: none (no EP traffic), all_to_all, low_latency,
    or per_batch (the faster of the two at each iteration size).

    Raises:
        SpecError: low_latency asked on a chip without measured kernels.
    """
    stage = plan.tp * plan.attention_dp
    if stage <= 1:
        return "none"
    kernel = low_latency_dispatch(cluster.chip.name)
    # DeepEP sends each token to the ranks holding its experts: one expert shard per rank,
    # so expert tensor parallelism (ep < tp·attention_dp) has no low-latency kernels
    whole = plan.ep in (1, stage)
    if plan.moe_dispatch == "low_latency":
        if kernel is None:
            raise SpecError(
                f"moe_dispatch 'low_latency' has no measured kernels on {cluster.chip.name} "
                "(inference/kernels.yaml; allowed: auto, all_to_all)",
                path="serving.plan.moe_dispatch",
            )
        if not whole:
            raise SpecError(
                f"moe_dispatch 'low_latency' needs ep = tp·attention_dp = {stage} (DeepEP "
                f"shards whole experts), got ep {plan.ep}; allowed: auto, all_to_all",
                path="serving.plan.moe_dispatch",
            )
        return "low_latency"
    if plan.moe_dispatch == "all_to_all":
        return "all_to_all"
    ep_span = plan.ep if plan.ep > 1 else stage
    crosses = ep_span > cluster.system.scale_up.gpus
    if kernel is None or not crosses or not whole or role == "prefill":
        return "all_to_all"
    # a mixed pool runs decode and prefill batches: SGLang's auto mode picks the kernels by
    # batch, taken here as the faster of the two at each iteration size
    return "low_latency" if role == "decode" else "per_batch"


def resolve_attention_precision(requested: str, kv_precision: str, chip: Chip) -> str:
    """bf16 or fp8 attention math; SpecError for fp8 on a chip without a measured kernel."""
    kernel = fp8_attention_kernel(chip.name)
    if requested == "fp8" and kernel is None:
        raise SpecError(
            f"attention_precision 'fp8' has no measured kernel on {chip.name} "
            "(inference/kernels.yaml; allowed: auto, bf16)",
            path="serving.attention_precision",
        )
    if requested == "auto":
        return "fp8" if kernel is not None and kv_precision == "fp8" else "bf16"
    return requested


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerCosts:
    """Per-layer time curves of one model on one plan (functions of instance tokens)."""

    model: ModelSpec
    plan: PlanSpec
    cluster: Cluster
    comm: CommModel
    precision: str
    dispatch: str
    weight_bytes: float | None = None  # stored bytes per weight; None: the precision's

    @property
    def _wb(self) -> float:
        return BYTES_PER_ELEMENT[self.precision] if self.weight_bytes is None else self.weight_bytes

    def _group(self, kind: str, size: int, stride: int) -> GroupPlacement:
        return place_group(kind, size, stride, self.cluster)

    def _collective(self, name: str, nbytes: np.ndarray, group: GroupPlacement) -> np.ndarray:
        try:
            out: np.ndarray = np.asarray(self.comm.time_s(name, nbytes, group), dtype=np.float64)
        except ValueError as exc:
            raise SpecError(f"serving plan: {name} group does not fit the pool: {exc}") from None
        return out

    def linear(self, elements: float, m_tokens: np.ndarray, *, kernels: float = 0.0) -> np.ndarray:
        """GEMMs of `elements` weights per GPU over `m_tokens` rows, in `kernels` launches
        (0: overhead counted by the caller), through the shared cost layer."""
        h = self.model.hidden
        shape = (m_tokens, max(h // self.plan.tp, 1), h)
        return roofline.as_array(
            roofline.gemm_time_s(
                self.cluster.chip,
                self.precision,
                shape,
                hbm_bytes=elements * self._wb,
                flops=2.0 * m_tokens * elements,
                kernels=kernels,
            )
        )

    def _memory(self, nbytes: np.ndarray | float, kernels: float) -> np.ndarray:
        """Memory-bound kernels (norms, residuals, permutes) moving `nbytes` in all."""
        return roofline.as_array(roofline.memory_time_s(self.cluster.chip, nbytes, kernels=kernels))

    def dense(self, tokens: np.ndarray) -> np.ndarray:
        """Compute of one dense layer (attention projections and MLP, no attention core)."""
        model, plan = self.model, self.plan
        h, tp = model.hidden, plan.tp
        ta = tokens / plan.attention_dp
        attn = (model.attention_params - h) / tp
        out = self.linear(attn + (model.dense_mlp_params - h) / tp, ta, kernels=GEMMS_PER_BLOCK)
        out += self._memory(
            (10 * h + 3 * model.ffn_hidden / tp) * ACT_BYTES * ta,
            KERNELS_PER_DENSE_LAYER - GEMMS_PER_BLOCK,
        )
        return np.where(tokens > 0, out, 0.0)

    def moe(self, tokens: np.ndarray) -> np.ndarray:
        """Compute of one MoE layer: attention projections, shared and activated experts."""
        rest = KERNELS_PER_MOE_LAYER - KERNELS_PER_DENSE_LAYER - EXPERT_GEMMS
        out = self._moe_attention(tokens) + self._experts(tokens) + self._memory(0.0, rest)
        return np.where(tokens > 0, out, 0.0)

    def _moe_attention(self, tokens: np.ndarray) -> np.ndarray:
        """An MoE layer's attention projections and shared experts on the attention GPUs,
        with the layer's norms and residuals (the dense layer's kernels)."""
        model, plan = self.model, self.plan
        assert model.moe is not None
        moe, h, tp = model.moe, model.hidden, plan.tp
        ta = tokens / plan.attention_dp
        attn = (model.attention_params - h) / tp
        shared = moe.shared_experts * model._mlp_params(moe.shared_ffn) / tp
        out: np.ndarray = self.linear(attn + shared, ta, kernels=GEMMS_PER_BLOCK)
        out += self._memory(10 * h * ACT_BYTES * ta, KERNELS_PER_DENSE_LAYER - GEMMS_PER_BLOCK)
        return out

    def _experts(self, tokens: np.ndarray) -> np.ndarray:
        """The activated routed experts of one MoE layer on one expert GPU (ep-ways over
        the stage, or over the expert GPUs under attention/FFN disaggregation): grouped
        GEMMs whose rows per expert are each padded to a tile."""
        model, plan = self.model, self.plan
        assert model.moe is not None
        moe, h = model.moe, model.hidden
        etp = 1 if plan.ffn_disaggregation else plan.tp * plan.attention_dp // plan.ep
        physical, k = moe.experts + plan.redundant_experts, moe.top_k
        expert = model.expert_params / etp
        hit = 1.0 - np.power(1.0 - k / physical, tokens)
        expert_bytes = (physical / plan.ep) * hit * expert * self._wb
        rows = tokens * k / physical  # tokens per expert: the m of each grouped GEMM
        shape = (rows, max(moe.expert_ffn_hidden // etp, 1), h)
        out = roofline.as_array(
            roofline.gemm_time_s(
                self.cluster.chip,
                self.precision,
                shape,
                hbm_bytes=expert_bytes,
                flops=2.0 * (tokens * k / plan.ep) * expert,
                kernels=EXPERT_GEMMS,
            )
        )
        out += self._memory((tokens * k / plan.ep) * 4 * h * ACT_BYTES, 0.0)  # (un)permute
        return out

    def ffn_transfer(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(attention → expert, expert → attention) seconds of one MoE layer's `tokens`
        under attention/FFN disaggregation.

        Each token's top_k copies of the hidden state cross over (at the GEMM precision's
        width, fp8/int8 dispatch as DeepEP's, bf16 back): D = tokens · top_k · hidden ·
        bytes in all, D / attention GPUs leaving each attention GPU and D / ffn_gpus reaching
        each expert GPU. The busier side's share is priced as a point-to-point transfer
        between the two sides on the pool's topology (`collectives/p2p.py`).
        """
        model, plan = self.model, self.plan
        assert model.moe is not None and plan.ffn_disaggregation is not None
        total = tokens * model.moe.top_k * model.hidden
        busiest = total / min(plan.tp * plan.attention_dp, plan.ffn_gpus)
        group = self._group("ffn", 2, max(1, plan.instance_gpus // 2))
        there = self._collective("send_recv", busiest * BYTES_PER_ELEMENT[self.precision], group)
        back = self._collective("send_recv", busiest * ACT_BYTES, group)
        live = tokens > 0
        return np.where(live, there, 0.0), np.where(live, back, 0.0)

    def tp_comm(self, tokens: np.ndarray) -> np.ndarray:
        """The two all-reduces of one layer."""
        plan, h = self.plan, self.model.hidden
        group = self._group("tp", plan.tp, 1)
        return 2 * self._collective("all_reduce", tokens * h * ACT_BYTES / plan.attention_dp, group)

    def ep_comm(self, tokens: np.ndarray) -> np.ndarray:
        """Dispatch and combine of one MoE layer."""
        model, plan = self.model, self.plan
        if self.dispatch == "none" or model.moe is None:
            return np.zeros_like(tokens)
        if plan.ffn_disaggregation is not None:
            there, back = self.ffn_transfer(tokens)
            both: np.ndarray = there + back
            return both
        stage = plan.tp * plan.attention_dp
        etp = stage // plan.ep
        k, h = model.moe.top_k, model.hidden
        sent = tokens * k * h / stage  # each GPU sends its 1/tp share of its rank's tokens
        ep = plan.ep if plan.ep > 1 else stage
        if self.dispatch == "per_batch":
            fast = np.minimum(self._low_latency(sent, ep), self._all_to_all(sent, ep, etp))
            return np.where(tokens > 0, fast, 0.0)
        if self.dispatch == "low_latency":
            return np.where(tokens > 0, self._low_latency(sent, ep), 0.0)
        return self._all_to_all(sent, ep, etp)

    def _low_latency(self, sent: np.ndarray, ep: int) -> np.ndarray:
        """DeepEP low-latency dispatch (fp8 at fp8 weights) and bf16 combine of `sent`
        elements per GPU: bytes / the bandwidth measured at this EP size, at least the
        one-token latency measured at that size."""
        wb = BYTES_PER_ELEMENT[self.precision]
        kernel = low_latency_dispatch(self.cluster.chip.name)
        assert kernel is not None  # resolve_dispatch checked
        nic = self.cluster.nic_bytes_per_s_per_system / self.cluster.system.gpus
        d_bw = kernel.bandwidth_bytes_per_s("dispatch", ep, nic)
        c_bw = kernel.bandwidth_bytes_per_s("combine", ep, nic)
        dispatch = np.maximum(kernel.floor_s("dispatch", ep), sent * wb / d_bw)
        out: np.ndarray = dispatch + np.maximum(
            kernel.floor_s("combine", ep), sent * ACT_BYTES / c_bw
        )
        return out

    def _all_to_all(self, sent: np.ndarray, ep: int, etp: int) -> np.ndarray:
        """Dispatch and combine as all-to-all collectives on the placed EP group."""
        wb = BYTES_PER_ELEMENT[self.precision]
        group = self._group("ep", ep, etp if self.plan.ep > 1 else 1)
        both: np.ndarray = self._collective("all_to_all", sent * wb, group)
        both += self._collective("all_to_all", sent * ACT_BYTES, group)
        return both

    def pp_comm(self, tokens: np.ndarray) -> np.ndarray:
        plan, h = self.plan, self.model.hidden
        if plan.pp <= 1:
            return np.zeros_like(tokens)
        group = self._group("pp", plan.pp, plan.tp * plan.attention_dp)
        hop = self._collective("send_recv", tokens * h * ACT_BYTES / plan.attention_dp, group)
        return (plan.pp - 1) * hop

    def head(self, tokens: np.ndarray) -> np.ndarray:
        """Reading the output head once per iteration."""
        model, plan = self.model, self.plan
        read = self._memory(model.vocab * model.hidden / plan.tp * HEAD_BYTES, 0.0)
        return np.where(tokens > 0, read, 0.0)

    def sample_s(self) -> float:
        """Output-head GEMM per sampled token (bf16 head, TensorRT-LLM fp8 recipes), at the
        cost layer's large-GEMM bf16 rate (the sampled rows of a batch share the read)."""
        chip, model, plan = self.cluster.chip, self.model, self.plan
        profile = roofline.profile_for(chip, "gemm", "bf16")
        rate = roofline.gemm_flops_per_s(chip, "bf16", None, profile=profile)
        return float(2.0 * model.vocab * model.hidden / plan.tp / rate / plan.attention_dp)

    def parts(self, tokens: np.ndarray, *, overlap: bool) -> dict[str, np.ndarray]:
        """Each part of base(T) over the model's layers, with or without two-batch overlap."""
        model = self.model
        lm = model.moe_layers if model.moe is not None else 0
        ld = model.layers - lm
        moe_c = self.moe(tokens) if lm else np.zeros_like(tokens)
        dense_c, tp, a2a = self.dense(tokens), self.tp_comm(tokens), self.ep_comm(tokens)
        plain = {
            "compute": ld * dense_c + lm * moe_c + self.head(tokens),
            "tp_comm": model.layers * tp,
            "ep_comm": lm * a2a,
            "pp_comm": self.pp_comm(tokens),
            "ep_comm_hidden": np.zeros_like(tokens),
        }
        if plan_ffn := self.plan.ffn_disaggregation:
            return self._ffn_parts(tokens, plain, m=plan_ffn.micro_batches, lm=lm)
        if not overlap or not lm:
            return plain
        half = tokens / 2
        moe_h, tp_h, a2a_h = self.moe(half), self.tp_comm(half), self.ep_comm(half)
        busy = 2 * (moe_h + tp_h)  # both halves' compute and TP traffic of one MoE layer
        exposed = np.maximum(0.0, 2 * a2a_h - busy)
        tbo = {
            "compute": ld * 2 * self.dense(half) + lm * 2 * moe_h + self.head(tokens),
            "tp_comm": ld * 2 * self.tp_comm(half) + lm * 2 * tp_h,
            "ep_comm": lm * exposed,
            "pp_comm": 2 * self.pp_comm(half),
            "ep_comm_hidden": lm * (2 * a2a_h - exposed),
        }
        split = tokens >= 2  # one request cannot be split
        return {k: np.where(split, tbo[k], plain[k]) for k in plain}

    def _ffn_parts(
        self, tokens: np.ndarray, plain: dict[str, np.ndarray], *, m: int, lm: int
    ) -> dict[str, np.ndarray]:
        """base(T)'s parts under attention/FFN disaggregation with m ping-pong micro-batches.

        Per MoE layer each micro-batch of T/m tokens passes four stages: attention side
        (projections, shared experts), transfer there, routed experts, transfer back. m
        micro-batches circulating through four single-server stages repeat every
        max(Σ stages, m · max stage) (the cycle time of a marked graph: the loop of m
        tokens against each stage's own loop; Ramamoorthy & Ho 1980). The transfers'
        exposed time is that cycle less the same cycle with free transfers; the rest of
        their m · (there + back) is hidden. The attention core stays outside (the step
        model adds it per context token): exact when the attention side is the slowest
        stage (m · (attend + core/m) = m · attend + core), an upper bound otherwise.
        """
        x = tokens / m
        attend = self._moe_attention(x)
        rest = KERNELS_PER_MOE_LAYER - KERNELS_PER_DENSE_LAYER - EXPERT_GEMMS
        experts = self._experts(x) + self._memory(0.0, rest)
        there, back = self.ffn_transfer(x)
        cycle = np.maximum(
            attend + there + experts + back,
            m * np.maximum(np.maximum(attend, experts), np.maximum(there, back)),
        )
        busy = np.maximum(attend + experts, m * np.maximum(attend, experts))
        exposed = cycle - busy
        model = self.model
        dense = (model.layers - lm) * self.dense(tokens) + self.head(tokens)
        live = tokens > 0
        return {
            **plain,
            "compute": np.where(live, dense + lm * busy, 0.0),
            "ep_comm": np.where(live, lm * exposed, 0.0),
            "ep_comm_hidden": np.where(live, lm * np.maximum(m * (there + back) - exposed, 0), 0.0),
        }


def _attention_rates(
    model: ModelSpec, cluster: Cluster, *, attention_precision: str, query_rows: float
) -> tuple[float, float, float, float | None]:
    """(decode memory rate B/s, decode FLOP rate, prefill FLOP rate, MLA TFLOP/s or None);
    the decode FLOP rate counts the FLOPs asked for, so FlashMLA's padding of fewer than 64
    query rows per block lowers it. The generic rates are the cost layer's (profile or
    formulas); FlashMLA's measured shares replace them where a chip has them."""
    chip = cluster.chip
    hbm = roofline.stream_bytes_per_s(chip, DECODE_KV_READ_BYTES)
    head_dim = model.d_head if model.mla is None else None
    profile = roofline.profile_for(chip, "attention", "bf16")
    attn_rate = roofline.attention_flops_per_s(
        chip, "bf16", PREFILL_KEY_LEN, head_dim=head_dim, profile=profile
    )
    fp8 = fp8_attention_kernel(chip.name)
    if attention_precision == "fp8" and fp8 is not None:
        attn_rate *= fp8.speedup
    mla = mla_decode_kernel(chip.name) if model.mla is not None else None
    if mla is None:
        return hbm, attn_rate, attn_rate, None
    flops = chip.peak_flops("bf16") * mla.compute_share  # measured under throttling
    useful = flops / mla.padding(query_rows)
    return chip.hbm_bandwidth_bytes_per_s * mla.memory_share, useful, attn_rate, flops / 1e12


def attention_costs(
    model: ModelSpec,
    plan: PlanSpec,
    cluster: Cluster,
    *,
    kv_precision: str,
    attention_precision: str,
    query_tokens: int,
) -> tuple[float, float, float | None]:
    """(decode s per context token, prefill s per causal pair, MLA TFLOP/s) of an instance."""
    heads = model.heads / plan.tp
    mem_rate, decode_rate, prefill_rate, mla_tflops = _attention_rates(
        model, cluster, attention_precision=attention_precision, query_rows=heads * query_tokens
    )
    kv_bytes = kv_bytes_per_token_layer_per_gpu(model, plan.tp, kv_precision)
    if model.mla is not None:
        m = model.mla
        kv_flops = 2.0 * heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)  # absorbed MLA
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
    else:
        kv_flops = 4.0 * heads * model.d_head
        d_qk = d_v = model.d_head
    per_layer = max(kv_bytes / mem_rate, query_tokens * kv_flops / decode_rate)
    kv_s = model.layers * per_layer / plan.attention_dp
    pair_s = model.layers * 2.0 * heads * (d_qk + d_v) / prefill_rate / plan.attention_dp
    return kv_s, pair_s, mla_tflops
