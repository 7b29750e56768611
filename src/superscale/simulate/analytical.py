"""The analytical engine: step time of a lowered program in closed form.

Per stage and micro-batch, forward and backward time is the sum of compute-op times plus
the exposed part of each collective. Tensor-parallel collectives are exposed unless the
plan overlaps them with GEMMs; then only what exceeds the GEMM time shows, plus a residual
(`OVERLAP_RESIDUAL`) for pipeline fill and SM contention. Context-parallel K/V exchange
hides behind attention the same way; expert all-to-all is exposed, and so are pipeline
sends except under DualPipe.

Pipeline (1F1B, Narayanan et al. 2021): with per-micro-batch stage times t_i, m
micro-batches and v virtual stages, T = m·max_i t_i + β·(Σ_i t_i − max_i t_i), β = 1/v;
uniform stages give the familiar (m + (p−1)/v)·t and bubble fraction (p−1)/(v·m + p−1).
ZB-H1 removes about two thirds of the 1F1B bubble (Qi et al. 2024: β = 1/3) and DualPipe
half of it (DeepSeek-AI 2024); the event engine models these schedules exactly.

Gradient reduction runs after the last micro-batch's backward; with overlap it hides
behind that backward (less the residual every overlapped collective pays), and stage i
also has the i·t_b cool-down slack before stage 0 finishes. The parameter all-gather of a
distributed optimizer hides likewise behind the next forward.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from superscale import vec
from superscale.collectives.tuner import CommModel
from superscale.costs.compute import compute_time_s
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupPlacement, GroupShape, Plan
from superscale.training.lower import Program, StageProgram
from superscale.training.ops import CommOp, ComputeOp, Op

# Schedules whose pipeline sends run beside other work. Interleaving can too
# (overlap_p2p_comm), but the published interleaved runs match exposed sends better
# (validate: 4.4% vs 4.7% mean error), so only DualPipe overlaps here.
ASYNC_P2P = frozenset({"dualpipe"})
OVERLAP_RESIDUAL = 0.15  # share of an overlapped collective still exposed
DP_OVERLAP_WINDOW = 0.9  # share of the last backward (first forward) a bucketed reduce hides in
SCHEDULE_BUBBLE = {"1f1b": 1.0, "interleaved": 1.0, "gpipe": 1.0, "zb-h1": 1 / 3, "dualpipe": 0.5}
_ASYNC = {name: float(name in ASYNC_P2P) for name in SCHEDULE_BUBBLE}
COMM_GROUPS = ("tp", "cp", "ep", "pp")


@dataclass(frozen=True, slots=True, kw_only=True)
class PassTime:
    """One forward or backward pass of one micro-batch on one stage."""

    compute_s: float
    gemm_s: float
    attention_s: float
    comm_s: dict[str, float]  # raw collective time per group
    exposed_s: dict[str, float]  # exposed collective time per group

    @property
    def total_s(self) -> float:
        return self.compute_s + sum(self.exposed_s.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class StageTime:
    index: int
    forward: PassTime
    backward: PassTime
    grad_sync_s: float
    param_sync_s: float
    optimizer_s: float
    model_flops: float  # per micro-batch, one GPU
    hardware_flops: float

    @property
    def micro_batch_s(self) -> float:
        return self.forward.total_s + self.backward.total_s


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTime:
    """The analytical engine's answer for one training step."""

    step_time_s: float
    breakdown_s: dict[str, float]
    stages: tuple[StageTime, ...] = field(repr=False)
    critical_stage: int
    model_flops_per_gpu: float
    hardware_flops_per_gpu: float


def _placement(op: CommOp, plan: Plan, cluster: Cluster) -> GroupPlacement | GroupShape:
    if op.group == "dp":  # gradients reduce over dp·cp
        return GroupShape(size=plan.dp * plan.cp, stride=plan.tp)
    return plan.groups[op.group]


def _pass_time(
    ops: tuple[Op, ...] | list[Op], plan: Plan, comm_model: CommModel, precision: str
) -> PassTime:
    cluster = comm_model.cluster
    chip = cluster.chip
    compute = gemm = attention = 0.0
    comm = dict.fromkeys(COMM_GROUPS, 0.0)
    overlappable = dict.fromkeys(COMM_GROUPS, 0.0)
    for op in ops:
        if isinstance(op, ComputeOp):
            t = compute_time_s(op, chip, precision)
            compute += t
            gemm += t if op.kind == "gemm" else 0.0
            attention += t if op.kind == "attention" else 0.0
        else:
            group = _placement(op, plan, cluster)
            t = comm_model.time_s(op.collective, op.payload_bytes, group) * op.repeat
            key = "dp" if op.group in {"dp", "edp"} else op.group  # ZeRO-3 weight prefetch
            comm[key] = comm.get(key, 0.0) + t
            if op.overlappable:
                overlappable[key] = overlappable.get(key, 0.0) + t
    exposed = dict(comm)
    if plan.tp_comm_overlap:
        exposed["tp"] = comm["tp"] - overlappable["tp"] + _hidden(overlappable["tp"], gemm)
    exposed["cp"] = comm["cp"] - overlappable["cp"] + _hidden(overlappable["cp"], attention)
    if "dp" in comm:  # prefetched layer by layer behind the pass's compute
        exposed["dp"] = comm["dp"] - overlappable["dp"] + _hidden(overlappable["dp"], compute)
    overlapped = vec.lookup(_ASYNC, plan.schedule)  # sends beside the other direction's work
    if vec.is_array(overlapped):
        exposed["pp"] = np.where(overlapped > 0, _hidden(comm["pp"], compute), comm["pp"])
    elif overlapped:
        exposed["pp"] = _hidden(comm["pp"], compute)
    return PassTime(
        compute_s=compute, gemm_s=gemm, attention_s=attention, comm_s=comm, exposed_s=exposed
    )


