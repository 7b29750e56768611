"""Lower one transformer layer (and the embedding, logits and vision encoder) to ops.

Per GPU and per micro-batch of `b` sequences of `s` tokens, with tensor parallelism `tp`
(Megatron-LM column/row split; Shoeybi et al. 2019), optional sequence parallelism (norms,
residuals and dropout sharded over tp; Korthikanti et al. 2022), context parallelism `cp`
(each GPU holds s/cp queries and attends to all s keys, ring exchange of K and V) and
expert parallelism (tokens dispatched to their top-k experts by all-to-all).

FLOPs: a GEMM of (m, n, k) is 2mnk. Attention scores and values are counted at full s²
(the convention; Narayanan et al. 2021 eq. 3); a causal flash kernel does about half that
work, which is what its time is charged for. HBM bytes of elementwise kernels follow the
tensors each fused kernel reads and writes (2-byte activations, 1-byte dropout masks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from superscale import vec
from superscale.costs.dispatch import DISPATCH_PREPARATION_S, payload_factor
from superscale.models.spec import ModelSpec
from superscale.program.ops import Collective, CommOp, ComputeOp, Op, gated

ACT_BYTES = 2  # bf16/fp16 activations; fp8 runs keep activations in bf16 between GEMMs
# Quantize traffic per GEMM input element under each fp8 recipe (Transformer Engine): read
# the bf16 input (2 B), write it in fp8 and its transposed fp8 copy for backward (1 + 1 B);
# current scaling first reads the input once more for its amax (+2 B); block and MX
# scaling find each block's scale inside the quantize kernel (+1/128 or +1/32 B of scales).
# NVFP4 (NVIDIA 2025, "Pretraining LLMs with NVFP4"): the per-tensor fp32 scale needs the
# tensor's amax first (+2 B read), then read 2 B and write two FP4 E2M1 copies (0.5 B
# each) with an E4M3 scale per 16 elements (1/16 B each); the random Hadamard transform
# of wgrad inputs is fused into the quantize kernel.
FP8_CAST_BYTES = {
    "delayed": 4.0,
    "current": 6.0,
    "blockwise": 4.0 + 1 / 128,
    "mxfp8": 4.0 + 1 / 32,
    "nvfp4": 2.0 + 2.0 + 2 * (0.5 + 1 / 16),
}
LOW_DTYPE = {"nvfp4": "fp4"}  # recipes whose layer GEMMs are not fp8
_UNFUSED_ATTENTION = frozenset({"attn_scores", "attn_values"})  # FP4 is for linear layers
FLASH_BLOCK = 128  # query/key tile of fused attention: causal work = (s + block) / 2s of full


Shape2 = tuple[float, float]
Shape3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Shard:
    """How one GPU's slice of a micro-batch is shaped."""

    micro_batch: int
    seq_len: int
    tp: int = 1
    cp: int = 1
    ep: int = 1
    sequence_parallel: bool = False
    flash_attention: bool = True
    dropout: bool = False
    recompute_modules: tuple[str, ...] = ("core_attn",)  # under selective recompute
    fp8_activations: bool = False  # out-proj, MoE up-projection and SwiGLU inputs in fp8
    ep_nodes: vec.Num = 1.0  # scale-up domains one expert-parallel group spans
    ep_dedup: bool = False  # one copy of a token per destination node (DeepEP, Hybrid-EP)
    dispatch_bytes: int = ACT_BYTES  # bytes per element dispatched (fp8 under DeepEP)
    expert_gemm_grouped: bool = False  # one grouped kernel over the local experts
    local_experts: vec.Num = 1.0  # experts (with redundant replicas) held by one GPU
    expert_imbalance: float = 1.0  # busiest GPU's routed tokens over the mean (≥ 1)
    fp8_cast_bytes: float = 4.0  # per GEMM input element under fp8 (FP8_CAST_BYTES)
    low_dtype: str = "fp8"  # the layer GEMMs' dtype under fp8 training (LOW_DTYPE; bf16
    # in the layers training.bf16_layers keeps out of fp8)
    doc_square_share: float = 1.0  # Σ doc_len² / seq_len² of a packed sequence (masking)

    @property
    def tokens(self) -> int:
        """Tokens of the micro-batch this GPU's tensor-parallel group holds."""
        return self.micro_batch * self.seq_len // self.cp

    @property
    def hidden_tokens(self) -> vec.Num:
        """Tokens of hidden-width tensors per GPU (sharded by tp under sequence parallel)."""
        return vec.where(self.sequence_parallel, self.tokens / self.tp, vec.as_float(self.tokens))


