"""KV-cache bytes per token, weights per GPU, and the HBM left for the KV cache.

A quantised cache stores each element at its format's width plus its group's scales
(`kv_bytes_per_element`): KIVI-style int8/int4/int2 (Liu et al. 2024) an fp16 scale and zero
point per group, NVFP4 an fp8 scale per 16 elements; a recent window kept at full precision
(KIVI's residual) is not modelled.

Grouped-query attention keeps keys and values of `kv_heads` heads per layer:
2 · kv_heads · d_head elements per token (Ainslie et al. 2023); tensor parallelism splits the
heads, replicating them when tp exceeds kv_heads. Multi-head latent attention keeps one
compressed latent of kv_lora_rank elements plus the decoupled rotary key of
qk_rope_head_dim per token and layer (DeepSeek-AI 2024, DeepSeek-V2 Sec. 2.1), shared by all
heads, so tensor parallelism replicates it: that is why latent-attention models use attention
data parallelism, each rank keeping the cache of its own requests.

Memory per GPU = weights of its stage (with EPLB's redundant expert copies and a
speculative drafter's layer or model) + workspace (activations of one iteration's token
budget, logits, and a fixed runtime reserve) + KV cache (the drafter's included), within
`gpu_memory_utilization` of HBM (vLLM's `gpu_memory_utilization`, default 0.9). Logits are
reserved per attention-DP rank: each rank samples only its own requests. Pools on DeepEP's
low-latency kernels also hold their RDMA buffer, sized for a rank's largest decode batch.
Under attention/FFN disaggregation the routed experts sit on expert GPUs of their own, which
must hold them and the runtime reserve; the KV cache lives on the attention GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from superscale import units
from superscale.hardware.spec import Chip
from superscale.models.spec import ModelSpec
from superscale.scenario.serving import PlanSpec, QuantizationSpec, SchedulerSpec

BYTES_PER_ELEMENT = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
    "int2": 0.25,
}
SCALE_BYTES = 2.0  # one fp16 scale per quantisation group (GPTQ, AWQ)
KV_GROUP_BYTES = 4.0  # fp16 scale + fp16 zero point per KV group (KIVI, Liu et al. 2024)
NVFP4_BLOCK, NVFP4_SCALE_BYTES = 16, 1.0  # one E4M3 scale per 16 fp4 values (NVIDIA NVFP4)
ACT_BYTES = 2.0  # activations stay in 16 bits between GEMMs
HEAD_BYTES = 2.0  # embedding and output head stay in 16 bits (TensorRT-LLM fp8 recipes)
RUNTIME_RESERVE_BYTES = 1.5 * units.GIB  # CUDA context, NCCL buffers, CUDA graphs


def bytes_per_weight(precision: str, quant: QuantizationSpec | None = None) -> float:
    """Stored bytes per weight element: the precision's, or the quantised format's plus its
    group scale (fp16) and zero point (the weight's width) shared by `group_size` weights.

    GPTQ/AWQ int4, group 128, asymmetric: 0.5 + (2 + 0.5) / 128 = 0.51953125 bytes.
    """
    if quant is None:
        return BYTES_PER_ELEMENT[precision]
    wb = BYTES_PER_ELEMENT[quant.weights]
    if quant.group_size == 0:  # per output channel: k weights share one scale
        return wb
    return wb + (SCALE_BYTES + (wb if quant.zero_point else 0.0)) / quant.group_size


def kv_format(kv_precision: str, group_size: int) -> str:
    """The resolved KV format: the precision, with its group for integer formats
    ("int2-g32"), which is how `kv_bytes_per_element` learns the scale overhead."""
    return f"{kv_precision}-g{group_size}" if kv_precision.startswith("int") else kv_precision


def kv_bytes_per_element(kv: str) -> float:
    """Bytes per cached element of a KV format (`kv_format`), scales included.

    int2 in groups of 32: 0.25 + 4/32 = 0.375 B; NVFP4: 0.5 + 1/16 = 0.5625 B; fp8 and the
    16-bit formats carry per-tensor scales only (negligible).
    """
    name, _, group = kv.partition("-g")
    if group:
        return BYTES_PER_ELEMENT[name] + KV_GROUP_BYTES / int(group)
    if name == "fp4":
        return BYTES_PER_ELEMENT[name] + NVFP4_SCALE_BYTES / NVFP4_BLOCK
    return BYTES_PER_ELEMENT[name]


def kv_elements_per_token_layer(model: ModelSpec) -> int:
    """Cached elements per token and layer, for the whole model (all heads)."""
    if model.mla is not None:
        return model.mla.kv_lora_rank + model.mla.qk_rope_head_dim
    return 2 * model.n_kv_heads * model.d_head


def kv_bytes_per_token(model: ModelSpec, kv_precision: str) -> float:
    """KV-cache bytes one token occupies across the whole model (all layers, all heads)."""
    return kv_elements_per_token_layer(model) * model.layers * kv_bytes_per_element(kv_precision)


def kv_bytes_per_token_layer_per_gpu(model: ModelSpec, tp: int, kv_precision: str) -> float:
    """KV bytes of one token in one layer on one GPU of a tensor-parallel group."""
    b = kv_bytes_per_element(kv_precision)
    if model.mla is not None:
        return kv_elements_per_token_layer(model) * b  # latent replicated across tp
    return 2 * max(model.n_kv_heads / tp, 1.0) * model.d_head * b


def _stage_layers(model: ModelSpec, pp: int) -> float:
    return math.ceil(model.layers / pp)


def moe_layer_params_per_gpu(model: ModelSpec, plan: PlanSpec) -> float:
    """MLP elements of one MoE layer on one GPU: its experts (routed and redundant copies,
    ep × expert-tp = the stage's GPUs), its shard of the shared experts, the router."""
    assert model.moe is not None
    moe = model.moe
    physical = moe.experts + plan.redundant_experts
    experts = physical * model.expert_params / (plan.tp * plan.attention_dp)
    if plan.ffn_disaggregation is not None:
        experts = 0.0  # on the expert GPUs (`ffn_weight_bytes_per_gpu`)
    shared = moe.shared_experts * model._mlp_params(moe.shared_ffn) / plan.tp
    return experts + shared + model.hidden * moe.experts


def ffn_weight_bytes_per_gpu(model: ModelSpec, plan: PlanSpec, *, weight_bytes: float) -> float:
    """Routed experts one expert GPU holds under attention/FFN disaggregation: its
    (experts + redundant) / ep whole experts of every MoE layer; 0 without it."""
    if plan.ffn_disaggregation is None or model.moe is None:
        return 0.0
    physical = model.moe.experts + plan.redundant_experts
    return model.moe_layers * physical / plan.ep * model.expert_params * weight_bytes


def weight_bytes_per_gpu(
    model: ModelSpec, plan: PlanSpec, precision: str, *, weight_bytes: float | None = None
) -> float:
    """Weights one GPU holds: its stage's layers, its tp shard, its experts (largest stage).

    Args:
        weight_bytes: stored bytes per weight (`bytes_per_weight`); default the precision's.
    """
    wb = BYTES_PER_ELEMENT[precision] if weight_bytes is None else weight_bytes
    share = _stage_layers(model, plan.pp) / model.layers
    total = model.layers * model.attention_params / plan.tp
    total += model.dense_layers * model.dense_mlp_params / plan.tp
    if model.moe is not None:
        total += model.moe_layers * moe_layer_params_per_gpu(model, plan)
    emb = model.embedding_params * HEAD_BYTES / plan.tp
    if plan.pp > 1:
        emb /= 2  # embedding on the first stage, head on the last
    return total * share * wb + emb


def draft_layer_bytes_per_gpu(
    model: ModelSpec,
    plan: PlanSpec,
    precision: str,
    *,
    moe_layer: bool,
    weight_bytes: float | None = None,
) -> float:
    """One draft layer on one GPU: a transformer layer of the model's shape (an MoE layer
    for DeepSeek-V3's MTP module, Sec. 2.2; a dense one for an EAGLE head, Li et al. 2024)
    plus its 2h→h input projection; embedding and output head are shared with the model."""
    h = model.hidden
    params = model.attention_params / plan.tp + 2 * h * h / plan.tp
    if moe_layer and model.moe is not None:
        params += moe_layer_params_per_gpu(model, plan)
    else:
        params += model.dense_mlp_params / plan.tp
    return params * (BYTES_PER_ELEMENT[precision] if weight_bytes is None else weight_bytes)


def low_latency_buffer_bytes(hidden: int, experts: int, tokens_per_rank: int) -> float:
    """DeepEP's low-latency RDMA buffer on one GPU, sized for `tokens_per_rank` tokens.

    DeepEP csrc/config.hpp `LowLatencyLayout` (github:deepseek-ai/DeepEP @030cdf0a): odd/even
    send buffers of max(T·dispatch msg, E·T·combine msg) and receive buffers of E·T·max msg,
    a dispatch message carrying a 16-byte header and max(2h, h + h/128·4) bytes (bf16, or
    fp8 with one fp32 scale per 128 channels), a combine message h/128·4 + 2h bytes.
    """
    scales = hidden // 128
    dispatch_msg = 16 + max(2 * hidden, hidden + 4 * scales)
    combine_msg = 4 * scales + 2 * hidden
    send = max(tokens_per_rank * dispatch_msg, experts * tokens_per_rank * combine_msg)
    recv = experts * tokens_per_rank * max(dispatch_msg, combine_msg)
    return float(2 * (send + recv))


def logits_bytes_per_gpu(
    model: ModelSpec, plan: PlanSpec, sched: SchedulerSpec, *, query_tokens: int = 1
) -> float:
    """fp32 logits of one iteration's sampled tokens on one GPU.

    Each attention-dp rank samples only its own requests (SGLang's DP attention gathers
    hidden states per rank, not the instance's), so the buffer holds max_batch/attention_dp
    requests' rows, times the query tokens each verifies under speculative decoding.
    """
    rows = math.ceil(sched.max_batch / plan.attention_dp) * query_tokens
    return rows * model.vocab / plan.tp * 4.0


def workspace_bytes_per_gpu(
    model: ModelSpec, plan: PlanSpec, sched: SchedulerSpec, *, query_tokens: int = 1
) -> float:
    """Activations of one iteration's token budget, its logits, and the runtime reserve."""
    tokens = sched.max_batch_tokens / plan.attention_dp
    ffn = model.ffn_hidden if model.moe is None else model.moe.expert_ffn_hidden * model.moe.top_k
    acts = tokens * (4 * model.hidden + 2 * ffn / plan.tp) * ACT_BYTES
    logits = logits_bytes_per_gpu(model, plan, sched, query_tokens=query_tokens)
    return acts + logits + RUNTIME_RESERVE_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class KvBudget:
    """Where one GPU's HBM goes, and how many tokens of KV cache an instance holds."""

    hbm_bytes: float
    usable_bytes: float
    weights_bytes: float  # the model's and the drafter's
    workspace_bytes: float
    logits_bytes: float  # part of the workspace
    dispatch_buffer_bytes: float  # part of the workspace: DeepEP low-latency buffer
    kv_bytes: float  # left for the KV cache, per GPU (negative: does not fit)
    kv_bytes_per_token_per_gpu: float
    kv_tokens_per_instance: int
    ffn_weights_bytes: float = 0.0  # per expert GPU under attention/FFN disaggregation

    @property
    def ffn_fits(self) -> bool:
        return self.ffn_weights_bytes + RUNTIME_RESERVE_BYTES <= self.usable_bytes

    @property
    def fits(self) -> bool:
        return self.kv_bytes > 0 and self.kv_tokens_per_instance > 0 and self.ffn_fits

    def to_json(self) -> dict[str, float | int | bool]:
        gib = units.bytes_to_gib
        return {
            "hbm_gib": gib(self.hbm_bytes),
            "usable_gib": gib(self.usable_bytes),
            "weights_gib": gib(self.weights_bytes),
            "workspace_gib": gib(self.workspace_bytes),
            "logits_gib": gib(self.logits_bytes),
            "dispatch_buffer_gib": gib(self.dispatch_buffer_bytes),
            "kv_cache_gib": gib(max(self.kv_bytes, 0.0)),
            "kv_bytes_per_token_per_gpu": self.kv_bytes_per_token_per_gpu,
            "kv_tokens_per_instance": self.kv_tokens_per_instance,
            "fits": self.fits,
            "over_by_gib": gib(max(-self.kv_bytes, 0.0)),
            "ffn_weights_gib": gib(self.ffn_weights_bytes),
        }


def kv_budget(
    model: ModelSpec,
    plan: PlanSpec,
    chip: Chip,
    *,
    precision: str,
    kv_precision: str,
    scheduler: SchedulerSpec,
    query_tokens: int = 1,
    draft_weight_bytes: float = 0.0,
    draft_kv_bytes_per_token: float = 0.0,
    dispatch_buffer_bytes: float = 0.0,
    weight_bytes: float | None = None,
) -> KvBudget:
    """HBM split of one GPU and the KV tokens one instance can hold.

    Args:
        precision: GEMM precision (bf16, fp8, fp4, int8), the weights' without quantisation.
        kv_precision: KV-cache precision.
        query_tokens: tokens each decoding request verifies per iteration (1 + drafted).
        draft_weight_bytes: the drafter's weights on this GPU.
        draft_kv_bytes_per_token: the drafter's KV bytes per token on this GPU.
        dispatch_buffer_bytes: MoE dispatch kernels' communication buffer (workspace).
        weight_bytes: stored bytes per weight (quantised); default the precision's.
    Returns:
        The budget; `kv_tokens_per_instance` counts tokens over the instance's attention-dp
        ranks (each rank caches its own requests).
    """
    usable = chip.hbm_bytes * scheduler.gpu_memory_utilization
    weights = weight_bytes_per_gpu(model, plan, precision, weight_bytes=weight_bytes)
    weights += draft_weight_bytes
    workspace = workspace_bytes_per_gpu(model, plan, scheduler, query_tokens=query_tokens)
    workspace += dispatch_buffer_bytes
    kv = usable - weights - workspace
    per_token = kv_bytes_per_token_layer_per_gpu(model, plan.tp, kv_precision)
    per_token = per_token * _stage_layers(model, plan.pp) + draft_kv_bytes_per_token
    tokens = int(max(kv, 0.0) // per_token) * plan.attention_dp
    return KvBudget(
        hbm_bytes=chip.hbm_bytes,
        usable_bytes=usable,
        weights_bytes=weights,
        workspace_bytes=workspace,
        logits_bytes=logits_bytes_per_gpu(model, plan, scheduler, query_tokens=query_tokens),
        dispatch_buffer_bytes=dispatch_buffer_bytes,
        kv_bytes=kv,
        kv_bytes_per_token_per_gpu=per_token,
        kv_tokens_per_instance=tokens,
        ffn_weights_bytes=ffn_weight_bytes_per_gpu(
            model,
            plan,
            weight_bytes=BYTES_PER_ELEMENT[precision] if weight_bytes is None else weight_bytes,
        ),
    )


def max_batch_that_fits(budget: KvBudget, context_tokens: float) -> int:
    """Requests of `context_tokens` (prompt + output) whose KV fits in one instance."""
    if context_tokens <= 0:
        return 0
    return int(budget.kv_tokens_per_instance // math.ceil(context_tokens))
