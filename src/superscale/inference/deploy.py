"""Resolve a scenario's serving section into pools of engines laid out on the cluster.

Checks the plan against the model and the cluster (every mistake is a `SpecError` naming
its field path), picks the precisions, places the pools on consecutive GPUs (prefill pool
first), sizes each instance's KV cache and tabulates its iteration time. A pipelined
instance of pp stages becomes pp engines, each holding a 1/pp share of the KV cache and
running its own batch through all stages (the pp micro-batches in flight of vLLM's and
TensorRT-LLM's pipeline schedulers).

Each pool's groups are placed and routed on the systems it occupies (`pool_cluster`), so
pools of any sizes and plans coexist (DeepSeek's 4 prefill and 9 decode servers). Each
pool also gets its MoE dispatch kernels (`layers.resolve_dispatch`) and, for decode and
mixed pools, the speculative drafter, whose weights, KV and the low-latency dispatch
buffer are counted in its memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from superscale.collectives.tuner import CommModel, costs_for
from superscale.errors import SpecError
from superscale.hardware.spec import Chip, Cluster, slice_system
from superscale.inference.kv import (
    BYTES_PER_ELEMENT,
    KvBudget,
    bytes_per_weight,
    draft_layer_bytes_per_gpu,
    kv_budget,
    kv_bytes_per_token,
    kv_bytes_per_token_layer_per_gpu,
    kv_format,
    low_latency_buffer_bytes,
    weight_bytes_per_gpu,
)
from superscale.inference.layers import resolve_attention_precision, resolve_dispatch
from superscale.inference.sim import EngineConfig, KvTransfer, Role
from superscale.inference.step import Speculation, StepModel, build_step_model
from superscale.models.catalog import models
from superscale.models.spec import ModelSpec
from superscale.scenario import Scenario
from superscale.scenario.serving import PlanSpec, SchedulerSpec, ServingSpec, SpeculativeSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool:
    """Identical instances doing one role on consecutive GPUs."""

    role: Role
    plan: PlanSpec
    instances: int
    first_gpu: int
    budget: KvBudget
    step: StepModel | None  # None when the model does not fit
    cluster: Cluster  # the pool's own systems: its groups are placed and routed there
    dispatch: str  # MoE dispatch kernels: none, all_to_all, low_latency
    speculation: Speculation | None = None

    @property
    def gpus(self) -> int:
        return self.instances * self.plan.instance_gpus


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """Pools, precisions and the KV transfer between pools of one serving scenario."""

    pools: tuple[Pool, ...]
    precision: str
    kv_precision: str
    scheduler: SchedulerSpec
    transfer: KvTransfer | None
    warnings: tuple[str, ...]
    prefill_max_batch_tokens: int | None = None
    attention_precision: str = "bf16"
    speculation: Speculation | None = None
    weight_format: str = ""  # stored weights: the precision, or e.g. "int4 g128"
    weight_bytes: float = 0.0  # stored bytes per weight element, scales included

    @property
    def gpus(self) -> int:
        return sum(p.gpus for p in self.pools)

    @property
    def fits(self) -> bool:
        return all(p.budget.fits for p in self.pools)

    @property
    def disaggregated(self) -> bool:
        return any(p.role == "prefill" for p in self.pools)


def resolve_precisions(serving: ServingSpec, chip: Chip) -> tuple[str, str]:
    """(GEMM precision, KV format); InfeasiblePlan for a GEMM precision the chip lacks,
    SpecError for an fp4 KV cache on a chip without fp4."""
    precision = serving.precision
    if precision == "auto":
        precision = "fp8" if "fp8" in chip.peak_tflops else "bf16"
    chip.peak_flops(precision)  # InfeasiblePlan names the chip and what it supports
    kv = serving.kv_precision
    if kv == "auto":
        kv = "fp8" if precision in {"fp8", "fp4"} else "bf16"
    if kv == "fp4" and "fp4" not in chip.peak_tflops:
        raise SpecError(
            f"kv_precision 'fp4' (NVFP4) needs a chip with fp4 support; {chip.name} has none "
            "(allowed: auto, bf16, fp16, fp8, int8, int4, int2)",
            path="serving.kv_precision",
        )
    return precision, kv_format(kv, serving.kv_group_size)


def resolve_weights(serving: ServingSpec, precision: str) -> tuple[str, float]:
    """(stored weight format, bytes per weight) of the deployment; SpecError for a
    quantised format not narrower than the GEMM precision."""
    quant = serving.quantization
    if quant is None:
        return precision, BYTES_PER_ELEMENT[precision]
    if BYTES_PER_ELEMENT[quant.weights] >= BYTES_PER_ELEMENT[precision]:
        raise SpecError(
            f"weights '{quant.weights}' must be narrower than the GEMM precision "
            f"'{precision}' (allowed: formats of fewer bits; W8A8 int8 is precision: int8 "
            "without quantization)",
            path="serving.quantization.weights",
        )
    group = f" g{quant.group_size}" if quant.group_size else " per-channel"
    return quant.weights + group, bytes_per_weight(precision, quant)


def check_plan(plan: PlanSpec, model: ModelSpec, path: str) -> None:
    """Model-dependent rules of a serving plan; SpecError names `path`."""
    if model.heads % plan.tp:
        raise SpecError(f"tp ({plan.tp}) must divide the model's {model.heads} heads", path=path)
    if plan.pp > model.layers:
        raise SpecError(f"pp ({plan.pp}) exceeds the model's {model.layers} layers", path=path)
    if plan.ffn_disaggregation is not None and model.moe is None:
        raise SpecError(
            "ffn_disaggregation needs a mixture-of-experts model (its routed experts move "
            "to expert GPUs)",
            path=f"{path}.ffn_disaggregation",
        )
    if plan.redundant_experts and model.moe is None:
        raise SpecError("redundant_experts needs a mixture-of-experts model", path=path)
    if plan.ep > 1:
        if model.moe is None:
            raise SpecError(f"ep ({plan.ep}) > 1 needs a mixture-of-experts model", path=path)
        physical = model.moe.experts + plan.redundant_experts
        if physical % plan.ep:
            raise SpecError(
                f"ep ({plan.ep}) must divide the model's {model.moe.experts} experts plus "
                f"redundant_experts ({plan.redundant_experts}) = {physical}",
                path=path,
            )


def _instances(plan: PlanSpec, pool_gpus: int, path: str) -> int:
    size = plan.instance_gpus
    if plan.dp is not None:
        if plan.dp * size > pool_gpus:
            raise SpecError(
                f"dp·tp·pp·attention_dp = {plan.dp}·{size} = {plan.dp * size} GPUs exceeds "
                f"the {pool_gpus} available",
                path=path,
            )
        return plan.dp
    if pool_gpus % size:
        ffn = f" + ffn_gpus {plan.ffn_gpus}" if plan.ffn_gpus else ""
        raise SpecError(
            f"tp·pp·attention_dp{ffn} = {plan.tp}·{plan.pp}·{plan.attention_dp}{ffn} = {size} "
            f"does not divide the {pool_gpus} GPUs (give dp to use fewer)",
            path=path,
        )
    return pool_gpus // size


def pool_cluster(cluster: Cluster, gpus: int) -> Cluster:
    """The systems a pool of `gpus` consecutive GPUs occupies: each pool places and routes
    its groups on its own systems, so pools of any sizes (4 prefill and 9 decode servers)
    need not tile one another; a pool within one system gets its slice of it."""
    system = cluster.system
    if gpus < system.gpus:  # part of one system: its slice (16 GPUs of an NVL72 rack)
        try:
            return cluster.model_copy(update={"system": slice_system(system, gpus), "count": 1})
        except ValueError:  # a slice would split a scale-up domain: keep the whole system
            return cluster.model_copy(update={"count": 1})
    count = max(1, math.ceil(gpus / system.gpus))
    if count >= cluster.count:
        return cluster
    return cluster.model_copy(update={"count": count})


def resolve_speculation(spec: SpeculativeSpec | None, model: ModelSpec) -> Speculation | None:
    """The speculative setting with its draft model looked up and checked."""
    if spec is None:
        return None
    if spec.method == "mtp" and model.mtp_layers < 1:
        raise SpecError(
            f"method 'mtp' needs a model with multi-token-prediction modules; "
            f"'{model.name}' has none (use eagle or draft)",
            path="serving.speculative.method",
        )
    draft = None
    if spec.draft_model is not None:
        try:
            draft = models().get(spec.draft_model)
        except SpecError as exc:
            raise SpecError(str(exc), path="serving.speculative.draft_model") from None
        if draft.vocab != model.vocab:
            raise SpecError(
                f"draft model '{spec.draft_model}' has a {draft.vocab}-token vocabulary, "
                f"the model {model.vocab}: a drafter must share the tokenizer",
                path="serving.speculative.draft_model",
            )
    return Speculation(
        method=spec.method,
        draft_tokens=spec.draft_tokens,
        acceptance_rate=spec.acceptance,
        draft_model=draft,
    )


def _draft_memory(
    model: ModelSpec,
    plan: PlanSpec,
    spec: Speculation | None,
    *,
    precision: str,
    kv: str,
    weight_bytes: float | None = None,
) -> tuple[float, float]:
    """(drafter weights, drafter KV bytes per token) on one GPU."""
    if spec is None:
        return 0.0, 0.0
    if spec.draft_model is not None:
        draft = spec.draft_model
        dplan = plan.model_copy(update={"ep": 1, "redundant_experts": 0, "pp": 1})
        per_token = kv_bytes_per_token_layer_per_gpu(draft, plan.tp, kv) * draft.layers
        weights = weight_bytes_per_gpu(draft, dplan, precision, weight_bytes=weight_bytes)
        return weights, per_token
    moe_layer = spec.method == "mtp" and model.moe is not None
    weights = draft_layer_bytes_per_gpu(
        model, plan, precision, moe_layer=moe_layer, weight_bytes=weight_bytes
    )
    return weights, kv_bytes_per_token_layer_per_gpu(model, plan.tp, kv)


def _pool(
    role: Role,
    plan: PlanSpec,
    instances: int,
    first_gpu: int,
    model: ModelSpec,
    cluster: Cluster,
    *,
    precision: str,
    kv_precision: str,
    attention_precision: str,
    scheduler: SchedulerSpec,
    speculation: Speculation | None,
    max_tokens: int | None = None,
    weight_bytes: float | None = None,
) -> Pool:
    spec = speculation  # prefill pools run the drafter over prompts only
    q = spec.query_tokens if spec is not None and role != "prefill" else 1
    if spec is not None and spec.draft_model is not None and spec.draft_model.heads % plan.tp:
        raise SpecError(
            f"tp ({plan.tp}) must divide the draft model's {spec.draft_model.heads} heads",
            path="serving.speculative.draft_model",
        )
    draft_weights, draft_kv = _draft_memory(
        model, plan, spec, precision=precision, kv=kv_precision, weight_bytes=weight_bytes
    )
    home = pool_cluster(cluster, instances * plan.instance_gpus)
    dispatch = resolve_dispatch(plan, home, role=role) if model.moe is not None else "none"
    if plan.ffn_disaggregation is not None:
        dispatch = "attention_ffn"  # activations cross to the expert GPUs and back
    buffer = 0.0
    if dispatch in ("low_latency", "per_batch") and model.moe is not None:
        tokens_per_rank = math.ceil(scheduler.max_batch / plan.attention_dp) * q
        physical = model.moe.experts + plan.redundant_experts
        buffer = low_latency_buffer_bytes(model.hidden, physical, tokens_per_rank)
    budget = kv_budget(
        model,
        plan,
        cluster.chip,
        precision=precision,
        kv_precision=kv_precision,
        scheduler=scheduler,
        query_tokens=q,
        draft_weight_bytes=draft_weights,
        draft_kv_bytes_per_token=draft_kv,
        dispatch_buffer_bytes=buffer,
        weight_bytes=weight_bytes,
    )
    step = None
    if budget.fits:
        step = build_step_model(
            model,
            plan,
            home,
            precision=precision,
            kv_precision=kv_precision,
            max_tokens=max_tokens or scheduler.max_batch_tokens + scheduler.max_batch * q,
            iteration_overhead_s=scheduler.iteration_overhead_us * 1e-6,
            request_overhead_s=scheduler.request_overhead_us * 1e-6,
            attention_precision=attention_precision,
            dispatch=dispatch,
            speculation=spec,
            max_requests=scheduler.max_batch,
            decodes=role != "prefill",
            weight_bytes=weight_bytes,
        )
    return Pool(
        role=role,
        plan=plan,
        instances=instances,
        first_gpu=first_gpu,
        budget=budget,
        step=step,
        cluster=home,
        dispatch=dispatch,
        speculation=spec,
    )


def kv_transfer(
    model: ModelSpec, cluster: Cluster, prefill: Pool, decode: Pool, *, kv_precision: str
) -> KvTransfer:
    """KV move from a prefill instance to a decode instance over the fabric between them.

    Each attention GPU of a prefill instance sends its shard to a GPU of the decode pool
    at once: point-to-point flows priced by the collectives' topology
    (`collectives/p2p.py`), as training's pipeline sends are, so the route (scale-up
    fabric, domain link or NIC rails), shared links and each link's achieved efficiency
    (the links catalog) are the same ones training sees.
    """
    sources = prefill.first_gpu + np.arange(prefill.plan.attention_gpus, dtype=np.int64)
    pairs = np.stack([sources, decode.first_gpu + sources % decode.gpus], axis=1)
    cost = costs_for("send_recv", pairs, CommModel(cluster).topology)["p2p"]
    per_token = kv_bytes_per_token(model, kv_precision) / prefill.plan.attention_gpus
    return KvTransfer(latency_s=cost.fixed_s, s_per_prompt_token=per_token * cost.per_byte_s)


def resolve(scenario: Scenario) -> Deployment:
    """The deployment a scenario's serving section describes.

    Raises:
        SpecError: the plan does not suit the model or the cluster (names the field).
        InfeasiblePlan: the chip lacks the asked precision.
    """
    serving = scenario.serving
    if serving is None:
        raise SpecError(
            "this scenario has no serving section (serving: {plan, workload, ...}); "
            "it describes training, see 'superscale simulate'"
        )
    model, cluster = scenario.model, scenario.cluster
    precision, kv_precision = resolve_precisions(serving, cluster.chip)
    attention = resolve_attention_precision(serving.attention_precision, kv_precision, cluster.chip)
    speculation = resolve_speculation(serving.speculative, model)
    weight_format, weight_bytes = resolve_weights(serving, precision)
    sched = serving.scheduler

    def make(role: Role, plan: PlanSpec, n: int, first: int, tokens: int | None = None) -> Pool:
        return _pool(role, plan, n, first, model, cluster, precision=precision,
                     kv_precision=kv_precision, attention_precision=attention,
                     scheduler=sched, speculation=speculation, max_tokens=tokens,
                     weight_bytes=weight_bytes)  # fmt: skip

    warnings: list[str] = []
    dis = serving.disaggregation
    if dis is None:
        check_plan(serving.plan, model, "serving.plan")
        n = _instances(serving.plan, cluster.gpus, "serving.plan")
        pools: tuple[Pool, ...] = (make("mixed", serving.plan, n, 0),)
        transfer = None
    else:
        if dis.prefill_gpus + dis.decode_gpus > cluster.gpus:
            raise SpecError(
                f"prefill_gpus + decode_gpus = {dis.prefill_gpus + dis.decode_gpus} exceeds "
                f"the cluster's {cluster.gpus} GPUs",
                path="serving.disaggregation",
            )
        p_plan = dis.prefill_plan or serving.plan
        d_plan = dis.decode_plan or serving.plan
        p_path = "serving.disaggregation.prefill_plan" if dis.prefill_plan else "serving.plan"
        d_path = "serving.disaggregation.decode_plan" if dis.decode_plan else "serving.plan"
        check_plan(p_plan, model, p_path)
        check_plan(d_plan, model, d_path)
        n_p = _instances(p_plan, dis.prefill_gpus, p_path)
        n_d = _instances(d_plan, dis.decode_gpus, d_path)
        p_tokens = None
        if dis.prefill_max_batch_tokens is not None:
            p_tokens = dis.prefill_max_batch_tokens + sched.max_batch
        prefill = make("prefill", p_plan, n_p, 0, p_tokens)
        decode = make("decode", d_plan, n_d, dis.prefill_gpus)
        pools = (prefill, decode)
        transfer = kv_transfer(model, cluster, prefill, decode, kv_precision=kv_precision)
    for pool in pools:
        tp_span = pool.plan.tp * pool.plan.attention_dp
        if tp_span > cluster.system.scale_up.gpus:
            warnings.append(
                f"{pool.role} instances span {tp_span} GPUs per stage, more than the "
                f"scale-up domain of {cluster.system.scale_up.gpus}: tensor/expert traffic "
                "crosses the scale-out network"
            )
    return Deployment(
        pools=pools,
        precision=precision,
        kv_precision=kv_precision,
        scheduler=sched,
        transfer=transfer,
        warnings=tuple(warnings),
        prefill_max_batch_tokens=dis.prefill_max_batch_tokens if dis is not None else None,
        attention_precision=attention,
        speculation=speculation,
        weight_format=weight_format,
        weight_bytes=weight_bytes,
    )


def engine_configs(dep: Deployment) -> list[EngineConfig]:
    """The simulator's engines: pp engines per instance, each with 1/pp of its KV cache."""
    sched = dep.scheduler
    out: list[EngineConfig] = []
    for pool in dep.pools:
        if pool.step is None:
            raise SpecError(f"the model does not fit on the {pool.role} pool's GPUs")
        pp = pool.plan.pp
        budget = sched.max_batch_tokens
        if pool.role == "prefill" and dep.prefill_max_batch_tokens is not None:
            budget = dep.prefill_max_batch_tokens
        cfg = EngineConfig(
            role=pool.role,
            step=pool.step,
            kv_tokens=pool.budget.kv_tokens_per_instance // pp,
            max_batch=sched.max_batch,
            max_batch_tokens=budget,
            chunked_prefill=sched.chunked_prefill,
            prefix_cache_hit_rate=sched.prefix_cache_hit_rate,
        )
        out.extend([cfg] * (pool.instances * pp))
    return out