def _gemm_op(
    name: str, flops: float, operand_bytes: float, io_elements: Shape2, shape: Shape3
) -> ComputeOp:
    """A GEMM op; `io_elements` are (input activations, output) elements, the first what an
    fp8 GEMM quantizes forward, the second what its gradient quantizes backward."""
    m, n, k = shape
    inputs, outputs = io_elements
    return ComputeOp(
        name=name,
        kind="gemm",
        flops=flops,
        counted_flops=flops,
        hbm_bytes=operand_bytes + ACT_BYTES * outputs,
        operand_bytes=operand_bytes,
        cast_elements=inputs,
        grad_cast_elements=outputs,
        shape=(vec.dim(m), vec.dim(n), vec.dim(k)),
    )


def _gemm(name: str, m: float, n: float, k: float, *, batch: float = 1.0) -> ComputeOp:
    """`batch` GEMMs of (m, n, k): inputs and output at 16 bits."""
    operands = ACT_BYTES * batch * (m * k + k * n)
    io = (batch * m * k, batch * m * n)
    return replace(_gemm_op(name, 2.0 * batch * m * n * k, operands, io, (m, n, k)), batch=batch)


def grouped_gemm(
    name: str, rows: float, n: float, k: float, *, groups: float, fused: bool
) -> ComputeOp:
    """The GEMMs of `groups` local experts that together receive `rows` tokens: (rows, n, k)
    of work and every expert's (k, n) weights read once. `fused`: one grouped kernel
    (DeepGEMM's contiguous layout, CUTLASS grouped GEMM) schedules the tiles of all groups
    as one problem with the groups concatenated along M, so its tile efficiency sees all
    the rows, in one launch; else a GEMM per expert, each seeing rows / groups and each
    launched on its own (Transformer Engine's GroupedLinear)."""
    operands = ACT_BYTES * (rows * k + groups * k * n)
    shape_m = rows if fused else rows / groups
    op = _gemm_op(name, 2.0 * rows * n * k, operands, (rows * k, rows * n), (shape_m, n, k))
    return op if fused else replace(op, kernels=groups)


def _elementwise(name: str, hbm_bytes: float, kernels: int = 1) -> ComputeOp:
    return ComputeOp(name=name, kind="elementwise", hbm_bytes=hbm_bytes, kernels=kernels)


# Router kernels per (token, expert) score, Megatron-Core's fused router (TE
# `fused_topk_with_score_function` and the fused aux-loss score kernels, on by
# `moe_router_fusion`): top-k reads the 16-bit logits and writes fp32 probabilities and a
# 1-byte routing map (2 + 4 + 1 B); the load-balancing loss reads the logits again, writes
# fp32 scores and reduces them with the map (2 + 4 + 4 + 1 B).
ROUTER_BYTES_PER_SCORE = 18.0
ROUTER_KERNELS = 3


def _router_topk(tokens: vec.Num, experts: int) -> ComputeOp:
    """Score function, top-k and the load-balancing loss over a GPU's router logits; the
    gradient reads the probabilities' gradient and writes the logits' (about as many
    bytes)."""
    return ComputeOp(
        name="router_topk",
        kind="elementwise",
        hbm_bytes=ROUTER_BYTES_PER_SCORE * tokens * experts,
        kernels=ROUTER_KERNELS,
        backward_bytes_factor=1.0,
    )


