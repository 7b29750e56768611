"""Peak memory per GPU: weights, gradients, optimizer states, activations and workspace.

Mixed-precision Adam keeps 16-bit weights (2 B/param), main gradients in the dtype they are
reduced in (`parallel.grad_reduce_dtype`: Megatron's DDP accumulates into one buffer of that
dtype; fp32, 4 B, is Megatron-LM's default for bf16 training) and fp32 master weights,
momentum and variance (12 B): 18 B/param, the Megatron-LM accounting, 16 with bf16 gradients. ZeRO
shards the optimizer states (stage 1), then gradients (2), then weights (3) across the
data-parallel group (Rajbhandari et al. 2020); routed experts shard across their own
expert-data-parallel group. Under HSDP they shard over the shard group only. ZeRO-3/FSDP
also holds gathered 16-bit weights: prefetch + 1 layers at once (the largest layer of the
stage, PyTorch FSDP2's default prefetch of 1), or every layer of the stage when
reshard_after_forward is off (the weights stay gathered from forward to backward).

Activations per layer generalise Korthikanti et al. 2022 (Sec. 4, Table 2) to grouped-query
and latent attention, gated MLPs and experts: with tensor parallelism t, sequence
parallelism, and the s² score terms only for unfused attention, a GPT layer stores
sbh·(10 + 24/t + 5as/(ht)) bytes, sbh·(34 + 5as/h)/t with sequence parallelism, 34·sbh/t with
selective recomputation, and only its 2·sbh input under full recomputation. Under 1F1B the
first stage holds p micro-batches in flight, L(1 + (p−1)/(pv)) layers' worth when
interleaved (Korthikanti et al. Sec. 4.2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superscale import vec
from superscale.models.spec import ModelSpec
from superscale.parallelism.plan import Plan
from superscale.scenario import Scenario
from superscale.schedules import Shape, schedules
from superscale.training.layer import ACT_BYTES, Shard
from superscale.training.lower import GRAD_REDUCE_BYTES, Program, StageProgram, shard_of
from superscale.units import GIB

WEIGHT_BYTES = 2
MOMENT_BYTES = {"fp32": 4, "bf16": 2}  # each of Adam's moments, beside 4 B master weights
# CUDA context, cuBLAS/cuDNN workspaces, NCCL buffers and allocator fragmentation: a
# documented allowance, not a measurement (typical PyTorch jobs reserve 2–4 GiB beyond
# tensors).
WORKSPACE_BYTES = 2.5 * GIB


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """Peak bytes per GPU on the stage that needs the most."""

    stage: int
    params_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    workspace_bytes: float

    @property
    def peak_bytes(self) -> float:
        return (
            self.params_bytes
            + self.grads_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.workspace_bytes
        )


def layer_activation_bytes(
    model: ModelSpec, sh: Shard, *, moe_layer: bool, recompute: str
) -> vec.Num:
    """Bytes one layer keeps for its backward pass, per micro-batch, on one GPU."""
    h, t, tok, ht = model.hidden, sh.tp, sh.tokens, sh.hidden_tokens
    full = recompute == "full"
    if vec.gate(full) is True:
        return ACT_BYTES * ht * h  # the layer's input only
    mask = 1.0 if sh.dropout else 0.0
    heads_local = model.heads / t
    # Named modules rebuilt in backward (selective recomputation only), and the inputs
    # DeepSeek-V3 keeps in fp8 (`low` bytes per element).
    mods = sh.recompute_modules
    sel = vec.where(recompute == "selective", 1.0, 0.0)

    def rebuilt(module: str) -> vec.Num:
        return sel if module in mods else 0.0

    low = 1.0 if sh.fp8_activations else ACT_BYTES
    norm_out = 2.0 * ht * h * (1.0 - rebuilt("layernorm"))  # the next GEMM's input
    if model.mla is not None:
        m = model.mla
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
        latents = (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim
        up_outputs = heads_local * (2 * d_qk + d_v)  # q, k, v of the local heads
        qkv_width = latents + up_outputs * (1.0 - rebuilt("mla_up_proj"))
    else:
        d_qk = d_v = model.d_head
        kv_local = vec.maximum(model.n_kv_heads / t, 1.0)
        qkv_width = (heads_local + 2 * kv_local) * d_qk
    attention = 2 * ht * h + norm_out + ACT_BYTES * tok * qkv_width
    attention += low * tok * heads_local * d_v + mask * ht * h  # out-proj input, mask
    q_len = sh.seq_len / sh.cp
    if sh.flash_attention:
        attention += 4.0 * sh.micro_batch * heads_local * q_len  # fp32 log-sum-exp
    else:
        scores = sh.micro_batch * heads_local * q_len * sh.seq_len
        kept = 1.0 - rebuilt("core_attn")
        attention += kept * (ACT_BYTES + (1 + ACT_BYTES) * mask) * scores
    mlp_input = 2 * ht * h + mask * ht * h
    act_factor = 3 if model.gated_mlp else 2  # the activation's input (1 or 2 ffn) + output
    if moe_layer and model.moe is not None:
        moe = model.moe
        routed = ht * moe.top_k * sh.expert_imbalance  # the busiest GPU's copies
        act_out = 1.0 - rebuilt("moe_act")
        # Per routed token copy: the up-projection's dispatched input and the SwiGLU's input
        # and output. The expert output is not kept: Megatron-Core (0.13+) applies the router
        # probabilities inside the activation, not at unpermutation (its MoE README).
        per_copy = low * h + low * (act_factor - 1) * moe.expert_ffn_hidden
        per_copy += ACT_BYTES * act_out * moe.expert_ffn_hidden
        block = norm_out + routed * per_copy
        if moe.shared_experts:
            width = moe.shared_experts * moe.shared_ffn / t
            shared = tok * width * (low * (act_factor - 1) + ACT_BYTES * act_out)
            block += shared * (1.0 - rebuilt("shared_experts"))
        mlp = mlp_input + block * (1.0 - rebuilt("moe"))
    else:
        dense = norm_out + ACT_BYTES * act_factor * tok * model.ffn_hidden / t
        mlp = mlp_input + dense * (1.0 - rebuilt("mlp"))
    if vec.gate(full) is None:  # a batch mixing full recomputation with other modes
        return vec.where(full, ACT_BYTES * ht * h, attention + mlp)
    return attention + mlp


def _in_flight(plan: Plan, stage: int) -> vec.Num:
    """Micro-batches whose activations a stage holds at once, as its schedule says."""
    shape = Shape(stages=plan.pp, micro_batches=plan.micro_batches, chunks=plan.virtual_stages)
    known = schedules()
    codes: Any = plan.schedule  # a name, or an array of names for a batch of plans
    if not vec.is_array(codes):
        return known[codes].in_flight(shape, stage)
    # a batch mixing schedules (same pipeline shape): each row takes its own schedule's
    names = [str(n) for n in np.unique(codes)]
    return np.select(
        [codes == n for n in names],
        [np.broadcast_to(known[n].in_flight(shape, stage), codes.shape) for n in names],
    )


def _weight_copies(plan: Plan) -> vec.Num:
    """Copies of a rank's parameters its schedule keeps (DualPipe: two)."""
    copies = {name: float(s.weight_copies) for name, s in schedules().items()}
    return vec.lookup(copies, plan.schedule)


