"""The analytical engine: step time of a lowered program in closed form.

Per stage and micro-batch, forward and backward time is the sum of compute-op times plus
the exposed part of each collective. Tensor-parallel collectives are exposed unless the
plan overlaps them with GEMMs; then only what exceeds the GEMM time shows, plus a residual
(`OVERLAP_RESIDUAL`) for pipeline fill and SM contention. Context-parallel K/V exchange
hides behind attention the same way; expert all-to-all behind the pass's compute under
DualPipe or `ep_comm_overlap`, else it is exposed, and so are pipeline sends except under
DualPipe. With virtual stages a rank's pass is the sum of its chunks' (each chunk is a task
of its own in the event engine, so its collectives hide behind its own compute only), and
every chunk sends its activations on and its gradients back but the model's last (first).

Pipeline (1F1B, Narayanan et al. 2021): with per-micro-batch stage times t_i, m
micro-batches and v virtual stages, T = m·max_i t_i + β·(Σ_i t_i − max_i t_i), β = 1/v;
uniform stages give the familiar (m + (p−1)/v)·t and bubble fraction (p−1)/(v·m + p−1).
ZB-H1 removes about two thirds of the 1F1B bubble (Qi et al. 2024: β = 1/3) and DualPipe
half of it (DeepSeek-AI 2024); the event engine models these schedules exactly.

Gradient reduction runs after the last micro-batch's backward; with overlap it hides
behind DP_OVERLAP_WINDOW of that backward (less the residual every overlapped collective
pays, even when the reduction outlasts the window), and stage i also has the i·t_b
cool-down slack before stage 0 finishes. The parameter all-gather of a distributed
optimizer hides likewise behind the first forward.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from superscale import vec
from superscale.collectives.tuner import CommModel
from superscale.costs.compute import compute_time_s
from superscale.costs.host import HostTally, pass_host_s
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupPlacement, GroupShape, Plan, grad_group
from superscale.program.ops import CommOp, ComputeOp, Op
from superscale.schedules import schedules
from superscale.training.lower import Program, StageProgram

# Schedules whose pipeline sends run beside other work (each schedule says so itself;
# interleaving could with overlap_p2p_comm, but its module keeps sends exposed).
ASYNC_P2P = frozenset(name for name, s in schedules().items() if s.async_sends)
OVERLAP_RESIDUAL = 0.15  # share of an overlapped collective still exposed
DP_OVERLAP_WINDOW = 0.9  # share of the last backward (first forward) a bucketed reduce hides in
_BIDIRECTIONAL = {name: float(s.bidirectional) for name, s in schedules().items()}
_CHUNK_GRAD_GAP = {name: float(s.chunk_grad_gap) for name, s in schedules().items()}
_ASYNC = {name: float(name in ASYNC_P2P) for name in schedules()}
COMM_GROUPS = ("tp", "cp", "ep", "pp")


@dataclass(frozen=True, slots=True, kw_only=True)
class PassTime:
    """One forward or backward pass of one micro-batch on one stage."""

    compute_s: float
    gemm_s: float
    attention_s: float
    comm_s: dict[str, float]  # raw collective time per group
    exposed_s: dict[str, float]  # exposed collective time per group
    gather_wait_s: Any = 0.0  # ZeRO-3 gathers without prefetch: the pass waits on the NIC
    host_wait_s: float = 0.0  # the device idle, waiting on the host's launches (costs/host.py)

    @property
    def total_s(self) -> float:
        return self.compute_s + self.host_wait_s + sum(self.exposed_s.values())


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
    stages: tuple[StageTime, ...] = field(repr=False)  # first of each distinct stage
    critical_stage: int
    model_flops_per_gpu: float
    hardware_flops_per_gpu: float
    # per group (tp_comm, cp_comm, ep_comm): the critical rank's collective time that ran
    # under its compute, beside the exposed time the breakdown counts
    hidden_comm_s: dict[str, float] = field(default_factory=dict)


HIDDEN_GROUPS = ("tp", "cp", "ep")  # per-layer collectives that may hide behind compute


def _placement(op: CommOp, plan: Plan, cluster: Cluster) -> GroupPlacement | GroupShape:
    if op.group == "dp":  # gradients reduce over dp·cp (HSDP: its shard group)
        return grad_group(plan)
    return plan.groups[op.group]


@dataclass(frozen=True, slots=True, kw_only=True)
class PassSums:
    """Sums over a run of ops: compute time (all, GEMM, attention), and collective time per
    group, all of it and the overlappable part. Linear in the ops, so a stage's sums are
    its pieces' (a layer's n-fold); overlap is applied to the totals (`exposed`)."""

    compute_s: Any
    gemm_s: Any
    attention_s: Any
    comm_s: dict[str, Any]
    overlappable_s: dict[str, Any]
    model_flops: Any
    hardware_flops: Any
    # per run of work (`ComputeOp.unit`): the host's time to issue its launches, and its
    # device compute, which the host's issuing runs beside
    host_s: dict[str, Any] = field(default_factory=dict)
    unit_compute_s: dict[str, Any] = field(default_factory=dict)

    def __add__(self, other: PassSums) -> PassSums:
        return PassSums(
            host_s=_add_groups(self.host_s, other.host_s),
            unit_compute_s=_add_groups(self.unit_compute_s, other.unit_compute_s),
            compute_s=self.compute_s + other.compute_s,
            gemm_s=self.gemm_s + other.gemm_s,
            attention_s=self.attention_s + other.attention_s,
            comm_s=_add_groups(self.comm_s, other.comm_s),
            overlappable_s=_add_groups(self.overlappable_s, other.overlappable_s),
            model_flops=self.model_flops + other.model_flops,
            hardware_flops=self.hardware_flops + other.hardware_flops,
        )

    def scaled(self, factor: Any) -> PassSums:
        """The sums of `factor` copies (a layer's, for a stage of `factor` layers)."""
        return PassSums(
            host_s={k: v * factor for k, v in self.host_s.items()},
            unit_compute_s={k: v * factor for k, v in self.unit_compute_s.items()},
            compute_s=self.compute_s * factor,
            gemm_s=self.gemm_s * factor,
            attention_s=self.attention_s * factor,
            comm_s={k: v * factor for k, v in self.comm_s.items()},
            overlappable_s={k: v * factor for k, v in self.overlappable_s.items()},
            model_flops=self.model_flops * factor,
            hardware_flops=self.hardware_flops * factor,
        )

    def take(self, rows: np.ndarray) -> PassSums:
        """The sums of plans `rows` of a batch."""
        return PassSums(
            host_s={k: _take(v, rows) for k, v in self.host_s.items()},
            unit_compute_s={k: _take(v, rows) for k, v in self.unit_compute_s.items()},
            compute_s=_take(self.compute_s, rows),
            gemm_s=_take(self.gemm_s, rows),
            attention_s=_take(self.attention_s, rows),
            comm_s={k: _take(v, rows) for k, v in self.comm_s.items()},
            overlappable_s={k: _take(v, rows) for k, v in self.overlappable_s.items()},
            model_flops=_take(self.model_flops, rows),
            hardware_flops=_take(self.hardware_flops, rows),
        )


def _add_groups(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out[key] + value if key in out else value
    return out


def pass_sums(
    ops: tuple[Op, ...] | list[Op], plan: Plan, comm_model: CommModel, precision: str
) -> PassSums:
    """Sum `ops`' compute and collective times (and counted FLOPs) under `plan`."""
    cluster = comm_model.cluster
    chip = cluster.chip
    compute = gemm = attention = model = hardware = 0.0
    host = HostTally(plan.cuda_graphs)
    comm = dict.fromkeys(COMM_GROUPS, 0.0)
    overlappable = dict.fromkeys(COMM_GROUPS, 0.0)
    for op in ops:
        if isinstance(op, ComputeOp):
            t = compute_time_s(op, chip, precision)
            compute += t
            gemm += t if op.kind == "gemm" else 0.0
            attention += t if op.kind == "attention" else 0.0
            model += op.model_flops
            hardware += op.hardware_flops
            host.compute(op, t)
        else:
            group = _placement(op, plan, cluster)
            t = comm_model.time_s(op.collective, op.payload_bytes, group) + op.setup_s
            t = t * op.repeat
            host.comm(op, t)
            key = "dp" if op.group in {"dp", "edp"} else op.group  # ZeRO-3 weight prefetch
            comm[key] = comm.get(key, 0.0) + t
            if op.overlappable:
                overlappable[key] = overlappable.get(key, 0.0) + t
    return PassSums(
        host_s=host.host_s(plan.host_launch_s),
        unit_compute_s=host.compute_s,
        compute_s=compute,
        gemm_s=gemm,
        attention_s=attention,
        comm_s=comm,
        overlappable_s=overlappable,
        model_flops=model,
        hardware_flops=hardware,
    )


def exposed_pass(sums: PassSums, plan: Plan) -> PassTime:
    """A pass's time from its sums: each group's collectives exposed, or hidden behind
    the compute they overlap (sends are left to `_with_schedule`)."""
    comm, overlappable = sums.comm_s, sums.overlappable_s
    exposed = dict(comm)
    host_wait = pass_host_s(sums.host_s, sums.unit_compute_s)
    busy = sums.compute_s + host_wait  # what overlapped all-to-all and prefetch run beside
    if plan.tp_comm_overlap:
        exposed["tp"] = comm["tp"] - overlappable["tp"] + _hidden(overlappable["tp"], sums.gemm_s)
    exposed["cp"] = comm["cp"] - overlappable["cp"] + _hidden(overlappable["cp"], sums.attention_s)
    # Expert all-to-all runs beside compute under DualPipe (the other direction's chunk) and
    # with Megatron's --overlap-moe-expert-parallel-comm (the other micro-batch's), as the
    # event engine runs it: issued without blocking, waited for at the pass's end.
    ep_overlapped = ep_overlap_mask(plan)
    if vec.is_array(ep_overlapped):
        hidden_ep = _hidden(comm["ep"], busy)
        exposed["ep"] = np.where(ep_overlapped > 0, hidden_ep, comm["ep"])
    elif ep_overlapped:
        exposed["ep"] = _hidden(comm["ep"], busy)
    if "dp" in comm:  # prefetched layer by layer behind the pass's busy time: its compute,
        # its host wait and the exposed tensor-, context- and expert-parallel collectives
        # (the event engine's order: issued at the pass's start, waited for at its end)
        window = busy + exposed["tp"] + exposed["cp"] + exposed["ep"]
        exposed["dp"] = (
            comm["dp"] - overlappable.get("dp", 0.0) + _hidden(overlappable.get("dp", 0.0), window)
        )
    return PassTime(
        compute_s=sums.compute_s,
        gemm_s=sums.gemm_s,
        attention_s=sums.attention_s,
        comm_s=dict(comm),
        exposed_s=exposed,
        gather_wait_s=comm.get("dp", 0.0) - overlappable.get("dp", 0.0),
        host_wait_s=host_wait,
    )


def ep_overlap_mask(plan: Plan) -> Any:
    """Whether a plan's expert all-to-all overlaps compute: its switch, or a schedule that
    runs two directions at once (1.0/0.0 per plan of a batch, or a bool)."""
    if plan.ep_comm_overlap is True:
        return True
    both = vec.lookup(_BIDIRECTIONAL, plan.schedule)
    if vec.is_array(both) or vec.is_array(plan.ep_comm_overlap):
        return np.maximum(both, np.asarray(plan.ep_comm_overlap, dtype=float))
    return bool(both)


def _grad_exposed(grad_s: Any, busy_b: Any, window: float, plan: Plan) -> Any:
    """Exposed gradient reduction after a rank's last backward (`busy_b`: its compute).

    One chunk per rank: the reduction hides behind `window` of that backward. With v
    chunks whose last backwards a schedule staggers (`chunk_grad_gap`: interleaved, p chunk
    backwards apart), each chunk's g/v starts in the last `window` of its own last backward
    and the reductions queue on the link: chunk c (0 last) is ready c·d − w·b before the
    end, d = gap·p·b, b = busy_b/v, so the queue ends max(g/v, g − (v−1)·d) − w·b after it;
    the residual is the one-chunk form's, each chunk paying its share (the event engine's
    per-chunk order)."""
    one_chunk = _hidden(grad_s, window * busy_b)
    v = vec.as_float(plan.virtual_stages)
    gap = vec.lookup(_CHUNK_GRAD_GAP, plan.schedule)
    if window == 0.0 or not (vec.any_nonzero(gap) and vec.any_nonzero(v - 1)):
        return one_chunk
    chunk_b = busy_b / v
    queue = vec.maximum(grad_s / v, grad_s - (v - 1) * gap * plan.pp * chunk_b)
    staggered = vec.maximum(0.0, queue - window * chunk_b) + OVERLAP_RESIDUAL * vec.minimum(
        grad_s, window * busy_b
    )
    return vec.where((gap > 0) & (v > 1), staggered, one_chunk)


def _hidden(comm_s: vec.Num, window_s: vec.Num) -> vec.Num:
    """Exposed time of a collective overlapped with `window_s` of compute."""
    return vec.maximum(0.0, comm_s - window_s) + OVERLAP_RESIDUAL * vec.minimum(comm_s, window_s)


def _with_schedule(pass_time: PassTime, overlapped: Any) -> PassTime:
    """`pass_time` with its pipeline sends exposed as the schedule runs them: beside the
    other direction's work where `overlapped` (an asynchronous schedule such as DualPipe;
    `_ASYNC` looked up once per stage), in full otherwise."""
    comm_pp = pass_time.comm_s["pp"]
    busy = pass_time.compute_s + pass_time.host_wait_s
    exposed_pp: Any
    if vec.is_array(overlapped):
        exposed_pp = np.where(overlapped > 0, _hidden(comm_pp, busy), comm_pp)
    elif overlapped:
        exposed_pp = _hidden(comm_pp, busy)
    else:
        return pass_time
    return replace(pass_time, exposed_s={**pass_time.exposed_s, "pp": exposed_pp})


@dataclass(frozen=True, slots=True, kw_only=True)
class StagePasses:
    """A stage's per-micro-batch work, before the schedule decides how sends overlap."""

    forward: PassTime
    backward: PassTime
    model_flops: float
    hardware_flops: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StageSync:
    """A stage's once-per-step work: gradient reduction, parameter gathering, optimizer."""

    grad_sync_s: float
    param_sync_s: float
    optimizer_s: float

    def take(self, rows: np.ndarray) -> StageSync:
        """The step work of plans `rows` of a batch."""
        return StageSync(
            grad_sync_s=_take(self.grad_sync_s, rows),
            param_sync_s=_take(self.param_sync_s, rows),
            optimizer_s=_take(self.optimizer_s, rows),
        )


def _take(value: Any, rows: np.ndarray) -> Any:
    """value[rows] for a batch's array; a scalar (the same for every plan) as it is."""
    return value[rows] if isinstance(value, np.ndarray) and value.ndim else value


def stage_passes(
    stage: StageProgram, plan: Plan, comm_model: CommModel, precision: str
) -> StagePasses:
    """Forward and backward pass times of one micro-batch on `stage` (sends exposed in
    full; `_with_schedule` applies the schedule) and the FLOPs they count."""
    forward = pass_sums(stage.forward, plan, comm_model, precision)
    backward = pass_sums(stage.backward, plan, comm_model, precision)
    return passes_of(forward, backward, plan)


def rank_passes(
    program: Program, stage: StageProgram, plan: Plan, comm_model: CommModel, precision: str
) -> StagePasses:
    """A rank's passes: with virtual stages the sum of its chunks' (each chunk's
    collectives overlap that chunk's compute only, as the event engine runs its tasks),
    else its stage's."""
    if not stage.chunks or len(program.virtual) == len(program.stages):
        return stage_passes(stage, plan, comm_model, precision)
    chunks = [program.virtual[c * plan.pp + stage.index] for c in range(len(stage.chunks))]
    return sum_passes([stage_passes(chunk, plan, comm_model, precision) for chunk in chunks])


def sum_passes(chunks: list[StagePasses]) -> StagePasses:
    """A rank's passes from its model chunks' (in chunk order)."""
    return functools.reduce(
        lambda a, b: StagePasses(
            forward=_add_pass(a.forward, b.forward),
            backward=_add_pass(a.backward, b.backward),
            model_flops=a.model_flops + b.model_flops,
            hardware_flops=a.hardware_flops + b.hardware_flops,
        ),
        chunks,
    )


def _add_pass(a: PassTime, b: PassTime) -> PassTime:
    return PassTime(
        compute_s=a.compute_s + b.compute_s,
        gemm_s=a.gemm_s + b.gemm_s,
        attention_s=a.attention_s + b.attention_s,
        comm_s=_add_groups(a.comm_s, b.comm_s),
        exposed_s=_add_groups(a.exposed_s, b.exposed_s),
        gather_wait_s=a.gather_wait_s + b.gather_wait_s,
        host_wait_s=a.host_wait_s + b.host_wait_s,
    )


def passes_of(forward: PassSums, backward: PassSums, plan: Plan) -> StagePasses:
    """A stage's passes from the sums of its forward and backward ops."""
    return StagePasses(
        forward=exposed_pass(forward, plan),
        backward=exposed_pass(backward, plan),
        model_flops=forward.model_flops + backward.model_flops,
        hardware_flops=forward.hardware_flops + backward.hardware_flops,
    )


def stage_sync(stage: StageProgram, plan: Plan, comm_model: CommModel, precision: str) -> StageSync:
    """The step ops of `stage`: gradient reduction, parameter all-gather, optimizer."""
    cluster = comm_model.cluster
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
    return StageSync(grad_sync_s=grad, param_sync_s=param, optimizer_s=opt)


def stage_time(index: int, passes: StagePasses, sync: StageSync, schedule: Any) -> StageTime:
    """A stage's times under `schedule`, from its passes and its step work."""
    overlapped = vec.lookup(_ASYNC, schedule)
    return StageTime(
        index=index,
        forward=_with_schedule(passes.forward, overlapped),
        backward=_with_schedule(passes.backward, overlapped),
        grad_sync_s=sync.grad_sync_s,
        param_sync_s=sync.param_sync_s,
        optimizer_s=sync.optimizer_s,
        model_flops=passes.model_flops,
        hardware_flops=passes.hardware_flops,
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
    stages = [
        (
            stage_time(
                stage.index,
                rank_passes(program, stage, plan, comm, precision),
                stage_sync(stage, plan, comm, precision),
                plan.schedule,
            ),
            count,
        )
        for stage, count in program.distinct_stages()
    ]
    return combine(stages, program.micro_batches, plan)


def combine(stages: list[tuple[StageTime, int]], micro_batches: Any, plan: Plan) -> StepTime:
    """The step from its distinct stages (each with how many stages share it, in stage
    order): the pipeline formula of the module docstring, then the exposed gradient
    reduction (tail) and parameter gathering (head). `plan` gives the schedule, virtual
    stages and whether data-parallel communication overlaps."""
    m = micro_batches
    bubble = {name: s.bubble_factor(plan.pp) for name, s in schedules().items()}
    beta = vec.lookup(bubble, plan.schedule) / plan.virtual_stages
    # A rank's work per micro-batch: its stage's, or under a bidirectional schedule (DualPipe)
    # half of stage r's and half of stage p−1−r's, whose chunks it runs in turn.
    both = vec.lookup(_BIDIRECTIONAL, plan.schedule)
    lanes = _single_lanes(stages)
    if vec.is_array(both) and both.any() and not both.all():
        paired, mixed = _paired_lanes(stages), both > 0
    elif bool(np.all(both)):
        lanes, paired, mixed = _paired_lanes(stages), None, None
    else:
        paired, mixed = None, None

    def reduce(values: list[Any]) -> tuple[Any, Any]:
        """(the critical rank's value, the sum over ranks) of per-stage `values`."""
        crit_value, total = _reduce(lanes, values, [s.micro_batch_s for s, _ in stages])
        if paired is None:
            return crit_value, total
        alt_crit, alt_total = _reduce(paired, values, [s.micro_batch_s for s, _ in stages])
        return np.where(mixed, alt_crit, crit_value), np.where(mixed, alt_total, total)

    t_crit, total = reduce([s.micro_batch_s for s, _ in stages])
    pipeline = m * t_crit + beta * (total - t_crit)
    first_of = [stages[lane[0][0][0]][0].index for lane in lanes]  # a lane's first stage
    critical_stage = _pick(
        first_of, _argmax([_on(lane, [s.micro_batch_s for s, _ in stages]) for lane in lanes])
    )

    window = DP_OVERLAP_WINDOW if plan.dp_comm_overlap else 0.0
    tails, heads = [], []
    # Under a bidirectional schedule a rank's two chunks finish apart: the first chunk's
    # half of the gradients reduces beside the other's remaining backwards, so only the
    # last chunk's half waits on its own last backward (the event engine's order).
    last_share = vec.where(both > 0, 0.5, 1.0)
    for s, _ in stages:  # twins sit later, with more slack: the first of each is the worst
        slack_b = s.index * s.backward.total_s
        slack_f = s.index * s.forward.total_s
        # the reduction hides behind the backward's work, not behind its waits for
        # unprefetched weight gathers on the same links
        busy_b = s.backward.total_s - s.backward.gather_wait_s
        grad_exposed = _grad_exposed(last_share * s.grad_sync_s, busy_b, window, plan)
        tails.append(vec.maximum(0.0, grad_exposed + s.optimizer_s - slack_b))
        param_exposed = _hidden(s.param_sync_s, window * s.forward.total_s)
        heads.append(vec.maximum(0.0, param_exposed - slack_f))
    tail_stage = _argmax(tails)
    tail = _pick(tails, tail_stage)
    head = functools.reduce(vec.maximum, heads)
    other = vec.minimum(tail, _pick([s.optimizer_s for s, _ in stages], tail_stage))
    dp_comm = tail - other + head

    def critical(values: list[Any]) -> Any:
        return reduce(values)[0]

    passes = [(s.forward, s.backward) for s, _ in stages]
    breakdown = {
        "compute": m * critical([f.compute_s + b.compute_s for f, b in passes]),
        "host": m * critical([f.host_wait_s + b.host_wait_s for f, b in passes]),
        **{
            f"{g}_comm": m * critical([f.exposed_s[g] + b.exposed_s[g] for f, b in passes])
            for g in COMM_GROUPS
        },
        "pp_bubble": pipeline - m * t_crit,
        "dp_comm": dp_comm
        + m
        * critical([f.exposed_s.get("dp", 0.0) + b.exposed_s.get("dp", 0.0) for f, b in passes]),
        "other": other,
    }
    step = pipeline + tail + head
    breakdown["exposed_comm"] = sum(breakdown[f"{g}_comm"] for g in (*COMM_GROUPS, "dp"))
    hidden = {
        f"{g}_comm": vec.maximum(
            0.0,
            m * critical([f.comm_s[g] + b.comm_s[g] for f, b in passes]) - breakdown[f"{g}_comm"],
        )
        for g in HIDDEN_GROUPS
    }
    n_stages = sum(n for _, n in stages)
    model_flops = m * sum(s.model_flops * n for s, n in stages) / n_stages
    hardware_flops = m * sum(s.hardware_flops * n for s, n in stages) / n_stages
    return StepTime(
        step_time_s=step,
        breakdown_s=breakdown,
        stages=tuple(s for s, _ in stages),
        critical_stage=critical_stage,
        model_flops_per_gpu=model_flops,
        hardware_flops_per_gpu=hardware_flops,
        hidden_comm_s=hidden,
    )


Lane = tuple[tuple[tuple[int, float], ...], int]  # ((distinct stage, weight), ...), ranks


def _single_lanes(stages: list[tuple[StageTime, int]]) -> list[Lane]:
    """Each distinct stage is the work of its ranks."""
    return [(((k, 1.0),), n) for k, (_, n) in enumerate(stages)]


def _paired_lanes(stages: list[tuple[StageTime, int]]) -> list[Lane]:
    """Rank r runs stage r and stage p−1−r (DualPipe): its work is their mean."""
    order = [k for k, (_, n) in enumerate(stages) for _ in range(n)]
    p = len(order)
    counts: dict[tuple[int, int], int] = {}
    for r in range(p):
        key = (order[r], order[p - 1 - r])
        counts[key] = counts.get(key, 0) + 1
    lanes: list[Lane] = []
    for (a, b), n in counts.items():
        lanes.append((((a, 1.0),), n) if a == b else (((a, 0.5), (b, 0.5)), n))
    return lanes


def _on(lane: Lane, of: list[Any]) -> Any:
    """A lane's share of per-stage values."""
    return functools.reduce(lambda x, y: x + y, [of[k] * w for k, w in lane[0]])


def _reduce(lanes: list[Lane], values: list[Any], times: list[Any]) -> tuple[Any, Any]:
    """`values` on the rank with the longest `times` (first on ties), and summed over ranks."""
    crit = _argmax([_on(lane, times) for lane in lanes])
    per_lane = [_on(lane, values) for lane in lanes]
    total = functools.reduce(
        lambda x, y: x + y, [v * lane[1] for v, lane in zip(per_lane, lanes, strict=True)]
    )
    return _pick(per_lane, crit), total


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