def _local_heads(heads: int, tp: int) -> vec.Num:
    return vec.maximum(heads / tp, 1.0)  # heads fewer than tp are replicated (GQA kv heads)


def attention_ops(model: ModelSpec, sh: Shard) -> list[ComputeOp]:
    """Norm, projections, core attention and residual of one layer's attention block."""
    h, t, tok = model.hidden, sh.tp, sh.tokens
    ht = sh.hidden_tokens
    ops: list[ComputeOp] = [_elementwise("attn_norm", 2 * ACT_BYTES * ht * h)]
    heads_local = model.heads / t
    if model.mla is not None:
        m = model.mla
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
        if m.q_lora_rank:
            ops.append(_gemm("q_down", tok, m.q_lora_rank, h))
            ops.append(_gemm("q_up", tok, heads_local * d_qk, m.q_lora_rank))
        else:
            ops.append(_gemm("q_proj", tok, heads_local * d_qk, h))
        ops.append(_gemm("kv_down", tok, m.kv_lora_rank + m.qk_rope_head_dim, h))
        ops.append(_gemm("kv_up", tok, heads_local * (m.qk_nope_head_dim + d_v), m.kv_lora_rank))
        q_width, kv_width = heads_local * d_qk, heads_local * (d_qk + d_v)
    else:
        d_qk = d_v = model.d_head
        kv_local = _local_heads(model.n_kv_heads, t)
        q_width, kv_width = heads_local * d_qk, 2 * kv_local * d_qk
        ops.append(_gemm("qkv", tok, q_width + kv_width, h))
    if model.position_embeddings == 0:  # rotary embedding on q and k
        ops.append(_elementwise("rope", 2 * ACT_BYTES * tok * (q_width + kv_width / 2)))
    ops.extend(core_attention_ops(model, sh, d_qk=d_qk, d_v=d_v))
    ops.append(_gemm("attn_out", tok, h, heads_local * d_v))
    ops.append(_residual("attn_residual", h, ht, sh.dropout))
    return ops


def core_attention_ops(model: ModelSpec, sh: Shard, *, d_qk: int, d_v: int) -> list[ComputeOp]:
    """softmax(QKᵀ)V for this GPU's heads and queries against all keys."""
    b, s, heads_local = sh.micro_batch, sh.seq_len, model.heads / sh.tp
    q_len = s / sh.cp
    counted = 2.0 * b * heads_local * q_len * s * (d_qk + d_v)
    if sh.flash_attention:
        # causal inside each document: Σ_d (d² + block·d)/2 of the s² counted (one document:
        # (s + block)/2s); the varlen kernel skips blocks across document boundaries
        causal = min(1.0, sh.doc_square_share / 2.0 + FLASH_BLOCK / (2.0 * s))
        done = counted * causal
        if model.sliding_window is not None:  # the kernel skips key blocks past the window
            window = counted * min(causal, (model.sliding_window + FLASH_BLOCK) / s)
            share = model.windowed_share  # a layer's mean over the model's pattern
            done = (1.0 - share) * done + share * window
        io = ACT_BYTES * b * q_len * heads_local * (2 * d_qk + 2 * d_v)
        return [
            ComputeOp(
                name="flash_attention",
                kind="attention",
                flops=done,
                counted_flops=counted,
                hbm_bytes=io,
                shape=(vec.dim(q_len), s, d_qk),  # (queries, keys, head size)
            )
        ]
    # Unfused (Megatron-LM 2021-22): two batched GEMMs plus softmax and dropout kernels on
    # the b·a·s² score matrix, which dominate the layer's memory traffic at long sequences.
    scores = b * heads_local * q_len * s
    batch = b * heads_local
    score_gemm = _gemm("attn_scores", q_len, s, d_qk, batch=batch)
    value_gemm = _gemm("attn_values", q_len, d_v, s, batch=batch)
    softmax = _elementwise("softmax", 2 * ACT_BYTES * scores)  # fused scale-mask-softmax
    ops = [score_gemm, softmax]
    if sh.dropout:
        ops.append(_elementwise("attn_dropout", (2 * ACT_BYTES + 1) * scores))
    ops.append(value_gemm)
    return ops