@dataclass(slots=True)
class _PerLayer:
    """One layer's activation bytes under the plan's recomputation (`kept`) and without
    (`rebuilt`), dense or MoE: every stage asks the same four questions, so each is asked
    once."""

    model: ModelSpec
    shard: Shard
    recompute: Any
    memo: dict[tuple[bool, bool], Any] = field(default_factory=dict)

    def kept(self, *, moe_layer: bool) -> Any:
        return self._get(moe_layer, self.recompute)

    def rebuilt(self, *, moe_layer: bool) -> Any:
        return self._get(moe_layer, "none")

    def _get(self, moe_layer: bool, recompute: Any) -> Any:
        key = (moe_layer, isinstance(recompute, str) and recompute == "none")
        if key not in self.memo:
            self.memo[key] = layer_activation_bytes(
                self.model, self.shard, moe_layer=moe_layer, recompute=recompute
            )
        return self.memo[key]


def _stage_activation_bytes(
    scenario: Scenario, plan: Plan, stage: StageProgram, sh: Shard, acts: _PerLayer
) -> vec.Num:
    model = scenario.model
    recompute = plan.recompute
    dense_layers = stage.layers - stage.moe_layers
    per_mb = dense_layers * acts.kept(moe_layer=False)
    per_mb += stage.moe_layers * acts.kept(moe_layer=True)
    total = per_mb * _in_flight(plan, stage.index)
    if vec.gate(recompute == "full") is not False:  # one layer rebuilt during backward
        rebuilt = acts.rebuilt(moe_layer=stage.moe_layers > 0)
        total += vec.where(recompute == "full", rebuilt, 0.0)
    if stage.index == plan.pp - 1:  # logits in 16 bits and fp32 softmax, one micro-batch
        total += (ACT_BYTES + 4) * sh.tokens * model.vocab / plan.tp
    if (
        stage.index == 0
        and model.vision is not None
        and scenario.require_training().images_per_sample
    ):
        v = model.vision
        tokens = plan.micro_batch * scenario.require_training().images_per_sample * v.patches
        per_layer = ACT_BYTES * tokens * (8 * v.hidden + 2 * v.ffn_hidden) / plan.tp
        total += v.layers * per_layer * _in_flight(plan, 0)
    return total