def _hidden(comm_s: float, window_s: float) -> float:
    """Exposed time of a collective overlapped with `window_s` of compute."""
    return vec.maximum(0.0, comm_s - window_s) + OVERLAP_RESIDUAL * vec.minimum(comm_s, window_s)


def _stage_time(
    stage: StageProgram, plan: Plan, comm_model: CommModel, precision: str
) -> StageTime:
    cluster = comm_model.cluster
    fwd = _pass_time(stage.forward, plan, comm_model, precision)
    bwd = _pass_time(stage.backward, plan, comm_model, precision)
    grad = param = opt = 0.0
    for op in stage.step:
        if isinstance(op, ComputeOp):
            opt += compute_time_s(op, cluster.chip, precision)
        else:
            group = _placement(op, plan, cluster)
            t = comm_model.time_s(op.collective, op.payload_bytes, group) * op.repeat
            if op.collective == "all_gather":
                param += t
            else:
                grad += t
    ops = (*stage.forward, *stage.backward)
    model = sum(op.model_flops for op in ops if isinstance(op, ComputeOp))
    hardware = sum(op.hardware_flops for op in ops if isinstance(op, ComputeOp))
    return StageTime(
        index=stage.index,
        forward=fwd,
        backward=bwd,
        grad_sync_s=grad,
        param_sync_s=param,
        optimizer_s=opt,
        model_flops=model,
        hardware_flops=hardware,
    )


def estimate_step(
    program: Program,
    plan: Plan,
    cluster: Cluster,
    precision: str,
    *,
    comm_model: CommModel | None = None,
) -> StepTime:
    """Step time and its breakdown for `program` under `plan` on `cluster`.

    Pass a `comm_model` to reuse routed collective costs across calls on one cluster.
    """
    comm = comm_model or CommModel(cluster)
    priced: dict[tuple[int, int, bool, bool], StageTime] = {}
    stage_list = []
    for stage in program.stages:  # identical stages (same layers and position) priced once
        key = stage.signature
        if key == (0, 0, False, False) or key not in priced:
            priced[key] = _stage_time(stage, plan, comm, precision)
        stage_list.append(replace(priced[key], index=stage.index))
    stages = tuple(stage_list)
    m = program.micro_batches
    times = [s.micro_batch_s for s in stages]
    crit = _argmax(times)
    t_crit = _pick(times, crit)
    beta = vec.lookup(SCHEDULE_BUBBLE, plan.schedule) / plan.virtual_stages
    pipeline = m * t_crit + beta * (sum(times) - t_crit)

    window = DP_OVERLAP_WINDOW if plan.dp_comm_overlap else 0.0
    tails, heads = [], []
    for s in stages:
        slack_b = s.index * s.backward.total_s
        slack_f = s.index * s.forward.total_s
        grad_exposed = _hidden(s.grad_sync_s, window * s.backward.total_s)
        tails.append(vec.maximum(0.0, grad_exposed + s.optimizer_s - slack_b))
        param_exposed = _hidden(s.param_sync_s, window * s.forward.total_s)
        heads.append(vec.maximum(0.0, param_exposed - slack_f))
    tail_stage = _argmax(tails)
    tail = _pick(tails, tail_stage)
    head = functools.reduce(vec.maximum, heads)
    other = vec.minimum(tail, _pick([s.optimizer_s for s in stages], tail_stage))
    dp_comm = tail - other + head

    def critical(values: list[Any]) -> Any:
        return _pick(values, crit)

    breakdown = {
        "compute": m * critical([s.forward.compute_s + s.backward.compute_s for s in stages]),
        **{
            f"{g}_comm": m
            * critical([s.forward.exposed_s[g] + s.backward.exposed_s[g] for s in stages])
            for g in COMM_GROUPS
        },
        "pp_bubble": pipeline - m * t_crit,
        "dp_comm": dp_comm
        + m
        * critical(
            [
                s.forward.exposed_s.get("dp", 0.0) + s.backward.exposed_s.get("dp", 0.0)
                for s in stages
            ]
        ),
        "other": other,
    }
    step = pipeline + tail + head
    breakdown["exposed_comm"] = sum(breakdown[f"{g}_comm"] for g in (*COMM_GROUPS, "dp"))
    n_stages = len(stages)
    model_flops = m * sum(s.model_flops for s in stages) / n_stages
    hardware_flops = m * sum(s.hardware_flops for s in stages) / n_stages
    return StepTime(
        step_time_s=step,
        breakdown_s=breakdown,
        stages=stages,
        critical_stage=crit,
        model_flops_per_gpu=model_flops,
        hardware_flops_per_gpu=hardware_flops,
    )


def _argmax(values: list[Any]) -> Any:
    """Index of the largest value: an int for one plan, an int array for a batch (first
    maximum on ties, as max() does)."""
    if not vec.is_array(*values):
        return max(range(len(values)), key=lambda i: values[i])
    return np.argmax(np.stack(np.broadcast_arrays(*values)), axis=0)


def _pick(values: list[Any], index: Any) -> Any:
    """values[index] for one plan; per-plan selection for a batch."""
    if not isinstance(index, np.ndarray):
        return values[index]
    stacked = np.stack([np.broadcast_to(v, index.shape) for v in values])
    return np.take_along_axis(stacked, index[None, :], axis=0)[0]