def _residual(name: str, hidden: int, tokens: float, dropout: bool) -> ComputeOp:
    # fused bias-dropout-add: read the branch and the residual, write the sum (+ mask)
    return _elementwise(name, (3 * ACT_BYTES + (1 if dropout else 0)) * tokens * hidden)


def _mlp(name: str, model: ModelSpec, tokens: float, ffn: float) -> list[ComputeOp]:
    """An MLP on `tokens` tokens whose FFN width on this GPU is `ffn`."""
    h = model.hidden
    up_width = (2 if model.gated_mlp else 1) * ffn
    act_bytes = (3 if model.gated_mlp else 2) * ACT_BYTES * tokens * ffn
    up = _gemm(f"{name}_up", tokens, up_width, h)
    down = _gemm(f"{name}_down", tokens, h, ffn)
    return [up, _elementwise(f"{name}_act", act_bytes), down]


def _experts(model: ModelSpec, sh: Shard, routed: float) -> list[ComputeOp]:
    """The routed experts of one GPU: up and down GEMMs around their activation. The
    tokens split evenly over the experts routing balances (`moe.experts / ep` of them;
    redundant replicas share their experts' tokens but bring their own weights)."""
    assert model.moe is not None
    h, ffn = model.hidden, model.moe.expert_ffn_hidden
    up_width = (2 if model.gated_mlp else 1) * ffn
    act_bytes = (3 if model.gated_mlp else 2) * ACT_BYTES * routed * ffn
    groups, fused = sh.local_experts, sh.expert_gemm_grouped
    return [
        grouped_gemm("expert_up", routed, up_width, h, groups=groups, fused=fused),
        _elementwise("expert_act", act_bytes),
        grouped_gemm("expert_down", routed, h, ffn, groups=groups, fused=fused),
    ]


def mlp_ops(model: ModelSpec, sh: Shard, *, moe_layer: bool) -> list[ComputeOp]:
    """Norm, dense FFN or mixture of experts, and residual of one layer."""
    h, t, tok = model.hidden, sh.tp, sh.tokens
    ht = sh.hidden_tokens
    ops: list[ComputeOp] = [_elementwise("mlp_norm", 2 * ACT_BYTES * ht * h)]
    if moe_layer and model.moe is not None:
        moe = model.moe
        ops.append(_gemm("router", ht, moe.experts, h))
        ops.append(_router_topk(ht, moe.experts))
        # Expert tensor parallelism is 1 (DeepSeek-V3, Megatron-Core's MoE recipes): each
        # GPU routes its sequence-parallel token shard to top-k experts at full width, and
        # with balanced routing receives as many token copies as it sends.
        # the busiest GPU of the EP group sets the pace: it receives `expert_imbalance` times
        # the mean of the routed copies (balanced: each GPU gets as many as it sends)
        routed = ht * moe.top_k * sh.expert_imbalance
        ops.append(_elementwise("permute", 4 * ACT_BYTES * routed * h, kernels=4))
        ops.extend(_experts(model, sh, routed))
        if moe.shared_experts:
            shared = moe.shared_experts * moe.shared_ffn
            ops.extend(_mlp("shared_expert", model, tok, shared / t))
    else:
        ops.extend(_mlp("mlp", model, tok, model.ffn_hidden / t))
    ops.append(_residual("mlp_residual", h, ht, sh.dropout))
    return ops


