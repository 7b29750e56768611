"""Lower a scenario and its plan to per-stage programs: the ops each GPU of a stage runs.

A stage's program has three parts: `forward` and `backward` run once per micro-batch (the
backward part starts with any recomputation), `step` runs once per optimizer step (gradient
reduction across data-parallel replicas and the optimizer update). Every GPU of a stage runs
the same program (tensor-, context-, expert- and data-parallel ranks are symmetric under
balanced routing), so one program per stage describes the whole cluster.

Layers are split across pp·v model chunks as evenly as possible, earlier chunks taking the
remainder; the embedding (and vision encoder) sits on the first stage, the output layer and
loss on the last. Under fp8 training `training.bf16_layers` keeps the first and last
layers' GEMMs in bf16 without quantize traffic (Megatron-Core's is_first_last_bf16_layer,
by global layer number), so the stages holding them run slower than the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from superscale import vec
from superscale.models.spec import ModelSpec
from superscale.parallelism.plan import Plan
from superscale.program.ops import Collective, CommOp, ComputeOp, Op, gated
from superscale.scenario import Scenario, TrainingSpec
from superscale.training import layer

GRAD_REDUCE_BYTES = {"bf16": 2, "fp32": 4}  # parallel.grad_reduce_dtype
PARAM_GATHER_BYTES = 2  # distributed optimizer all-gathers bf16/fp16 parameters
ADAM_BYTES_PER_PARAM = 4 * 4 + 4 * 3 + 2  # read fp32 grad, master, m, v; write 3; bf16 copy


@dataclass(frozen=True, slots=True, kw_only=True)
class StageProgram:
    """What every GPU of one pipeline stage does."""

    index: int
    layers: int
    moe_layers: int
    forward: tuple[Op, ...]
    backward: tuple[Op, ...]
    step: tuple[Op, ...]
    dense_params: float  # parameters on one GPU of this stage, replicated across dp
    expert_params: float  # routed-expert parameters on one GPU, replicated across edp
    signature: tuple[int, int, bool, bool] = (0, 0, False, False)  # dense, MoE, first, last
    bf16_layers: int = 0  # of `layers`, those kept in bf16 under fp8 (training.bf16_layers)
    bf16_moe_layers: int = 0  # of those, the MoE layers
    # with v > 1: the keys of the rank's v model chunks, in order (`Program.virtual` holds
    # them); each chunk's collectives overlap that chunk's compute only
    chunks: tuple[tuple[int, int, bool, bool, int, int], ...] = ()

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two stages cost the same: layer mix, position, bf16 layers and (with
        virtual stages) how the layers split into chunks."""
        return (*self.signature, self.bf16_layers, self.bf16_moe_layers, self.chunks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """Per-stage programs for one training step.

    `stages` holds one program per pipeline rank (all its model chunks); `virtual` one per
    model chunk (virtual stage k·p + s runs on rank s), equal to `stages` when v = 1.
    """

    stages: tuple[StageProgram, ...]
    virtual: tuple[StageProgram, ...]
    micro_batches: int
    tokens_per_step: int

    def distinct_stages(self) -> list[tuple[StageProgram, int]]:
        """The first stage of each distinct signature (same layers and position), in stage
        order, with how many stages share it: identical stages cost the same, and the pipeline
        formula needs only these (a later twin never has a larger tail, head or peak)."""
        first: dict[tuple[Any, ...], int] = {}
        out: list[tuple[StageProgram, int]] = []
        for stage in self.stages:
            key = stage.key
            if stage.signature == (0, 0, False, False):  # hand-built: no signature, price each
                out.append((stage, 1))
            elif key in first:
                held, count = out[first[key]]
                out[first[key]] = (held, count + 1)
            else:
                first[key] = len(out)
                out.append((stage, 1))
        return out


def split_layers(layers: int, chunks: int, layout: tuple[int, ...] | None = None) -> list[int]:
    """Layers per model chunk: the plan's layout, else as even as possible, earlier chunks
    taking the remainder (Megatron-LM's default split)."""
    if layout is not None:
        return list(layout)
    base, extra = divmod(layers, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]


def is_moe_layer(model: ModelSpec, index: int) -> bool:
    moe = model.moe
    if moe is None or index < moe.dense_layers:
        return False
    return (index - moe.dense_layers) % moe.layer_frequency == 0


def bf16_layer_ids(model: ModelSpec, training: TrainingSpec) -> frozenset[int]:
    """Layers whose GEMMs stay in bf16 under fp8 training: the first `start` and last `end`
    by global layer number (Megatron-Core's is_first_last_bf16_layer), whichever stage
    holds them."""
    keep = training.bf16_layers
    if keep is None or training.precision != "fp8":
        return frozenset()
    return frozenset(range(keep.start)) | frozenset(range(model.layers - keep.end, model.layers))


def bf16_shard(shard: layer.Shard) -> layer.Shard:
    """`shard` for a layer kept in bf16: its GEMMs in bf16 (no quantize traffic) and its
    tokens dispatched and stored in 16 bits."""
    return replace(shard, low_dtype="bf16", dispatch_bytes=layer.ACT_BYTES, fp8_activations=False)


def _stage_layers(model: ModelSpec, plan: Plan) -> list[list[int]]:
    """Layer indices held by each pipeline rank (its v chunks, interleaved)."""
    chunks = split_layers(model.layers, plan.pp * plan.virtual_stages, plan.layout)
    starts = [sum(chunks[:i]) for i in range(len(chunks))]
    stages: list[list[int]] = [[] for _ in range(plan.pp)]
    for chunk, (start, count) in enumerate(zip(starts, chunks, strict=True)):
        stages[chunk % plan.pp].extend(range(start, start + count))
    return stages


def chunk_key(
    model: ModelSpec, layer_ids: Iterable[int], bf16: frozenset[int], *, first: bool, last: bool
) -> tuple[int, int, bool, bool, int, int]:
    """`StageProgram.key` of the stage (or chunk) holding `layer_ids`, without lowering it:
    (dense layers, MoE layers, first, last, layers kept in bf16, of those MoE)."""
    ids = list(layer_ids)
    n_moe = sum(is_moe_layer(model, i) for i in ids)
    kept = [i for i in ids if i in bf16]
    bf16_moe = sum(is_moe_layer(model, i) for i in kept)
    return (len(ids) - n_moe, n_moe, first, last, len(kept), bf16_moe)


def _backward_of(op: Op, *, flash: bool) -> Op:
    if isinstance(op, CommOp):
        return CommOp(
            name=f"{op.name}.bwd",
            group=op.group,
            collective=_mirror(op.collective),
            payload_bytes=op.payload_bytes * (2 if op.group == "cp" else 1),
            overlappable=op.overlappable,
            repeat=op.repeat,
            setup_s=op.setup_s,
        )
    if op.kind == "attention" and flash:
        # flash backward recomputes the scores: 5 matmuls against the forward's 2
        return op.backward(flops_factor=2.5, bytes_factor=2.5)
    return op.backward()


def _mirror(collective: Collective) -> Collective:
    """The collective a backward pass runs for a forward one (all-gather ↔ reduce-scatter)."""
    if collective == "all_gather":
        return "reduce_scatter"
    if collective == "reduce_scatter":
        return "all_gather"
    return collective


def _layer_params(model: ModelSpec, index: int) -> tuple[float, float]:
    """(dense, routed-expert) parameters of one layer."""
    if is_moe_layer(model, index):
        assert model.moe is not None
        experts = model.moe.experts * model.expert_params
        return model.attention_params + model.moe_mlp_params - experts, experts
    return model.attention_params + model.dense_mlp_params, 0.0


def lower(
    scenario: Scenario,
    plan: Plan,
    *,
    virtual: bool = True,
    passes: bool = True,
    step: bool = True,
) -> Program:
    """Build the per-stage programs of one training step (and, with `virtual`, one per
    model chunk). Stages with the same layer mix and position share one lowering. Without
    `passes` the forward and backward op lists stay empty, without `step` the step's: the
    layout alone (layers and parameters per stage) is all a memory estimate needs."""
    model, train = scenario.model, scenario.require_training()
    shard = shard_of(scenario, plan)
    bf16 = bf16_layer_ids(model, train)
    dense_fwd, moe_fwd = _layer_ops(model, shard) if passes else ([], [])
    dense_bf16, moe_bf16 = (
        _layer_ops(model, bf16_shard(shard), kept=True) if passes and bf16 else ([], [])
    )
    parts = _Parts(
        model=model,
        shard=shard,
        plan=plan,
        images=plan.micro_batch * train.images_per_sample,
        dense_fwd=dense_fwd,
        moe_fwd=moe_fwd,
        bf16=bf16,
        dense_bf16_fwd=dense_bf16,
        moe_bf16_fwd=moe_bf16,
        passes=passes,
        step=step,
    )
    last_rank = plan.pp - 1
    stages = tuple(
        parts.lower(
            index=i, layer_ids=ids, first=i == 0, last=i == last_rank, sends=plan.virtual_stages
        )
        for i, ids in enumerate(_stage_layers(model, plan))
    )
    chunks_programs = stages
    if plan.virtual_stages > 1:
        chunks = split_layers(model.layers, plan.pp * plan.virtual_stages, plan.layout)
        starts = [sum(chunks[:i]) for i in range(len(chunks))]
        last_chunk = len(chunks) - 1
        keys = [
            chunk_key(model, range(start, start + count), bf16, first=k == 0, last=k == last_chunk)
            for k, (start, count) in enumerate(zip(starts, chunks, strict=True))
        ]
        v = plan.virtual_stages
        stages = tuple(
            replace(s, chunks=tuple(keys[c * plan.pp + s.index] for c in range(v))) for s in stages
        )
        chunks_programs = stages
    if plan.virtual_stages > 1 and virtual:
        chunks_programs = tuple(
            parts.lower(
                index=k,
                layer_ids=list(range(start, start + count)),
                first=k == 0,
                last=k == last_chunk,
                sends=1,
            )
            for k, (start, count) in enumerate(zip(starts, chunks, strict=True))
        )
    return Program(
        stages=stages,
        virtual=chunks_programs,
        micro_batches=plan.micro_batches,
        tokens_per_step=train.global_batch * train.seq_len,
    )


def _layer_ops(
    model: ModelSpec, shard: layer.Shard, *, kept: bool = False
) -> tuple[list[Op], list[Op]]:
    """One dense and (for MoE models) one MoE layer's forward ops, each tagged with its
    layer kind (`kept`: a layer kept in bf16)."""
    suffix = "_bf16" if kept else ""
    dense = layer.forward_layer_ops(model, shard, moe_layer=False)
    moe = layer.forward_layer_ops(model, shard, moe_layer=True) if model.moe else []
    return _tagged(dense, f"dense{suffix}"), _tagged(moe, f"moe{suffix}")


def _tagged(ops: Sequence[Op], unit: str) -> list[Op]:
    """`ops` marked as one run of work (`ComputeOp.unit`)."""
    return [replace(op, unit=unit) for op in ops]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPieces:
    """The op runs a stage's passes are made of, for one layer or one occurrence: a stage of
    d dense and e MoE layers runs forward `head + d·dense + e·moe + tail` (head on the first
    stage, tail on the last) and backward the recomputation, then the gradients in
    reverse; the `*_bf16_*` pieces are a layer kept in bf16 (empty without
    training.bf16_layers). Sends and ZeRO-3 gathers depend on the pipeline shape and come
    apart."""

    dense_fwd: tuple[Op, ...]
    dense_bwd: tuple[Op, ...]
    dense_recompute: tuple[Op, ...]
    moe_fwd: tuple[Op, ...]
    moe_bwd: tuple[Op, ...]
    moe_recompute: tuple[Op, ...]
    head_fwd: tuple[Op, ...]
    head_bwd: tuple[Op, ...]
    tail_fwd: tuple[Op, ...]
    tail_bwd: tuple[Op, ...]
    dense_bf16_fwd: tuple[Op, ...] = ()
    dense_bf16_bwd: tuple[Op, ...] = ()
    dense_bf16_recompute: tuple[Op, ...] = ()
    moe_bf16_fwd: tuple[Op, ...] = ()
    moe_bf16_bwd: tuple[Op, ...] = ()
    moe_bf16_recompute: tuple[Op, ...] = ()


def layer_pieces(scenario: Scenario, plan: Plan) -> LayerPieces:
    """`LayerPieces` of `plan` (its pipeline fields unused): what a batch prices once for
    every pipeline shape, composing each stage from them."""
    model, train = scenario.model, scenario.require_training()
    shard = shard_of(scenario, plan)
    flash = plan.flash_attention

    def backward(ops: Sequence[Op]) -> tuple[Op, ...]:
        return tuple(_backward_of(op, flash=flash) for op in reversed(ops))

    dense, moe = _layer_ops(model, shard)
    bf16 = bf16_layer_ids(model, train)
    dense_bf16, moe_bf16 = _layer_ops(model, bf16_shard(shard), kept=True) if bf16 else ([], [])
    images = plan.micro_batch * train.images_per_sample
    head = _tagged(
        layer.embedding_ops(model, shard) + layer.vision_ops(model, shard, images), "head"
    )
    tail = _tagged(layer.logits_ops(model, shard), "tail")
    return LayerPieces(
        dense_fwd=tuple(dense),
        dense_bwd=backward(dense),
        dense_recompute=tuple(_recompute_ops(dense, plan)),
        moe_fwd=tuple(moe),
        moe_bwd=backward(moe),
        moe_recompute=tuple(_recompute_ops(moe, plan)),
        head_fwd=tuple(head),
        head_bwd=backward(head),
        tail_fwd=tuple(tail),
        tail_bwd=backward(tail),
        dense_bf16_fwd=tuple(dense_bf16),
        dense_bf16_bwd=backward(dense_bf16),
        dense_bf16_recompute=tuple(_recompute_ops(dense_bf16, plan)),
        moe_bf16_fwd=tuple(moe_bf16),
        moe_bf16_bwd=backward(moe_bf16),
        moe_bf16_recompute=tuple(_recompute_ops(moe_bf16, plan)),
    )


def pipeline_send_ops(scenario: Scenario, plan: Plan, repeat: int) -> list[Op]:
    """A stage's send to its neighbour for one micro-batch (none without pipelining)."""
    return _pp_send(scenario.model, shard_of(scenario, plan), plan, repeat)


def zero3_gather_ops(stage: StageProgram, plan: Plan, *, backward: bool = False) -> list[Op]:
    """The ZeRO-3 weight gathers the forward (or, with `backward`, the backward) pass of
    `stage` starts with."""
    return _zero3_gathers(stage.dense_params, stage.expert_params, plan, backward=backward)


def shard_of(scenario: Scenario, plan: Plan) -> layer.Shard:
    """How one GPU's slice of a micro-batch is shaped under `plan`."""
    train = scenario.require_training()
    dedup_fp8 = plan.ep_dispatch == "deepep" and train.precision == "fp8"  # DeepEP fp8 dispatch
    return layer.Shard(
        micro_batch=plan.micro_batch,
        seq_len=train.seq_len,
        tp=plan.tp,
        cp=plan.cp,
        ep=plan.ep,
        sequence_parallel=plan.sequence_parallel,
        flash_attention=plan.flash_attention,
        dropout=train.dropout,
        recompute_modules=plan.recompute_modules,
        fp8_activations=plan.fp8_activations,
        ep_nodes=vec.maximum(plan.ep / scenario.cluster.system.scale_up.gpus, 1.0),
        ep_dedup=plan.ep_dispatch == "deepep",
        expert_gemm_grouped=plan.expert_gemm == "grouped",
        local_experts=(
            (moe.experts + plan.redundant_experts) / plan.ep
            if (moe := scenario.model.moe) is not None
            else 1.0
        ),
        dispatch_bytes=1 if dedup_fp8 else layer.ACT_BYTES,
        expert_imbalance=plan.expert_imbalance,
        fp8_cast_bytes=layer.FP8_CAST_BYTES[train.fp8_recipe],
        low_dtype=layer.LOW_DTYPE.get(train.fp8_recipe, "fp8"),
        doc_square_share=train.document_square_share,
    )


@dataclass(frozen=True, kw_only=True)
class _Parts:
    """What lowering one run of consecutive layers needs."""

    model: ModelSpec
    shard: layer.Shard
    plan: Plan
    images: int
    dense_fwd: list[Op]
    moe_fwd: list[Op]
    bf16: frozenset[int] = frozenset()  # layer ids kept in bf16 (bf16_layer_ids)
    dense_bf16_fwd: list[Op] = field(default_factory=list)
    moe_bf16_fwd: list[Op] = field(default_factory=list)
    passes: bool = True
    step: bool = True

    def lower(
        self, *, index: int, layer_ids: list[int], first: bool, last: bool, sends: int
    ) -> StageProgram:
        n_dense, n_moe, _, _, kept, bf16_moe = chunk_key(
            self.model, layer_ids, self.bf16, first=first, last=last
        )
        bf16 = (kept - bf16_moe, bf16_moe)  # (dense, MoE) layers kept in bf16
        key = (n_dense, n_moe, first, last, sends, bf16)
        cache: dict[Any, StageProgram] = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = self._lower(
                layer_ids=layer_ids,
                n_dense=n_dense,
                n_moe=n_moe,
                bf16=bf16,
                first=first,
                last=last,
                sends=sends,
            )
        return replace(cache[key], index=index)

    def _lower(
        self,
        *,
        layer_ids: list[int],
        n_dense: int,
        n_moe: int,
        bf16: tuple[int, int],
        first: bool,
        last: bool,
        sends: int,
    ) -> StageProgram:
        index = 0
        bf16_dense, bf16_moe = bf16
        model, shard, plan = self.model, self.shard, self.plan
        dense, expert = _stage_params(model, plan, layer_ids, first=first, last=last)
        step = tuple(_step_ops(dense, expert, plan)) if self.step else ()
        if not self.passes:
            return StageProgram(
                index=index,
                layers=len(layer_ids),
                moe_layers=n_moe,
                forward=(),
                backward=(),
                step=step,
                dense_params=dense,
                expert_params=expert,
                signature=(n_dense, n_moe, first, last),
                bf16_layers=bf16_dense + bf16_moe,
                bf16_moe_layers=bf16_moe,
            )
        body: list[Op] = []
        for ops, n in (
            (self.dense_fwd, n_dense - bf16_dense),
            (self.dense_bf16_fwd, bf16_dense),
            (self.moe_fwd, n_moe - bf16_moe),
            (self.moe_bf16_fwd, bf16_moe),
        ):
            if n:
                body += [op.times(n) for op in ops]
        head: list[Op] = []
        tail: list[Op] = []
        if first:
            head += layer.embedding_ops(model, shard)
            head += layer.vision_ops(model, shard, self.images)
        if last:
            tail += layer.logits_ops(model, shard)
        head, tail = _tagged(head, "head"), _tagged(tail, "tail")
        gathers = _zero3_gathers(dense, expert, plan, backward=False)
        # Each of the rank's `sends` chunks hands its activations on to the next virtual
        # stage and its gradients back to the one before, except the model's last chunk
        # (forward) and first chunk (backward): with v chunks the first rank also sends
        # v − 1 gradients and the last rank v − 1 activations (Narayanan et al. 2021).
        forward = tuple(gathers + head + body + tail + _pp_send(model, shard, plan, sends - last))
        backward = tuple(
            _zero3_gathers(dense, expert, plan, backward=True)
            + _recompute_ops(body, plan)
            + [_backward_of(op, flash=plan.flash_attention) for op in reversed(head + body + tail)]
            + _pp_send(model, shard, plan, sends - first)
        )
        return StageProgram(
            index=index,
            layers=len(layer_ids),
            moe_layers=n_moe,
            forward=forward,
            backward=backward,
            step=step,
            dense_params=dense,
            expert_params=expert,
            signature=(n_dense, n_moe, first, last),
            bf16_layers=bf16_dense + bf16_moe,
            bf16_moe_layers=bf16_moe,
        )


def _pp_send(model: ModelSpec, shard: layer.Shard, plan: Plan, repeat: int) -> list[Op]:
    """`repeat` pipeline sends of one micro-batch's activations (or their gradients)."""
    if plan.pp == 1 or repeat <= 0:
        return []
    payload = layer.ACT_BYTES * shard.tokens * model.hidden
    # scatter-gather under sequence parallelism: each TP rank sends its 1/tp share
    payload = vec.where(plan.sequence_parallel, payload / plan.tp, payload)
    return [
        CommOp(
            name="pp_send",
            group="pp",
            collective="send_recv",
            payload_bytes=payload,
            repeat=repeat,
            unit="send",
        )
    ]


# The ops each named module of selective recomputation runs again (Megatron-Core's
# --recompute-modules); "moe" also repeats its expert all-to-all.
_MODULE_OPS = {
    "layernorm": ("attn_norm", "mlp_norm"),
    "mla_up_proj": ("q_up", "kv_up"),
    "moe_act": ("expert_act", "shared_expert_act"),
    "mlp": ("mlp_up", "mlp_act", "mlp_down"),
    "moe": (
        "router",
        "permute",
        "expert_up",
        "expert_act",
        "expert_down",
        "moe_dispatch",
        "moe_combine",
        "shared_expert_up",
        "shared_expert_act",
        "shared_expert_down",
    ),
    "shared_experts": ("shared_expert_up", "shared_expert_act", "shared_expert_down"),
}


def _recompute_ops(body: list[Op], plan: Plan) -> list[Op]:
    """Forward work repeated before backward (Korthikanti et al. 2022; named modules)."""
    full = plan.recompute == "full"
    selective = plan.recompute == "selective"
    core = {"attn_scores", "softmax", "attn_dropout", "attn_values"}
    if "core_attn" in plan.recompute_modules:  # flash attention stores no scores to rebuild
        core_selective = selective & (not plan.flash_attention)
    else:
        core_selective = False
    named = {n for m in plan.recompute_modules if m in _MODULE_OPS for n in _MODULE_OPS[m]}
    ops: list[Op] = []
    for op in body:
        if isinstance(op, ComputeOp) or op.group == "tp":
            ops += gated(op.recomputed(), full)
    for op in body:
        if isinstance(op, ComputeOp) and op.name in core:
            ops += gated(op.recomputed(), core_selective)
        elif op.name in named:
            ops += gated(op.recomputed(), selective)
    return ops


def _stage_params(
    model: ModelSpec, plan: Plan, layer_ids: list[int], *, first: bool, last: bool
) -> tuple[float, float]:
    dense = expert = 0.0
    for i in layer_ids:
        d, e = _layer_params(model, i)
        dense, expert = dense + d, expert + e
    emb = model.vocab * model.hidden
    if first:
        dense += emb + model.position_embeddings * model.hidden + model.vision_params
    if last and (not model.tied_embeddings or plan.pp > 1):
        dense += emb  # untied head, or the tied copy Megatron keeps on the last stage
    if model.moe is not None and plan.redundant_experts:  # EPLB replicas hold whole experts
        expert *= (model.moe.experts + plan.redundant_experts) / model.moe.experts
    return dense / plan.tp, expert / plan.ep


def _zero3_gathers(dense: Any, expert: Any, plan: Plan, *, backward: bool) -> list[Op]:
    """ZeRO-3/FSDP: a pass all-gathers the stage's sharded weights layer by layer, prefetched
    ahead of the layer computing so they overlap compute (Rajbhandari et al. 2020; FSDP2's
    prefetch; with prefetch 0 each gather waits). Backward gathers them again unless the
    forward kept them (FSDP2's reshard_after_forward=False)."""
    ops: list[Op] = []
    again = plan.fsdp_reshard if backward else True
    for group, params in (("dp", dense), ("edp", expert)):
        ops += gated(
            CommOp(
                name=f"{group}_param_prefetch",
                group=group,  # type: ignore[arg-type]
                collective="all_gather",
                payload_bytes=params * PARAM_GATHER_BYTES,
                overlappable=plan.fsdp_prefetch > 0,
            ),
            plan.zero == 3,
            params != 0,
            again,
        )
    return ops


def _step_ops(dense: Any, expert: Any, plan: Plan) -> list[Op]:
    """Gradient reduction and optimizer update, once per step: an all-reduce of gradients
    (ZeRO 0), or a reduce-scatter and, below ZeRO-3, the updated weights' all-gather; under
    HSDP the reduce-scatter runs inside the shard group and the replicas all-reduce their
    1/shard of the gradients (PyTorch FSDP2's HYBRID_SHARD)."""
    ops: list[Op] = []
    sharded = plan.zero >= 1
    shard_sizes = {"dp": plan.dp_shard, "edp": plan.groups["edp"].size}
    for group, params in (("dp", dense), ("edp", expert)):
        grads = params * GRAD_REDUCE_BYTES[plan.grad_reduce_dtype]
        has = params != 0
        ops += gated(
            CommOp(
                name=f"{group}_grad_all_reduce",
                group=group,  # type: ignore[arg-type]
                collective="all_reduce",
                payload_bytes=grads,
                overlappable=True,
            ),
            plan.zero == 0,
            has,
        )
        ops += gated(
            CommOp(
                name=f"{group}_grad_reduce_scatter",
                group=group,  # type: ignore[arg-type]
                collective="reduce_scatter",
                payload_bytes=grads,
                overlappable=True,
            ),
            sharded,
            has,
        )
        ops += gated(
            CommOp(
                name=f"{group}_param_all_gather",
                group=group,  # type: ignore[arg-type]
                collective="all_gather",
                payload_bytes=params * PARAM_GATHER_BYTES,
                overlappable=True,
            ),
            sharded & (plan.zero < 3),
            has,
        )
        if plan.fsdp_shard is not None:
            ops += gated(
                CommOp(
                    name=f"{group}_grad_replica_all_reduce",
                    group=f"{group}r",  # type: ignore[arg-type]
                    collective="all_reduce",
                    payload_bytes=grads / shard_sizes[group],
                    overlappable=True,
                ),
                plan.replicas > 1,
                has,
            )
    shard_dense = vec.where(sharded, plan.dp_shard, 1)
    shard_expert = vec.where(sharded, plan.groups["edp"].size, 1)
    updated = dense / shard_dense + expert / shard_expert
    ops.append(
        ComputeOp(
            name="optimizer",
            kind="elementwise",
            hbm_bytes=updated * ADAM_BYTES_PER_PARAM,
            kernels=8,
        )
    )
    return ops
