"""The plan rules, once: which parallel plans can run, and why not.

Scenario validation (at load), search pruning and both engines ask these functions, so a
plan is either refused at load with one reason or priced alike by both engines. Rules
about one schedule live with that schedule (`schedules/<name>.py`, its `problem`);
the rules here are Megatron-LM's divisibility rules for tensor, context and expert
parallelism and the pipeline's split of the layers.
"""

from __future__ import annotations

from superscale.models.spec import ModelSpec
from superscale.schedules import Shape, schedules


def default_schedule(virtual_stages: int) -> str:
    """Megatron-LM's choice: virtual stages switch on the interleaved schedule."""
    return "interleaved" if virtual_stages > 1 else "1f1b"


def schedule_names() -> tuple[str, ...]:
    """Every registered schedule, in registration order."""
    return tuple(schedules())


def schedule_problem(
    schedule: str, *, pp: int, virtual_stages: int, micro_batches: int
) -> str | None:
    """Why `schedule` cannot run this pipeline shape, or None."""
    known = schedules()
    if schedule not in known:
        return f"parallel.schedule: unknown '{schedule}' (known: {', '.join(known)})"
    shape = Shape(stages=pp, micro_batches=micro_batches, chunks=virtual_stages)
    return known[schedule].problem(shape)


def schedule_warning(schedule: str, *, pp: int, micro_batches: int) -> str | None:
    """What Megatron-LM would refuse or run badly, though the engines can price it."""
    if schedule == "interleaved" and micro_batches % pp:
        return (
            f"interleaved schedule with {micro_batches} micro-batches, not a multiple of "
            f"pp={pp}: Megatron-LM requires it"
        )
    if pp > 1 and micro_batches < pp:
        return (
            f"only {micro_batches} micro-batches for {pp} pipeline stages: the bubble "
            "dominates the step"
        )
    return None


def plan_problem(
    model: ModelSpec,
    *,
    tp: int,
    pp: int,
    cp: int,
    ep: int,
    dp: int,
    virtual_stages: int,
    schedule: str,
    micro_batches: int,
    seq_len: int,
    sequence_parallel: bool,
    layout: tuple[int, ...] | None = None,
    redundant_experts: int = 0,
) -> str | None:
    """The first reason a plan cannot run, in the words a scenario error uses, or None.

    With a `layout` (already checked against the plan), chunks may hold no transformer
    layer (Llama 3 405B's embedding-only first chunk); without, each needs one.
    """
    if layout is None and pp * virtual_stages > model.layers:
        return (
            f"parallel: pp·virtual_stages = {pp * virtual_stages} exceeds the model's "
            f"{model.layers} layers"
        )
    if model.heads % tp:
        return f"parallel.tp ({tp}) must divide the model's {model.heads} heads"
    if seq_len % cp:
        return f"parallel.cp ({cp}) must divide training.seq_len ({seq_len})"
    if ep > 1:
        if model.moe is None:
            return f"parallel.ep ({ep}) > 1 needs a mixture-of-experts model"
        if (model.moe.experts + redundant_experts) % ep:
            return f"parallel.ep ({ep}) must divide the {model.moe.experts} experts" + (
                f" plus {redundant_experts} redundant" if redundant_experts else ""
            )
        if (tp * dp * cp) % ep:
            return f"parallel.ep ({ep}) must divide tp·cp·dp = {tp * dp * cp}"
    if model.moe is not None and tp > 1 and not sequence_parallel:
        return (
            "parallel.sequence_parallel must be true for a mixture-of-experts model with "
            "tp > 1 (Megatron-LM requires it)"
        )
    return schedule_problem(
        schedule, pp=pp, virtual_stages=virtual_stages, micro_batches=micro_batches
    )


def hsdp_problem(shard_group: int, *, tp: int, cp: int, ep: int, dp: int) -> str | None:
    """Why an HSDP shard group of `shard_group` GPUs cannot split this plan's data
    parallelism, or None. The shard group takes consecutive data-parallel ranks (stride
    tp), and copies of it replicate across the rest; routed experts shard over the
    shard group's tp·shard_group/ep expert-data-parallel ranks."""
    if (dp * cp) % shard_group:
        return f"parallel.fsdp.shard_group ({shard_group}) must divide dp·cp = {dp * cp}"
    if (tp * shard_group) % ep:
        return (
            f"parallel.fsdp.shard_group ({shard_group}): tp·shard_group = {tp * shard_group} "
            f"must be a multiple of ep ({ep}) to shard the experts inside it"
        )
    return None
