"""The event-driven engine: a training step as a timeline of kernels and transfers.

Every pipeline rank runs its schedule's tasks (forward, backward, weight-gradient) in
order on a compute stream; each task is the lowered program's ops as segments. Compute
ops take their roofline time. Collectives take their tuned cost (collectives/): a fixed
latency, then `work` seconds of exclusive link time on a `FluidLink` that concurrent
transfers of the same rank share max-min fairly (a pipeline send and the gradient
reduce-scatter on one NIC each get half of it). Blocking collectives stall the compute
stream; overlapped ones (tensor-parallel with userbuffers, context-parallel K/V, ZeRO-3
prefetch, expert all-to-all under DualPipe or `ep_comm_overlap`) run beside it and cost the
compute stream only the overlap residual, and the task waits for them at its end (under
`ep_comm_overlap` a pass's last all-to-all at the next pass's end). Folded layers (one op
for n) that hold an overlapped expert all-to-all are laid out layer by layer, so each
layer's combine hides behind the next layer's work. Pipeline sends carry activations and
gradients to the neighbouring stage, whose task starts when they arrive. With overlap a
chunk's gradients reduce beside the last DP_OVERLAP_WINDOW of its last backward, and its
parameters gather beside that of its first forward, each done a residual after its transfer.

Symmetry: all tensor-, context-, expert- and data-parallel ranks of a stage run the same
program on the same data sizes, and the collectives' costs already include every
concurrent group on the shared NICs and uplinks, so one representative rank per stage
reproduces the whole cluster: a 16,384-GPU step is p processes, not 16,384. The full-rank
mode (`ranks="all"`, small clusters) simulates every GPU with rendezvous at each
collective; a test checks that both modes agree.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from superscale.collectives.tuner import CommModel
from superscale.costs.compute import compute_time_s
from superscale.costs.host import HostTally, pass_host_s
from superscale.errors import InfeasiblePlan
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupPlacement, Plan, place_group
from superscale.program.ops import CommOp, ComputeOp, Op
from superscale.schedules import Shape, Task, schedules
from superscale.simulate.analytical import (
    ASYNC_P2P,
    DP_OVERLAP_WINDOW,
    HIDDEN_GROUPS,
    OVERLAP_RESIDUAL,
    StepTime,
)
from superscale.simulate.kernel import Environment, Event, FluidLink
from superscale.training.lower import Program, StageProgram

RESOURCE = {"domain": "scale_up", "system": "host", "scale-out": "nic"}
CATEGORIES = (
    "compute",
    "host",
    "tp_comm",
    "cp_comm",
    "ep_comm",
    "pp_comm",
    "pp_bubble",
    "dp_comm",
    "other",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """One interval on one rank's stream."""

    rank: int
    stage: int
    stream: str
    name: str
    task: str  # F, B, W or step
    micro_batch: int
    chunk: int
    start_s: float
    end_s: float
    flops: float = 0.0
    bytes: float = 0.0
    flow_out: int | None = None  # id of a pipeline send leaving with this span
    flow_in: int | None = None  # id of the send this span waited for


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One op of a task, priced."""

    name: str
    compute_s: float = 0.0
    fixed_s: float = 0.0
    work_s: float = 0.0
    group: str = ""
    resource: str = ""
    collective: str = ""
    blocking: bool = True
    early: bool = False  # overlapped reduction: runs beside the compute segment before it
    parts: tuple[tuple[str, float], ...] = ()  # a folded block: seconds per category
    flops: float = 0.0
    bytes: float = 0.0
    category: str = "compute"  # what a compute-stream segment's time counts as (or "host")

    @property
    def is_comm(self) -> bool:
        return bool(self.group)


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    fixed_s: float
    work_s: float
    resource: str
    bytes: float


_NO_SEND = Send(fixed_s=0.0, work_s=0.0, resource="scale_up", bytes=0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCode:
    segments: tuple[Segment, ...]
    send: Send | None
    compute_s: float
    # the task's work standalone, as the analytical engine's pass total less its waits for
    # unprefetched weights: compute, blocking collectives, overlap residuals and (sends
    # blocking the sender) the send; a bucketed data-parallel transfer hides behind it
    busy_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """The event engine's answer: the step (same fields as the analytical engine) and its
    spans for traces."""

    step: StepTime
    spans: tuple[Span, ...]
    ranks: int
    mode: str


# ---- pricing ops into segments ---------------------------------------------------------
class _Pricer:
    def __init__(self, plan: Plan, comm: CommModel, precision: str, *, schedule: str) -> None:
        self.plan, self.comm, self.precision = plan, comm, precision
        self.cluster: Cluster = comm.cluster
        self.bidirectional = schedules()[schedule].bidirectional
        self.async_sends = schedule in ASYNC_P2P

    def placement(self, op: CommOp) -> GroupPlacement:
        if op.group == "dp" and (self.plan.cp > 1 or self.plan.fsdp_shard is not None):
            return place_group("dp", self.plan.dp_shard, self.plan.tp, self.cluster)
        return self.plan.groups[op.group]

    def comm_parts(self, op: CommOp) -> tuple[float, float, str]:
        group = self.placement(op)
        if group.size <= 1:
            return 0.0, 0.0, RESOURCE[group.level]
        table = self.comm.costs(op.collective, group.size, group.stride)
        _, best = self.comm.chosen(table, op.payload_bytes)
        # the pipeline fill is latency, not link time: the busiest link carries only S·β
        return (
            (best.fixed_s + best.fill_s(op.payload_bytes) + op.setup_s) * op.repeat,
            best.per_byte_s * op.payload_bytes * op.repeat,
            RESOURCE[group.level],
        )

    def blocking(self, op: CommOp) -> bool:
        if op.group == "tp":
            return not self.plan.tp_comm_overlap
        if op.group == "ep":
            return not (self.bidirectional or self.plan.ep_comm_overlap)
        if op.group in {"dp", "edp"}:  # ZeRO-3 prefetch overlaps, unless prefetch is 0
            return not op.overlappable
        return op.group != "cp"  # K/V exchange overlaps

    def overlapped_all_to_all(self, op: Op) -> bool:
        return isinstance(op, CommOp) and op.group == "ep" and not self.blocking(op)

    def in_layer_order(self, ops: tuple[Op, ...] | list[Op]) -> list[Op]:
        """`ops` with each run of n identical layers (ops of `repeat` n) that holds an
        overlapped expert all-to-all laid out layer by layer. Folded, every layer's combine
        would sit behind the run's last compute and wait at the pass's end with nothing
        left to hide behind; in layer order each hides behind the next layer's work, as it
        runs, and only the last layer's waits. (Tensor- and context-parallel collectives
        sit beside the GEMM or attention they overlap, folded or not: those runs stay
        folded, which saves events.)"""
        out: list[Op] = []
        start = 0
        while start < len(ops):
            n = ops[start].repeat
            end = start + 1
            while end < len(ops) and ops[end].repeat == n:
                end += 1
            run = ops[start:end]
            if n > 1 and any(self.overlapped_all_to_all(op) for op in run):
                out += [replace(op, repeat=1) for op in run] * n
            else:
                out += run
            start = end
        return out

    def task(self, ops: tuple[Op, ...] | list[Op], *, merge: bool = False) -> TaskCode:
        """Price a task's ops; `merge` fuses runs of compute (no spans needed) into one
        segment, which leaves every time unchanged and saves events."""
        segments: list[Segment] = []
        send: Send | None = None
        host = HostTally(self.plan.cuda_graphs)
        for op in self.in_layer_order(ops):
            if isinstance(op, ComputeOp):
                t = compute_time_s(op, self.cluster.chip, self.precision)
                segments.append(
                    Segment(
                        name=op.name,
                        compute_s=t,
                        flops=op.hardware_flops,
                        bytes=op.hbm_bytes * op.repeat,
                    )
                )
                host.compute(op, t)
                continue
            fixed, work, resource = self.comm_parts(op)
            host.comm(op, fixed + work)
            if op.group == "pp":
                send = Send(
                    fixed_s=fixed,
                    work_s=work,
                    resource=resource,
                    bytes=op.payload_bytes * op.repeat,
                )
            elif fixed + work > 0:
                segments.append(
                    Segment(
                        name=op.name,
                        fixed_s=fixed,
                        work_s=work,
                        group=op.group,
                        resource=resource,
                        collective=op.collective,
                        blocking=self.blocking(op),
                        bytes=op.payload_bytes * op.repeat,
                    )
                )
        # an overlapped reduction is pipelined with the GEMM that produces it (userbuffers)
        for i, seg in enumerate(segments):
            if (
                i
                and seg.is_comm
                and not seg.blocking
                and not segments[i - 1].is_comm
                and seg.collective in {"reduce_scatter", "all_reduce"}
            ):
                segments[i] = replace(seg, early=True)
        compute = sum(s.compute_s for s in segments)
        # the device waits at the task's end for the host's launches beyond its compute
        stall = pass_host_s(host.host_s(self.plan.host_launch_s), host.compute_s)
        busy = compute + stall
        busy += send.fixed_s + send.work_s if send and not self.async_sends else 0.0
        for seg in segments:
            if seg.is_comm and seg.group not in {"dp", "edp"}:
                busy += (1.0 if seg.blocking else OVERLAP_RESIDUAL) * (seg.fixed_s + seg.work_s)
        if stall > 0:
            segments.append(Segment(name="host_wait", compute_s=stall, category="host"))
        if merge:
            segments = _merge_compute(segments)
        return TaskCode(segments=tuple(segments), send=send, compute_s=compute, busy_s=busy)


def _fold(code: TaskCode, shared: set[str]) -> TaskCode:
    """Fold runs of compute and of blocking collectives on unshared links into blocks."""
    out: list[Segment] = []
    parts: dict[str, float] = {}

    def flush() -> None:
        if parts:
            out.append(
                Segment(name="block", compute_s=sum(parts.values()), parts=tuple(parts.items()))
            )
            parts.clear()

    for i, seg in enumerate(code.segments):
        nxt = code.segments[i + 1] if i + 1 < len(code.segments) else None
        fixed = (not seg.is_comm and not (nxt is not None and nxt.early)) or (
            seg.is_comm and seg.blocking and seg.resource not in shared
        )
        if fixed:
            category = _category(seg) if seg.is_comm else seg.category
            seconds = seg.fixed_s + seg.work_s if seg.is_comm else seg.compute_s
            parts[category] = parts.get(category, 0.0) + seconds
        else:
            flush()
            out.append(seg)
    flush()
    return replace(code, segments=tuple(out))


def _gather_wait(code: TaskCode) -> float:
    """Seconds of blocking weight gathers a task starts with (ZeRO-3 without prefetch)."""
    wait = 0.0
    for seg in code.segments:
        if not (seg.is_comm and seg.blocking and seg.group in {"dp", "edp"}):
            break
        wait += seg.fixed_s + seg.work_s
    return wait


def _category(seg: Segment) -> str:
    return "dp_comm" if seg.group in {"dp", "edp", "dpr", "edpr"} else f"{seg.group}_comm"


def _merge_compute(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segments:
        last_kind = merged[-1].category if merged and not merged[-1].is_comm else None
        if not seg.is_comm and last_kind == seg.category:
            last = merged[-1]
            merged[-1] = replace(
                last,
                name="compute",
                compute_s=last.compute_s + seg.compute_s,
                flops=last.flops + seg.flops,
                bytes=last.bytes + seg.bytes,
            )
        else:
            merged.append(seg)
    return merged


def _split_backward(ops: tuple[Op, ...]) -> tuple[list[Op], list[Op]]:
    """Backward into B (input gradients) and W (weight gradients: half of each GEMM's
    backward, Qi et al. 2024)."""
    b_ops: list[Op] = []
    w_ops: list[Op] = []
    for op in ops:
        if isinstance(op, ComputeOp) and op.kind == "gemm" and op.name.endswith(".bwd"):
            half = replace(
                op,
                flops=op.flops / 2,
                counted_flops=op.counted_flops / 2,
                hbm_bytes=op.hbm_bytes / 2,
                operand_bytes=op.operand_bytes / 2,
                cast_elements=op.cast_elements / 2,
                kernels=max(1, op.kernels // 2),
            )
            b_ops.append(replace(half, name=op.name.replace(".bwd", ".dgrad")))
            w_ops.append(replace(half, name=op.name.replace(".bwd", ".wgrad")))
        else:
            b_ops.append(op)
    return b_ops, w_ops


# ---- the engine ------------------------------------------------------------------------
@dataclass
class _RankState:
    rank: int
    stage: int
    acct: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    # priced collective time per category, exposed or not (acct holds the exposed part)
    priced: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    end_s: float = 0.0
    finished: bool = False
    # expert all-to-all a pass left running under ep_comm_overlap, waited for at the next's end
    carried: list[Event] = field(default_factory=list)


class _Engine:
    def __init__(
        self,
        program: Program,
        plan: Plan,
        comm: CommModel,
        precision: str,
        *,
        full: bool,
        record: bool,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.program, self.plan, self.comm = program, plan, comm
        self.progress = progress
        self.started, self.total, self.every = 0, 0, 1
        self.env = Environment()
        self.full, self.record = full, record
        self.schedule = schedules()[plan.schedule]
        p, m = plan.pp, program.micro_batches
        self.dual = self.schedule.bidirectional
        chunks = 2 if self.dual else plan.virtual_stages
        if plan.schedule == "interleaved" and m % p:
            raise InfeasiblePlan(
                f"the interleaved schedule needs micro-batches ({m}) to be a multiple of "
                f"pp ({p}), as in Megatron-LM"
            )
        if self.dual and m < 2:
            raise InfeasiblePlan("DualPipe needs at least 2 micro-batches per step")
        self.shape = Shape(stages=p, micro_batches=m, chunks=chunks)
        self.lanes = p if self.dual else p * plan.virtual_stages
        pricer = _Pricer(plan, comm, precision, schedule=plan.schedule)
        self.code: dict[tuple[int, str], TaskCode] = {}
        programs = program.stages if self.dual else program.virtual
        for lane, sp in enumerate(programs):
            self.code[(lane, "F")] = pricer.task(sp.forward, merge=not record)
            if self.schedule.split_backward:
                b_ops, w_ops = _split_backward(sp.backward)
                self.code[(lane, "B")] = pricer.task(b_ops, merge=not record)
                self.code[(lane, "W")] = pricer.task(w_ops, merge=not record)
            else:
                self.code[(lane, "B")] = pricer.task(sp.backward, merge=not record)
        # a task's leading waits for unprefetched ZeRO-3 gathers: gradient reduction
        # starts after them (it shares their links), as the analytical engine has it
        self.gather_wait = {k: _gather_wait(c) for k, c in self.code.items()}
        self.step_code = {s.index: self._step_segments(s, pricer) for s in program.stages}
        # Links only a rank's blocking work uses never see a second transfer, so their
        # times are fixed: without spans to record, fold them with compute into blocks.
        shared: set[str] = set()
        if plan.dp_comm_overlap:  # gradient and parameter syncs run beside the tasks
            shared |= {str(c["resource"]) for c in self.step_code.values()}
        shared |= {
            seg.resource
            for code in self.code.values()
            for seg in code.segments
            if seg.is_comm and not seg.blocking
        }
        if self.dual:
            shared |= {code.send.resource for code in self.code.values() if code.send}
        self.shared = shared
        if not record:
            self.code = {k: _fold(c, shared) for k, c in self.code.items()}
        self.per_stage = plan.tp * plan.cp * plan.dp if full else 1
        self.links: dict[tuple[int, str], FluidLink] = {}
        self.arrivals: dict[tuple[int, int, str, int], Event] = {}
        self.send_start: dict[tuple[int, int, str, int], tuple[float, int]] = {}
        self.done: dict[tuple[int, int, int, str], Event] = {}
        self.rendezvous: dict[tuple[Any, ...], tuple[list[int], Event]] = {}
        self.spans: list[Span] = []
        self.flow_ids = 0

    # positions: a lane is a virtual stage (or, under DualPipe, a stage of one direction)
    def lane_of(self, rank_stage: int, chunk: int) -> tuple[int, int]:
        """(direction, lane) of a rank's chunk."""
        p = self.plan.pp
        if self.dual:
            return chunk, rank_stage if chunk == 0 else p - 1 - rank_stage
        return 0, chunk * p + rank_stage

    def stage_of(self, direction: int, lane: int) -> int:
        p = self.plan.pp
        if self.dual:
            return lane if direction == 0 else p - 1 - lane
        return lane % p

    def _step_segments(self, stage: StageProgram, pricer: _Pricer) -> dict[str, float | str]:
        grad = param = opt = 0.0
        resource = "nic"
        for op in stage.step:
            if isinstance(op, ComputeOp):
                opt += compute_time_s(op, self.comm.cluster.chip, pricer.precision)
            else:
                fixed, work, resource = pricer.comm_parts(op)
                if op.collective == "all_gather":
                    param += fixed + work
                else:
                    grad += fixed + work
        return {"grad": grad, "param": param, "optimizer": opt, "resource": resource}

    def link(self, rank: int, resource: str) -> FluidLink:
        key = (rank, resource)
        if key not in self.links:
            self.links[key] = FluidLink(env=self.env, name=f"{rank}:{resource}")
        return self.links[key]

    def event(self, table: dict[Any, Event], key: Any) -> Event:
        if key not in table:
            table[key] = self.env.event()
        return table[key]

    # ---- processes ------------------------------------------------------------------
    def run(self) -> list[_RankState]:
        states = []
        for stage in range(self.plan.pp):
            for member in range(self.per_stage):
                state = _RankState(rank=stage * self.per_stage + member, stage=stage)
                states.append(state)
                self.env.process(self._rank(state, member))
        self.total = sum(len(self.schedule.tasks(self.shape, s.stage)) for s in states)
        self.every = max(1, self.total // 200)  # ~200 reports, however long the step
        self.env.run()
        stuck = [s.rank for s in states if not s.finished]
        if stuck:  # a schedule whose dependencies cannot all be met: a bug, not user input
            raise RuntimeError(
                f"pipeline schedule '{self.plan.schedule}' deadlocked on ranks {stuck[:8]}"
            )
        return states

    def _deps(self, state: _RankState, member: int, task: Task) -> Event | None:
        """The event a task waits for before it may start (None: ready now)."""
        direction, lane = self.lane_of(state.stage, task.chunk)
        if task.kind == "F":
            if lane == 0:
                return None
            return self.event(
                self.arrivals, (member, direction, "F", lane * 10**6 + task.micro_batch)
            )
        if task.kind == "B":
            if lane == self.lanes - 1:
                return self.event(
                    self.done, (member, direction, lane * 10**6 + task.micro_batch, "F")
                )
            return self.event(
                self.arrivals, (member, direction, "B", lane * 10**6 + task.micro_batch)
            )
        return self.event(self.done, (member, direction, lane * 10**6 + task.micro_batch, "B"))

    def _chunk_share(self, stage: int, chunk: int) -> float:
        """Share of a rank's parameters in one of its model chunks."""
        if self.dual:
            return 0.5
        v = self.plan.virtual_stages
        if v == 1:
            return 1.0
        layers = [self.program.virtual[c * self.plan.pp + stage].layers for c in range(v)]
        return layers[chunk] / max(1, sum(layers))

    def _rank(self, state: _RankState, member: int) -> Generator[Event, Any, None]:
        env, acct = self.env, state.acct
        order = self.schedule.tasks(self.shape, state.stage)
        # Tasks run in the schedule's order; a weight-gradient (W) task further down the list
        # may fill a wait when the next task's inputs have not arrived (zero-bubble).
        fillers = [t for t in order if t.kind == "W"]
        lanes = [list(order)]
        step = self.step_code[state.stage]
        grad_s, param_s = float(step["grad"]), float(step["param"])
        resource = str(step["resource"])
        overlap = self.plan.dp_comm_overlap
        # Megatron-LM's distributed optimizer: each model chunk's parameters are gathered as
        # its first forward starts, and its gradients reduced during its last backward.
        last_b = {t.chunk: t for t in order if t.kind == "B"}
        grads: list[Event] = []
        params_all = None
        if not overlap and param_s > 0:
            params_all = self._transfer(state, member, param_s, resource, "param_all_gather", "dp")
            yield from self._wait(state, params_all, "dp_comm")
        gathered: set[int] = set()
        while any(lanes):
            ready_lane = None
            for lane in lanes:
                if lane:
                    dep = self._deps(state, member, lane[0])
                    if dep is None or dep.triggered:
                        ready_lane = lane
                        break
            if ready_lane is None:
                usable = [w for w in fillers if self._deps(state, member, w).triggered]  # type: ignore[union-attr]
                if usable:
                    fillers.remove(usable[0])
                    lanes[0].remove(usable[0])
                    yield from self._run_task(state, member, usable[0])
                    continue
                heads = [self._deps(state, member, lane[0]) for lane in lanes if lane]
                waits = [e for e in heads if e is not None]
                yield from self._wait_dependency(state, member, lanes, waits)
                continue
            task = ready_lane.pop(0)
            if task.kind == "W":
                fillers.remove(task)
            _, lane_index = self.lane_of(state.stage, task.chunk)
            share = self._chunk_share(state.stage, task.chunk)
            params: Event | None = None
            if overlap and task.kind == "F" and task.chunk not in gathered and param_s > 0:
                gathered.add(task.chunk)
                params = self._bucketed(state, member, task, param_s * share, resource, "F")
            reducing = overlap and grad_s > 0 and last_b.get(task.chunk) == task
            if reducing:
                grads.append(self._bucketed(state, member, task, grad_s * share, resource, "B"))
            yield from self._run_task(state, member, task)
            if reducing:
                yield from self._overlap_residual(
                    state, grad_s * share, self.code[(lane_index, "B")].busy_s
                )
            if params is not None:
                yield from self._overlap_residual(
                    state, param_s * share, self.code[(lane_index, "F")].busy_s
                )
                yield from self._wait(state, params, "dp_comm")
        for w in fillers:
            yield from self._run_task(state, member, w)
        for carried in state.carried:
            yield from self._wait(state, carried, "ep_comm")
        if not overlap and grad_s > 0:
            grads.append(self._transfer(state, member, grad_s, resource, "grad_sync", "dp"))
        for done in grads:
            yield from self._wait(state, done, "dp_comm")
        start = env.now
        yield env.timeout(float(step["optimizer"]))
        acct["other"] += env.now - start
        self._span(state, "compute", "optimizer", "step", -1, -1, start, env.now)
        state.end_s = env.now
        state.finished = True

    @staticmethod
    def _residual_s(comm_s: float, window_s: float) -> float:
        """The share of an overlapped data-parallel transfer still exposed (the analytical
        engine's residual): pipeline fill and SM contention."""
        return OVERLAP_RESIDUAL * min(comm_s, DP_OVERLAP_WINDOW * window_s)

    def _overlap_residual(
        self, state: _RankState, comm_s: float, window_s: float
    ) -> Generator[Event, Any, None]:
        """What an overlapped data-parallel transfer costs the compute stream."""
        residual = self._residual_s(comm_s, window_s)
        if residual > 0:
            yield self.env.timeout(residual)
            state.acct["dp_comm"] += residual

    def _bucketed(
        self, state: _RankState, member: int, task: Task, seconds: float, resource: str, kind: str
    ) -> Event:
        """A chunk's bucketed gradient reduction (`kind` B: in its last backward) or
        parameter gather (F: in its first forward). It runs beside the last
        DP_OVERLAP_WINDOW of the task's compute (the first bucket is ready, or gathered,
        only after the rest), after the task's leading waits for unprefetched weights, and
        is done a residual after its transfer: the residual the compute stream pays is
        pipeline fill too, so it shows even when the transfer outlasts the window, as in
        the analytical engine's (c − w)⁺ + r·min(c, w)."""
        done = self.env.event()
        _, lane = self.lane_of(state.stage, task.chunk)
        busy_s = self.code[(lane, kind)].busy_s
        delay = (1 - DP_OVERLAP_WINDOW) * busy_s + self.gather_wait[(lane, kind)]
        residual = self._residual_s(seconds, busy_s)
        name = "grad_sync" if kind == "B" else "param_all_gather"

        def later() -> Generator[Event, Any, None]:
            yield self.env.timeout(delay)
            yield self._transfer(state, member, seconds, resource, name, "dp")
            yield self.env.timeout(residual)
            done.succeed()

        self.env.process(later())
        return done

    def _wait(self, state: _RankState, event: Event, category: str) -> Generator[Event, Any, None]:
        if not event.triggered:
            start = self.env.now
            yield event
            state.acct[category] += self.env.now - start

    def _wait_dependency(
        self, state: _RankState, member: int, lanes: list[list[Task]], waits: list[Event]
    ) -> Generator[Event, Any, None]:
        start = self.env.now
        yield self.env.any_of(waits)
        waited = self.env.now - start
        # the share of the wait during which the awaited send was on the wire is pp_comm
        in_flight = 0.0
        for lane in lanes:
            if lane:
                key = self._arrival_key(state, member, lane[0])
                if key in self.send_start and self.arrivals[key].triggered:
                    sent_at = self.send_start[key][0]
                    in_flight = max(in_flight, min(waited, self.env.now - max(sent_at, start)))
        state.acct["pp_comm"] += in_flight
        state.acct["pp_bubble"] += waited - in_flight

    def _arrival_key(self, state: _RankState, member: int, task: Task) -> tuple[int, int, str, int]:
        direction, lane = self.lane_of(state.stage, task.chunk)
        return (member, direction, task.kind, lane * 10**6 + task.micro_batch)

    def _transfer(
        self, state: _RankState, member: int, seconds: float, resource: str, name: str, group: str
    ) -> Event:
        """A collective of `seconds` standalone time on this rank's link, shared fairly."""
        done = self.env.event()
        if seconds <= 0:
            return done.succeed()

        def proc() -> Generator[Event, Any, None]:
            start = self.env.now
            yield self.link(state.rank, resource).transfer(seconds, name)
            self._span(state, f"comm:{resource}", name, "step", -1, -1, start, self.env.now)
            done.succeed()

        self.env.process(proc())
        return done

    def _run_task(self, state: _RankState, member: int, task: Task) -> Generator[Event, Any, None]:
        env, acct = self.env, state.acct
        self.started += 1
        if self.progress is not None and (
            self.started % self.every == 0 or self.started == self.total
        ):
            self.progress(self.started, self.total)
        direction, lane = self.lane_of(state.stage, task.chunk)
        code = self.code[(lane, task.kind)]
        key = self._arrival_key(state, member, task)
        flow_in = self.send_start.get(key, (0.0, None))[1] if task.kind != "W" else None
        outstanding: list[tuple[Event, str]] = []
        seq = 0
        segments = code.segments
        for index, seg in enumerate(segments):
            start = env.now
            if seg.parts:
                yield env.timeout(seg.compute_s)
                for category, seconds in seg.parts:
                    acct[category] += seconds
                    state.priced[category] += seconds
                continue
            if not seg.is_comm:
                nxt = segments[index + 1] if index + 1 < len(segments) else None
                if nxt is not None and nxt.early:  # the reduction streams out of this GEMM
                    seq += 1
                    outstanding.append(
                        (self._collective(state, member, nxt, task, seq), _category(nxt))
                    )
                yield env.timeout(seg.compute_s)
                acct[seg.category] += env.now - start
                self._span(
                    state,
                    "compute",
                    seg.name,
                    task.kind,
                    task.micro_batch,
                    task.chunk,
                    start,
                    env.now,
                    flops=seg.flops,
                    nbytes=seg.bytes,
                    flow_in=flow_in,
                )
                flow_in = None
                continue
            category = _category(seg)
            state.priced[category] += seg.fixed_s + seg.work_s
            if not seg.early:
                seq += 1
                finished = self._collective(state, member, seg, task, seq)
                if seg.blocking:
                    yield finished
                    acct[category] += env.now - start
                    continue
                outstanding.append((finished, category))
            residual = OVERLAP_RESIDUAL * (seg.fixed_s + seg.work_s)
            yield env.timeout(residual)  # SM contention and pipeline fill
            acct[category] += residual
        if self.dual:
            # DualPipe runs each chunk beside the other direction's (F&B): the rank moves on
            # while this chunk's expert all-to-all drains, and hands its output on after.
            draining = [e for e, category in outstanding if category == "ep_comm"]
            outstanding = [(e, c) for e, c in outstanding if c != "ep_comm"]
            if any(not e.triggered for e in draining):
                for finished, category in outstanding:
                    yield from self._wait(state, finished, category)
                self.env.process(self._finish_later(state, member, task, draining))
                return
        if self.plan.ep_comm_overlap and not self.dual:
            # Megatron's --overlap-moe-expert-parallel-comm runs a pass's all-to-all beside
            # the other micro-batch's pass: what is still running at this pass's end (its
            # last layer's combine) drains beside the next one, which waits for it at its end
            carried, state.carried = state.carried, []
            last = [e for e, c in outstanding if c == "ep_comm"][-1:]
            state.carried = [e for e in last if not e.triggered]
            outstanding = [(e, c) for e, c in outstanding if e not in state.carried]
            outstanding += [(e, "ep_comm") for e in carried]
        for finished, category in outstanding:
            yield from self._wait(state, finished, category)
        self.done_event(member, direction, lane, task).succeed()
        if task.kind in {"F", "B"}:
            arrived = self._send(state, member, direction, lane, task, code.send or _NO_SEND)
            if arrived is not None and self.plan.schedule not in ASYNC_P2P:
                # Megatron-LM pairs each send with the next receive and waits on both
                # (send_forward_recv_backward): the transfer sits on the sender's path too.
                # DualPipe overlaps it with the other direction's work.
                yield from self._wait(state, arrived, "pp_comm")

    def _finish_later(
        self, state: _RankState, member: int, task: Task, draining: list[Event]
    ) -> Generator[Event, Any, None]:
        """Complete `task` (its done event and its send) once its transfers have drained."""
        for event in draining:
            if not event.triggered:
                yield event
        direction, lane = self.lane_of(state.stage, task.chunk)
        self.done_event(member, direction, lane, task).succeed()
        if task.kind in {"F", "B"}:
            code = self.code[(lane, task.kind)]
            self._send(state, member, direction, lane, task, code.send or _NO_SEND)

    def done_event(self, member: int, direction: int, lane: int, task: Task) -> Event:
        return self.event(
            self.done, (member, direction, lane * 10**6 + task.micro_batch, task.kind)
        )

    def _collective(
        self, state: _RankState, member: int, seg: Segment, task: Task, seq: int
    ) -> Event:
        done = self.env.event()

        def proc() -> Generator[Event, Any, None]:
            if self.full:
                yield self._rendezvous(state, member, seg.group, (task, seq))
            start = self.env.now
            yield self.env.timeout(seg.fixed_s)
            yield self.link(state.rank, seg.resource).transfer(seg.work_s, seg.name)
            self._span(
                state,
                f"comm:{seg.resource}",
                seg.name,
                task.kind,
                task.micro_batch,
                task.chunk,
                start,
                self.env.now,
                nbytes=seg.bytes,
            )
            done.succeed()

        self.env.process(proc())
        return done

    def _rendezvous(self, state: _RankState, member: int, group: str, key: Any) -> Event:
        """Fires when every simulated member of this rank's `group` has arrived."""
        size, stride = self._group_shape(group)
        gid = self._group_id(member, size, stride)
        entry = self.rendezvous.setdefault((state.stage, group, gid, key), ([0], self.env.event()))
        entry[0][0] += 1
        if entry[0][0] == size:
            entry[1].succeed()
        return entry[1]

    def _group_shape(self, group: str) -> tuple[int, int]:
        g = self.plan.groups[group]
        if group == "dp" and self.plan.cp > 1:
            return self.plan.dp * self.plan.cp, self.plan.tp
        return g.size, g.stride

    @staticmethod
    def _group_id(member: int, size: int, stride: int) -> tuple[int, int]:
        block, offset = divmod(member, size * stride)
        return block, offset % stride

    def _send(
        self, state: _RankState, member: int, direction: int, lane: int, task: Task, send: Send
    ) -> Event | None:
        """Hand activations (F) or gradients (B) on to the neighbouring lane's stage; the
        returned event fires when they have arrived (None: nothing to send)."""
        target = lane + 1 if task.kind == "F" else lane - 1
        if not 0 <= target < self.lanes:
            return None
        key = (member, direction, task.kind, target * 10**6 + task.micro_batch)
        self.flow_ids += 1
        flow = self.flow_ids
        self.send_start[key] = (self.env.now, flow)
        if send.resource not in self.shared and not self.record:  # nothing shares the link
            arrived = self.env.timeout(send.fixed_s + send.work_s)
            if key in self.arrivals:  # the receiver already waits on this key
                waiting = self.arrivals[key]

                def deliver(_: Event) -> None:
                    waiting.succeed()

                arrived.on(deliver)
            else:
                self.arrivals[key] = arrived
            return arrived
        arrived = self.event(self.arrivals, key)

        def proc() -> Generator[Event, Any, None]:
            start = self.env.now
            yield self.env.timeout(send.fixed_s)
            yield self.link(state.rank, send.resource).transfer(send.work_s, "pp_send")
            self._span(
                state,
                f"comm:{send.resource}",
                "pp_send",
                task.kind,
                task.micro_batch,
                task.chunk,
                start,
                self.env.now,
                nbytes=send.bytes,
                flow_out=flow,
            )
            arrived.succeed()

        self.env.process(proc())
        return arrived

    def _span(
        self,
        state: _RankState,
        stream: str,
        name: str,
        kind: str,
        mb: int,
        chunk: int,
        start: float,
        end: float,
        *,
        flops: float = 0.0,
        nbytes: float = 0.0,
        flow_in: int | None = None,
        flow_out: int | None = None,
    ) -> None:
        if self.record and end >= start:
            self.spans.append(
                Span(
                    rank=state.rank,
                    stage=state.stage,
                    stream=stream,
                    name=name,
                    task=kind,
                    micro_batch=mb,
                    chunk=chunk,
                    start_s=start,
                    end_s=end,
                    flops=flops,
                    bytes=nbytes,
                    flow_in=flow_in,
                    flow_out=flow_out,
                )
            )


def simulate_events(
    program: Program,
    plan: Plan,
    cluster: Cluster,
    precision: str,
    *,
    ranks: Literal["stage", "all"] = "stage",
    record: bool = True,
    comm_model: CommModel | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Timeline:
    """Run one training step as events; `ranks="all"` simulates every GPU (small clusters).
    `progress(started, total)` is called as tasks start (~200 times a step; the CLI draws
    it as a bar).

    Raises:
        InfeasiblePlan: a schedule that cannot run this plan (e.g. interleaving with a
            micro-batch count that is not a multiple of pp).
    """
    comm = comm_model or CommModel(cluster)
    full = ranks == "all"
    if full and cluster.gpus > 4096:
        raise InfeasiblePlan(
            f"full-rank simulation is for small clusters (≤ 4,096 GPUs), "
            f"not {cluster.gpus:,}; use ranks='stage'"
        )
    engine = _Engine(program, plan, comm, precision, full=full, record=record, progress=progress)
    states = engine.run()
    step_s = max(s.end_s for s in states)
    # The analytical engine's definition: the work of the busiest stage, and the rest of the
    # step it spends waiting as the pipeline bubble (so the parts add up to the step).
    critical = max(states, key=lambda s: sum(v for k, v in s.acct.items() if k != "pp_bubble"))
    breakdown = dict(critical.acct)
    breakdown["pp_bubble"] = step_s - sum(v for k, v in breakdown.items() if k != "pp_bubble")
    breakdown["exposed_comm"] = sum(
        breakdown[k] for k in ("tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm")
    )
    m, n_stages = program.micro_batches, len(program.stages)
    model_flops = hardware_flops = 0.0
    for stage in program.stages:
        ops = (*stage.forward, *stage.backward)
        model_flops += sum(op.model_flops for op in ops if isinstance(op, ComputeOp))
        hardware_flops += sum(op.hardware_flops for op in ops if isinstance(op, ComputeOp))
    step = StepTime(
        step_time_s=step_s,
        breakdown_s=breakdown,
        stages=(),
        critical_stage=critical.stage,
        model_flops_per_gpu=m * model_flops / n_stages,
        hardware_flops_per_gpu=m * hardware_flops / n_stages,
        hidden_comm_s={
            f"{g}_comm": max(0.0, critical.priced[f"{g}_comm"] - breakdown[f"{g}_comm"])
            for g in HIDDEN_GROUPS
        },
    )
    return Timeline(
        step=step, spans=tuple(engine.spans), ranks=len(states), mode="all" if full else "stage"
    )