def layer_comm_ops(model: ModelSpec, sh: Shard, *, moe_layer: bool) -> list[Op]:
    """Forward communication of one layer: TP, CP and EP collectives.

    With sequence parallelism, TP is an all-gather before and a reduce-scatter after each
    block; without, an all-reduce after it. Groups of one member cost nothing.
    """
    ops: list[Op] = []
    h, tok = model.hidden, sh.tokens
    full_hidden = ACT_BYTES * tok * h  # the TP group's whole activation tensor
    sp = sh.sequence_parallel
    tp_collectives: tuple[tuple[Collective, Any], ...] = (  # (collective, applies): SP
        # splits the all-reduce in two
        ("all_gather", sp),
        ("reduce_scatter", sp),
        ("all_reduce", vec.where(sp, False, True)),
    )
    for block in ("attn", "mlp"):
        for collective, applies in tp_collectives:
            op = CommOp(
                name=f"{block}_{collective}",
                group="tp",
                collective=collective,
                payload_bytes=full_hidden,
                overlappable=True,
            )
            ops += gated(op, applies, sh.tp > 1)
    kv_all = ACT_BYTES * sh.micro_batch * sh.seq_len * _kv_width(model, sh.tp)
    ops += gated(
        CommOp(
            name="cp_kv_exchange",
            group="cp",
            collective="all_gather",
            payload_bytes=kv_all,
            overlappable=True,
        ),
        sh.cp > 1,
    )
    if moe_layer and model.moe is not None:
        # k copies per token, less what deduplication keeps off the network (costs.dispatch)
        copies = sh.hidden_tokens * model.moe.top_k * h * sh.expert_imbalance
        copies = copies * payload_factor(model.moe, sh.ep_nodes, dedup=sh.ep_dedup)
        setup_s = vec.where(sh.ep_dedup, DISPATCH_PREPARATION_S, 0.0)  # DeepEP, Hybrid-EP
        for name, nbytes in (("moe_dispatch", sh.dispatch_bytes), ("moe_combine", ACT_BYTES)):
            op = CommOp(
                name=name,
                group="ep",
                collective="all_to_all",
                payload_bytes=nbytes * copies,
                setup_s=setup_s,
            )
            ops += gated(op, sh.ep > 1)
    return ops


def _kv_width(model: ModelSpec, tp: int) -> vec.Num:
    """Width of this GPU's keys plus values per token."""
    if model.mla is not None:
        m = model.mla
        return model.heads / tp * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
    return 2 * _local_heads(model.n_kv_heads, tp) * model.d_head


def embedding_ops(model: ModelSpec, sh: Shard) -> list[ComputeOp]:
    """Token embedding lookup (first stage)."""
    width = model.hidden
    return [
        _elementwise(
            "embedding", (2 * ACT_BYTES + (1 if sh.dropout else 0)) * sh.hidden_tokens * width
        )
    ]


def logits_ops(model: ModelSpec, sh: Shard) -> list[ComputeOp]:
    """Final norm, output projection and cross-entropy (last stage)."""
    h, tok, v_local = model.hidden, sh.tokens, model.vocab / sh.tp
    return [
        _elementwise("final_norm", 2 * ACT_BYTES * sh.hidden_tokens * h),
        _gemm("logits", tok, v_local, h),
        # Vocab-parallel cross-entropy in fp32 (Megatron-LM): upcast the logits (read 2 B,
        # write 4), max (4), subtract-exp (8), sum (4), normalise to the probabilities kept
        # for backward (8), gather the target (4): 34 B per logit; the gradient reads the
        # probabilities and writes 16-bit gradients (6 B).
        ComputeOp(
            name="cross_entropy",
            kind="elementwise",
            hbm_bytes=34.0 * tok * v_local,
            kernels=6,
            backward_bytes_factor=6.0 / 34.0,
        ),
    ]


