"""Pipeline schedules: the order in which each stage runs its forward and backward work.

A schedule lists, per pipeline rank, its tasks in execution order: F (forward), B
(backward; with a split backward, the input-gradient part) and W (weight-gradient part,
only in zero-bubble schedules), each for a micro-batch and a model chunk. Virtual stage
k·p + s lives on rank s (Megatron-LM's interleaving). The engine runs each rank's list in
order, waiting for cross-stage inputs; a schedule may mark W tasks as fillers, which the
engine runs whenever the next listed task is not ready yet (zero-bubble scheduling).
A schedule also carries every fact the rest of the package needs about it, so adding one is
one module implementing `Schedule` plus `@register("name")`: its bubble in closed form (the
analytical engine), the micro-batches a stage holds in flight and its weight copies (the
memory model), whether its pipeline sends run beside compute (both engines), and the plans
it cannot run (`problem`, asked by scenario validation and search pruning through
`superscale.scenario.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from superscale import vec
from superscale.registry import Registry

Kind = Literal["F", "B", "W"]


@dataclass(frozen=True, slots=True)
class Task:
    kind: Kind
    micro_batch: int
    chunk: int  # model chunk on this rank: virtual stage = chunk·p + rank


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """What a schedule is laid out for."""

    stages: int  # p
    micro_batches: int  # m
    chunks: int  # v (model chunks per rank)


class Schedule(Protocol):
    name: str
    split_backward: bool  # True: B and W are separate tasks
    bidirectional: bool  # True: micro-batches enter from both ends (DualPipe)
    async_sends: bool  # pipeline sends run beside compute instead of blocking the sender
    weight_copies: int  # copies of a rank's parameters the schedule keeps (DualPipe: 2)
    # Between one model chunk's last backward and the next chunk's, in units of p chunk
    # backward passes (interleaved: 1, Megatron's order runs p micro-batches of a chunk
    # before the next); Megatron reduces each chunk's gradients after its last backward,
    # so all but the last chunk's reduce beside the rest. 0: one chunk per rank, or the
    # schedule's own rule (DualPipe's two directions).
    chunk_grad_gap: float

    def tasks(self, shape: Shape, rank: int) -> list[Task]: ...

    def bubble_factor(self, stages: int) -> float:
        """Share of the other stages' work the bubble exposes, before dividing by the virtual
        stages: T = m·max t + (bubble_factor / v)·(Σ t − max t) (analytical engine)."""
        ...

    def in_flight(self, shape: Shape, stage: vec.Num) -> vec.Num:
        """Micro-batches whose activations `stage` holds at its peak (in whole-stage units)."""
        ...

    def problem(self, shape: Shape) -> str | None:
        """Why this schedule cannot run `shape`, or None."""
        ...


def one_chunk_only(name: str, shape: Shape) -> str | None:
    """The rule of schedules that keep one model chunk per rank."""
    if shape.chunks > 1:
        return (
            f"parallel.schedule '{name}' runs one model chunk per rank; virtual_stages must "
            f"be 1 (got {shape.chunks}; for virtual stages use schedule 'interleaved')"
        )
    return None


def one_f_one_b_in_flight(shape: Shape, stage: vec.Num) -> vec.Num:
    """1F1B's peak: stage s of p holds p − s micro-batches (Narayanan et al. 2021)."""
    return vec.as_float(vec.minimum(shape.micro_batches, shape.stages - stage))


_REGISTRY: Registry[Schedule] = Registry()
register = _REGISTRY.register


def schedules() -> dict[str, Schedule]:
    """Registered schedules by name (importing the package registers the built-ins)."""
    return _REGISTRY.all()


def one_f_one_b(m: int, p: int, rank: int, *, warmup: int | None = None) -> list[tuple[str, int]]:
    """The 1F1B order of one rank: warm-up forwards, alternate, cool-down backwards."""
    w = min(m, p - rank - 1 if warmup is None else warmup)
    order: list[tuple[str, int]] = [("F", i) for i in range(w)]
    f, b = w, 0
    while b < m:
        if f < m:
            order.append(("F", f))
            f += 1
        order.append(("B", b))
        b += 1
    return order