def _gathered_bytes(scenario: Scenario, plan: Plan, stage: StageProgram) -> vec.Num:
    """16-bit weights ZeRO-3/FSDP holds gathered at once on one GPU of `stage`: prefetch + 1
    of its largest layers, or all of them without resharding after forward."""
    model = scenario.model
    if vec.gate(plan.zero == 3) is False or stage.layers == 0:
        return 0.0
    whole = (stage.dense_params + stage.expert_params) * WEIGHT_BYTES
    largest: vec.Num = 0.0
    if stage.layers > stage.moe_layers:
        largest = (model.attention_params + model.dense_mlp_params) / plan.tp
    if stage.moe_layers and model.moe is not None:
        moe_dense = model.attention_params + model.moe_mlp_params
        experts = model.moe.experts * model.expert_params
        largest = vec.maximum(largest, (moe_dense - experts) / plan.tp + experts / plan.ep)
    live = vec.minimum(whole, (plan.fsdp_prefetch + 1) * largest * WEIGHT_BYTES)
    held = whole if not plan.fsdp_reshard else live
    return vec.where(plan.zero == 3, held, 0.0)


def estimate_memory(scenario: Scenario, plan: Plan, program: Program) -> Memory:
    """Peak memory per GPU over all stages."""
    sh = shard_of(scenario, plan)
    optimizer_bytes = 4 + 2 * MOMENT_BYTES[scenario.require_training().adam_moments]
    dp_shard = plan.dp_shard
    edp_shard = plan.groups["edp"].size
    copies = _weight_copies(plan)
    per_layer = _PerLayer(model=scenario.model, shard=sh, recompute=plan.recompute)
    per_stage: list[Memory] = []
    # the first of each distinct stage: a later twin holds no more micro-batches in flight
    for stage, _ in program.distinct_stages():
        dense, expert = stage.dense_params * copies, stage.expert_params * copies

        def sharded(nbytes: float, min_stage: int, d: Any = dense, e: Any = expert) -> Any:
            on = plan.zero >= min_stage
            return d * nbytes / vec.where(on, dp_shard, 1) + e * nbytes / vec.where(
                on, edp_shard, 1
            )

        per_stage.append(
            Memory(
                stage=stage.index,
                params_bytes=sharded(WEIGHT_BYTES, 3) + _gathered_bytes(scenario, plan, stage),
                grads_bytes=sharded(GRAD_REDUCE_BYTES[plan.grad_reduce_dtype], 2),
                optimizer_bytes=sharded(optimizer_bytes, 1),
                activations_bytes=_stage_activation_bytes(scenario, plan, stage, sh, per_layer),
                workspace_bytes=WORKSPACE_BYTES,
            )
        )
    peaks = [m.peak_bytes for m in per_stage]
    if not vec.is_array(*peaks):  # one plan: the first stage with the largest peak
        return max(per_stage, key=lambda m: m.peak_bytes)
    index = np.argmax(np.stack(np.broadcast_arrays(*peaks)), axis=0)

    def pick(field: str) -> Any:
        values = [np.broadcast_to(getattr(m, field), index.shape) for m in per_stage]
        return np.take_along_axis(np.stack(values), index[None, :], axis=0)[0]

    return Memory(
        stage=index,
        params_bytes=pick("params_bytes"),
        grads_bytes=pick("grads_bytes"),
        optimizer_bytes=pick("optimizer_bytes"),
        activations_bytes=pick("activations_bytes"),
        workspace_bytes=WORKSPACE_BYTES,
    )