def vision_ops(model: ModelSpec, sh: Shard, images: int) -> list[ComputeOp]:
    """The vision encoder on `images` images per micro-batch (first stage), all its layers."""
    v = model.vision
    if v is None or not vec.any_nonzero(images):
        return []
    t = sh.tp
    tok = images * v.patches
    hl = v.hidden / t
    attn_counted = 4.0 * images * v.patches * v.patches * hl
    attn = ComputeOp(  # bidirectional: no causal saving
        name="vit_attention",
        kind="attention",
        flops=attn_counted,
        counted_flops=attn_counted,
        hbm_bytes=ACT_BYTES * tok * 4 * hl,
        shape=(v.patches, v.patches, v.hidden // v.heads),
    )
    per_layer = [
        _elementwise("vit_norms", 4 * ACT_BYTES * tok * v.hidden),
        _gemm("vit_qkv", tok, 3 * hl, v.hidden),
        attn,
        _gemm("vit_out", tok, v.hidden, hl),
        _gemm("vit_mlp_up", tok, (2 if v.gated_mlp else 1) * v.ffn_hidden / t, v.hidden),
        _elementwise("vit_act", 2 * ACT_BYTES * tok * v.ffn_hidden / t),
        _gemm("vit_mlp_down", tok, v.hidden, v.ffn_hidden / t),
    ]
    merged = v.hidden * v.pixel_shuffle**2
    proj_tokens = tok / v.pixel_shuffle**2
    projector = _gemm("vision_projector", proj_tokens, model.hidden / t, merged)
    return [op.times(v.layers) for op in per_layer] + [projector]


def _gemm_dtype(name: str, low_dtype: str) -> str:
    """A layer GEMM's dtype under fp8 training: the shard's (fp8, fp4 under NVFP4, bf16 in
    a layer kept in bf16), except that FP4 is for linear layers only, so unfused
    attention's batched GEMMs stay fp8 under NVFP4."""
    return "fp8" if low_dtype == "fp4" and name in _UNFUSED_ATTENTION else low_dtype


def forward_layer_ops(model: ModelSpec, sh: Shard, *, moe_layer: bool) -> list[Op]:
    """All forward ops of one layer in execution order, collectives where they run.

    Tensor-parallel all-gathers precede the GEMMs that consume them; reduce-scatters or
    all-reduces follow the GEMMs that produce them; the context-parallel K/V exchange
    precedes attention; expert dispatch and combine bracket the experts. Costs do not
    depend on the order; overlap in the event engine does.
    """
    comm = {op.name: op for op in layer_comm_ops(model, sh, moe_layer=moe_layer)}
    before = {  # compute op -> collectives issued just before it
        "flash_attention": ["cp_kv_exchange"],
        "attn_scores": ["cp_kv_exchange"],
        "expert_up": ["moe_dispatch"],
    }
    after = {  # compute op -> collectives issued just after it
        "attn_norm": ["attn_all_gather"],
        "attn_out": ["attn_reduce_scatter", "attn_all_reduce"],
        "expert_down": ["moe_combine"],
    }
    ops: list[Op] = []
    compute = [*attention_ops(model, sh), *mlp_ops(model, sh, moe_layer=moe_layer)]
    if sh.fp8_cast_bytes != 4.0 or sh.low_dtype != "fp8":
        compute = [
            replace(
                op,
                cast_bytes_per_input=sh.fp8_cast_bytes,
                low_dtype=_gemm_dtype(op.name, sh.low_dtype),
            )
            if op.kind == "gemm"
            else op
            for op in compute
        ]
    mlp_first = next(i for i, op in enumerate(compute) if op.name == "mlp_norm") + 1
    for i, op in enumerate(compute):
        if i == mlp_first:
            ops.extend(comm[n] for n in ("mlp_all_gather",) if n in comm)
        if op.name == "mlp_residual":  # the block's last GEMM is done
            ops.extend(comm[n] for n in ("mlp_reduce_scatter", "mlp_all_reduce") if n in comm)
        ops.extend(comm[n] for n in before.get(op.name, []) if n in comm)
        ops.append(op)
        ops.extend(comm[n] for n in after.get(op.name, []) if n in comm)
    placed = {op.name for op in ops if isinstance(op, CommOp)}
    missing = set(comm) - placed
    assert not missing, f"collectives without a place in the layer: {missing}"
    return ops
